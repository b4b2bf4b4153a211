"""KMeans on Dask arrays: the EM inside Dask, no silent computes, k-means||,
a distributed LocalCluster. The reference is the in-memory NumPy fit."""

from __future__ import annotations

import contextlib
import re
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import xpkmeans
from xpkmeans import _dask


def _blobs(n=4000, d=4, centers=5, std=1.0, seed=0, dtype=np.float64):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n, d, centers=centers, cluster_std=std, random_state=seed)
    return X.astype(dtype)


def _init(X, k, seed=0):
    return X[np.random.default_rng(seed).choice(X.shape[0], k, replace=False)]


@contextlib.contextmanager
def count_computes():
    """Count the computes (and persists) run by the local schedulers."""
    from dask.callbacks import Callback

    counter = {"computes": 0}

    def start(dsk):
        counter["computes"] += 1

    with Callback(start=start):
        yield counter


def test_fit_equals_numpy_from_the_same_init(lazy_backend):
    X = _blobs()
    init = _init(X, 5)
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    km = xpkmeans.KMeans(5, init=init).fit(lazy_backend.asarray(X))
    lazy_backend.assert_here(km.labels_)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    assert km.n_iter_ == ref.n_iter_
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)


def test_float32_weighted_fit_equals_numpy(lazy_backend):
    X = _blobs(std=0.5, dtype=np.float32)
    w = np.random.default_rng(1).random(X.shape[0]).astype(np.float32)
    w[::7] = 0
    init = _init(X, 5)
    ref = xpkmeans.KMeans(5, init=init).fit(X, sample_weight=w)
    km = xpkmeans.KMeans(5, init=init).fit(lazy_backend.asarray(X), sample_weight=w)
    assert km.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-5, atol=1e-5)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)


def test_float32_mean_and_labels_equal_numpy_far_from_the_origin(lazy_backend):
    """Both sum the columns in float64 (``column_sums``): the same float32
    mean, so the same centred values and the same labels."""
    X = _blobs(20_000, 8, 6, std=3.0, dtype=np.float32) + np.float32(1000)
    init = _init(X, 6)
    ref = xpkmeans.KMeans(6, init=init).fit(X)
    km = xpkmeans.KMeans(6, init=init).fit(lazy_backend.asarray(X))
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.mean_), ref.mean_)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
    assert km.n_iter_ == ref.n_iter_


def test_unchanged_labels_stop_as_in_memory_after_a_relocation(lazy_backend):
    """Labels unchanged stop the fit even when a cluster emptied in that
    step (strict convergence, as in memory and scikit-learn); Dask had gone
    on to a shift within tol: 5 iterations against 3, another inertia."""
    rng = np.random.default_rng(1070)
    X = np.repeat(rng.normal(size=(5, 2)), 10, axis=0)  # 5 distinct points, 9 clusters
    params = dict(n_clusters=9, init="random", n_init=1, random_state=93)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpkmeans.ConvergenceWarning)
        ref = xpkmeans.KMeans(**params).fit(X)
        km = xpkmeans.KMeans(**params).fit(_chunked(lazy_backend, X, 10))
        streamed = xpkmeans.KMeans(**params).fit(xpkmeans.RowBlocks(X, block_rows=10))
    assert ref.n_iter_ == 3
    for fit in (km, streamed):
        assert fit.n_iter_ == ref.n_iter_
        assert fit.inertia_ == pytest.approx(ref.inertia_)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
def test_score_whose_squares_overflow_is_an_error_as_in_memory(lazy_backend):
    """It had returned -inf."""
    X = _blobs(400, 3, 4)
    km = xpkmeans.KMeans(4, random_state=0).fit(X)
    with pytest.raises(ValueError, match="^`X` has values too large for float64"):
        km.score(_chunked(lazy_backend, X * 1e160, 100))


