"""MiniBatchKMeans against scikit-learn's: time per step and final inertia at
the same batch size and number of steps (early stopping off), side by side
in one run, medians over seeds. scikit-learn runs with its OpenMP threads
(all cores) and with one thread.

    python benchmarks/minibatch_bench.py --n 200000 --d 32 --k 64 --batch 1024 --steps 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xpkmeans
from benchmarks.report import emit


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from sklearn.cluster import MiniBatchKMeans
    from sklearn.datasets import make_blobs
    from threadpoolctl import threadpool_limits

    X = make_blobs(args.n, args.d, centers=args.k, cluster_std=2.0, random_state=0)[0]
    X = X.astype(np.float32)
    max_iter = max(2, args.steps * args.batch // args.n)
    steps = max_iter * args.n // args.batch
    params = {"batch_size": args.batch, "max_iter": max_iter, "max_no_improvement": None,
              "compute_labels": False}

    def timed(make, seed):
        # fixed costs (validation, initialisation) cancel: (long - short fit) / extra steps
        start = time.perf_counter()
        short = make(max_iter=1, random_state=seed).fit(X)
        middle = time.perf_counter()
        fitted = make(max_iter=max_iter, random_state=seed).fit(X)
        end = time.perf_counter()
        extra = fitted.n_steps_ - short.n_steps_
        return fitted, ((end - middle) - (middle - start)) / extra

    libraries = {
        "xpkmeans": lambda **kw: xpkmeans.MiniBatchKMeans(args.k, **{**params, **kw}),
        "sklearn": lambda **kw: MiniBatchKMeans(args.k, **{**params, **kw}),
    }
    result = {"problem": f"{args.n}x{args.d} float32, k={args.k}, batch {args.batch}, "
                         f"{steps} steps", "load_average_before": os.getloadavg()}
    for name, make in libraries.items():
        for threads in ([None] if name == "xpkmeans" else [None, 1]):
            label = name if threads is None else f"{name}-1-thread"
            per_step, inertia = [], []
            for seed in range(args.seeds):
                with threadpool_limits(threads, user_api="openmp"):
                    fitted, seconds = timed(make, seed)
                assert fitted.n_steps_ == steps
                per_step.append(seconds)
                inertia.append(_inertia(X, fitted.cluster_centers_))
            result[f"{label}_ms_per_step"] = 1e3 * statistics.median(per_step)
            result[f"{label}_inertia"] = statistics.median(inertia)
    result["inertia_ratio"] = result["xpkmeans_inertia"] / result["sklearn_inertia"]
    result["step_time_ratio"] = result["xpkmeans_ms_per_step"] / result["sklearn_ms_per_step"]
    result["load_average_after"] = os.getloadavg()
    emit(result, args.out)
    return result


def _inertia(X: np.ndarray, centers: np.ndarray) -> float:
    """Inertia of X on the centres, by the same code for both libraries."""
    centers = np.asarray(centers, dtype=np.float32)
    return float(xpkmeans.e_step(X, centers)[1])


if __name__ == "__main__":
    main()
