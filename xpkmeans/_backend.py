"""What the array API standard lacks, in one place.

This is the only module that names a backend. Everything here has a portable
implementation written against the standard; a backend fast path is allowed
only where ``tests/test_backend.py`` proves it equals the portable one.

- random numbers: drawn on the host by a ``numpy.random.Generator`` and moved
  to the device, so one seed gives one start on every backend;
- ``nearest_center_labels``: the E step on one block of rows (a GEMM fused
  with an argmin, which NumPy pays for per row when there are few clusters);
- ``nearest_two_centers``: the same, with the two smallest scores (Hamerly);
- ``segment_sum``: the per-cluster sum of the M step (a scatter-add);
- ``scatter``: assignment at integer indices, which the standard lacks;
- ``largest_indices``: the top values (the standard has only a full sort);
- ``take_rows``, ``subtract_row``: gathers and copies laid out for the backend;
- ``picks_rows_cheaply``: where data-dependent shapes (``nonzero``) are cheap;
- ``map_blocks``, ``parallel_region``: NumPy's blocks on all CPU cores;
- ``to_numpy``: copy to the host, for convergence tests, plots and files;
- ``row_chunk_size``: how many rows of an ``n x k`` block fit the work budget;
- ``synchronize``: wait for queued device work (benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from array_api_compat import (
    array_namespace,
    device as device_of,
    is_cupy_array,
    is_cupy_namespace,
    is_lazy_array,
    is_numpy_array,
    is_numpy_namespace,
    is_torch_array,
    is_torch_namespace,
)

from ._errors import InputTypeError

__all__ = [
    "array_namespace",
    "device_of",
    "default_float_dtype",
    "from_host",
    "host_rng",
    "is_cpu_device",
    "largest_indices",
    "largest_indices_portable",
    "map_blocks",
    "nearest_center_labels",
    "nearest_center_labels_portable",
    "nearest_two_centers",
    "nearest_two_centers_portable",
    "scatter",
    "scatter_portable",
    "parallel_region",
    "picks_rows_cheaply",
    "row_chunk_size",
    "segment_sum",
    "subtract_row",
    "take_rows",
    "synchronize",
    "to_numpy",
    "widest_float_dtype",
]

# Per-cluster sums on NumPy: the one-hot product costs about (k compares +
# k d multiply-adds) per row, bincount about 4 d: the product wins up to this
# many clusters, and only below 2 d (measured on 2 AVX2 cores).
_ONE_HOT_MAX_SEGMENTS = 32

# E step on NumPy: up to this many clusters, scan the (clusters x rows) scores
# column-wise instead of calling argmin once per row (2x at 16 clusters).
_SCAN_MAX_CLUSTERS = 64

# Elements of one (rows x n_clusters) block. CPU: a few MiB, within the L3
# cache yet large enough to amortise per-call costs (2^19 was the fastest of
# 2^17..2^20 on 2 AVX2 cores); GPU: enough to fill the device in one launch.
_CPU_BLOCK_ELEMENTS = 1 << 19
_GPU_BLOCK_ELEMENTS = 1 << 26
_MIN_BLOCK_ROWS = 256

# Elements per block of a transposing copy (row-major to column-major).
_TRANSPOSE_BLOCK_ELEMENTS = 1 << 17


# ------------------------------------------------------------------ random numbers


def host_rng(random_state: Any = None) -> np.random.Generator:
    """Turn ``random_state`` into a host ``numpy.random.Generator``.

    Accepts None, an integer seed, a ``Generator`` (used as is) or a legacy
    ``RandomState`` (a seed is drawn from it, so it advances, as in scikit-learn).
    """
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        if random_state is not None and int(random_state) < 0:
            msg = f"`random_state` must be a non-negative integer, got {random_state}."
            raise ValueError(msg)
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    msg = (
        "`random_state` must be None, an int, a numpy.random.Generator or a "
        f"numpy.random.RandomState, got {type(random_state).__name__}."
    )
    raise InputTypeError(msg)


def from_host(values: Any, *, xp: Any, device: Any, dtype: Any = None) -> Any:
    """Move host values (NumPy array or scalars) into namespace ``xp`` on ``device``."""
    return xp.asarray(values, dtype=dtype, device=device)


# ------------------------------------------------------------------ host transfer


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any supported backend to a host NumPy array."""
    if is_numpy_array(x):
        return np.asarray(x)
    if is_cupy_array(x):
        return x.get()
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    try:  # CPU libraries such as array_api_strict implement the buffer protocol
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        host = array_namespace(x).__array_namespace_info__().default_device()
        return np.asarray(x.to_device(host))


