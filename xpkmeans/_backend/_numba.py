"""Compiled CPU kernels (numba, optional): one pass over X per Lloyd
iteration, and one per greedy k-means++ centre.

A pass goes in chunks of rows, a few per core (``map_blocks``); each chunk is a
compiled loop that releases the GIL and, per tile of ``TILE_ROWS`` rows:
copies the tile (any memory order of X) into a small buffer, transposed
(features x rows) for few features; takes its products with the centres by
BLAS as a (centres x rows) block; finds each row's first minimum of the
scores ``||c||^2 / 2 - x . c`` (the label) and, if asked, the best and
second-best scores, scanning the centres outermost so that the inner loop
runs over rows without branches (vectorised: 1.6-2.5x a per-row argmin);
then adds each point's weight and coordinates to its cluster's sums, row by
row, or for few clusters and features by one masked sum per cluster over
the transposed tile. Each step is its own loop, free of the others'
branches, so that it vectorises. Sums are per chunk, in float64, added in
chunk order: no ``rows x k`` matrix, and the result does not depend on which
core ran which chunk.

Greedy k-means++'s pass takes the products of a tile with its few
candidates by BLAS too, then for each candidate folds them into the
running minimum and its potential in one loop (``_candidates_run``):
the portable blocks took five NumPy passes over a ``rows x candidates``
block each.

Sparse CSR data has its own loop: each non-zero adds its value times one row
of the transposed centres to the row's products.

Torch CPU tensors go through the same kernels: their memory is read as
NumPy arrays (zero-copy), and the results come back as tensors.

Kernels compile on first use and are cached on disk (``cache=True``). They
copy arrays by explicit loops, never by slice assignment, whose shape checks
numba compiles for seconds (a first fit compiled for 12.6 s, now 6.5 s).
Without numba, ``AVAILABLE`` is False and the callers take other paths."""

from __future__ import annotations

import functools
import itertools

import numpy as np
from array_api_compat import is_torch_array

from ._threads import torch_on_one_thread

try:  # an optional extra; its BLAS products (np.dot) call SciPy's BLAS
    import numba
    import scipy.linalg.cython_blas  # noqa: F401
except ImportError:
    numba = None

AVAILABLE = numba is not None and not numba.config.DISABLE_JIT

# Rows per tile: the tile and its products stay in the L1/L2 cache (2048
# rows was no faster on 100k x 16 x 16 and 1.4x slower on 1M x 32 x 64).
TILE_ROWS = 256

# Below this many features a tile is copied transposed (features x rows):
# a column at a time, the copy vectorises (2.5x faster on 2 features) and
# the sums may go by masks; from it on, a row at a time (10-15% faster on
# 64 and 128 features, measured on 64 clusters).
_TRANSPOSED_BELOW_FEATURES = 64

# Sums go by masks (``_add_tile_by_masks``) up to this many clusters x
# (features + 1): on 2 features and 4 clusters 2x faster than row by row.
_MASKED_SUMS_UP_TO = 20

# A pass goes in chunks of at least this many rows, a few per core.
_MIN_ROWS_PER_CHUNK = 4096
_CHUNKS_PER_CORE = 4
# ... but one per core where the chunks' float64 sums (k x d each) would
# pass this: on a wide CSR matrix (k=200, d=50k: 80 MB a chunk), 4 per core
# held 1.7 GB on 16 cores. One per core is scikit-learn's own per-thread sums.
_CHUNK_SUMS_BYTES = 64 << 20


# Bytes of the vectors that ``_transpose_block`` shuffles (AVX-512; LLVM
# splits them into narrower ones on other CPUs).
_VECTOR_BYTES = 64


if AVAILABLE:
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _transpose_block(typingctx, rows, row, feature, tile):
        """``tile[feature + a, row + b] = rows[row + b, feature + a]`` for
        ``a, b < side``, ``side`` elements making one 64-byte vector: ``side``
        row vectors loaded, transposed in registers by ``log2(side)`` rounds of
        two-vector shuffles (round ``k`` swaps bit ``k`` of the row index with
        bit ``k`` of the feature index), stored as ``side`` tile vectors. The
        features of ``rows`` must be contiguous."""

        def codegen(context, builder, signature, args):
            rows_type, _, _, tile_type = signature.args
            rows_value, row, feature, tile_value = (
                context.cast(builder, value, type_, types_intp) if i in (1, 2) else value
                for i, (value, type_) in enumerate(zip(args, signature.args))
            )
            element = context.get_data_type(rows_type.dtype)
            side = _VECTOR_BYTES // (rows_type.dtype.bitwidth // 8)
            vector = ir.VectorType(element, side)
            align = rows_type.dtype.bitwidth // 8

            def vector_pointer(array_type, array_value, first, second):
                array = context.make_array(array_type)(context, builder, array_value)
                pointer = cgutils.get_item_pointer2(
                    context, builder, data=array.data,
                    shape=cgutils.unpack_tuple(builder, array.shape, 2),
                    strides=cgutils.unpack_tuple(builder, array.strides, 2),
                    layout=array_type.layout, inds=[first, second], wraparound=False,
                )
                return builder.bitcast(pointer, vector.as_pointer())

            def plus(value, offset):
                return builder.add(value, ir.Constant(value.type, offset))

            vectors = [
                builder.load(vector_pointer(rows_type, rows_value, plus(row, b), feature),
                             align=align)
                for b in range(side)
            ]
            bit = 1
            while bit < side:
                shuffled = list(vectors)
                for low in (i for i in range(side) if not i & bit):
                    for target, keep in ((low, 0), (low | bit, bit)):
                        mask = [(j & ~bit | keep) + (side if j & bit else 0) for j in range(side)]
                        shuffled[target] = builder.shuffle_vector(
                            vectors[low], vectors[low | bit],
                            ir.Constant(ir.VectorType(ir.IntType(32), side), mask),
                        )
                vectors = shuffled
                bit <<= 1
            for a in range(side):
                builder.store(vectors[a], vector_pointer(tile_type, tile_value, plus(feature, a), row),
                              align=align)
            return context.get_dummy_value()

        types_intp = numba.types.intp
        return numba.types.void(rows, row, feature, tile), codegen
