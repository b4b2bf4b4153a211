"""The compiled CPU kernels (numba) equal the portable array-API path."""

import time

import numpy as np
import pytest

from xpkmeans import KMeans
from xpkmeans._backend import (
    _numba,
    nearest_centers,
    nearest_centers_and_sums,
    nearest_two_centers,
    sq_distances_to_assigned,
    sums_in_pass,
)
from xpkmeans._backend import _portable

pytestmark = pytest.mark.skipif(not _numba.AVAILABLE, reason="numba (or SciPy) not installed")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 rows: small data spans many (tiles are compiled in: the
    odd row counts test their last, shorter tile)."""
    monkeypatch.setattr(_numba, "_MIN_ROWS_PER_CHUNK", 7)
    monkeypatch.setattr(_numba, "_SERIAL_BELOW_WORK", 0)  # and on all cores, however small


def _integer_problem(n, d, k, dtype, order, seed=0):
    # small integers: products are exact, so ties are exact and labels equal exactly
    rng = np.random.default_rng(seed)
    X = np.asarray(rng.integers(-3, 4, (n, d)), dtype=dtype, order=order)
    centers = rng.integers(-3, 4, (k, d)).astype(dtype)
    if k > 2:
        centers[k // 2] = centers[0]  # duplicate centres: ties on every row
    return X, centers


def _portable_labels(X, centers):
    half_sq_norms = 0.5 * np.sum(centers * centers, axis=1)
    return _portable.nearest_center_labels(X, centers, half_sq_norms)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("n", "d", "k"), [(1001, 5, 7), (333, 1, 3), (257, 16, 1), (600, 3, 40)])
def test_labels_and_sums_equal_portable(dtype, order, n, d, k):
    X, centers = _integer_problem(n, d, k, dtype, order)
    expected = _portable_labels(X, centers)
    labels, sums, totals = nearest_centers_and_sums(X, centers)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(nearest_centers(X, centers), expected)
    ref_sums, ref_totals = _portable.segment_sum(X.astype(np.float64), expected, k)
    assert sums.dtype == totals.dtype == np.float64
    np.testing.assert_array_equal(sums, ref_sums)  # integers: sums exact
    np.testing.assert_array_equal(totals, ref_totals)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("k", range(1, 9))
def test_few_features_and_clusters_equal_portable(k, d, order, dtype):
    """Small d and k: tiles transposed, and sums by masks where k (d + 1) is small."""
    X, centers = _integer_problem(517, d, k, dtype, order, seed=10 * d + k)  # 3 tiles, the last short
    weights = np.random.default_rng(k).integers(0, 4, 517).astype(dtype)  # exact products
    expected = _portable_labels(X, centers)
    for w in (None, weights):
        labels, sums, totals = nearest_centers_and_sums(X, centers, weights=w)
        np.testing.assert_array_equal(labels, expected)
        ref_sums, ref_totals = _portable.segment_sum(
            X.astype(np.float64), expected, k, weights=None if w is None else w.astype(np.float64)
        )
        np.testing.assert_array_equal(sums, ref_sums)  # integers: sums exact
        np.testing.assert_array_equal(totals, ref_totals)


@pytest.mark.parametrize(("d", "k"), [(2, 4), (1, 8), (3, 5), (5, 7), (70, 3)])
@pytest.mark.parametrize("weighted", [False, True])
def test_sums_for_given_labels_equal_the_pass_bit_for_bit(d, k, weighted, small_chunks):
    """``sum_by_cluster`` adds in the order of the pass (by masks, row by row,
    rows not transposed): an injected E step gets Lloyd's centres exactly."""
    assert _numba._tile_layout(d, k) == (d < 64, k * (d + 1) <= 20)
    rng = np.random.default_rng(d * k)
    X = np.asfortranarray(rng.standard_normal((3001, d)) * 100)  # float64: sums depend on the order
    centers = X[:k].copy()
    weights = rng.uniform(0, 3, 3001) if weighted else None
    labels, sums, totals = nearest_centers_and_sums(X, centers, weights=weights)
    given_sums, given_totals = _numba.sum_by_cluster(X, labels, k, weights=weights)
    np.testing.assert_array_equal(given_sums, sums)
    np.testing.assert_array_equal(given_totals, totals)
    ref_sums, _ = _portable.segment_sum(
        X.astype(np.float64), labels, k, weights=None if weights is None else weights.astype(np.float64)
    )
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("d", [1, 7, 8, 16, 17, 40])
def test_tiles_are_transposed_exactly(d, order, dtype):
    """Square blocks shuffled in registers where features are contiguous, the
    remaining rows and features copied one by one."""
    for n in (15, 16, 17, _numba.TILE_ROWS):
        data = np.asarray(np.random.default_rng(n).standard_normal((n + 9, d)), dtype=dtype, order=order)
        for X, start in ((data[:n], 0), (data, 9), (data[::-1][:n], 0)):  # offset, strided view
            tile = np.full((d, _numba.TILE_ROWS), np.nan, dtype=dtype)
            _numba._load_tile(X, start, start + n, tile, True)
            np.testing.assert_array_equal(tile[:, :n], X[start:start + n].T)
            np.testing.assert_array_equal(np.isnan(tile[:, n:]), True)  # nothing past the rows
            rows = np.full((_numba.TILE_ROWS, d), np.nan, dtype=dtype)  # and back to rows
            np.testing.assert_array_equal(_numba._rows_of_tile(tile, n, rows), X[start:start + n])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("d", [64, 65, 80, 129])
