"""Our hand-written primitives against array-api-extra's, side by side.

``python -m benchmarks.array_api_extra``: medians of 7 runs, on NumPy and on
array_api_strict (where the portable twins run). A primitive of ours is kept
only where it is at least as fast as array-api-extra's and has the semantics
the algorithm needs (results in benchmarks/results/array-api-extra.md).
"""

from __future__ import annotations

import os
import time

import numpy as np


def _median_seconds(function, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    import array_api_compat.numpy as numpy_xp
    import array_api_extra as xpx
    import array_api_strict

    from xpkmeans._backend import _numpy, _portable

    rng = np.random.default_rng(0)
    n, n_set, k, rows = 200_000, 5_000, 16, 32_768
    print(f"load average {os.getloadavg()[0]:.1f}; n={n}, {n_set} positions set, "
          f"one-hot {k} x {rows}; ms, median of 7")
    for name, xp in (("numpy", numpy_xp), ("array_api_strict", array_api_strict)):
        values = xp.asarray(rng.standard_normal(n))
        indices = xp.asarray(np.sort(rng.choice(n, n_set, replace=False)))
        updates = xp.asarray(rng.standard_normal(n_set))
        ours = _numpy.scatter if name == "numpy" else _portable.scatter
        row = {"scatter (ours)": _median_seconds(lambda: ours(values, indices, updates))}
        try:
            row["xpx.at(...).set(copy=True)"] = _median_seconds(
                lambda: xpx.at(values, indices).set(updates, copy=True))
        except IndexError as e:  # array_api_strict: no integer-array __setitem__
            row["xpx.at(...).set(copy=True)"] = f"fails ({e})"
        largest = _numpy.largest_indices if name == "numpy" else _portable.largest_indices
        row["largest 10 (ours, sorted, ties by index)"] = _median_seconds(
            lambda: largest(values, 10))
        row["xpx.argpartition (top 10, unsorted)"] = _median_seconds(
            lambda: xpx.argpartition(values, n - 10)[n - 10:])
        ids = xp.asarray(rng.integers(0, k, rows))
        segments = xp.arange(k)[:, None]
        row["one-hot k x rows (ours)"] = _median_seconds(
            lambda: xp.astype(ids[None, :] == segments, xp.float64))
        row["xpx.one_hot, transposed"] = _median_seconds(
            lambda: xp.permute_dims(xpx.one_hot(ids, k, dtype=xp.float64), (1, 0)))
        row["one-hot rows x k (ours)"] = _median_seconds(
            lambda: xp.astype(ids[:, None] == xp.arange(k)[None, :], xp.float64))
        row["xpx.one_hot"] = _median_seconds(lambda: xpx.one_hot(ids, k, dtype=xp.float64))
        for what, seconds in row.items():
            shown = seconds if isinstance(seconds, str) else f"{seconds * 1e3:.3f}"
            print(f"{name:17s} {what:42s} {shown}")


if __name__ == "__main__":
    main()