else:
    _transpose_block = None


def _cached(decorator, function, **options):
    """``decorator(cache=True)(function)``; where numba finds no writable cache
    (a read-only install, no writable home), compiled in each process."""
    try:
        return decorator(cache=True, **options)(function)
    except RuntimeError:
        return decorator(cache=False, **options)(function)


def _jit(function):
    return _cached(numba.njit, function, nogil=True) if AVAILABLE else function


def _jit_reassociating(function):
    """``_jit``, free to reorder additions (to vectorise sums over rows)."""
    if not AVAILABLE:
        return function
    return _cached(numba.njit, function, nogil=True, fastmath={"reassoc", "contract"})


@_jit
def _first_minimum(scores, half_sq_norms):
    """Label (first minimum) of ``half_sq_norms - scores`` and its value."""
    best = np.inf
    label = 0
    for j in range(half_sq_norms.shape[0]):
        value = half_sq_norms[j] - scores[j]
        if value < best:
            best = value
            label = j
    return label, best


@_jit
def _first_two_minima(scores, half_sq_norms):
    """Label (first minimum) of ``half_sq_norms - scores`` and its two smallest values."""
    best = np.inf
    second = np.inf
    label = 0
    for j in range(half_sq_norms.shape[0]):
        value = half_sq_norms[j] - scores[j]
        if value < best:
            second = best
            best = value
            label = j
        elif value < second:
            second = value
    return label, best, second


@_jit
def _scan_tile(products, half_sq_norms, n_rows, labels, best, second, want_second):
    """First minimum over the centres of ``half_sq_norms[j] - products[j, r]``
    for each row ``r`` of a tile: the centres outermost, so that the inner
    loop runs over rows without branches (vectorised); ties keep the lowest j."""
    for r in range(n_rows):
        best[r] = half_sq_norms[0] - products[0, r]
        labels[r] = 0
    if want_second:
        for r in range(n_rows):
            second[r] = np.inf
    for j in range(1, half_sq_norms.shape[0]):
        half = half_sq_norms[j]
        row = products[j]
        if want_second:
            for r in range(n_rows):
                value = half - row[r]
                less = value < best[r]
                second[r] = best[r] if less else min(second[r], value)
                best[r] = value if less else best[r]
                labels[r] = j if less else labels[r]
        else:
            for r in range(n_rows):
                value = half - row[r]
                less = value < best[r]
                best[r] = value if less else best[r]
                labels[r] = j if less else labels[r]


@_jit
def _tile_buffer(X, transposed):
    """A tile's buffer: (features x rows) when ``transposed``, else (rows x features)."""
    if transposed:
        return np.zeros((X.shape[1], TILE_ROWS), dtype=X.dtype)
    return np.zeros((TILE_ROWS, X.shape[1]), dtype=X.dtype)


@_jit
def _load_tile(X, start, stop, tile, transposed):
    """Rows ``start:stop`` of X into the tile buffer: as (features x rows)
    when ``transposed``, else as (rows x features).

    Transposed: where X is column-major, each feature's run of rows is
    contiguous and copied as it is; where the features of a row are
    contiguous, square blocks of one 64-byte vector a side are shuffled in
    registers (``_transpose_block``: 3.6x faster on 16 float32 features),
    the rest copied one by one."""
    rows = X[start:stop]
    n_rows, n_features = rows.shape
    if not transposed:
        if X.strides[0] == X.itemsize and X.strides[1] != X.itemsize:
            # column-major X (the centred copy is): each feature's run of
            # rows read in order and transposed in registers, 2x faster than
            # a row at a time (d cache lines of X per row) on 20k x 512
            _transpose_into(X.T[:, start:stop], tile)
            return
        for r in range(n_rows):
            for f in range(n_features):
                tile[r, f] = rows[r, f]
        return
    if X.strides[1] != X.itemsize:
        features = X.T  # a row-major view where X is column-major
        for f in range(n_features):
            source = features[f, start:stop]
            column = tile[f]
            for r in range(n_rows):
                column[r] = source[r]
        return
    _transpose_into(rows, tile)


