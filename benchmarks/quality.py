"""The one inertia evaluation applied to the centres of every library.

Libraries compute (and report) their inertia differently, some not at all;
here each library's final centres are scored the same way: every point is
assigned to its nearest centre (float32 GEMM, ``argmin ||c||^2/2 - x.c``)
and the squared distances to it are summed exactly in float64. Runs on the
device of ``X`` (NumPy, torch or CuPy), in row blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device as device_of

from xpkmeans._backend import to_numpy

_CPU_BLOCK = 1 << 22  # elements of one (rows x k) block
_GPU_BLOCK = 1 << 27


def inertia(X: Any, centers: Any) -> float:
    """Sum over the rows of ``X`` of the squared distance to the nearest of ``centers``."""
    from xpkmeans._backend import is_sparse

    if is_sparse(X):
        return _sparse_inertia(X, centers)
    xp = array_namespace(X)
    dev = device_of(X)
    host = np.asarray(to_numpy(centers), dtype=np.float64)
    C = xp.asarray(host.astype(np.float32), device=dev)
    C64 = xp.asarray(host, dtype=xp.float64, device=dev)
    half_sq = 0.5 * xp.sum(C * C, axis=1)
    Ct = xp.permute_dims(C, (1, 0))
    n, k = X.shape[0], C.shape[0]
    budget = _GPU_BLOCK if "cuda" in str(dev).lower() else _CPU_BLOCK
    step = max(1, min(n, budget // max(k, 1)))
    total = 0.0
    for start in range(0, n, step):
        block = X[start : start + step, :]
        labels = xp.argmin(half_sq - block @ Ct, axis=1)
        diff = xp.astype(block, xp.float64) - xp.take(C64, labels, axis=0)
        total += float(xp.sum(diff * diff))
    return total


def _sparse_inertia(X: Any, centers: Any) -> float:
    """``inertia`` of a sparse matrix: xpkmeans's E step, distances in float64."""
    from xpkmeans._backend import nearest_centers, sparse

    xp = sparse.namespace(X)
    host = np.asarray(to_numpy(centers), dtype=np.float64)
    dev = sparse.device(X)
    labels = nearest_centers(X, xp.asarray(host.astype(np.float32), device=dev))
    C64 = xp.asarray(host, dtype=xp.float64, device=dev)
    return float(xp.sum(sparse.sq_distances_to_assigned(X, C64, labels, xp=xp)))