def test_select_n_clusters_reads_the_source_once_and_keeps_frames_lazy():
    """Each fit and score had read the source again (15 reads for five k); a
    Dask DataFrame had been computed into memory."""
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = _blobs(2000, 3, 4)
    reads = []

    def source(block):
        reads.append(block.shape[0])
        return block

    Xd = da.from_array(X, chunks=(500, 3)).map_blocks(source, dtype=X.dtype)
    lazy = xpkmeans.select_n_clusters(Xd, range(2, 6), method="calinski_harabasz",
                                      init="k-means||", random_state=0)
    assert sum(reads) == X.shape[0]
    in_memory = xpkmeans.select_n_clusters(X, range(2, 6), method="calinski_harabasz",
                                           init="k-means||", random_state=0)
    np.testing.assert_allclose(lazy.scores, in_memory.scores, rtol=1e-10)
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abc")), npartitions=4)
    by_frame = xpkmeans.select_n_clusters(frame, range(2, 6), method="calinski_harabasz",
                                          init="k-means||", random_state=0)
    assert isinstance(by_frame.models[0].labels_, da.Array)
    assert list(by_frame.models[0].feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_allclose(by_frame.scores, in_memory.scores, rtol=1e-10)


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_zero_weight_rows_are_never_drawn_as_in_memory(lazy_backend, init):
    """Once every weighted row is a centre the draws follow the weights (the
    last row, of weight 0, had been drawn)."""
    X = np.random.default_rng(0).normal(size=(50, 2))
    weights = np.zeros(50)
    weights[:3] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct clusters; k-means++ on Dask
        ref = xpkmeans.KMeans(5, init=init, random_state=0).fit(X, sample_weight=weights)
        km = xpkmeans.KMeans(5, init=init, random_state=0).fit(
            _chunked(lazy_backend, X, 20), sample_weight=weights)
    # which weighted row a centre repeats may differ: the distances left are rounding
    for fit in (ref, km):
        centres = lazy_backend.to_numpy(fit.cluster_centers_)
        assert all(np.min(np.abs(X[:3] - c).sum(axis=1)) < 1e-9 for c in centres)


def test_transform_far_from_the_origin_is_in_the_frame_of_predict(lazy_backend):
    """Distances from the centred rows to the centred centres, as in memory:
    raw float32 rows against the rounded centres were off by 1.1% at 3e4."""
    X = (np.random.default_rng(0).normal(size=(2000, 3)) + 3e4).astype(np.float32)
    init = _init(X, 20)
    ref = xpkmeans.KMeans(20, init=init).fit(X)
    km = xpkmeans.KMeans(20, init=init).fit(lazy_backend.asarray(X))
    distances = lazy_backend.to_numpy(km.transform(lazy_backend.asarray(X)).compute())
    np.testing.assert_allclose(distances, ref.transform(X), rtol=1e-6)
    np.testing.assert_array_equal(np.argmin(distances, axis=1), ref.labels_)


def test_empty_cluster_relocated_as_in_memory(lazy_backend):
    X = _blobs(n=1000, centers=3)
    init = np.vstack([_init(X, 3), np.full((2, X.shape[1]), 1e3)])  # two far centres: empty
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    km = xpkmeans.KMeans(5, init=init).fit(lazy_backend.asarray(X))
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    assert km.n_iter_ == ref.n_iter_


def test_zero_weight_farthest_point_relocated_as_scikit_learn(lazy_backend):
    """Relocation ranks points by distance alone, whatever their weight, as
    scikit-learn does (each chunk's proposals had left out zero weights): the
    cluster stays empty and takes the largest cluster's mean. Row blocks too."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    X = np.array([[0.0], [1.0], [2.0], [10.0], [1.5], [0.5], [2.0], [1.0]])
    weights = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    init = np.array([[1.0], [100.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpkmeans.ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # scikit-learn's ConvergenceWarning
        ref = SKLearnKMeans(2, init=init, n_init=1).fit(X, sample_weight=weights)
        km = xpkmeans.KMeans(2, init=init).fit(lazy_backend.asarray(X),
                                              sample_weight=lazy_backend.asarray(weights))
        streamed = xpkmeans.KMeans(2, init=init).fit(xpkmeans.RowBlocks(X, block_rows=3),
                                                     sample_weight=weights)
    np.testing.assert_allclose(ref.cluster_centers_, [[8 / 7], [8 / 7]])  # twins: the mean
    for fit in (km, streamed):
        np.testing.assert_allclose(lazy_backend.to_numpy(fit.cluster_centers_),
                                   ref.cluster_centers_, rtol=0, atol=1e-12)
        assert fit.n_iter_ == ref.n_iter_
        assert fit.inertia_ == pytest.approx(ref.inertia_)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)


def test_predict_transform_score_are_lazy_and_equal_numpy(lazy_backend):
    X = _blobs()
    init = _init(X, 5)
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    km = xpkmeans.KMeans(5, init=init).fit(lazy_backend.asarray(X))
    X_new = lazy_backend.asarray(X[:997] + 0.25)
    with count_computes() as counter:
        labels = km.predict(X_new)
        distances = km.transform(X_new)
    assert counter["computes"] == 0
    lazy_backend.assert_here(labels)
    lazy_backend.assert_here(distances)
    np.testing.assert_array_equal(lazy_backend.to_numpy(labels.compute()), ref.predict(X[:997] + 0.25))
    np.testing.assert_allclose(lazy_backend.to_numpy(distances.compute()),
                               ref.transform(X[:997] + 0.25), rtol=1e-8)
    assert km.score(X_new) == pytest.approx(ref.score(X[:997] + 0.25), rel=1e-10)
    fitted = km.fit_predict(lazy_backend.asarray(X))
    np.testing.assert_array_equal(lazy_backend.to_numpy(fitted.compute()), ref.labels_)


def test_e_step_m_step_and_one_iteration_trigger_no_compute(lazy_backend):
    X = _blobs()
    Xd = lazy_backend.asarray(X)
    init = _init(X, 5)
    init[4] = 1e3  # an empty cluster: the lazy M step relocates with fixed shapes
    with count_computes() as counter:
        labels, inertia = xpkmeans.e_step(Xd, init)
        centers = xpkmeans.m_step(Xd, labels, init)
        iteration = _dask.lloyd_sums(Xd, None, init)
    assert counter["computes"] == 0
    labels_ref, inertia_ref = xpkmeans.e_step(X, init)
    with count_computes() as counter:
        sums = iteration.compute()
    assert counter["computes"] == 1
    assert sums.shape == (5, X.shape[1] + 1)
    np.testing.assert_array_equal(lazy_backend.to_numpy(labels.compute()), labels_ref)
    assert float(inertia.compute()) == pytest.approx(float(inertia_ref), rel=1e-10)
    np.testing.assert_allclose(lazy_backend.to_numpy(centers.compute()),
                               xpkmeans.m_step(X, labels_ref, init), rtol=1e-10)


def test_fit_computes_once_per_iteration_and_never_gathers_x(lazy_backend, monkeypatch):
    X = _blobs()
    Xd = lazy_backend.asarray(X)
    init = _init(X, 5)
    gathered = []
    original = da.Array.compute

    def compute(self, **kwargs):  # the client must never ask for an (n, d) array
        gathered.append(self.shape)
        return original(self, **kwargs)

    monkeypatch.setattr(da.Array, "compute", compute)
    with count_computes() as counter:
        km = xpkmeans.KMeans(5, init=init, tol=0, max_iter=20).fit(Xd)
    assert all(shape != X.shape for shape in gathered)
    # first pass, persist, spread; one per iteration; labels persisted, inertia
    assert counter["computes"] == 3 + km.n_iter_ + 2


def test_lazy_validation_and_errors(lazy_backend):
    X = _blobs(n=200)
    X[5, 1] = np.nan
    with count_computes() as counter:
        Xd = lazy_backend.asarray(X)
        _dask.check_dask_array(Xd)
    assert counter["computes"] == 0
    with pytest.raises(ValueError, match="NaN or inf"):
        xpkmeans.KMeans(3, init=_init(np.nan_to_num(X), 3)).fit(Xd)
    with pytest.raises(ValueError, match="2-D"):
        xpkmeans.KMeans(3).fit(da.zeros(10, chunks=5))
    with pytest.raises(ValueError, match="sample_weight"):
        X = np.nan_to_num(X)
        xpkmeans.KMeans(3, init=_init(X, 3)).fit(lazy_backend.asarray(X), sample_weight=-np.ones(200))
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        Xd = lazy_backend.asarray(X)
        xpkmeans.KMeans(3).fit(Xd[Xd[:, 0] > 0])


def test_kmeans_parallel_gives_k_centres_close_to_greedy(lazy_backend):
    X = _blobs(n=6000, d=8, centers=20, std=1.0)
    Xd = lazy_backend.asarray(X)
    fits = [xpkmeans.KMeans(20, init="k-means||", random_state=s).fit(Xd) for s in range(5)]
    assert all(fit.cluster_centers_.shape == (20, 8) for fit in fits)
    greedy = [xpkmeans.KMeans(20, random_state=s).fit(X).inertia_ for s in range(5)]
    assert np.median([fit.inertia_ for fit in fits]) <= 1.02 * np.median(greedy)


def test_kmeans_parallel_exactly_k_on_tiny_and_duplicate_data(lazy_backend):
    X = np.repeat(_blobs(n=6, d=2, centers=2), 3, axis=0)
    km = xpkmeans.KMeans(5, init="k-means||", random_state=0).fit(lazy_backend.asarray(X))
    assert km.cluster_centers_.shape == (5, 2)


@pytest.mark.filterwarnings("ignore:init='k-means\\+\\+' on a Dask array")
@pytest.mark.parametrize("init", ["k-means||", "k-means++"])
@pytest.mark.parametrize("weighted", [False, True])
def test_initialisation_equals_the_one_in_memory(lazy_backend, init, weighted):
    """One seed, the centres of a fit in memory: the same uniforms, draws
    and distances, chunk by chunk (max_iter=1: both warn)."""
    X = _blobs(n=3000, d=3, centers=8, std=1.5)
    w = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0]) if weighted else None

    def fit(data):
        with pytest.warns(xpkmeans.ConvergenceWarning, match="max_iter=1"):
            return xpkmeans.KMeans(8, init=init, n_init=1, max_iter=1,
                                   random_state=4).fit(data, sample_weight=w)

    ref, km = fit(X), fit(lazy_backend.asarray(X))
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)


def test_greedy_kmeans_plusplus_on_dask_warns_about_its_passes(lazy_backend):
    X = _blobs(n=1000, centers=4)
    with pytest.warns(UserWarning, match="passes") as record:
        km = xpkmeans.KMeans(4, random_state=0).fit(lazy_backend.asarray(X))
    assert [w.filename for w in record if "passes" in str(w.message)] == [__file__]
    ref = xpkmeans.KMeans(4, random_state=0).fit(X)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=0.02)


def test_random_init_and_n_init(lazy_backend):
    X = _blobs(n=1000, centers=4)
    km = xpkmeans.KMeans(4, init="random", n_init=3, random_state=0).fit(lazy_backend.asarray(X))
    ref = xpkmeans.KMeans(4, init="random", n_init=3, random_state=0).fit(X)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


@contextlib.contextmanager
def _client(make_cluster):
    """A distributed Client on ``make_cluster()``, closed after the block
    (distributed's start-up and shut-down warnings silenced)."""
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = make_cluster(distributed)
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            cluster.close()


def _local_cluster(n_workers):
    return lambda distributed: distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=None)


def test_fit_does_not_depend_on_the_blas_threads():
    """A chunk of one row block had its column sums (a product with ones)
    on all of BLAS's threads, outside any one-thread region: the mean, and
    the centres after it, differed under ``threadpool_limits(1)``, and
    between the local threads and a process LocalCluster (whose workers run
    BLAS on one thread)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X = np.random.default_rng(0).normal(size=(14000, 70))  # chunks of one wide row block

    def fit():
        with dask.config.set(scheduler="threads"):
            return xpkmeans.KMeans(4, random_state=0, init="k-means||").fit(
                da.from_array(X, chunks=(7000, 70)))

    default = fit()
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one = fit()
    np.testing.assert_array_equal(one.mean_, default.mean_)
    np.testing.assert_array_equal(one.cluster_centers_, default.cluster_centers_)


def test_local_cluster_two_workers():
    X = _blobs(n=3000)
    init = _init(X, 5)
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    with _client(_local_cluster(2)):
        Xd = da.from_array(X, chunks=(500, -1))
        km = xpkmeans.KMeans(5, init=init).fit(Xd)
        parallel = xpkmeans.KMeans(5, init="k-means||", random_state=0).fit(Xd)
        np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
        assert parallel.cluster_centers_.shape == (5, 4)
        assert parallel.inertia_ <= 1.02 * ref.inertia_


def _one_gpu_cluster(kind):
    """One worker on the GPU: dask-cuda's LocalCUDACluster, or a LocalCluster."""
    if kind == "LocalCluster":
        return _local_cluster(1)

    def local_cuda_cluster(distributed):  # imported where _client silences warnings
        dask_cuda = pytest.importorskip("dask_cuda", reason="dask-cuda not installed")
        return dask_cuda.LocalCUDACluster(n_workers=1, dashboard_address=None)

    return local_cuda_cluster


@pytest.mark.parametrize("cluster", ["LocalCluster", "LocalCUDACluster"])
def test_one_gpu_cluster_with_cupy_chunks(cupy_backend, cluster):
    """The multi-GPU path on one GPU, with CuPy chunks: the labels are those
    of the in-memory CuPy fit."""
    X = _blobs(n=3000)
    init = _init(X, 5)
    ref = xpkmeans.KMeans(5, init=cupy_backend.asarray(init)).fit(cupy_backend.asarray(X))
    with _client(_one_gpu_cluster(cluster)):
        Xd = da.from_array(cupy_backend.asarray(X), chunks=(500, -1))
        km = xpkmeans.KMeans(5, init=init).fit(Xd)
        labels = km.labels_.compute()
        assert type(labels) is type(ref.labels_)
        np.testing.assert_array_equal(cupy_backend.to_numpy(labels),
                                      cupy_backend.to_numpy(ref.labels_))
        parallel = xpkmeans.KMeans(5, init="k-means||", random_state=0).fit(Xd)
        assert parallel.inertia_ <= 1.02 * km.inertia_


def test_column_chunks_are_joined_and_integer_data_becomes_float():
    X = _blobs(n=800)
    init = _init(X, 5)
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    km = xpkmeans.KMeans(5, init=init).fit(da.from_array(X, chunks=(200, 2)))
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
    integers = np.round(X * 10).astype(np.int64)
    ref = xpkmeans.KMeans(5, init=init * 10).fit(integers)
    km = xpkmeans.KMeans(5, init=init * 10).fit(da.from_array(integers, chunks=(300, -1)))
    assert km.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)


