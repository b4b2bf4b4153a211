"""Initial centres: k-means++, k-means|| and random, the same on every backend for one seed."""

import numpy as np
import pytest

import xpkmeans
from xpkmeans import KMeans, kmeans_plusplus

X, _ = xpkmeans.make_blobs(400, 2, centers=5, cluster_std=0.5, random_state=3)

# Data of the pinned centres below: four shifted Gaussian groups, made by NumPy.
_pin_rng = np.random.default_rng(2024)
X_PIN = _pin_rng.normal(size=(300, 3)) + _pin_rng.integers(0, 4, size=(300, 1)) * 3.0
W_PIN = _pin_rng.uniform(0.1, 2.0, size=300)

# Rows chosen by k-means++ before its uniforms were drawn in one call (commit
# 37f047a: one rng.random(n_local_trials) per centre). The same on numpy,
# array_api_strict (both devices) and torch, float32 and float64.
PINNED_KMEANS_PLUSPLUS = {
    # (seed, weighted, n_clusters, n_local_trials): indices
    (0, False, 7, None): [191, 73, 182, 225, 245, 221, 261],
    (0, True, 12, 1): [192, 73, 22, 5, 244, 268, 185, 220, 170, 281, 243, 0],
    (1, False, 12, 1): [153, 283, 39, 286, 94, 125, 250, 127, 175, 7, 224, 162],
    (1, True, 7, None): [155, 42, 126, 7, 221, 144, 64],
    (7, False, 7, None): [187, 67, 261, 233, 82, 130, 298],
    (7, True, 12, 1): [189, 259, 230, 57, 79, 255, 0, 238, 227, 142, 93, 86],
}


def test_kmeans_plusplus_picks_rows_of_x(backend):
    centers, indices = kmeans_plusplus(backend.asarray(X), 5, random_state=0)
    backend.assert_here(centers, backend.xp.float64)
    backend.assert_here(indices)
    indices = backend.to_numpy(indices)
    assert len(set(indices.tolist())) == 5
    np.testing.assert_array_equal(backend.to_numpy(centers), X[indices])


def test_kmeans_plusplus_same_on_every_backend(backend):
    _, expected = kmeans_plusplus(X, 6, random_state=4)
    _, indices = kmeans_plusplus(backend.asarray(X), 6, random_state=4)
    np.testing.assert_array_equal(backend.to_numpy(indices), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(PINNED_KMEANS_PLUSPLUS, key=str))
def test_kmeans_plusplus_keeps_the_centres_of_one_draw_per_centre(backend, dtype, case):
    seed, weighted, n_clusters, n_local_trials = case
    weights = backend.asarray(W_PIN.astype(dtype)) if weighted else None
    _, indices = kmeans_plusplus(
        backend.asarray(X_PIN.astype(dtype)), n_clusters, sample_weight=weights,
        random_state=seed, n_local_trials=n_local_trials,
    )
    assert backend.to_numpy(indices).tolist() == PINNED_KMEANS_PLUSPLUS[case]


@pytest.mark.parametrize("case", sorted(PINNED_KMEANS_PLUSPLUS, key=str)[:2])
@pytest.mark.parametrize("graphs", ["1", "0"])
def test_kmeans_plusplus_with_and_without_cuda_graphs_keeps_the_pinned_centres(
        backend, monkeypatch, case, graphs):
    """torch-CUDA replays the loop over centres from one captured graph, or
    runs it eagerly with XPKMEANS_CUDA_GRAPHS=0 (elsewhere the switch changes
    nothing)."""
    monkeypatch.setenv("XPKMEANS_CUDA_GRAPHS", graphs)
    seed, weighted, n_clusters, n_local_trials = case
    weights = backend.asarray(W_PIN.astype("float32")) if weighted else None
    _, indices = kmeans_plusplus(
        backend.asarray(X_PIN.astype("float32")), n_clusters, sample_weight=weights,
        random_state=seed, n_local_trials=n_local_trials,
    )
    assert backend.to_numpy(indices).tolist() == PINNED_KMEANS_PLUSPLUS[case]


