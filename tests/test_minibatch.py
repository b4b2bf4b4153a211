"""MiniBatchKMeans against scikit-learn's, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpkmeans

sklearn_cluster = pytest.importorskip("sklearn.cluster")


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """scikit-learn's OpenMP threads spin and crawl on a shared, loaded machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):
        yield


def _blobs(n=5000, d=6, centers=8, std=1.5, seed=0):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n, d, centers=centers, cluster_std=std, random_state=seed)
    return X.astype(np.float32)


def test_final_inertia_within_5_percent_of_sklearn_at_same_batch_and_steps():
    X = _blobs()
    ours, theirs = [], []
    for seed in range(5):
        params = {"batch_size": 256, "max_iter": 4, "max_no_improvement": None, "random_state": seed}
        ours_fit = xpkmeans.MiniBatchKMeans(8, **params).fit(X)
        theirs_fit = sklearn_cluster.MiniBatchKMeans(8, **params).fit(X)
        assert ours_fit.n_steps_ == theirs_fit.n_steps_ == 4 * 5000 // 256
        assert ours_fit.n_iter_ == theirs_fit.n_iter_
        ours.append(ours_fit.inertia_)
        theirs.append(theirs_fit.inertia_)
    assert np.median(ours) <= 1.05 * np.median(theirs)
    assert np.median(ours) >= 0.95 * np.median(theirs)


def test_early_stopping_by_no_improvement():
    X = _blobs()
    fit = xpkmeans.MiniBatchKMeans(8, batch_size=256, max_iter=100, random_state=0).fit(X)
    assert fit.n_steps_ < 100 * 5000 // 256  # stopped early, as scikit-learn does
    reference = sklearn_cluster.MiniBatchKMeans(8, batch_size=256, random_state=0).fit(X)
    assert fit.inertia_ <= 1.05 * reference.inertia_