def test_row_tiles_are_copied_exactly(d, order, dtype):
    """Tiles of 64 features and more (rows, not transposed): column-major X
    transposed in registers, other layouts copied one by one."""
    for n in (15, 16, 17, _numba.TILE_ROWS):
        data = np.asarray(np.random.default_rng(n).standard_normal((n + 9, d)), dtype=dtype, order=order)
        for X, start in ((data[:n], 0), (data, 9), (data[::-1][:n], 0), (data[:, 1:], 3)):
            tile = np.full((_numba.TILE_ROWS, X.shape[1]), np.nan, dtype=dtype)
            _numba._load_tile(X, start, start + n if start + n <= X.shape[0] else X.shape[0],
                              tile, False)
            stop = min(start + n, X.shape[0])
            np.testing.assert_array_equal(tile[:stop - start], X[start:stop])
            np.testing.assert_array_equal(np.isnan(tile[stop - start:]), True)


@pytest.mark.parametrize("d", [64, 130])
@pytest.mark.parametrize("weighted", [False, True])
def test_wide_column_major_pass_equals_row_major_bit_for_bit(d, weighted, small_chunks):
    """Wide X (rows not transposed) gives the same labels and sums, bit for
    bit, column-major (the centred copy of a fit) or row-major."""
    rng = np.random.default_rng(d)
    X = rng.standard_normal((1301, d)) * 100  # float64: sums depend on the order
    centers = X[:7].copy()
    weights = rng.uniform(0, 3, 1301) if weighted else None
    row_major = nearest_centers_and_sums(X, centers, weights=weights)
    column_major = nearest_centers_and_sums(np.asfortranarray(X), centers, weights=weights)
    for a, b in zip(row_major, column_major):
        np.testing.assert_array_equal(a, b)
    given = _numba.sum_by_cluster(np.asfortranarray(X), row_major[0], 7, weights=weights)
    np.testing.assert_array_equal(given[0], row_major[1])
    np.testing.assert_array_equal(given[1], row_major[2])


def test_many_chunks_and_tiles_with_weights(small_chunks):
    X, centers = _integer_problem(203, 4, 6, np.float32, "F", seed=3)
    weights = np.random.default_rng(3).uniform(0, 2, 203).astype(np.float32)
    labels, sums, totals = nearest_centers_and_sums(X, centers, weights=weights)
    expected = _portable_labels(X, centers)
    np.testing.assert_array_equal(labels, expected)
    ref_sums, ref_totals = _portable.segment_sum(
        X.astype(np.float64), expected, 6, weights=weights.astype(np.float64)
    )
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(totals, ref_totals, rtol=1e-12)


