"""KMeans against scikit-learn, across backends, and on bad input."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

import xpkmeans
from xpkmeans import ConvergenceWarning, KMeans, MiniBatchKMeans, NotFittedError, k_means, kmeans_plusplus


def blobs(n=300, d=2, k=4, std=1.0, seed=0):
    X, _ = xpkmeans.make_blobs(n, d, centers=k, cluster_std=std, random_state=seed)
    return X


def random_rows(X, k, seed=0):
    return X[np.random.default_rng(seed).choice(X.shape[0], k, replace=False)]


# ------------------------------------------------------------------ scikit-learn parity

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=2
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("max_iter,tol", [(300, 1e-4), (300, 0.0), (2, 0.0)])
def test_same_init_same_result_as_sklearn(backend, dtype, max_iter, tol):
    X = blobs(400, 3, 5, std=2.5).astype(dtype)
    init = random_rows(X, 5)
    sk = SkKMeans(5, init=init, n_init=1, max_iter=max_iter, tol=tol).fit(X)

    km = KMeans(5, init=backend.asarray(init), max_iter=max_iter, tol=tol)
    km.fit(backend.asarray(X))

    np.testing.assert_array_equal(backend.to_numpy(km.labels_), sk.labels_)
    assert km.n_iter_ == sk.n_iter_
    rtol = TOLERANCE[dtype]
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=rtol)
    np.testing.assert_allclose(
        backend.to_numpy(km.cluster_centers_), sk.cluster_centers_, rtol=rtol, atol=rtol
    )


def test_same_init_with_sample_weight_as_sklearn(backend):
    X = blobs(300, 2, 4, std=2.0)
    weights = np.random.default_rng(3).uniform(0, 3, X.shape[0])
    init = random_rows(X, 4, seed=2)
    sk = SkKMeans(4, init=init, n_init=1).fit(X, sample_weight=weights)
    km = KMeans(4, init=backend.asarray(init)).fit(
        backend.asarray(X), sample_weight=backend.asarray(weights)
    )
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), sk.labels_)
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=1e-10)
    assert km.score(backend.asarray(X), sample_weight=backend.asarray(weights)) == (
        pytest.approx(sk.score(X, sample_weight=weights), rel=1e-10)
    )


def test_labels_are_int64_as_the_readme_says(backend):
    """Labels are int64 on every backend (scikit-learn's are int32; the
    README says so): the fit's, ``predict``'s, ``fit_predict``'s, ``k_means``'s."""
    X = backend.asarray(blobs(120, 2, 3))
    km = KMeans(3, random_state=0).fit(X)
    for labels in (km.labels_, km.predict(X), KMeans(3, random_state=0).fit_predict(X),
                   k_means(X, 3, random_state=0)[1]):
        backend.assert_here(labels, backend.xp.int64)
    assert SkKMeans(3, n_init=1).fit(backend.to_numpy(X)).labels_.dtype == np.int32


def test_empty_cluster_relocated_like_sklearn(backend):
    X = blobs(200, 2, 3)
    init = np.vstack([X[:2], [[500.0, 500.0]]])  # the third centre gets no point
    sk = SkKMeans(3, init=init, n_init=1).fit(X)
    km = KMeans(3, init=backend.asarray(init)).fit(backend.asarray(X))
    centers = backend.to_numpy(km.cluster_centers_)
    assert np.all(np.abs(centers) < 100), "the far centre was not relocated"
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), sk.labels_)
    np.testing.assert_allclose(centers, sk.cluster_centers_, rtol=1e-10)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_default_fit_reaches_sklearn_inertia(init):
    """Over several seeds, the mean inertia is as good as scikit-learn's."""
    X = blobs(1500, 5, 10, std=3.0, seed=7)
    ours = [KMeans(10, init=init, random_state=s).fit(X).inertia_ for s in range(6)]
    theirs = [SkKMeans(10, init=init, random_state=s).fit(X).inertia_ for s in range(6)]
    assert np.mean(ours) <= 1.01 * np.mean(theirs)


def test_k_means_function_matches_estimator():
    X = blobs()
    centers, labels, inertia, n_iter = k_means(X, 4, random_state=1, return_n_iter=True)
    km = KMeans(4, random_state=1).fit(X)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_array_equal(centers, km.cluster_centers_)
    assert (inertia, n_iter) == (km.inertia_, km.n_iter_)
    assert len(k_means(X, 4, random_state=1)) == 3


def test_n_init_keeps_lowest_inertia():
    X = blobs(300, 2, 4, std=1.5)
    good = KMeans(4, random_state=0).fit(X).cluster_centers_
    bad = np.vstack([X[:1] + 0.01 * i for i in range(4)])  # four centres in one spot
    starts = [bad, good, bad]
    calls = []

    def init(X_centered, n_clusters, random_state):
        calls.append(random_state)
        return starts[len(calls) - 1] - X.mean(axis=0)

    km = KMeans(4, init=init, n_init=3).fit(X)
    assert len(calls) == 3 and all(isinstance(r, np.random.RandomState) for r in calls)
    best = min(KMeans(4, init=s).fit(X).inertia_ for s in starts)
    assert km.inertia_ == pytest.approx(best, rel=1e-12)