@_jit
def _subtract_mean(tile, n_rows, mean, transposed):
    """The loaded rows of a tile minus ``mean``, in place: each value
    ``x - mean`` rounded once, as in a centred copy of X."""
    if transposed:
        for f in range(tile.shape[0]):
            column = tile[f]
            shift = mean[f]
            for r in range(n_rows):
                column[r] = column[r] - shift
    else:
        for r in range(n_rows):
            row = tile[r]
            for f in range(tile.shape[1]):
                row[f] = row[f] - mean[f]


@_jit
def _sums_from_tile(rows, centered):
    """Whether the rows added to the sums come from the loaded tile (centred,
    or X's features strided: not d cache lines of X per row), not X's rows."""
    return centered or rows.strides[1] != rows.itemsize


@_jit
def _tile_rows(tile, row_tile, n_rows, transposed):
    """The rows of a loaded tile, each row contiguous: the tile itself, or
    transposed back. Typed C-contiguous, unlike a slice of X, whose
    layout is unknown to numba: ``_add_rows`` is vectorised over the
    features only on a C-contiguous type (2-3x faster on the same memory)."""
    if transposed:
        return _rows_of_tile(tile, n_rows, row_tile)
    return tile[:n_rows]


@_jit
def _rows_of_tile(tile_t, n_rows, row_tile):
    """The first ``n_rows`` rows of a transposed tile, as rows (``row_tile[:n_rows]``)."""
    _transpose_into(tile_t[:, :n_rows], row_tile)
    return row_tile[:n_rows]


@_jit
def _transpose_into(source, dest):
    """``dest[j, i] = source[i, j]`` over all of ``source`` (its rows
    contiguous): square blocks of one 64-byte vector a side shuffled in
    registers (``_transpose_block``), the rest copied one by one."""
    n_rows, n_columns = source.shape
    side = _VECTOR_BYTES // source.itemsize
    blocked_rows = n_rows - n_rows % side
    blocked_columns = n_columns - n_columns % side
    for r in range(0, blocked_rows, side):
        for c in range(0, blocked_columns, side):
            _transpose_block(source, r, c, dest)
    for c in range(n_columns):
        column = dest[c]
        first = blocked_rows if c < blocked_columns else 0
        for r in range(first, n_rows):
            column[r] = source[r, c]


@_jit
def _add_rows(rows, labels, weights, weighted, sums, totals):
    """Each row (times its weight) added to its cluster's sums, in row order."""
    if weighted:
        for r in range(rows.shape[0]):
            label = labels[r]
            weight = np.float64(weights[r])
            totals[label] += weight
            cluster_sums = sums[label]
            for f in range(rows.shape[1]):
                cluster_sums[f] += weight * rows[r, f]
    else:
        for r in range(rows.shape[0]):
            label = labels[r]
            totals[label] += 1.0
            cluster_sums = sums[label]
            for f in range(rows.shape[1]):
                cluster_sums[f] += rows[r, f]


@_jit_reassociating
def _add_tile_by_masks(tile_t, n_rows, labels, weights, weighted, sums, totals):
    """``_add_rows`` for few clusters and features: per cluster, a masked sum
    over the rows of a transposed tile (vectorised: the additions within a
    tile are reordered), then added to the sums."""
    for j in range(sums.shape[0]):
        total = 0.0
        if weighted:
            for r in range(n_rows):
                total += np.float64(weights[r]) if labels[r] == j else 0.0
        else:
            for r in range(n_rows):
                total += 1.0 if labels[r] == j else 0.0
        totals[j] += total
        for f in range(tile_t.shape[0]):
            column = tile_t[f]
            part = 0.0
            if weighted:
                for r in range(n_rows):
                    part += np.float64(weights[r]) * column[r] if labels[r] == j else 0.0
            else:
                for r in range(n_rows):
                    part += np.float64(column[r]) if labels[r] == j else 0.0
            sums[j, f] += part