def test_kmeans_plusplus_same_in_small_blocks(backend, small_blocks):
    _, indices = kmeans_plusplus(backend.asarray(X_PIN), 7, random_state=0)
    assert backend.to_numpy(indices).tolist() == PINNED_KMEANS_PLUSPLUS[(0, False, 7, None)]


# ------------------------------------------------------------------ host round trips
# Every torch call goes through a TorchFunctionMode; these are the calls that
# copy to the host (a sync on CUDA) or give a data-dependent shape.
_SYNCING_CALLS = {
    "item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__",
    "__array__", "nonzero", "unique", "masked_select", "argwhere",
}


class _TorchCallLog:
    """Names of the torch functions and tensor methods called inside ``with``."""

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        calls = self.calls = []

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                calls.append(getattr(func, "__name__", str(func)))
                return func(*args, **(kwargs or {}))

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)

    def count(self, names):
        return sum(call in names for call in self.calls)


def _torch_call_log(initialiser, n_clusters, weighted):
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp

    from unittest import mock

    from xpkmeans._backend import _numba, host_rng

    data = torch.asarray(X_PIN, dtype=torch.float32)
    weights = torch.asarray(W_PIN, dtype=torch.float32) if weighted else None
    # torch CPU stands in for a device: off with the compiled CPU kernels,
    # which read its memory as NumPy arrays
    with mock.patch.object(_numba, "_is_torch_cpu", lambda x: False), _TorchCallLog() as log:
        initialiser(data, n_clusters, sample_weight=weights, rng=host_rng(0), xp=xp)
    return log


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_never_waits_for_the_device(weighted):
    """No host copy and no data-dependent shape in the loop over centres, and
    one host-to-device move of the uniforms, whatever the number of centres."""
    from xpkmeans._init import _kmeans_plusplus

    few = _torch_call_log(_kmeans_plusplus, 3, weighted)
    many = _torch_call_log(_kmeans_plusplus, 12, weighted)
    assert [c for c in many.calls if c in _SYNCING_CALLS] == []
    assert len(many.calls) > len(few.calls) > 0  # the log sees the loop
    moves = {"asarray", "tensor", "as_tensor", "from_numpy"}
    assert many.count(moves) == few.count(moves) <= 1