def test_runs_on_every_backend_and_stays_there(backend):
    X = _blobs(n=1000, d=3, centers=4)
    fit = xpkmeans.MiniBatchKMeans(4, batch_size=100, max_iter=3, random_state=0).fit(
        backend.asarray(X)
    )
    backend.assert_here(fit.cluster_centers_, backend.xp.float32)
    backend.assert_here(fit.labels_)
    reference = xpkmeans.MiniBatchKMeans(4, batch_size=100, max_iter=3, random_state=0).fit(X)
    # one seed, one result: the host generator draws the same batches everywhere
    np.testing.assert_allclose(backend.to_numpy(fit.cluster_centers_),
                               reference.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert fit.n_steps_ == reference.n_steps_
    labels = fit.predict(backend.asarray(X[:10]))
    backend.assert_here(labels)


@pytest.mark.parametrize("weighted", [False, True])
def test_dask_fit_gathers_batches_not_x_and_equals_numpy(lazy_backend, weighted, monkeypatch):
    """The graph does not grow step by step (it did: 56 s for 97 steps of
    100k x 8): batch rows come to the client once per STEPS_PER_DRAW steps."""
    from dask.callbacks import Callback

    import dask.array as da
    from xpkmeans._minibatch import STEPS_PER_DRAW

    X = _blobs(n=3000, d=3, centers=4)
    w = np.random.default_rng(0).random(3000).astype(np.float32) if weighted else None
    params = dict(batch_size=100, max_iter=3, max_no_improvement=None, random_state=0)
    reference = xpkmeans.MiniBatchKMeans(4, **params).fit(X, sample_weight=w)
    import dask

    gathered = []
    original, original_compute = da.Array.compute, dask.compute
    monkeypatch.setattr(da.Array, "compute",
                        lambda self, **kw: gathered.append(self.shape) or original(self, **kw))
    monkeypatch.setattr(dask, "compute", lambda *arrays, **kw: gathered.extend(
        getattr(a, "shape", ()) for a in arrays) or original_compute(*arrays, **kw))
    computes = []
    with Callback(start=lambda dsk: computes.append(1)):
        fit = xpkmeans.MiniBatchKMeans(4, **params).fit(
            lazy_backend.asarray(X), sample_weight=None if w is None else lazy_backend.asarray(w))
    assert fit.n_steps_ == reference.n_steps_ == 90
    assert gathered and all(shape[0] < X.shape[0] for shape in gathered if len(shape) == 2)
    # persist and first passes, init sample, validation, one per draw, labels, inertia
    assert len(computes) <= 4 + 2 + 2 + -(-fit.n_steps_ // STEPS_PER_DRAW) + 2
    lazy_backend.assert_here(fit.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(fit.cluster_centers_),
                               reference.cluster_centers_, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(lazy_backend.to_numpy(fit.labels_.compute()),
                                  reference.labels_)
    assert fit.inertia_ == pytest.approx(reference.inertia_, rel=1e-5)
    batch = lazy_backend.asarray(X[:500])  # partial_fit: a batch, computed
    stepped = xpkmeans.MiniBatchKMeans(4, random_state=0).partial_fit(batch)
    expected = xpkmeans.MiniBatchKMeans(4, random_state=0).partial_fit(X[:500])
    np.testing.assert_allclose(lazy_backend.to_numpy(stepped.cluster_centers_),
                               expected.cluster_centers_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_memmap_fit_reads_its_rows_from_the_file_and_equals_in_memory(tmp_path, weighted):
    X = _blobs(n=3000, d=3, centers=4)
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    w = np.random.default_rng(0).random(3000) if weighted else None
    params = dict(batch_size=100, max_iter=3, max_no_improvement=None, random_state=0)
    reference = xpkmeans.MiniBatchKMeans(4, **params).fit(X, sample_weight=w)
    for data in (mm, xpkmeans.RowBlocks(mm, block_rows=700)):
        fit = xpkmeans.MiniBatchKMeans(4, **params).fit(data, sample_weight=w)
        assert fit.n_steps_ == reference.n_steps_
        np.testing.assert_allclose(fit.cluster_centers_, reference.cluster_centers_,
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(fit.labels_, reference.labels_)
        assert fit.inertia_ == pytest.approx(reference.inertia_, rel=1e-5)
    with pytest.raises(TypeError, match="random rows.*partial_fit"):
        xpkmeans.MiniBatchKMeans(4).fit(xpkmeans.RowBlocks(lambda: iter([X[:1500], X[1500:]])))


def test_partial_fit_counts_steps_and_follows_sklearn(backend):
    X = _blobs(n=4000)
    ours = xpkmeans.MiniBatchKMeans(8, random_state=0)
    theirs = sklearn_cluster.MiniBatchKMeans(8, random_state=0, n_init=1)
    for start in range(0, 4000, 500):
        ours.partial_fit(backend.asarray(X[start:start + 500]))
        theirs.partial_fit(X[start:start + 500])
    assert ours.n_steps_ == theirs.n_steps_ == 8
    # the counts are the points seen (reassignment raises low counts, as in scikit-learn)
    assert float(np.sum(ours._counts)) >= 4000
    assert -ours.score(backend.asarray(X)) <= 1.05 * -theirs.score(X)
    backend.assert_here(ours.cluster_centers_)


def _offset_blobs():
    """Blobs far from the origin, in float32: raw distances lose them."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(20000, 4, centers=8, cluster_std=1.0, random_state=0)
    return (X + 3e4).astype(np.float32), y


@pytest.mark.filterwarnings("ignore::UserWarning")  # Dask: large graph
def test_rows_far_from_the_origin_are_centred_in_every_fit(tmp_path, lazy_backend):
    """scikit-learn's MiniBatchKMeans does not centre: its labels here have
    an adjusted Rand index near 0. Centred rows find the blobs, in memory,
    on Dask, from a memmap and batch by batch, and predict agrees."""
    from sklearn.metrics import adjusted_rand_score

    X, y = _offset_blobs()
    np.save(tmp_path / "X.npy", X)
    params = dict(n_init=3, random_state=0)
    sources = [X, lazy_backend.asarray(X), np.load(tmp_path / "X.npy", mmap_mode="r")]
    for source in sources:
        km = xpkmeans.MiniBatchKMeans(8, **params).fit(source)
        labels = km.labels_.compute() if hasattr(km.labels_, "compute") else km.labels_
        assert adjusted_rand_score(y, lazy_backend.to_numpy(labels)) > 0.99
        np.testing.assert_array_equal(lazy_backend.to_numpy(km.predict(X)),
                                      lazy_backend.to_numpy(labels))
    stepped = xpkmeans.MiniBatchKMeans(8, random_state=0)
    for start in range(0, X.shape[0], 2000):
        stepped.partial_fit(X[start:start + 2000])
    assert adjusted_rand_score(y, stepped.predict(X)) > 0.99
    reference = sklearn_cluster.MiniBatchKMeans(8, **params).fit(X)
    assert adjusted_rand_score(y, reference.labels_) < 0.5  # the case under test


@pytest.mark.parametrize("first", ["fit", "partial_fit"])
def test_a_sparse_batch_after_dense_ones_keeps_the_centres_in_place(first):
    """Sparse rows are not centred: the centres meet them in X's own frame."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (200, 2)) + [100, 100],
                        rng.normal(0, 1, (200, 2)) + [110, 100]])
    import copy

    ours = getattr(xpkmeans.MiniBatchKMeans(2, random_state=0, batch_size=400, n_init=1),
                   first)(X)
    dense = copy.deepcopy(ours).partial_fit(X)
    ours.partial_fit(sparse.csr_matrix(X))
    np.testing.assert_allclose(ours.cluster_centers_, dense.cluster_centers_, rtol=1e-9)
    assert np.abs(ours.cluster_centers_ - [105, 100]).max() < 10  # near the blobs


def test_sparse_batches_stay_sparse():
    """A batch of a wide CSR matrix had been made dense (a 1024-row batch of
    2^20 hashed features: 8 GB)."""
    import tracemalloc

    from scipy import sparse

    X = sparse.random(4000, 20000, density=1e-3, format="csr", random_state=0)
    dense_batch_bytes = 1024 * 20000 * 8
    tracemalloc.start()
    try:
        ours = xpkmeans.MiniBatchKMeans(8, batch_size=1024, max_iter=2, n_init=1,
                                        random_state=0).fit(X)
        ours.partial_fit(X[:1024])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < dense_batch_bytes / 4
    theirs = sklearn_cluster.MiniBatchKMeans(8, batch_size=1024, max_iter=2, n_init=1,
                                             random_state=0).fit(X)
    assert ours.inertia_ <= 1.05 * theirs.inertia_


def test_init_array_or_callable_is_in_the_data_frame():
    X, _ = _offset_blobs()
    centers = X[:8] + 1.0
    by_array = xpkmeans.MiniBatchKMeans(8, init=centers, n_init=1, max_iter=1,
                                        random_state=0).fit(X)
    by_callable = xpkmeans.MiniBatchKMeans(
        8, init=lambda data, k, random_state: centers, n_init=1, max_iter=1,
        random_state=0).fit(X)
    np.testing.assert_array_equal(by_array.cluster_centers_, by_callable.cluster_centers_)
    assert np.abs(by_array.cluster_centers_ - 3e4).max() < 100  # not shifted by the mean


def test_partial_fit_with_weights_moves_towards_heavy_points():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0]], dtype=np.float32)
    km = xpkmeans.MiniBatchKMeans(2, init=np.array([[0.5, 0.0], [10.5, 10.0]]),
                                  reassignment_ratio=0)
    km.partial_fit(X, sample_weight=[3.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(np.sort(km.cluster_centers_[:, 0]), [0.25, 10.5])


def test_low_count_centre_is_reassigned():
    X = _blobs(n=2000, centers=3)
    init = np.vstack([X[:2], np.full((1, X.shape[1]), 1e3, dtype=np.float32)])
    km = xpkmeans.MiniBatchKMeans(3, init=init, batch_size=200, max_iter=2, random_state=0).fit(X)
    assert np.abs(km.cluster_centers_).max() < 100  # the far centre jumped to the data
    assert len(np.unique(km.labels_)) == 3


def test_a_reassignment_ratio_above_one_keeps_the_largest_centre():
    """Every centre below the ratio had left none to reset the counts by (an
    error; scikit-learn's has it too)."""
    X = _blobs(n=2000, centers=3)
    km = xpkmeans.MiniBatchKMeans(3, batch_size=100, max_iter=1, reassignment_ratio=2.0,
                                  random_state=0).fit(X)
    assert np.all(np.isfinite(km.cluster_centers_)) and km.n_steps_ > 1  # reassigned at each


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
def test_a_failed_partial_fit_leaves_the_estimator_as_it_was():
    """The overflowing batch had been added to the counts: the next batch moved
    the centres by 0.05 against an estimator that never saw it."""
    X = _blobs(n=300, centers=3)
    steady, failing = (xpkmeans.MiniBatchKMeans(3, random_state=0) for _ in range(2))
    with pytest.raises(ValueError, match="too large"):
        xpkmeans.MiniBatchKMeans(3, random_state=0).partial_fit(X * np.float32(1e19))
    first_failed = xpkmeans.MiniBatchKMeans(3, random_state=0)
    with pytest.raises(ValueError, match="too large"):
        first_failed.partial_fit(X * np.float32(1e19))
    assert not hasattr(first_failed, "n_features_in_")
    for km in (steady, failing):
        km.partial_fit(X[:100])
    with pytest.raises(ValueError, match="too large"):
        failing.partial_fit(X[100:200] * np.float32(1e19))
    for km in (steady, failing):
        km.partial_fit(X[200:])
    np.testing.assert_array_equal(failing.cluster_centers_, steady.cluster_centers_)
    assert failing.n_steps_ == steady.n_steps_ == 2


def test_parameter_errors():
    X = _blobs(n=100)
    with pytest.raises(ValueError, match="batch_size"):
        xpkmeans.MiniBatchKMeans(2, batch_size=0).fit(X)
    with pytest.raises(ValueError, match="reassignment_ratio"):
        xpkmeans.MiniBatchKMeans(2, reassignment_ratio=-1).fit(X)
    with pytest.raises(ValueError, match="n_clusters"):
        xpkmeans.MiniBatchKMeans(0).fit(X)
    km = xpkmeans.MiniBatchKMeans(2, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="features"):
        km.partial_fit(X[:, :3])


@pytest.mark.parametrize(("name", "value", "error"), [
    ("compute_labels", "no", TypeError),
    ("compute_labels", None, TypeError),
    ("reassignment_ratio", np.inf, ValueError),
    ("reassignment_ratio", np.nan, ValueError),
    ("reassignment_ratio", "0.1", ValueError),
    ("max_no_improvement", -1, ValueError),
    ("init_size", 0, ValueError),
    ("batch_size", 2.5, TypeError),
])
def test_every_own_parameter_is_checked_as_scikit_learn_does(name, value, error):
    from sklearn.cluster import MiniBatchKMeans as SKLearnMiniBatchKMeans

    X = _blobs(n=100)
    with pytest.raises(error, match=f"^`{name}` must"):
        xpkmeans.MiniBatchKMeans(2, **{name: value}).fit(X)
    with pytest.raises(ValueError, match=name):  # scikit-learn refuses it too
        SKLearnMiniBatchKMeans(2, **{name: value}).fit(X)


def test_numpy_numbers_and_a_small_init_size_as_scikit_learn():
    X = _blobs(n=100)
    km = xpkmeans.MiniBatchKMeans(2, reassignment_ratio=np.float32(0.1), batch_size=np.int64(10),
                                  random_state=0)
    assert km.fit(X).cluster_centers_.shape == (2, X.shape[1])
    with pytest.warns(RuntimeWarning, match="init_size=2 should be larger than n_clusters=3"):
        xpkmeans.MiniBatchKMeans(3, init_size=2, random_state=0).fit(X)


def test_compute_labels_false_gives_ewa_inertia():
    X = _blobs(n=3000)
    km = xpkmeans.MiniBatchKMeans(8, compute_labels=False, batch_size=256, random_state=0).fit(X)
    assert not hasattr(km, "labels_")
    assert km.inertia_ == pytest.approx(-km.score(X), rel=0.2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_check_estimator_passes():
    from sklearn.utils.estimator_checks import check_estimator

    expected_failures = {  # as for scikit-learn's own MiniBatchKMeans
        "check_sample_weight_equivalence_on_dense_data": "random batches depend on sample order",
        "check_sample_weight_equivalence_on_sparse_data": "random batches depend on sample order",
    }
    results = check_estimator(xpkmeans.MiniBatchKMeans(), on_fail=None, on_skip=None,
                              expected_failed_checks=expected_failures)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 40


class _SklearnDraws:
    """A host generator that draws as scikit-learn's ``RandomState`` does in
    ``MiniBatchKMeans.fit`` (one batch a call, ``p`` always given)."""

    def __init__(self, seed):
        self.rs = np.random.RandomState(seed)

    def integers(self, low, high, size):
        return self.rs.randint(low, high, size)

    def choice(self, n, size, p=None, replace=True):
        if isinstance(size, tuple):  # a draw of batches: one step at a time
            assert size[0] == 1
            p = np.full(n, 1.0 / n) if p is None else p
            return self.rs.choice(n, size[1], p=p, replace=replace)[None]
        return self.rs.choice(n, size=size, replace=replace, p=p)


@pytest.mark.parametrize("params", [
    {}, {"tol": 1e-3}, {"max_no_improvement": 3}, {"reassignment_ratio": 0.3},
    {"compute_labels": False}, {"batch_size": 3000, "max_iter": 3},
])
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_equals_scikit_learn_given_its_draws(params, weighted, monkeypatch):
    """Step for step: the update, the reassignment of low counts (far centres
    here), the smoothed inertia, both stopping rules, n_steps_ and n_iter_."""
    import xpkmeans._minibatch as minibatch
    from sklearn.datasets import make_blobs

    monkeypatch.setattr(minibatch, "host_rng", _SklearnDraws)
    monkeypatch.setattr(minibatch, "STEPS_PER_DRAW", 1)
    X, _ = make_blobs(2000, 4, centers=4, random_state=0)
    init = np.vstack([X[:3], [[1e3] * 4, [900.0] * 4]])
    w = np.random.default_rng(0).random(2000) if weighted else None
    kwargs = {"init": init, "n_init": 1, "random_state": 0, "batch_size": 50, **params}
    ours = xpkmeans.MiniBatchKMeans(5, **kwargs).fit(X, sample_weight=w)
    theirs = sklearn_cluster.MiniBatchKMeans(5, **kwargs).fit(X, sample_weight=w)
    assert (ours.n_steps_, ours.n_iter_) == (theirs.n_steps_, theirs.n_iter_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, atol=1e-10)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-10)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_equal_weights_fit_as_no_weights(backend, init):
    """scikit-learn turns sample_weight=None into ones: the same seed gives
    the same fit with either (here, ones drew other batches and another
    'random' init than None did)."""
    X = _blobs(n=3000, d=4, centers=5)
    params = dict(init=init, batch_size=200, random_state=0)
    reference = xpkmeans.MiniBatchKMeans(5, **params).fit(X)
    for weights, scale in ((backend.asarray(np.ones(3000, dtype=np.float32)), 1.0), (2.5, 2.5)):
        fit = xpkmeans.MiniBatchKMeans(5, **params).fit(backend.asarray(X), sample_weight=weights)
        assert fit.n_steps_ == reference.n_steps_
        np.testing.assert_allclose(backend.to_numpy(fit.cluster_centers_),
                                   reference.cluster_centers_, rtol=1e-5, atol=1e-5)
        assert fit.inertia_ == pytest.approx(scale * reference.inertia_, rel=1e-4)
    stepped = xpkmeans.MiniBatchKMeans(5, **params).partial_fit(
        backend.asarray(X[:500]), sample_weight=backend.asarray(np.ones(500, dtype=np.float32)))
    expected = xpkmeans.MiniBatchKMeans(5, **params).partial_fit(X[:500])
    np.testing.assert_allclose(backend.to_numpy(stepped.cluster_centers_),
                               expected.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_verbose_prints_what_scikit_learn_prints(capsys):
    X = _blobs(n=2000)
    xpkmeans.MiniBatchKMeans(8, n_init=2, batch_size=100, verbose=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    for line in ("Init 1/2 with method k-means++", "Inertia for init 2/2: ",
                 "Minibatch step 1/2000: mean batch inertia: ",
                 "Converged (lack of improvement in inertia) at step "):
        assert line in out
    xpkmeans.MiniBatchKMeans(8, batch_size=100, verbose=1, tol=0.1, max_no_improvement=None,
                             random_state=0).fit(X)
    assert "Converged (small centers change) at step " in capsys.readouterr().out