def is_cpu_device(xp: Any, device: Any) -> bool:
    """True when ``device`` is host memory (not a GPU)."""
    if is_cupy_namespace(xp):
        return False
    if is_torch_namespace(xp):
        return device.type == "cpu"
    return True


def picks_rows_cheaply(x: Any) -> bool:
    """True where picking a data-dependent number of rows (``nonzero``, then
    ``take``) is cheap: eager arrays in host memory. On a GPU it costs a device
    sync; lazy arrays (Dask, JAX) cannot size it before they compute."""
    xp = array_namespace(x)
    return is_cpu_device(xp, device_of(x)) and not is_lazy_array(x)


def synchronize(x: Any) -> None:
    """Block until the device work that produces ``x`` has finished."""
    if is_cupy_array(x):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif is_torch_array(x) and x.device.type == "cuda":
        import torch

        torch.cuda.synchronize(x.device)


# ------------------------------------------------------------------ dtypes and sizes


def default_float_dtype(xp: Any, device: Any) -> Any:
    """The namespace's default real floating dtype on ``device``."""
    return xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]


def widest_float_dtype(xp: Any, device: Any) -> Any:
    """float64 where ``device`` supports it, else float32 (for accurate running sums)."""
    kinds = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    return kinds.get("float64", xp.float32)