# ------------------------------------------------------------------ backends


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_same_seed_same_clustering_on_every_backend(backend, init):
    X = blobs(500, 3, 6, std=2.0, seed=4)
    ref = KMeans(6, init=init, random_state=11).fit(X)
    km = KMeans(6, init=init, random_state=11).fit(backend.asarray(X))
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), ref.labels_)
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-10)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_stay_in_namespace_device_and_dtype(backend, dtype):
    X = backend.asarray(blobs().astype(dtype))
    km = KMeans(4, random_state=0).fit(X)
    backend.assert_here(km.cluster_centers_, X.dtype)
    backend.assert_here(km.labels_)
    assert backend.xp.isdtype(km.labels_.dtype, "integral")
    assert isinstance(km.inertia_, float) and isinstance(km.n_iter_, int)
    assert km.n_features_in_ == 2
    backend.assert_here(km.predict(X))
    backend.assert_here(km.transform(X), X.dtype)
    backend.assert_here(km.fit_predict(X))
    backend.assert_here(km.fit_transform(X), X.dtype)
    assert isinstance(km.score(X), float)


def test_integer_input_becomes_default_float(backend):
    X = backend.asarray(np.round(blobs()).astype(np.int64))
    km = KMeans(4, random_state=0).fit(X)
    default = backend.xp.__array_namespace_info__().default_dtypes(device=backend.device)
    assert km.cluster_centers_.dtype == default["real floating"]


def test_transform_is_distance_to_centers(backend):
    X = blobs()
    km = KMeans(4, random_state=0).fit(backend.asarray(X))
    centers = backend.to_numpy(km.cluster_centers_)
    expected = np.linalg.norm(X[:, None, :] - centers[None], axis=2)
    np.testing.assert_allclose(backend.to_numpy(km.transform(backend.asarray(X))), expected,
                               rtol=1e-7, atol=1e-7)


def test_float32_transform_is_accurate_near_the_centres(backend):
    """Distances by expansion lose everything to cancellation in float32 for
    points near a centre; as scikit-learn (which upcasts), they stay within
    float32's rounding of the exact distance."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(2000, 16)) + 100).astype(np.float32)
    km = KMeans(4, random_state=0).fit(backend.asarray(X))
    fitted = backend.to_numpy(km.cluster_centers_)
    near = fitted[0] + rng.normal(scale=1e-3, size=(50, 16)).astype(np.float32)
    near = np.vstack([near, fitted])  # and the centres themselves: distance 0
    exact = np.linalg.norm(near.astype(np.float64)[:, None] - fitted[None], axis=2)
    ours = backend.to_numpy(km.transform(backend.asarray(near)))
    assert ours.dtype == np.float32
    reference = SKLearnKMeans(4, init=fitted, n_init=1, max_iter=1).fit(X)
    reference.cluster_centers_ = fitted
    reference = reference.transform(near)
    for distances in (ours, reference):
        np.testing.assert_allclose(distances, exact, rtol=1e-5, atol=1e-5)


def test_predict_accepts_other_library():
    torch = pytest.importorskip("torch")
    X = blobs()
    km = KMeans(4, random_state=0).fit(torch.asarray(X))
    labels = km.predict(X)
    assert isinstance(labels, np.ndarray)
    np.testing.assert_array_equal(labels, km.labels_.numpy())


def test_predict_on_another_library_or_device_centres_as_the_fit():
    """Far from the origin, float32 labels need the fit's centring: predict
    on another library's array, or another device, must centre too."""
    torch = pytest.importorskip("torch")
    xps = pytest.importorskip("array_api_strict")
    X = (np.random.default_rng(0).normal(size=(2000, 4)) + 3e4).astype(np.float32)
    km = KMeans(8, random_state=0).fit(X)
    np.testing.assert_array_equal(km.predict(torch.asarray(X)).numpy(), km.labels_)
    assert km.score(torch.asarray(X)) == pytest.approx(km.score(X), rel=1e-6)
    other = KMeans(8, random_state=0).fit(xps.asarray(X, device=xps.Device("device1")))
    labels = other.predict(xps.asarray(X))
    assert labels.device == xps.asarray(X).device
    np.testing.assert_array_equal(np.asarray(labels), km.labels_)


def test_runs_on_the_2023_12_standard():
    """The oldest standard with ``__array_namespace_info__``: no Python
    scalars where 2024.12 first allows them (k-means++ had failed)."""
    xps = pytest.importorskip("array_api_strict")
    X = blobs()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    expected = KMeans(4, random_state=0).fit(X, sample_weight=weights)
    with xps.ArrayAPIStrictFlags(api_version="2023.12"):
        Xs = xps.asarray(X)
        for init in ("k-means++", "k-means||", "random"):
            KMeans(4, init=init, algorithm="elkan", random_state=0).fit(Xs)
        km = KMeans(4, random_state=0).fit(Xs, sample_weight=xps.asarray(weights))
        xpkmeans.MiniBatchKMeans(4, random_state=0).fit(Xs)
        score = xpkmeans.silhouette_score(Xs, km.labels_)
    np.testing.assert_array_equal(np.asarray(km.labels_), expected.labels_)
    assert float(score) == pytest.approx(float(xpkmeans.silhouette_score(X, expected.labels_)))