def test_strided_rows():
    X, centers = _integer_problem(400, 6, 5, np.float64, "C")
    view = X[::3, 1:]  # neither C- nor F-contiguous
    np.testing.assert_array_equal(
        nearest_centers(view, centers[:, 1:]), _portable_labels(view, centers[:, 1:])
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_data_labels_equal_up_to_rounding_ties(dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 8)).astype(dtype)
    centers = rng.standard_normal((20, 8)).astype(dtype)
    labels = nearest_centers(X, centers)
    expected = _portable_labels(X, centers)
    differ = labels != expected
    if differ.any():  # only where the two centres are equally near within rounding
        rows = np.flatnonzero(differ)
        d_got = ((X[rows] - centers[labels[rows]]) ** 2).sum(1)
        d_ref = ((X[rows] - centers[expected[rows]]) ** 2).sum(1)
        np.testing.assert_allclose(d_got, d_ref, rtol=1e-4)
    assert differ.mean() < 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("d", [1, 2, 16])
def test_sq_distances_to_assigned_equal_portable(d, order, dtype):
    assert _numba.takes_sq_distances(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1, np.intp))
    rng = np.random.default_rng(d)
    X = np.asarray(rng.standard_normal((333, d)) * 10, dtype=dtype, order=order)
    centers = rng.standard_normal((7, d)).astype(dtype)
    labels = rng.integers(0, 7, 333).astype(np.int32)
    got = sq_distances_to_assigned(X, centers, labels)
    expected = ((X.astype(np.float64) - centers[labels]) ** 2).sum(axis=1)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    wide = sq_distances_to_assigned(X, centers.astype(np.float64), labels)  # NumPy's promotion
    assert wide.dtype == np.float64


@pytest.mark.parametrize("k", [1, 2, 9])
def test_nearest_two_centers_equals_portable(k):
    X, centers = _integer_problem(301, 4, k, np.float32, "F", seed=k)
    half_sq_norms = 0.5 * np.sum(centers * centers, axis=1)
    got = nearest_two_centers(X, centers, half_sq_norms)
    expected = _portable.nearest_two_centers(X, centers, half_sq_norms)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert got[1].dtype == np.float32


def test_fit_equals_numpy_path(monkeypatch):
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(c, 1.0, (400, 3)) for c in (-5, 0, 5)]).astype(np.float32)
    compiled = KMeans(3, random_state=0).fit(X)
    assert sums_in_pass(X)
    monkeypatch.setattr(_numba, "AVAILABLE", False)
    assert not sums_in_pass(X)
    plain = KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(compiled.labels_, plain.labels_)
    np.testing.assert_allclose(compiled.cluster_centers_, plain.cluster_centers_, rtol=1e-5)
    assert compiled.n_iter_ == plain.n_iter_
    np.testing.assert_allclose(compiled.inertia_, plain.inertia_, rtol=1e-5)


def test_fit_matches_scikit_learn_with_hamerly():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((2000, 5)).astype(np.float64)
    init = X[:12].copy()
    ref = sklearn_cluster.KMeans(12, init=init, n_init=1, tol=0, max_iter=50).fit(X)
    for algorithm in ("lloyd", "hamerly"):
        ours = KMeans(12, init=init, n_init=1, tol=0, max_iter=50, algorithm=algorithm).fit(X)
        np.testing.assert_array_equal(ours.labels_, ref.labels_)
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-10)
        assert ours.n_iter_ == ref.n_iter_


