"""Triton kernels of one Lloyd pass (imported only where triton imports).

Each program takes ``BLOCK_N`` rows of X and walks over the centres in tiles
of ``BLOCK_K``, the feature dimension in chunks of ``BLOCK_D``: the scores
``||c||^2 / 2 - x . c`` of a tile live in registers only, and a running
minimum (and second minimum) keeps the nearest centre of each row, ties to
the lowest index. No rows x k matrix is ever written.

``PRECISION`` is that of ``tl.dot``: "ieee" (plain float32), "tf32x3"
(three TF32 products, float32 accuracy) or "tf32" (approximate). With
``CHECK_MARGIN`` a TF32 pass flags the rows whose best and second best
scores lie within TF32's error bound; they are left out of the sums and
listed, and ``listed_kernel`` redoes them in float32.
"""

from __future__ import annotations

import triton
import triton.language as tl

INFINITY = tl.constexpr(float("inf"))


@triton.jit
def _row_tile_scores(
    X, stride_xn, stride_xd, C, stride_ck, stride_cd, H, rows, row_ok, d, k,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr, WITH_SECOND: tl.constexpr,
    LANE_MIN: tl.constexpr,
):
    """Nearest centre, best and second best score of the rows ``rows``.

    ``LANE_MIN``: the running minima are kept per column of the tile (lane)
    across centre tiles, and reduced across lanes once at the end: a few
    elementwise operations per score instead of row reductions per tile.
    """
    features = tl.arange(0, BLOCK_D)
    best = tl.full((BLOCK_N,), INFINITY, tl.float32)
    second = tl.full((BLOCK_N,), INFINITY, tl.float32)
    label = tl.zeros((BLOCK_N,), tl.int32)
    lanes = tl.arange(0, BLOCK_K)
    lane_best = tl.full((BLOCK_N, BLOCK_K), INFINITY, tl.float32)
    lane_second = tl.full((BLOCK_N, BLOCK_K), INFINITY, tl.float32)
    lane_start = tl.zeros((BLOCK_N, BLOCK_K), tl.int32)
    row_offsets = rows.to(tl.int64) * stride_xn
    if SINGLE_CHUNK:  # all features in one chunk: X's tile stays in registers
        x = tl.load(
            X + row_offsets[:, None] + features[None, :] * stride_xd,
            mask=row_ok[:, None] & (features[None, :] < d), other=0.0,
        )
    for k_start in range(0, k, BLOCK_K):
        cols = k_start + tl.arange(0, BLOCK_K)
        col_ok = cols < k
        col_offsets = cols.to(tl.int64) * stride_ck
        if SINGLE_CHUNK:
            c = tl.load(
                C + col_offsets[None, :] + features[:, None] * stride_cd,
                mask=col_ok[None, :] & (features[:, None] < d), other=0.0,
            )
            dots = tl.dot(x, c, input_precision=PRECISION)
        else:
            dots = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
            for d_start in range(0, d, BLOCK_D):
                chunk = d_start + features
                x = tl.load(
                    X + row_offsets[:, None] + chunk[None, :] * stride_xd,
                    mask=row_ok[:, None] & (chunk[None, :] < d), other=0.0,
                )
                c = tl.load(
                    C + col_offsets[None, :] + chunk[:, None] * stride_cd,
                    mask=col_ok[None, :] & (chunk[:, None] < d), other=0.0,
                )
                dots = tl.dot(x, c, dots, input_precision=PRECISION)
        # padded centres score +inf (their half norm is +inf, their dots 0)
        half_norms = tl.load(H + cols, mask=col_ok, other=INFINITY)
        scores = half_norms[None, :] - dots
        if LANE_MIN:
            if WITH_SECOND:
                lane_second = tl.minimum(lane_second, tl.maximum(lane_best, scores))
            lane_better = scores < lane_best  # strict: an earlier tile keeps a tie
            lane_start = tl.where(lane_better, k_start, lane_start)
            lane_best = tl.where(lane_better, scores, lane_best)
        else:
            tile_best = tl.min(scores, axis=1)
            tile_label = tl.argmin(scores, axis=1, tie_break_left=True)
            if WITH_SECOND:
                is_best = lanes[None, :] == tile_label[:, None]
                tile_second = tl.min(tl.where(is_best, INFINITY, scores), axis=1)
                second = tl.minimum(tl.minimum(second, tile_second), tl.maximum(best, tile_best))
            better = tile_best < best  # strict: an earlier tile keeps a tie
            label = tl.where(better, tile_label + k_start, label)
            best = tl.where(better, tile_best, best)
    if LANE_MIN:  # across lanes: the lowest index of the smallest score
        best = tl.min(lane_best, axis=1)
        index = lane_start + lanes[None, :]
        label = tl.min(tl.where(lane_best == best[:, None], index, k), axis=1)
        if WITH_SECOND:  # the best lane's own second, or another lane's best
            others = tl.where(index == label[:, None], lane_second, lane_best)
            second = tl.min(others, axis=1)
    return label, best, second