def test_dask_dataframe_is_fitted_lazily_with_its_column_names(monkeypatch):
    """Dask DataFrames are the Dask array of their values (one compute counts
    the partitions' rows), never gathered."""
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = _blobs(n=800)
    init = _init(X, 5)
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c", "d"]), npartitions=4)
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    gathered = []
    original = da.Array.compute
    monkeypatch.setattr(da.Array, "compute",
                        lambda self, **kw: gathered.append(self.shape) or original(self, **kw))
    km = xpkmeans.KMeans(5, init=init).fit(frame)
    assert all(shape != X.shape for shape in gathered)
    assert isinstance(km.labels_, da.Array) and isinstance(km.predict(frame), da.Array)
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
    np.testing.assert_array_equal(km.predict(frame).compute(), ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    assert list(km.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        km.predict(frame[["d", "c", "b", "a"]])
    with pytest.raises(TypeError, match="numeric"):
        xpkmeans.KMeans(2).fit(frame.assign(e="text"))


def test_dask_series_of_weights_and_labels_stay_on_the_workers(monkeypatch):
    """Weights and labels given as columns of the Dask DataFrame of X are Dask
    arrays, as X is: nothing of n rows is gathered to the client (a Series had
    been read as host data, and e_step, m_step and the dispersion scores had
    computed a Dask DataFrame X whole)."""
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = _blobs(n=800)
    w = np.random.default_rng(1).random(800)
    init = _init(X, 5)
    labels = xpkmeans.KMeans(5, init=init).fit(X).labels_
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(w=w, label=labels),
                           npartitions=4)
    features, weights = frame[["a", "b", "c", "d"]], frame["w"]
    gathered = []
    original = dask.base.compute

    def compute(*args, **kwargs):
        results = original(*args, **kwargs)
        gathered.extend(np.shape(result)[:1] for result in results)
        return results
    monkeypatch.setattr(dask.base, "compute", compute)
    monkeypatch.setattr(dask, "compute", compute)
    km = xpkmeans.KMeans(5, init=init).fit(features, sample_weight=weights)
    score = km.score(features, sample_weight=weights)
    e_labels, inertia = xpkmeans.e_step(features, init, sample_weight=weights)
    centres = xpkmeans.m_step(features, frame["label"], init, sample_weight=weights)
    ch = xpkmeans.calinski_harabasz_score(features, frame["label"])
    db = xpkmeans.davies_bouldin_score(da.from_array(X, chunks=300), frame["label"])
    assert (800,) not in gathered
    monkeypatch.undo()
    ref = xpkmeans.KMeans(5, init=init).fit(X, sample_weight=w)
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
    assert score == pytest.approx(ref.score(X, sample_weight=w), rel=1e-12)
    ref_labels, ref_inertia = xpkmeans.e_step(X, init, sample_weight=w)
    np.testing.assert_array_equal(e_labels.compute(), ref_labels)
    assert float(inertia.compute()) == pytest.approx(float(ref_inertia), rel=1e-12)
    np.testing.assert_allclose(centres.compute(),
                               xpkmeans.m_step(X, labels, init, sample_weight=w), rtol=1e-12)
    assert ch == pytest.approx(xpkmeans.calinski_harabasz_score(X, labels), rel=1e-12)
    assert db == pytest.approx(xpkmeans.davies_bouldin_score(X, labels), rel=1e-12)
    assert xpkmeans.silhouette_score(features, frame["label"], sample_size=300, random_state=0) == (
        pytest.approx(xpkmeans.silhouette_score(X, labels, sample_size=300, random_state=0),
                      rel=1e-12))
    with pytest.raises(TypeError, match="in memory.*compute"):  # not computed whole
        xpkmeans.silhouette_score(features, labels)
    with pytest.raises(TypeError, match="in memory.*compute"):  # had been an AttributeError
        xpkmeans.calinski_harabasz_score(X, da.from_array(labels, chunks=300))


@pytest.mark.parametrize("weight", [True, np.bool_(True), "2", 1j])
def test_scalar_sample_weight_is_checked_as_in_memory(weight):
    """Only a real number is every point's weight: a bool or a string had
    been taken as 1.0 or 2.0, a complex number had raised float()'s error."""
    X = np.random.default_rng(0).random((50, 2))
    with pytest.raises(ValueError) as in_memory:  # InputTypeError is a ValueError too
        xpkmeans.KMeans(2).fit(X, sample_weight=weight)
    with pytest.raises(type(in_memory.value), match=f"^{re.escape(str(in_memory.value))}$"):
        xpkmeans.KMeans(2).fit(da.from_array(X, chunks=10), sample_weight=weight)
    if isinstance(weight, (bool, np.bool_)):  # not the shape error of an array of 50
        assert str(in_memory.value).startswith(
            "`sample_weight` must be a real number (not a bool) or have shape (50,)")


@pytest.mark.parametrize("as_dask", [False, True])
def test_bad_sample_weight_says_what_in_memory_says(as_dask):
    X = np.random.default_rng(0).random((50, 2))
    wrong_length = np.ones(49)
    weights = da.from_array(wrong_length, chunks=10) if as_dask else wrong_length
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(50,\) to match X"):
        xpkmeans.KMeans(2).fit(da.from_array(X, chunks=10), sample_weight=weights)
    with pytest.raises(TypeError, match="`sample_weight` must be real numbers"):
        xpkmeans.KMeans(2).fit(da.from_array(X, chunks=10), sample_weight=np.array(["a"] * 50))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dispersion_scores_of_dask_arrays_equal_scikit_learns(lazy_backend, dtype):
    """Per-cluster sums and distances inside Dask (three computes of k x d
    numbers), in float64 as in memory; labels of any integers."""
    from sklearn import metrics

    X = _blobs(n=1200).astype(dtype)
    Xd = lazy_backend.asarray(X)
    labels = xpkmeans.KMeans(5, init=_init(X, 5)).fit(X).labels_
    names = np.array([f"cluster {i}" for i in (4, 0, 3, 1, 2)])[labels]  # as LabelEncoder
    for given in (lazy_backend.asarray(labels * 7 - 3), labels * 7 - 3, names, names.tolist()):
        with count_computes() as counter:
            ch = xpkmeans.calinski_harabasz_score(Xd, given)
        assert counter["computes"] == 3
        assert ch == pytest.approx(metrics.calinski_harabasz_score(X.astype(np.float64), labels),
                                   rel=1e-12)
        assert xpkmeans.davies_bouldin_score(Xd, given) == pytest.approx(
            metrics.davies_bouldin_score(X.astype(np.float64), labels), rel=1e-12)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        xpkmeans.calinski_harabasz_score(Xd, np.zeros(1200, dtype=int))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
def test_dispersion_scores_of_bad_dask_data_raise_the_errors_of_memory():
    """NaN in X and overflowing squared distances had given NaN scores, and
    labels of another length an error of Dask's chunks that named neither."""
    X = _blobs(n=600)
    labels = xpkmeans.KMeans(4, init=_init(X, 4)).fit(X).labels_
    with_nan = X.copy()
    with_nan[77, 1] = np.nan
    for score in (xpkmeans.calinski_harabasz_score, xpkmeans.davies_bouldin_score):
        with pytest.raises(ValueError, match="^`X` contains NaN"):
            score(da.from_array(with_nan, chunks=150), labels)
        with pytest.raises(ValueError, match="^`X` has values too large for float64"):
            score(da.from_array(X * 1e160, chunks=150), labels)
        with pytest.raises(ValueError, match=r"^`labels` must have shape \(600,\) .*\(5,\)"):
            score(da.from_array(X, chunks=150), labels[:5])


def test_big_endian_float32_stays_float32_and_large_weights_draw_as_small_ones():
    """'>f4' chunks had been fitted in float64; weights of 1e9 on float32
    data of 1e15 had drawn one row again and again in k-means++ and k-means||."""
    X = _blobs(n=600, dtype=np.float32)
    swapped = X.astype(X.dtype.newbyteorder(">" if np.little_endian else "<"))
    km = xpkmeans.KMeans(4, init=_init(X, 4)).fit(da.from_array(swapped, chunks=150))
    assert km.cluster_centers_.dtype == np.float32
    data = X * np.float32(1e14)
    weights = np.random.default_rng(0).uniform(1.0, 2.0, size=600)
    for init in ("k-means++", "k-means||"):
        expected = xpkmeans.KMeans(4, init=init, random_state=0).fit(data, sample_weight=weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # k-means++'s passes over a Dask array
            ours = xpkmeans.KMeans(4, init=init, random_state=0).fit(
                da.from_array(data, chunks=150), sample_weight=weights * 2.0**30)
        np.testing.assert_allclose(ours.cluster_centers_, expected.cluster_centers_, rtol=1e-5)


def test_dispersion_scores_take_float_boolean_and_string_dask_labels_as_in_memory():
    """Whole-number floats, booleans and strings are labels in memory; a Dask
    array of them had been refused as not integers."""
    X = _blobs(n=600)
    Xd = da.from_array(X, chunks=150)
    labels = xpkmeans.KMeans(4, init=_init(X, 4)).fit(X).labels_
    for given in (labels * 7.0 - 3, labels == 2):
        for score in (xpkmeans.calinski_harabasz_score, xpkmeans.davies_bouldin_score):
            assert score(Xd, da.from_array(given, chunks=150)) == pytest.approx(
                score(X, given), rel=1e-12)
    with pytest.raises(ValueError, match="`labels` must be integer-valued"):
        xpkmeans.calinski_harabasz_score(Xd, da.from_array(labels + 0.5, chunks=150))
    names = np.array(["setosa", "virginica", "versicolor", "iris"])[labels]  # strings in Dask
    for given in (names, names.astype(object)):
        for score in (xpkmeans.calinski_harabasz_score, xpkmeans.davies_bouldin_score):
            assert score(Xd, da.from_array(given, chunks=150)) == pytest.approx(
                score(X, given), rel=1e-12)


def test_silhouette_refuses_dask_arrays_or_samples_them_as_in_memory(monkeypatch):
    """The silhouette has label-dependent shapes: a Dask array is refused with
    what to do, or (with a sample size) only its sampled rows are computed."""
    X = _blobs(n=1200)
    Xd = da.from_array(X, chunks=300)
    km = xpkmeans.KMeans(5, init=_init(X, 5)).fit(Xd)
    labels = km.labels_.compute()
    for score in (xpkmeans.silhouette_score, xpkmeans.silhouette_samples):
        with pytest.raises(TypeError, match="in memory.*compute"):
            score(Xd, km.labels_)
    for labels_given in (km.labels_, labels):
        assert xpkmeans.silhouette_score(Xd, labels_given, sample_size=400, random_state=3) == (
            pytest.approx(xpkmeans.silhouette_score(X, labels, sample_size=400, random_state=3),
                          rel=1e-12))
    fits = []
    original = xpkmeans.KMeans.fit
    monkeypatch.setattr(xpkmeans.KMeans, "fit",
                        lambda self, *a, **kw: fits.append(1) or original(self, *a, **kw))
    with pytest.raises(TypeError, match="silhouette_sample_size"):
        xpkmeans.select_n_clusters(Xd, range(2, 5), random_state=0)
    assert not fits  # refused before fitting
    for params in (dict(silhouette_sample_size=500), dict(method="calinski_harabasz"),
                   dict(method="davies_bouldin")):
        params.update(random_state=0, init="k-means||")
        lazy = xpkmeans.select_n_clusters(Xd, range(2, 7), **params)
        in_memory = xpkmeans.select_n_clusters(X, range(2, 7), **params)
        assert lazy.best_n_clusters == in_memory.best_n_clusters == 5
        np.testing.assert_allclose(lazy.scores, in_memory.scores, rtol=1e-10)


def _device1_kernels():
    """Each chunk kernel with a device1 chunk and the host (NumPy) inputs Dask
    hands it next to the chunk: centres, means, weights, labels, states."""
    host = np.random.default_rng(0)
    centres, mean = host.standard_normal((3, 2)), np.array([0.5, -0.5])
    weights, labels = host.random((6, 1)), host.integers(0, 3, (6, 1))
    state = np.stack([host.random(6), host.integers(0, 3, 6)], axis=1)
    return {
        "moments": lambda b: _dask._chunk_moments(b, None),
        "moments, weighted": lambda b: _dask._chunk_moments(b, weights),
        "sum of squares": lambda b: _dask._chunk_sum_of_squares(b, mean),
        "lloyd sums": lambda b: _dask._chunk_lloyd_sums(b, weights, centres, mean),
        "sums of labels": lambda b: _dask._chunk_sums_of_labels(b, labels, weights, 3),
        "farthest": lambda b: _dask._chunk_farthest(b, None, None, centres),
        "farthest, weighted": lambda b: _dask._chunk_farthest(b, labels, weights, centres),
        "labels": lambda b: _dask._chunk_labels(b, centres, mean),
        "inertia": lambda b: _dask._chunk_inertia(b, labels[:, 0], weights, centres, mean),
        "spreads": lambda b: _dask._chunk_spreads(b, labels, centres),
        "nearest candidate": lambda b: _dask._chunk_nearest_candidate(b, None, mean, centres, 0),
        "nearest candidate, state": lambda b: _dask._chunk_nearest_candidate(
            b, state, mean, centres, 3),
        "greedy": lambda b: _dask._chunk_greedy(b, None, weights, mean, centres, None),
        "greedy, kept": lambda b: _dask._chunk_greedy(b, state[:, :1], None, mean, centres, 1),
        "distances": lambda b: _dask._chunk_distances(b, mean, centres),
        "predict": lambda b: _dask._chunk_predict(b, mean, centres),
        "weight flags": lambda b: _dask._chunk_weight_flags(b, weights),
        "weight flags, unweighted": lambda b: _dask._chunk_weight_flags(b, None),
        "start summary": lambda b: _dask._chunk_start_summary(b, labels, labels, weights,
                                                              centres, mean),
        "start summary, first": lambda b: _dask._chunk_start_summary(b, labels, None, None,
                                                                     centres, mean),
    }


def _chunked(backend, X, rows):
    """X as a Dask array of ``backend``'s chunks with the given row chunks."""
    return da.from_array(backend.chunk_backend.asarray(X), chunks=(rows, -1), asarray=False)


def _fit_params(X, k, init):
    """KMeans parameters for the init named ``init`` (two starts of 'random')."""
    given = {"array": _init(X, k),
             "callable": lambda data, n_clusters, random_state: data[:n_clusters]}
    return {"init": given.get(init, init), "random_state": 0,
            "n_init": 2 if init == "random" else 1}


@pytest.mark.filterwarnings("ignore:init='k-means\\+\\+' on a Dask array")
@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random", "array", "callable"])
@pytest.mark.parametrize("weighted", [False, True])
def test_chunks_of_no_rows_fit_as_in_memory(lazy_backend, init, weighted):
    """A filter can empty a chunk (``compute_chunk_sizes`` then gives it 0
    rows): the fit is that of the rows in memory."""
    X = _blobs(n=600, d=3, centers=4)
    w = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    params = _fit_params(X, 4, init)
    ref = xpkmeans.KMeans(4, **params).fit(X, sample_weight=w)
    for rows in ((200, 0, 400), (0, 300, 300, 0)):
        km = xpkmeans.KMeans(4, **params).fit(_chunked(lazy_backend, X, rows), sample_weight=w)
        np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
        np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_),
                                   ref.cluster_centers_, rtol=1e-10, atol=1e-10)
        assert km.n_iter_ == ref.n_iter_


