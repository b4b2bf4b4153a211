"""Dask benchmark: seconds per Lloyd iteration, side by side in one run.

xpkmeans on a distributed ``LocalCluster`` (2 workers x 1 thread by default),
xpkmeans in memory (NumPy, same cores) and dask-ml's KMeans on the same
cluster, all from the same initial centres. Seconds per iteration are
``(fit(max_iter=long) - fit(max_iter=short)) / (long - short)``, so the fixed
costs of a fit (validation, centring, persisting, labels) cancel; medians of
``--repeats`` runs. Also checks that the Dask labels equal NumPy's.

    python benchmarks/dask_bench.py --n 5000000 --d 32 --k 64 --chunks 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xpkmeans
from benchmarks.report import emit


def seconds_per_iteration(fit, short: int, long: int, repeats: int) -> float:
    """Median over repeats of the time of ``long - short`` extra iterations, per iteration."""
    per_iteration = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit(short)
        middle = time.perf_counter()
        fit(long)
        end = time.perf_counter()
        per_iteration.append(((end - middle) - (middle - start)) / (long - short))
    return statistics.median(per_iteration)


def _status_kib(field: str) -> int:
    """This process's ``/proc/self/status`` field (VmRSS, VmHWM: peak RSS), KiB."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1])


def _reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: ``clear_refs`` 5)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _held_bytes(dask_worker) -> int:
    """Bytes of the arrays a worker holds (its chunks of X, persisted labels, ...)."""
    return int(sum(getattr(value, "nbytes", 0) for value in dask_worker.data.values()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--short", type=int, default=2)
    parser.add_argument("--long", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-dask-ml", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    # distributed's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers,
    # which doubled the time of a chunk's kernel (glibc returns and refetches
    # the temporaries' pages on every call): keep glibc's default behaviour.
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": str(1 << 30)})

    rng = np.random.default_rng(0)
    # overlapping blobs: the fits run all their iterations (checked below)
    true_centers = rng.normal(scale=0.5, size=(args.k, args.d)).astype(np.float32)
    X = true_centers[rng.integers(args.k, size=args.n)]
    X += rng.normal(size=X.shape).astype(np.float32)
    init = X[rng.choice(args.n, args.k, replace=False)]
    rows = -(-args.n // args.chunks)

    result = {
        "problem": f"{args.n}x{args.d}, k={args.k}, {args.chunks} chunks of {rows} rows, float32",
        "cluster": f"LocalCluster {args.workers} workers x 1 thread (processes)",
        "load_average_before": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }

    def numpy_fit(max_iter):
        return xpkmeans.KMeans(args.k, init=init, max_iter=max_iter, tol=0).fit(X)

    result["numpy_s_per_iter"] = seconds_per_iteration(numpy_fit, args.short, args.long, args.repeats)
    reference = numpy_fit(args.long)
    if reference.n_iter_ != args.long:
        raise SystemExit(f"the NumPy fit converged in {reference.n_iter_} iterations: use a harder problem")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        warnings.filterwarnings("ignore", message=".*Sending large graph.*")
        # imports and numba's compilation on the workers first: not the data's memory
        small = da.from_array(X[: 10 * args.k], chunks=(5 * args.k, args.d))
        xpkmeans.KMeans(args.k, init=init, max_iter=2, tol=0).fit(small).labels_.compute()
        start_kib = client.run(_status_kib, "VmRSS")
        Xd = da.from_array(X, chunks=(rows, args.d)).persist()
        distributed.wait(Xd)
        client.run(_reset_peak)  # the peak of the fits, not of receiving the data

        def dask_fit(max_iter):
            return xpkmeans.KMeans(args.k, init=init, max_iter=max_iter, tol=0).fit(Xd)

        result["xpkmeans_dask_s_per_iter"] = seconds_per_iteration(
            dask_fit, args.short, args.long, args.repeats
        )
        fitted = dask_fit(args.long)
        labels = fitted.labels_.compute()
        result["labels_equal_numpy"] = float(np.mean(labels == reference.labels_))
        # per worker: peak RSS during the xpkmeans fits above its RSS before the
        # data came, against the bytes of its chunks of X and one chunk's size
        peak_kib = client.run(_status_kib, "VmHWM")
        held = client.run(_held_bytes)
        chunk_mib = rows * args.d * 4 / 2**20
        result["worker_memory"] = {
            w: {
                "peak_above_start_MiB": round((peak_kib[w] - start_kib[w]) / 1024),
                "its_chunks_MiB": round(held[w] / 2**20),
                "chunk_MiB": round(chunk_mib),
                "temporaries_in_chunks": round(
                    ((peak_kib[w] - start_kib[w]) / 1024 - held[w] / 2**20) / chunk_mib, 2),
            }
            for w in peak_kib
        }

        if not args.no_dask_ml:
            from dask_ml.cluster import KMeans as DaskMLKMeans

            def dask_ml_fit(max_iter):
                return DaskMLKMeans(args.k, init=init, max_iter=max_iter, tol=0).fit(Xd)

            result["dask_ml_s_per_iter"] = seconds_per_iteration(
                dask_ml_fit, args.short, args.long, args.repeats
            )
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            cluster.close()

    result["load_average_after"] = os.getloadavg()
    result["ratio_to_numpy"] = result["xpkmeans_dask_s_per_iter"] / result["numpy_s_per_iter"]
    if "dask_ml_s_per_iter" in result:
        result["ratio_to_dask_ml"] = result["xpkmeans_dask_s_per_iter"] / result["dask_ml_s_per_iter"]
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
