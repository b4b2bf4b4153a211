"""Triton kernels of one Lloyd pass (imported only where triton imports).

Each program takes ``BLOCK_N`` rows of X and walks over the centres in tiles
of ``BLOCK_K``, the feature dimension in chunks of ``BLOCK_D``: the scores
``||c||^2 / 2 - x . c`` of a tile live in registers only, and a running
minimum (and second minimum) keeps the nearest centre of each row, ties to
the lowest index. No rows x k matrix is ever written.

With ``CENTERED``, every tile of X is centred (minus the row ``M``) as it
is loaded: the fit never writes a centred copy of X.

``PRECISION`` is that of ``tl.dot``: "ieee" (plain float32), "tf32x3"
(three TF32 products, float32 accuracy) or "tf32" (approximate). With
``CHECK_MARGIN`` a TF32 pass keeps the rows whose second best score lies
beyond TF32's error bound of the best; the others are left out of the sums
and listed, and ``listed_kernel`` decides between their two best centres in
float32 or, where a third is within the bound too, redoes them in tf32x3.
"""

from __future__ import annotations

import triton
import triton.language as tl

INFINITY = tl.constexpr(float("inf"))
#: the most that rounding to TF32 moves a float32, relative to itself
TF32_ROUNDING = tl.constexpr(2.0**-11)
#: the smallest normal float32: GPUs may flush anything smaller to zero
FLUSHED = tl.constexpr(2.0**-126)
#: feature chunk of the passes of one row at a time (sums, float32 rescoring,
#: norms): wider chunks of X spill registers once a tile holds 128 features
ROW_PASS_WIDTH = tl.constexpr(32)


@triton.jit
def _round_to_tf32(x):
    """Round float32 to the nearest TF32 (10 mantissa bits; ties away from
    zero): the tensor cores then multiply it exactly, whatever their own
    rounding, and each operand is off by at most 2^-11 of itself."""
    bits = x.to(tl.int32, bitcast=True)
    return ((bits + 0x1000) & -8192).to(tl.float32, bitcast=True)


@triton.jit
def _load_x(X, stride_xd, M, row_offsets, row_ok, chunk, d, CENTERED: tl.constexpr):
    """Features ``chunk`` of the rows (0 outside X), minus the mean ``M`` when
    ``CENTERED``: the data is centred as it is read, never written centred."""
    inside = row_ok[:, None] & (chunk[None, :] < d)
    x = tl.load(X + row_offsets[:, None] + chunk[None, :] * stride_xd, mask=inside, other=0.0)
    if CENTERED:
        mean = tl.load(M + chunk, mask=chunk < d, other=0.0)
        x = tl.where(inside, x - mean[None, :], 0.0)
    return x


@triton.jit
def _row_chunk(X, stride_xd, M, x, row_offsets, row_ok, chunk, d, HELD: tl.constexpr,
               CENTERED: tl.constexpr):
    """Features ``chunk`` of the rows: ``x``, the tile already on chip, when
    it holds them all (``HELD``: X is read once per pass), else loaded."""
    if HELD:
        values = x[0]
    else:
        values = _load_x(X, stride_xd, M, row_offsets, row_ok, chunk, d, CENTERED)
    return values