# ------------------------------------------------------------------ data centred as it is read


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("d", "k"), [(2, 4), (3, 9), (16, 16), (70, 5)])  # masks, rows, wide
@pytest.mark.parametrize("weighted", [False, True])
def test_centred_view_equals_the_centred_copy_bit_for_bit(dtype, order, d, k, weighted,
                                                          small_chunks):
    """A ``CenteredRows`` (a Dask chunk) gives the labels and sums of the
    column-major centred copy that a fit in memory makes, bit for bit: each
    tile holds the same values ``x - mean``, added in the same order."""
    from xpkmeans._backend import centered
    from xpkmeans._backend._centered import CenteredRows

    rng = np.random.default_rng(d + k)
    X = np.asarray(500 + 10 * rng.standard_normal((1001, d)), dtype=dtype, order=order)
    mean = X.mean(axis=0).astype(dtype)
    copy = centered(X, mean)  # what center_data gives on the CPU
    assert copy.flags.f_contiguous
    centers = copy[rng.choice(1001, k, replace=False)] + dtype(0.5)
    weights = rng.uniform(0, 3, 1001) if weighted else None
    view = CenteredRows(X, mean)
    assert sums_in_pass(view)

    labels, sums, totals = nearest_centers_and_sums(view, centers, weights=weights)
    ref_labels, ref_sums, ref_totals = nearest_centers_and_sums(copy, centers, weights=weights)

    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(nearest_centers(view, centers), ref_labels)
    np.testing.assert_array_equal(sums, ref_sums)
    np.testing.assert_array_equal(totals, ref_totals)
    given = _numba.sum_by_cluster(view, labels, k, weights=weights)
    np.testing.assert_array_equal(given[0], sums)
    ref, _ = _portable.segment_sum(copy.astype(np.float64), labels, k,
                                   weights=None if weights is None else weights.astype(np.float64))
    np.testing.assert_allclose(sums, ref, rtol=1e-6, atol=1e-3)


# ------------------------------------------------------------------ torch CPU tensors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
def test_torch_cpu_tensors_take_the_compiled_pass_and_come_back_as_tensors(dtype, weighted):
    """Torch CPU tensors go through the same kernels as NumPy arrays (their
    memory read in place): the same labels, sums and scores, as tensors."""
    torch = pytest.importorskip("torch")
    X, centers = _integer_problem(1001, 5, 7, getattr(np, dtype), "C")
    weights = np.random.default_rng(0).uniform(0, 2, 1001) if weighted else None
    X_t, centers_t = torch.asarray(X), torch.asarray(centers)
    weights_t = None if weights is None else torch.asarray(weights)
    assert _numba.handles(X_t) and sums_in_pass(X_t)

    labels, sums, totals = nearest_centers_and_sums(X_t, centers_t, weights=weights_t)

    expected = _portable_labels(X, centers)
    assert isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
    np.testing.assert_array_equal(labels.numpy(), expected)
    _, ref_sums, ref_totals = nearest_centers_and_sums(X, centers, weights=weights)
    assert sums.dtype == totals.dtype == torch.float64
    np.testing.assert_array_equal(sums.numpy(), ref_sums)
    np.testing.assert_array_equal(totals.numpy(), ref_totals)
    half = 0.5 * torch.sum(centers_t * centers_t, dim=1)
    two = nearest_two_centers(X_t, centers_t, half)
    for got, want in zip(two, _portable.nearest_two_centers(X, centers, half.numpy())):
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), want)
    distances = sq_distances_to_assigned(X_t, centers_t, labels)
    assert isinstance(distances, torch.Tensor) and str(distances.dtype) == f"torch.{dtype}"
    np.testing.assert_array_equal(distances.numpy(), sq_distances_to_assigned(X, centers, expected))