def test_chunks_of_no_rows_predict_score_and_step_as_in_memory(lazy_backend):
    X = _blobs(n=600, d=3, centers=4)
    w = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    Xd = _chunked(lazy_backend, X, (0, 200, 0, 400, 0))
    init = np.vstack([_init(X, 3), np.full((1, 3), 1e3)])  # an empty cluster: relocation
    ref = xpkmeans.KMeans(4, init=init).fit(X)
    km = xpkmeans.KMeans(4, init=init).fit(Xd)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.predict(Xd).compute()), ref.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(km.transform(Xd).compute()),
                               ref.transform(X), rtol=1e-8)
    assert km.score(Xd, sample_weight=w) == pytest.approx(ref.score(X, sample_weight=w),
                                                          rel=1e-10)
    labels, inertia = xpkmeans.e_step(Xd, init, sample_weight=w)
    labels_ref, inertia_ref = xpkmeans.e_step(X, init, sample_weight=w)
    np.testing.assert_array_equal(lazy_backend.to_numpy(labels.compute()), labels_ref)
    assert float(inertia.compute()) == pytest.approx(float(inertia_ref), rel=1e-10)
    np.testing.assert_allclose(
        lazy_backend.to_numpy(xpkmeans.m_step(Xd, labels, init, sample_weight=w).compute()),
        xpkmeans.m_step(X, labels_ref, init, sample_weight=w), rtol=1e-10)