def test_runs_without_data_dependent_shapes():
    """A namespace may forbid ``nonzero`` and ``unique_*`` (array_api_strict's
    flag): the EM, inits, bounded algorithm (falling back with a warning) and
    metrics run, with the results of NumPy."""
    xps = pytest.importorskip("array_api_strict")
    X = blobs(3000)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    expected = KMeans(4, n_init=2, random_state=0).fit(X, sample_weight=weights)
    with xps.ArrayAPIStrictFlags(data_dependent_shapes=False):
        Xs = xps.asarray(X)
        for init in ("k-means++", "k-means||", "random"):
            KMeans(4, init=init, random_state=0).fit(Xs)
        with pytest.warns(xpkmeans.FallbackWarning, match="without data-dependent shapes"):
            elkan = KMeans(4, algorithm="elkan", random_state=0).fit(Xs)
        km = KMeans(4, n_init=2, random_state=0).fit(Xs, sample_weight=xps.asarray(weights))
        MiniBatchKMeans(4, random_state=0).fit(Xs)
        scores = [float(score(Xs, km.labels_)) for score in (
            xpkmeans.silhouette_score, xpkmeans.calinski_harabasz_score,
            xpkmeans.davies_bouldin_score)]
    np.testing.assert_array_equal(np.asarray(km.labels_), expected.labels_)
    np.testing.assert_array_equal(
        np.asarray(elkan.labels_), KMeans(4, random_state=0).fit(X).labels_)
    assert scores == pytest.approx([
        silhouette_score(X, expected.labels_), calinski_harabasz_score(X, expected.labels_),
        davies_bouldin_score(X, expected.labels_)])


def test_centres_set_by_hand_far_from_the_origin_predict_as_the_fit(backend):
    """They are centred on their own mean: raw float32 distances had
    mislabelled 1723 of 2000 points, and disagreed with transform."""
    X = (np.random.default_rng(0).normal(size=(2000, 4)) + 3e4).astype(np.float32)
    fitted = KMeans(8, random_state=0).fit(X)
    hand = KMeans(8)
    hand.cluster_centers_ = backend.asarray(fitted.cluster_centers_)
    Xb = backend.asarray(X)
    labels = backend.to_numpy(hand.predict(Xb))
    np.testing.assert_array_equal(labels, fitted.labels_)
    np.testing.assert_array_equal(labels, backend.to_numpy(hand.transform(Xb)).argmin(axis=1))


def test_inputs_are_not_modified(backend):
    X = blobs()
    weights = np.linspace(0.5, 2, X.shape[0])
    init = random_rows(X, 4)
    Xb, wb, ib = backend.asarray(X), backend.asarray(weights), backend.asarray(init)
    KMeans(4, init=ib).fit(Xb, sample_weight=wb)
    KMeans(4, random_state=0).fit(Xb, sample_weight=wb).predict(Xb)
    np.testing.assert_array_equal(backend.to_numpy(Xb), X)
    np.testing.assert_array_equal(backend.to_numpy(wb), weights)
    np.testing.assert_array_equal(backend.to_numpy(ib), init)


# ------------------------------------------------------------------ weights and degenerate data


def test_integer_weights_equal_repeated_samples(backend):
    X = blobs(120, 2, 3, std=2.0)
    weights = np.random.default_rng(0).integers(0, 4, X.shape[0])
    repeated = np.repeat(X, weights, axis=0)
    a = KMeans(3, random_state=5, tol=0).fit(backend.asarray(X),
                                               sample_weight=backend.asarray(weights))
    b = KMeans(3, random_state=5, tol=0).fit(backend.asarray(repeated))
    np.testing.assert_allclose(backend.to_numpy(a.cluster_centers_),
                               backend.to_numpy(b.cluster_centers_), rtol=1e-9)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)


def test_zero_weight_points_are_never_initial_centers(backend):
    X = blobs(200)
    weights = np.zeros(200)
    weights[::10] = 1.0
    for seed in range(3):
        _, indices = xpkmeans.kmeans_plusplus(backend.asarray(X), 5, random_state=seed,
                                              sample_weight=backend.asarray(weights))
        assert np.all(backend.to_numpy(indices) % 10 == 0)


def test_fewer_distinct_points_than_clusters_warns(backend):
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 0.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match="distinct clusters \\(3\\).*n_clusters \\(5\\)"):
        km = KMeans(5, random_state=0).fit(backend.asarray(X))
    centers = backend.to_numpy(km.cluster_centers_)
    assert centers.shape == (5, 2) and np.all(np.isfinite(centers))
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)


def test_all_identical_points(backend):
    X = np.ones((20, 3))
    with pytest.warns(ConvergenceWarning):
        km = KMeans(3, random_state=0).fit(backend.asarray(X))
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), np.ones((3, 3)))
    assert km.inertia_ == 0.0


def test_verbose_prints_iterations(capsys):
    KMeans(3, random_state=0, verbose=1).fit(blobs())
    out = capsys.readouterr().out
    assert "Initialization complete" in out and "Iteration 1, inertia" in out


# ------------------------------------------------------------------ bad input

X_OK = blobs(50)
with warnings.catch_warnings():  # np.matrix is pending deprecation
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    X_MATRIX = np.asmatrix(X_OK)

