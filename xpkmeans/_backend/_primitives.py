"""The backend primitives: one guard per fast path, then the portable twin."""

from __future__ import annotations

from typing import Any, Callable

from array_api_compat import is_cupy_array, is_numpy_array, is_torch_array

from . import _centered, _gpu, _numba, _numpy, _portable, _sparse, _triton
from ._centered import CenteredRows, is_centered_view
from ._threads import parallel_region
from ._host import (
    allows_data_dependent_shapes, array_namespace, concat_rows, device_of, from_host, host_xp,
    map_row_blocks, row_blocks, to_numpy, widest_float_dtype,
)


def nearest_center_labels(X: Any, centers: Any, half_sq_norms: Any) -> Any:
    """For each row ``x`` of ``X``, the first ``j`` minimising
    ``half_sq_norms[j] - x @ centers[j]`` (the nearest centre when
    ``half_sq_norms`` is ``||c_j||^2 / 2``).

    ``X`` is one block of rows: the scores are a ``rows x n_clusters`` temporary.
    """
    if is_numpy_array(X) and centers.shape[0] <= _numpy.SCAN_MAX_CLUSTERS:
        return _numpy.nearest_center_labels(X, centers, half_sq_norms)
    return _portable.nearest_center_labels(X, centers, half_sq_norms)


def nearest_two_centers(X: Any, centers: Any, half_sq_norms: Any) -> tuple[Any, Any, Any]:
    """``nearest_center_labels``, with the smallest and second smallest score
    of each row (``+inf`` for a single centre). The labels are those of
    ``nearest_center_labels`` on the same rows.
    """
    if _triton.handles(X, centers):
        return _triton.nearest_two_centers(X, centers, half_sq_norms)
    if _numba.handles(X):
        return _numba.nearest_two_centers(X, centers, half_sq_norms)
    if is_numpy_array(X) and centers.shape[0] <= _numpy.SCAN_MAX_CLUSTERS:
        return _numpy.nearest_two_centers(X, centers, half_sq_norms)
    return _portable.nearest_two_centers(X, centers, half_sq_norms)


def scatter(values: Any, indices: Any, updates: Any) -> Any:
    """A copy of the 1-D ``values`` with ``values[indices] = updates``
    (``indices`` sorted and distinct, as ``nonzero`` gives them)."""
    if is_numpy_array(values):
        return _numpy.scatter(values, indices, updates)
    if is_torch_array(values) or is_cupy_array(values):
        return _gpu.scatter(values, indices, updates)
    return _portable.scatter(values, indices, updates)


def largest_indices(values: Any, count: int) -> Any:
    """Indices of the ``count`` largest of the 1-D ``values``, largest first,
    ties by lowest index: ``argsort(values, descending=True, stable=True)[:count]``."""
    count = min(count, values.shape[0])
    if is_numpy_array(values) and count > 0:
        return _numpy.largest_indices(values, count)
    if is_torch_array(values) and values.device.type == "cpu" and count > 0:
        import torch  # its memory, read as NumPy's: a partition instead of a full sort

        return torch.from_numpy(_numpy.largest_indices(values.detach().numpy(), count))
    return _portable.largest_indices(values, count)


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
    if is_numpy_array(values):
        return _numpy.segment_sum(values, segment_ids, n_segments, weights)
    if is_torch_array(values):
        return _gpu.segment_sum_torch(values, segment_ids, n_segments, weights)
    if is_cupy_array(values):
        return _gpu.segment_sum_cupy(values, segment_ids, n_segments, weights)
    return _portable.segment_sum(values, segment_ids, n_segments, weights=weights)


def segment_count(segment_ids: Any, n_segments: int) -> Any:
    """How many of ``segment_ids`` fall in each of ``n_segments`` segments:
    an int64 array of shape (n_segments,), as ``numpy.bincount``."""
    if is_numpy_array(segment_ids):
        return _numpy.segment_count(segment_ids, n_segments)
    if is_torch_array(segment_ids) or is_cupy_array(segment_ids):
        return _gpu.segment_count(segment_ids, n_segments)
    return _portable.segment_count(segment_ids, n_segments)