def test_row_blocks_of_no_rows_are_one_empty_block():
    """The row-block helpers map a 0-row array (a Dask chunk) to one empty
    block, so that concatenations and sums have something to combine; other
    row counts keep their blocks."""
    from xpkmeans import _backend
    from xpkmeans._backend import _host

    xp = _backend.host_xp
    assert _host.row_blocks(0, 3, xp=xp, device="cpu") == [slice(0, 0)]
    assert _host.row_blocks(5, 3, xp=xp, device="cpu", step=2) == [
        slice(0, 2), slice(2, 4), slice(4, 5)]
    empty, centres = np.empty((0, 3)), np.ones((2, 3))
    assert _backend.sq_distances_to_assigned(empty, centres, np.empty(0, int)).shape == (0,)
    np.testing.assert_array_equal(_backend.column_sums(empty), np.zeros(3))
    assert _backend.distances_to_centers(empty, centres).shape == (0, 2)


def _numpy_error(call):
    with pytest.raises(ValueError) as error:
        call()
    return f"^{re.escape(str(error.value))}$"


def _with_nan(X):
    X = X.copy()
    X[777, 2] = np.nan
    return X


@pytest.mark.parametrize("case", [
    "transform, nan", "score, nan", "e_step, nan", "m_step, nan", "score, nan weight",
    "score, negative weight", "score, zero weights", "e_step, negative weight",
    "m_step, nan weight", "m_step, zero weights", "fit, nan", "fit, nan weight",
    "fit, negative weight", "fit, zero weights",
])
def test_nan_and_bad_weights_raise_the_errors_of_numpy(lazy_backend, case):
    """At compute time for lazy results, before the float for ``score``."""
    X = np.random.default_rng(0).normal(size=(1000, 4))
    centres = X[:4]
    labels = xpkmeans.e_step(X, centres)[0]
    km = xpkmeans.KMeans(4, init=centres).fit(X)
    name, problem = case.split(", ")
    w = {"nan weight": np.r_[np.nan, np.ones(999)], "negative weight": np.r_[np.ones(999), -1.0],
         "zero weights": np.zeros(1000)}.get(problem)
    data = _with_nan(X) if problem == "nan" else X
    calls = {
        "transform": lambda X: km.transform(X),
        "score": lambda X: km.score(X, sample_weight=w),
        "e_step": lambda X: xpkmeans.e_step(X, centres, sample_weight=w)[1],
        "m_step": lambda X: xpkmeans.m_step(X, labels, centres, sample_weight=w),
        "fit": lambda X: xpkmeans.KMeans(4, init=centres).fit(X, sample_weight=w),
    }
    message = _numpy_error(lambda: calls[name](data))
    with pytest.raises(ValueError, match=message):
        result = calls[name](lazy_backend.asarray(data))
        getattr(result, "compute", lambda: result)()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, on sums of such weights