@triton.jit
def _x_tile(X, stride_xd, M, row_offsets, row_ok, d, BLOCK_D: tl.constexpr,
            PIECE_D: tl.constexpr, SINGLE_CHUNK: tl.constexpr, CENTERED: tl.constexpr):
    """All features of the rows when they fit one chunk (the tile then stays
    on chip for every centre tile), as a tuple of pieces of ``PIECE_D``
    features; else a placeholder.

    Where Triton cannot tell that the rows come in 16-byte steps (d not a
    multiple of 16), it loads one feature a thread: a tile of 128 features
    then spreads its warps over the features, each thread holding 128 rows
    (their addresses and sums), and spills registers on sm_90. Pieces of 32
    features keep the warps on rows."""
    if SINGLE_CHUNK:
        x = ()
        for piece in tl.static_range(BLOCK_D // PIECE_D):
            chunk = piece * PIECE_D + tl.arange(0, PIECE_D)
            x = x + (_load_x(X, stride_xd, M, row_offsets, row_ok, chunk, d, CENTERED),)
    else:
        x = (tl.zeros((1, BLOCK_D), tl.float32),)
    return x


@triton.jit
def _rounded_tile(x):
    """The pieces of ``x`` rounded to TF32."""
    rounded = ()
    for piece in tl.static_range(len(x)):
        rounded = rounded + (_round_to_tf32(x[piece]),)
    return rounded


@triton.jit
def _tile_scores(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, x, row_offsets, row_ok, k_start, d,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr, ROUND_X: tl.constexpr,
    CENTERED: tl.constexpr,
):
    """Scores ``||c||^2 / 2 - x . c`` of the rows against centres
    ``k_start .. k_start + BLOCK_K``. ``C`` is padded with zeros to whole
    tiles (rows of ``C_ROW`` numbers, a multiple of ``BLOCK_D``; whole
    ``BLOCK_K`` tiles of centres), so its loads need no mask; ``H`` past the
    last centre is larger than any score. ``ROUND_X``: the chunks of X read
    here are rounded to TF32 (the pieces of a single chunk ``x`` come
    rounded)."""
    features = tl.arange(0, BLOCK_D)
    cols = k_start + tl.arange(0, BLOCK_K)
    col_offsets = cols * C_ROW
    if SINGLE_CHUNK:
        PIECE_D: tl.constexpr = BLOCK_D // len(x)
        c = tl.load(C + col_offsets[None, :] + tl.arange(0, PIECE_D)[:, None])
        dots = tl.dot(x[0], c, input_precision=PRECISION)
        for piece in tl.static_range(1, len(x)):
            chunk = piece * PIECE_D + tl.arange(0, PIECE_D)
            c = tl.load(C + col_offsets[None, :] + chunk[:, None])
            dots = tl.dot(x[piece], c, dots, input_precision=PRECISION)
    else:
        dots = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
        for d_start in range(0, d, BLOCK_D):
            chunk = d_start + features
            x_chunk = _load_x(X, stride_xd, M, row_offsets, row_ok, chunk, d, CENTERED)
            c = tl.load(C + col_offsets[None, :] + chunk[:, None])
            if ROUND_X:
                x_chunk = _round_to_tf32(x_chunk)
            dots = tl.dot(x_chunk, c, dots, input_precision=PRECISION)
    half_norms = tl.load(H + cols)
    return half_norms[None, :] - dots


@triton.jit
def _row_tile_scores(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, x, rows, row_ok, d, k,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr, WITH_SECOND: tl.constexpr,
    LANE_MIN: tl.constexpr, CENTERED: tl.constexpr,
):
    """Nearest centre, best and second best score of the rows ``rows`` (``x``:
    their tile from ``_x_tile``).

    ``LANE_MIN``: the running minima are kept per column of the tile (lane)
    across centre tiles, and reduced across lanes once at the end: a few
    elementwise operations per score instead of row reductions per tile.
    """
    best = tl.full((BLOCK_N,), INFINITY, tl.float32)
    second = tl.full((BLOCK_N,), INFINITY, tl.float32)
    label = tl.zeros((BLOCK_N,), tl.int32)
    lanes = tl.arange(0, BLOCK_K)
    lane_best = tl.full((BLOCK_N, BLOCK_K), INFINITY, tl.float32)
    lane_second = tl.full((BLOCK_N, BLOCK_K), INFINITY, tl.float32)
    lane_start = tl.zeros((BLOCK_N, BLOCK_K), tl.int32)
    row_offsets = rows.to(tl.int64) * stride_xn
    for k_start in range(0, k, BLOCK_K):
        scores = _tile_scores(
            X, stride_xn, stride_xd, M, C, C_ROW, H, x, row_offsets, row_ok,
            k_start, d, BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, False, CENTERED,
        )
        if LANE_MIN:
            if WITH_SECOND:
                lane_second = tl.minimum(lane_second, tl.maximum(lane_best, scores))
            lane_better = scores < lane_best  # strict: an earlier tile keeps a tie
            lane_start = tl.where(lane_better, k_start, lane_start)
            lane_best = tl.where(lane_better, scores, lane_best)
        elif PRECISION == "tf32" and not WITH_SECOND:
            # approximate anyway: the lane in the low bits, one reduction; a
            # negative float is the smaller the larger its bits, so there the
            # lane's bits are flipped (ties: the lowest lane)
            bits = tl.minimum(scores, 3.0e38).to(tl.int32, bitcast=True)
            flip = (bits >> 31) & (BLOCK_K - 1)
            keys = ((bits & -BLOCK_K) | (lanes[None, :] ^ flip)).to(tl.float32, bitcast=True)
            key_bits = tl.min(keys, axis=1).to(tl.int32, bitcast=True)
            tile_label = (key_bits & (BLOCK_K - 1)) ^ ((key_bits >> 31) & (BLOCK_K - 1))
            tile_best = (key_bits & -BLOCK_K).to(tl.float32, bitcast=True)
            better = tile_best < best
            label = tl.where(better, tile_label + k_start, label)
            best = tl.where(better, tile_best, best)
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
def _insert(b1, i1, b2, i2, b3, value, index):
    """Insert ``(value, index)`` into each row's three smallest scores
    ``b1 <= b2 <= b3`` (indices of the first two); ties keep the earlier."""
    first = value < b1
    second = ~first & (value < b2)
    third = ~first & ~second & (value < b3)
    b3 = tl.where(first | second, b2, tl.where(third, value, b3))
    b2_new = tl.where(first, b1, tl.where(second, value, b2))
    i2 = tl.where(first, i1, tl.where(second, index, i2))
    b1 = tl.where(first, value, b1)
    i1 = tl.where(first, index, i1)
    return b1, i1, b2_new, i2, b3


@triton.jit
def _top_three(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, x, rows, row_ok, d, k,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr, CENTERED: tl.constexpr,
):
    """The two smallest scores of each row with their centres, and the third
    smallest score (``PRECISION``'s products of operands rounded to TF32:
    ``C`` comes rounded, X's rows are rounded here).

    Each score carries its lane in its last log2(BLOCK_K) mantissa bits (off
    by under ``BLOCK_K`` ulps, which the caller's bound covers): the keys of
    a row are distinct, and their low bits say where they came from. Each
    two neighbouring lanes (held by one thread) are ordered first; then the
    smallest of the lower ones is the best, the pair of the best gives its
    higher one to the second smallest, and the pairs of the best two give
    theirs to the third. The third is exact unless the two best share a pair;
    then it is the second, a lower bound (the caller redoes such a row when
    its two best are close). On sm_90 that takes 4.5 instructions a score
    against 7 for three reductions over the lanes. ``H`` is the largest
    finite float past the last centre, so every key is finite.
    """
    lanes = tl.arange(0, BLOCK_K)
    b1 = tl.full((BLOCK_N,), INFINITY, tl.float32)
    b2 = tl.full((BLOCK_N,), INFINITY, tl.float32)
    b3 = tl.full((BLOCK_N,), INFINITY, tl.float32)
    i1 = tl.zeros((BLOCK_N,), tl.int32)
    i2 = tl.zeros((BLOCK_N,), tl.int32)
    row_offsets = rows.to(tl.int64) * stride_xn
    if SINGLE_CHUNK:
        x = _rounded_tile(x)
    for k_start in range(0, k, BLOCK_K):
        scores = _tile_scores(
            X, stride_xn, stride_xd, M, C, C_ROW, H, x, row_offsets, row_ok,
            k_start, d, BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, True, CENTERED,
        )
        bits = scores.to(tl.int32, bitcast=True)
        keys = ((bits & -BLOCK_K) | lanes[None, :]).to(tl.float32, bitcast=True)
        even, odd = tl.split(tl.reshape(keys, (BLOCK_N, BLOCK_K // 2, 2)))
        low = tl.minimum(even, odd)
        high = tl.maximum(even, odd)
        t1 = tl.min(low, axis=1)
        t2 = tl.min(tl.where(low > t1[:, None], low, high), axis=1)
        t3 = tl.min(tl.where(low > t2[:, None], low, high), axis=1)
        j1 = (t1.to(tl.int32, bitcast=True) & (BLOCK_K - 1)) + k_start
        j2 = (t2.to(tl.int32, bitcast=True) & (BLOCK_K - 1)) + k_start
        b1, i1, b2, i2, b3 = _insert(b1, i1, b2, i2, b3, t1, j1)
        b1, i1, b2, i2, b3 = _insert(b1, i1, b2, i2, b3, t2, j2)
        b1, i1, b2, i2, b3 = _insert(b1, i1, b2, i2, b3, t3, j2)
    return i1, i2, b1, b2, b3


@triton.jit
def _float32_scores(X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, x, rows, row_ok,
                    centre, d, BLOCK_N: tl.constexpr, WIDTH: tl.constexpr, HELD: tl.constexpr,
                    CENTERED: tl.constexpr):
    """``||c||^2 / 2 - x . c`` of each row against its own ``centre``, in
    plain float32 (elementwise products, then a sum per row)."""
    features = tl.arange(0, WIDTH)
    row_offsets = rows.to(tl.int64) * stride_xn
    centre_offsets = centre * C_ROW
    dots = tl.zeros((BLOCK_N,), tl.float32)
    for d_start in range(0, d, WIDTH):
        chunk = d_start + features
        values = _row_chunk(X, stride_xd, M, x, row_offsets, row_ok, chunk, d, HELD, CENTERED)
        c = tl.load(C + centre_offsets[:, None] + chunk[None, :])
        dots += tl.sum(values * c, axis=1)
    return tl.load(H + centre) - dots


@triton.jit
def _better_of_two(X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, x, rows, row_ok,
                   first, second, d, BLOCK_N: tl.constexpr, WIDTH: tl.constexpr,
                   HELD: tl.constexpr, CENTERED: tl.constexpr):
    """Of the centres ``first`` and ``second`` of each row, the nearer in
    float32 (ties: the lower index), and its score."""
    score_first = _float32_scores(X, stride_xn, stride_xd, M, C, C_ROW, H, x, rows, row_ok,
                                  first, d, BLOCK_N, WIDTH, HELD, CENTERED)
    score_second = _float32_scores(X, stride_xn, stride_xd, M, C, C_ROW, H, x, rows, row_ok,
                                   second, d, BLOCK_N, WIDTH, HELD, CENTERED)
    takes_second = (score_second < score_first) | (
        (score_second == score_first) & (second < first))
    return (tl.where(takes_second, second, first),
            tl.where(takes_second, score_second, score_first))


@triton.jit
def _append(LIST, COUNT, rows, others, chosen, WITH_OTHER: tl.constexpr):
    """Append the ``chosen`` rows (and ``others``, one number each) to ``LIST``:
    one atomic per program that has any, on the one counter ``COUNT``."""
    n_chosen = tl.sum(chosen.to(tl.int32), axis=0)
    if n_chosen > 0:
        start = tl.atomic_add(COUNT, n_chosen, sem="relaxed")
        slot = (start + tl.cumsum(chosen.to(tl.int32), axis=0) - 1).to(tl.int64)
        if WITH_OTHER:
            tl.store(LIST + 2 * slot, rows.to(tl.int32), mask=chosen)
            tl.store(LIST + 2 * slot + 1, others.to(tl.int32), mask=chosen)
        else:
            tl.store(LIST + slot, rows.to(tl.int32), mask=chosen)


@triton.jit
def _row_norms(X, stride_xn, stride_xd, M, x, rows, row_ok, d, BLOCK_N: tl.constexpr,
               BLOCK_D: tl.constexpr, ROW_D: tl.constexpr, SINGLE_CHUNK: tl.constexpr,
               CENTERED: tl.constexpr, MEASURE_ROUNDING: tl.constexpr):
    """||x|| of the rows, and how far rounding to TF32 moves them, ||x -
    tf32(x)||: measured (``MEASURE_ROUNDING``), else its bound 2^-11 ||x||.
    From their tile ``x`` of all features, or read in chunks."""
    WIDTH: tl.constexpr = BLOCK_D if SINGLE_CHUNK else ROW_D
    features = tl.arange(0, WIDTH)
    row_offsets = rows.to(tl.int64) * stride_xn
    squares = tl.zeros((BLOCK_N,), tl.float32)
    moved = tl.zeros((BLOCK_N,), tl.float32)
    # a tile of one piece takes the loop (once): at d = 128 that spills no
    # registers on sm_90, where the piece taken directly spills 4
    if SINGLE_CHUNK and len(x) > 1:
        for piece in tl.static_range(len(x)):
            squares += tl.sum(x[piece] * x[piece], axis=1)
            if MEASURE_ROUNDING:
                rounding = _round_to_tf32(x[piece]) - x[piece]
                moved += tl.sum(rounding * rounding, axis=1)
    else:
        for d_start in range(0, d, WIDTH):
            chunk = d_start + features
            values = _row_chunk(X, stride_xd, M, x, row_offsets, row_ok, chunk, d, SINGLE_CHUNK,
                                CENTERED)
            squares += tl.sum(values * values, axis=1)
            if MEASURE_ROUNDING:
                rounding = _round_to_tf32(values) - values
                moved += tl.sum(rounding * rounding, axis=1)
    # plus what squares flushed to zero may have lost (under 2^-126 each)
    norm = tl.sqrt(squares + d * FLUSHED)
    if MEASURE_ROUNDING:
        moved = tl.sqrt(moved + d * FLUSHED)
    else:
        moved = norm * TF32_ROUNDING
    return norm, moved


@triton.jit
def _add_rows(X, stride_xn, stride_xd, M, x, W, SUMS, TOTALS, SCALES, rows, row_ok, label, d,
              k, copies, WIDTH: tl.constexpr, HELD: tl.constexpr, WITH_WEIGHTS: tl.constexpr,
              FIXED_POINT: tl.constexpr, CENTERED: tl.constexpr):
    """Atomically add the (weighted) rows into ``SUMS[copy, label]``, weights
    into ``TOTALS[copy, label]``: ``copies`` replicas, one per program modulo
    ``copies``, so that fewer atomics collide on one address.

    ``FIXED_POINT``: the sums are integers, each value times ``SCALES[0]``
    (weights: ``SCALES[1]``), a power of two that keeps every sum below
    2^62; integer additions do not depend on their order (deterministic).
    """
    features = tl.arange(0, WIDTH)
    row_offsets = rows.to(tl.int64) * stride_xn
    slot = (tl.program_id(0) % copies).to(tl.int64) * k + label.to(tl.int64)
    sum_offsets = slot * d
    if WITH_WEIGHTS:
        weight = tl.load(W + rows, mask=row_ok, other=0.0)
    else:
        weight = tl.where(row_ok, 1.0, 0.0)
    for d_start in range(0, d, WIDTH):
        chunk = d_start + features
        inside = row_ok[:, None] & (chunk[None, :] < d)
        values = _row_chunk(X, stride_xd, M, x, row_offsets, row_ok, chunk, d, HELD, CENTERED)
        if WITH_WEIGHTS:
            values = values * weight[:, None]
        if FIXED_POINT:
            values = tl.floor(values.to(tl.float64) * tl.load(SCALES) + 0.5).to(tl.int64)
        tl.atomic_add(SUMS + sum_offsets[:, None] + chunk[None, :],
                      values.to(SUMS.dtype.element_ty), mask=inside, sem="relaxed")
    if FIXED_POINT:
        weight = tl.floor(weight.to(tl.float64) * tl.load(SCALES + 1) + 0.5).to(tl.int64)
    tl.atomic_add(TOTALS + slot, weight.to(TOTALS.dtype.element_ty), mask=row_ok, sem="relaxed")


@triton.jit
def _store_row_results(
    X, stride_xn, stride_xd, M, x, W, LABELS, BEST, SECOND, SUMS, TOTALS, SCALES,
    rows, row_ok, summed, label, best, second, d, k, copies,
    WIDTH: tl.constexpr, HELD: tl.constexpr, WITH_SECOND: tl.constexpr, WITH_SCORES: tl.constexpr,
    WITH_SUMS: tl.constexpr, WITH_WEIGHTS: tl.constexpr, FIXED_POINT: tl.constexpr,
    CENTERED: tl.constexpr,
):
    """Store the labels (and scores) of the rows, and add the rows ``summed``
    to the sums of their clusters."""
    tl.store(LABELS + rows, label.to(LABELS.dtype.element_ty), mask=row_ok)
    if WITH_SCORES:
        tl.store(BEST + rows, best, mask=row_ok)
    if WITH_SECOND:
        tl.store(SECOND + rows, second, mask=row_ok)
    if WITH_SUMS:
        _add_rows(X, stride_xn, stride_xd, M, x, W, SUMS, TOTALS, SCALES, rows, summed, label,
                  d, k, copies, WIDTH, HELD, WITH_WEIGHTS, FIXED_POINT, CENTERED)


# The kernels are not specialised on the numbers of rows and centres (only on
# d and the strides, which decide vector loads): a new n or k reuses the
# compiled kernel instead of compiling again when n or k turns a multiple of
# 16 or 1.
@triton.jit(do_not_specialize=["n", "k", "copies"])
def dense_kernel(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, W,
    LABELS, BEST, SECOND, SUMS, TOTALS,
    SCALES, CENTER_NORMS, CENTER_TERMS, REACH_SLACK, SAFETY, LANE_BITS, ABSOLUTE,
    LISTED, N_LISTED, PAIRS, N_PAIRS,
    n, d, k, copies,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, PIECE_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr,
    TRACK_SECOND: tl.constexpr, WITH_SECOND: tl.constexpr, WITH_SCORES: tl.constexpr,
    WITH_SUMS: tl.constexpr, WITH_WEIGHTS: tl.constexpr, FIXED_POINT: tl.constexpr,
    CHECK_MARGIN: tl.constexpr, LANE_MIN: tl.constexpr, CENTERED: tl.constexpr,
    MEASURE_ROUNDING: tl.constexpr,
):
    """One program per ``BLOCK_N`` rows of ``X`` (minus ``M`` when
    ``CENTERED``): labels (and scores, sums)."""
    ROW_D: tl.constexpr = min(BLOCK_D, ROW_PASS_WIDTH)
    HELD: tl.constexpr = SINGLE_CHUNK and BLOCK_D <= ROW_PASS_WIDTH
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    summed = row_ok
    x = _x_tile(X, stride_xd, M, rows * stride_xn, row_ok, d, BLOCK_D, PIECE_D, SINGLE_CHUNK,
                CENTERED)
    if CHECK_MARGIN:
        # The TF32 score against centre c is off by at most SAFETY (||x - x'||
        # ||c|| + ||x|| ||c - c'|| + ACCUMULATION ||x|| ||c||) + LANE_BITS
        # |score| + ABSOLUTE/2, x' and c' the operands rounded to TF32
        # (``check_bound``), so the difference of the best and any other by
        # SAFETY (||x - x'|| CENTER_NORMS[best] + ||x|| CENTER_TERMS[best]) +
        # LANE_BITS (|best| + |other|) + ABSOLUTE: the sum of the two bounds,
        # the other's taken with the largest ||c|| and ||c - c'|| (and the
        # largest |score| of the second and third; beyond the third, a
        # larger score is farther above the best than its bound grows).
        # Tighter (where smaller), x's rounding counts against
        # the distance of the two centres, 2 ``reach`` at most: every centre
        # that the first bound leaves in doubt lies within ``reach`` of x
        # (||x - c||^2 = ||x||^2 + 2 score, plus the rounding of H, under
        # REACH_SLACK). A row whose second best scores more than that above
        # the best has its nearest centre; one whose third does has it
        # among its two best (listed in PAIRS, decided in float32 by
        # listed_kernel); the others are listed in LISTED and redone. The
        # best scores stored are TF32's: this pass gives labels and sums.
        # The norms come from a tile of all features, not read again: after
        # the loop where the tile is held for the sums anyway (before it, a
        # norm a row live across the loop spills a register on sm_90), else
        # before it. (The order of the terms of ``reach`` decides register
        # spills on sm_90: ``test_triton_compiles_for_sm90``.)
        if not HELD:
            norm, rounding = _row_norms(X, stride_xn, stride_xd, M, x, rows, row_ok, d, BLOCK_N,
                                        BLOCK_D, ROW_D, SINGLE_CHUNK, CENTERED,
                                        MEASURE_ROUNDING)
        label, second_centre, best, second, third = _top_three(
            X, stride_xn, stride_xd, M, C, C_ROW, H, x, rows, row_ok, d, k,
            BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, CENTERED,
        )
        if HELD:
            norm, rounding = _row_norms(X, stride_xn, stride_xd, M, x, rows, row_ok, d, BLOCK_N,
                                        BLOCK_D, ROW_D, SINGLE_CHUNK, CENTERED,
                                        MEASURE_ROUNDING)
        label = tl.minimum(label, k - 1)  # a padded centre wins only past float32's range
        norms = tl.load(CENTER_NORMS + label)
        centre_terms = norm * tl.load(CENTER_TERMS + label)
        lanes = (tl.abs(best) + tl.maximum(tl.abs(second), tl.abs(third))) * LANE_BITS + ABSOLUTE
        bound = SAFETY * (rounding * norms + centre_terms) + lanes
        slack = tl.load(REACH_SLACK)
        reach = tl.sqrt(tl.maximum(2.0 * best + (4.0 * bound + slack) + norm * norm, 0.0))
        bound = tl.minimum(bound, SAFETY * (2.0 * rounding * reach + centre_terms) + lanes)
        # a NaN bound (0 x inf at the ends of float32's range) decides nothing
        doubtful = row_ok & ~(third - best > bound)
        close = row_ok & ~doubtful & ~(second - best > bound)
        _append(LISTED, N_LISTED, rows, rows, doubtful, False)
        _append(PAIRS, N_PAIRS, rows, second_centre, close, True)
        summed = row_ok & ~doubtful & ~close
    else:
        label, best, second = _row_tile_scores(
            X, stride_xn, stride_xd, M, C, C_ROW, H, x, rows, row_ok, d, k,
            BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, TRACK_SECOND, LANE_MIN, CENTERED,
        )
    _store_row_results(
        X, stride_xn, stride_xd, M, x, W, LABELS, BEST, SECOND, SUMS, TOTALS, SCALES,
        rows, row_ok, summed, label, best, second, d, k, copies,
        ROW_D, HELD, WITH_SECOND, WITH_SCORES, WITH_SUMS, WITH_WEIGHTS, FIXED_POINT, CENTERED,
    )


@triton.jit(do_not_specialize=["k", "copies"])
def listed_kernel(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, W,
    LABELS, BEST, SECOND, SUMS, TOTALS, SCALES, LISTED, N_LISTED,
    d, k, copies,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, PIECE_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr,
    WITH_SECOND: tl.constexpr, WITH_SCORES: tl.constexpr, WITH_SUMS: tl.constexpr,
    WITH_WEIGHTS: tl.constexpr, FIXED_POINT: tl.constexpr, LANE_MIN: tl.constexpr,
    CENTERED: tl.constexpr, TWO: tl.constexpr,
):
    """Finish the rows listed by ``dense_kernel`` (a fixed grid: each program
    loops over tiles of the list, however long it turned out): redo them
    over all centres, or (``TWO``: pairs of a row and its second best
    centre) decide between the two best in float32."""
    ROW_D: tl.constexpr = min(BLOCK_D, ROW_PASS_WIDTH)
    HELD: tl.constexpr = SINGLE_CHUNK and BLOCK_D <= ROW_PASS_WIDTH
    n_listed = tl.load(N_LISTED)
    for start in range(tl.program_id(0) * BLOCK_N, n_listed, tl.num_programs(0) * BLOCK_N):
        slots = start + tl.arange(0, BLOCK_N)
        row_ok = slots < n_listed
        if TWO:
            rows = tl.load(LISTED + 2 * slots.to(tl.int64), mask=row_ok, other=0).to(tl.int64)
        else:
            rows = tl.load(LISTED + slots, mask=row_ok, other=0).to(tl.int64)
        x = _x_tile(X, stride_xd, M, rows * stride_xn, row_ok, d, BLOCK_D, PIECE_D,
                    SINGLE_CHUNK, CENTERED)
        if TWO:
            first = tl.load(LABELS + rows, mask=row_ok, other=0).to(tl.int32)
            other = tl.load(LISTED + 2 * slots.to(tl.int64) + 1, mask=row_ok, other=0)
            label, best = _better_of_two(X, stride_xn, stride_xd, M, C, C_ROW, H, x, rows,
                                         row_ok, first, other, d, BLOCK_N, ROW_D, HELD, CENTERED)
            second = best
        else:
            label, best, second = _row_tile_scores(
                X, stride_xn, stride_xd, M, C, C_ROW, H, x, rows, row_ok, d, k,
                BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, WITH_SECOND, LANE_MIN,
                CENTERED,
            )
        _store_row_results(
            X, stride_xn, stride_xd, M, x, W, LABELS, BEST, SECOND, SUMS, TOTALS, SCALES,
            rows, row_ok, row_ok, label, best, second, d, k, copies,
            ROW_D, HELD, WITH_SECOND, WITH_SCORES, WITH_SUMS, WITH_WEIGHTS, FIXED_POINT, CENTERED,
        )


@triton.jit(do_not_specialize=["n", "m"])
def candidates_kernel(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, H, XSQ, W, CLOSEST,
    OUT, stride_on, PARTIAL, stride_pp,
    n, d, m,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, PIECE_D: tl.constexpr,
    SINGLE_CHUNK: tl.constexpr, PRECISION: tl.constexpr, CENTERED: tl.constexpr,
    WITH_WEIGHTS: tl.constexpr,
):
    """Greedy k-means++'s pass for ``m`` candidate centres ``C`` (half squared
    norms ``H``): per row and candidate, ``min(CLOSEST, ||x||^2 + 2 (||c||^2/2
    - x . c))`` clipped at 0 into ``OUT``; per program and candidate, the
    weighted sum of those over its rows into ``PARTIAL`` (added up in a
    fixed order by the caller: the potentials do not depend on the schedule)."""
    program = tl.program_id(0)
    rows = program.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    row_offsets = rows * stride_xn
    x = _x_tile(X, stride_xd, M, row_offsets, row_ok, d, BLOCK_D, PIECE_D, SINGLE_CHUNK,
                CENTERED)
    x_sq = tl.load(XSQ + rows, mask=row_ok, other=0.0)
    closest = tl.load(CLOSEST + rows, mask=row_ok, other=0.0)
    if WITH_WEIGHTS:
        weight = tl.load(W + rows, mask=row_ok, other=0.0)
    else:
        weight = tl.where(row_ok, 1.0, 0.0)
    for k_start in range(0, m, BLOCK_K):
        scores = _tile_scores(
            X, stride_xn, stride_xd, M, C, C_ROW, H, x, row_offsets, row_ok,
            k_start, d, BLOCK_N, BLOCK_K, BLOCK_D, SINGLE_CHUNK, PRECISION, False, CENTERED,
        )
        cols = k_start + tl.arange(0, BLOCK_K)
        inside = row_ok[:, None] & (cols[None, :] < m)
        nearest = tl.minimum(closest[:, None], tl.maximum(x_sq[:, None] + 2.0 * scores, 0.0))
        tl.store(OUT + rows[:, None] * stride_on + cols[None, :], nearest, mask=inside)
        # masked before the product: a padded candidate is inf away, and inf
        # times a zero weight is NaN (discarded, but the interpreter warns)
        partial = tl.sum(tl.where(inside, nearest, 0.0) * weight[:, None], axis=0)
        tl.store(PARTIAL + program.to(tl.int64) * stride_pp + cols, partial, mask=cols < m)


@triton.jit(do_not_specialize=["n"])
def assigned_kernel(
    X, stride_xn, stride_xd, M, C, C_ROW: tl.constexpr, LABELS, OUT, n, d,
    BLOCK_N: tl.constexpr, CENTERED: tl.constexpr,
):
    """``||x - c||^2`` of each row (minus ``M`` when ``CENTERED``) and the
    centre ``C[label]`` of its label, the differences squared and added in
    float32: no expansion, and nothing the size of a block of X."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    row_offsets = rows * stride_xn
    centre_offsets = tl.load(LABELS + rows, mask=row_ok, other=0).to(tl.int32) * C_ROW
    features = tl.arange(0, ROW_PASS_WIDTH)
    total = tl.zeros((BLOCK_N,), tl.float32)
    for d_start in range(0, d, ROW_PASS_WIDTH):
        chunk = d_start + features
        x = _load_x(X, stride_xd, M, row_offsets, row_ok, chunk, d, CENTERED)
        difference = x - tl.load(C + centre_offsets[:, None] + chunk[None, :])
        total += tl.sum(difference * difference, axis=1)
    tl.store(OUT + rows, total, mask=row_ok)


def grid_size(n: int, block_n: int) -> int:
    return triton.cdiv(n, block_n)