def unique_inverse(values: Any) -> tuple[Any, Any]:
    """``xp.unique_inverse`` of a 1-D array: its distinct values, sorted, and the
    index of each value among them. Through the host where the namespace cannot
    size arrays by their values."""
    xp = array_namespace(values)
    if allows_data_dependent_shapes(xp):
        return xp.unique_inverse(values)
    distinct, codes = host_xp.unique_inverse(to_numpy(values))
    device = device_of(values)
    return from_host(distinct, xp=xp, device=device), from_host(codes, xp=xp, device=device)


def subtract_row(X: Any, row: Any) -> Any:
    """``X - row`` (a new array), laid out for the fastest kernels of the backend
    (NumPy: column-major, so that ``segment_sum`` reads contiguous features)."""
    if is_numpy_array(X):
        return _numpy.subtract_row(X, row)
    if _numba.handles(X):  # torch CPU: NumPy's copy of its memory, read by the same kernels
        return _numba.subtract_row(X, row)
    return X - row


def column_sums(X: Any) -> Any:
    """The sum of each column of the dense ``X``, in the widest float of its
    device, per row block, the blocks' sums added in order (as accurate as a
    float64 sum, whatever the blocks)."""
    xp = array_namespace(X)
    device = device_of(X)
    wide = widest_float_dtype(xp, device)
    if is_numpy_array(X):
        block_sums = _numpy.column_sums_of_block
    elif _numba.handles(X):  # torch CPU: NumPy's sums of its memory, so the NumPy fit's mean
        wide_host = to_numpy(xp.empty((0,), dtype=wide)).dtype

        def block_sums(block: Any, dtype: Any) -> Any:
            return xp.asarray(_numpy.column_sums_of_block(to_numpy(block), wide_host),
                              device=device)
    else:
        block_sums = _portable.column_sums_of_block
    # BLAS on one thread, as in a fit, also for a single block (a Dask chunk,
    # a metric's X): a product with ones on two OpenBLAS threads rounds
    # otherwise, and the mean, and every result after it, had depended on
    # the BLAS threads in effect (threadpool_limits, Dask's scheduler, a fit
    # in another thread)
    with parallel_region(xp, compiled=_numba.handles(X)):  # torch CPU: NumPy's BLAS
        blocks = map_row_blocks(
            lambda rows: block_sums(X[rows, :], wide), X.shape[0], X.shape[1], xp=xp,
            device=device,
        )
    total = blocks[0]
    for block in blocks[1:]:
        total = total + block
    return total


def all_finite(X: Any) -> bool:
    """Whether every value of the dense 2-D ``X`` is finite, in row blocks
    (some libraries' ``isfinite`` makes copies of X). Torch CPU float
    tensors that the compiled kernels take are checked as NumPy arrays of
    their memory, on all cores: torch's ``isfinite`` took 10x NumPy's
    (5 ms against 0.5 on 100k x 32 float32, most of a small fit's checks)."""
    if _numba.handles(X) and not is_numpy_array(X):
        return all_finite(_numba.host_view(X))
    xp = array_namespace(X)
    finite = map_row_blocks(
        lambda rows: xp.all(xp.isfinite(X[rows, :])), X.shape[0], X.shape[1], xp=xp,
        device=device_of(X),
    )
    return bool(xp.all(xp.stack(finite)))


def centered(X: Any, mean: Any, *, view: bool | None = None) -> Any:
    """``X - mean`` (``mean``: a row) as the passes of the backend read it best:
    a ``CenteredRows`` view where the fused pass centres each tile as it loads
    it (CUDA: no second copy of X in the GPU's memory), else a copy
    (``subtract_row``). ``view=True`` asks for the view (a chunk of a Dask
    task: never a chunk-sized copy)."""
    if view is None:
        view = _centered.force_views
    if view or (view is None and _triton.handles(X, mean)):
        return CenteredRows(X, mean)
    return subtract_row(X, mean)


