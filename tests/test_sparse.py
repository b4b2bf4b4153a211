"""Sparse input (CSR; CSC and COO by conversion): the results of dense data
and of scikit-learn, on SciPy (CPU), torch sparse CSR (CPU here, CUDA where
present) and ``cupyx.scipy.sparse`` (CUDA only)."""

import tracemalloc

import numpy as np
import pytest

import xpkmeans
from xpkmeans import KMeans, k_means, kmeans_plusplus
from xpkmeans._backend import _numba, is_sparse, nearest_centers, nearest_centers_and_sums
from xpkmeans._backend import sparse as sparse_backend

sp = pytest.importorskip("scipy.sparse")


def _blobs_sparse(n=300, d=40, k=4, seed=0, dtype=np.float64):
    """Non-negative blobs with about 80% zeros: each cluster uses its own columns."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    X = np.zeros((n, d))
    for row, label in enumerate(labels):
        columns = rng.choice(np.arange(label, d, k), size=d // (2 * k), replace=False)
        X[row, columns] = rng.uniform(0.5, 2.0, columns.shape[0])
    return sp.csr_matrix(X.astype(dtype)), labels


@pytest.fixture(params=["numba", "no-numba"])
def compiled(request, monkeypatch):
    """Each test with and without the compiled CSR kernels."""
    if request.param == "numba" and not _numba.AVAILABLE:
        pytest.skip("numba not installed")
    if request.param == "no-numba":
        monkeypatch.setattr(_numba, "AVAILABLE", False)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_equals_scikit_learn_from_the_same_init(compiled, dtype, weighted):
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    X, _ = _blobs_sparse(dtype=dtype)
    weights = np.random.default_rng(1).uniform(0.5, 2, X.shape[0]) if weighted else None
    init = X[:4].toarray()
    ours = KMeans(4, init=init, n_init=1, tol=1e-4).fit(X, sample_weight=weights)
    ref = sklearn_cluster.KMeans(4, init=init, n_init=1, tol=1e-4).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=rtol)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.cluster_centers_.dtype == dtype and isinstance(ours.cluster_centers_, np.ndarray)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_formats_and_dense_give_the_same_clustering(compiled, fmt):
    X, truth = _blobs_sparse(seed=2)
    init = X[:4].toarray()
    dense = KMeans(4, init=init, n_init=1).fit(X.toarray())
    ours = KMeans(4, init=init, n_init=1).fit(X.asformat(fmt))
    np.testing.assert_array_equal(ours.labels_, dense.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, dense.cluster_centers_, atol=1e-12)
    np.testing.assert_allclose(ours.inertia_, dense.inertia_, rtol=1e-10)
    assert X.format == "csr"  # input untouched


def test_predict_transform_score_equal_scikit_learn(compiled):
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    X, _ = _blobs_sparse(seed=3)
    init = X[:4].toarray()
    ours = KMeans(4, init=init, n_init=1).fit(X)
    ref = sklearn_cluster.KMeans(4, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=1e-10)
    # fitted on dense data, used on sparse data, and the reverse
    dense = KMeans(4, init=init, n_init=1).fit(X.toarray())
    np.testing.assert_array_equal(dense.predict(X), ours.predict(X.toarray()))
    np.testing.assert_allclose(dense.score(X), ours.score(X.toarray()), rtol=1e-10)


def test_empty_cluster_is_relocated_as_in_scikit_learn(compiled):
    # scikit-learn's test_kmeans_relocated_clusters, on sparse input
    X = sp.csr_matrix(np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]]))
    init = np.array([[0.5, 0.5], [3, 3]])
    km = KMeans(2, init=init, n_init=1).fit(X)
    assert km.inertia_ == pytest.approx(0.25)
    assert km.n_iter_ == 3
    # scikit-learn accepts either relocation (it depends on its threads' order)
    if km.labels_[0] == 0:
        np.testing.assert_array_equal(km.labels_, [0, 0, 1, 1])
        np.testing.assert_allclose(km.cluster_centers_, [[0.25, 0], [0.75, 1]])
    else:
        np.testing.assert_array_equal(km.labels_, [1, 1, 0, 0])
        np.testing.assert_allclose(km.cluster_centers_, [[0.75, 1], [0.25, 0]])
    dense = KMeans(2, init=init, n_init=1).fit(X.toarray())
    np.testing.assert_array_equal(km.labels_, dense.labels_)


def test_k_means_kmeans_plusplus_and_random_init_equal_dense(compiled):
    X, _ = _blobs_sparse(seed=4)
    dense = X.toarray()
    centers, indices = kmeans_plusplus(X, 4, random_state=0)
    dense_centers, dense_indices = kmeans_plusplus(dense, 4, random_state=0)
    np.testing.assert_array_equal(indices, dense_indices)
    np.testing.assert_array_equal(centers, dense[indices])
    for init in ("k-means++", "random"):
        ours = k_means(X, 4, init=init, random_state=0, n_init=2)
        ref = k_means(dense, 4, init=init, random_state=0, n_init=2)
        np.testing.assert_array_equal(ours[1], ref[1])
        np.testing.assert_allclose(ours[0], ref[0], atol=1e-12)


def test_learning_steps_and_model_selection_take_sparse_data(compiled):
    from xpkmeans import e_step, lloyd_steps, m_step, select_n_clusters

    X, _ = _blobs_sparse(n=200, seed=10)
    init = X[:4].toarray()
    steps = list(lloyd_steps(X, init))
    km = KMeans(4, init=init, n_init=1, tol=0).fit(X)
    np.testing.assert_array_equal(steps[-1].labels, km.labels_)
    np.testing.assert_allclose(steps[-1].inertia, km.inertia_, rtol=1e-12)
    labels, inertia = e_step(X, km.cluster_centers_)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_allclose(float(inertia), km.inertia_, rtol=1e-12)
    np.testing.assert_allclose(m_step(X, labels, km.cluster_centers_), km.cluster_centers_,
                               atol=1e-12)
    dense = select_n_clusters(X.toarray(), range(2, 5), random_state=0)
    assert select_n_clusters(X, range(2, 5), random_state=0).best_n_clusters == \
        dense.best_n_clusters


def test_integer_and_boolean_sparse_become_float64():
    X = sp.csr_matrix(np.array([[0, 2], [0, 3], [5, 0], [6, 0]], dtype=np.int64))
    km = KMeans(2, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float64
    assert sorted(km.cluster_centers_.tolist()) == [[0.0, 2.5], [5.5, 0.0]]


def test_bad_sparse_input_fails_with_a_clear_message():
    X = sp.csr_matrix(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="`X` contains NaN"):
        KMeans(1).fit(X)
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_clusters=3"):
        KMeans(3).fit(sp.csr_matrix(np.eye(2)))


def test_sparse_data_is_never_densified(compiled, monkeypatch):
    # only rows picked as centres become dense: at most n_clusters rows at a time
    X, _ = _blobs_sparse(n=500, seed=5)
    biggest = []
    original = sp.csr_matrix.toarray

    def recording_toarray(self, *args, **kwargs):
        biggest.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", recording_toarray)
    km = KMeans(4, random_state=0).fit(X)
    km.predict(X), km.score(X)
    assert max(biggest) <= 4


@pytest.mark.skipif(not _numba.AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("k", [1, 3, 17])
def test_compiled_csr_pass_equals_the_scipy_path(k, monkeypatch):
    rng = np.random.default_rng(k)
    dense = rng.integers(-3, 4, (403, 9)) * (rng.uniform(size=(403, 9)) < 0.3)
    X = sp.csr_matrix(dense.astype(np.float32))
    centers = rng.integers(-3, 4, (k, 9)).astype(np.float32)
    weights = rng.uniform(0, 2, 403).astype(np.float32)
    compiled = nearest_centers_and_sums(X, centers, weights=weights)
    distances = sparse_backend.sq_distances_to_assigned(X, centers, compiled[0], xp=np)
    monkeypatch.setattr(_numba, "AVAILABLE", False)
    plain = nearest_centers_and_sums(X, centers, weights=weights)
    np.testing.assert_array_equal(compiled[0], plain[0])  # integer data: exact ties
    np.testing.assert_array_equal(compiled[0], nearest_centers(dense.astype(np.float32), centers))
    np.testing.assert_allclose(compiled[1], plain[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(compiled[2], plain[2], rtol=1e-12)
    expected = ((dense - centers[compiled[0]]) ** 2).sum(axis=1)
    np.testing.assert_allclose(distances, expected, rtol=1e-6)
    np.testing.assert_allclose(
        sparse_backend.sq_distances_to_assigned(X, centers, compiled[0], xp=np), expected,
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "name", ["silhouette_score", "calinski_harabasz_score", "davies_bouldin_score"]
)
def test_metrics_equal_scikit_learn(name):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from xpkmeans import metrics

    X, _ = _blobs_sparse(n=150, seed=8)
    labels = np.random.default_rng(8).integers(0, 3, X.shape[0])
    expected = getattr(sklearn_metrics, name)(X.toarray(), labels)
    np.testing.assert_allclose(getattr(metrics, name)(X, labels), expected, rtol=1e-10)
    np.testing.assert_allclose(getattr(metrics, name)(X.tocsc(), labels), expected, rtol=1e-10)


def test_silhouette_samples_and_subsample_equal_dense():
    from xpkmeans import metrics

    X, _ = _blobs_sparse(n=120, seed=9)
    labels = np.random.default_rng(9).integers(0, 3, X.shape[0])
    np.testing.assert_allclose(metrics.silhouette_samples(X, labels),
                               metrics.silhouette_samples(X.toarray(), labels), atol=1e-12)
    np.testing.assert_allclose(
        metrics.silhouette_score(X, labels, sample_size=50, random_state=0),
        metrics.silhouette_score(X.toarray(), labels, sample_size=50, random_state=0),
        atol=1e-12,
    )


# ------------------------------------------------------------------ torch and CuPy


def _torch_devices():
    torch = pytest.importorskip("torch")
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")  # torch, CUDA
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_sparse_csr_equals_scipy(device):
    torch = pytest.importorskip("torch")
    if device not in _torch_devices():
        pytest.skip("no CUDA device")
    X, _ = _blobs_sparse(seed=6, dtype=np.float32)
    init = X[:4].toarray()
    Xt = torch.sparse_csr_tensor(
        torch.as_tensor(X.indptr), torch.as_tensor(X.indices), torch.as_tensor(X.data),
        size=X.shape, device=device, check_invariants=True,
    )
    assert is_sparse(Xt)
    km = KMeans(4, init=torch.as_tensor(init, device=device), n_init=1).fit(Xt)
    ref = KMeans(4, init=init, n_init=1).fit(X)
    assert km.cluster_centers_.device.type == device
    np.testing.assert_array_equal(km.labels_.cpu().numpy(), ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_.cpu().numpy(), ref.cluster_centers_,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(km.predict(Xt).cpu().numpy(), ref.labels_)
    np.testing.assert_allclose(km.score(Xt), ref.score(X), rtol=1e-5)
    np.testing.assert_allclose(km.transform(Xt).cpu().numpy(), ref.transform(X), rtol=1e-4,
                               atol=1e-5)
    centers, indices = kmeans_plusplus(Xt, 4, random_state=0)
    np.testing.assert_array_equal(indices.cpu().numpy(), kmeans_plusplus(X, 4, random_state=0)[1])
    from xpkmeans import metrics

    labels = torch.as_tensor(ref.labels_, device=device)
    for name in ("silhouette_score", "calinski_harabasz_score", "davies_bouldin_score"):
        np.testing.assert_allclose(getattr(metrics, name)(Xt, labels),
                                   getattr(metrics, name)(X, ref.labels_), rtol=1e-5)


def test_cupyx_sparse_csr_equals_scipy(cupy_backend):
    import cupy
    import cupyx.scipy.sparse as cusparse

    X, _ = _blobs_sparse(seed=7, dtype=np.float32)
    init = X[:4].toarray()
    Xc = cusparse.csr_matrix(X)
    km = KMeans(4, init=cupy.asarray(init), n_init=1).fit(Xc)
    ref = KMeans(4, init=init, n_init=1).fit(X)
    assert isinstance(km.cluster_centers_, cupy.ndarray)
    np.testing.assert_array_equal(km.labels_.get(), ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_.get(), ref.cluster_centers_, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(km.predict(Xc).get(), ref.labels_)
    np.testing.assert_allclose(km.score(Xc), ref.score(X), rtol=1e-5)
    np.testing.assert_allclose(km.transform(Xc).get(), ref.transform(X), rtol=1e-4, atol=1e-5)
    indices = kmeans_plusplus(Xc, 4, random_state=0)[1]
    np.testing.assert_array_equal(indices.get(), kmeans_plusplus(X, 4, random_state=0)[1])


def test_xpkmeans_namespace_is_untouched():
    assert not hasattr(xpkmeans, "sparse")


def _with_split_entries(X):
    """X with each stored value split in two entries of the same cell: a
    valid, non-canonical CSR matrix."""
    X = X.tocsr()
    counts = np.diff(X.indptr)
    data = np.repeat(X.data / 2, 2)
    indices = np.repeat(X.indices, 2)
    indptr = np.concatenate([[0], np.cumsum(2 * counts)])
    return sp.csr_matrix((data, indices, indptr), shape=X.shape)


def test_repeated_entries_of_a_cell_are_added(compiled):
    """Squared norms per stored value had been wrong (inertia 162 for 362)."""
    X, _ = _blobs_sparse()
    split = _with_split_entries(X)
    assert not split.has_canonical_format
    stored = (split.data.copy(), split.indices.copy(), split.indptr.copy())
    init = X[:4].toarray()
    ours, reference = (KMeans(4, init=init, n_init=1).fit(data) for data in (split, X))
    assert ours.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
    np.testing.assert_allclose(ours.transform(split), reference.transform(X), rtol=1e-12)
    labels = reference.labels_
    for score in (xpkmeans.silhouette_score, xpkmeans.calinski_harabasz_score,
                  xpkmeans.davies_bouldin_score):
        assert score(split, labels) == pytest.approx(score(X, labels), rel=1e-12)
    for before, after in zip(stored, (split.data, split.indices, split.indptr)):
        np.testing.assert_array_equal(before, after)  # the input is not modified


def test_a_sparse_vector_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^`X` must be a 2-D sparse matrix, got shape \(5,\)"):
        KMeans(2).fit(sp.coo_array(np.ones(5)))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.parametrize("library", ["scipy", "torch"])
def test_select_rows_keeps_sparse_rows_sparse_and_equals_take_rows(library):
    from xpkmeans._backend import select_rows, take_rows

    X, _ = _blobs_sparse(n=50, d=12)
    indices = np.array([3, 0, 3, 49, 7])
    if library == "torch":
        torch = pytest.importorskip("torch")
        X, indices = torch.asarray(X.toarray()).to_sparse_csr(), torch.asarray(indices)
    rows = select_rows(X, indices)
    assert is_sparse(rows) and tuple(rows.shape) == (5, 12)
    dense = rows.toarray() if library == "scipy" else rows.to_dense().numpy()
    expected = take_rows(X, indices)
    np.testing.assert_array_equal(dense, np.asarray(expected))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
def test_torch_sparse_silhouette_densifies_within_the_block_budget(monkeypatch):
    """Rows of a wide torch CSR matrix are made dense a few at a time (a
    256-row block of 2^20 features had taken 8.5 GB); same score as SciPy."""
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import _host

    rng = np.random.default_rng(0)
    n, d = 600, 1 << 16
    X = sp.csr_matrix((rng.random(2 * n), (np.repeat(np.arange(n), 2), rng.integers(0, d, 2 * n))),
                      shape=(n, d))
    T = torch.asarray(X.toarray()).to_sparse_csr()
    labels = rng.integers(0, 4, n)
    densified = []
    to_dense = torch.Tensor.to_dense
    monkeypatch.setattr(torch.Tensor, "to_dense",
                        lambda self, *a, **k: densified.append(self.numel()) or to_dense(self, *a, **k))
    score = xpkmeans.silhouette_score(T, labels)
    assert densified and max(densified) <= _host._CPU_BLOCK_ELEMENTS
    assert float(score) == pytest.approx(float(xpkmeans.silhouette_score(X, labels)), rel=1e-9)


@pytest.mark.filterwarnings("ignore::xpkmeans.ConvergenceWarning")  # max_iter=1
def test_kmeans_parallel_keeps_its_candidates_sparse(monkeypatch):
    """Its ~10k candidate rows had been made dense (50k x 50k CSR, k=100:
    19 s and 577 MiB; sparse, 1.4 s and 154 MiB); the centres are those of
    the dense data."""
    from xpkmeans import _init

    X, _ = _blobs_sparse(n=3000, d=2000, k=4)
    n_clusters = 40  # 1 + 5 rounds x 80 candidates: 401 rows
    densified = []
    take_rows = _init.take_rows
    monkeypatch.setattr(_init, "take_rows", lambda data, indices, **kw: (
        densified.append(indices.shape[0]) if is_sparse(data) else None) or take_rows(
            data, indices, **kw))
    centers = KMeans(n_clusters, init="k-means||", n_init=1, max_iter=1,
                     random_state=0).fit(X).cluster_centers_
    assert densified and max(densified) <= 80  # a round's draws, never all candidates
    expected = KMeans(n_clusters, init="k-means||", n_init=1, max_iter=1,
                      random_state=0).fit(X.toarray()).cluster_centers_
    np.testing.assert_allclose(centers, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.filterwarnings("ignore::xpkmeans.ConvergenceWarning")  # 3 distinct points, k=5
def test_points_on_their_centre_are_not_relocated_on_sparse_data():
    """Sparse distances come by expansion, rounded far above the bound for
    "on its centre": the donors' own distances decide (twin centres had
    appeared on SciPy and torch CSR, not on the dense array). Nothing is
    relocated; the empty clusters take the largest cluster's mean, as
    scikit-learn's do on the CSR matrix."""
    torch = pytest.importorskip("torch")
    from sklearn.cluster import KMeans as SKLearnKMeans

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, (3, 40)) * (rng.random((3, 40)) < 0.7)
    X = np.repeat(base, 3, axis=0)
    init = np.vstack([base, base[:1] + 50, base[:1] + 60])
    reference = SKLearnKMeans(5, init=init, n_init=1).fit(sp.csr_matrix(X))
    for data in (X, sp.csr_matrix(X), torch.asarray(X).to_sparse_csr()):
        km = KMeans(5, init=init, n_init=1).fit(data)
        np.testing.assert_allclose(np.asarray(km.cluster_centers_), reference.cluster_centers_,
                                   rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.asarray(km.labels_), reference.labels_)
        assert km.n_iter_ == reference.n_iter_ == 2


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
def test_select_rows_of_torch_csr_keeps_its_index_dtype():
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import select_rows

    X = torch.asarray(_blobs_sparse(n=20, d=8)[0].toarray()).to_sparse_csr()
    X32 = torch.sparse_csr_tensor(X.crow_indices().int(), X.col_indices().int(), X.values(),
                                  size=X.shape, check_invariants=True)
    rows = select_rows(X32, torch.asarray([3, 0, 3]))
    assert rows.crow_indices().dtype == rows.col_indices().dtype == torch.int32
    np.testing.assert_array_equal(rows.to_dense().numpy(), X.to_dense().numpy()[[3, 0, 3]])


