"""The Triton kernels of one Lloyd pass equal the portable float32 path.

On a CUDA machine they run on torch CUDA tensors (and CuPy arrays through
the primitives); elsewhere in Triton's interpreter on torch CPU tensors
(``conftest.py`` sets ``TRITON_INTERPRET=1``), where TF32 is not emulated:
there every precision computes plain float32 products.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton", reason="triton is not installed (the CUDA fast path is optional)")

from xpkmeans._backend import _portable, _triton  # noqa: E402

ON_CUDA = torch.cuda.is_available()
if not ON_CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no CUDA device and triton was imported before TRITON_INTERPRET=1",
                allow_module_level=True)
DEVICE = torch.device("cuda", torch.cuda.current_device()) if ON_CUDA else torch.device("cpu")
EXACT = list(_triton.EXACT_PRECISIONS)


@pytest.fixture
def tiles(monkeypatch):
    """Force tile settings (``_triton.tile_config`` keys) for one test."""

    def force(**settings):
        monkeypatch.setattr(_triton, "config_override", settings)

    return force


def _tensor(values):
    return torch.asarray(np.asarray(values, dtype=np.float32), device=DEVICE)


def _portable_scores(X, centers):
    half_sq_norms = 0.5 * torch.sum(centers * centers, dim=1)
    return _portable.nearest_two_centers(X, centers, half_sq_norms)


def _assert_labels_equal_up_to_ties(X, centers, labels, expected):
    """Labels equal, except where both centres are equally near in float32
    rounding (then the float64 scores of the two differ by rounding only)."""
    labels, expected = labels.cpu().numpy(), expected.cpu().numpy()
    differ = np.nonzero(labels != expected)[0]
    if differ.size == 0:
        return
    x = X.cpu().numpy().astype(np.float64)[differ]
    c = centers.cpu().numpy().astype(np.float64)
    score = lambda j: 0.5 * np.sum(c[j] ** 2, axis=1) - np.sum(x * c[j], axis=1)  # noqa: E731
    scale = np.linalg.norm(x, axis=1) * np.linalg.norm(c, axis=1).max() + np.sum(c**2, axis=1).max()
    gap = np.abs(score(labels[differ]) - score(expected[differ]))
    assert np.all(gap <= 1e-5 * scale), f"{differ.size} labels differ beyond rounding"


def _reference_sums(X, labels, k, weights=None):
    x = X.cpu().numpy().astype(np.float64)
    w = np.ones(x.shape[0]) if weights is None else weights.cpu().numpy().astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels.cpu().numpy(), x * w[:, None])
    return sums, np.bincount(labels.cpu().numpy(), w, minlength=k)


SHAPES = [  # n not a multiple of any tile; d in {1, 2, 3, 17, 70, 129}; k = 1
    (1000, 1, 5),
    (257, 2, 1),
    (300, 3, 9),
    (200, 17, 40),
    (150, 70, 130),  # one chunk of 128 features on tensor cores; two tiles of 128 centres
    (130, 129, 20),
]


@pytest.mark.parametrize("precision", EXACT)
@pytest.mark.parametrize(("n", "d", "k"), SHAPES)
def test_triton_labels_and_sums_equal_portable(n, d, k, precision):
    rng = np.random.default_rng(n + d + k)
    X = _tensor(rng.standard_normal((n, d)))
    centers = _tensor(rng.standard_normal((k, d)))

    labels, sums, totals = _triton.nearest_centers_and_sums(X, centers, dot_precision=precision)

    expected, _, _ = _portable_scores(X, centers)
    _assert_labels_equal_up_to_ties(X, centers, labels, expected)
    assert labels.dtype == expected.dtype and labels.device == X.device
    ref_sums, ref_totals = _reference_sums(X, labels, k)
    assert sums.dtype == torch.float64 and totals.dtype == torch.float64
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(totals.cpu().numpy(), ref_totals)


@pytest.mark.parametrize(("n", "d", "k"), [(1000, 3, 70), (300, 40, 130), (130, 129, 20)])
def test_triton_tf32_labels_are_within_tf32_error_of_the_nearest(n, d, k):
    """The approximate mode: each label is a centre whose score is within
    TF32's error bound of the best (``check_bound``), and the sums are
    those of the labels given."""
    rng = np.random.default_rng(n + k)
    X = _tensor(rng.standard_normal((n, d)))
    centers = _tensor(rng.standard_normal((k, d)))

    labels, sums, totals = _triton.nearest_centers_and_sums(X, centers, dot_precision="tf32")

    got = labels.cpu().numpy()
    assert got.min() >= 0 and got.max() < k
    x, c = X.cpu().numpy().astype(np.float64), centers.cpu().numpy().astype(np.float64)
    scores = 0.5 * np.sum(c**2, axis=1)[None, :] - x @ c.T
    config = _triton.tile_config(n, d, k, "tf32")
    safety, accumulation, lane_bits, _ = _triton.check_bound(d, config["BLOCK_K"])
    # the tensor cores truncate float32 operands to TF32 (plain "tf32" does
    # not round them first): each moves by 2^-10 of its norm at most
    relative = safety * (2 * 2.0**-10 + accumulation)
    bound = (relative * np.linalg.norm(x, axis=1) * 2 * np.linalg.norm(c, axis=1).max()
             + lane_bits * 2 * np.abs(scores).max(axis=1))
    gap = scores[np.arange(n), got] - scores.min(axis=1)
    assert np.all(gap <= bound)
    ref_sums, ref_totals = _reference_sums(X, labels, k)
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(totals.cpu().numpy(), ref_totals)


@pytest.mark.parametrize("lane_min", [False, True])
@pytest.mark.parametrize("precision", EXACT)
def test_triton_more_centres_than_a_tile_and_chunked_features(tiles, precision, lane_min):
    # k = 70: 5 centre tiles; d = 40: 3 chunks
    tiles(BLOCK_N=32, BLOCK_K=16, BLOCK_D=16, LANE_MIN=lane_min)
    rng = np.random.default_rng(3)
    X = _tensor(rng.standard_normal((150, 40)))
    centers = _tensor(rng.standard_normal((70, 40)))

    labels = _triton.nearest_centers(X, centers, dot_precision=precision)
    two = _triton.nearest_two_centers(
        X, centers, 0.5 * torch.sum(centers * centers, dim=1), dot_precision=precision
    )

    expected, best, second = _portable_scores(X, centers)
    _assert_labels_equal_up_to_ties(X, centers, labels, expected)
    np.testing.assert_array_equal(two[0].cpu().numpy(), labels.cpu().numpy())
    np.testing.assert_allclose(two[1].cpu().numpy(), best.cpu().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(two[2].cpu().numpy(), second.cpu().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("precision", "lane_min"), [
    *((precision, lane_min) for precision in EXACT for lane_min in (False, True)),
    ("tf32", False),  # approximate, its lane in the scores' low bits: ties as the others
])
def test_triton_exact_ties_and_duplicate_centres_go_to_the_lowest_index(tiles, precision,
                                                                         lane_min):
    # duplicates in different centre tiles
    tiles(BLOCK_N=32, BLOCK_K=16, sum_copies=3, LANE_MIN=lane_min)
    rng = np.random.default_rng(4)
    X = _tensor(rng.integers(-3, 4, (300, 3)))  # small integers: every product is exact
    base = rng.integers(-3, 4, (12, 3))
    centers = _tensor(np.concatenate([base, base, base[::-1]]))  # each centre three times

    labels, sums, totals = _triton.nearest_centers_and_sums(X, centers, dot_precision=precision)
    _, best, second = _triton.nearest_two_centers(
        X, centers, 0.5 * torch.sum(centers * centers, dim=1), dot_precision=precision
    )

    expected, ref_best, ref_second = _portable_scores(X, centers)
    np.testing.assert_array_equal(labels.cpu().numpy(), expected.cpu().numpy())
    np.testing.assert_array_equal(best.cpu().numpy(), ref_best.cpu().numpy())
    np.testing.assert_array_equal(second.cpu().numpy(), ref_second.cpu().numpy())
    assert np.all(labels.cpu().numpy() < 12)  # duplicates never win
    ref_sums, ref_totals = _reference_sums(X, labels, centers.shape[0])
    np.testing.assert_array_equal(sums.cpu().numpy(), ref_sums)
    np.testing.assert_array_equal(totals.cpu().numpy(), ref_totals)


def test_triton_checked_tf32_redoes_the_tied_rows():
    # exact ties have margin 0: every row is listed and redone in float32
    X = _tensor(np.ones((70, 4)))
    centers = _tensor(np.ones((3, 4)))
    X_t, centers_t = _triton._as_torch(X), _triton._as_torch(centers)
    out = _triton._launch(X_t, centers_t, with_sums=True, dot_precision="tf32-check")
    assert int(out["n_listed"][0]) == 70
    np.testing.assert_array_equal(out["labels"].cpu().numpy(), np.zeros(70))
    np.testing.assert_array_equal(out["totals"].sum(dim=0).cpu().numpy(), [70, 0, 0])


@pytest.mark.parametrize("far", [0, 70])  # 70 far centres first: the ties in lanes 70-79
def test_triton_checked_tf32_decides_between_two_tied_centres_in_float32(far):
    # each centre twice: the two best always tie; the third is farther, so
    # most rows are decided by recomputing the two best scores, not listed
    rng = np.random.default_rng(9)
    X = _tensor(rng.standard_normal((300, 3)))
    base = rng.standard_normal((5, 3)) * 3
    centers = _tensor(np.concatenate([100.0 + rng.standard_normal((far, 3)), base, base]))
    X_t, centers_t = _triton._as_torch(X), _triton._as_torch(centers)

    out = _triton._launch(X_t, centers_t, with_sums=True, dot_precision="tf32-check")

    expected, _, _ = _portable_scores(X, centers)
    np.testing.assert_array_equal(out["labels"].cpu().numpy(), expected.cpu().numpy())
    assert np.all((far <= out["labels"].cpu().numpy()) & (out["labels"].cpu().numpy() < far + 5))
    assert int(out["n_listed"][0]) < 100
    assert int(out["n_pairs"][0]) > 150  # the ties: decided between the two best in float32
    ref_sums, _ = _reference_sums(X, out["labels"], far + 10)
    sums = out["sums"].sum(dim=0).double().cpu().numpy()
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("d", [3, 32, 128])
def test_check_bound_covers_the_error_of_each_tf32_score(d):
    """The per-score bound that tf32-check's decisions rest on: scores of
    operands rounded to TF32 (products in float32) lie within ``safety
    (||x - x'|| ||c|| + ||x|| ||c - c'|| + accumulation ||x|| ||c||)`` of
    the exact ones, with centres of very different norms."""
    rng = np.random.default_rng(d)
    x = (rng.standard_normal((2000, d)) * rng.uniform(0.1, 10, (2000, 1))).astype(np.float32)
    c = (rng.standard_normal((50, d)) * np.geomspace(0.01, 100, 50)[:, None]).astype(np.float32)
    half = 0.5 * np.sum(c.astype(np.float64) ** 2, axis=1)
    x_t = _tf32(torch.asarray(x)).numpy()
    c_t = _tf32(torch.asarray(c)).numpy()
    rounded = half[None, :] - (x_t @ c_t.T).astype(np.float64)  # float32 products and sums
    exact = half[None, :] - x.astype(np.float64) @ c.astype(np.float64).T
    safety, accumulation, _, _ = _triton.check_bound(d, 64)
    x_norm, c_norm = np.linalg.norm(x, axis=1)[:, None], np.linalg.norm(c, axis=1)[None, :]
    x_moved = np.linalg.norm(x.astype(np.float64) - x_t, axis=1)[:, None]
    c_moved = np.linalg.norm(c.astype(np.float64) - c_t, axis=1)[None, :]
    allowed = safety * (x_moved * c_norm + x_norm * c_moved + accumulation * x_norm * c_norm)
    error = np.abs(rounded - exact)
    assert np.all(error <= allowed)
    assert np.max(error / allowed) > 0.2  # not loose by orders of magnitude
    # the roundings' norms are well below their worst case, 2^-11 of the norms
    assert np.mean(x_moved / x_norm) < 0.6 * 2.0**-11
    assert np.mean(c_moved / c_norm) < 0.6 * 2.0**-11


def test_triton_checked_tf32_redoes_rows_whose_two_best_are_neighbouring_lanes():
    # each centre twice, side by side: a row's two best always share a pair
    # of lanes, where the pass's third is only a lower bound, so the rows
    # are redone, not decided between two
    rng = np.random.default_rng(11)
    X = _tensor(rng.standard_normal((300, 3)))
    centers = _tensor(np.repeat(rng.standard_normal((20, 3)) * 3, 2, axis=0))
    out = _triton._launch(X, centers, with_sums=True, dot_precision="tf32-check")

    expected, _, _ = _portable_scores(X, centers)
    np.testing.assert_array_equal(out["labels"].cpu().numpy(), expected.cpu().numpy())
    assert np.all(out["labels"].cpu().numpy() % 2 == 0)  # the first of each tie
    assert int(out["n_pairs"][0]) == 0 and int(out["n_listed"][0]) == 300


def _tf32(values):
    """Round float32 to TF32 (10 mantissa bits), as the tf32-check pass does."""
    bits = values.contiguous().view(torch.int32)
    return ((bits + 0x1000) & -8192).view(torch.float32)


@pytest.mark.parametrize("measure_rounding", [False, True])
@pytest.mark.parametrize("d", [8, 70])  # 70: one chunk of 128 features, redone in rows of 32
def test_triton_checked_tf32_is_exact_where_tf32_is_not(tiles, d, measure_rounding):
    # many points near boundaries: TF32-rounded products mislabel some of
    # them; the check must give the float32 labels all the same, whether
    # each row's rounding is bounded or measured
    tiles(MEASURE_ROUNDING=measure_rounding)
    rng = np.random.default_rng(10)
    centers_host = rng.standard_normal((40, d)) * 0.3 + 5.0  # far from 0: large norms
    X = _tensor(rng.standard_normal((3000, d)) * 0.3 + 5.0)
    centers = _tensor(centers_host)
    half = 0.5 * torch.sum(centers * centers, dim=1)
    rounded = torch.argmin(half.cpu() - _tf32(X).cpu() @ _tf32(centers).cpu().T, dim=1)

    out = _triton._launch(X, centers, with_sums=True, dot_precision="tf32-check")

    expected, _, _ = _portable_scores(X, centers)
    assert int((rounded != expected.cpu()).sum()) > 0, "the data must trip TF32"
    assert int(out["n_listed"][0]) > 0  # the redo ran (on 70 features: every row)
    assert int(out["n_pairs"][0]) > 0 or d == 70
    _assert_labels_equal_up_to_ties(X, centers, out["labels"], expected)
    ref_sums, _ = _reference_sums(X, out["labels"], 40)
    sums = out["sums"].sum(dim=0).double().cpu().numpy()
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("measure_rounding", [False, True])
def test_triton_checked_tf32_bound_covers_the_rounding_of_x(tiles, measure_rounding):
    # Every feature of x sits just below a TF32 rounding threshold, and the
    # two centres (exact in TF32) differ along all features: rounding x
    # alone turns the order of the two scores, by far more than the
    # float32 sums' error. Only the bound's term for x's rounding sends
    # these rows to be rescored.
    tiles(MEASURE_ROUNDING=measure_rounding)
    d, p = 8, 256
    below = 1 + 2.0**-11 - 2.0**-23  # TF32 rounds it down to 1
    centers_host = np.array([[1 - 2.0**-11 * (2 * p - 1)] * d, [1 + 2.0**-10 * p] * d])
    X = _tensor(np.full((50, d), below))
    centers = _tensor(centers_host)
    half = 0.5 * torch.sum(centers * centers, dim=1)
    assert torch.equal(_tf32(centers), centers)
    rounded = torch.argmin(half.cpu() - _tf32(X).cpu() @ centers.cpu().T, dim=1)
    _assert_rechecked_to_their_float32_labels(X, centers, rounded)


@pytest.mark.parametrize("measure_rounding", [False, True])
def test_triton_checked_tf32_bound_covers_the_rounding_of_the_centres(tiles, measure_rounding):
    # The mirror image: x is exact in TF32 (its measured rounding is 0) and
    # every feature of one centre sits just below a TF32 rounding threshold,
    # which turns the order of the two scores: only the bound's term for
    # the centres' rounding sends the rows to be rescored.
    tiles(MEASURE_ROUNDING=measure_rounding)
    d = 8
    x = np.full(d, 0.5)
    x[0] += 6 * 2.0**-11
    X = _tensor(np.tile(x, (50, 1)))
    centers = _tensor([[0.0] * d, [1 + 2.0**-11 - 2.0**-23] * d])  # TF32: 0 and 1
    half = 0.5 * torch.sum(centers * centers, dim=1)
    assert torch.equal(_tf32(X), X)
    rounded = torch.argmin(half.cpu() - X.cpu() @ _tf32(centers).cpu().T, dim=1)
    _assert_rechecked_to_their_float32_labels(X, centers, rounded)


def _assert_rechecked_to_their_float32_labels(X, centers, rounded):
    """Rows nearest centre 1 in float32 whose TF32 scores (``rounded``, the
    labels of those) say 0: tf32-check rechecks them all, to centre 1."""
    out = _triton._launch(X, centers, with_sums=True, dot_precision="tf32-check")

    expected, _, _ = _portable_scores(X, centers)
    assert torch.all(expected.cpu() == 1) and torch.all(rounded == 0), "rounding must turn it"
    np.testing.assert_array_equal(out["labels"].cpu().numpy(), expected.cpu().numpy())
    assert int(out["n_pairs"][0]) + int(out["n_listed"][0]) == X.shape[0]


@pytest.mark.parametrize("measure_rounding", [False, True])
@pytest.mark.parametrize(("block_k", "x", "nearest", "other", "filler", "far_lane"), [
    (32, "0x1.00c0p+1", "0x1.0100440p+1", "0x1.0080p+1", "-0x1.4840c0p-6", 29),
    (128, "0x1.0040p+0", "0x1.0000020p+0", "0x1.007ffa0p+0", "-0x1.47d254p-7", 127),
])
def test_triton_checked_tf32_bound_covers_the_lanes_of_the_two_best(
        tiles, measure_rounding, block_k, x, nearest, other, filler, far_lane):
    # One feature, x exact in TF32, the two best a few ulps apart in lanes
    # far apart (their keys' low bits differ the most), a centre at 0 (the
    # third score, near 0: its |score| cannot stand in for the second's in
    # the bound of the lane bits), the other centres far.
    tiles(MEASURE_ROUNDING=measure_rounding, BLOCK_K=block_k)
    nearest_lane = 2 if block_k == 32 else 0
    centers_host = np.full((block_k, 1), float.fromhex(filler))
    centers_host[1] = 0.0
    centers_host[nearest_lane] = float.fromhex(nearest)
    centers_host[far_lane] = float.fromhex(other)
    X = _tensor(np.full((4, 1), float.fromhex(x)))
    centers = _tensor(centers_host)

    out = _triton._launch(X, centers, with_sums=True, dot_precision="tf32-check")

    # the scores of the half squared norms the kernel takes (float32), exact
    half = (0.5 * torch.sum(centers * centers, dim=1)).cpu().numpy().astype(np.float64)
    exact = half - float.fromhex(x) * centers.cpu().numpy()[:, 0].astype(np.float64)
    assert np.argmin(exact) == nearest_lane
    np.testing.assert_array_equal(out["labels"].cpu().numpy(), nearest_lane)


def test_triton_checked_tf32_rechecks_rows_whose_bound_is_not_a_number(tiles):
    # ||x||^2 overflows: the reach is inf; x is exact in TF32, so its
    # measured rounding is (about) 0, and 0 x inf would be NaN, which must
    # decide nothing
    tiles(MEASURE_ROUNDING=True)
    t = np.float32(2.0**-60)
    centers = _tensor([[np.nextafter(t, np.float32(1))], [t], [-t]])  # the first is nearest
    X = _tensor(np.full((4, 1), 2.0**70))
    with np.errstate(over="ignore"):
        out = _triton._launch(X, centers, with_sums=True, dot_precision="tf32-check")
    np.testing.assert_array_equal(out["labels"].cpu().numpy(), 0)
    assert int(out["n_listed"][0]) + int(out["n_pairs"][0]) == 4


def test_triton_labels_alone_take_the_compiled_kernels_of_the_pass_with_sums(monkeypatch):
    """``nearest_centers`` launches the kernels of ``nearest_centers_and_sums``
    with the same compile-time settings (one compilation a process, not two),
    and gives their labels."""
    from xpkmeans._backend import _triton_kernels as kernels

    launched = {}

    class Recording:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            def launch(*args, **settings):
                launched.setdefault(caller, set()).add(
                    (self.name, tuple(sorted((k, v) for k, v in settings.items()
                                             if k.isupper()))))
                return self.kernel[grid](*args, **settings)
            return launch

    for name in ("dense_kernel", "listed_kernel"):
        monkeypatch.setattr(kernels, name, Recording(name, getattr(kernels, name)))
    rng = np.random.default_rng(6)
    X = _tensor(rng.standard_normal((300, 5)))
    centers = _tensor(rng.standard_normal((9, 5)))
    caller = "labels"
    labels = _triton.nearest_centers(X, centers)
    caller = "labels and sums"
    with_sums, _, _ = _triton.nearest_centers_and_sums(X, centers)

    assert launched["labels"] == launched["labels and sums"]
    assert len(launched["labels"]) == 3  # the dense pass and the two of listed rows
    np.testing.assert_array_equal(labels.cpu().numpy(), with_sums.cpu().numpy())


@pytest.mark.parametrize("precision", ["tf32x3", "tf32-check"])
def test_triton_weighted_sums(precision):
    rng = np.random.default_rng(5)
    X = _tensor(rng.standard_normal((333, 6)))
    centers = _tensor(rng.standard_normal((7, 6)))
    weights = _tensor(rng.uniform(0, 2, 333))

    labels, sums, totals = _triton.nearest_centers_and_sums(
        X, centers, weights=weights, dot_precision=precision
    )

    ref_sums, ref_totals = _reference_sums(X, labels, 7, weights)
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(totals.cpu().numpy(), ref_totals, rtol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_triton_deterministic_sums_are_exact_fixed_point(monkeypatch, tiles, weighted):
    monkeypatch.setenv("XPKMEANS_CUDA_DETERMINISTIC", "1")
    tiles(BLOCK_N=32, sum_copies=3, exact_sum_copies=3)
    rng = np.random.default_rng(8)
    X = _tensor(rng.standard_normal((300, 5)) * 1e3)
    centers = _tensor(rng.standard_normal((6, 5)) * 1e3)
    weights = _tensor(rng.uniform(0, 2, 300)) if weighted else None

    labels, sums, totals = _triton.nearest_centers_and_sums(X, centers, weights=weights)
    again = _triton.nearest_centers_and_sums(X, centers, weights=weights)

    # integers of 2^62 / (n max|x w|): far finer than float32 rounding
    x64 = X.cpu().numpy().astype(np.float64)
    w64 = np.ones(300) if weights is None else weights.cpu().numpy().astype(np.float64)
    ref_sums, ref_totals = _reference_sums(X, labels, 6, weights)
    if weighted:  # the kernel sums float32 products x * w
        ref_sums = np.zeros((6, 5))
        np.add.at(ref_sums, labels.cpu().numpy(), (x64 * w64[:, None]).astype(np.float32))
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(totals.cpu().numpy(), ref_totals, rtol=1e-12)
    for value, repeated in zip((labels, sums, totals), again):
        np.testing.assert_array_equal(value.cpu().numpy(), repeated.cpu().numpy())


def test_triton_fixed_point_scales_take_no_copy_of_x(monkeypatch):
    """The scales of the fixed-point sums come from reductions over X, with
    no temporary of X's size (``abs(X)`` had doubled the memory of X on
    every deterministic pass), and a pass over no rows with weights (an
    empty Dask chunk) gives zero sums (``amax`` of no weights had raised)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestResult(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            for value in result if isinstance(result, (tuple, list)) else (result,):
                if isinstance(value, torch.Tensor):
                    LargestResult.numel = max(LargestResult.numel, value.numel())
            return result

    rng = np.random.default_rng(12)
    X = _tensor(rng.standard_normal((300, 8)) * 5.0)
    mean, weights = _tensor(rng.standard_normal(8)), _tensor(rng.uniform(0, 3, 300))
    with LargestResult():
        scales = _triton._fixed_point_scales(X, mean, weights)
    assert LargestResult.numel <= 300  # the weights' size at most
    x, w = X.cpu().numpy().astype(np.float64), weights.cpu().numpy().astype(np.float64)
    largest = np.abs(x).max() + np.abs(mean.cpu().numpy()).max()
    bounds = 300 * np.array([largest * w.max(), w.max()])
    np.testing.assert_array_equal(scales.cpu().numpy(), 2.0 ** (62 - np.ceil(np.log2(bounds))))

    monkeypatch.setenv("XPKMEANS_CUDA_DETERMINISTIC", "1")
    labels, sums, totals = _triton.nearest_centers_and_sums(
        _tensor(np.ones((0, 2))), _tensor(np.ones((3, 2))), weights=_tensor(np.ones(0)))
    assert labels.shape == (0,)
    np.testing.assert_array_equal(sums.cpu().numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal(totals.cpu().numpy(), np.zeros(3))


def test_triton_non_contiguous_input():
    rng = np.random.default_rng(6)
    wide = _tensor(rng.standard_normal((260, 10)))
    X = wide[:, ::2]  # strided columns
    X_t = _tensor(rng.standard_normal((5, 200))).T  # column-major
    centers = _tensor(rng.standard_normal((4, 5)))

    for data in (X, X_t):
        labels, sums, _ = _triton.nearest_centers_and_sums(data, centers)
        expected, _, _ = _portable_scores(data.contiguous(), centers)
        _assert_labels_equal_up_to_ties(data, centers, labels, expected)
        ref_sums, _ = _reference_sums(data, labels, 4)
        np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-5)


def test_triton_no_rows():
    centers = _tensor(np.ones((3, 2)))
    labels, sums, totals = _triton.nearest_centers_and_sums(_tensor(np.ones((0, 2))), centers)
    assert labels.shape == (0,)
    np.testing.assert_array_equal(sums.cpu().numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal(totals.cpu().numpy(), np.zeros(3))


def test_triton_precision_setting(monkeypatch):
    monkeypatch.setenv("XPKMEANS_CUDA_PRECISION", "tf32")
    assert _triton.precision() == "tf32"
    monkeypatch.setenv("XPKMEANS_CUDA_PRECISION", "fp8")
    with pytest.raises(ValueError, match="XPKMEANS_CUDA_PRECISION"):
        _triton.precision()


def test_triton_takes_only_sizes_that_its_int32_indices_hold():
    """A feature's offset within a row is int32 in the kernels: a column-major
    2^26 x 33 X (8.9 GB) read feature 32 from 2^31 elements too low."""
    assert _triton.fits_int32_indices((1 << 26, 33), 1, (256, 33))
    assert not _triton.fits_int32_indices((1 << 26, 33), 1 << 26, (256, 33))
    assert _triton.fits_int32_indices((1 << 26, 32), 1 << 26, (256, 32))
    assert not _triton.fits_int32_indices((1 << 31, 2), 1, (8, 2))  # listed rows are int32
    assert not _triton.fits_int32_indices((1000, 1 << 16), 1, (1 << 15, 1 << 16))
    assert _triton.fits_int32_indices((1000, 1 << 16), 1, (33,))  # a mean is one row


def test_triton_counts_are_integers_and_sum_replicas_bound_their_rows():
    """Unweighted totals are int32 counts (a float32 count stops at 2^24), and
    large n spreads the float32 sums over more replicas, within X's size / 48."""
    X = _tensor(np.random.default_rng(0).normal(size=(300, 3)))
    out = _triton._launch(X, X[:5], with_sums=True)
    assert out["totals"].dtype == torch.int32
    assert int(out["totals"].sum()) == 300
    weighted = _triton._launch(X, X[:5], weights=torch.ones(300, device=DEVICE), with_sums=True)
    assert weighted["totals"].dtype == torch.float32
    for n, d, k in [(1 << 30, 32, 8), (100_000_000, 4, 2), (10_000_000, 32, 256)]:
        copies = _triton.tile_config(n, d, k, "tf32-check")["sum_copies"]
        assert n / copies <= _triton._ROWS_PER_SUM_COPY
        assert copies * k * (d + 1) <= max(1 << 20, n * d / 48)
    # wide sums: replicas take 1/48 of X (330 x 2^16 x 33 x 4 B = 2.9 GB of 128 GB), and
    # exact (fixed point) or dropped sums only those against collisions
    config = _triton.tile_config(1 << 30, 32, 1 << 16, "tf32-check")
    assert config["sum_copies"] == 330 and config["exact_sum_copies"] == 1


@pytest.mark.parametrize("precision", EXACT)
def test_triton_goes_in_chunks_where_the_gpu_refuses_a_wide_tile(monkeypatch, precision):
    """A GPU with less shared memory a block than a wide tile of features
    asks (sm_75: 64 KB, against 66-96 KB at d = 65-128; sm_86/89 in tf32x3:
    99 KB against 136-160 KB) refuses its launch (``OutOfResources``): the
    pass goes in chunks of features, with the same results, and so do the
    next ones, without another refused launch."""
    from triton.runtime.errors import OutOfResources

    from xpkmeans._backend import _triton_kernels as kernels

    launched = []

    class SmallSharedMemory:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            def launch(*args, **settings):
                wide = settings["SINGLE_CHUNK"] and settings["BLOCK_D"] > 32
                launched.append(wide)
                if wide:
                    raise OutOfResources(98304, 65536, "shared memory")
                return self.kernel[grid](*args, **settings)
            return launch

    for name in ("dense_kernel", "listed_kernel"):
        monkeypatch.setattr(kernels, name, SmallSharedMemory(getattr(kernels, name)))
    monkeypatch.setattr(_triton, "_NARROW_TILES", set())
    rng = np.random.default_rng(13)
    X = _tensor(rng.standard_normal((150, 70)))
    centers = _tensor(rng.standard_normal((20, 70)))
    weights = _tensor(rng.uniform(0, 2, 150))
    assert _triton.tile_config(150, 70, 20, precision)["BLOCK_D"] == (
        16 if precision == "ieee" else 128)

    labels, sums, totals = _triton.nearest_centers_and_sums(
        X, centers, weights=weights, dot_precision=precision)
    again = _triton.nearest_centers(X, centers, dot_precision=precision)

    expected, _, _ = _portable_scores(X, centers)
    _assert_labels_equal_up_to_ties(X, centers, labels, expected)
    np.testing.assert_array_equal(again.cpu().numpy(), labels.cpu().numpy())
    ref_sums, ref_totals = _reference_sums(X, labels, 20, weights)
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(totals.cpu().numpy(), ref_totals, rtol=1e-5)
    assert launched.count(True) == (0 if precision == "ieee" else 1)  # refused once
    assert not all(launched)


def test_triton_handles_only_float32_cuda_arrays():
    X = torch.ones((4, 2), dtype=torch.float32)
    assert not _triton.handles(X, X)  # CPU tensors take the portable path
    assert not _triton.handles(np.ones((4, 2), np.float32), np.ones((4, 2), np.float32))
    if ON_CUDA:
        Xc = X.to(DEVICE)
        assert _triton.handles(Xc, Xc)
        assert not _triton.handles(Xc.double(), Xc.double())


def test_triton_never_hands_torch_negative_strides(monkeypatch):
    """torch.from_dlpack does not raise on negative strides, it aborts the
    process (torch <= 2.13): a reversed CuPy view takes the portable path
    (``handles``), and ``_as_torch`` copies such an array before DLPack. The
    conversion runs in a subprocess, which the abort would kill."""
    import subprocess
    import sys

    monkeypatch.setattr(_triton, "is_cupy_array", lambda x: isinstance(x, np.ndarray))
    monkeypatch.setattr(_triton, "triton_imports", lambda: True)
    X = np.ones((4, 2), np.float32)  # a NumPy array standing in for a CuPy one
    assert _triton.handles(X, X)
    assert not _triton.handles(X[::-1], X)
    assert not _triton.handles(X[:, ::-1], X)

    code = ("import numpy as np\n"
            "from xpkmeans._backend import _triton\n"
            "x = np.arange(12, dtype=np.float32).reshape(3, 4)\n"
            "for view in (x[::-1], x[:, ::-1], x[::-2, ::-1]):\n"
            "    assert (_triton._as_torch(view).numpy() == view).all()\n"
            "print('converted')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "converted" in done.stdout, done.stderr[-2000:]


# ------------------------------------------------------------------ randomized differential check


def _edge_data(rng, n, d, k, kind):
    """Rows, centres and weights of one randomized case (``kind``)."""
    if kind == "integers":  # every product exact: ties are exact, scores equal bit for bit
        X, centers = rng.integers(-2, 3, (n, d)), rng.integers(-2, 3, (k, d))
    elif kind == "duplicates":  # each centre thrice, half the rows on a centre
        base = rng.standard_normal((-(-k // 3), d))
        centers = np.concatenate([base, base, base])[:k]
        X = np.concatenate([centers[rng.integers(0, k, n // 2)],
                            rng.standard_normal((n - n // 2, d))])
    else:  # "normal", or "huge" / "tiny" magnitudes
        scale = {"normal": 1.0, "huge": 1e15, "tiny": 1e-15}[kind]
        X, centers = rng.standard_normal((n, d)) * scale, rng.standard_normal((k, d)) * scale
    weights = rng.uniform(0, 2, n) * (rng.random(n) < 0.7)  # fractional, some zero
    return _tensor(X), _tensor(centers), _tensor(weights)


def _laid_out(X, layout):
    """``X`` row-major, column-major, or every other column of a wider array."""
    if layout == "columns":
        return X.T.contiguous().T
    if layout == "strided":
        return torch.repeat_interleave(X, 2, dim=1)[:, ::2]
    return X


@pytest.mark.parametrize(("n", "d", "k", "kind", "layout"), [
    # n and k about tiles of 16 (forced), d about chunks and pieces of 16 and 32
    (1, 1, 1, "normal", "rows"), (15, 2, 2, "integers", "columns"),
    (17, 3, 17, "duplicates", "strided"), (33, 15, 15, "integers", "rows"),
    (17, 16, 40, "normal", "columns"), (15, 31, 3, "huge", "rows"),
    (33, 33, 17, "duplicates", "rows"), (20, 65, 9, "tiny", "strided"),
    (17, 100, 5, "integers", "rows"), (9, 129, 20, "normal", "columns"),
])
def test_triton_entry_points_equal_portable_on_randomized_edge_cases(
        tiles, n, d, k, kind, layout):
    """Every entry point against the portable float32 path, in each exact
    precision: labels (bit for bit where products are exact), sums and
    totals of the labels given, the two best scores, distances to assigned
    centres and greedy k-means++'s pass, on tiles of 16 rows and centres."""
    from xpkmeans._backend import _primitives

    tiles(BLOCK_N=16, BLOCK_K=16, sum_copies=2)
    rng = np.random.default_rng(n * 1000 + d * 10 + k)
    X, centers, weights = _edge_data(rng, n, d, k, kind)
    data = _laid_out(X, layout)
    half = 0.5 * torch.sum(centers * centers, dim=1)
    expected, ref_best, ref_second = _portable.nearest_two_centers(X, centers, half)
    score_scale = (torch.sum(torch.abs(X), dim=1) * torch.max(torch.abs(centers))
                   + torch.max(torch.abs(half))).cpu().numpy() * 1e-5
    for precision in EXACT:
        labels, sums, totals = _triton.nearest_centers_and_sums(
            data, centers, weights=weights, dot_precision=precision)
        two = _triton.nearest_two_centers(data, centers, half, dot_precision=precision)
        if kind == "integers":
            np.testing.assert_array_equal(labels.cpu().numpy(), expected.cpu().numpy())
        _assert_labels_equal_up_to_ties(X, centers, labels, expected)
        np.testing.assert_array_equal(two[0].cpu().numpy(), labels.cpu().numpy())
        np.testing.assert_array_equal(
            _triton.nearest_centers(data, centers, dot_precision=precision).cpu().numpy(),
            labels.cpu().numpy())
        for got, ref in ((two[1], ref_best), (two[2], ref_second)):
            got, ref = got.cpu().numpy(), ref.cpu().numpy()
            with np.errstate(invalid="ignore"):  # inf - inf: a second score of one centre
                assert np.all((got == ref) | (np.abs(got - ref) <= score_scale)), precision
        ref_sums, ref_totals = _reference_sums(X, labels, k, weights)
        scale = np.max(np.sum(np.abs(X.cpu().numpy().astype(np.float64)), axis=0))
        np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(totals.cpu().numpy(), ref_totals, rtol=1e-6, atol=1e-6)

    distances = _triton.sq_distances_to_assigned(data, centers, labels)
    np.testing.assert_allclose(
        distances.cpu().numpy(),
        _primitives.block_sq_distances_to_assigned(X, centers, labels).cpu().numpy(),
        rtol=1e-5, atol=0)
    x_sq, rows = torch.sum(X * X, dim=1), X[rng.integers(0, n, 3)]
    rows_sq = torch.sum(rows * rows, dim=1)
    closest = torch.where(_tensor(rng.random(n)) < 0.5, torch.inf,  # inf: before a first centre
                          _tensor(rng.uniform(0, 2, n)) * torch.max(x_sq))
    blocks, potentials = _triton.closest_with_candidates(
        data, x_sq, weights, closest, rows, rows_sq)
    ref_blocks, ref_potentials = _primitives.closest_with_candidates(
        *(t.cpu() for t in (X, x_sq, weights, closest, rows, rows_sq)))
    atol = 16 * 2.0**-23 * float(torch.max(x_sq) + torch.max(rows_sq))
    np.testing.assert_allclose(blocks[0].cpu().numpy(), torch.cat(ref_blocks).cpu().numpy(),
                               rtol=1e-5, atol=atol)
    np.testing.assert_allclose(potentials.cpu().numpy(), ref_potentials.cpu().numpy(),
                               rtol=1e-5, atol=n * atol)


# ------------------------------------------------------------------ data centred as it is read


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("precision", "d", "block_d"), [
    ("tf32x3", 17, None),  # one chunk of features: X's tile stays in registers
    ("ieee", 40, 16),  # three chunks
    ("tf32-check", 40, 16),  # the two best rescored, doubtful rows listed and redone
    ("tf32-check", 70, None),  # one chunk of 128 features
])
def test_triton_centres_the_rows_as_it_reads_them(tiles, precision, d, block_d, weighted):
    """A ``CenteredRows`` gives the labels and sums of the centred copy: each
    value is ``x - mean`` rounded once, as in the copy (far from the origin,
    where uncentred products would lose the labels)."""
    from xpkmeans._backend._centered import CenteredRows

    if block_d is not None:
        tiles(BLOCK_N=32, BLOCK_K=16, BLOCK_D=block_d)
    rng = np.random.default_rng(d)
    X = _tensor(1000.0 + rng.standard_normal((300, d)))
    mean = torch.mean(X, dim=0)
    copy = X - mean
    centers = copy[rng.choice(300, 20, replace=False)] + _tensor(0.01 * rng.random((20, d)))
    weights = _tensor(rng.random(300)) if weighted else None

    labels, sums, totals = _triton.nearest_centers_and_sums(
        CenteredRows(X, mean), centers, weights=weights, dot_precision=precision
    )
    two = _triton.nearest_two_centers(
        CenteredRows(X, mean), centers, 0.5 * torch.sum(centers * centers, dim=1),
        dot_precision=precision,
    )

    expected, best, second = _portable_scores(copy, centers)
    _assert_labels_equal_up_to_ties(copy, centers, labels, expected)
    np.testing.assert_array_equal(two[0].cpu().numpy(), labels.cpu().numpy())
    np.testing.assert_allclose(two[1].cpu().numpy(), best.cpu().numpy(), rtol=1e-5, atol=1e-4)
    ref_sums, ref_totals = _reference_sums(copy, labels, 20, weights)
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(totals.cpu().numpy(), ref_totals, rtol=1e-6)


def test_triton_centred_deterministic_sums(monkeypatch, tiles):
    """Fixed-point sums of centred rows: their scale bounds ``|x - mean|``."""
    from xpkmeans._backend._centered import CenteredRows

    monkeypatch.setenv("XPKMEANS_CUDA_DETERMINISTIC", "1")
    tiles(BLOCK_N=32, BLOCK_K=16)
    rng = np.random.default_rng(5)
    X = _tensor(rng.standard_normal((200, 3)) - 50.0)
    mean = _tensor([-50.0, 80.0, 0.0])  # not X's mean: values up to 130 away
    centers = _tensor(rng.standard_normal((6, 3)))

    labels, sums, totals = _triton.nearest_centers_and_sums(CenteredRows(X, mean), centers)

    ref_sums, ref_totals = _reference_sums(X - mean, labels, 6)
    np.testing.assert_allclose(sums.cpu().numpy(), ref_sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(totals.cpu().numpy(), ref_totals)


# ------------------------------------------------------------------ greedy k-means++'s pass


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize(("d", "m", "block_d"), [  # one chunk; chunks of 16, 32 (default), 128
    (5, 7, None), (40, 20, 16), (70, 9, None), (70, 9, 128)])
def test_triton_candidates_pass_equals_portable(monkeypatch, d, m, block_d, centred):
    """The distances if each candidate joined and the potentials equal the
    portable pass's (to float32 rounding), with weights, a running minimum
    and a first centre (closest = inf)."""
    from xpkmeans._backend import _primitives
    from xpkmeans._backend._centered import CenteredRows

    if block_d is not None:
        monkeypatch.setattr(_triton, "candidates_override", dict(BLOCK_N=32, BLOCK_D=block_d))
        assert _triton.candidates_config(301, d, m, "tf32x3")["BLOCK_D"] == block_d
    rng = np.random.default_rng(d + m)
    X = _tensor(50.0 + rng.standard_normal((301, d)))
    mean = torch.mean(X, dim=0)
    data = CenteredRows(X, mean) if centred else X
    copy = X - mean if centred else X
    rows = copy[rng.choice(301, m, replace=False)]
    x_sq = torch.sum(copy * copy, dim=1)
    rows_sq = torch.sum(rows * rows, dim=1)
    weights = _tensor(rng.uniform(0, 2, 301))
    for closest in (_tensor(np.full(301, np.inf)), _tensor(rng.uniform(0, 30, 301))):
        blocks, potentials = _triton.closest_with_candidates(
            data, x_sq, weights, closest, rows, rows_sq)
        ref_blocks, ref_potentials = _primitives.closest_with_candidates(  # on the CPU:
            *(t.cpu() for t in (copy, x_sq, weights, closest, rows, rows_sq)))  # not Triton
        assert len(blocks) == 1 and blocks[0].shape == (301, m)
        # the two expansions round differently: a few float32 ulps of ||x||^2 + ||c||^2
        atol = 16 * 2.0**-23 * float(torch.max(x_sq) + torch.max(rows_sq))
        np.testing.assert_allclose(blocks[0].cpu().numpy(), torch.cat(ref_blocks).cpu().numpy(),
                                   rtol=1e-5, atol=atol)
        np.testing.assert_allclose(potentials.cpu().numpy(), ref_potentials.cpu().numpy(),
                                   rtol=1e-5, atol=301 * atol)


def test_triton_candidates_pass_with_zero_weights_before_a_first_centre():
    """Rows of zero weight while no centre is chosen yet (closest = inf): the
    padded candidates, inf away, are masked before the weights multiply them
    (inf x 0 had made NaN, which the interpreter turns into an error)."""
    X = _tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    rows = X[:1]
    x_sq, rows_sq = torch.sum(X * X, dim=1), torch.sum(rows * rows, dim=1)
    blocks, potentials = _triton.closest_with_candidates(
        X, x_sq, _tensor([0.0, 1.0, 0.5]), _tensor(np.full(3, np.inf)), rows, rows_sq)
    np.testing.assert_array_equal(blocks[0].cpu().numpy(), [[0.0], [5.0], [1.0]])
    np.testing.assert_array_equal(potentials.cpu().numpy(), [5.5])


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize(("n", "d", "k"), [(300, 3, 9), (130, 129, 20)])  # 5 chunks of 32
def test_triton_distances_to_assigned_centres_equal_portable(n, d, k, centred):
    """One pass, a view's rows centred as read: the squared distances of the
    portable blocks (centred copy minus gathered centres), to float32 rounding."""
    from xpkmeans._backend import _primitives
    from xpkmeans._backend._centered import CenteredRows

    rng = np.random.default_rng(n + d)
    X = _tensor(100.0 + rng.standard_normal((n, d)))
    mean = torch.mean(X, dim=0)
    copy = X - mean if centred else X
    centers = copy[rng.choice(n, k, replace=False)] + _tensor(rng.standard_normal((k, d)))
    labels = torch.asarray(rng.integers(0, k, n), device=DEVICE)

    got = _triton.sq_distances_to_assigned(CenteredRows(X, mean) if centred else X, centers,
                                           labels)

    expected = _primitives.block_sq_distances_to_assigned(copy, centers, labels)
    assert got.shape == (n,) and got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().numpy(), expected.cpu().numpy(), rtol=1e-5)


# ------------------------------------------------------------------ on a GPU: the primitives


@pytest.mark.parametrize("library", ["torch-cuda", "cupy"])
def test_triton_primitives_on_cuda_arrays_equal_portable(library):
    if not ON_CUDA:
        pytest.skip("needs a CUDA device")
    from xpkmeans._backend import nearest_centers, nearest_centers_and_sums, to_numpy

    rng = np.random.default_rng(7)
    X_host = rng.standard_normal((5000, 24)).astype(np.float32)
    C_host = rng.standard_normal((300, 24)).astype(np.float32)
    if library == "cupy":
        cupy = pytest.importorskip("cupy")
        X, centers = cupy.asarray(X_host), cupy.asarray(C_host)
    else:
        X, centers = torch.asarray(X_host, device=DEVICE), torch.asarray(C_host, device=DEVICE)

    labels = nearest_centers(X, centers)
    fused_labels, sums, totals = nearest_centers_and_sums(X, centers)

    assert type(labels) is type(X) and type(sums) is type(X)
    X_t, C_t = torch.asarray(X_host), torch.asarray(C_host)
    expected, _, _ = _portable_scores(X_t, C_t)
    _assert_labels_equal_up_to_ties(X_t, C_t, torch.asarray(to_numpy(labels)), expected)
    np.testing.assert_array_equal(to_numpy(fused_labels), to_numpy(labels))
    ref_sums, ref_totals = _reference_sums(X_t, torch.asarray(to_numpy(labels)), 300)
    np.testing.assert_allclose(to_numpy(sums), ref_sums, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(to_numpy(totals), ref_totals)


# ------------------------------------------------------------------ compiled for a real GPU


_COMPILE = """
import json, re, sys
from triton.backends.compiler import GPUTarget
from benchmarks.kernel_mix import _registers, programs_per_multiprocessor
from xpkmeans._backend import _triton
sm90 = GPUTarget("cuda", 90, 32)
found = {}
def record(name, kernels):
    found[name] = [(kernel.metadata.shared, len(re.findall(r"\\b(?:LDL|STL)\\b", kernel.asm["sass"])),
                    programs_per_multiprocessor(_registers(kernel), kernel.metadata.shared,
                                                kernel.metadata.num_warps))
                   for kernel in kernels]
for n, d, k in [(10_000_000, 32, 256), (8_000_000, 128, 1024), (1_000_000, 64, 1000),
                (1000, 3, 70000)]:
    for precision in ("tf32x3", "tf32-check", "ieee", "tf32"):
        record(f"{n}x{d}x{k} {precision}", _triton.compile_for(sm90, n, d, k, precision))
# d not a multiple of 16: 128 features held in pieces (both spilled registers whole;
# any d in 65-127 but 80, 96, 112 compiles to the same kernels)
for precision in ("tf32-check", "tf32"):
    record(f"8000000x100x1024 {precision}", _triton.compile_for(sm90, 8_000_000, 100, 1024,
                                                                precision))
record("deterministic", _triton.compile_for(sm90, 10_000_000, 32, 256, "tf32-check",
                                            fixed_point=True))
for n, d, m in [(8_000_000, 128, 8), (20_000, 128, 8), (1000, 3, 70),
                (8_000_000, 100, 8)]:  # d = 100: chunks of 16
    record(f"k-means++ {n}x{d}x{m}", [_triton.compile_candidates_for(sm90, n, d, m, "tf32x3")])
record("distances to assigned centres", [_triton.compile_assigned_for(sm90, 129)])
narrow = {}  # shared memory of the passes in chunks that smaller GPUs fall back to
for arch, precision in [(75, "tf32-check"), (86, "tf32x3")]:
    kernels = _triton.compile_for(GPUTarget("cuda", arch, 32), 8_000_000, 100, 1024, precision,
                                  narrow=True)
    narrow[f"sm_{arch} {precision}"] = [kernel.metadata.shared for kernel in kernels]
print(json.dumps(found))
print(json.dumps(narrow))
"""


def test_triton_compiles_for_sm90():
    """The kernels of the benchmark shapes (and k = 70,000, d = 100; k-means++ on them)
    compile for an H100 (sm_90) on any machine: shared memory and dot sizes
    are checked, which the interpreter does not, and register spills. A
    subprocess, since this one interprets."""
    import json
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _COMPILE], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and ("ptxas" in done.stderr or "backend" in done.stderr.lower()):
        pytest.skip(f"triton cannot compile for sm_90 here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-2])
    narrow = json.loads(done.stdout.strip().splitlines()[-1])
    # a block's shared memory: 64 KB on sm_75 (T4), 99 KB on sm_86/89 (A10, L4)
    assert max(narrow["sm_75 tf32-check"]) <= 64 * 1024, narrow
    assert max(narrow["sm_86 tf32x3"]) <= 99 * 1024, narrow
    assert len(found) == 24  # 18 Lloyd passes, the deterministic one, 4 of k-means++, inertia
    for name, kernels in found.items():
        for shared, spills, programs in kernels:
            assert shared <= 227 * 1024, f"{name}: {shared} bytes of shared memory"
            assert spills == 0, f"{name}: {spills} register spill instructions (LDL/STL)"
        # the default precision's pass and k-means++'s on 8M rows:
        # at least two programs a multiprocessor (one hid memory latency so
        # badly that k-means++ on 8M x 128 took 3.8 s against 1 s of reads)
        if name.endswith(" tf32-check") or name.startswith("k-means++ 8000000"):
            assert kernels[0][2] >= 2, f"{name}: {kernels[0][2]} program a multiprocessor"