def select_rows(X: Any, indices: Any) -> Any:
    """The rows ``indices`` of X, of X's own kind: a sparse matrix stays
    sparse (a mini-batch of a TF-IDF matrix), other X as ``take_rows``."""
    if _sparse.is_sparse(X):
        return _sparse.select_rows(X, indices)
    return take_rows(X, indices)


def take_rows(X: Any, indices: Any, *, like: Any = None) -> Any:
    """``xp.take(X, indices, axis=0)`` for non-negative ``indices``, laid out
    like ``like`` where that matters (dense rows, also of a sparse matrix or
    centred rows of a ``CenteredRows``)."""
    if is_centered_view(X):
        return take_rows(X.data, indices, like=like) - X.mean
    if _sparse.is_sparse(X):
        return _sparse.take_rows(X, indices)
    if is_numpy_array(X):
        return _numpy.take_rows(X, indices, like)
    if is_torch_array(X):  # array-api-compat's take adds a pass for negative indices
        return X.index_select(0, indices)
    return array_namespace(X).take(X, indices, axis=0)


# ------------------------------------------------------------------ whole passes over X
# One call per pass over all rows: a compiled kernel (Triton on CUDA, numba on
# the CPU) does the pass in one launch; the portable pass goes in row blocks.
# A ``CenteredRows`` goes to the Triton pass, which centres each tile as it
# loads it, or in centred row blocks.


def row_block(X: Any, rows: slice) -> Any:
    """``X[rows, :]``, also of a sparse matrix (then sparse: its products with
    dense arrays are the library's sparse products) or a ``CenteredRows``
    (then the centred rows)."""
    if is_centered_view(X):
        return X.rows(rows)
    if _sparse.is_sparse(X):
        return _sparse.row_block(X, rows)
    return X[rows, :]


def block_width(X: Any, width: int) -> int:
    """Columns of the temporaries of one row block of ``X`` whose products are
    ``width`` wide: a ``CenteredRows``' block is itself a copy of its rows."""
    return width + (X.shape[1] if is_centered_view(X) else 0)


def cumulative_sum(values: Any, dtype: Any) -> Any:
    """The running sum of the 1-D ``values`` in ``dtype``, added left to
    right (as NumPy's ``cumsum``; compiled where numba takes the array)."""
    wide = str(getattr(dtype, "__name__", dtype)).endswith("float64")  # NumPy's type, or a dtype
    if wide and _numba.handles_vector(values):
        return _numba.cumulative_sum(values)
    xp = array_namespace(values)
    if is_torch_array(values) and _gpu.refuses_float_cumsum(values):
        # torch.use_deterministic_algorithms(True): torch.cumsum raises on CUDA floats
        return _gpu.cumulative_sum_by_doubling(xp.astype(values, dtype))
    return xp.cumulative_sum(xp.astype(values, dtype))


def sq_row_norms(X: Any) -> Any:
    """``||x||^2`` of each row of ``X``, in row blocks (no copy of X)."""
    xp = array_namespace(X)
    if _sparse.is_sparse(X):
        return _sparse.sq_row_norms(X, xp=xp)

    def block(rows: slice) -> Any:
        values = row_block(X, rows)
        return xp.sum(values * values, axis=1)

    blocks = map_row_blocks(block, X.shape[0], X.shape[1], xp=xp, device=device_of(X))
    return concat_rows(blocks, xp=xp)


def sq_distances_to_assigned(X: Any, centers: Any, labels: Any) -> Any:
    """``||x_i - centers[labels_i]||^2`` of each row of ``X`` (dense, sparse
    or a ``CenteredRows``), computed directly (no expansion), in row blocks;
    on CUDA one pass with nothing the size of a block of X."""
    if _triton.handles(X, centers):
        return _triton.sq_distances_to_assigned(X, centers, labels)
    xp = array_namespace(X, centers)
    if _sparse.is_sparse(X):
        return _sparse.sq_distances_to_assigned(X, centers, labels, xp=xp)
    compiled = _numba.takes_sq_distances(X, centers, labels)
    # the gathered centres and their difference, unless compiled (numba)
    temporaries = 1 if compiled else 2
    blocks = map_row_blocks(
        lambda rows: block_sq_distances_to_assigned(row_block(X, rows), centers, labels[rows]),
        X.shape[0], block_width(X, temporaries * X.shape[1]), xp=xp, device=device_of(X),
        compiled=compiled,
    )
    return concat_rows(blocks, xp=xp)