@pytest.mark.parametrize("n_blocks", [1, 5])
def test_transform_lays_out_the_centres_once_for_all_row_blocks(n_blocks, monkeypatch):
    """SciPy's sparse product ravels a column-major operand: the transposed
    centres, a copy of k x d, were made (and copied again) for every block of
    rows, which took ``transform`` of 100k x 200k TF-IDF-like rows 50 times
    scikit-learn's time."""
    from xpkmeans._backend import _host

    X, _ = _blobs_sparse(n=200, seed=11)
    km = KMeans(4, n_init=1, random_state=0).fit(X)
    operands = []
    original = sparse_backend._products

    def recording_products(block, centers_t):
        operands.append(centers_t)
        return original(block, centers_t)

    monkeypatch.setattr(sparse_backend, "_products", recording_products)
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS",
                        2 * (X.shape[1] + 4) * (-(-X.shape[0] // n_blocks)))
    distances = km.transform(X)
    assert len(operands) == n_blocks
    assert all(operand is operands[0] for operand in operands)
    assert operands[0].flags.c_contiguous
    expected = np.sqrt(((X.toarray()[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(distances, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e8])
def test_tolerance_uses_the_column_variances_of_scikit_learn(compiled, offset):
    """Sparse X is not centred: its tolerance is ``tol`` times the mean of its
    column variances, computed as scikit-learn does (mean first, then the
    deviations); the sum of squares minus the squared sum had given 13 for
    columns of variance 1 around 1e8."""
    import array_api_compat.numpy as xnp
    from sklearn.utils.sparsefuncs import mean_variance_axis

    rng = np.random.default_rng(3)
    dense = offset + rng.normal(size=(500, 6))
    dense[rng.random(dense.shape) < 0.3] = 0.0  # stored zeros are left out
    X = sp.csr_matrix(dense)
    X.eliminate_zeros()
    expected = float(np.mean(mean_variance_axis(X, axis=0)[1]))
    result = sparse_backend.mean_column_variance(X, xp=xnp, accumulate=np.float64)
    np.testing.assert_allclose(result, expected, rtol=1e-12)
    np.testing.assert_allclose(result, np.mean(np.var(dense, axis=0)), rtol=1e-12)
    dense = offset + rng.normal(size=(500, 6))  # every value stored: no zeros at all
    X = sp.csr_matrix(dense)
    expected = float(np.mean(mean_variance_axis(X, axis=0)[1]))
    result = sparse_backend.mean_column_variance(X, xp=xnp, accumulate=np.float64)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


# ------------------------------------------------------------------ copies, layouts, memory


def _shuffled_within_rows(X, seed=0):
    """X with each row's stored values in a random column order (as ``A @ B``
    gives them): a valid CSR matrix with unsorted indices."""
    X = X.tocsr().copy()
    rng = np.random.default_rng(seed)
    for start, stop in zip(X.indptr[:-1], X.indptr[1:]):
        order = start + rng.permutation(stop - start)
        X.indices[start:stop], X.data[start:stop] = X.indices[order], X.data[order]
    X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape)  # flags not cached
    assert not X.has_sorted_indices
    return X


def _torch_csr(X, device="cpu", index_dtype=None):
    """The arrays of a SciPy CSR matrix as a torch CSR tensor, unchecked (as
    torch builds one when its invariant check is off: unsorted or repeated
    columns kept)."""
    torch = pytest.importorskip("torch")
    index = (lambda a: torch.as_tensor(a, device=device, dtype=index_dtype))
    return torch.sparse_csr_tensor(index(X.indptr), index(X.indices),
                                   torch.as_tensor(X.data, device=device), size=X.shape,
                                   check_invariants=False)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")  # CUDA
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_torch_csr_with_repeated_cells_adds_them(device, shuffled):
    """A torch CSR tensor with a column twice in a row (torch builds one when
    its invariant check is off) had been read as it is: wrong squared norms
    (inertia 218 for 605 here, 6754 for 9724 in the audit). Valid tensors are
    not copied."""
    torch = pytest.importorskip("torch")
    if device not in _torch_devices():
        pytest.skip("no CUDA device")
    X, _ = _blobs_sparse()
    split = _with_split_entries(X)
    if shuffled:
        split = _shuffled_within_rows(split)
    Xt = _torch_csr(split, device, index_dtype=torch.int32)
    stored = [t.clone() for t in (Xt.crow_indices(), Xt.col_indices(), Xt.values())]
    init = X[:4].toarray()
    ours = KMeans(4, init=torch.as_tensor(init, device=device), n_init=1).fit(Xt)
    reference = KMeans(4, init=init, n_init=1).fit(X)
    assert ours.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
    np.testing.assert_array_equal(ours.labels_.cpu().numpy(), reference.labels_)
    assert ours.score(Xt) == pytest.approx(reference.score(X), rel=1e-12)
    np.testing.assert_allclose(ours.transform(Xt).cpu().numpy(), reference.transform(X),
                               rtol=1e-12, atol=1e-12)
    labels = torch.as_tensor(reference.labels_, device=device)
    for score in (xpkmeans.silhouette_score, xpkmeans.calinski_harabasz_score,
                  xpkmeans.davies_bouldin_score):
        assert score(Xt, labels) == pytest.approx(score(X, reference.labels_), rel=1e-12)
    for before, after in zip(stored, (Xt.crow_indices(), Xt.col_indices(), Xt.values())):
        assert torch.equal(before, after)  # the input is not modified
    canonical = sparse_backend.as_csr(Xt)
    assert canonical.col_indices().dtype == torch.int32
    assert sparse_backend.as_csr(canonical) is canonical  # valid: no copy
    valid = _torch_csr(X, device)
    assert sparse_backend.as_csr(valid) is valid


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.parametrize("layout", ["bsr", "bsc"])
def test_torch_block_sparse_layouts_are_converted(layout):
    """torch's BSR and BSC tensors had failed with torch's own RuntimeError
    (``to_sparse_csr`` takes CSR and CSC only); they go through COO."""
    torch = pytest.importorskip("torch")
    X, _ = _blobs_sparse(n=60, d=40)
    dense = torch.as_tensor(X.toarray())
    blocks = dense.to_sparse_bsr((2, 4)) if layout == "bsr" else dense.to_sparse_bsc((2, 4))
    init = X[:4].toarray()
    ours = KMeans(4, init=torch.as_tensor(init), n_init=1).fit(blocks)
    reference = KMeans(4, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(ours.labels_.numpy(), reference.labels_)
    assert ours.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
    np.testing.assert_array_equal(ours.predict(blocks).numpy(), reference.labels_)


def test_unsorted_csr_is_read_as_it_is(compiled, monkeypatch):
    """The result of a product (unsorted indices, no repeats) had been copied
    and sorted by every fit, predict, transform and score: the compiled and
    SciPy passes read the values in any order."""
    X, _ = _blobs_sparse(seed=11)
    unsorted = _shuffled_within_rows(X)
    init = X[:4].toarray()
    reference = KMeans(4, init=init, n_init=1).fit(X)
    copies = []
    for method in ("copy", "sort_indices", "sorted_indices", "sum_duplicates", "tocsr"):
        original = getattr(sp.csr_matrix, method)
        monkeypatch.setattr(sp.csr_matrix, method, lambda self, *a, _o=original, _m=method, **k: (
            copies.append(_m) if self is unsorted else None) or _o(self, *a, **k))
    assert sparse_backend.as_csr(unsorted) is unsorted
    ours = KMeans(4, init=init, n_init=1).fit(unsorted)
    np.testing.assert_array_equal(ours.labels_, reference.labels_)
    assert ours.inertia_ == pytest.approx(reference.inertia_, rel=1e-12)
    np.testing.assert_array_equal(ours.predict(unsorted), reference.labels_)
    np.testing.assert_allclose(ours.transform(unsorted), reference.transform(X), rtol=1e-12)
    assert ours.score(unsorted) == pytest.approx(reference.score(X), rel=1e-12)
    assert copies == []
    assert not unsorted.has_sorted_indices  # the input is not modified


@pytest.mark.parametrize("block_nonzeros", [1 << 22, 50])  # one block; many (the repeat: last)
def test_repeats_in_unsorted_rows_are_found_and_added(compiled, block_nonzeros, monkeypatch):
    monkeypatch.setattr(sparse_backend, "_CHECKED_NONZEROS", block_nonzeros)
    X, _ = _blobs_sparse(seed=12)
    unsorted = _shuffled_within_rows(X)
    assert not sparse_backend._repeats_a_cell(unsorted)
    indices = unsorted.indices.copy()
    last = slice(unsorted.indptr[-2], unsorted.indptr[-1])  # the last row: a column twice
    indices[last][1] = indices[last][0]
    repeated = sp.csr_matrix((unsorted.data, indices, unsorted.indptr), shape=X.shape)
    assert sparse_backend._repeats_a_cell(repeated) and not repeated.has_sorted_indices
    canonical = sparse_backend.as_csr(repeated)
    assert canonical is not repeated and canonical.nnz == repeated.nnz - 1
    np.testing.assert_array_equal(canonical.toarray(), repeated.toarray())  # added
    init = X[:4].toarray()
    assert KMeans(4, init=init, n_init=1).fit(repeated).inertia_ == pytest.approx(
        KMeans(4, init=init, n_init=1).fit(canonical).inertia_, rel=1e-12)


def test_fit_holds_the_sums_and_at_most_four_more_centre_arrays(compiled):
    """Per k x d: the sums (one chunk of rows here: one set), the initial,
    current and new centres, and the transposed copy or a difference. The
    old sums, the previous centres (held by the last step) and the last
    start's centres had been held through the next pass as well: 7 x k x d
    for 5 promised on 2 cores (20k x 200k, k = 40)."""
    n, d, k = 2000, 40_000, 25  # k x d: 8 MB of float64; X: 0.2 MB
    rng = np.random.default_rng(0)
    X = sp.random(n, d, density=5 / d, random_state=rng, format="csr")
    unit = k * d * 8
    for n_init, bound in ((1, 5.5), (2, 6.5)):  # a second start: the best one's centres too
        model = KMeans(k, init="random", n_init=n_init, max_iter=3, tol=0, random_state=0)
        model.fit(X)  # compiled once
        tracemalloc.start()
        try:
            model.fit(X)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < bound * unit, f"n_init={n_init}: {peak / unit:.2f} x k x d"


def test_dask_array_of_sparse_chunks_is_refused_in_one_line():
    """It had failed inside a chunk's task: "ufunc 'isfinite' not supported"."""
    da = pytest.importorskip("dask.array")
    X, _ = _blobs_sparse(n=40)
    lazy = da.from_array(X, chunks=(20, X.shape[1]), asarray=False)
    fitted = KMeans(2, n_init=1, random_state=0).fit(X)
    message = r"^`X` is a Dask array of sparse chunks \(csr_matrix\), which is not supported"
    for call in (lambda: KMeans(2, n_init=1).fit(lazy), lambda: fitted.predict(lazy),
                 lambda: fitted.transform(lazy), lambda: fitted.score(lazy),
                 lambda: kmeans_plusplus(lazy, 2, random_state=0),
                 lambda: xpkmeans.calinski_harabasz_score(lazy, fitted.labels_)):
        with pytest.raises(TypeError, match=message) as error:
            call()
        assert "\n" not in str(error.value) and "X.compute()" in str(error.value)