@_jit
def _dense_run(
    X, mean, centered, start, stop, centers, half_sq_norms, transposed, by_masks,
    labels, best_out, second_out, want_scores,
    weights, weighted, sums, totals, want_sums,
):
    """Rows ``start:stop`` of X (minus ``mean`` when ``centered``): labels
    (and scores, and sums) in place.

    Per tile: the rows copied into a buffer (``transposed`` or not, see
    ``_tile_layout``) and centred there, their products with the centres by
    BLAS as a (centres x rows) block, then ``_scan_tile`` into the outputs;
    then the rows added to the sums (``_add_tile_sums``).
    """
    tile = _tile_buffer(X, transposed)
    row_tile = np.zeros((TILE_ROWS, X.shape[1]), dtype=X.dtype)
    products = np.zeros((centers.shape[0], TILE_ROWS), dtype=X.dtype)
    tile_labels = np.zeros(TILE_ROWS, dtype=np.int32)  # half the width of intp: a faster scan
    best = np.empty(TILE_ROWS, dtype=X.dtype)
    second = np.empty(TILE_ROWS, dtype=X.dtype)
    for tile_start in range(start, stop, TILE_ROWS):
        tile_stop = min(tile_start + TILE_ROWS, stop)
        n_rows = tile_stop - tile_start
        rows = X[tile_start:tile_stop]
        # a shorter last tile leaves earlier rows in the buffer: their products are ignored
        _load_tile(X, tile_start, tile_stop, tile, transposed)
        if centered:
            _subtract_mean(tile, n_rows, mean, transposed)
        if transposed:
            np.dot(centers, tile, products)
        else:
            np.dot(centers, tile.T, products)
        if want_scores:
            _scan_tile(products, half_sq_norms, n_rows, tile_labels,
                       best_out[tile_start:tile_stop], second_out[tile_start:tile_stop], True)
        else:
            _scan_tile(products, half_sq_norms, n_rows, tile_labels, best, second, False)
        for r in range(n_rows):
            labels[tile_start + r] = tile_labels[r]
        if want_sums:
            tile_weights = weights[tile_start:tile_stop] if weighted else weights
            _add_tile_sums(rows, tile, row_tile, n_rows, transposed, by_masks, centered,
                           tile_labels, tile_weights, weighted, sums, totals)


@_jit
def _add_tile_sums(rows, tile, row_tile, n_rows, transposed, by_masks, centered, labels,
                   weights, weighted, sums, totals):
    """The rows of a loaded tile added to their clusters' sums: by masks (the
    tile transposed), or row by row from the tile (``_sums_from_tile``) or
    from X's ``rows``."""
    if by_masks:
        _add_tile_by_masks(tile, n_rows, labels, weights, weighted, sums, totals)
    elif _sums_from_tile(rows, centered):
        _add_rows(_tile_rows(tile, row_tile, n_rows, transposed), labels, weights, weighted,
                  sums, totals)
    else:
        _add_rows(rows, labels, weights, weighted, sums, totals)


@_jit
def _sums_run(X, mean, centered, start, stop, transposed, by_masks, labels, weights, weighted,
              sums, totals):
    """Rows ``start:stop`` of X (minus ``mean`` when ``centered``) added to
    the sums of their ``labels``, in the order and precision of ``_dense_run``
    (the same rows: the same additions)."""
    # the rows added from the tile (``_tile_rows``): load it first
    by_tile = (centered or X.strides[1] != X.itemsize) and not by_masks
    tile = _tile_buffer(X, transposed)
    row_tile = np.zeros((TILE_ROWS, X.shape[1]), dtype=X.dtype)
    for tile_start in range(start, stop, TILE_ROWS):
        tile_stop = min(tile_start + TILE_ROWS, stop)
        n_rows = tile_stop - tile_start
        rows = X[tile_start:tile_stop]
        tile_labels = labels[tile_start:tile_stop]
        tile_weights = weights[tile_start:tile_stop] if weighted else weights
        if by_masks or by_tile or centered:
            _load_tile(X, tile_start, tile_stop, tile, transposed)
            if centered:
                _subtract_mean(tile, n_rows, mean, transposed)
        _add_tile_sums(rows, tile, row_tile, n_rows, transposed, by_masks, centered,
                       tile_labels, tile_weights, weighted, sums, totals)


@_jit_reassociating
def _weighted_sum(weights, values, n_values):
    """``sum(weights[:n] * values[:n])`` in float64, in vector lanes."""
    total = 0.0
    for i in range(n_values):
        total += np.float64(weights[i]) * np.float64(values[i])
    return total


@_jit
def _candidates_run(X, mean, centered, start, stop, x_sq_norms, weights, closest_sq,
                    minus_twice_rows, rows_sq_norms, out, potentials):
    """Greedy k-means++'s pass over rows ``start:stop`` of X (minus ``mean``
    when ``centered``): per candidate j and row i, ``out[j, i] = min(
    closest_sq[i], max(||x||^2 + (-2 c . x) + ||c||^2, 0))`` in X's dtype, as
    the portable blocks add them; ``potentials[j]`` += the weighted sum of
    those (float64). Per tile: the rows loaded transposed (features x rows)
    and centred as in ``_dense_run``, their products with the candidates by
    BLAS, then one loop per candidate over the rows (contiguous: it
    vectorises). With a few candidates, BLAS takes a transposed tile 3.7x
    faster than a row-major one (128 features: the pass 1.5x faster)."""
    n_candidates = minus_twice_rows.shape[0]
    tile = _tile_buffer(X, True)
    products = np.zeros((n_candidates, TILE_ROWS), dtype=X.dtype)
    zero = X.dtype.type(0)
    for tile_start in range(start, stop, TILE_ROWS):
        tile_stop = min(tile_start + TILE_ROWS, stop)
        n_rows = tile_stop - tile_start
        _load_tile(X, tile_start, tile_stop, tile, True)
        if centered:
            _subtract_mean(tile, n_rows, mean, True)
        np.dot(minus_twice_rows, tile, products)
        tile_sq_norms = x_sq_norms[tile_start:tile_stop]
        tile_closest = closest_sq[tile_start:tile_stop]
        tile_weights = weights[tile_start:tile_stop]
        for j in range(n_candidates):
            row_products = products[j]
            row_out = out[j, tile_start:tile_stop]
            c_sq = rows_sq_norms[j]
            for r in range(n_rows):
                distance = tile_sq_norms[r] + row_products[r] + c_sq
                if distance < zero:
                    distance = zero
                closest = tile_closest[r]
                # NumPy's clip and minimum: a NaN stays NaN
                row_out[r] = distance if distance < closest or distance != distance else closest
            potentials[j] += _weighted_sum(tile_weights, row_out, n_rows)


