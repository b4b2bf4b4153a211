"""NumPy fast paths (each tested equal to its portable twin)."""

from __future__ import annotations


import numpy as np

from . import _portable
from . import _host
from ._host import array_namespace
from ._threads import map_blocks

# Per-cluster sums: the one-hot product costs about (k compares + k d
# multiply-adds) per row, bincount about 4 d: the product wins up to this
# many clusters, and only below 2 d (measured on 2 AVX2 cores).
_ONE_HOT_MAX_SEGMENTS = 32

# E step: up to this many clusters, scan the (clusters x rows) scores
# column-wise instead of calling argmin once per row (2x at 16 clusters).
SCAN_MAX_CLUSTERS = 64

# Elements per block of a transposing copy (row-major to column-major).
_TRANSPOSE_BLOCK_ELEMENTS = 1 << 17


def nearest_center_labels(X, centers, half_sq_norms):
    return _first_minimum_by_cluster(_scores_by_cluster(X, centers, half_sq_norms))[0]


def nearest_two_centers(X, centers, half_sq_norms):
    scores = _scores_by_cluster(X, centers, half_sq_norms)
    labels, best = _first_minimum_by_cluster(scores)
    scores[labels, np.arange(scores.shape[1])] = np.inf
    return labels, best, scores.min(axis=0)


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


def fold_candidates(cross, x_sq_norms, rows_sq_norms, closest_sq):
    # in place, in the portable twin's order ((x + cross) + c: additions
    # commute bit for bit): one temporary instead of four
    np.add(cross, x_sq_norms, out=cross)
    np.add(cross, rows_sq_norms, out=cross)
    np.maximum(cross, 0, out=cross)
    return np.minimum(cross, closest_sq, out=cross)


def scatter(values, indices, updates):
    out = values.copy()
    out[indices] = updates
    return out


def column_sums_of_block(X, dtype):
    # the block in ``dtype``, then a product with ones (BLAS): NumPy's own
    # reduction with a dtype, along axis 0, is 6x slower
    return np.ones(X.shape[0], dtype=dtype) @ X.astype(dtype, copy=False)


def largest_indices(values, count):
    # a partition, O(n), then a sort of the ``count`` chosen only
    threshold = np.partition(values, values.shape[0] - count)[values.shape[0] - count]
    above = np.flatnonzero(values > threshold)
    tied = np.flatnonzero(values == threshold)[: count - above.shape[0]]
    chosen = np.concatenate([above, tied])
    return chosen[np.lexsort((chosen, -values[chosen]))]


def segment_sum(values, segment_ids, n_segments, weights):
    # Few segments: the one-hot product (BLAS) wins. Many, or few columns:
    # one bincount per column, O(n d) instead of O(n d k); it sums in float64.
    if n_segments <= _ONE_HOT_MAX_SEGMENTS and n_segments < 2 * values.shape[1]:
        return _portable.segment_sum(values, segment_ids, n_segments, weights=weights)
    columns = values.T if weights is None else (values * weights[:, None]).T
    xp = array_namespace(values)
    sums = map_blocks(
        lambda column: np.bincount(segment_ids, weights=column, minlength=n_segments),
        columns,
        xp=xp,
    )
    totals = np.bincount(segment_ids, weights=weights, minlength=n_segments)
    return (np.stack(sums, axis=1).astype(values.dtype, copy=False),
            totals.astype(values.dtype, copy=False))


def segment_count(segment_ids, n_segments):
    return np.bincount(segment_ids, minlength=n_segments).astype(np.int64, copy=False)


def subtract_row(X, row):
    # column-major, so that each feature is contiguous for ``bincount``; row
    # blocks still go to BLAS without a copy. Written block by block on all
    # cores: a transposing copy in one go is 6x slower.
    n_rows = X.shape[0]
    out = np.empty(X.shape, dtype=np.result_type(X, row), order="F")
    step = max(_host._MIN_BLOCK_ROWS, _TRANSPOSE_BLOCK_ELEMENTS // max(X.shape[1], 1))
    map_blocks(
        lambda start: np.subtract(X[start : start + step], row, out=out[start : start + step]),
        range(0, n_rows, step),
        xp=array_namespace(X),
    )
    return out


def take_rows(X, indices, like):
    # fancy indexing gathers rows of a column-major array without first
    # copying all of it; column-major output when ``like`` is column-major
    if like is not None and like.ndim == 2 and like.strides[0] < like.strides[1]:
        return np.take(X.T, indices, axis=1).T
    return X[np.asarray(indices)]
