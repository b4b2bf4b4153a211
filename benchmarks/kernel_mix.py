"""Instructions per score of the CUDA assignment kernels, without a GPU.

Each kernel is compiled for an H100/H200 (sm_90) by Triton, and its SASS is
read with ``cuobjdump`` (both ship with triton). In the loop over centre
tiles, the warp instructions per score are counted: a static measure, the
issue work one score costs, where the GPU's time is not at hand. The tensor
cores' own time and memory stalls are not in it; rank designs with it, and
time them on a GPU (``benchmarks/gpu_check.sh``).

``python -m benchmarks.kernel_mix [--out DIR] [--rows N]``: our dense pass in each
precision, and flash-kmeans's assignment kernel where it is installed, on
the two GPU benchmark problems; a Markdown table on stdout (and in DIR).
"Whole kernel" adds what runs once per tile of rows (loading X, the
float32 rescoring, the sums), loops there counted once, over the scores of
the tile. Ours are compiled as launched on a contiguous X (``compile_for``:
a stride of 1 specialised, 16-byte aligned pointers), flash-kmeans's with
the constant strides it declares. Registers a thread and shared memory
decide how many programs share a multiprocessor (its warps hide the
latency of memory): static counts alone missed that.

Then ``tf32-check``'s shares of rows, its first pass emulated with NumPy on
200,000 rows of each problem's blobs (centred, as a fit does): the rows
decided between their two best in float32 (pairs) and the rows redone over
all centres, both handled after the dense pass.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
from pathlib import Path
from typing import Any

PROBLEMS_BY_NAME = {"large": (10_000_000, 32, 256), "huge": (8_000_000, 128, 1024)}
PRECISIONS = ("tf32", "tf32-check", "tf32x3")  # "ieee": FMAs on CUDA cores, not comparable
#: (precision, tile settings) compiled: each precision, and tf32-check measuring
#: each row's TF32 rounding
VARIANTS = (*((p, {}) for p in PRECISIONS), ("tf32-check", {"MEASURE_ROUNDING": True}))
_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?);")
_BACKWARD = re.compile(r"BRA\s.*?0x([0-9a-f]+)")


def _instructions(sass: str) -> list[tuple[int, str]]:
    return [(int(m.group(1), 16), m.group(2).strip()) for m in map(_LINE.search,
                                                                     sass.splitlines()) if m]


def _loops(lines: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """(first, last) instruction index of each loop: a branch backwards."""
    index = {address: i for i, (address, _) in enumerate(lines)}
    loops = []
    for i, (address, text) in enumerate(lines):
        match = _BACKWARD.search(text)
        if match and int(match.group(1), 16) <= address and int(match.group(1), 16) in index:
            loops.append((index[int(match.group(1), 16)], i))
    return loops


def centre_loop_mix(sass: str, chunks: int = 1) -> tuple[int, int, collections.Counter]:
    """Instructions of one trip of the loop over centre tiles (the widest loop
    with a tensor-core product), loops inside it counted ``chunks`` times;
    the instructions outside it (each counted once); and the opcodes of its
    body."""
    lines = _instructions(sass)
    loops = [(a, b) for a, b in _loops(lines) if b - a > 20]

    def has(loop: tuple[int, int], opcode: str) -> bool:
        return any(opcode in text for _, text in lines[loop[0]:loop[1] + 1])

    candidates = [loop for loop in loops if has(loop, "MMA")]
    first, last = max(candidates, key=lambda loop: loop[1] - loop[0])
    inner = [(a, b) for a, b in loops if first < a and b < last]
    count = last - first + 1 + sum((b - a + 1) * (chunks - 1) for a, b in inner)
    opcodes = collections.Counter(
        re.sub(r"^@!?U?P\w+\s+", "", text).split()[0].split(".")[0]
        for _, text in lines[first:last + 1])
    return count, len(lines) - (last - first + 1), opcodes


def _spills(sass: str) -> int:
    return len(re.findall(r"\b(?:LDL|STL)\b", sass))


def _registers(compiled: Any) -> int:
    """Registers a thread (``cuobjdump -res-usage``)."""
    output = _cuobjdump(compiled, "-res-usage")
    return int(re.search(r"REG:(\d+)", output).group(1))


def programs_per_multiprocessor(registers: int, shared: int, num_warps: int) -> int:
    """Programs that fit on one sm_90 multiprocessor: 64K registers (8 a
    thread at a time), 228 KiB of shared memory (1 KiB reserved a program),
    64 warps."""
    by_registers = 65536 // (-(-registers // 8) * 8 * 32 * num_warps)
    by_shared = 228 * 1024 // (shared + 1024)
    return min(by_registers, by_shared, 64 // num_warps, 32)


def _sass(compiled: Any) -> str:
    """The SASS of a compiled kernel, with addresses (``cuobjdump -sass``)."""
    return _cuobjdump(compiled, "-sass")


def _cuobjdump(compiled: Any, option: str) -> str:
    import subprocess
    import tempfile

    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as folder:
        cubin = Path(folder) / "kernel.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        return subprocess.run([str(tool), option, str(cubin)], capture_output=True, text=True,
                              check=True).stdout


def _row(kernel: str, problem: str, compiled: Any, config: dict[str, Any], d: int,
         k: int) -> dict:
    sass = _sass(compiled)
    chunks = 1 if config.get("SINGLE_CHUNK", True) else -(-d // config["BLOCK_D"])
    count, outside, opcodes = centre_loop_mix(sass, chunks)
    per_score = count * config["num_warps"] / (config["BLOCK_N"] * config["BLOCK_K"])
    trips = -(-k // config["BLOCK_K"])
    whole = (count * trips + outside) * config["num_warps"] / (config["BLOCK_N"] * k)
    return {"problem": problem, "kernel": kernel, "per_score": per_score, "whole": whole,
            "tiles": f"{config['BLOCK_N']}×{config['BLOCK_K']}×{config.get('BLOCK_D', d)}, "
                     f"{config['num_warps']} warps, {config['num_stages']} stages",
            "shared_kib": compiled.metadata.shared // 1024, "spills": _spills(sass),
            "registers": (registers := _registers(compiled)),
            "programs": programs_per_multiprocessor(registers, compiled.metadata.shared,
                                                    config["num_warps"]),
            "top": ", ".join(f"{op} {n}" for op, n in opcodes.most_common(5))}


def ours(target: Any) -> list[dict]:
    from xpkmeans._backend import _triton

    rows = []
    for problem, (n, d, k) in PROBLEMS_BY_NAME.items():
        for precision, override in VARIANTS:
            _triton.config_override.update(override)
            try:
                config = _triton.tile_config(n, d, k, precision)
                compiled = _triton.compile_for(target, n, d, k, precision)[0]
            finally:
                _triton.config_override.clear()
            name = f"xpkmeans {precision}" + "".join(f" {key}" for key in override)
            rows.append(_row(name, problem, compiled, config, d, k))
    return rows


def flash_kmeans(target: Any) -> list[dict]:
    """flash-kmeans 0.3's own assignment kernel, with its H200 tiles for these shapes."""
    try:
        from flash_kmeans import assign_euclid_triton as flash
    except Exception:  # not installed, or no torch
        return []
    from xpkmeans._backend import _triton

    rows = []
    for problem, (n, d, k) in PROBLEMS_BY_NAME.items():
        config = {"BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 1}
        constants = dict(B=1, N=n, K=k, D=d, stride_x_b=n * d, stride_x_n=d, stride_x_d=1,
                         stride_c_b=k * d, stride_c_k=d, stride_c_d=1, stride_xsq_b=n,
                         stride_xsq_n=1, stride_csq_b=k, stride_csq_k=1, stride_out_b=n,
                         stride_out_n=1, BLOCK_N=128, BLOCK_K=64, D_PAD=d)
        signature = {"x_ptr": "*fp32", "c_ptr": "*fp32", "x_sq_ptr": "*fp32",
                     "c_sq_ptr": "*fp32", "out_ptr": "*i32",
                     **{key: "constexpr" for key in constants}}
        try:
            compiled = _triton._compile(target, flash._euclid_assign_kernel, signature,
                                        constants, config["num_warps"], config["num_stages"])
        except Exception as error:  # another flash-kmeans version
            print(f"flash-kmeans {problem}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        rows.append(_row("flash-kmeans (TF32)", problem, compiled, config, d, k))
    return rows


def _tf32(values: Any) -> Any:
    """float32 rounded to TF32, as the kernels round their operands."""
    import numpy as np

    bits = np.asarray(values, dtype=np.float32).view(np.int32)
    return ((bits + 0x1000) & -8192).view(np.float32)


def candidates(target: Any, n: int = 8_000_000, d: int = 128, m: int = 9) -> dict:
    """Greedy k-means++'s pass (``m`` candidates, tf32x3): warp instructions
    a row, its loops over chunks of features counted once a chunk."""
    from xpkmeans._backend import _triton

    config = _triton.candidates_config(n, d, m, "tf32x3")
    compiled = _triton.compile_candidates_for(target, n, d, m, "tf32x3")
    sass = _sass(compiled)
    lines = _instructions(sass)
    loops = [(a, b) for a, b in _loops(lines) if b - a > 20]
    innermost = [(a, b) for a, b in loops
                 if not any(a < a2 and b2 < b for a2, b2 in loops if (a2, b2) != (a, b))]
    chunks = 1 if config["SINGLE_CHUNK"] else -(-d // config["BLOCK_D"])
    count = len(lines) + sum((b - a + 1) * (chunks - 1) for a, b in innermost)
    registers = _registers(compiled)
    return {"shape": f"{n // 10**6}M×{d}, {m} candidates", "per_row": count * config["num_warps"]
            / config["BLOCK_N"], "tiles": f"{config['BLOCK_N']}×{config['BLOCK_K']}×"
            f"{config['BLOCK_D']}, {config['num_warps']} warps, {config['num_stages']} stages",
            "shared_kib": compiled.metadata.shared // 1024, "registers": registers,
            "programs": programs_per_multiprocessor(registers, compiled.metadata.shared,
                                                    config["num_warps"]),
            "spills": _spills(sass)}


def check_shares(rows: int = 200_000) -> list[dict]:
    """Shares of rows that tf32-check pairs and redoes, its TF32 pass emulated
    (operands rounded to TF32, products added in float64) with its bound:
    each row's rounding bounded (the default), or measured
    (``MEASURE_ROUNDING``)."""
    import dataclasses

    import numpy as np
    import torch

    from xpkmeans._backend import _triton

    from .problems import PROBLEMS, Dataset

    shares = []
    for name, (n, d, k) in PROBLEMS_BY_NAME.items():
        problem = dataclasses.replace({p.name: p for p in PROBLEMS}[name], n=rows)
        data = Dataset(problem, device="cpu")
        X, init = data.array("numpy"), data.init("numpy")
        mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        X, C = X - mean, init - mean
        half = 0.5 * np.sum(C.astype(np.float64) ** 2, axis=1)
        scores = half - _tf32(X).astype(np.float64) @ _tf32(C).astype(np.float64).T
        order = np.argpartition(scores, 2, axis=1)[:, :3]
        order = np.take_along_axis(order, np.argsort(
            np.take_along_axis(scores, order, axis=1), axis=1), axis=1)
        best, second, third = np.take_along_axis(scores, order, axis=1).T
        safety, _, lane_bits, absolute = _triton.check_bound(
            d, _triton.tile_config(n, d, k, "tf32-check")["BLOCK_K"])
        norm_sums, terms, slack = (t.numpy().astype(np.float64) for t in _triton._check_terms(
            torch.asarray(half), torch.linalg.vector_norm(
                torch.asarray(C, dtype=torch.float64) - torch.asarray(_tf32(C)), dim=1), d))
        x_norm = np.linalg.norm(X.astype(np.float64), axis=1)
        centre_terms = x_norm * terms[order[:, 0]]
        lanes = (np.abs(best) + np.maximum(np.abs(second), np.abs(third))) * lane_bits + absolute
        for measured in (False, True):
            x_moved = (np.linalg.norm(X.astype(np.float64) - _tf32(X), axis=1) if measured
                       else x_norm * 2.0**-11)
            bound = safety * (x_moved * norm_sums[order[:, 0]] + centre_terms) + lanes
            reach = np.sqrt(np.maximum(x_norm**2 + 2 * best + 4 * bound + slack, 0))
            bound = np.minimum(bound, safety * (2 * x_moved * reach + centre_terms) + lanes)
            # two best in neighbouring lanes (one pair): the pass's third is the second
            neighbours = order[:, 0] // 2 == order[:, 1] // 2
            redone = (third - best <= bound) | (neighbours & (second - best <= bound))
            paired = ~redone & (second - best <= bound)
            shares.append({"problem": name, "rows": rows, "measured": measured,
                           "paired": float(paired.mean()), "redone": float(redone.mean())})
    return shares


def table(rows: list[dict]) -> str:
    lines = ["| problem | kernel | per score: centre loop | whole kernel | tiles | shared KiB "
             "| registers | programs an SM | spills | most frequent in the loop |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['problem']} | {r['kernel']} | {r['per_score']:.3f} | {r['whole']:.3f} "
              f"| {r['tiles']} | {r['shared_kib']} | {r['registers']} | {r['programs']} "
              f"| {r['spills']} | {r['top']} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for kernel-mix-sm90.md")
    parser.add_argument("--rows", type=int, default=200_000,
                        help="rows of the emulated tf32-check pass (default 200,000)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("unset TRITON_INTERPRET: the kernels are compiled, not interpreted")
    from triton.backends.compiler import GPUTarget

    target = GPUTarget("cuda", 90, 32)
    rows = ours(target) + flash_kmeans(target)
    text = table(sorted(rows, key=lambda r: (r["problem"] != "large", r["per_score"])))
    shares = check_shares(args.rows)
    text += ("\n\n| problem | tf32-check: each row's TF32 rounding | rows paired (two best "
             "rescored) | rows redone |\n|---|---|---:|---:|\n" + "\n".join(
                 f"| {r['problem']} | {'measured' if r['measured'] else 'bounded'} "
                 f"| {r['paired']:.2%} | {r['redone']:.2%} |" for r in shares)
             + f"\n\n(TF32 pass emulated on {shares[0]['rows']:,} rows of each problem's blobs)")
    kpp = candidates(target)
    text += ("\n\n| greedy k-means++'s pass | warp instructions a row | tiles | shared KiB "
             "| registers | programs an SM | spills |\n|---|---:|---|---:|---:|---:|---:|\n"
             f"| {kpp['shape']} | {kpp['per_row']:.1f} | {kpp['tiles']} | {kpp['shared_kib']} "
             f"| {kpp['registers']} | {kpp['programs']} | {kpp['spills']} |")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        import triton

        try:
            from importlib.metadata import version

            flash = f", flash-kmeans {version('flash-kmeans')}"
        except Exception:
            flash = ""
        (args.out / "kernel-mix-sm90.md").write_text(
            "# Warp instructions per score in the centre-tile loop (sm_90 SASS, static)\n\n"
            f"Triton {triton.__version__}{flash}; `python -m benchmarks.kernel_mix`\n\n"
            + text + "\n")
    return rows


if __name__ == "__main__":
    main()
