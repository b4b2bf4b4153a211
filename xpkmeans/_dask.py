"""KMeans on Dask arrays: the EM runs inside Dask.

X (chunked along rows, columns whole) is validated lazily and persisted
once; it is centred chunk by chunk inside each task that reads it (a
chunk-sized temporary, never a centred copy of X). Each Lloyd iteration is one compute: one task per chunk runs
xpkmeans's own fused kernel (``nearest_centers_and_sums``) on the chunk, in
the chunk's own namespace (NumPy or CuPy), and returns a ``(k, d + 1)``
partial (sums | totals); a tree sum combines them and only those ``k x (d+1)``
numbers reach the client, which computes the new centres, the shift and the
empty clusters. Empty clusters cost one more compute: each chunk proposes its
``k`` farthest points and the client relocates as in memory.

The client never holds X; ``labels_`` and ``predict`` results are Dask arrays.
Dask is imported only when a Dask array is given.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from array_api_compat import is_dask_array

from ._backend import (
    array_namespace,
    kept_float_dtype,
    centered,
    closest_with_candidates,
    check_dense_chunks,
    cumulative_sum,
    column_sums,
    concat_rows,
    device_of,
    distances_to_centers,
    encode_host_categories,
    from_host,
    host_xp,
    largest_indices,
    legacy_random_state,
    map_row_blocks,
    nearest_centers,
    nearest_centers_and_sums,
    row_block,
    segment_count,
    segment_sum,
    sq_distances_to_assigned,
    sq_row_norms,
    subtract_row,
    take_rows,
    to_numpy,
    widest_float_dtype,
)
from ._backend._capabilities import check_supported
from ._errors import InputTypeError
from ._lloyd import (
    LloydStep,
    _centers_from_sums,
    _ClusterSums,
    _relocate_empty_clusters,
)
from ._init import (
    KMEANS_PARALLEL_OVERSAMPLING,
    KMEANS_PARALLEL_ROUNDS,
    _kmeans_plusplus,
    _nearest_candidate_pass,
)
from ._validation import (
    check_array,
    check_inertia_is_finite,
    check_n_clusters_fits,
    check_sample_weight,
    check_weight_layout,
    draws_as_unweighted,
    integer_labels,
    scaled_tolerance,
)


def is_dask_input(X: Any) -> bool:
    """True for a Dask array or DataFrame (the hook of ``KMeans`` into this module)."""
    return is_dask_array(X) or _is_dask_frame(X)


def _is_dask_frame(X: Any) -> bool:
    """A Dask DataFrame (or Series), known without importing ``dask.dataframe``."""
    return type(X).__module__.startswith(("dask.dataframe", "dask_expr")) and hasattr(
        X, "to_dask_array")


def _dask_values(values: Any) -> Any:
    """A Dask Series or DataFrame given for weights or labels as the Dask array
    of its values (one compute counts its partitions' rows, so that it can be
    chunked like X), never gathered to the client; anything else as it is."""
    return values.to_dask_array(lengths=True) if _is_dask_frame(values) else values


# ------------------------------------------------------------------ validation (lazy)


def check_dask_array(X: Any, *, name: str = "X", dtype: Any = None,
                     known_rows: bool = True) -> Any:
    """A 2-D real Dask array with whole columns, as float; with ``known_rows``,
    its row chunks must have known sizes (per-chunk maps need none).

    Nothing is computed: finiteness is checked in the first pass over the data.
    A Dask DataFrame becomes the Dask array of its values; with ``known_rows``,
    counting the rows of its partitions is the one compute.
    """
    if _is_dask_frame(X):
        X = X.to_dask_array(lengths=True) if known_rows else X.to_dask_array()
    check_dense_chunks(X, name)
    if X.ndim != 2:
        msg = f"`{name}` must be a 2-D array of shape (n_samples, n_features), got ndim={X.ndim}."
        raise ValueError(msg)
    unknown_rows = any(math.isnan(c) for c in X.chunks[0])
    if known_rows and unknown_rows:
        msg = f"`{name}` has unknown chunk sizes; call `{name}.compute_chunk_sizes()` first."
        raise ValueError(msg)
    kind = X.dtype
    if kind.kind == "c":
        msg = f"Complex data not supported: `{name}` has dtype {kind}."
        raise ValueError(msg)
    if kind.kind not in "biuf":
        msg = f"`{name}` must be a numeric array, got dtype {kind}."
        raise InputTypeError(msg)
    if X.shape[0] < 1 or X.shape[1] < 1:
        msg = f"`{name}` must have at least one sample and one feature, got shape={X.shape}."
        raise ValueError(msg)
    if dtype is None:
        dtype = kept_float_dtype(kind, np)
    if kind != dtype:
        X = X.astype(dtype)
    if X.numblocks[1] > 1:  # per-chunk kernels need whole rows
        # joined as they are, each row chunk would grow by its number of column
        # chunks (all of X in one task for X chunked by columns only): where
        # their number is known, rows are split as many times, so that a task
        # holds about as much as one of the chunks given
        rows = max(1, max(X.chunks[0]) // X.numblocks[1])
        X = X.rechunk({1: -1} if unknown_rows else {0: rows, 1: -1})
    return X


def _check_dask_weights(sample_weight: Any, X: Any) -> tuple[Any, Any]:
    """``sample_weight`` as an (n, 1) Dask array in X's dtype, chunked like
    X's rows, and the lazy ``_weight_checks`` of its values; None, None without.

    Its values (finite, non-negative, one positive, before and after the cast
    to X's dtype, and a finite total) are checked when the flags are computed:
    in the first pass of a fit, with the result of a lazy step.
    """
    import dask.array as da

    if sample_weight is None:
        return None, None
    n_samples = X.shape[0]
    sample_weight = _dask_values(sample_weight)
    # a real number is every point's weight, as in memory (not a bool, a string
    # or a complex number: those fail the checks of an array below)
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        sample_weight = da.full((n_samples,), float(sample_weight), chunks=(X.chunks[0],))
    elif not is_dask_array(sample_weight):
        sample_weight = np.asarray(to_numpy(sample_weight))
    check_weight_layout(sample_weight, n_samples, real=sample_weight.dtype.kind in "biuf")
    if not is_dask_array(sample_weight):  # checked first: a wrong length cannot be chunked
        sample_weight = da.from_array(sample_weight, chunks=(X.chunks[0],))
    sample_weight = sample_weight.rechunk((X.chunks[0],))
    return sample_weight.astype(X.dtype)[:, None], _weight_checks(sample_weight, X.dtype)


def _centers_for(centers: Any, block: Any) -> Any:
    """Host centres in the namespace and on the device of a chunk."""
    return from_host(centers, xp=array_namespace(block), device=device_of(block))


def _on_host(values: Any) -> np.ndarray:
    """Values given to a Dask path (a list, or an array of any library) in host memory."""
    return np.asarray(values if isinstance(values, (list, tuple)) else to_numpy(values))


def _host_centers(centers: Any, dtype: Any, *, name: str = "centers") -> np.ndarray:
    """Small centres (any namespace; a Dask array is computed) as a host array."""
    if is_dask_array(centers):
        centers = centers.compute()
    centers = _on_host(centers)
    if centers.ndim != 2:
        msg = f"`{name}` must be 2-D (n_clusters, n_features), got ndim={centers.ndim}."
        raise ValueError(msg)
    if not np.all(np.isfinite(centers)):
        msg = f"`{name}` contains NaN or inf (infinity); remove or impute them first."
        raise ValueError(msg)
    return centers.astype(dtype)


# ------------------------------------------------------------------ per-chunk kernels
# Each takes one chunk (and its (rows, 1) weights, or None) and returns a small
# array with a leading axis of 1, so that the chunks' results stack along axis 0.


def _on_chunk_device(values: Any, block: Any) -> Any:
    """``values`` (a chunk of weights or labels, possibly host data) in the
    library and on the device of the chunk ``block`` (no copy if already there)."""
    xp = array_namespace(block)
    return xp.asarray(values, device=device_of(block))


def _weights_of(weights: Any, block: Any) -> Any:
    return None if weights is None else _on_chunk_device(weights[:, 0], block)


def _checked(block: Any) -> Any:
    """The chunk, checked as ``check_array`` checks X in memory: NaN or inf
    raise its error in the chunk's task (when the result is computed)."""
    return check_array(block, ensure_min_samples=0)[0]


def _chunk_weight_flags(block: Any, weights: Any) -> Any:
    """(3,): the chunk's non-finite | negative | positive weights (counts, in
    the widest float; 0 | 0 | 1 without weights)."""
    xp = array_namespace(block)
    device = device_of(block)  # torch makes host tensors without one
    accumulate = widest_float_dtype(xp, device)
    if weights is None:
        return xp.asarray([0.0, 0.0, 1.0], dtype=accumulate, device=device)
    w = xp.astype(_weights_of(weights, block), accumulate)
    flags = [xp.logical_not(xp.isfinite(w)), w < 0, w > 0]
    return xp.stack([xp.sum(xp.astype(flag, accumulate)) for flag in flags])


_WEIGHT_CHECKS = 6
"""Numbers of ``_chunk_weight_checks``."""


def _chunk_weight_checks(weights: Any, dtype: Any) -> Any:
    """(1, 6) of a chunk of 1-D weights as given: its non-finite | negative |
    positive weights, then, cast to X's ``dtype`` as in memory, its
    non-finite | positive weights (counts) and their sum, in the widest float
    of the chunk's device."""
    xp = array_namespace(weights)
    wide = widest_float_dtype(xp, device_of(weights))
    cast = xp.astype(weights, dtype)
    flags = [xp.logical_not(xp.isfinite(weights)), weights < 0, weights > 0,
             xp.logical_not(xp.isfinite(cast)), cast > 0]
    counts = [xp.sum(xp.astype(flag, wide)) for flag in flags]
    return xp.stack([*counts, xp.sum(xp.astype(cast, wide))])[None, :]


def _weight_checks(weights: Any, dtype: Any) -> Any:
    """The lazy (6,) sum of the ``_chunk_weight_checks`` of 1-D Dask weights."""
    return weights.map_blocks(
        _chunk_weight_checks, dtype, new_axis=1, dtype=np.float64,
        chunks=((1,) * weights.numblocks[0], (_WEIGHT_CHECKS,)),
        meta=np.empty((0, 0), dtype=np.float64)).sum(axis=0)


def _check_weight_flags(flags: Any, dtype: Any) -> None:
    """The error of ``check_sample_weight`` for weights of X in ``dtype``
    whose summed ``_chunk_weight_checks`` are ``flags``: it checks a few
    weights that fail the same way, in the same order (NaN, negative, none
    positive, too large for ``dtype``, all zero in it, a total too large)."""
    non_finite, negative, positive, cast_non_finite, cast_positive, total = (
        np.asarray(to_numpy(flags), dtype=np.float64))
    largest = float(np.finfo(dtype).max)
    stand_in = [0.0]
    if non_finite:
        stand_in.append(np.nan)
    if negative:
        stand_in.append(-1.0)
    if positive:  # all of them rounded to 0 in dtype, or not
        stand_in.append(1.0 if cast_positive else float(np.finfo(np.float64).smallest_subnormal))
    if cast_non_finite > non_finite:  # finite values that dtype cannot hold
        stand_in.append(2.0 * largest)
    if not math.isfinite(total):
        stand_in += [largest, largest]
    stand_in = np.asarray(stand_in)
    with warnings.catch_warnings():  # the cast's overflow, as in memory: raised as an error
        warnings.simplefilter("ignore", RuntimeWarning)
        check_sample_weight(stand_in, np.empty((stand_in.shape[0], 1), dtype=dtype), host_xp)


def _chunk_moments(block: Any, weights: Any) -> Any:
    """(1, d + 4): column sums | non-finite values | the weight flags
    (``_chunk_weight_flags``). The sums are those of a fit in memory
    (``column_sums``), so the two find the same mean. Added up over chunks,
    ``_split_moments`` takes them apart."""
    xp = array_namespace(block)
    accumulate = widest_float_dtype(xp, device_of(block))
    non_finite = xp.astype(xp.any(~xp.isfinite(block)), accumulate)  # no chunk-sized float copy
    return xp.concat([column_sums(block), non_finite[None],
                      _chunk_weight_flags(block, weights)])[None, :]


def _split_moments(totals: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The column sums, the count of chunks with non-finite values and the
    weight flags of the chunks' ``_chunk_moments`` added up."""
    return totals[:-4], float(totals[-4]), totals[-3:]


def _chunk_subtract(block: Any, mean: Any) -> Any:
    return subtract_row(block, _centers_for(mean, block))


def _chunk_sum_of_squares(block: Any, mean: Any) -> Any:
    """(1, 1): sum of squares of ``block - mean``, in the widest float (in
    row blocks: no chunk-sized temporary)."""
    xp = array_namespace(block)
    device = device_of(block)
    wide = widest_float_dtype(xp, device)
    centred = _centred(block, mean)

    def block_sum(rows: slice) -> Any:
        values = xp.astype(row_block(centred, rows), wide)
        return xp.sum(values * values)

    parts = map_row_blocks(block_sum, block.shape[0], block.shape[1], xp=xp, device=device)
    return xp.reshape(xp.sum(xp.stack(parts)), (1, 1))


def _centred(block: Any, mean: Any) -> Any:
    """The chunk minus the host row ``mean``, centred as the kernels read it (a
    view: no chunk-sized copy); the chunk itself when ``mean`` is None."""
    return block if mean is None else centered(block, _centers_for(mean, block), view=True)


def _chunk_lloyd_sums(block: Any, weights: Any, centers: Any, mean: Any = None) -> Any:
    """(1, k, d + 1): E step and M-step sums of one chunk (sums | totals),
    of ``block - mean`` with a ``mean``."""
    xp = array_namespace(block)
    _, sums, totals = nearest_centers_and_sums(
        _centred(block, mean), _centers_for(centers, block), weights=_weights_of(weights, block)
    )
    return xp.concat([sums, totals[:, None]], axis=1)[None, ...]


def _chunk_sums_of_labels(block: Any, labels: Any, weights: Any, n_clusters: int) -> Any:
    """(1, k, d + 1): M-step sums of one chunk for given labels."""
    xp = array_namespace(block)
    accumulate = widest_float_dtype(xp, device_of(block))
    labels = _on_chunk_device(labels[:, 0], block)
    sums, totals = segment_sum(block, labels, n_clusters, weights=_weights_of(weights, block))
    return xp.astype(xp.concat([sums, totals[:, None]], axis=1), accumulate)[None, ...]


def _chunk_farthest(block: Any, labels: Any, weights: Any, centers: Any) -> Any:
    """(min(k, rows), d + 2): the chunk's points farthest from their centre
    (by distance alone, whatever their weight, as scikit-learn ranks them),
    in row order: point | label | weight.

    The k farthest of all points are among the chunks' proposals, and in row
    order ties still go to the lowest row, as in memory.
    """
    xp = array_namespace(block)
    centers = _centers_for(centers, block)
    labels = (nearest_centers(block, centers) if labels is None
              else _on_chunk_device(labels[:, 0], block))
    distances = sq_distances_to_assigned(block, centers, labels)
    w = _weights_of(weights, block)
    chosen = xp.sort(largest_indices(distances, centers.shape[0]))
    accumulate = widest_float_dtype(xp, device_of(block))
    chosen_w = (xp.ones(chosen.shape, dtype=accumulate, device=device_of(block)) if w is None
                else xp.take(w, chosen))
    return xp.concat([
        xp.astype(take_rows(block, chosen), accumulate),
        xp.astype(xp.take(labels, chosen), accumulate)[:, None],
        xp.astype(chosen_w, accumulate)[:, None],
    ], axis=1)


def _chunk_labels(block: Any, centers: Any, mean: Any = None) -> Any:
    """The nearest centre of each row of ``block - mean`` (of ``block`` without a mean)."""
    return nearest_centers(_centred(block, mean), _centers_for(centers, block))


def _chunk_inertia(block: Any, labels: Any, weights: Any, centers: Any, mean: Any = None) -> Any:
    """(1,): the (weighted) sum of squared distances of the rows of ``block -
    mean`` to their centres."""
    xp = array_namespace(block)
    labels = _on_chunk_device(labels, block)
    distances = sq_distances_to_assigned(
        _centred(block, mean), _centers_for(centers, block), labels
    )
    accumulate = widest_float_dtype(xp, device_of(block))
    distances = xp.astype(distances, accumulate)
    w = _weights_of(weights, block)
    if w is not None:  # in the wide float, as in memory
        distances = distances * xp.astype(w, accumulate)
    return xp.sum(distances)[None]


# ------------------------------------------------------------------ lazy graphs


def _stacked(X: Any, kernel: Any, *args: Any, shape: tuple, weights: Any = None, **kwargs) -> Any:
    """``kernel(chunk, weights_chunk, *args)`` per chunk, stacked: (n_chunks, *shape)."""
    import dask.array as da

    n_chunks = X.numblocks[0]
    chunks = ((1,) * n_chunks,) + tuple((s,) for s in shape)
    new_axis = list(range(2, 1 + len(shape))) if len(shape) > 1 else None
    arrays = [X] if weights is None else [X, weights]

    def call(block, *rest, **kw):
        w = rest[0] if weights is not None else None
        return kernel(block, w, *args, **kw)

    meta = np.empty((0,) * (1 + len(shape)), dtype=np.float64)
    return da.map_blocks(
        call, *arrays, chunks=chunks, new_axis=new_axis, dtype=np.float64, meta=meta, **kwargs
    )


def lloyd_sums(X: Any, weights: Any, centers: np.ndarray, mean: Any = None) -> Any:
    """One EM iteration as a lazy graph: the (k, d + 1) tree sum of the chunks'
    sums | totals for the nearest of ``centers`` (of ``X - mean`` with a
    ``mean``, each chunk centred as it is read). Nothing is computed."""
    k, d = centers.shape
    parts = _stacked(X, _chunk_lloyd_sums, centers, mean, shape=(k, d + 1), weights=weights)
    return parts.sum(axis=0)


def _farthest_candidates(X: Any, labels: Any, weights: Any, centers: np.ndarray) -> Any:
    """The chunks' proposals for relocation, concatenated in row order (lazy)."""
    import dask.array as da

    k, d = centers.shape
    arrays = [X] + ([] if labels is None else [labels[:, None]]) + ([] if weights is None else [weights])

    def call(block, *rest):
        rest = list(rest)
        chunk_labels = rest.pop(0) if labels is not None else None
        w = rest.pop(0) if weights is not None else None
        return _chunk_farthest(block, chunk_labels, w, centers)

    chunks = (tuple(min(k, c) for c in X.chunks[0]), (d + 2,))
    return da.map_blocks(call, *arrays, chunks=chunks, dtype=np.float64,
                         meta=np.empty((0, 0), dtype=np.float64))


def _relocate(sums: Any, totals: Any, candidates: Any, centers: Any, weighted: bool) -> Any:
    """Relocation from the chunks' proposals, exactly as ``_relocate_empty_clusters``."""
    d = centers.shape[1]
    # on the client, in host memory, like the centres (chunks may be on a GPU)
    candidates, sums, totals = to_numpy(candidates), to_numpy(sums), to_numpy(totals)
    xp = array_namespace(candidates)
    points = xp.astype(candidates[:, :d], centers.dtype)
    labels = xp.astype(candidates[:, d], xp.int64)
    weights = xp.astype(candidates[:, d + 1], centers.dtype) if weighted else None
    cluster_sums = _ClusterSums(sums, totals, labels)
    return _relocate_empty_clusters(points, weights, centers, cluster_sums, xp=xp)


def _split_sums(reduced: Any) -> _ClusterSums:
    return _ClusterSums(reduced[:, :-1], reduced[:, -1], None)


# ------------------------------------------------------------------ the fit


class _Prepared:
    """Validated and persisted data, its mean, and the numbers of the first passes.

    ``X`` is the centred data, lazily: each graph that reads it centres each
    chunk in the task that uses it. ``raw`` is the persisted data itself.
    """

    def __init__(self, X: Any, sample_weight: Any, tol: float) -> None:
        import dask

        X = check_dask_array(X)
        self.weights, weight_checks = _check_dask_weights(sample_weight, X)
        n, d = X.shape
        self.raw = X.persist()  # first: the checks below read it, as does every pass
        moments = _stacked(self.raw, _chunk_moments, shape=(d + 4,))
        totals, weight_flags = dask.compute(moments.sum(axis=0), weight_checks)
        sums, n_nonfinite, _ = _split_moments(to_numpy(totals))
        if n_nonfinite > 0:
            raise ValueError("`X` contains NaN or inf (infinity); remove or impute them first.")
        if self.weights is not None:  # the errors of the fit in memory
            _check_weight_flags(weight_flags, X.dtype)
        # the points of weight > 0 (in X's dtype)
        self.n_positive = n if self.weights is None else int(to_numpy(weight_flags)[4])
        self.mean = (sums / n).astype(X.dtype)
        self.X = self.raw.map_blocks(_chunk_subtract, self.mean, dtype=X.dtype)
        if self.weights is not None:
            self.weights = self.weights.persist()
        squares = _stacked(self.raw, lambda b, w: _chunk_sum_of_squares(b, self.mean),
                           shape=(1,))
        self.tol = scaled_tolerance(float(dask.compute(squares.sum())[0]), n * d, tol,
                                    dtype=X.dtype, dtype_max=float(np.finfo(X.dtype).max))
        self.meta_xp = array_namespace(X._meta)


def _lloyd(data: _Prepared, centers: np.ndarray, *, max_iter: int, verbose: int,
           report: Any) -> tuple:
    """EM from ``centers``: one compute per iteration (two when a cluster
    empties); ``report(step)`` after each (a ``LloydStep`` without labels)."""
    import dask

    weighted = data.weights is not None
    previous = None
    for iteration in range(1, max_iter + 1):
        reduced = to_numpy(dask.compute(
            lloyd_sums(data.raw, data.weights, centers, data.mean))[0])
        cluster_sums = _split_sums(reduced)
        if np.any(cluster_sums.totals == 0):
            candidates = _farthest_candidates(data.X, None, data.weights, centers)
            cluster_sums = _relocate(
                cluster_sums.sums, cluster_sums.totals,
                to_numpy(dask.compute(candidates)[0]), centers, weighted,
            )
        centers, converged = _end_iteration(cluster_sums, centers, iteration, tol=data.tol,
                                            verbose=verbose, report=report,
                                            same_sums=_same_sums(reduced, previous))
        previous = reduced
        if converged:
            break
    return centers, iteration


def _same_sums(reduced: np.ndarray, previous: np.ndarray | None) -> bool:
    """Whether this iteration's sums (before any relocation) equal the last
    one's, bit for bit: the labels did not change (strict convergence, as in
    memory, where a relocation in that iteration does not go on either)."""
    return previous is not None and np.array_equal(reduced, previous)


def _end_iteration(cluster_sums: _ClusterSums, centers: np.ndarray, iteration: int, *,
                   tol: float, verbose: int, report: Any,
                   same_sums: bool) -> tuple[np.ndarray, bool]:
    """The host end of an EM iteration on Dask or streamed data: the centres
    of the sums, their shift, ``report(step)``; the new centres and whether
    they converged (``same_sums``: see ``_same_sums``)."""
    new_centers = _centers_from_sums(cluster_sums, centers, xp=host_xp)
    shift = float(np.sum((new_centers - centers) ** 2))
    if verbose:
        print(f"Iteration {iteration}, center shift {shift}.")
    converged = same_sums or shift <= tol
    report(LloydStep(iteration=iteration, labels=None, centers=new_centers,
                     previous_centers=centers, inertia=None, center_shift=shift,
                     converged=converged))
    if converged and verbose:
        print(f"Converged at iteration {iteration}.")
    return new_centers, converged


def _labels_graph(X: Any, centers: np.ndarray, mean: Any = None) -> Any:
    """Lazy labels: the nearest of ``centers`` for each row of ``X - mean``."""
    return X.map_blocks(_chunk_labels, centers, mean, drop_axis=1, dtype=np.int64,
                        meta=np.empty((0,), dtype=np.int64))


def _inertia_graph(X: Any, labels: Any, weights: Any, centers: np.ndarray,
                   mean: Any = None) -> Any:
    """Lazy (n_chunks,) inertias of the chunks of ``X - mean`` for ``labels``."""
    import dask.array as da

    arrays = [X, labels[:, None]] + ([] if weights is None else [weights])

    def call(block, chunk_labels, *w):
        return _chunk_inertia(block, chunk_labels[:, 0], w[0] if w else None, centers, mean)

    return da.map_blocks(call, *arrays, drop_axis=1, chunks=((1,) * X.numblocks[0],),
                         dtype=np.float64, meta=np.empty((0,), dtype=np.float64))


def _labels_and_inertia(data: _Prepared, centers: np.ndarray) -> tuple[Any, float]:
    """Persisted labels of the nearest centres and the inertia (one compute)."""
    labels = _labels_graph(data.raw, centers, data.mean).persist()
    return labels, _inertia_of(data, centers, labels)


def _inertia_of(data: _Prepared, centers: np.ndarray, labels: Any = None) -> float:
    """The inertia of ``centers`` for their nearest ``labels`` (lazy ones
    without): one compute."""
    import dask

    if labels is None:
        labels = _labels_graph(data.raw, centers, data.mean)
    parts = _inertia_graph(data.raw, labels, data.weights, centers, data.mean)
    return float(dask.compute(parts.sum())[0])


def _labels_range(clusters: Any, labels: Any, n_clusters: int) -> tuple[Any, Any]:
    """Per cluster of ``clusters``: the lowest and highest of the ``labels`` of
    its points (``n_clusters`` and -1 for a cluster without points), by one
    sort of the pairs (cluster, label) as ``cluster * k + label``."""
    xp = array_namespace(labels)
    device = device_of(labels)
    low = xp.full((n_clusters,), n_clusters, dtype=xp.int64, device=device)
    high = xp.full((n_clusters,), -1, dtype=xp.int64, device=device)
    if labels.shape[0] == 0:
        return low, high
    pairs = xp.sort(xp.astype(clusters, xp.int64) * n_clusters + xp.astype(labels, xp.int64))
    starts = xp.arange(n_clusters, dtype=xp.int64, device=device) * n_clusters
    first = xp.searchsorted(pairs, starts, side="left")
    last = xp.searchsorted(pairs, starts + n_clusters, side="left") - 1
    present = first <= last
    end = pairs.shape[0] - 1
    low = xp.where(present, xp.take(pairs, xp.clip(first, 0, end)) - starts, low)
    high = xp.where(present, xp.take(pairs, xp.clip(last, 0, end)) - starts, high)
    return low, high


def _chunk_start_summary(block: Any, labels: Any, best_labels: Any, weights: Any,
                         centers: Any, mean: Any) -> Any:
    """(1, 1 + 3k): inertia | points per cluster | the lowest | highest of
    ``best_labels`` in each cluster of ``labels`` (``_labels_range``; none
    without them), in the widest float."""
    xp = array_namespace(block)
    k = centers.shape[0]
    labels = _on_chunk_device(labels[:, 0], block)
    if best_labels is None:  # the first start: nothing to compare with
        low, high = _labels_range(labels[:0], labels[:0], k)
    else:
        low, high = _labels_range(labels, _on_chunk_device(best_labels[:, 0], block), k)
    parts = (_chunk_inertia(block, labels, weights, centers, mean), segment_count(labels, k),
             low, high)
    wide = widest_float_dtype(xp, device_of(block))
    return xp.concat([xp.astype(part, wide) for part in parts])[None, :]


@dataclass(frozen=True)
class _Start:
    """One start of the fit (``_kmeans._Run``), with what the choice among
    starts needs of its lazy labels: ``sizes`` (points per cluster) and
    ``renaming``, the pairs (this start's label, best start's label) that
    ``_is_same_clustering`` compares in place of all labels, as in memory."""

    labels: Any
    inertia: float
    centers: np.ndarray
    n_iter: int
    converged: bool
    sizes: np.ndarray
    renaming: tuple[np.ndarray, np.ndarray]


def _finish_start(data: _Prepared, centers: np.ndarray, best: _Start | None, *,
                  n_iter: int, converged: bool) -> _Start:
    """The persisted labels of ``centers``, then their inertia, cluster sizes
    and label ranges in the clusters of ``best`` (one compute of 3k + 1 numbers)."""
    import dask
    import dask.array as da

    k = centers.shape[0]
    labels = _labels_graph(data.raw, centers, data.mean).persist()
    arrays = [data.raw, labels[:, None]] + ([] if best is None else [best.labels[:, None]])
    arrays += [] if data.weights is None else [data.weights]

    def call(block, chunk_labels, *rest):
        rest = list(rest)
        best_labels = rest.pop(0) if best is not None else None
        w = rest.pop(0) if data.weights is not None else None
        return _chunk_start_summary(block, chunk_labels, best_labels, w, centers, data.mean)

    parts = da.map_blocks(call, *arrays, chunks=((1,) * data.raw.numblocks[0], (1 + 3 * k,)),
                          dtype=np.float64, meta=np.empty((0, 0), dtype=np.float64))
    totals, low, high = (to_numpy(part) for part in dask.compute(
        parts[:, :1 + k].sum(axis=0), parts[:, 1 + k:1 + 2 * k].min(axis=0),
        parts[:, 1 + 2 * k:].max(axis=0)))
    clusters = np.flatnonzero(high >= 0)
    renaming = (np.concatenate([clusters, clusters]),
                np.concatenate([low[clusters], high[clusters]]).astype(np.int64))
    return _Start(labels, float(totals[0]), centers, n_iter, converged, totals[1:], renaming)


def _scaled_for_init(data: _Prepared) -> _Prepared:
    """``data`` with its weights scaled as in memory (``_init._scaled_to_unit``:
    by the power of two that brings the largest below 2), for the
    initialisers: the same draws, and products ``weight * D(x)^2`` that fit
    X's dtype (1e9 weights on float32 X of 1e15 had drawn one row again and
    again). One compute of the largest weight, once per fit."""
    if data.weights is None:
        return data
    scaled = getattr(data, "_for_init", None)
    if scaled is None:
        largest = _stacked(data.raw, lambda block, w: _chunk_largest(w), shape=(1,),
                           weights=data.weights).max()  # chunks of 0 rows too
        exponent = math.frexp(float(largest.compute()))[1] - 1
        scaled = copy.copy(data)
        if exponent > 0:
            scaled.weights = (data.weights * 2.0**-exponent).astype(data.weights.dtype).persist()
        data._for_init = scaled
    return scaled


def _chunk_largest(weights: Any) -> Any:
    """(1, 1): the largest of a chunk's weights (0 for a chunk of no rows)."""
    xp = array_namespace(weights)
    device = device_of(weights)
    wide = widest_float_dtype(xp, device)
    values = xp.concat([xp.reshape(xp.astype(weights, wide), (-1,)),
                        xp.zeros((1,), dtype=wide, device=device)])
    return xp.reshape(xp.max(values), (1, 1))


def _initial_centers(estimator: Any, data: _Prepared, n_clusters: int, rng: Any) -> np.ndarray:
    data = _scaled_for_init(data)
    init = estimator.init
    if isinstance(init, str):
        if init == "k-means||":
            return kmeans_parallel(data, n_clusters, rng=rng)
        if init == "random":
            return _random_rows(data, n_clusters, rng)
        if init == "k-means++":
            warnings.warn(
                "init='k-means++' on a Dask array reads the data once per centre "
                f"({n_clusters} passes); init='k-means||' needs a constant number.",
                UserWarning, stacklevel=5,  # the caller of KMeans.fit
            )
            return kmeans_plusplus_greedy(data, n_clusters, rng=rng)
        msg = f"Unknown init method {init!r}; use 'k-means||', 'k-means++', 'random', a callable or an array."
        raise ValueError(msg)
    if callable(init):  # called on X itself, as in memory
        drawn = init(data.raw, n_clusters, random_state=legacy_random_state(rng))
        centers = _host_centers(drawn, data.X.dtype, name="init") - data.mean
    else:
        centers = _host_centers(init, data.X.dtype, name="init") - data.mean
    if centers.shape != (n_clusters, data.X.shape[1]):
        msg = (
            f"The shape of the initial centers {tuple(centers.shape)} does not match "
            f"the number of clusters {n_clusters} and features {data.X.shape[1]}."
        )
        raise ValueError(msg)
    return centers


def _take_host_rows(X: Any, rows: np.ndarray) -> np.ndarray:
    """The given rows of a Dask array, on the host (a compute of len(rows) rows)."""
    return _take_rows_of([X], rows)[0]


def _take_rows_of(arrays: list[Any], rows: np.ndarray) -> list[np.ndarray]:
    """The given rows of Dask arrays chunked alike, on the host (one compute)."""
    import dask

    order = np.argsort(rows, kind="stable")
    in_order = np.asarray(rows)[order]
    taken = []
    for values in dask.compute(*(array[in_order] for array in arrays)):
        values = to_numpy(values)
        taken.append(np.empty_like(values))
        taken[-1][order] = values
    return taken


def _random_rows(data: _Prepared, n_clusters: int, rng: Any) -> np.ndarray:
    """``init='random'``: distinct rows drawn by weight, the rows of
    ``_init._init_random``: ``rng.choice(n, k, replace=False, p=w / w.sum())``.
    With weights, NumPy's rounds of that call, each by ``_draw`` (the weights
    stay on the workers): draw as many rows as are missing, the rows already
    drawn at weight 0, and keep each new row at its first draw."""
    import dask.array as da

    if draws_as_unweighted(data.weights, da):
        rows = rng.choice(data.X.shape[0], size=n_clusters, replace=False)
        return _take_host_rows(data.X, rows)
    if data.n_positive < n_clusters:
        msg = f"init='random' needs at least n_clusters={n_clusters} points with positive sample_weight."
        raise ValueError(msg)
    points, rows = np.empty((0, data.X.shape[1]), dtype=data.mean.dtype), np.empty(0, np.int64)
    while rows.shape[0] < n_clusters:
        uniforms = rng.random(n_clusters - rows.shape[0])
        drawn_points, drawn = _draw(data, _without_rows(data.weights, rows), uniforms)
        first = np.sort(np.unique(drawn, return_index=True)[1])
        points = np.concatenate([points, drawn_points[first]])
        rows = np.concatenate([rows, drawn[first]])
    return points


def fit(estimator: Any, X: Any, sample_weight: Any = None) -> Any:
    """``KMeans.fit`` for a Dask array (called by the hook in ``KMeans.fit``):
    the starts, the choice among them, the callback and the warnings of the
    fit in memory."""
    # imported here: _kmeans imports this module
    from ._kmeans import _is_same_clustering, _warn_if_not_converged

    params = estimator._resolve_params()
    n_clusters = params.n_clusters
    if params.algorithm != "lloyd":  # the EM here is Lloyd's
        check_supported(f"algorithm={params.algorithm!r}", X, stacklevel=3)
    data = _Prepared(X, sample_weight, params.tol)
    check_n_clusters_fits(data.X.shape[0], n_clusters)

    def lloyd(centers: np.ndarray, report: Any) -> tuple[np.ndarray, int]:
        return _lloyd(data, centers, max_iter=params.max_iter, verbose=params.verbose,
                      report=report)

    def finish(result: tuple[np.ndarray, int], converged: bool, best: _Start | None) -> _Start:
        centers, n_iter = result
        return _finish_start(data, centers, best, n_iter=n_iter, converged=converged)

    def same_clustering(run: _Start, best: _Start) -> bool:  # run.renaming: against best
        return _is_same_clustering(*run.renaming, n_clusters, xp=host_xp)

    best = estimator._best_of_starts(
        params, data.tol, initial_centers=partial(_initial_centers, estimator, data, n_clusters),
        objective=partial(_inertia_of, data), lloyd=lloyd, finish=finish,
        same_clustering=same_clustering,
    )
    _warn_if_not_converged(estimator, int(np.count_nonzero(best.sizes)), params, best.converged)
    xp = data.meta_xp
    mean = xp.asarray(data.mean)
    centered = xp.asarray(best.centers)
    estimator.cluster_centers_ = centered + mean
    estimator.mean_, estimator._centered_centers = mean, centered
    estimator.labels_ = best.labels
    estimator.inertia_ = best.inertia
    estimator.n_iter_ = best.n_iter
    estimator.n_features_in_ = data.X.shape[1]
    estimator._n_features_out = n_clusters
    return estimator


def rows_in_memory(X: Any, labels: Any, rows: np.ndarray) -> tuple[Any, Any]:
    """Rows ``rows`` of a Dask array and of its labels (a Dask array or not),
    in the chunks' namespace, by one compute (in increasing row order)."""
    import dask

    rows = np.sort(rows)
    X = check_dask_array(X)
    labels = _dask_values(labels)
    labels = labels if is_dask_array(labels) else _on_host(labels)
    return dask.compute(X[rows], labels[rows])


def _labels_along(X: Any, labels: Any, *, categories: bool = False) -> Any:
    """Integer ``labels`` of the rows of X (any array; host strings encoded
    as in memory), as a Dask array chunked like X's rows; with ``categories``
    a Dask array of strings too (encoded by ``_distinct``'s sorted values, as
    ``LabelEncoder``)."""
    import dask.array as da

    labels = _dask_values(labels)
    if not is_dask_array(labels):
        labels = _on_host(encode_host_categories(labels, name="labels"))
        _check_labels_shape(labels, X)  # before chunking them as X: Dask's error names neither
        labels = da.from_array(labels, chunks=(X.chunks[0],))
    _check_labels_shape(labels, X)
    if categories and labels.dtype.kind in "USO":
        return labels.rechunk((X.chunks[0],))
    if labels.dtype.kind not in "iu":  # booleans and whole-number floats, checked per chunk
        integer_labels(labels._meta, array_namespace(labels._meta))
        labels = labels.map_blocks(_integer_chunk, dtype=np.int64)
    return labels.rechunk((X.chunks[0],))


def _check_labels_shape(labels: Any, X: Any) -> None:
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        msg = f"`labels` must have shape ({X.shape[0]},) to match X, got {tuple(labels.shape)}."
        raise ValueError(msg)


def _integer_chunk(labels: Any) -> Any:
    return integer_labels(labels, array_namespace(labels))


def _per_chunk(X: Any, codes: Any, kernel: Any, shape: tuple) -> Any:
    """``kernel(chunk, codes_chunk)`` per chunk of X, stacked and summed: a lazy ``shape``."""
    import dask.array as da

    parts = da.map_blocks(kernel, X, codes[:, None],
                          chunks=((1,) * X.numblocks[0],) + tuple((s,) for s in shape),
                          new_axis=2, dtype=np.float64, meta=np.empty((0, 0, 0), dtype=np.float64))
    return parts.sum(axis=0)


def _distinct(labels: Any) -> np.ndarray:
    """The sorted distinct values of a 1-D Dask array (one compute; each
    chunk's own distinct values come to the host: ``da.unique`` builds
    structured NumPy arrays, which CuPy chunks cannot make)."""
    parts = labels.map_blocks(lambda chunk: to_numpy(array_namespace(chunk).unique_values(chunk)),
                              chunks=((np.nan,) * labels.numblocks[0],), dtype=labels.dtype,
                              meta=np.empty((0,), dtype=labels.dtype))
    return np.unique(parts.compute())


def _widest(block: Any) -> Any:
    xp = array_namespace(block)
    return xp.astype(block, widest_float_dtype(xp, device_of(block)))


def _chunk_codes(labels: Any, values: np.ndarray) -> Any:
    """A chunk of labels as the positions of its values in the sorted ``values``."""
    xp = array_namespace(labels)
    return xp.searchsorted(xp.asarray(values, device=device_of(labels)), labels)


def _chunk_spreads(block: Any, codes: Any, centroids: Any) -> Any:
    """(1, k, 2): per cluster, the summed distances and squared distances of
    the chunk's rows to their centroid."""
    xp = array_namespace(block)
    codes = _on_chunk_device(codes[:, 0], block)
    squared = sq_distances_to_assigned(block, _centers_for(centroids, block), codes)
    values = xp.stack([xp.sqrt(squared), squared], axis=1)
    return segment_sum(values, codes, centroids.shape[0])[0][None, ...]


def cluster_dispersions(X: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Per cluster of a Dask array (its distinct labels in sorted order): the
    centroids, the sizes, the within-cluster sum of squares and the spreads
    (mean distances to the centroid), on the host, in three computes (the
    distinct labels, the sums, the distances): what the dispersion scores need."""

    from .metrics import check_number_of_labels

    X = check_dask_array(X)
    # as in memory: a chunk at a time, checked (NaN had given a NaN score)
    X = X.map_blocks(lambda block: _widest(_checked(block)), dtype=np.float64)
    labels = _labels_along(X, labels, categories=True)
    values = _distinct(labels)
    check_number_of_labels(values.shape[0], X.shape[0])
    codes = labels.map_blocks(_chunk_codes, values, dtype=np.int64)
    k, d = values.shape[0], X.shape[1]
    sums = to_numpy(_per_chunk(X, codes, lambda block, chunk_codes: _chunk_sums_of_labels(
        block, chunk_codes, None, k), (k, d + 1)).compute())
    counts = sums[:, d]
    centroids = sums[:, :d] / counts[:, None]
    spreads = to_numpy(_per_chunk(X, codes, lambda block, chunk_codes: _chunk_spreads(
        block, chunk_codes, centroids), (k, 2)).compute())
    return centroids, counts, float(spreads[:, 1].sum()), spreads[:, 0] / counts


class ClientRows:
    """Data that ``MiniBatchKMeans.fit`` samples into host memory (a Dask
    array here, a memmap in ``_streaming``): each draw of batches reads its
    distinct rows once (``take``)."""

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source, index)``: row ``rows[i]`` of X is row ``index[i]`` of ``source``."""
        distinct, index = np.unique(rows, return_inverse=True)
        return self.take(distinct)[0], index.reshape(rows.shape)


class MiniBatchRows(ClientRows):
    """A Dask array as ``MiniBatchKMeans.fit`` reads it: validated lazily,
    persisted once (``prepare``), its sampled rows brought to the client
    (NumPy) by one compute per call; labels stay lazy."""

    def __init__(self, X: Any, sample_weight: Any) -> None:
        self._X = check_dask_array(X)
        self._sample_weight = sample_weight
        self.n_samples = self._X.shape[0]
        self.xp = host_xp

    def prepare(self, tol: float) -> float:
        """Persist X, check its values (the first passes); the scaled ``tol``.
        Rows are then taken centred on ``mean``, as in memory."""
        self.data = _Prepared(self._X, self._sample_weight, tol)
        self.mean = self.data.mean
        return self.data.tol

    def host_weights(self) -> np.ndarray | None:
        weights = self.data.weights
        return None if weights is None else to_numpy(weights[:, 0].compute()).astype(np.float64)

    def take(self, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows of X, centred, and their weights (all rows for None), on the client."""
        rows = np.arange(self.n_samples) if rows is None else rows
        if self.data.weights is None:
            return _take_host_rows(self.data.raw, rows) - self.mean, None
        taken, weights = _take_rows_of([self.data.raw, self.data.weights], rows)
        return taken - self.mean, weights[:, 0]

    def labels_and_inertia(self, centers: np.ndarray) -> tuple[Any, float]:
        """Persisted lazy labels of the (centred) ``centers`` and the inertia."""
        return _labels_and_inertia(self.data, centers)

    def in_chunk_namespace(self, centers: np.ndarray) -> Any:
        return self.data.meta_xp.asarray(centers)


# ------------------------------------------------------------------ using the fit


def _frame(estimator: Any) -> tuple[Any, Any]:
    """Host (mean, centred centres) of the fit, as ``predict`` uses them."""
    estimator._check_fitted()
    xp = host_xp
    return tuple(to_numpy(a) for a in estimator._prediction_frame(xp, "cpu"))


def _test_data(estimator: Any, X: Any, *, known_rows: bool) -> Any:
    """X for predict/transform/score (``known_rows``: see ``check_dask_array``)
    and the host (mean, centred centres), all in the wider of X's and the
    centres' dtypes; and X's own dtype."""
    estimator._check_fitted()
    X = check_dask_array(X, known_rows=known_rows)
    n_features = estimator._n_center_features()  # also of centres set by hand
    if X.shape[1] != n_features:
        msg = (
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{n_features} features as input."
        )
        raise ValueError(msg)
    mean, centered = _frame(estimator)
    dtype = np.result_type(X.dtype, centered.dtype)
    return X.astype(dtype), mean.astype(dtype), centered.astype(dtype), X.dtype


def _chunk_predict(block: Any, mean: Any, centered: Any) -> Any:
    return _chunk_labels(_checked(block), centered, mean)


def predict(estimator: Any, X: Any, sample_weight: Any = None) -> Any:
    """Labels of a Dask array (or DataFrame), as a lazy Dask array: one task
    per chunk, so row chunks of unknown size are fine (without weights)."""
    X, mean, centered, _ = _test_data(estimator, X, known_rows=sample_weight is not None)
    _check_dask_weights(sample_weight, X)  # its layout only: predict does not use it
    return X.map_blocks(_chunk_predict, mean, centered, drop_axis=1, dtype=np.int64,
                        meta=np.empty((0,), dtype=np.int64))


def _chunk_distances(block: Any, mean: Any, centered: Any) -> Any:
    return distances_to_centers(_centred(_checked(block), mean), _centers_for(centered, block))


def transform(estimator: Any, X: Any) -> Any:
    """Distances to the centres, as a lazy (n_samples, n_clusters) Dask array
    (row chunks of unknown size are fine), in the frame of ``predict``."""
    X, mean, centered, own_dtype = _test_data(estimator, X, known_rows=False)
    distances = X.map_blocks(_chunk_distances, mean, centered,
                             chunks=(X.chunks[0], (centered.shape[0],)), dtype=X.dtype)
    return distances.astype(own_dtype, copy=False)


def score(estimator: Any, X: Any, sample_weight: Any = None) -> float:
    """Opposite of the inertia of a Dask array (one compute, a float back),
    after the checks of X and ``sample_weight`` of ``score`` in memory."""
    import dask
    import dask.array as da

    X, mean, centered, _ = _test_data(estimator, X, known_rows=sample_weight is not None)
    weights, weight_checks = _check_dask_weights(sample_weight, X)
    arrays = [X] + ([] if weights is None else [weights])

    def call(block, *w):
        labels = _chunk_predict(block, mean, centered)
        return _chunk_inertia(block, labels, w[0] if w else None, centered, mean)

    parts = da.map_blocks(call, *arrays, drop_axis=1, chunks=((1,) * X.numblocks[0],),
                          dtype=np.float64, meta=np.empty((0,), dtype=np.float64))
    if weights is None:
        inertia = dask.compute(parts.sum())[0]
    else:
        inertia, flags = dask.compute(parts.sum(), weight_checks)
        _check_weight_flags(flags, X.dtype)
    return -check_inertia_is_finite(float(inertia), X.dtype)


# ------------------------------------------------------------------ lazy E and M steps


def e_step(X: Any, centers: Any, *, sample_weight: Any = None) -> tuple[Any, Any]:
    """Lazy ``e_step``: labels (Dask array) and inertia (0-D Dask array)."""
    import dask.array as da

    X = check_dask_array(X)
    centers = _host_centers(centers, X.dtype)
    weights, weight_checks = _check_dask_weights(sample_weight, X)
    labels = X.map_blocks(_chunk_predict, None, centers, drop_axis=1, dtype=np.int64,
                          meta=np.empty((0,), dtype=np.int64))
    inertia = _inertia_graph(X, labels, weights, centers).sum().astype(X.dtype)
    if weights is None:
        return labels, inertia
    return labels, da.map_blocks(_after_weight_checks, inertia, weight_checks, X.dtype,
                                 drop_axis=0, dtype=X.dtype, meta=np.empty((), dtype=X.dtype))


def _after_weight_checks(value: Any, flags: Any, dtype: Any) -> Any:
    """``value``, once the summed weight ``flags`` passed (``_check_weight_flags``)."""
    _check_weight_flags(flags, dtype)
    return value


def m_step(X: Any, labels: Any, centers: Any, *, sample_weight: Any = None) -> Any:
    """Lazy ``m_step``: the new centres as a (k, d) Dask array; empty clusters
    take the farthest points (the chunks' proposals are part of the graph)."""
    import dask.array as da

    X = check_dask_array(X)
    centers = _host_centers(centers, X.dtype)
    weights, weight_checks = _check_dask_weights(sample_weight, X)
    k, d = centers.shape
    labels = _labels_along(X, labels)
    arrays = [X, labels[:, None]] + ([] if weights is None else [weights])

    def sums_call(block, chunk_labels, *w):
        xp = array_namespace(chunk_labels)
        if bool(xp.any((chunk_labels < 0) | (chunk_labels >= k))):
            raise ValueError(f"`labels` must be in [0, {k}).")
        return _chunk_sums_of_labels(_checked(block), chunk_labels, w[0] if w else None, k)

    parts = da.map_blocks(sums_call, *arrays, chunks=((1,) * X.numblocks[0], (k,), (d + 1,)),
                          new_axis=2, dtype=np.float64, meta=np.empty((0, 0, 0), dtype=np.float64))
    reduced = parts.sum(axis=0)
    candidates = _farthest_candidates(X, labels, weights, centers).rechunk(-1)
    weighted = weights is not None
    checks = [] if weight_checks is None else [weight_checks[None, :]]
    dtype = X.dtype  # not X itself in the task

    def finish(reduced, candidates, *flags):
        if flags:
            _check_weight_flags(flags[0][0], dtype)
        reduced = to_numpy(reduced)  # host memory, like the centres
        cluster_sums = _split_sums(reduced)
        if np.any(cluster_sums.totals == 0):
            cluster_sums = _relocate(cluster_sums.sums, cluster_sums.totals, candidates,
                                     centers, weighted)
        return _centers_from_sums(cluster_sums, centers, xp=array_namespace(reduced))

    return da.map_blocks(finish, reduced, candidates, *checks, chunks=((k,), (d,)),
                         dtype=X.dtype, meta=np.empty((0, 0), dtype=X.dtype))


# ------------------------------------------------------------------ initialisation
# The in-memory initialisers of ``_init``, pass by pass: the same host
# uniforms, the same draws by cumulative sums, the same distances, so that a
# seed gives the centres of a fit in memory (up to sums added in another
# order). Rows are drawn chunk first (host sums of the chunks), then inside
# the chunk by its own cumulative sum.


def _chunk_totals(values: Any) -> np.ndarray:
    """Host float64 sums of the chunks of the lazy (n, 1) ``values`` (one compute)."""
    import dask.array as da

    def call(v):
        xp = array_namespace(v)
        return xp.astype(xp.sum(xp.astype(v[:, 0], widest_float_dtype(xp, device_of(v)))),
                         xp.float64)[None]

    parts = da.map_blocks(call, values, drop_axis=1, chunks=((1,) * values.numblocks[0],),
                          dtype=np.float64, meta=np.empty((0,), dtype=np.float64))
    return to_numpy(parts.compute()).astype(np.float64)


def _draw(data: _Prepared, values: Any, uniforms: np.ndarray,
          fallback: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Centred rows drawn with probability proportional to the lazy (n, 1)
    ``values`` by the host ``uniforms`` (``_init._weighted_draws``), and
    their row numbers: two computes (three where ``values`` add up to 0 and
    the draws follow the lazy ``fallback``)."""
    import dask

    cumulative = np.cumsum(_chunk_totals(values))
    if fallback is not None and not cumulative[-1] > 0:
        values = fallback
        cumulative = np.cumsum(_chunk_totals(values))
    targets = uniforms * cumulative[-1]
    sizes = np.asarray(data.raw.chunks[0])
    last = np.flatnonzero(sizes)[-1]  # a draw past the end takes the last row, as in memory
    chunk_of = np.clip(np.searchsorted(cumulative, targets, side="right"), 0, last)
    local = targets - np.concatenate([[0.0], cumulative[:-1]])[chunk_of]
    x_blocks, v_blocks = data.raw.to_delayed()[:, 0], values.to_delayed()[:, 0]

    def pick(block, v, local_targets):
        xp = array_namespace(v)
        cum = cumulative_sum(v[:, 0], widest_float_dtype(xp, device_of(v)))
        targets = from_host(local_targets, xp=xp, device=device_of(v), dtype=cum.dtype)
        rows = xp.clip(xp.searchsorted(cum, targets, side="right"), 0, v.shape[0] - 1)
        points = take_rows(_centred(block, data.mean), _on_chunk_device(rows, block))
        return to_numpy(points), to_numpy(rows)

    chunks = np.unique(chunk_of)
    tasks = [dask.delayed(pick)(x_blocks[c], v_blocks[c], local[chunk_of == c]) for c in chunks]
    points = np.empty((uniforms.shape[0], data.raw.shape[1]), dtype=data.mean.dtype)
    rows = np.empty(uniforms.shape[0], dtype=np.int64)
    first_rows = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for c, (taken, local_rows) in zip(chunks, dask.compute(*tasks)):
        points[chunk_of == c] = taken
        rows[chunk_of == c] = first_rows[c] + local_rows
    return points, rows


def _draw_rows(data: _Prepared, values: Any, uniforms: np.ndarray,
               fallback: Any = None) -> np.ndarray:
    """The centred rows of ``_draw``."""
    return _draw(data, values, uniforms, fallback)[0]


def _without_rows(values: Any, rows: np.ndarray) -> Any:
    """The lazy (n, 1) ``values`` with the given ``rows`` set to 0."""
    import dask.array as da

    def call(chunk, block_info=None):
        start, stop = block_info[0]["array-location"][0]
        kept = np.ones(stop - start, dtype=bool)
        kept[rows[(rows >= start) & (rows < stop)] - start] = False
        xp = array_namespace(chunk)
        return xp.where(_on_chunk_device(kept, chunk)[:, None], chunk, xp.zeros_like(chunk))

    return da.map_blocks(call, values, dtype=values.dtype, meta=values._meta)


def _point_weights(data: _Prepared) -> Any:
    """The lazy (n, 1) weights of the points (ones without ``sample_weight``)."""
    import dask.array as da

    if data.weights is not None:
        return data.weights
    return da.ones((data.raw.shape[0], 1), chunks=(data.raw.chunks[0], 1), dtype=data.raw.dtype)


def _weighted(values: Any, data: _Prepared) -> Any:
    """``weight * values`` (lazy (n, 1)), in X's dtype, as in memory; the
    weights' chunks (host data) go to the values' device chunk by chunk."""
    import dask.array as da

    if data.weights is None:
        return values
    return da.map_blocks(lambda v, w: v * _on_chunk_device(w, v), values, data.weights,
                         dtype=values.dtype, meta=values._meta)


def _chunk_nearest_candidate(block: Any, state: Any, mean: Any, candidates: Any,
                             first: int) -> Any:
    """(rows, 2): squared distance to the nearest candidate so far | its
    number, after ``candidates`` (numbered from ``first``) join
    (``_init._nearest_candidate_pass``), in the widest float."""
    xp = array_namespace(block)
    device = device_of(block)
    if state is None:
        closest = xp.full((block.shape[0],), math.inf, dtype=block.dtype, device=device)
        nearest = xp.zeros((block.shape[0],), dtype=xp.int64, device=device)
    else:
        state = _on_chunk_device(state, block)
        closest, nearest = xp.astype(state[:, 0], block.dtype), xp.astype(state[:, 1], xp.int64)
    closest, nearest = _nearest_candidate_pass(
        _centred(block, mean), _centers_for(candidates, block), first, closest, nearest, xp=xp
    )
    wide = widest_float_dtype(xp, device)
    return xp.stack([xp.astype(closest, wide), xp.astype(nearest, wide)], axis=1)


def _candidate_state(data: _Prepared, state: Any, candidates: np.ndarray, first: int) -> Any:
    """Persisted (n, 2) ``_chunk_nearest_candidate`` of all chunks (one pass over X)."""
    import dask.array as da

    chunks = (data.raw.chunks[0], (2,))
    meta = np.empty((0, 0), dtype=np.float64)
    if state is None:
        lazy = data.raw.map_blocks(_chunk_nearest_candidate, None, data.mean, candidates, first,
                                   chunks=chunks, dtype=np.float64, meta=meta)
    else:
        lazy = da.map_blocks(_chunk_nearest_candidate, data.raw, state, data.mean, candidates,
                             first, chunks=chunks, dtype=np.float64, meta=meta)
    return lazy.persist()


def _closest(state: Any, data: _Prepared) -> Any:
    """The lazy (n, 1) squared distances of a candidate state, in X's dtype."""
    return state[:, :1].astype(data.raw.dtype)


def kmeans_parallel(
    data: _Prepared, n_clusters: int, *, rng: Any,
    n_rounds: int = KMEANS_PARALLEL_ROUNDS, oversampling: float = KMEANS_PARALLEL_OVERSAMPLING,
) -> np.ndarray:
    """k-means|| on a Dask array, as in memory (``_init._kmeans_parallel``):
    exactly ``n_clusters`` centres, the same for the same seed.

    A first candidate drawn by weight, then ``n_rounds`` rounds of
    ``ceil(oversampling * n_clusters)`` candidates drawn by ``weight * D^2``;
    each round is one pass over X (the distances to the new candidates,
    persisted) and two small computes (the draws). The candidates, weighted by
    their nearest points, then go to weighted greedy k-means++ on the host.
    """
    import dask

    n_samples = data.raw.shape[0]
    per_round = math.ceil(oversampling * n_clusters)
    n_candidates = 1 + n_rounds * per_round
    xp = host_xp
    if n_samples <= n_candidates:  # few points: greedy k-means++ on them, as in memory
        X = to_numpy(data.X.compute())
        weights = None if data.weights is None else to_numpy(data.weights[:, 0].compute())
        return np.asarray(_kmeans_plusplus(X, n_clusters, sample_weight=weights, rng=rng, xp=xp)[0])
    uniforms = rng.random(n_candidates)
    candidates = [_draw_rows(data, _point_weights(data), uniforms[:1])]
    state = _candidate_state(data, None, candidates[0], 0)
    for round_ in range(n_rounds):
        start = 1 + round_ * per_round
        drawn = _draw_rows(data, _weighted(_closest(state, data), data),
                           uniforms[start:start + per_round], _point_weights(data))
        state = _candidate_state(data, state, drawn, start)
        candidates.append(drawn)

    def totals(chunk_state, w):
        nearest = xp.astype(xp.asarray(to_numpy(chunk_state[:, 1])), xp.int64)
        ones = np.ones((nearest.shape[0], 1))
        weights = None if w is None else to_numpy(w[:, 0]).astype(np.float64)
        return segment_sum(ones, nearest, n_candidates, weights=weights)[1]

    s_blocks = state.to_delayed()[:, 0]
    w_blocks = [None] * len(s_blocks) if data.weights is None else data.weights.to_delayed()[:, 0]
    parts = dask.compute(*[dask.delayed(totals)(s, w) for s, w in zip(s_blocks, w_blocks)])
    candidate_weights = np.sum(parts, axis=0).astype(data.mean.dtype)
    centers, _ = _kmeans_plusplus(np.concatenate(candidates), n_clusters,
                                  sample_weight=candidate_weights, rng=rng, xp=xp)
    return np.asarray(centers)


def _chunk_greedy(block: Any, closest: Any, weights: Any, mean: Any, rows: Any,
                  keep: int | None) -> Any:
    """Greedy k-means++ on one chunk (``closest_with_candidates``): with
    ``keep`` None, (1, n_rows) the chunk's potential for each of ``rows``
    joining the centres; else (rows, 1) the squared distances to the nearest
    centre once ``rows[keep]`` joined."""
    xp = array_namespace(block)
    device = device_of(block)
    X = _centred(block, mean)
    if closest is None:
        closest = xp.full((block.shape[0],), math.inf, dtype=block.dtype, device=device)
    else:
        closest = _on_chunk_device(closest, block)[:, 0]
    w = _weights_of(weights, block)
    if w is None:
        w = xp.ones((block.shape[0],), dtype=block.dtype, device=device)
    rows = _centers_for(rows, block)
    blocks, potentials = closest_with_candidates(
        X, sq_row_norms(X), w, closest, rows, xp.sum(rows * rows, axis=1)
    )
    if keep is None:
        return xp.astype(potentials, widest_float_dtype(xp, device))[None, :]
    return concat_rows([b[:, keep:keep + 1] for b in blocks], xp=xp)


def _greedy_pass(data: _Prepared, closest: Any, rows: np.ndarray, keep: int | None) -> Any:
    """``_chunk_greedy`` over all chunks: host potentials (one compute), or the
    persisted (n, 1) distances."""
    import dask.array as da

    arrays = [data.raw] + ([] if closest is None else [closest])
    arrays += [] if data.weights is None else [data.weights]

    def call(block, *rest):
        rest = list(rest)
        chunk_closest = rest.pop(0) if closest is not None else None
        w = rest.pop(0) if data.weights is not None else None
        return _chunk_greedy(block, chunk_closest, w, data.mean, rows, keep)

    if keep is None:
        parts = da.map_blocks(call, *arrays, chunks=((1,) * data.raw.numblocks[0], (len(rows),)),
                              dtype=np.float64, meta=np.empty((0, 0), dtype=np.float64))
        return to_numpy(parts.sum(axis=0).compute())
    return da.map_blocks(call, *arrays, chunks=(data.raw.chunks[0], (1,)), dtype=data.raw.dtype,
                         meta=np.empty((0, 0), dtype=data.raw.dtype)).persist()


def kmeans_plusplus_greedy(data: _Prepared, n_clusters: int, *, rng: Any,
                           n_local_trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ on a Dask array, as in memory (``_init._kmeans_plusplus``:
    the same draws and distances): two passes per centre (the trials'
    potentials, then the distances to the best one, persisted)."""
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    uniforms = rng.random(1 + (n_clusters - 1) * n_local_trials)
    centers = [_draw_rows(data, _point_weights(data), uniforms[:1])]
    closest = _greedy_pass(data, None, centers[0], 0)
    for center in range(1, n_clusters):
        start = 1 + (center - 1) * n_local_trials
        trials = _draw_rows(data, _weighted(closest, data),
                            uniforms[start:start + n_local_trials], _point_weights(data))
        best = int(np.argmin(_greedy_pass(data, closest, trials, None)))
        centers.append(trials[best:best + 1])
        closest = _greedy_pass(data, closest, trials, best)
    return np.concatenate(centers)