@pytest.mark.parametrize("name", ["fit", "score", "e_step", "m_step"])
def test_weights_whose_sum_overflows_raise_the_error_of_numpy(lazy_backend, name):
    """Finite weights whose total a float cannot hold: in memory an error;
    on Dask the fit had gone on (inf inertia, equal centres) and m_step had
    given NaN centres."""
    X = np.random.default_rng(0).normal(size=(1000, 4))
    centres, labels, w = X[:4], np.arange(1000) % 4, np.full(1000, 1e307)
    calls = {
        "fit": lambda X: xpkmeans.KMeans(4, init=centres).fit(X, sample_weight=w),
        "score": lambda X: xpkmeans.KMeans(4, init=centres).fit(np.asarray(centres)).score(
            X, sample_weight=w),
        "e_step": lambda X: xpkmeans.e_step(X, centres, sample_weight=w)[1],
        "m_step": lambda X: xpkmeans.m_step(X, labels, centres, sample_weight=w),
    }
    message = _numpy_error(lambda: calls[name](X))
    assert re.escape("sums to more than a float can hold") in message
    with pytest.raises(ValueError, match=message):
        result = calls[name](lazy_backend.asarray(X))
        getattr(result, "compute", lambda: result)()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("problem", ["too large", "too small"])
def test_weights_float32_cannot_hold_raise_the_errors_of_numpy(problem):
    """The weights are checked as given and once cast to X's dtype, as in
    memory (these had been "contains NaN or inf" and "all are zero")."""
    X = np.random.default_rng(0).random((100, 2)).astype(np.float32)
    w = np.r_[1e39 if problem == "too large" else 1e-50, np.zeros(99)]
    fit = {
        "fit": lambda X, w: xpkmeans.KMeans(2, init=X[:2]).fit(X, sample_weight=w),
        "score": lambda X, w: xpkmeans.KMeans(2, init=X[:2]).fit(X).score(X, sample_weight=w),
    }
    for name, call in fit.items():
        message = _numpy_error(lambda: call(X, w))
        assert "float32" in message, name
        with pytest.raises(ValueError, match=message):
            call(da.from_array(X, chunks=30), da.from_array(w, chunks=40))