@_jit
def _cumulative_sum(values, out):
    """``out[i] = values[0] + ... + values[i]``, added left to right in
    float64 (NumPy's ``cumsum`` order: the same numbers)."""
    total = 0.0
    for i in range(values.shape[0]):
        total += np.float64(values[i])
        out[i] = total


@_jit
def _csr_run(
    data, indices, indptr, start, stop, centers_t, half_sq_norms,
    labels, best_out, second_out, want_scores,
    weights, weighted, sums, totals, want_sums,
):
    """Rows ``start:stop`` of a CSR matrix: labels (and scores, and sums) in place."""
    n_clusters = centers_t.shape[1]
    products = np.empty(n_clusters, dtype=centers_t.dtype)
    for i in range(start, stop):
        products[:] = 0
        for p in range(indptr[i], indptr[i + 1]):
            value = data[p]
            column = centers_t[indices[p]]
            for j in range(n_clusters):
                products[j] += value * column[j]
        if want_scores:
            label, best_out[i], second_out[i] = _first_two_minima(products, half_sq_norms)
        else:
            label = _first_minimum(products, half_sq_norms)[0]
        labels[i] = label
        if want_sums:
            weight = np.float64(weights[i]) if weighted else 1.0
            totals[label] += weight
            for p in range(indptr[i], indptr[i + 1]):
                sums[label, indices[p]] += weight * data[p]


@_jit_reassociating
def _sq_distances_run(X, centers, labels, out):
    """``||x_i - centers[labels_i]||^2`` of each row, the differences and
    squares in float64: row by row (summed in any order: vectorised over the
    features) where the features of X are contiguous, else a feature at a time
    over tiles of rows (vectorised over the rows)."""
    if X.strides[1] == X.itemsize:
        for i in range(X.shape[0]):
            center = centers[labels[i]]
            total = 0.0
            for f in range(X.shape[1]):
                difference = np.float64(X[i, f]) - np.float64(center[f])
                total += difference * difference
            out[i] = total
        return
    features = X.T  # row-major where X is column-major
    totals = np.empty(TILE_ROWS)
    for tile_start in range(0, X.shape[0], TILE_ROWS):
        tile_stop = min(tile_start + TILE_ROWS, X.shape[0])
        tile_labels = labels[tile_start:tile_stop]
        totals[:] = 0.0
        for f in range(X.shape[1]):
            source = features[f, tile_start:tile_stop]
            for r in range(tile_stop - tile_start):
                difference = np.float64(source[r]) - np.float64(centers[tile_labels[r], f])
                totals[r] += difference * difference
        for r in range(tile_stop - tile_start):
            out[tile_start + r] = totals[r]


@_jit
def _csr_sq_distances_run(data, indices, indptr, start, stop, centers, sq_norms, labels, out):
    """``||x_i - c||^2`` for rows ``start:stop``, c their centre: ``||c||^2``
    plus ``(x - c)^2 - c^2`` over the stored values (as scikit-learn)."""
    for i in range(start, stop):
        label = labels[i]
        total = sq_norms[label]
        for p in range(indptr[i], indptr[i + 1]):
            at_center = centers[label, indices[p]]
            difference = data[p] - at_center
            total += difference * difference - at_center * at_center
        out[i] = max(total, 0.0)


@_jit
def _column_variances(data, indices, n_samples, n_features):
    """Per column, the variance of its values, stored or zero (float64), in
    two passes as scikit-learn's ``mean_variance_axis``: the mean, then the
    squared deviations of the stored values, plus the zeros' ``mean^2`` each."""
    means = np.zeros(n_features)
    stored = np.zeros(n_features)
    for p in range(data.shape[0]):
        means[indices[p]] += np.float64(data[p])
        stored[indices[p]] += 1.0
    for j in range(n_features):
        means[j] /= n_samples
    variances = np.zeros(n_features)
    for p in range(data.shape[0]):
        deviation = np.float64(data[p]) - means[indices[p]]
        variances[indices[p]] += deviation * deviation
    for j in range(n_features):
        variances[j] = (variances[j] + (n_samples - stored[j]) * means[j] * means[j]) / n_samples
    return variances