def test_kmeans_plusplus_covers_separated_blobs():
    """Each of five tight, far-apart blobs gets exactly one centre."""
    _, truth = xpkmeans.make_blobs(400, 2, centers=5, cluster_std=0.5, random_state=3)
    for seed in range(5):
        _, indices = kmeans_plusplus(X, 5, random_state=seed)
        assert sorted(truth[indices].tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_plusplus_respects_n_local_trials():
    a = kmeans_plusplus(X, 5, random_state=1, n_local_trials=1)[1]
    b = kmeans_plusplus(X, 5, random_state=1, n_local_trials=1)[1]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_local_trials"):
        kmeans_plusplus(X, 5, n_local_trials=0)
    with pytest.raises(ValueError, match="n_samples=400 should be >= n_clusters=401"):
        kmeans_plusplus(X, 401)


def test_kmeans_plusplus_takes_scikit_learns_keywords():
    """Code written for ``sklearn.cluster.kmeans_plusplus`` runs as it is."""
    norms = np.sum(X * X, axis=1)
    with_norms = kmeans_plusplus(X, 5, x_squared_norms=norms, random_state=1, n_local_trials=3)
    np.testing.assert_array_equal(with_norms[1], kmeans_plusplus(X, 5, random_state=1,
                                                                 n_local_trials=3)[1])
    for given in (norms.tolist(), norms[:, None]):  # as scikit-learn takes them
        kmeans_plusplus(X, 5, x_squared_norms=given)
    with pytest.raises(ValueError, match=r"^`x_squared_norms` must have shape \(400,\)"):
        kmeans_plusplus(X, 5, x_squared_norms=norms[:10])


def test_greedy_trials_lower_the_start_potential():
    """More local trials give a lower potential on average (the point of greedy k-means++)."""
    def potential(centers):
        return ((X[:, None] - centers[None]) ** 2).sum(axis=2).min(axis=1).sum()

    plain = [potential(kmeans_plusplus(X, 8, random_state=s, n_local_trials=1)[0])
             for s in range(20)]
    greedy = [potential(kmeans_plusplus(X, 8, random_state=s)[0]) for s in range(20)]
    assert np.mean(greedy) < np.mean(plain)


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_zero_weight_rows_are_never_drawn_once_every_weighted_row_is_a_centre(backend, init):
    """Then the distances add up to 0: the draws follow the weights (a
    weighted row again) where they had taken the last row, of weight 0."""
    X = np.random.default_rng(0).normal(size=(50, 2))
    weights = np.zeros(50)
    weights[:3] = 1.0
    if init == "k-means++":
        _, indices = kmeans_plusplus(backend.asarray(X), 5, sample_weight=backend.asarray(weights),
                                     random_state=0)
        assert np.all(weights[backend.to_numpy(indices)] > 0)
    with pytest.warns(xpkmeans.ConvergenceWarning, match="distinct clusters"):
        km = KMeans(5, init=init, random_state=0).fit(backend.asarray(X),
                                                      sample_weight=backend.asarray(weights))
    centres = backend.to_numpy(km.cluster_centers_)
    assert all(np.min(np.abs(X[:3] - c).sum(axis=1)) < 1e-9 for c in centres)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1
def test_random_init_draws_distinct_rows(backend):
    km = KMeans(5, init="random", n_init=1, max_iter=1, random_state=0)
    km.fit(backend.asarray(X))
    expected = KMeans(5, init="random", n_init=1, max_iter=1, random_state=0).fit(X)
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), expected.cluster_centers_)


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_large_weights_draw_the_rows_of_small_ones(backend, init):
    """Draws go by weight * D(x)^2, unchanged when all weights are scaled: on
    float32 X of 1e15, weights of 1e9 had made those products inf in
    float32, and every centre after the first the same row."""
    data = (X * 1e15).astype(np.float32)
    weights = np.random.default_rng(0).uniform(1.0, 2.0, size=X.shape[0])
    _, expected = kmeans_plusplus(data, 5, sample_weight=weights, random_state=0)
    _, indices = kmeans_plusplus(backend.asarray(data), 5, random_state=0,
                                 sample_weight=backend.asarray(weights * 2.0**30))
    np.testing.assert_array_equal(backend.to_numpy(indices), expected)
    assert len(set(expected.tolist())) == 5
    fit = KMeans(5, init=init, random_state=0).fit(data, sample_weight=weights)
    scaled = KMeans(5, init=init, random_state=0).fit(backend.asarray(data),
                                                      sample_weight=backend.asarray(weights * 2.0**30))
    np.testing.assert_array_equal(backend.to_numpy(scaled.cluster_centers_), fit.cluster_centers_)


def test_random_init_needs_enough_weighted_points():
    weights = np.zeros(len(X))
    weights[:3] = 1
    with pytest.raises(ValueError, match="positive sample_weight"):
        KMeans(5, init="random").fit(X, sample_weight=weights)


# ------------------------------------------------------------------ greedy k-means++ quality


def _potential(X, centers, weights=None):
    """Weighted sum of squared distances to the nearest centre (NumPy, float64)."""
    sq = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    return float(sq.sum() if weights is None else (weights * sq).sum())


def test_kmeans_plusplus_potential_like_sklearn():
    """Greedy k-means++ starts as well as scikit-learn's (mean over 10 seeds, digits)."""
    from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus
    from sklearn.datasets import load_digits

    digits = load_digits().data
    ours = np.mean([_potential(digits, kmeans_plusplus(digits, 10, random_state=s)[0])
                    for s in range(10)])
    theirs = np.mean([_potential(digits, sk_kmeans_plusplus(digits, 10, random_state=s)[0])
                      for s in range(10)])
    assert ours <= 1.05 * theirs


# ------------------------------------------------------------------ k-means||