def distances_to_centers(X: Any, centers: Any) -> Any:
    """Euclidean distance of each row of ``X`` (dense, sparse or a
    ``CenteredRows``) to each centre: the n x k matrix that ``transform``
    returns, in X's dtype. Row blocks go by expansion in the widest float of
    the device, as scikit-learn upcasts float32: in float32, a point at 1e-3
    of the data's scale from a centre got its distance 4% wrong."""
    xp = array_namespace(X, centers)
    device = device_of(X)
    wide = widest_float_dtype(xp, device)
    centers = xp.astype(centers, wide)
    c_sq = xp.sum(centers * centers, axis=1)[None, :]
    if _sparse.is_sparse(X):  # laid out once for all blocks (a copy of k x d)
        centers_t = _sparse.transposed(centers, xp=xp)
    else:
        centers_t = xp.permute_dims(centers, (1, 0))

    def block(rows: slice) -> Any:
        values = row_block(X, rows)
        if _sparse.is_sparse(values):
            sq = _sparse.sq_distances_to_all(_sparse.with_dtype(values, wide), centers_t, c_sq,
                                             xp=xp)
        else:
            values = xp.astype(values, wide)
            sq = xp.sum(values * values, axis=1)[:, None] - 2 * (values @ centers_t) + c_sq
        return xp.astype(xp.sqrt(xp.clip(sq, min=0.0)), X.dtype)

    width = block_width(X, 2 * (X.shape[1] + centers.shape[0]))  # wide temporaries
    return concat_rows(map_row_blocks(block, X.shape[0], width, xp=xp, device=device), xp=xp)


def blocks_run_compiled(X: Any) -> bool:
    """True where the block primitives (``nearest_two_centers``,
    ``block_sq_distances_to_assigned``) run compiled host code on blocks of
    ``X``, one core a block: run them with ``map_row_blocks(compiled=True)``
    to use all cores (torch CPU tensors too, not only NumPy arrays)."""
    return _numba.handles(X)


def block_sq_distances_to_assigned(rows: Any, centers: Any, labels: Any) -> Any:
    """``sq_distances_to_assigned`` of one dense block; no threads of its own."""
    if _numba.takes_sq_distances(rows, centers, labels):
        return _numba.sq_distances_to_assigned(rows, centers, labels)
    xp = array_namespace(rows, centers)
    diff = rows - take_rows(centers, labels, like=rows)
    return xp.sum(diff * diff, axis=1)


def run_steps(
    step: Callable[[tuple], tuple], state: tuple, count: int, *, reads: tuple = ()
) -> tuple:
    """``state = step(state)``, ``count`` times; the final state.

    ``step`` must never wait for the device (no host copy, no shape that
    depends on the data). Torch CUDA states replay it from one captured CUDA
    graph: one launch per step instead of one per operation (on an H200,
    greedy k-means++ of 1000 centres on 20k x 128 took 0.07 s against
    0.43 s eagerly, same centres); ``XPKMEANS_CUDA_GRAPHS=0`` turns it off.
    ``reads``: the arrays that ``step`` reads besides its state (sparse
    data runs eagerly, see ``_gpu.graphs_handle``).
    """
    if count > 1 and _gpu.graphs_handle(state, reads):
        return _gpu.run_steps_in_graph(step, state, count)
    for _ in range(count):
        state = step(state)
    return state


def sums_in_pass(X: Any) -> bool:
    """True where ``nearest_centers_and_sums`` adds up the sums in the same
    compiled pass that finds the labels, for almost nothing: there, summing
    only the points that moved (``_lloyd._cluster_sums``) saves no time."""
    return _numba.handles_pass(X)