@pytest.mark.parametrize("case", ["max_iter", "duplicates"])
def test_fit_warns_as_in_memory(lazy_backend, case):
    X = np.random.default_rng(0).normal(size=(2000, 4))
    params = {"n_clusters": 8, "max_iter": 1}
    if case == "duplicates":  # 3 distinct points, 5 clusters
        X, params = np.repeat(X[:3], 100, axis=0), {"n_clusters": 5}

    def fit(data):
        return xpkmeans.KMeans(init="k-means||", random_state=0, **params).fit(data)
    with pytest.warns(xpkmeans.ConvergenceWarning) as in_memory:
        fit(X)
    with pytest.warns(xpkmeans.ConvergenceWarning) as on_dask:
        fit(lazy_backend.asarray(X))
    assert [str(w.message) for w in on_dask] == [str(w.message) for w in in_memory]
    assert on_dask[0].filename == __file__  # the caller of fit


def test_callback_sees_the_iterations_of_the_fit_in_memory_without_more_computes(lazy_backend):
    X = _blobs(n=2000, d=4, centers=4)
    Xd = lazy_backend.asarray(X)

    def fit(data, callback):
        return xpkmeans.KMeans(4, init="random", n_init=3, random_state=0,
                               callback=callback).fit(data)

    def fields(progress):
        return (progress.start, progress.n_init, progress.iteration, progress.max_iter,
                progress.converged, progress.last)

    in_memory, on_dask = [], []
    fit(X, in_memory.append)
    with count_computes() as without_callback:
        fit(Xd, None)
    with count_computes() as with_callback:
        fit(Xd, on_dask.append)
    assert with_callback["computes"] == without_callback["computes"]
    assert [fields(p) for p in on_dask] == [fields(p) for p in in_memory]
    np.testing.assert_allclose([p.center_shift for p in on_dask],
                               [p.center_shift for p in in_memory], rtol=1e-6, atol=1e-12)
    assert on_dask[-1].tol == pytest.approx(in_memory[-1].tol, rel=1e-10)
    assert on_dask[0].inertia() == pytest.approx(in_memory[0].inertia(), rel=1e-10)


def test_n_init_keeps_the_start_numpy_keeps(lazy_backend):
    """A later start of lower inertia replaces the best only if it is another
    clustering (not the same one renamed), as in memory and in scikit-learn."""
    X = _blobs(n=2000, d=3, centers=4, dtype=np.float32)
    params = {"init": "random", "n_init": 10, "random_state": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xpkmeans.ConvergenceWarning)
        ref = xpkmeans.KMeans(4, **params).fit(X)
        km = xpkmeans.KMeans(4, **params).fit(lazy_backend.asarray(X))
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-5)
    assert km.n_iter_ == ref.n_iter_


def test_n_init_ranks_near_tied_starts_as_in_memory(lazy_backend):
    """Four-fold symmetric data: starts that split it differently have
    inertias equal to float32 rounding. Summed in float64 everywhere, memory,
    Dask and row blocks rank them alike (float32 sums had flipped 38 of 40)."""
    if lazy_backend.gpu:
        pytest.skip("ties within float32 rounding rank by each device's own arithmetic")
    pts = np.random.default_rng(0).normal(size=(250, 2)) * [1, 0.3] + [3.1, 0]
    turn = np.array([[0, -1], [1, 0]])
    X = np.vstack([pts @ np.linalg.matrix_power(turn, i).T for i in range(4)])
    X = X.astype(np.float32) + np.float32(0.37)
    for seed in range(4):
        params = {"init": "random", "n_init": 10, "random_state": seed}
        ref = xpkmeans.KMeans(2, **params).fit(X)
        for data in (_chunked(lazy_backend, X, 250), xpkmeans.RowBlocks(X, block_rows=250)):
            km = xpkmeans.KMeans(2, **params).fit(data)
            labels = km.labels_.compute() if hasattr(km.labels_, "compute") else km.labels_
            np.testing.assert_array_equal(lazy_backend.to_numpy(labels), ref.labels_)


