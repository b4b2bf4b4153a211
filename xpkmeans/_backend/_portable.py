"""Portable twins of the backend primitives: the array API standard alone.

Every fast path elsewhere in the backend is tested equal to the function of
the same name here (``tests/test_backend.py``).
"""

from __future__ import annotations

from typing import Any

from ._host import array_namespace, device_of, map_row_blocks


def nearest_center_labels(X: Any, centers: Any, half_sq_norms: Any) -> Any:
    """A product, then ``argmin`` per row."""
    xp = array_namespace(X, centers)
    return xp.argmin(half_sq_norms - X @ xp.permute_dims(centers, (1, 0)), axis=1)


def nearest_two_centers(X: Any, centers: Any, half_sq_norms: Any) -> tuple[Any, Any, Any]:
    """Labels, the smallest and the second smallest score of each row."""
    xp = array_namespace(X, centers)
    scores = half_sq_norms - X @ xp.permute_dims(centers, (1, 0))
    labels = xp.argmin(scores, axis=1)
    is_nearest = xp.arange(centers.shape[0], device=device_of(X))[None, :] == labels[:, None]
    infinity = xp.asarray(xp.inf, dtype=scores.dtype, device=device_of(X))
    others = xp.where(is_nearest, infinity, scores)
    return labels, xp.min(scores, axis=1), xp.min(others, axis=1)


def column_sums_of_block(X: Any, dtype: Any) -> Any:
    """Reduced in ``dtype`` (no copy of the block in it: torch and CuPy cast
    as they add)."""
    xp = array_namespace(X)
    return xp.sum(X, axis=0, dtype=dtype)


def fold_candidates(cross: Any, x_sq_norms: Any, rows_sq_norms: Any, closest_sq: Any) -> Any:
    """``min(closest_sq, max(x_sq_norms + cross + rows_sq_norms, 0))`` of a
    block of greedy k-means++'s pass (``cross``: ``-2 x . c``)."""
    xp = array_namespace(cross)
    # (clip with an array bound is one pass, but 1.4x slower in NumPy, and
    # torch's moves a scalar bound to the device on every call)
    return xp.minimum(closest_sq, xp.clip(x_sq_norms + cross + rows_sq_norms, 0, None))


def scatter(values: Any, indices: Any, updates: Any) -> Any:
    """The standard has no integer-array assignment: each position finds its
    slot in ``indices`` by binary search."""
    xp = array_namespace(values)
    if indices.shape[0] == 0:
        return values
    positions = xp.arange(values.shape[0], dtype=indices.dtype, device=device_of(values))
    slot = xp.clip(xp.searchsorted(indices, positions), max=indices.shape[0] - 1)
    hit = xp.take(indices, slot) == positions
    return xp.where(hit, xp.take(updates, slot), values)


def largest_indices(values: Any, count: int) -> Any:
    """A full stable sort."""
    xp = array_namespace(values)
    return xp.argsort(values, descending=True, stable=True)[:count]


def segment_count(segment_ids: Any, n_segments: int) -> Any:
    """Row blocks of one-hot comparisons, summed as int64."""
    xp = array_namespace(segment_ids)
    device = device_of(segment_ids)
    segments = xp.arange(n_segments, device=device)[:, None]
    counts = xp.zeros((n_segments,), dtype=xp.int64, device=device)
    for block in map_row_blocks(
        lambda rows: xp.sum(xp.astype(segment_ids[None, rows] == segments, xp.int64), axis=1),
        segment_ids.shape[0], n_segments, xp=xp, device=device,
    ):
        counts = counts + block
    return counts


def segment_sum(
    values: Any, segment_ids: Any, n_segments: int, *, weights: Any = None
) -> tuple[Any, Any]:
    """One-hot (segments x rows) blocks times ``values``."""
    xp = array_namespace(values, segment_ids)
    n, d = values.shape
    device = device_of(values)
    segments = xp.arange(n_segments, device=device)[:, None]

    def block_sums(rows: slice) -> tuple[Any, Any]:
        one_hot = xp.astype(segment_ids[None, rows] == segments, values.dtype)
        if weights is not None:
            one_hot = one_hot * weights[None, rows]
        return one_hot @ values[rows, :], xp.sum(one_hot, axis=1)

    sums = xp.zeros((n_segments, d), dtype=values.dtype, device=device)
    totals = xp.zeros((n_segments,), dtype=values.dtype, device=device)
    for block_sum, block_total in map_row_blocks(block_sums, n, n_segments, xp=xp, device=device):
        sums = sums + block_sum
        totals = totals + block_total
    return sums, totals