def nearest_centers(X: Any, centers: Any) -> Any:
    """Index of the nearest centre of each row of ``X`` (ties: lowest index),
    by the scores ``||c||^2 / 2 - x . c``; rows go in blocks."""
    if _triton.handles(X, centers):
        return _triton.nearest_centers(X, centers)
    if _numba.handles_pass(X):
        return _numba.dense_pass(X, centers)[0]
    if _numba.handles_sparse(X):
        return _numba.csr_pass(X, centers)[0]
    xp = array_namespace(X, centers)
    if _sparse.is_sparse(X):
        labels = _sparse.nearest_centers(X, centers, xp=xp)
    else:
        half_sq_norms = 0.5 * xp.sum(centers * centers, axis=1)
        blocks = map_row_blocks(
            lambda rows: nearest_center_labels(row_block(X, rows), centers, half_sq_norms),
            X.shape[0], block_width(X, centers.shape[0]), xp=xp, device=device_of(X),
        )
        labels = concat_rows(blocks, xp=xp)
    # a matrix product may round equal centres' scores apart (by their column)
    return xp.take(first_equal_rows(centers), labels)


def center_half_sq_norms(X: Any, centers: Any) -> Any:
    """``||c||^2 / 2`` of each centre, rounded as ``nearest_centers(X, centers)``
    rounds them where it runs the compiled CPU pass, so that block scores made
    with them (``nearest_two_centers``) are that pass's own, bit for bit (on
    torch CPU, torch's sum had rounded some apart from the compiled pass's,
    and Hamerly's recomputed points had gone to the later of two centres
    exactly as far)."""
    if _numba.handles_pass(X):
        return _numba.half_sq_norms(X, centers)
    xp = array_namespace(X, centers)
    return 0.5 * xp.sum(centers * centers, axis=1)


def first_equal_rows(rows: Any) -> Any:
    """For each row, the index of the first row equal to it (itself where none
    comes before), in fixed shapes: the rows ordered by a projection (ties by
    index), then each compared with the one before. Equal rows project alike;
    distinct rows sharing a projection between two equal ones, which a generic
    projection makes all but impossible, would leave those two apart (so would
    projections that overflow: values whose squares the fit refuses anyway)."""
    xp = array_namespace(rows)
    n, d = rows.shape
    device = device_of(rows)
    if n == 0:
        return xp.arange(0, device=device)
    wide = widest_float_dtype(xp, device)
    weights = xp.sqrt(xp.arange(2, d + 2, dtype=wide, device=device))
    order = xp.argsort(xp.sum(xp.astype(rows, wide, copy=False) * weights, axis=1), stable=True)
    ordered = xp.take(rows, order, axis=0)
    repeats = xp.all(ordered[1:, :] == ordered[:-1, :], axis=1)
    starts_group = xp.concat([xp.ones((1,), dtype=xp.bool, device=device), ~repeats])
    group = xp.cumulative_sum(xp.astype(starts_group, xp.int64)) - 1
    sizes = segment_count(group, n)
    group_start = xp.cumulative_sum(sizes) - sizes
    first = xp.take(order, xp.take(group_start, group))
    return xp.take(first, xp.argsort(order))


def nearest_centers_and_sums(
    X: Any, centers: Any, *, weights: Any = None
) -> tuple[Any, Any, Any]:
    """One Lloyd pass: the E step and the sums of the M step.

    Returns
    -------
    labels : integer array of shape (n_samples,)
        ``nearest_centers(X, centers)``.
    sums : array of shape (n_clusters, n_features)
        Per cluster, the sum of ``weights[i] * X[i]`` over its points, in the
        widest float of the device.
    totals : array of shape (n_clusters,)
        Per cluster, the sum of the weights (the count without weights), in
        the widest float of the device.
    """
    if _triton.handles(X, centers):
        return _triton.nearest_centers_and_sums(X, centers, weights=weights)
    if _numba.handles_pass(X) or _numba.handles_sparse(X):
        fused = _numba.csr_pass if _numba.handles_sparse(X) else _numba.dense_pass
        labels, _, _, sums, totals = fused(X, centers, weights=weights, want_sums=True)
        return labels, sums, totals
    labels = nearest_centers(X, centers)
    return (labels, *sum_by_cluster(X, labels, centers.shape[0], weights=weights))