def test_centres_set_by_hand_predict_transform_score_as_in_memory(lazy_backend):
    X = np.random.default_rng(0).normal(size=(100, 4))
    km = xpkmeans.KMeans(3)
    km.cluster_centers_ = X[:3].copy()
    Xd = lazy_backend.asarray(X)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.predict(Xd).compute()), km.predict(X))
    np.testing.assert_allclose(lazy_backend.to_numpy(km.transform(Xd).compute()),
                               km.transform(X), rtol=1e-10)
    assert km.score(Xd) == pytest.approx(km.score(X), rel=1e-10)


def test_x_chunked_by_columns_keeps_its_tasks_the_size_of_a_chunk():
    """Column chunks are joined, and rows split as many times: joined as they
    were, 400k x 800 in (100000, 50) chunks had peaked at +1.5 GiB in predict."""
    X = _blobs(n=4000, d=4)
    init = _init(X, 5)
    by_columns = da.from_array(X, chunks=(-1, 1))
    assert _dask.check_dask_array(by_columns).chunks == ((1000,) * 4, (4,))
    km = xpkmeans.KMeans(5, init=init).fit(by_columns)
    np.testing.assert_array_equal(km.labels_.compute(), xpkmeans.KMeans(5, init=init).fit(X).labels_)
    assert _dask.check_dask_array(da.from_array(X, chunks=(1000, 2))).chunks[0] == (500,) * 8
    assert _dask.check_dask_array(da.from_array(X, chunks=(1000, 4))).chunks[0] == (1000,) * 4


def test_predict_and_transform_are_lazy_on_unknown_chunk_sizes_and_frames():
    """They map chunks: no chunk sizes needed, no compute to count a frame's rows."""
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = _blobs(n=1000, d=3)
    ref = xpkmeans.KMeans(5, init=_init(X, 5)).fit(X)
    km = xpkmeans.KMeans(5, init=_init(X, 5)).fit(da.from_array(X, chunks=(250, -1)))
    Xd = da.from_array(X, chunks=(250, -1))
    frame = dd.from_pandas(pd.DataFrame(X), npartitions=4)
    kept = X[:, 0] > 0
    for data in (Xd[Xd[:, 0] > 0], frame[frame[0] > 0]):
        with count_computes() as counter:
            labels, distances = km.predict(data), km.transform(data)
        assert counter["computes"] == 0
        np.testing.assert_array_equal(labels.compute(), ref.predict(X[kept]))
        np.testing.assert_allclose(distances.compute(), ref.transform(X[kept]), rtol=1e-10)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):  # weights must be chunked alike
        km.predict(Xd[Xd[:, 0] > 0], sample_weight=np.ones(int(kept.sum())))


def test_weighted_random_init_equals_numpy_and_keeps_the_weights_on_the_workers(
        lazy_backend, monkeypatch):
    """NumPy's ``choice(replace=False, p=...)`` draws again for repeated rows:
    heavy weights on a few points make such rounds."""
    import dask

    X = _blobs(n=500, d=3)
    gathered = []
    original = da.Array.compute
    monkeypatch.setattr(da.Array, "compute",
                        lambda self, **kw: gathered.append(self.shape) or original(self, **kw))
    compute = dask.compute

    def recorded(*args, **kwargs):  # what each compute brings to the client
        results = compute(*args, **kwargs)
        for result in results:
            for value in result if isinstance(result, tuple) else (result,):
                gathered.append(tuple(getattr(value, "shape", ())))
        return results

    monkeypatch.setattr(dask, "compute", recorded)
    for seed in range(8):
        w = np.random.default_rng(seed).uniform(0, 1, X.shape[0]) ** 8
        w[::3] = 0
        params = {"init": "random", "n_init": 1, "max_iter": 1, "random_state": seed}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", xpkmeans.ConvergenceWarning)
            ref = xpkmeans.KMeans(8, **params).fit(X, sample_weight=w)
            km = xpkmeans.KMeans(8, **params).fit(_chunked(lazy_backend, X, (0, 250, 250)),
                                                  sample_weight=w)
        np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_),
                                   ref.cluster_centers_, rtol=1e-12)
    assert all(not shape or shape[0] < X.shape[0] for shape in gathered)


def test_chunk_kernels_make_their_constants_on_the_chunks_device():
    """What a chunk kernel makes, or takes from the host, lives on its chunk's
    device: torch had put constants on the CPU (a streamed fit to CUDA
    failed); array_api_strict's device1 refuses a mix as CUDA does."""
    xps = pytest.importorskip("array_api_strict")
    block = xps.asarray(np.arange(12.0).reshape(6, 2), device=xps.Device("device1"))
    for name, kernel in _device1_kernels().items():
        result = kernel(block)
        assert result.device == block.device, name
    moments = _dask._chunk_moments(block, None)
    sums, n_nonfinite, weight_flags = _dask._split_moments(_dask.to_numpy(moments)[0])
    np.testing.assert_array_equal(sums, [30.0, 36.0])
    assert n_nonfinite == 0.0
    np.testing.assert_array_equal(weight_flags, [0.0, 0.0, 1.0])  # non-finite | negative | positive
    farthest = _dask._chunk_farthest(block, None, None, np.zeros((2, 2)))
    np.testing.assert_array_equal(_dask.to_numpy(farthest)[:, -1], [1.0, 1.0])  # unit weights


def test_fit_transform_reads_each_chunk_once():
    """The fit and the distances share X's chunks (the distances had read
    X from its source again), as fit_predict's labels do."""
    rows_read = []

    def read(block):
        rows_read.append(block.shape[0])
        return block

    X = _blobs(n=400, d=3)
    lazy = da.from_array(X, chunks=100).map_blocks(read, dtype=X.dtype)
    init = _init(X, 3)
    with dask.config.set(scheduler="synchronous"):
        distances = xpkmeans.KMeans(3, init=init).fit_transform(lazy).compute()
    assert sorted(r for r in rows_read if r) == [100] * 4  # (and Dask's empty probes)
    np.testing.assert_allclose(distances, xpkmeans.KMeans(3, init=init).fit_transform(X),
                               rtol=1e-10, atol=1e-10)