def row_chunk_size(n_rows: int, n_cols: int, *, xp: Any, device: Any) -> int:
    """Rows per block so that a ``rows x n_cols`` temporary stays within budget.

    At least ``_MIN_BLOCK_ROWS`` rows (when there are that many), so that very
    wide blocks (silhouette: ``rows x n_samples``) still make efficient products;
    memory stays linear in ``n_cols``.
    """
    budget = _CPU_BLOCK_ELEMENTS if is_cpu_device(xp, device) else _GPU_BLOCK_ELEMENTS
    return max(1, min(n_rows, max(_MIN_BLOCK_ROWS, budget // max(n_cols, 1))))


def subtract_row(X: Any, row: Any) -> Any:
    """``X - row`` (a new array), laid out for the fastest kernels of the backend.

    NumPy: column-major, so that each feature is contiguous for ``bincount``
    in ``segment_sum``; row blocks still go to BLAS without a copy. Written
    block by block on all cores: a transposing copy in one go is 6x slower.
    """
    if not is_numpy_array(X):
        return X - row
    n_rows = X.shape[0]
    out = np.empty(X.shape, dtype=np.result_type(X, row), order="F")
    step = max(_MIN_BLOCK_ROWS, _TRANSPOSE_BLOCK_ELEMENTS // max(X.shape[1], 1))
    map_blocks(
        lambda start: np.subtract(X[start : start + step], row, out=out[start : start + step]),
        range(0, n_rows, step),
        xp=array_namespace(X),
    )
    return out


def take_rows(X: Any, indices: Any, *, like: Any = None) -> Any:
    """``xp.take(X, indices, axis=0)``.

    NumPy: fancy indexing, which gathers rows of a column-major array without
    first copying all of it; column-major output when ``like`` is column-major,
    so that arithmetic between the two runs along contiguous columns.
    """
    if not is_numpy_array(X):
        return array_namespace(X).take(X, indices, axis=0)
    if like is not None and like.ndim == 2 and like.strides[0] < like.strides[1]:
        return np.take(X.T, indices, axis=1).T
    return X[np.asarray(indices)]


# ------------------------------------------------------------------ block parallelism

_pool: ThreadPoolExecutor | None = None


@functools.lru_cache(maxsize=1)
def _n_cores() -> int:
    return os.cpu_count() or 1  # uncached it costs tens of microseconds a call


def _cpu_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_n_cores())
    return _pool


def map_blocks(function: Callable[[Any], Any], blocks: Iterable[Any], *, xp: Any) -> list:
    """``[function(b) for b in blocks]``, run on all CPU cores for NumPy.

    NumPy works on one core outside BLAS but releases the GIL in matmul,
    argmin and element-wise loops, so blocks run in threads: one contiguous
    run of blocks per core, the first in the calling thread (waking a thread
    costs tens of microseconds, as much as a small block). Other libraries
    parallelise (or queue on a device) by themselves and run the blocks in order.
    """
    blocks = list(blocks)
    n_runs = min(len(blocks), _n_cores())
    if n_runs < 2 or not is_numpy_namespace(xp):
        return [function(block) for block in blocks]
    bounds = [len(blocks) * run // n_runs for run in range(n_runs + 1)]
    runs = [blocks[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
    with parallel_region(xp):
        others = [_cpu_pool().submit(_map_run, function, run) for run in runs[1:]]
        results = _map_run(function, runs[0])
        for other in others:
            results.extend(other.result())
    return results


def _map_run(function: Callable[[Any], Any], blocks: list) -> list:
    return [function(block) for block in blocks]


_blas_limited = False  # a parallel_region is open


@contextlib.contextmanager
def parallel_region(xp: Any) -> Iterator[None]:
    """Context for a region that calls ``map_blocks``: one BLAS thread per block.

    As in scikit-learn, BLAS is limited to one thread while blocks run in
    parallel (if threadpoolctl is installed), so the cores are not oversubscribed.
    A whole fit runs in one region: entering costs 40 us (nested ones are
    free), and BLAS's own worker threads, once woken, keep spinning after the
    call and slow whatever runs next on the cores.
    """
    global _blas_limited
    controller = _blas_controller() if is_numpy_namespace(xp) else None
    if controller is None or _blas_limited:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        _blas_limited = True
        try:
            yield
        finally:
            _blas_limited = False


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    # Finding the loaded BLAS libraries takes milliseconds: do it once.
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


# ------------------------------------------------------------------ nearest centre


def nearest_center_labels(X: Any, centers: Any, half_sq_norms: Any) -> Any:
    """For each row ``x`` of ``X``, the first ``j`` minimising
    ``half_sq_norms[j] - x @ centers[j]`` (the nearest centre when
    ``half_sq_norms`` is ``||c_j||^2 / 2``).

    ``X`` is one block of rows: the scores are a ``rows x n_clusters`` temporary.
    """
    if is_numpy_array(X) and centers.shape[0] <= _SCAN_MAX_CLUSTERS:
        return _nearest_center_labels_scan(X, centers, half_sq_norms)
    return nearest_center_labels_portable(X, centers, half_sq_norms)


def nearest_center_labels_portable(X: Any, centers: Any, half_sq_norms: Any) -> Any:
    """Array-API ``nearest_center_labels``: a product, then ``argmin`` per row."""
    xp = array_namespace(X, centers)
    return xp.argmin(half_sq_norms - X @ xp.permute_dims(centers, (1, 0)), axis=1)


def nearest_two_centers(X: Any, centers: Any, half_sq_norms: Any) -> tuple[Any, Any, Any]:
    """``nearest_center_labels``, with the smallest and second smallest score
    of each row (``+inf`` for a single centre). The labels are those of
    ``nearest_center_labels`` on the same rows.
    """
    if is_numpy_array(X) and centers.shape[0] <= _SCAN_MAX_CLUSTERS:
        scores = _scores_by_cluster(X, centers, half_sq_norms)
        labels, best = _first_minimum_by_cluster(scores)
        scores[labels, np.arange(scores.shape[1])] = np.inf
        return labels, best, scores.min(axis=0)
    return nearest_two_centers_portable(X, centers, half_sq_norms)


def nearest_two_centers_portable(X: Any, centers: Any, half_sq_norms: Any) -> tuple[Any, Any, Any]:
    """Array-API ``nearest_two_centers``."""
    xp = array_namespace(X, centers)
    scores = half_sq_norms - X @ xp.permute_dims(centers, (1, 0))
    labels = xp.argmin(scores, axis=1)
    is_nearest = xp.arange(centers.shape[0], device=device_of(X))[None, :] == labels[:, None]
    infinity = xp.asarray(xp.inf, dtype=scores.dtype, device=device_of(X))
    others = xp.where(is_nearest, infinity, scores)
    return labels, xp.min(scores, axis=1), xp.min(others, axis=1)


def _nearest_center_labels_scan(X, centers, half_sq_norms):
    return _first_minimum_by_cluster(_scores_by_cluster(X, centers, half_sq_norms))[0]


def _scores_by_cluster(X, centers, half_sq_norms):
    # NumPy's argmin costs ~50 ns per row whatever its length. Scores laid out
    # (clusters x rows) reduce across clusters with vectorised column passes.
    scores = centers @ X.T
    np.subtract(half_sq_norms[:, None], scores, out=scores)
    return scores


def _first_minimum_by_cluster(scores):
    # The minimum of each column, then the first cluster reaching it, as the
    # largest "reversed rank" among the clusters equal to the minimum.
    n_clusters = scores.shape[0]
    best = scores.min(axis=0)
    reversed_rank = np.arange(n_clusters - 1, -1, -1, dtype=np.uint8)[:, None]
    first = np.multiply(scores == best, reversed_rank).max(axis=0)
    return (n_clusters - 1) - first.astype(np.intp), best


# ------------------------------------------------------------------ scatter


def scatter(values: Any, indices: Any, updates: Any) -> Any:
    """A copy of the 1-D ``values`` with ``values[indices] = updates``
    (``indices`` sorted and distinct, as ``nonzero`` gives them)."""
    if is_numpy_array(values) or is_torch_array(values) or is_cupy_array(values):
        out = values.copy() if not is_torch_array(values) else values.clone()
        out[indices] = updates
        return out
    return scatter_portable(values, indices, updates)


def scatter_portable(values: Any, indices: Any, updates: Any) -> Any:
    """Array-API ``scatter`` (the standard has no integer-array assignment):
    each position finds its slot in ``indices`` by binary search."""
    xp = array_namespace(values)
    if indices.shape[0] == 0:
        return values
    positions = xp.arange(values.shape[0], dtype=indices.dtype, device=device_of(values))
    slot = xp.clip(xp.searchsorted(indices, positions), max=indices.shape[0] - 1)
    hit = xp.take(indices, slot) == positions
    return xp.where(hit, xp.take(updates, slot), values)


# ------------------------------------------------------------------ top values


def largest_indices(values: Any, count: int) -> Any:
    """Indices of the ``count`` largest of the 1-D ``values``, largest first,
    ties by lowest index: ``argsort(values, descending=True, stable=True)[:count]``.

    NumPy: a partition, O(n), then a sort of the ``count`` chosen only.
    """
    count = min(count, values.shape[0])
    if not is_numpy_array(values) or count == 0:
        return largest_indices_portable(values, count)
    threshold = np.partition(values, values.shape[0] - count)[values.shape[0] - count]
    above = np.flatnonzero(values > threshold)
    tied = np.flatnonzero(values == threshold)[: count - above.shape[0]]
    chosen = np.concatenate([above, tied])
    return chosen[np.lexsort((chosen, -values[chosen]))]


def largest_indices_portable(values: Any, count: int) -> Any:
    """Array-API ``largest_indices``: a full stable sort."""
    xp = array_namespace(values)
    return xp.argsort(values, descending=True, stable=True)[:count]


# ------------------------------------------------------------------ segment sum


def segment_sum(
    values: Any, segment_ids: Any, n_segments: int, *, weights: Any = None
) -> tuple[Any, Any]:
    """Sum the (weighted) rows of ``values`` that share a segment id.

    Parameters
    ----------
    values : array of shape (n, d)
    segment_ids : integer array of shape (n,), each in ``[0, n_segments)``
    n_segments : int
    weights : array of shape (n,), optional
        Each row is multiplied by its weight before summing; None means 1.

    Returns
    -------
    sums : array of shape (n_segments, d)
        Per segment, the sum of ``weights[i] * values[i]``.
    totals : array of shape (n_segments,)
        Per segment, the sum of ``weights[i]`` (the row count without weights).
    """
    xp = array_namespace(values, segment_ids)
    if is_numpy_array(values):
        return _segment_sum_numpy(values, segment_ids, n_segments, weights)
    if is_torch_namespace(xp):
        return _segment_sum_torch(values, segment_ids, n_segments, weights)
    if is_cupy_namespace(xp):
        return _segment_sum_cupy(values, segment_ids, n_segments, weights)
    return segment_sum_portable(values, segment_ids, n_segments, weights=weights)


def segment_sum_portable(
    values: Any, segment_ids: Any, n_segments: int, *, weights: Any = None
) -> tuple[Any, Any]:
    """Array-API ``segment_sum``: one-hot (segments x rows) blocks times ``values``."""
    xp = array_namespace(values, segment_ids)
    n, d = values.shape
    device = device_of(values)
    segments = xp.arange(n_segments, device=device)[:, None]
    step = row_chunk_size(n, n_segments, xp=xp, device=device)

    def block_sums(start: int) -> tuple[Any, Any]:
        stop = min(start + step, n)
        one_hot = xp.astype(segment_ids[None, start:stop] == segments, values.dtype)
        if weights is not None:
            one_hot = one_hot * weights[None, start:stop]
        return one_hot @ values[start:stop, :], xp.sum(one_hot, axis=1)

    sums = xp.zeros((n_segments, d), dtype=values.dtype, device=device)
    totals = xp.zeros((n_segments,), dtype=values.dtype, device=device)
    for block_sum, block_total in map_blocks(block_sums, range(0, n, step), xp=xp):
        sums = sums + block_sum
        totals = totals + block_total
    return sums, totals


def _segment_sum_numpy(values, segment_ids, n_segments, weights):
    # Few segments: the one-hot product (BLAS) wins. Many, or few columns:
    # one bincount per column, O(n d) instead of O(n d k); it sums in float64.
    if n_segments <= _ONE_HOT_MAX_SEGMENTS and n_segments < 2 * values.shape[1]:
        return segment_sum_portable(values, segment_ids, n_segments, weights=weights)
    columns = values.T if weights is None else (values * weights[:, None]).T
    xp = array_namespace(values)
    sums = map_blocks(
        lambda column: np.bincount(segment_ids, weights=column, minlength=n_segments),
        columns,
        xp=xp,
    )
    totals = np.bincount(segment_ids, weights=weights, minlength=n_segments)
    return np.stack(sums, axis=1).astype(values.dtype), totals.astype(values.dtype)


def _segment_sum_torch(values, segment_ids, n_segments, weights):
    import torch

    if weights is None:
        weights = torch.ones(values.shape[0], dtype=values.dtype, device=values.device)
        rows = values
    else:
        rows = values * weights[:, None]
    shape = (n_segments, values.shape[1])
    sums = torch.zeros(shape, dtype=values.dtype, device=values.device)
    totals = torch.zeros(n_segments, dtype=values.dtype, device=values.device)
    return sums.index_add_(0, segment_ids, rows), totals.index_add_(0, segment_ids, weights)


def _segment_sum_cupy(values, segment_ids, n_segments, weights):
    import cupy
    import cupyx

    if weights is None:
        weights = cupy.ones(values.shape[0], dtype=values.dtype)
        rows = values
    else:
        rows = values * weights[:, None]
    sums = cupy.zeros((n_segments, values.shape[1]), dtype=values.dtype)
    totals = cupy.zeros(n_segments, dtype=values.dtype)
    cupyx.scatter_add(sums, segment_ids, rows)
    cupyx.scatter_add(totals, segment_ids, weights)
    return sums, totals