@_jit
def _repeats_a_column(indices, indptr, n_features):
    """Whether a row stores a column twice, in any order of the columns: per
    column, the last row that stored it."""
    last_row = np.full(n_features, -1, dtype=np.int64)
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            column = indices[p]
            if column < 0 or column >= n_features:  # not a valid matrix: no write outside
                continue
            if last_row[column] == i:
                return True
            last_row[column] = i
    return False


# ------------------------------------------------------------------ drivers


def _is_torch_cpu(x) -> bool:
    return is_torch_array(x) and x.device.type == "cpu" and str(x.layout) == "torch.strided"


def host_view(x):
    """A torch CPU tensor as a NumPy array of its memory (zero-copy), also
    inside a ``CenteredRows``; anything else as it is."""
    from ._centered import CenteredRows

    if isinstance(x, CenteredRows):
        return CenteredRows(host_view(x.data), host_view(x.mean))
    return x.detach().numpy() if _is_torch_cpu(x) else x


def _takes_torch_cpu(function):
    """``function`` of NumPy arrays, taking torch CPU tensors too (as
    ``host_view``); given a tensor ``X``, its arrays come back as tensors."""

    @functools.wraps(function)
    def on_views(X, *args, **kwargs):
        from ._centered import CenteredRows

        if not _is_torch_cpu(X.data if isinstance(X, CenteredRows) else X):
            return function(X, *args, **kwargs)
        import torch

        torch_on_one_thread()

        out = function(host_view(X), *map(host_view, args),
                       **{key: host_view(value) for key, value in kwargs.items()})
        if isinstance(out, tuple):
            return tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in out)
        return torch.from_numpy(out)

    return on_views


def _takes_floats(x, ndim: int) -> bool:
    """True for an ``ndim``-D float32 or float64 array of NumPy, or torch on
    the CPU, where numba is installed."""
    return (
        AVAILABLE
        and (isinstance(x, np.ndarray) or _is_torch_cpu(x))
        and x.ndim == ndim
        and str(x.dtype).removeprefix("torch.") in ("float32", "float64")
    )


def handles(X) -> bool:
    """True when the compiled dense kernel takes ``X``: a 2-D float array of
    NumPy, or torch on the CPU."""
    return _takes_floats(X, 2) and X.shape[1] > 0


def handles_pass(X) -> bool:
    """True when the compiled dense pass (``dense_pass``, ``sum_by_cluster``)
    takes ``X``: a NumPy array it takes (``handles``), or a ``CenteredRows``
    of one (each tile centred as it is loaded)."""
    from ._centered import CenteredRows

    return handles(X.data if isinstance(X, CenteredRows) else X)


def _data_and_mean(X):
    """X (or a ``CenteredRows``' data), its mean (in X's dtype; empty when not
    centred) and whether it is centred."""
    from ._centered import CenteredRows

    if isinstance(X, CenteredRows):
        return X.data, np.ascontiguousarray(X.mean, dtype=X.data.dtype), True
    return X, np.zeros(0, dtype=X.dtype), False


def handles_sparse(X) -> bool:
    """True when the compiled CSR kernel takes ``X`` (a SciPy CSR float matrix)."""
    from . import _sparse

    return (
        AVAILABLE
        and _sparse.kind(X) == "scipy"
        and X.format == "csr"
        and X.dtype in (np.float32, np.float64)
    )


def _tile_layout(n_features: int, n_clusters: int) -> tuple[bool, bool]:
    """Whether tiles are transposed, and whether sums go by masks."""
    transposed = n_features < _TRANSPOSED_BELOW_FEATURES
    return transposed, transposed and n_clusters * (n_features + 1) <= _MASKED_SUMS_UP_TO