def test_torch_cpu_tensors_that_require_grad_or_are_strided():
    torch = pytest.importorskip("torch")
    X, centers = _integer_problem(400, 6, 5, np.float64, "C")
    X_t = torch.asarray(X, requires_grad=True)
    view = X_t[::3, 1:]  # neither C- nor F-contiguous
    labels = nearest_centers(view, torch.asarray(centers[:, 1:]))
    np.testing.assert_array_equal(labels.numpy(), _portable_labels(X[::3, 1:], centers[:, 1:]))
    assert not labels.requires_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_cpu_fit_equals_the_numpy_fit(dtype):
    """Bit for bit, the mean too: torch's column sums had been its own
    reduction, NumPy's a product with ones (float64: the last bit differed)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(c, 1.0, (400, 7)) for c in (-5, 0, 5)]).astype(dtype)
    ref = KMeans(3, random_state=0).fit(X)
    fitted = KMeans(3, random_state=0).fit(torch.asarray(X))
    assert isinstance(fitted.cluster_centers_, torch.Tensor)
    np.testing.assert_array_equal(fitted.labels_.numpy(), ref.labels_)
    np.testing.assert_array_equal(fitted.mean_.numpy(), ref.mean_)
    np.testing.assert_array_equal(fitted.cluster_centers_.numpy(), ref.cluster_centers_)
    assert fitted.n_iter_ == ref.n_iter_


# ------------------------------------------------------------------ greedy k-means++'s pass


def _portable_candidates(monkeypatch, *args):
    """``closest_with_candidates`` of the portable blocks (numba turned off)."""
    from xpkmeans._backend import closest_with_candidates

    with monkeypatch.context() as patch:
        patch.setattr(_numba, "handles_pass", lambda X: False)
        blocks, potentials = closest_with_candidates(*args)
    return np.concatenate([np.asarray(b) for b in blocks]), np.asarray(potentials)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("d", "m"), [(1, 1), (3, 9), (16, 4), (70, 9)])  # whole vectors or not
@pytest.mark.parametrize("view", [False, True])
def test_candidates_pass_equals_portable(monkeypatch, small_chunks, dtype, order, d, m, view):
    """Greedy k-means++'s pass: the distances if each candidate joined and
    the potentials equal the portable blocks' exactly on integer data (every
    product and sum exact), centred as read (``CenteredRows``) or a centred
    copy, with weights, a running minimum, and a first centre (inf)."""
    from xpkmeans._backend import centered, closest_with_candidates
    from xpkmeans._backend._centered import CenteredRows

    rng = np.random.default_rng(10 * d + m)
    X = np.asarray(rng.integers(-3, 4, (517, d)) + 2, dtype=dtype, order=order)
    mean = np.full(d, 2, dtype=dtype)  # exact: the centred values are integers too
    copy = centered(X, mean)
    data = CenteredRows(X, mean) if view else copy
    rows = copy[rng.choice(517, m)]
    x_sq, rows_sq = np.sum(copy * copy, axis=1), np.sum(rows * rows, axis=1)
    weights = rng.integers(0, 4, 517).astype(dtype)
    for closest in (np.full(517, np.inf, dtype=dtype), rng.integers(0, 30, 517).astype(dtype)):
        args = (x_sq, weights, closest, rows, rows_sq)
        blocks, potentials = closest_with_candidates(data, *args)
        expected, ref_potentials = _portable_candidates(monkeypatch, copy, *args)
        assert len(blocks) == 1 and blocks[0].dtype == dtype
        np.testing.assert_array_equal(blocks[0], expected)
        assert potentials.dtype == np.float64
        np.testing.assert_array_equal(potentials, ref_potentials)
        np.testing.assert_array_equal(  # against a direct reference, not the portable blocks
            expected, np.minimum(closest[:, None], ((copy[:, None] - rows[None]) ** 2).sum(2)))


def test_candidates_pass_equals_portable_to_rounding_and_takes_torch(monkeypatch):
    """On random data the two passes' products round differently: equal to
    float32 ulps of ||x||^2 + ||c||^2; torch CPU tensors come back as tensors."""
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import closest_with_candidates

    rng = np.random.default_rng(0)
    X = (5 + rng.standard_normal((3001, 20))).astype(np.float32)
    rows = X[rng.choice(3001, 9)]
    args = (np.sum(X * X, axis=1), rng.uniform(0, 2, 3001).astype(np.float32),
            rng.uniform(0, 50, 3001).astype(np.float32), rows, np.sum(rows * rows, axis=1))
    expected, ref_potentials = _portable_candidates(monkeypatch, X, *args)
    blocks, potentials = closest_with_candidates(torch.asarray(X), *map(torch.asarray, args))
    assert isinstance(blocks[0], torch.Tensor) and isinstance(potentials, torch.Tensor)
    atol = 16 * 2.0**-23 * float(np.max(args[0]) + np.max(args[4]))
    np.testing.assert_allclose(blocks[0].numpy(), expected, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(potentials.numpy(), ref_potentials, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_candidates_pass_keeps_nan_as_the_portable_blocks(monkeypatch):
    """Squares past float32's range make inf - inf: NaN where the portable
    blocks have NaN (NumPy's clip and minimum), the same numbers elsewhere."""
    from xpkmeans._backend import closest_with_candidates

    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    X[3] = 1e20  # its square overflows
    rows = X[[3, 5]]
    args = (np.sum(X * X, axis=1), np.ones(10, np.float32), np.full(10, 50, np.float32), rows,
            np.sum(rows * rows, axis=1))
    expected, ref_potentials = _portable_candidates(monkeypatch, X, *args)
    blocks, potentials = closest_with_candidates(X, *args)
    assert np.isnan(expected).any() and np.isnan(ref_potentials).any()
    np.testing.assert_array_equal(blocks[0], expected)  # NaN where NaN
    np.testing.assert_array_equal(np.isnan(potentials), np.isnan(ref_potentials))


def test_cumulative_sum_adds_as_numpy_does(monkeypatch):
    """Left to right in float64: NumPy's ``cumsum`` bit for bit (strided and
    torch CPU too), and the portable path where numba does not take the values."""
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import cumulative_sum

    compiled = []
    monkeypatch.setattr(_numba, "_cumulative_sum", lambda values, out, run=_numba._cumulative_sum:
                        compiled.append(run(values, out)))
    values = np.random.default_rng(0).uniform(0, 1e4, 20_001).astype(np.float32)
    expected = np.cumsum(values.astype(np.float64))
    assert _numba.handles_vector(values)
    np.testing.assert_array_equal(cumulative_sum(values, np.float64), expected)
    np.testing.assert_array_equal(cumulative_sum(values[::2], np.float64),
                                  np.cumsum(values[::2].astype(np.float64)))
    got = cumulative_sum(torch.asarray(values), torch.float64)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), expected)
    assert len(compiled) == 3  # np.float64, as a type, took the compiled path too
    assert not _numba.handles_vector(values[None])
    np.testing.assert_array_equal(cumulative_sum(values, np.float32), np.cumsum(values))
    assert len(compiled) == 3