def closest_with_candidates(
    X: Any, x_sq_norms: Any, weights: Any, closest_sq: Any, rows_x: Any, rows_sq_norms: Any
) -> tuple[list, Any]:
    """Greedy k-means++'s pass over X for its candidate centres ``rows_x``
    (squared norms ``rows_sq_norms``): for each point and candidate, the
    squared distance to the nearest centre if the candidate joined,
    ``min(closest_sq, ||x||^2 + ||c||^2 - 2 x . c)`` (clipped at 0), and per
    candidate the potential, the ``weights``-weighted sum of those. The
    vectors come in X's dtype (the fast paths compute in it; the portable
    blocks would promote a wider one).

    Returns
    -------
    blocks : list of arrays of shape (rows, n_candidates)
        Concatenated, the n_samples x n_candidates distances (the caller keeps
        one column).
    potentials : array of shape (n_candidates,)
    """
    if _triton.handles(X, rows_x):
        return _triton.closest_with_candidates(X, x_sq_norms, weights, closest_sq, rows_x,
                                               rows_sq_norms)
    if _numba.handles_pass(X):
        distances, potentials = _numba.closest_with_candidates(
            X, x_sq_norms, weights, closest_sq, rows_x, rows_sq_norms)
        return [distances], potentials
    xp = array_namespace(X)
    rows_sq_norms = rows_sq_norms[None, :]
    # exact: a power of two; sparse X: row-major, as the sparse product reads it
    rows_t = _sparse.transposed(rows_x, xp=xp) if _sparse.is_sparse(X) else xp.permute_dims(
        rows_x, (1, 0))
    minus_twice_rows_t = rows_t * -2
    fold = _numpy.fold_candidates if is_numpy_array(x_sq_norms) else _portable.fold_candidates

    def block(rows: slice) -> tuple[Any, Any]:
        # sparse X: row_block keeps it sparse, and the product is the library's
        cross = row_block(X, rows) @ minus_twice_rows_t
        nearest = fold(cross, x_sq_norms[rows, None], rows_sq_norms, closest_sq[rows, None])
        return nearest, weights[rows] @ nearest

    width = block_width(X, 4 * rows_x.shape[0])
    blocks = map_row_blocks(block, X.shape[0], width, xp=xp, device=device_of(X))
    potentials = blocks[0][1]
    for _, partial in blocks[1:]:
        potentials = potentials + partial
    return [b[0] for b in blocks], potentials


def sum_by_cluster(
    X: Any, labels: Any, n_clusters: int, *, weights: Any = None
) -> tuple[Any, Any]:
    """The sums and totals of ``nearest_centers_and_sums`` for given labels,
    in the same order of additions where the pass is compiled (so that an
    injected E step gets the centres of Lloyd's, bit for bit)."""
    if _numba.handles_pass(X):
        return _numba.sum_by_cluster(X, labels, n_clusters, weights=weights)
    xp = array_namespace(X, labels)
    if _sparse.is_sparse(X):
        accumulate = widest_float_dtype(xp, device_of(X))
        return _sparse.sum_by_cluster(
            X, labels, n_clusters, weights=weights, xp=xp, accumulate=accumulate
        )
    accumulate = widest_float_dtype(xp, device_of(X))
    if X.dtype == accumulate and not is_centered_view(X):
        return segment_sum(X, labels, n_clusters, weights=weights)
    # block by block, each block added in ``accumulate``, as the compiled
    # pass does (float32 sums of many rows drift from the mean)
    sums = xp.zeros((n_clusters, X.shape[1]), dtype=accumulate, device=device_of(X))
    totals = xp.zeros((n_clusters,), dtype=accumulate, device=device_of(X))
    for rows in row_blocks(X.shape[0], X.shape[1], xp=xp, device=device_of(X)):
        block_sums, block_totals = segment_sum(
            xp.astype(row_block(X, rows), accumulate, copy=False), labels[rows], n_clusters,
            weights=None if weights is None else xp.astype(weights[rows], accumulate, copy=False),
        )
        sums, totals = sums + block_sums, totals + block_totals
    return sums, totals