@triton.jit
def _row_sq_norms(X, stride_xn, stride_xd, rows, row_ok, d,
                  BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    features = tl.arange(0, BLOCK_D)
    row_offsets = rows.to(tl.int64) * stride_xn
    total = tl.zeros((BLOCK_N,), tl.float32)
    for d_start in range(0, d, BLOCK_D):
        chunk = d_start + features
        x = tl.load(
            X + row_offsets[:, None] + chunk[None, :] * stride_xd,
            mask=row_ok[:, None] & (chunk[None, :] < d), other=0.0,
        )
        total += tl.sum(x * x, axis=1)
    return total


@triton.jit
def _add_rows(X, stride_xn, stride_xd, W, SUMS, TOTALS, SCALES, rows, row_ok, label, d, k,
              copies, BLOCK_D: tl.constexpr, WITH_WEIGHTS: tl.constexpr,
              FIXED_POINT: tl.constexpr):
    """Atomically add the (weighted) rows into ``SUMS[copy, label]``, weights
    into ``TOTALS[copy, label]``: ``copies`` replicas, one per program modulo
    ``copies``, so that fewer atomics collide on one address.

    ``FIXED_POINT``: the sums are integers, each value times ``SCALES[0]``
    (weights: ``SCALES[1]``), a power of two that keeps every sum below
    2^62; integer additions do not depend on their order (deterministic).
    """
    features = tl.arange(0, BLOCK_D)
    row_offsets = rows.to(tl.int64) * stride_xn
    slot = (tl.program_id(0) % copies).to(tl.int64) * k + label.to(tl.int64)
    sum_offsets = slot * d
    if WITH_WEIGHTS:
        weight = tl.load(W + rows, mask=row_ok, other=0.0)
    else:
        weight = tl.where(row_ok, 1.0, 0.0)
    for d_start in range(0, d, BLOCK_D):
        chunk = d_start + features
        inside = row_ok[:, None] & (chunk[None, :] < d)
        x = tl.load(X + row_offsets[:, None] + chunk[None, :] * stride_xd, mask=inside, other=0.0)
        if WITH_WEIGHTS:
            x = x * weight[:, None]
        if FIXED_POINT:
            x = tl.floor(x.to(tl.float64) * tl.load(SCALES) + 0.5).to(tl.int64)
        tl.atomic_add(SUMS + sum_offsets[:, None] + chunk[None, :],
                      x.to(SUMS.dtype.element_ty), mask=inside, sem="relaxed")
    if FIXED_POINT:
        weight = tl.floor(weight.to(tl.float64) * tl.load(SCALES + 1) + 0.5).to(tl.int64)
    tl.atomic_add(TOTALS + slot, weight.to(TOTALS.dtype.element_ty), mask=row_ok, sem="relaxed")


@triton.jit
def _store_rows(LABELS, BEST, SECOND, rows, row_ok, label, best, second,
                WITH_SCORES: tl.constexpr, WITH_SECOND: tl.constexpr):
    """Store the rows' labels (and best, second-best scores)."""
    tl.store(LABELS + rows, label.to(LABELS.dtype.element_ty), mask=row_ok)
    if WITH_SCORES:
        tl.store(BEST + rows, best, mask=row_ok)
    if WITH_SECOND:
        tl.store(SECOND + rows, second, mask=row_ok)


@triton.jit
def dense_kernel(
    X, stride_xn, stride_xd, C, stride_ck, stride_cd, H, W,
    LABELS, BEST, SECOND, SUMS, TOTALS,
    SCALES, CENTER_NORM_MAX, LISTED, N_LISTED,
    n, d, k, copies,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr,
    TRACK_SECOND: tl.constexpr, WITH_SECOND: tl.constexpr, WITH_SCORES: tl.constexpr,
    WITH_SUMS: tl.constexpr, WITH_WEIGHTS: tl.constexpr, FIXED_POINT: tl.constexpr,
    CHECK_MARGIN: tl.constexpr, LANE_MIN: tl.constexpr,
):
    """One program per ``BLOCK_N`` rows: labels (and scores, sums)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    label, best, second = _row_tile_scores(
        X, stride_xn, stride_xd, C, stride_ck, stride_cd, H, rows, row_ok, d, k,
        BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, TRACK_SECOND, LANE_MIN,
    )
    _store_rows(LABELS, BEST, SECOND, rows, row_ok, label, best, second,
                WITH_SCORES, WITH_SECOND)
    summed = row_ok
    if CHECK_MARGIN:
        # |TF32 dot - float32 dot| <= 2^-9 ||x|| ||c||, each score; flag
        # margins within twice both errors (rounding mode aside).
        norm = tl.sqrt(_row_sq_norms(X, stride_xn, stride_xd, rows, row_ok, d, BLOCK_N, BLOCK_D))
        bound = norm * tl.load(CENTER_NORM_MAX) * 0.0078125  # 2^-7
        doubtful = row_ok & (second - best <= bound)
        n_doubtful = tl.sum(doubtful.to(tl.int32), axis=0)
        if n_doubtful > 0:  # most programs list nothing: no atomic on the one counter
            start = tl.atomic_add(N_LISTED, n_doubtful, sem="relaxed")
            slot = start + tl.cumsum(doubtful.to(tl.int32), axis=0) - 1
            tl.store(LISTED + slot, rows.to(tl.int32), mask=doubtful)
        summed = row_ok & ~doubtful
    if WITH_SUMS:
        _add_rows(X, stride_xn, stride_xd, W, SUMS, TOTALS, SCALES, rows, summed, label, d, k,
                  copies, BLOCK_D, WITH_WEIGHTS, FIXED_POINT)


@triton.jit
def listed_kernel(
    X, stride_xn, stride_xd, C, stride_ck, stride_cd, H, W,
    LABELS, BEST, SECOND, SUMS, TOTALS, SCALES, LISTED, N_LISTED,
    d, k, copies,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr,
    WITH_SECOND: tl.constexpr, WITH_SCORES: tl.constexpr, WITH_SUMS: tl.constexpr,
    WITH_WEIGHTS: tl.constexpr, FIXED_POINT: tl.constexpr, LANE_MIN: tl.constexpr,
):
    """Redo the rows listed by ``dense_kernel`` (a fixed grid: each program
    loops over tiles of the list, however long it turned out)."""
    n_listed = tl.load(N_LISTED)
    for start in range(tl.program_id(0) * BLOCK_N, n_listed, tl.num_programs(0) * BLOCK_N):
        slots = start + tl.arange(0, BLOCK_N)
        row_ok = slots < n_listed
        rows = tl.load(LISTED + slots, mask=row_ok, other=0).to(tl.int64)
        label, best, second = _row_tile_scores(
            X, stride_xn, stride_xd, C, stride_ck, stride_cd, H, rows, row_ok, d, k,
            BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, WITH_SECOND, LANE_MIN,
        )
        _store_rows(LABELS, BEST, SECOND, rows, row_ok, label, best, second,
                    WITH_SCORES, WITH_SECOND)
        if WITH_SUMS:
            _add_rows(X, stride_xn, stride_xd, W, SUMS, TOTALS, SCALES, rows, row_ok, label, d,
                      k, copies, BLOCK_D, WITH_WEIGHTS, FIXED_POINT)


def grid_size(n: int, block_n: int) -> int:
    return triton.cdiv(n, block_n)