def test_torch_cpu_fit_holds_torch_to_one_thread_and_restores_it():
    """Between compiled passes over torch CPU tensors, torch's own threads
    would spin on the cores the passes need: limited to one during the fit
    (once a pass ran), restored after it; a NumPy fit leaves them alone."""
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
    before = torch.get_num_threads()
    if before == 1:
        pytest.skip("torch runs on one thread here already")
    seen = {}

    def record(name):
        return lambda progress: seen.setdefault(name, torch.get_num_threads())

    KMeans(3, random_state=0, callback=record("torch")).fit(torch.asarray(X))
    assert seen["torch"] == 1
    assert torch.get_num_threads() == before
    KMeans(3, random_state=0, callback=record("numpy")).fit(X)
    assert seen["numpy"] == before


def test_torch_thread_limit_is_the_fitting_threads_alone():
    """The limit is set and lifted in the thread that fits: a thread that
    first uses torch during the fit (a Dask worker, an executor) gets
    torch's usual count, during the fit and after it."""
    import threading

    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    if before == 1:
        pytest.skip("torch runs on one thread here already")
    X = torch.asarray(np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32))
    seen, fit_done = {}, threading.Event()

    def other_thread():
        seen["other, during"] = torch.get_num_threads()
        fit_done.wait(timeout=30)
        seen["other, after"] = torch.get_num_threads()

    other = threading.Thread(target=other_thread)

    def start_other(progress):
        seen.setdefault("fitting thread, in the fit", torch.get_num_threads())
        if not other.is_alive() and "other, during" not in seen:
            other.start()
            while "other, during" not in seen:
                time.sleep(0.001)

    KMeans(3, random_state=0, callback=start_other).fit(X)
    fit_done.set()
    other.join()
    assert seen["fitting thread, in the fit"] == 1
    assert torch.get_num_threads() == before
    assert seen["other, during"] == seen["other, after"] == before


def test_torch_cpu_centred_copy_is_numpys():
    """Torch CPU data is centred into NumPy's column-major copy (the layout
    the compiled passes read fastest), as a tensor."""
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import subtract_row

    X = np.random.default_rng(0).normal(size=(301, 70)).astype(np.float32)
    row = X.mean(axis=0)
    got = subtract_row(torch.asarray(X), torch.asarray(row))
    assert isinstance(got, torch.Tensor) and got.stride() == (1, 301)
    np.testing.assert_array_equal(got.numpy(), X - row)