def _kmeans_parallel(X_any, n_clusters, *, sample_weight=None, seed=0):
    from array_api_compat import array_namespace

    from xpkmeans._backend import host_rng
    from xpkmeans._init import INITIALIZERS

    return INITIALIZERS["k-means||"](
        X_any, n_clusters, sample_weight=sample_weight, rng=host_rng(seed),
        xp=array_namespace(X_any),
    )


def _rows_of(X_host, centers):
    """Index in ``X_host`` of each row of ``centers`` (each must be a row)."""
    matches = (X_host[None, :, :] == centers[:, None, :]).all(axis=2)
    assert matches.any(axis=1).all(), "a centre is not a row of X"
    return matches.argmax(axis=1)


@pytest.mark.parametrize("n_clusters", [1, 4, 12])
def test_kmeans_parallel_same_on_every_backend(backend, n_clusters):
    expected = _kmeans_parallel(X_PIN, n_clusters, seed=3)
    centers = _kmeans_parallel(backend.asarray(X_PIN), n_clusters, seed=3)
    backend.assert_here(centers, backend.xp.float64)
    assert centers.shape == (n_clusters, 3)
    np.testing.assert_array_equal(backend.to_numpy(centers), expected)
    assert len(set(_rows_of(X_PIN, expected).tolist())) == n_clusters


def test_kmeans_parallel_same_in_small_blocks(backend, small_blocks):
    expected = _kmeans_parallel(X_PIN, 6, sample_weight=W_PIN, seed=1)
    centers = _kmeans_parallel(backend.asarray(X_PIN), 6, sample_weight=backend.asarray(W_PIN),
                               seed=1)
    np.testing.assert_array_equal(backend.to_numpy(centers), expected)


def test_kmeans_parallel_fit_same_on_every_backend(backend):
    weights = W_PIN
    expected = KMeans(6, init="k-means||", random_state=2).fit(X_PIN, sample_weight=weights)
    km = KMeans(6, init="k-means||", random_state=2).fit(
        backend.asarray(X_PIN), sample_weight=backend.asarray(weights)
    )
    backend.assert_here(km.cluster_centers_, backend.xp.float64)
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), expected.cluster_centers_,
                               rtol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), expected.labels_)


def test_unknown_init_names_kmeans_parallel():
    with pytest.raises(ValueError, match=r"Unknown init method 'k-means\|\|\|'.*'k-means\|\|'"):
        KMeans(3, init="k-means|||").fit(X)


def test_kmeans_parallel_seed_decides():
    a = _kmeans_parallel(X_PIN, 6, seed=5)
    np.testing.assert_array_equal(_kmeans_parallel(X_PIN, 6, seed=5), a)
    assert not np.array_equal(_kmeans_parallel(X_PIN, 6, seed=6), a)


def test_kmeans_parallel_never_picks_zero_weight_points(backend):
    weights = np.where(np.arange(len(X_PIN)) % 3 == 0, 0.0, W_PIN)
    for seed in range(3):
        centers = _kmeans_parallel(backend.asarray(X_PIN), 8,
                                   sample_weight=backend.asarray(weights), seed=seed)
        rows = _rows_of(X_PIN, backend.to_numpy(centers))
        assert (weights[rows] > 0).all()


def test_kmeans_parallel_always_gives_n_clusters_centres():
    """Even with fewer distinct points than candidates or than clusters
    (dask-ml's k-means|| may return fewer centres)."""
    three_points = np.repeat(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]), 100, axis=0)
    centers = _kmeans_parallel(three_points, 3, seed=0)
    assert sorted(map(tuple, centers.tolist())) == [(0.0, 0.0), (0.0, 5.0), (5.0, 0.0)]
    assert _kmeans_parallel(three_points, 5, seed=0).shape == (5, 2)
    with pytest.warns(xpkmeans.ConvergenceWarning, match="distinct clusters"):
        km = KMeans(5, init="k-means||", random_state=0).fit(three_points)
    assert km.cluster_centers_.shape == (5, 2)