BAD_FIT = [
    ({"X": X_OK[:, :, None]}, ValueError, "2-D"),
    ({"X": X_OK[:, 0]}, ValueError, "2-D.*Reshape"),
    ({"X": np.empty((0, 2))}, ValueError, "0 sample"),
    ({"X": np.empty((10, 0))}, ValueError, "0 feature"),
    ({"X": np.where(np.eye(50, 2) > 0, np.nan, X_OK)}, ValueError, "NaN"),
    ({"X": np.where(np.eye(50, 2) > 0, np.inf, X_OK)}, ValueError, "inf"),
    ({"X": X_OK + 1j}, ValueError, "Complex"),
    ({"X": np.array([["a", "b"], ["c", "d"]])}, TypeError, "numeric"),
    ({"X": [["a", 1.0], [2.0, 3.0]]}, TypeError, "numeric"),
    ({"X": X_OK[:3], "n_clusters": 4}, ValueError, "n_samples=3 should be >= n_clusters=4"),
    ({"n_clusters": 0}, ValueError, "n_clusters"),
    ({"n_clusters": 2.5}, TypeError, "n_clusters"),
    ({"n_clusters": True}, TypeError, "n_clusters"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"max_iter": "10"}, TypeError, "max_iter"),
    ({"tol": -1.0}, ValueError, "tol"),
    ({"tol": float("nan")}, ValueError, "tol"),
    ({"tol": "small"}, TypeError, "tol"),
    ({"n_init": 0}, ValueError, "n_init"),
    ({"n_init": "many"}, ValueError, "n_init"),
    ({"X": X_MATRIX}, TypeError, "^`X` is an np.matrix"),
    ({"init": "kmeans||"}, ValueError, "Unknown init method 'kmeans\\|\\|'"),
    ({"init": None}, TypeError, "^`init` must be one of .* got None"),
    ({"init": 5}, TypeError, "^`init` must be one of .* got 5"),
    ({"init": np.zeros((3, 2))}, ValueError, "shape of the initial centers"),
    ({"init": np.zeros((4, 3))}, ValueError, "`init` has 3 features"),
    ({"init": np.full((4, 2), np.nan)}, ValueError, "`init` contains NaN"),
    ({"init": lambda X, k, random_state: X[: k - 1]}, ValueError, "shape of the initial"),
    ({"algorithm": "elkan2"}, ValueError, "algorithm"),
    ({"random_state": "x"}, TypeError, "random_state"),
    ({"sample_weight": -np.ones(50)}, ValueError, "sample_weight.*non-negative"),
    ({"sample_weight": np.ones(49)}, ValueError, "sample_weight.*shape \\(50,\\)"),
    ({"sample_weight": np.ones((50, 1))}, ValueError, "sample_weight.*shape"),
    ({"sample_weight": np.zeros(50)}, ValueError, "sample_weight.*positive"),
    ({"sample_weight": np.full(50, np.nan)}, ValueError, "sample_weight.*NaN"),
]


@pytest.mark.parametrize("args,error,match", BAD_FIT, ids=[m for _, _, m in BAD_FIT])
def test_bad_fit_input_raises(args, error, match):
    args = dict(args)
    X = args.pop("X", X_OK)
    sample_weight = args.pop("sample_weight", None)
    args.setdefault("n_clusters", 4)
    with pytest.raises(error, match=match):
        KMeans(**args).fit(X, sample_weight=sample_weight)


def test_bad_input_on_each_backend(backend):
    X = backend.asarray(X_OK)
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(backend.asarray(np.where(np.eye(50, 2) > 0, np.nan, X_OK)))
    with pytest.raises(ValueError, match="2-D"):
        KMeans(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="shape"):
        KMeans(2).fit(X, sample_weight=backend.asarray(np.ones(3)))


def test_callable_init_written_for_scikit_learn_runs_and_is_seeded():
    """It gets a RandomState, as in scikit-learn (``randint``, and scikit-learn's
    own functions, which refuse a Generator), drawing from the fit's stream."""
    from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

    X = blobs(200)
    for init in (lambda X, k, random_state: X[random_state.randint(0, len(X), k)],
                 lambda X, k, random_state: sk_kmeans_plusplus(X, k, random_state=random_state)[0]):
        first = KMeans(3, init=init, n_init=2, random_state=0).fit(X)
        again = KMeans(3, init=init, n_init=2, random_state=0).fit(X)
        np.testing.assert_array_equal(first.cluster_centers_, again.cluster_centers_)


def test_test_data_of_another_float_dtype_is_not_rounded_to_the_model():
    """float64 X on a float32 model: distances in float64 (scikit-learn's), on
    X itself; the float32 model had rounded X and returned float32."""
    X = blobs(300).astype(np.float32)
    km = KMeans(3, random_state=0).fit(X)
    X64 = X.astype(np.float64) + 1e-4
    exact = np.sqrt(((X64[:, None, :] - km.cluster_centers_.astype(np.float64)) ** 2).sum(axis=2))
    distances = km.transform(X64)
    assert distances.dtype == np.float64
    np.testing.assert_allclose(distances, exact, rtol=1e-9, atol=1e-5)
    assert km.transform(X).dtype == np.float32
    fitted64 = KMeans(3, random_state=0).fit(X.astype(np.float64))
    assert fitted64.transform(X).dtype == np.float32  # float32 in, float32 out
    np.testing.assert_array_equal(km.predict(X64), np.argmin(exact, axis=1))


def test_missing_values_of_nullable_columns_are_named_as_nan():
    pd = pytest.importorskip("pandas")
    for dtype in ("Float64", "Int64"):
        frame = pd.DataFrame({"a": [1, 2, None, 4], "b": [1, 2, 3, 4]}, dtype=dtype)
        with pytest.raises(ValueError, match="^`X` contains NaN"):
            KMeans(2).fit(frame)