def test_kmeans_plusplus_compiled_picks_the_centres_of_the_numpy_blocks(monkeypatch):
    """Greedy k-means++ with the compiled pass and with NumPy's blocks (numba
    off): the same centres, on separated blobs and on overlapping ones."""
    from xpkmeans import kmeans_plusplus
    from xpkmeans.datasets import make_blobs

    for std in (0.5, 3.0):
        X, _ = make_blobs(5000, 6, centers=12, cluster_std=std, random_state=1)
        X = np.asarray(X, dtype=np.float32)
        weights = np.random.default_rng(0).uniform(0, 2, 5000).astype(np.float32)
        compiled = kmeans_plusplus(X, 12, sample_weight=weights, random_state=0)[1]
        with monkeypatch.context() as patch:
            patch.setattr(_numba, "AVAILABLE", False)
            blocks = kmeans_plusplus(X, 12, sample_weight=weights, random_state=0)[1]
        np.testing.assert_array_equal(compiled, blocks)


def test_wide_sums_take_one_chunk_per_core(monkeypatch):
    """Each chunk holds k x (d + 1) float64 sums: where they are large, a
    pass has one chunk per core (scikit-learn's per-thread sums), not four."""
    from xpkmeans._backend import _threads

    monkeypatch.setattr(_threads, "n_cores", lambda: 16)
    assert len(_numba._row_chunks(1_000_000)) == 64
    assert len(_numba._row_chunks(1_000_000, sums_bytes=8 * 64 * 129)) == 64  # small sums
    assert len(_numba._row_chunks(1_000_000, sums_bytes=8 * 200 * 50_001)) == 16
    assert len(_numba._row_chunks(1000, sums_bytes=8 * 200 * 50_001)) == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_torch_cpu_finite_check_reads_numpys_view(dtype, bad):
    """``all_finite`` of a torch CPU tensor (checked as NumPy's view of its
    memory) answers as torch's own ``isfinite``, also on strided views."""
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import all_finite

    X = torch.asarray(np.random.default_rng(0).standard_normal((3001, 7)), dtype=getattr(torch, dtype))
    for view in (X, X.T, X[::3, 1:], X.requires_grad_(False)):
        assert all_finite(view)
    Y = X.clone()
    Y[2999, 6] = bad
    for view in (Y, Y.T, Y[1::2]):
        assert all_finite(view) == bool(torch.isfinite(view).all())
    assert not all_finite(Y)
    with pytest.raises(ValueError, match="NaN or inf"):
        KMeans(2, n_init=1).fit(Y)



@pytest.mark.parametrize(("n", "d", "k"), [(10_000, 2, 3), (9_000, 10, 10), (20_000, 70, 5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_small_passes_in_the_calling_thread_equal_the_threaded_ones(n, d, k, weighted, monkeypatch):
    """Below ``_SERIAL_BELOW_WORK`` a pass runs its chunks in the calling
    thread (a pool thread's wake-up cost more than it saved): the same
    chunks, so the same labels, sums and potentials, bit for bit."""
    rng = np.random.default_rng(n + d + k)
    X = np.asfortranarray(rng.standard_normal((n, d)) * 100)
    centers = X[:k].copy()
    weights = rng.uniform(0, 3, n) if weighted else None
    assert len(_numba._row_chunks(n)) > 1

    def everything():
        labels, sums, totals = nearest_centers_and_sums(X, centers, weights=weights)
        given = _numba.sum_by_cluster(X, labels, k, weights=weights)
        norms = np.sum(X * X, axis=1)
        w = np.ones(n) if weights is None else weights
        _, potentials = _numba.closest_with_candidates(X, norms, w, np.full(n, np.inf), X[:3],
                                                       norms[:3])
        return labels, sums, totals, *given, potentials

    monkeypatch.setattr(_numba, "_SERIAL_BELOW_WORK", 1 << 40)
    serial = everything()
    monkeypatch.setattr(_numba, "_SERIAL_BELOW_WORK", 0)
    threaded = everything()
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
