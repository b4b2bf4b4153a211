"""KMeans on Dask arrays: the EM inside Dask, no silent computes, k-means||,
a distributed LocalCluster. The reference is the in-memory NumPy fit."""

from __future__ import annotations

import contextlib
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


def test_empty_cluster_relocated_as_in_memory(lazy_backend):
    X = _blobs(n=1000, centers=3)
    init = np.vstack([_init(X, 3), np.full((2, X.shape[1]), 1e3)])  # two far centres: empty
    ref = xpkmeans.KMeans(5, init=init).fit(X)
    km = xpkmeans.KMeans(5, init=init).fit(lazy_backend.asarray(X))
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    assert km.n_iter_ == ref.n_iter_


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


@pytest.mark.filterwarnings("ignore::xpkmeans.ConvergenceWarning")  # max_iter=1
@pytest.mark.filterwarnings("ignore:init='k-means\\+\\+' on a Dask array")
@pytest.mark.parametrize("init", ["k-means||", "k-means++"])
@pytest.mark.parametrize("weighted", [False, True])
def test_initialisation_equals_the_one_in_memory(lazy_backend, init, weighted):
    """One seed, the centres of a fit in memory: the same uniforms, draws
    and distances, chunk by chunk."""
    X = _blobs(n=3000, d=3, centers=8, std=1.5)
    w = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    fit = lambda data: xpkmeans.KMeans(  # noqa: E731
        8, init=init, n_init=1, max_iter=1, random_state=4).fit(data, sample_weight=w)
    ref, km = fit(X), fit(lazy_backend.asarray(X))
    np.testing.assert_allclose(lazy_backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(lazy_backend.to_numpy(km.labels_.compute()), ref.labels_)


def test_greedy_kmeans_plusplus_on_dask_warns_about_its_passes(lazy_backend):
    X = _blobs(n=1000, centers=4)
    with pytest.warns(UserWarning, match="passes"):
        km = xpkmeans.KMeans(4, random_state=0).fit(lazy_backend.asarray(X))
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
    """dask-ml refuses Dask DataFrames; here they are the Dask array of their
    values (one compute counts the partitions' rows), never gathered."""
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
    for given in (lazy_backend.asarray(labels * 7 - 3), labels * 7 - 3):
        with count_computes() as counter:
            ch = xpkmeans.calinski_harabasz_score(Xd, given)
        assert counter["computes"] == 3
        assert ch == pytest.approx(metrics.calinski_harabasz_score(X.astype(np.float64), labels),
                                   rel=1e-12)
        assert xpkmeans.davies_bouldin_score(Xd, given) == pytest.approx(
            metrics.davies_bouldin_score(X.astype(np.float64), labels), rel=1e-12)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        xpkmeans.calinski_harabasz_score(Xd, np.zeros(1200, dtype=int))


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
        "distances": lambda b: _dask._chunk_distances(b, centres),
    }


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
    np.testing.assert_array_equal(_dask.to_numpy(moments), [[30.0, 36.0, 0.0, 0.0, 1.0]])
    farthest = _dask._chunk_farthest(block, None, None, np.zeros((2, 2)))
    np.testing.assert_array_equal(_dask.to_numpy(farthest)[:, -1], [1.0, 1.0])  # unit weights