def test_masked_arrays_are_read_as_scikit_learn_reads_them():
    """Nothing masked: its values, as scikit-learn reads them (NumPy's masked
    products had failed on a shape mismatch); masked values: refused by name."""
    init = random_rows(X_OK, 3)
    masked = np.ma.masked_array(X_OK)
    km = KMeans(3, init=np.ma.masked_array(init)).fit(masked, sample_weight=np.ma.ones(50))
    sk = SkKMeans(3, init=init, n_init=1).fit(masked)
    np.testing.assert_array_equal(km.labels_, sk.labels_)
    np.testing.assert_allclose(km.cluster_centers_, sk.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(km.predict(masked), sk.predict(X_OK))
    assert km.score(masked) == pytest.approx(sk.score(X_OK), rel=1e-10)
    assert MiniBatchKMeans(3, random_state=0).fit(masked).cluster_centers_.shape == (3, 2)
    hidden = np.ma.masked_array(X_OK, mask=np.eye(50, 2, dtype=bool))
    for call in (KMeans(3).fit, km.predict, lambda X: kmeans_plusplus(X, 3)):
        with pytest.raises(ValueError, match="^`X` is a masked array with masked values"):
            call(hidden)


def test_tensors_without_values_are_refused_by_name():
    torch = pytest.importorskip("torch")
    X = torch.empty((50, 2), device="meta")
    for call in (KMeans(2).fit, MiniBatchKMeans(2).fit, lambda X: kmeans_plusplus(X, 2)):
        with pytest.raises(ValueError, match="^`X` is on the 'meta' device"):
            call(X)


def test_explicit_init_with_n_init_warns():
    with pytest.warns(RuntimeWarning, match="only one init"):
        km = KMeans(4, init=random_rows(X_OK, 4), n_init=5).fit(X_OK)
    assert km.n_iter_ >= 1


def test_sparse_centres_are_rejected_clearly():
    # sparse data is accepted (tests/test_sparse.py); centres must be dense
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="`init` is a sparse matrix"):
        KMeans(2, init=sparse.csr_matrix(X_OK[:2]), n_init=1).fit(X_OK)


def test_predict_before_fit_and_wrong_features():
    with pytest.raises(NotFittedError, match="not fitted"):
        KMeans(2).predict(X_OK)
    km = KMeans(2, random_state=0).fit(X_OK)
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 2"):
        km.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        km.predict(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="sample_weight"):
        km.predict(X_OK, sample_weight=np.ones(3))


@pytest.mark.parametrize("dtype,value", [("float64", 1e200), ("float32", 1e20)])
def test_values_whose_squares_overflow_are_rejected(backend, dtype, value):
    X = np.array([[value], [2 * value], [-value], [5.0]], dtype=dtype)
    with pytest.raises(ValueError, match="too large"):
        KMeans(2).fit(backend.asarray(X))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
def test_overflow_is_an_error_in_every_entry_point(backend):
    """MiniBatchKMeans (fit, partial_fit) and score had returned inf."""
    base = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0]], dtype=np.float32)
    huge = backend.asarray(base * np.float32(1e19))
    with pytest.raises(ValueError, match="^`X` has values too large for"):
        xpkmeans.MiniBatchKMeans(2, random_state=0).fit(huge)
    with pytest.raises(ValueError, match="^`X` has values too large for"):
        xpkmeans.MiniBatchKMeans(2, random_state=0).partial_fit(huge)
    km = KMeans(2, random_state=0).fit(backend.asarray(base))
    with pytest.raises(ValueError, match="^`X` has values too large for"):
        km.score(huge)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(("weights", "error", "message"), [
    (["a"] * 60, TypeError, "^`sample_weight` must be real numbers"),
    ([[1]] * 59 + [[1, 2]], TypeError, "^`sample_weight` could not be converted"),
    (np.full(60, 1e39), ValueError, "^`sample_weight` has values too large for"),
    (np.full(60, 1e-50), ValueError, "^`sample_weight` must have at least one positive value; "
                                     "all are zero in"),
])
def test_sample_weight_errors_name_it_on_every_backend(backend, weights, error, message):
    """Checked in the weights' own library before they take X's: strings had
    failed inside torch's conversion, and float64 weights that float32
    cannot hold had been reported as NaN or all zero."""
    X = backend.asarray(np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32))
    with pytest.raises(error, match=message):
        KMeans(3, n_init=1).fit(X, sample_weight=weights)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_large_weights_give_finite_fits_or_a_named_error(backend):
    """Weights times float32 distances had overflowed to an infinite inertia
    (weights of 1e37); weights whose total overflows the widest float had
    made NaN sums, then an IndexError (NumPy) or NaN centres."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(300, 3)) * 10).astype(np.float32)
    X[:100] += 50
    init = X[[0, 150, 299]]
    unweighted = KMeans(3, init=init, n_init=1).fit(X)
    weights = np.full(300, 1e37, np.float32)
    weighted = KMeans(3, init=init, n_init=1).fit(backend.asarray(X), sample_weight=weights)
    assert weighted.inertia_ == pytest.approx(unweighted.inertia_ * 1e37, rel=1e-5)
    assert np.isfinite(xpkmeans.MiniBatchKMeans(3, init=init, n_init=1, random_state=0).fit(
        backend.asarray(X), sample_weight=weights).inertia_)
    with pytest.raises(ValueError, match="^`sample_weight` sums to more than a float"):
        KMeans(3, init=init.astype(np.float64), n_init=1).fit(
            backend.asarray(X.astype(np.float64)), sample_weight=np.full(300, 1e306))


def test_a_scalar_weight_is_taken_in_the_widest_float():
    """Not in torch's default float32: 1e39 had overflowed on float64 X."""
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(0).normal(size=(30, 2))
    for weight in (1e39, 0.1, 1e-50):
        ours = KMeans(2, random_state=0, n_init=1).fit(torch.asarray(X), sample_weight=weight)
        expected = KMeans(2, random_state=0, n_init=1).fit(X, sample_weight=weight)
        assert ours.inertia_ == pytest.approx(expected.inertia_, rel=1e-12)


