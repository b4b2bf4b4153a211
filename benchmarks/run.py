"""Run the benchmark suite and write markdown, JSON and a PNG to ``--out``.

Examples
--------
Full CPU run (about 6 minutes on 2 idle cores)::

    python -m benchmarks.run

Quick run (about a minute), smoke test (seconds), subsets::

    python -m benchmarks.run --quick
    python -m benchmarks.run --quick --problems tiny --figures lloyd,fit --out /tmp/bench
    python -m benchmarks.run --backends xpkmeans-numpy,sklearn-lloyd --problems small

GPU run (picked automatically when a CUDA device is present)::

    python -m benchmarks.run --device gpu --quick

Figures: ``lloyd`` (time per Lloyd iteration from a shared init), ``fit``
(default fit: time and inertia), ``memory`` (peak memory of the Lloyd
iterations), ``scaling`` (time per iteration versus n, log-log PNG; left out when
``--problems`` is given, unless ``--figures`` names it; ``--quick`` leaves
out ``memory`` unless ``--figures`` names it). On a GPU the
roofline is measured too (``--figures`` may name ``roofline`` alone).
Ratios are to scikit-learn's Lloyd, measured in the same run.

Threads are left as every library sets them (all cores) unless ``--threads``
sets them all, which the results record. On a shared machine whose load
exceeds its cores, multi-threaded BLAS / OpenMP calls slow down erratically;
the load average is recorded next to the results.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import environment, libraries, memory, quality, report, roofline
from .libraries import REFERENCE, Library
from .problems import Dataset, Problem, scaling_problems, select_problems
from .timing import Case, interleaved, load_average, release_device_memory, stderr_log as log

FIGURES = ("lloyd", "fit", "memory", "scaling", "roofline")
CPU_WARMUP_ROWS = 20_000
SCALING_EXTRA_ROUNDS = 2  # cheap cases: more rounds steady the log-log slope


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    started = time.perf_counter()
    device = _resolve_device(args.device)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    figures = _csv(args.figures) or [
        f for f in FIGURES
        if not (f == "scaling" and args.problems)  # --problems: only those problems
        and not (f == "memory" and args.quick)  # a fresh process per case: too slow for quick
        and not (f == "roofline" and device != "gpu")
    ]
    bad = sorted(set(figures) - set(FIGURES))
    if bad:
        raise SystemExit(f"Unknown figure(s) {bad}; choose from {list(FIGURES)}.")
    problems = select_problems(_csv(args.problems), device=device, quick=args.quick)
    libs, skipped = libraries.select_libraries(_csv(args.backends), device=device)
    if not libs:
        raise SystemExit(f"No benchmarked library is available: {skipped}")
    for name, reason in skipped.items():
        log(f"skipping {name}: {reason}")
    threads_set = environment.limit_threads(args.threads) if args.threads else None
    budget = args.budget if args.budget is not None else (20.0 if args.quick else 60.0)

    info = environment.machine(device)
    tag = args.tag or _tag(info, args)
    results: dict[str, Any] = {
        "meta": {
            "tag": tag,
            "date": environment.now(),
            "command": "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
            "device": device,
            "machine": info,
            "versions": environment.versions(),
            "git": environment.git_revision(),
            "threads": environment.threads(),
            "rounds": rounds,
            "scaling_rounds": rounds + SCALING_EXTRA_ROUNDS,
            "budget_s": budget,
            "threads_set": threads_set,
            "memory_iter": memory.MEMORY_ITER,
            "quick": args.quick,
            "seed": args.seed,
            "figures": figures,
            "reference": REFERENCE,
            "libraries": {lib.name: lib.notes for lib in libs},
            "skipped": skipped,
            "warmup": "1 iteration on the first "
            f"{CPU_WARMUP_ROWS} rows" if device == "cpu" else "1 iteration on the full problem",
            "seconds": {},
            "load_average": {"start": load_average()},
        },
        "problems": [_problem_json(p) for p in problems],
        "lloyd": [], "fit": [], "memory": [], "scaling": [], "roofline": None,
    }
    log(f"{tag}: {len(problems)} problem(s), libraries {[lib.name for lib in libs]}, "
        f"{rounds} round(s), figures {figures}")

    seconds = results["meta"]["seconds"]
    if device == "gpu" and "roofline" in figures and roofline.available():
        t0 = time.perf_counter()
        log("roofline: GEMM rate and copy bandwidth")
        try:
            rates = roofline.measure()
            results["roofline"] = {
                "rates": rates,
                "bounds": [{"problem": p.name, **roofline.bound(p.n, p.d, p.k, rates)}
                           for p in problems],
            }
        except Exception as exc:  # the benchmarks still run without it
            from .timing import describe

            log(f"roofline FAILED: {describe(exc)}")
            release_device_memory()
        seconds["roofline"] = time.perf_counter() - t0

    for problem in problems:
        here = [lib for lib in libs if _runs_on(lib, problem, device)]
        if not here:
            continue
        t0 = time.perf_counter()
        log(f"{problem.name} {problem.shape} (data {problem.data_bytes / 2**20:.0f} MiB)")
        data = Dataset(problem, device=device, seed=args.seed)
        if "lloyd" in figures:
            log("  Lloyd iterations")
            results["lloyd"] += _lloyd_figure(problem, data, here, rounds, device, budget)
        named = args.problems is not None  # a problem named on the command line runs in full
        fit_libs = [lib for lib in here if named or ("fit", lib.device) not in problem.skip]
        if "fit" in figures and fit_libs:
            log("  default fit")
            results["fit"] += _fit_figure(problem, data, fit_libs, rounds, device, budget,
                                          args.seed, warm="lloyd" not in figures)
        if "memory" in figures and ("memory", device) not in problem.skip:
            log("  peak memory")
            results["memory"] += _memory_figure(problem, data, here, args)
        data.release()
        release_device_memory()
        seconds[problem.name] = time.perf_counter() - t0
        results["meta"]["load_average"][problem.name] = load_average()

    if "scaling" in figures:
        t0 = time.perf_counter()
        wanted = libraries.SCALING_LIBRARIES[device]
        scaling_libs = [lib for lib in libs if lib.name in wanted]
        for problem in scaling_problems(device=device, quick=args.quick):
            log(f"scaling {problem.shape}")
            data = Dataset(problem, device=device, seed=args.seed)
            results["scaling"] += _lloyd_figure(problem, data, scaling_libs,
                                                rounds + SCALING_EXTRA_ROUNDS, device, budget,
                                                evaluate=False)
            data.release()
            release_device_memory()
        seconds["scaling"] = time.perf_counter() - t0
        results["meta"]["load_average"]["scaling"] = load_average()

    results["meta"]["threads_after"] = environment.threads()
    seconds["total"] = time.perf_counter() - started
    paths = report.write(results, Path(args.out))
    log(f"done in {seconds['total']:.0f} s: " + ", ".join(str(p) for p in paths))
    return results


# ------------------------------------------------------------------ figures


def _lloyd_figure(problem: Problem, data: Dataset, libs: list[Library], rounds: int, device: str,
                  budget: float, *, evaluate: bool = True) -> list[dict[str, Any]]:
    """Fixed-iteration Lloyd from the shared init: seconds per iteration."""
    iters = problem.lloyd_iter
    cases = []
    for lib in libs:
        X, init = data.array(lib.array), data.init(lib.array)
        cases.append(Case(
            lib.name,
            run=lambda lib=lib, X=X, init=init: lib.lloyd(X, init, iters),
            data=X,
            warmup=_warmup(lib, X, init, device),
            before=_before(lib, device),
        ))
    measured = interleaved(cases, rounds, budget=budget, log=log)
    rows = []
    for lib in libs:
        m = measured[lib.name]
        row = {**_measured_row(problem, lib, m), "device": lib.device, "expected_iter": iters}
        if m.result is not None:
            row["n_iter"] = m.result.n_iter
            row["per_iter_s"] = m.median / (m.result.n_iter or iters)
            if m.result.n_iter is not None and m.result.n_iter != iters:
                log(f"    NOTE {lib.name}: n_iter_={m.result.n_iter}, expected {iters}")
            if evaluate:
                row["inertia"] = quality.inertia(data.array(data.home), m.result.centers)
        rows.append(row)
        m.result = None
    return rows


def _measured_row(problem: Problem, lib: Library, m: Any) -> dict[str, Any]:
    """The columns every timed figure shares: the problem, the library, the times."""
    return {"problem": problem.name, "n": problem.n, "d": problem.d, "k": problem.k,
            "library": lib.name, **m.to_json()}


def _fit_figure(problem: Problem, data: Dataset, libs: list[Library], rounds: int, device: str,
                budget: float, seed: int, *, warm: bool) -> list[dict[str, Any]]:
    """Each library's default fit, seeded: seconds and the inertia reached;
    for xpkmeans, also the seconds of the initialisation and of the rest."""
    cases = []
    for lib in libs:
        X = data.array(lib.array)
        cases.append(Case(
            lib.name,
            run=lambda lib=lib, X=X: lib.fit(X, problem.k, seed),
            data=X,
            warmup=_warmup(lib, X, data.init(lib.array), device) if warm else None,
            before=_before(lib, device),
        ))
    measured = interleaved(cases, rounds, budget=budget, log=log)
    rows = []
    for lib in libs:
        m = measured[lib.name]
        row = _measured_row(problem, lib, m)
        if m.result is not None:
            row["n_iter"] = m.result.n_iter
            row["inertia"] = quality.inertia(data.array(data.home), m.result.centers)
            if m.result.init_s is not None:  # the split of the last round (its result)
                row["init_s"] = m.result.init_s
                row["after_init_s"] = m.times[-1] - m.result.init_s
        rows.append(row)
        m.result = None
    return rows


def _memory_figure(problem: Problem, data: Dataset, libs: list[Library], args) -> list[dict[str, Any]]:
    rows = []
    for lib in libs:
        if lib.device == "cpu":
            peak = memory.cpu_peak(lib.name, problem, seed=args.seed,
                                   timeout=args.memory_timeout, threads=args.threads)
        else:
            X, init = data.array(lib.array), data.init(lib.array)
            try:
                peak = memory.gpu_peak(lambda: lib.lloyd(X, init, memory.MEMORY_ITER), X, lib.array)
            except Exception as exc:
                from .timing import describe

                peak = {"error": describe(exc)}
                release_device_memory()
        log(f"    {lib.name}: " + (peak.get("error") or
                                   f"peak above data {peak['extra_mib']:.0f} MiB"))
        rows.append({"problem": problem.name, "library": lib.name,
                     "data_mib": problem.data_bytes / 2**20, **peak})
    return rows


def _warmup(lib: Library, X: Any, init: Any, device: str):
    """One iteration; on the CPU on the first rows only (GPU: full shape, for autotuners)."""
    if device == "cpu" and X.shape[0] > CPU_WARMUP_ROWS:
        X = X[:CPU_WARMUP_ROWS]
    return lambda: lib.lloyd(X, init, 1)


def _before(lib: Library, device: str):
    """On a GPU, free what the other allocator (torch / CuPy) holds in its cache."""
    if device != "gpu":
        return None
    keep = "cupy" if lib.array == "cupy" else "torch"
    return lambda: release_device_memory(keep=keep)


def _runs_on(lib: Library, problem: Problem, device: str) -> bool:
    """A CPU library in a GPU run (the reference) only takes the CPU problems;
    sparse problems go only to libraries that take sparse data."""
    if problem.sparse and not lib.sparse:
        return False
    return not (device == "gpu" and lib.device == "cpu" and "cpu" not in problem.devices)


# ------------------------------------------------------------------ command line


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: gpu when a CUDA device is present")
    parser.add_argument("--quick", action="store_true",
                        help="n/10, at most 5 iterations, 1 round, small scaling sizes, "
                        "no memory figure")
    parser.add_argument("--backends", help="comma-separated library names (default: all "
                        f"available for the device): {', '.join(libraries.BY_NAME)}")
    parser.add_argument("--problems", help="comma-separated problem names (default: the "
                        "device's defaults; 'tiny' only when named)")
    parser.add_argument("--figures", help=f"comma-separated subset of {', '.join(FIGURES)}")
    parser.add_argument("--rounds", type=int, help="timed rounds per case (default 3, quick 1)")
    parser.add_argument("--budget", type=float, help="seconds one (figure, problem, library) "
                        "may take in all: slower ones stop repeating after a round (default 60, "
                        "quick 20)")
    parser.add_argument("--threads", type=int, help="set every library's thread pools to this "
                        "(default: leave them as the libraries set them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                        help="output folder (default benchmarks/results)")
    parser.add_argument("--tag", help="file name stem (default: machine kind, e.g. "
                        "cpu-amd-epyc-2c, plus -quick / -subset)")
    parser.add_argument("--memory-timeout", type=float, default=600.0,
                        help="seconds allowed to one memory probe subprocess")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def _csv(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def _resolve_device(choice: str) -> str:
    if choice != "auto":
        return choice
    return "gpu" if environment.gpu_info() is not None else "cpu"


def _tag(info: dict[str, Any], args: argparse.Namespace) -> str:
    tag = environment.machine_tag(info)
    if args.quick:
        tag += "-quick"
    if args.threads:
        tag += f"-threads{args.threads}"
    if args.backends or args.problems or args.figures:
        tag += "-subset"
    return tag


def _problem_json(p: Problem) -> dict[str, Any]:
    return {"name": p.name, "shape": p.shape, "n": p.n, "d": p.d, "k": p.k,
            "lloyd_iter": p.lloyd_iter, "cluster_std": p.cluster_std,
            "data_mib": p.data_bytes / 2**20, "skip": p.skip, "skip_reason": p.skip_reason}


if __name__ == "__main__":
    main()