def _row_chunks(n_rows: int, sums_bytes: int = 0) -> list[slice]:
    """Chunks of rows for a pass whose chunks each add ``sums_bytes`` of sums."""
    from ._threads import n_cores

    n_chunks = min(_CHUNKS_PER_CORE * n_cores(), n_rows // _MIN_ROWS_PER_CHUNK)
    if sums_bytes:
        n_chunks = min(n_chunks, max(n_cores(), _CHUNK_SUMS_BYTES // sums_bytes))
    n_chunks = max(1, n_chunks)
    bounds = [n_rows * chunk // n_chunks for chunk in range(n_chunks + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


# A pass whose rows times (features + clusters) are fewer than this runs its
# chunks in the calling thread: waking a pool thread costs more than half the
# pass saves (10k x 2, 3 clusters: 116 us on 2 threads, 55 us on one; 10k x
# 10, 10 clusters: even). The same chunks, added in the same order.
_SERIAL_BELOW_WORK = 1 << 18


def _over_chunks(run_chunk, n_rows, n_clusters, n_features, want_sums, *, width=None):
    """``run_chunk(start, stop, sums, totals)`` over chunks of rows on all cores;
    the sums and totals of all chunks.

    Each core takes the next chunk when done with one (a busy core slows
    the pass less); each chunk has its own sums, added in chunk order, so
    the result does not depend on which core ran which chunk, nor on
    whether a small pass (``width`` per row, default features + clusters,
    below ``_SERIAL_BELOW_WORK`` in all) ran them all in the calling thread.
    """
    import array_api_compat.numpy as xp_numpy

    from ._threads import map_blocks, n_cores

    chunks = _row_chunks(n_rows, 8 * n_clusters * (n_features + 1) if want_sums else 0)
    chunk_sums: list = [None] * len(chunks)
    next_chunk = itertools.count()  # next() is atomic under the GIL

    def worker(_):
        for chunk in iter(lambda: next(next_chunk), None):
            if chunk >= len(chunks):
                return
            sums = np.zeros((n_clusters, n_features) if want_sums else (0, 0))
            totals = np.zeros(n_clusters if want_sums else 0)
            run_chunk(chunks[chunk].start, chunks[chunk].stop, sums, totals)
            chunk_sums[chunk] = sums, totals

    width = n_features + n_clusters if width is None else width
    n_workers = 1 if n_rows * width < _SERIAL_BELOW_WORK else min(n_cores(), len(chunks))
    map_blocks(worker, range(n_workers), xp=xp_numpy)
    sums, totals = chunk_sums[0]
    for part_sums, part_totals in chunk_sums[1:]:
        sums += part_sums
        totals += part_totals
    return sums, totals


def _as_weights(weights):
    return np.empty(0) if weights is None else np.asarray(weights, dtype=np.float64)


def _pass(run_rows, n_rows, n_clusters, n_features, dtype, *, weights, want_scores, want_sums):
    """Labels, scores and sums of ``run_rows(start, stop, outputs...)`` over all rows."""
    labels = np.empty(n_rows, dtype=np.intp)
    best = np.empty(n_rows if want_scores else 0, dtype=dtype)
    second = np.empty(n_rows if want_scores else 0, dtype=dtype)
    weighted = weights is not None
    weights = _as_weights(weights)

    def run_chunk(start, stop, sums, totals):
        run_rows(start, stop, labels, best, second, want_scores,
                 weights, weighted, sums, totals, want_sums)

    sums, totals = _over_chunks(run_chunk, n_rows, n_clusters, n_features, want_sums)
    return labels, best, second, sums, totals


@_takes_torch_cpu
def sum_by_cluster(X, labels, n_clusters, *, weights=None):
    """The sums and totals of ``dense_pass(..., want_sums=True)`` for given labels."""
    X, mean, centered = _data_and_mean(X)
    labels = np.asarray(labels, dtype=np.int32)  # as the pass's: its kernels compiled once
    weighted = weights is not None
    weights = _as_weights(weights)

    layout = _tile_layout(X.shape[1], n_clusters)

    def run_chunk(start, stop, sums, totals):
        _sums_run(X, mean, centered, start, stop, *layout, labels, weights, weighted, sums,
                  totals)

    return _over_chunks(run_chunk, X.shape[0], n_clusters, X.shape[1], True)


def _prepared_centers(centers, dtype):
    centers = np.ascontiguousarray(centers, dtype=dtype)
    half_sq_norms = 0.5 * np.sum(centers * centers, axis=1)  # as the portable path
    return centers, np.ascontiguousarray(centers.T), half_sq_norms


@_takes_torch_cpu
def dense_pass(X, centers, *, weights=None, want_scores=False, want_sums=False):
    """Labels, best and second-best scores, sums and totals of X (NumPy, or a
    ``CenteredRows`` of NumPy data)."""
    X, mean, centered = _data_and_mean(X)
    centers, centers_t, half_sq_norms = _prepared_centers(centers, X.dtype)
    layout = _tile_layout(X.shape[1], centers.shape[0])

    def run_rows(start, stop, *outputs):
        _dense_run(X, mean, centered, start, stop, centers, half_sq_norms, *layout, *outputs)

    return _pass(run_rows, X.shape[0], centers.shape[0], X.shape[1], X.dtype,
                 weights=weights, want_scores=want_scores, want_sums=want_sums)


def csr_pass(X, centers, *, weights=None, want_scores=False, want_sums=False):
    """``dense_pass`` of a SciPy CSR matrix with sorted or unsorted indices."""
    centers, centers_t, half_sq_norms = _prepared_centers(centers, X.dtype)

    def run_rows(start, stop, *outputs):
        _csr_run(X.data, X.indices, X.indptr, start, stop, centers_t, half_sq_norms, *outputs)

    return _pass(run_rows, X.shape[0], centers.shape[0], X.shape[1], X.dtype,
                 weights=weights, want_scores=want_scores, want_sums=want_sums)


@_takes_torch_cpu
def half_sq_norms(X, centers):
    """``||c||^2 / 2`` of each centre in X's dtype, rounded as ``dense_pass``
    rounds them (NumPy's sum; torch's rounds some apart in the last bit)."""
    return _prepared_centers(centers, X.dtype)[2]


@_takes_torch_cpu
def nearest_two_centers(X, centers, half_sq_norms):
    """The block primitive, in the calling thread (callers run blocks in threads)."""
    n_rows = X.shape[0]
    labels = np.empty(n_rows, dtype=np.intp)
    best = np.empty(n_rows, dtype=X.dtype)
    second = np.empty(n_rows, dtype=X.dtype)
    centers = np.ascontiguousarray(centers, dtype=X.dtype)
    half_sq_norms = np.ascontiguousarray(half_sq_norms, dtype=X.dtype)
    empty_sums = np.zeros((0, 0))
    empty = np.zeros(0)
    _dense_run(X, np.zeros(0, dtype=X.dtype), False, 0, n_rows, centers, half_sq_norms,
               *_tile_layout(X.shape[1], centers.shape[0]),
               labels, best, second, True, empty, False, empty_sums, empty, False)
    return labels, best, second


@_takes_torch_cpu
def closest_with_candidates(X, x_sq_norms, weights, closest_sq, rows_x, rows_sq_norms):
    """Greedy k-means++'s pass (the primitive ``closest_with_candidates``) on
    all cores: the (n, m) distances, as the transpose of an (m, n) array (a
    candidate's column is contiguous), and the potentials in float64 (per
    chunk, added in chunk order)."""
    X, mean, centered = _data_and_mean(X)
    dtype = X.dtype
    minus_twice_rows = np.ascontiguousarray(rows_x, dtype=dtype) * dtype.type(-2)  # exact
    rows_sq_norms = np.ascontiguousarray(rows_sq_norms, dtype=dtype)
    x_sq_norms = np.ascontiguousarray(x_sq_norms, dtype=dtype)
    closest_sq = np.ascontiguousarray(closest_sq, dtype=dtype)
    weights = np.ascontiguousarray(weights)
    out = np.empty((minus_twice_rows.shape[0], X.shape[0]), dtype=dtype)

    def run_chunk(start, stop, sums, potentials):
        _candidates_run(X, mean, centered, start, stop, x_sq_norms, weights,
                        closest_sq, minus_twice_rows, rows_sq_norms, out, potentials)

    potentials = _over_chunks(run_chunk, X.shape[0], minus_twice_rows.shape[0], 0, True,
                              width=minus_twice_rows.shape[0] * (X.shape[1] + 1))[1]
    return out.T, potentials


def handles_vector(values) -> bool:
    """True when ``cumulative_sum`` takes ``values``: a 1-D float array of
    NumPy, or torch on the CPU."""
    return _takes_floats(values, 1)


@_takes_torch_cpu
def cumulative_sum(values):
    """The running sum of ``values`` in float64 (``_cumulative_sum``): 7x
    faster than NumPy's ``cumsum`` of a float64 copy on a million float32."""
    out = np.empty(values.shape[0], dtype=np.float64)
    _cumulative_sum(values, out)
    return out


@_takes_torch_cpu
def subtract_row(X, row):
    """``X - row`` of a torch CPU tensor as NumPy's centred copy, column-major
    (from a row-major copy, greedy k-means++'s pass on 200k x 128 took 1.3x
    the time)."""
    from . import _numpy

    return _numpy.subtract_row(X, row)


def takes_sq_distances(rows, centers, labels) -> bool:
    """True when ``sq_distances_to_assigned`` takes these arrays (all NumPy,
    or all torch on the CPU)."""
    if isinstance(rows, np.ndarray):
        return handles(rows) and isinstance(centers, np.ndarray) and isinstance(labels, np.ndarray)
    return handles(rows) and _is_torch_cpu(centers) and _is_torch_cpu(labels)


@_takes_torch_cpu
def sq_distances_to_assigned(rows, centers, labels):
    """``||x_i - centers[labels_i]||^2`` of one block of rows, in the calling
    thread; the dtype of ``rows - centers``, as NumPy would give it."""
    out = np.empty(rows.shape[0], dtype=np.result_type(rows.dtype, centers.dtype))
    _sq_distances_run(rows, centers, labels, out)
    return out


def csr_sq_distances_to_assigned(X, centers, labels):
    """``_csr_sq_distances_run`` over all rows, on all cores."""
    centers = np.ascontiguousarray(centers)
    sq_norms = np.sum(centers * centers, axis=1)
    labels = np.asarray(labels, dtype=np.intp)
    out = np.empty(X.shape[0], dtype=centers.dtype)

    def run_chunk(start, stop, sums, totals):
        _csr_sq_distances_run(X.data, X.indices, X.indptr, start, stop, centers, sq_norms,
                              labels, out)

    _over_chunks(run_chunk, X.shape[0], 0, 0, False, width=X.shape[1])  # X.shape[1]: nnz at most
    return out


def column_variances(X):
    """Per column of a CSR matrix, the variance of its values (float64)."""
    return _column_variances(X.data, X.indices, X.shape[0], X.shape[1])


def csr_repeats_a_column(X):
    """Whether a row of the SciPy CSR matrix X (indices in any order) stores a
    column twice: one pass over the indices, no copy of X (``_repeats_a_column``)."""
    return bool(_repeats_a_column(X.indices, X.indptr, X.shape[1]))