def test_type_errors_are_also_value_errors():
    """Like scikit-learn's InvalidParameterError, so either except clause works."""
    for bad in ({"n_clusters": 2.5}, {"max_iter": "10"}, {"tol": "small"}):
        with pytest.raises(ValueError):
            KMeans(**bad).fit(X_OK)
        with pytest.raises(TypeError):
            KMeans(**bad).fit(X_OK)


# ------------------------------------------------------------------ fitted state, parameters, progress


def test_predict_transform_score_on_centres_set_by_hand(backend):
    X, _ = xpkmeans.make_blobs(200, 3, centers=4, random_state=1)
    centers = X[:4] + 0.5
    squared = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)  # the definition
    km = KMeans(4)
    km.cluster_centers_ = backend.asarray(centers)
    Xb = backend.asarray(X)
    labels = km.predict(Xb)
    backend.assert_here(labels)
    np.testing.assert_array_equal(backend.to_numpy(labels), squared.argmin(axis=1))
    np.testing.assert_allclose(backend.to_numpy(km.transform(Xb)), np.sqrt(squared),
                               rtol=1e-6, atol=1e-9)
    assert km.score(Xb) == pytest.approx(-squared.min(axis=1).sum(), rel=1e-9)


def test_centres_set_by_hand_are_checked_as_init_is(backend):
    """NaN centres had given NaN distances and arbitrary labels, a list an
    AttributeError, 1-D centres an IndexError."""
    X = backend.asarray(X_OK)
    km = KMeans(2)
    km.cluster_centers_ = backend.asarray(np.full((2, 2), np.nan))
    for call in (km.predict, km.transform, km.score):
        with pytest.raises(ValueError, match="^`cluster_centers_` contains NaN"):
            call(X)
    km.cluster_centers_ = backend.asarray(X_OK[0])
    for call in (km.predict, km.transform, km.score):
        with pytest.raises(ValueError, match=r"^`cluster_centers_` must be a 2-D array.*\(2,\)"):
            call(X)
    km.cluster_centers_ = X_OK[:2].tolist()  # nested lists, as scikit-learn takes them
    backend.assert_here(km.predict(X))
    gap = np.linalg.norm(X_OK[0] - X_OK[1])
    np.testing.assert_allclose(backend.to_numpy(km.transform(X))[:2], [[0, gap], [gap, 0]],
                               atol=1e-9)


def test_centres_set_by_hand_after_a_fit_are_used():
    X, _ = xpkmeans.make_blobs(200, 2, centers=3, random_state=2)
    km = KMeans(3, random_state=0).fit(X)
    km.cluster_centers_ = km.cluster_centers_[::-1].copy()  # same centres, renamed
    np.testing.assert_array_equal(km.predict(X), 2 - km.labels_)


