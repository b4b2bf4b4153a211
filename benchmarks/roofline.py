"""Roofline of one Lloyd iteration on a CUDA device.

Measures, on the card the benchmark runs on:

- the float32 GEMM rate: ``torch.matmul`` of two large square matrices
  with TF32 disabled (the arithmetic every library's E step uses);
- the copy bandwidth: a device-to-device copy of a large buffer, counted as
  bytes read plus bytes written (the STREAM "copy" convention);

and bounds one iteration from below by
``max(2 n d k / GEMM rate, bytes of X / bandwidth)``: the distance GEMM
must be done and X must be read at least once.

Run alone with ``python -m benchmarks.roofline [--problems large,huge]``;
``benchmarks.run`` calls it on GPU runs and reports the bound next to the
measured time per iteration. Needs a CUDA device (torch, else CuPy).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _cuda_namespace() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return "torch"
    except ImportError:
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return "cupy"
    except Exception:
        pass
    return None


def available() -> bool:
    return _cuda_namespace() is not None


def measure(*, gemm_size: int = 8192, copy_mib: int = 2048, repeats: int = 10) -> dict[str, Any]:
    """GEMM FLOP/s (float32, no TF32) and device copy bandwidth (bytes/s)."""
    lib = _cuda_namespace()
    if lib is None:
        msg = "The roofline needs a CUDA device (torch or CuPy)."
        raise RuntimeError(msg)
    if lib == "torch":
        return _measure_torch(gemm_size, copy_mib, repeats)
    return _measure_cupy(gemm_size, copy_mib, repeats)


def _measure_torch(size: int, copy_mib: int, repeats: int) -> dict[str, Any]:
    import torch

    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        a = torch.randn(size, size, device="cuda")
        b = torch.randn(size, size, device="cuda")
        c = torch.empty_like(a)
        gemm_s = _time_torch(lambda: torch.matmul(a, b, out=c), repeats)
        del a, b, c
        n = copy_mib * 2**20 // 4
        src = torch.empty(n, device="cuda")
        dst = torch.empty_like(src)
        copy_s = _time_torch(lambda: dst.copy_(src), repeats)
        del src, dst
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
        torch.cuda.empty_cache()
    return _rates(size, copy_mib, gemm_s, copy_s, "torch.matmul float32 (TF32 off), Tensor.copy_")


def _time_torch(fn, repeats: int) -> float:
    import torch

    for _ in range(2):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / 1e3 / repeats


def _measure_cupy(size: int, copy_mib: int, repeats: int) -> dict[str, Any]:
    import time

    import cupy

    # CuPy uses TF32 only when CUPY_TF32=1; the default is full float32.
    a = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    b = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    c = cupy.empty_like(a)
    src = cupy.empty(copy_mib * 2**20 // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)

    def time_it(fn) -> float:
        for _ in range(2):
            fn()
        cupy.cuda.get_current_stream().synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        cupy.cuda.get_current_stream().synchronize()
        return (time.perf_counter() - t0) / repeats

    gemm_s = time_it(lambda: cupy.matmul(a, b, out=c))
    copy_s = time_it(lambda: dst.__setitem__(Ellipsis, src))
    del a, b, c, src, dst
    cupy.get_default_memory_pool().free_all_blocks()
    return _rates(size, copy_mib, gemm_s, copy_s, "cupy.matmul float32, array copy")


def _rates(size: int, copy_mib: int, gemm_s: float, copy_s: float, how: str) -> dict[str, Any]:
    return {
        "gemm_size": size,
        "gemm_flops": 2 * size**3 / gemm_s,
        "copy_mib": copy_mib,
        "copy_bandwidth": 2 * copy_mib * 2**20 / copy_s,
        "method": how,
    }


def bound(n: int, d: int, k: int, rates: dict[str, Any]) -> dict[str, float]:
    """Lower bound (seconds) of one Lloyd iteration on ``(n, d, k)`` float32."""
    compute = 2 * n * d * k / rates["gemm_flops"]
    memory = 4 * n * d / rates["copy_bandwidth"]
    return {"compute_s": compute, "memory_s": memory, "roofline_s": max(compute, memory)}


def main(argv: list[str] | None = None) -> None:
    from .problems import PROBLEMS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.roofline", description=__doc__)
    parser.add_argument("--problems", default=None, help="comma-separated (default: GPU problems)")
    args = parser.parse_args(argv)
    if not available():
        raise SystemExit("No CUDA device: the roofline only runs on a GPU.")
    rates = measure()
    names = args.problems.split(",") if args.problems else None
    rows = [
        {"problem": p.name, "n": p.n, "d": p.d, "k": p.k, **bound(p.n, p.d, p.k, rates)}
        for p in PROBLEMS
        if (names is None and "gpu" in p.devices and p.default) or (names and p.name in names)
    ]
    print(json.dumps({"rates": rates, "bounds": rows}, indent=2))


if __name__ == "__main__":
    main()