def test_kmeans_parallel_candidates_weighted_by_nearest_points():
    """Each distinct candidate weighs the sample weights of the points nearest
    to it (brute force in NumPy); repeats of a row share its weight."""
    from xpkmeans._backend import host_rng
    from xpkmeans._init import _kmeans_parallel_candidates
    import array_api_compat.numpy as xp

    indices, weights = _kmeans_parallel_candidates(
        X_PIN, 4, sample_weight=W_PIN, rng=host_rng(0), xp=xp, n_rounds=3, oversampling=2.0,
    )
    assert indices.shape == weights.shape == (1 + 3 * 8,)
    distinct = np.unique(indices)
    sq = ((X_PIN[:, None, :] - X_PIN[distinct][None, :, :]) ** 2).sum(axis=2)
    expected = np.bincount(sq.argmin(axis=1), weights=W_PIN, minlength=len(distinct))
    per_row = np.array([weights[indices == i].sum() for i in distinct])
    np.testing.assert_allclose(per_row, expected, rtol=1e-12)
    assert (per_row > 0).all()


def test_nearest_candidate_pass_is_the_running_minimum(backend, small_blocks):
    from xpkmeans._init import _nearest_candidate_pass

    xp = backend.xp
    rng = np.random.default_rng(1)
    points, candidates = rng.normal(size=(50, 3)), rng.normal(size=(6, 3))
    before = rng.uniform(0.5, 3.0, size=50)
    sq = ((points[:, None] - candidates[None]) ** 2).sum(axis=2)
    expected_sq = np.minimum(before, sq.min(axis=1))
    expected_nearest = np.where(sq.min(axis=1) < before, 10 + sq.argmin(axis=1), 99)
    closest, nearest = _nearest_candidate_pass(
        backend.asarray(points), backend.asarray(candidates), 10, backend.asarray(before),
        xp.full((50,), 99, dtype=xp.int64, device=backend.device), xp=xp,
    )
    np.testing.assert_allclose(backend.to_numpy(closest), expected_sq, rtol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(nearest), expected_nearest)


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_parallel_never_waits_for_the_device(weighted):
    """No host copy and no data-dependent shape; the host moves uniforms to the
    device twice (candidates, then k-means++ over them), whatever the k."""
    from xpkmeans._init import _kmeans_parallel

    few = _torch_call_log(_kmeans_parallel, 3, weighted)
    many = _torch_call_log(_kmeans_parallel, 12, weighted)
    assert [c for c in many.calls if c in _SYNCING_CALLS] == []
    moves = {"asarray", "tensor", "as_tensor", "from_numpy"}
    assert many.count(moves) == few.count(moves) <= 2


def test_kmeans_parallel_fit_honours_sample_weight_like_repeated_rows():
    """Integer weights act as repeated rows: both fits end at the same inertia."""
    weights = np.arange(len(X)) % 3
    weighted = KMeans(5, init="k-means||", random_state=0).fit(X, sample_weight=weights)
    repeated = KMeans(5, init="k-means||", random_state=0).fit(np.repeat(X, weights, axis=0))
    np.testing.assert_allclose(weighted.inertia_, repeated.inertia_, rtol=1e-6)