def test_predict_equals_labels_after_pickling():
    import pickle

    X, _ = xpkmeans.make_blobs(500, 5, centers=6, cluster_std=3.0, random_state=3)
    km = pickle.loads(pickle.dumps(KMeans(6, random_state=0).fit(X)))
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_allclose(km.mean_, X.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("name,value,error", [
    ("verbose", -1, ValueError), ("verbose", "yes", TypeError),
    ("copy_x", "no", TypeError), ("copy_x", 1, TypeError),
    ("algorithm", "full", ValueError), ("n_init", "many", ValueError),
    ("callback", 3, TypeError), ("random_state", -2, ValueError),
])
def test_every_parameter_is_validated(name, value, error):
    X, _ = xpkmeans.make_blobs(50, 2, centers=2, random_state=0)
    with pytest.raises(error, match=f"`{name}`"):
        KMeans(2, **{name: value}).fit(X)


def test_numpy_booleans_are_booleans_not_numbers():
    X, _ = xpkmeans.make_blobs(50, 2, centers=2, random_state=0)
    km = KMeans(2, copy_x=np.bool_(False), verbose=np.bool_(False), random_state=0).fit(X)
    assert km.cluster_centers_.shape == (2, 2)
    with pytest.raises(TypeError, match="^`n_clusters` must be an int"):
        KMeans(np.bool_(True)).fit(X)
    with pytest.raises(ValueError, match="^`reassignment_ratio` must be a finite number"):
        xpkmeans.MiniBatchKMeans(2, reassignment_ratio=np.bool_(True)).fit(X)


def test_max_iter_without_convergence_warns():
    X, _ = xpkmeans.make_blobs(500, 2, centers=5, cluster_std=4.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge.*max_iter=1"):
        KMeans(5, max_iter=1, tol=0, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(5, random_state=0).fit(X)  # converges: no warning


def test_callback_sees_every_iteration_of_every_start():
    X, _ = xpkmeans.make_blobs(400, 2, centers=4, cluster_std=2.0, random_state=0)
    seen = []
    km = KMeans(4, init="random", n_init=3, random_state=0, callback=seen.append).fit(X)
    assert [p.start for p in seen if p.last] == [0, 1, 2]
    for start in range(3):
        iterations = [p.iteration for p in seen if p.start == start]
        assert iterations == list(range(1, len(iterations) + 1))
    assert all(p.n_init == 3 and p.max_iter == 300 and p.tol > 0 for p in seen)
    assert all(p.converged for p in seen if p.last)
    assert [p.elapsed for p in seen] == sorted(p.elapsed for p in seen)
    last_of_best = [p for p in seen if p.last and p.iteration == km.n_iter_]
    assert any(p.inertia() == pytest.approx(km.inertia_, rel=1e-9) for p in last_of_best)


def test_package_exports_import_lazily_and_completely():
    import subprocess
    import sys

    import xpkmeans as package

    assert sorted(package.__all__) == sorted(package._EXPORTS)
    for name in package.__all__:
        assert getattr(package, name) is not None
    code = "import sys, xpkmeans; print('xpkmeans._kmeans' in sys.modules, 'numpy' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=str(__import__("pathlib").Path(package.__file__).parents[1]))
    assert shown.stdout.split() == ["False", "False"], shown.stderr


def test_tensors_that_require_grad_are_fitted_outside_autograd():
    """No graph is recorded through the fit (it would keep every temporary),
    nothing warns, and the results equal those of the same tensor without grad."""
    torch = pytest.importorskip("torch")
    X, _ = xpkmeans.make_blobs(400, 3, centers=4, random_state=0)
    plain = torch.as_tensor(X, dtype=torch.float32)
    tracked = plain.clone().requires_grad_(True)
    weights = torch.rand(400, dtype=torch.float32).requires_grad_(True)
    km = xpkmeans.KMeans(4, init=tracked[:4], n_init=1).fit(tracked, sample_weight=weights)
    km_ref = xpkmeans.KMeans(4, init=plain[:4], n_init=1).fit(plain, sample_weight=weights.detach())
    for result in (km.cluster_centers_, km.labels_, km.transform(tracked), km.predict(tracked)):
        assert not result.requires_grad and result.grad_fn is None
    assert torch.equal(km.cluster_centers_, km_ref.cluster_centers_)
    assert torch.equal(km.labels_, km_ref.labels_)
    assert tracked.requires_grad and tracked.grad is None and torch.equal(tracked.detach(), plain)
    mbk = xpkmeans.MiniBatchKMeans(4, random_state=0).fit(tracked)
    assert not mbk.cluster_centers_.requires_grad


def test_tensors_with_a_negation_bit_are_read_as_their_values():
    """``z.conj().imag`` is a view with torch's negation bit: reading its
    memory as NumPy does had failed ("Can't call numpy() on Tensor that has
    negative bit set")."""
    torch = pytest.importorskip("torch")
    X, _ = xpkmeans.make_blobs(200, 3, centers=4, random_state=0)
    plain = torch.as_tensor(X)
    negated = torch.complex(torch.zeros_like(plain), -plain).conj().imag  # plain's values
    assert negated.is_neg() and torch.equal(negated, plain)
    ones = torch.ones(200, dtype=torch.float64)
    weights = torch.complex(torch.zeros_like(ones), -ones).conj().imag
    km = KMeans(4, random_state=0).fit(negated, sample_weight=weights)
    km_ref = KMeans(4, random_state=0).fit(plain)
    assert torch.equal(km.labels_, km_ref.labels_)
    assert torch.equal(km.predict(negated), km_ref.labels_)
    assert torch.equal(kmeans_plusplus(negated, 4, random_state=0)[1],
                       kmeans_plusplus(plain, 4, random_state=0)[1])
    assert xpkmeans.silhouette_score(negated, km.labels_) == pytest.approx(
        xpkmeans.silhouette_score(plain, km.labels_), rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_floats_of_the_other_byte_order_keep_their_precision(dtype):
    """Big-endian float32 ('>f4', as read from some files) had been fitted
    and returned as float64."""
    X = blobs().astype(dtype)
    swapped = X.astype(np.dtype(dtype).newbyteorder(">" if np.little_endian else "<"))
    init = X[:4]
    km = KMeans(4, init=init, n_init=1).fit(swapped)
    km_ref = KMeans(4, init=init, n_init=1).fit(X)
    assert km.cluster_centers_.dtype == np.dtype(dtype) and km.cluster_centers_.dtype.isnative
    np.testing.assert_array_equal(km.cluster_centers_, km_ref.cluster_centers_)
    assert km.transform(swapped).dtype == np.dtype(dtype)
    assert kmeans_plusplus(swapped, 4, random_state=0)[0].dtype == np.dtype(dtype)
    assert MiniBatchKMeans(4, random_state=0).fit(swapped).cluster_centers_.dtype == np.dtype(dtype)
    assert xpkmeans.silhouette_samples(swapped, km.labels_).dtype == np.dtype(dtype)
    streamed = KMeans(4, init=init, n_init=1).fit(xpkmeans.RowBlocks(swapped))
    assert streamed.cluster_centers_.dtype == np.dtype(dtype)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
def test_weighted_inertia_that_overflows_is_an_error(backend):
    """Weights times squared distances beyond the largest float had left
    ``inertia_ = inf`` (and the first of n_init starts, whatever its
    clustering); ``score`` of the same data raised."""
    X = blobs(k=3).astype(np.float64) * 1e150
    weights = backend.asarray(np.full(X.shape[0], 1e10))
    with pytest.raises(ValueError, match=r"^The inertia .*`sample_weight`.* overflows"):
        KMeans(3, random_state=0, n_init=2).fit(backend.asarray(X), sample_weight=weights)
    with pytest.raises(ValueError, match=r"^The inertia .*`sample_weight`.* overflows"):
        MiniBatchKMeans(3, random_state=0).fit(backend.asarray(X), sample_weight=weights)
    scaled = KMeans(3, random_state=0).fit(backend.asarray(X), sample_weight=weights / 1e10)
    assert np.isfinite(scaled.inertia_)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_sparse_tensors_that_require_grad_are_fitted_outside_autograd(layout):
    torch = pytest.importorskip("torch")
    X, _ = xpkmeans.make_blobs(300, 5, centers=3, random_state=0)
    dense = torch.as_tensor(X, dtype=torch.float32)
    tracked = (dense.to_sparse_csr() if layout == "csr" else dense.to_sparse()).requires_grad_()
    km = xpkmeans.KMeans(3, random_state=0).fit(tracked)
    results = [km.cluster_centers_, km.transform(tracked),
               xpkmeans.kmeans_plusplus(tracked, 3, random_state=0)[0],
               xpkmeans.MiniBatchKMeans(3, random_state=0).fit(tracked).cluster_centers_,
               xpkmeans.silhouette_samples(tracked, km.labels_),
               xpkmeans.e_step(tracked, km.cluster_centers_)[1]]
    for result in results:
        assert not result.requires_grad and result.grad_fn is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
def test_overflow_is_an_error_in_the_step_functions_and_kmeans_plusplus(backend):
    """e_step had returned an infinite inertia and all points in one cluster,
    lloyd_steps an infinite inertia, kmeans_plusplus other rows than on the
    same data scaled down (the squared distances overflowed)."""
    base = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0]], dtype=np.float32)
    huge = backend.asarray(base * np.float32(1e19))
    centers = backend.asarray(base[[0, 2]] * np.float32(1e19))
    with pytest.raises(ValueError, match="^`X` has values too large for"):
        xpkmeans.e_step(huge, centers)
    with pytest.raises(ValueError, match="^`X` has values too large for"):
        xpkmeans.lloyd_steps(huge, centers)
    with pytest.raises(ValueError, match="^`X` has values too large for"):
        xpkmeans.kmeans_plusplus(huge, 2, random_state=0)


@pytest.mark.parametrize("data_dependent_shapes", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_host_copy_per_em_iteration(data_dependent_shapes, weighted, monkeypatch):
    """Each EM iteration reads the device once (``_summarise``). Counted on
    array_api_strict, whose arrays array_api_compat's ``is_lazy_array`` probes
    by reading a value: asked on every iteration, it had made 2 host copies
    per iteration (3 with data-dependent shapes)."""
    xps = pytest.importorskip("array_api_strict")
    array_type = type(xps.asarray(0.0))
    reads = []

    def counting(name):
        original = getattr(array_type, name)

        def read(self, *args, **kwargs):
            reads.append(name)
            return original(self, *args, **kwargs)
        return read

    for name in ("__bool__", "__float__", "__int__", "__index__", "__complex__",
                 "__array__", "__dlpack__", "to_device"):
        monkeypatch.setattr(array_type, name, counting(name))
    X = blobs(600)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    marks = []  # host reads so far, after each iteration

    with xps.ArrayAPIStrictFlags(data_dependent_shapes=data_dependent_shapes):
        Xs = xps.asarray(X)
        ws = None if weights is None else xps.asarray(weights)
        km = KMeans(4, init=xps.asarray(X[:4]), tol=0, max_iter=50,
                    callback=lambda progress: marks.append(len(reads))).fit(Xs, sample_weight=ws)
    assert km.n_iter_ >= 3
    per_iteration = [later - earlier for earlier, later in zip(marks, marks[1:])]
    assert per_iteration == [1] * (km.n_iter_ - 1)


def _fits_with_equal_and_no_weights(make_input, to_numpy):
    X = xpkmeans.make_blobs(300, 3, centers=6, random_state=0)[0].astype(np.float32)
    params = dict(n_clusters=6, init="random", n_init=1, max_iter=1, random_state=0)
    reference = KMeans(**params).fit(X)
    fit = KMeans(**params).fit(make_input(X), sample_weight=np.full(300, 2.5, np.float32))
    np.testing.assert_allclose(to_numpy(fit.cluster_centers_), reference.cluster_centers_,
                               rtol=1e-5, atol=1e-5)
    assert fit.inertia_ == pytest.approx(2.5 * reference.inertia_, rel=1e-5)


@pytest.mark.filterwarnings("ignore:KMeans did not converge")  # max_iter=1: the init shows
def test_equal_weights_fit_as_no_weights(backend):
    """scikit-learn's None is ones: the same seed gives the same fit with
    either (init='random' had drawn other rows given equal weights)."""
    _fits_with_equal_and_no_weights(backend.asarray, backend.to_numpy)


@pytest.mark.filterwarnings("ignore:KMeans did not converge")
def test_equal_weights_fit_as_no_weights_on_dask_and_row_blocks(lazy_backend):
    _fits_with_equal_and_no_weights(lazy_backend.asarray, lazy_backend.to_numpy)
    _fits_with_equal_and_no_weights(xpkmeans.RowBlocks, np.asarray)
