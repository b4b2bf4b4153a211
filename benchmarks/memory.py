"""Peak memory of the Lloyd iterations.

What is measured is the call of the per-iteration benchmark (same init for
every library, all n points, ``MEMORY_ITER`` iterations): the same work for
every library, whereas default fits differ (faiss subsamples, for one).

CPU: ``tracemalloc`` does not see BLAS or torch buffers, so each
(library, problem) runs in a fresh Python process (``python -m
benchmarks.memory``) that builds the data, then resets the kernel's
high-water mark (``/proc/self/clear_refs`` = 5; if that is refused, a thread
samples ``VmRSS`` every 2 ms instead), fits, and reports ``VmHWM``: the
peak resident memory, and the peak above what was resident before the fit
(imports plus data).

GPU: in-process, from the allocator: ``torch.cuda.max_memory_allocated``
after ``reset_peak_memory_stats``; for CuPy a memory hook follows the bytes
taken from and returned to its pool. Reported as the peak above the bytes
allocated before the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from xpkmeans._backend import synchronize

KIB = 1024
MEMORY_ITER = 1  # one call's peak: E step, M step and the final labels of the fit
_REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ CPU: subprocess


def cpu_peak(
    library: str, problem: Any, *, seed: int, timeout: float, threads: int | None = None
) -> dict[str, Any]:
    """Run the probe for ``library`` on ``problem`` in a fresh interpreter."""
    cmd = [
        sys.executable, "-m", "benchmarks.memory", library,
        "--n", str(problem.n), "--d", str(problem.d), "--k", str(problem.k),
        "--cluster-std", str(problem.cluster_std), "--seed", str(seed),
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            cmd, cwd=_REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe exited {done.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    msg = f"{field} not in /proc/self/status"
    raise RuntimeError(msg)


class _RssSampler:
    """Fallback peak tracker: samples VmRSS from a thread."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = _status_kib("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _status_kib("VmRSS"))

    def __enter__(self) -> "_RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib("VmRSS"))


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 4 * KIB


def _probe(argv: list[str] | None = None) -> None:
    import gc
    import resource

    from .libraries import BY_NAME
    from .problems import Dataset, Problem

    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("library", choices=sorted(BY_NAME))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--cluster-std", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    lib = BY_NAME[args.library]
    for module in lib.modules:
        __import__(module)
    if args.threads is not None:
        from .environment import limit_threads

        limit_threads(args.threads)
    problem = Problem("probe", args.n, args.d, args.k, 1, ("cpu",), cluster_std=args.cluster_std)
    data = Dataset(problem, device="cpu", seed=args.seed)
    X, init = data.array(lib.array), data.init(lib.array)
    gc.collect()
    baseline = _status_kib("VmRSS")
    if _reset_high_water_mark():
        method = "VmHWM after clear_refs"
        lib.lloyd(X, init, MEMORY_ITER)
        peak = _status_kib("VmHWM")
    else:
        method = "VmRSS sampled every 2 ms"
        with _RssSampler() as sampler:
            lib.lloyd(X, init, MEMORY_ITER)
        peak = sampler.peak
    print(json.dumps({
        "baseline_mib": baseline / KIB,
        "peak_mib": peak / KIB,
        "extra_mib": (peak - baseline) / KIB,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB,
        "method": method,
    }))


# ------------------------------------------------------------------ GPU: allocator stats


def gpu_peak(run: Callable[[], Any], data: Any, array_kind: str) -> dict[str, Any]:
    """Peak device bytes allocated by ``run()`` above those allocated before it."""
    from .timing import release_device_memory

    synchronize(data)
    release_device_memory()
    if array_kind == "cupy":
        import cupy

        hook = _cupy_peak_hook()
        with hook:
            run()
            synchronize(data)
        return {
            "extra_mib": hook.peak / KIB**2,
            "pool_total_mib": cupy.get_default_memory_pool().total_bytes() / KIB**2,
            "method": "CuPy pool memory hook",
        }
    import torch

    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run()
    synchronize(data)
    return {
        "extra_mib": (torch.cuda.max_memory_allocated() - before) / KIB**2,
        "reserved_peak_mib": torch.cuda.max_memory_reserved() / KIB**2,
        "method": "torch.cuda.max_memory_allocated",
    }


def _cupy_peak_hook() -> Any:
    from cupy.cuda import memory_hook

    class PeakHook(memory_hook.MemoryHook):
        """Bytes taken from CuPy's pool since entering (blocks it saw taken), and their peak."""

        name = "XpkmeansBenchPeakHook"

        def __init__(self) -> None:
            self.live: dict[int, int] = {}
            self.used = 0
            self.peak = 0

        def malloc_postprocess(self, **kwargs: Any) -> None:
            if kwargs.get("mem_ptr"):
                self.live[kwargs["pmem_id"]] = kwargs["mem_size"]
                self.used += kwargs["mem_size"]
                self.peak = max(self.peak, self.used)

        def free_postprocess(self, **kwargs: Any) -> None:
            self.used -= self.live.pop(kwargs.get("pmem_id"), 0)

    return PeakHook()


if __name__ == "__main__":
    _probe()