def test_kmeans_parallel_is_one_start_by_default(monkeypatch):
    from xpkmeans import _init

    calls = []
    original = _init.INITIALIZERS["k-means||"]
    monkeypatch.setitem(_init.INITIALIZERS, "k-means||",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    KMeans(5, init="k-means||", random_state=0).fit(X)
    assert len(calls) == 1
    KMeans(5, init="k-means||", n_init=3, random_state=0).fit(X)
    assert len(calls) == 4


def test_kmeans_parallel_then_lloyd_as_good_as_kmeans_plusplus():
    """Mean final inertia over 5 seeds within 2% of greedy k-means++'s (digits, blobs)."""
    from sklearn.datasets import load_digits

    blobs, _ = xpkmeans.make_blobs(4000, 8, centers=24, cluster_std=2.5, random_state=0)
    for data, k in [(load_digits().data, 10), (blobs, 24)]:
        greedy = np.mean([KMeans(k, random_state=s).fit(data).inertia_ for s in range(5)])
        scalable = np.mean([KMeans(k, init="k-means||", random_state=s).fit(data).inertia_
                            for s in range(5)])
        assert scalable <= 1.02 * greedy


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_initialisers_build_a_dask_graph_without_computing(init):
    """No host sync means a lazy array never computes: the initialisers only
    build a Dask graph, which computes to NumPy's centres."""
    dask = pytest.importorskip("dask")
    import array_api_compat.dask.array as xp
    import array_api_compat.numpy as np_xp
    import dask.array as da
    from dask.callbacks import Callback

    from xpkmeans._backend import host_rng
    from xpkmeans._init import INITIALIZERS

    computes = []

    class CountComputes(Callback):
        def _start(self, dsk):
            computes.append(dsk)

    lazy = da.from_array(X_PIN, chunks=(100, 3))
    with CountComputes():
        centers = INITIALIZERS[init](lazy, 4, sample_weight=None, rng=host_rng(0), xp=xp)
    assert isinstance(centers, dask.array.Array) and computes == []
    expected = INITIALIZERS[init](X_PIN, 4, sample_weight=None, rng=host_rng(0), xp=np_xp)
    np.testing.assert_array_equal(np.asarray(centers.compute()), expected)


def test_kmeans_parallel_on_few_points_is_greedy_kmeans_plusplus():
    """With no more points than candidates (1 + 5 * 2k), k-means|| is greedy
    k-means++ on X itself."""
    n_clusters = 30  # 301 candidates >= 300 points
    expected, _ = kmeans_plusplus(X_PIN - X_PIN.mean(axis=0), n_clusters, random_state=4)
    centers = _kmeans_parallel(X_PIN - X_PIN.mean(axis=0), n_clusters, seed=4)
    np.testing.assert_array_equal(centers, expected)


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_draws_under_torch_deterministic_mode_never_ask_cuda_for_a_float_cumsum(
        monkeypatch, init):
    """``torch.use_deterministic_algorithms(True)`` (which the README offers for
    bitwise equal sums) makes torch.cumsum of a CUDA float tensor raise: the
    weighted draws take a scan of elementwise additions there, and keep the
    centres. Torch CPU tensors stand in for CUDA ones (the compiled CPU
    kernels off, the refusal mimicked)."""
    torch = pytest.importorskip("torch")
    from torch.overrides import TorchFunctionMode

    from xpkmeans._backend import _gpu, _numba

    class RefuseFloatCumsum(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if getattr(func, "__name__", "") == "cumsum" and torch.is_floating_point(args[0]):
                raise RuntimeError("cumsum_cuda_kernel does not have a deterministic "
                                   "implementation")
            return func(*args, **kwargs)

    monkeypatch.setenv("XPKMEANS_CUDA_GRAPHS", "0")  # the stand-ins are CPU tensors
    monkeypatch.setattr(_gpu, "_is_cuda_tensor", lambda value: isinstance(value, torch.Tensor))
    monkeypatch.setattr(_numba, "_is_torch_cpu", lambda x: False)
    expected = KMeans(5, init=init, random_state=0).fit(X_PIN)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with RefuseFloatCumsum():
            km = KMeans(5, init=init, random_state=0).fit(torch.asarray(X_PIN))
            _, indices = kmeans_plusplus(torch.asarray(X_PIN), 7, random_state=0)
    finally:
        torch.use_deterministic_algorithms(was)
    np.testing.assert_allclose(km.cluster_centers_.numpy(), expected.cluster_centers_,
                               rtol=1e-12)
    assert indices.tolist() == PINNED_KMEANS_PLUSPLUS[(0, False, 7, None)]


def test_cumulative_sum_by_doubling_is_the_running_sum():
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import _gpu

    for n in (0, 1, 2, 5, 64, 1000):
        values = torch.asarray(np.random.default_rng(n).uniform(size=n))
        np.testing.assert_allclose(_gpu.cumulative_sum_by_doubling(values).numpy(),
                                   np.cumsum(values.numpy()), rtol=1e-13)
