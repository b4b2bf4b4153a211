"""xpkmeans.KMeans is a real scikit-learn estimator when scikit-learn is installed."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import xpkmeans  # noqa: E402
from xpkmeans import KMeans  # noqa: E402

X, y = xpkmeans.make_blobs(300, 3, centers=4, random_state=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # duplicate points
@pytest.mark.filterwarnings("ignore::xpkmeans.FallbackWarning")  # hamerly on sparse data: Lloyd
@pytest.mark.parametrize("estimator", [
    KMeans(algorithm="lloyd"), KMeans(algorithm="hamerly"), xpkmeans.MiniBatchKMeans()],
    ids=["lloyd", "hamerly", "minibatch"])
def test_check_estimator_passes(estimator):
    expected_failures = {
        # As for scikit-learn's own KMeans: the check shuffles the weighted
        # data, so the random initialisation differs from the repeated data.
        "check_sample_weight_equivalence_on_dense_data": "random init depends on sample order",
        "check_sample_weight_equivalence_on_sparse_data": "random init depends on sample order",
    }
    results = check_estimator(estimator, on_fail=None, on_skip=None,
                              expected_failed_checks=expected_failures)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 40


def test_clone_and_params():
    km = KMeans(5, init="random", n_init=3, random_state=2)
    copy = clone(km)
    assert copy is not km and copy.get_params() == km.get_params()
    copy.set_params(n_clusters=7)
    assert copy.n_clusters == 7 and km.n_clusters == 5
    with pytest.raises(ValueError):
        km.set_params(not_a_param=1)
    assert "n_clusters=5" in repr(km)


def test_pipeline_and_grid_search():
    pipe = make_pipeline(StandardScaler(), KMeans(random_state=0))
    labels = pipe.fit_predict(X)
    assert labels.shape == (300,) and len(np.unique(labels)) == 8
    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [2, 4, 8]}, cv=3).fit(X)
    # score is the negative inertia, so more clusters always score higher
    assert search.best_params_ == {"n_clusters": 8}
    assert search.best_estimator_.cluster_centers_.shape == (8, 3)


def test_feature_names_out():
    from sklearn.cluster import KMeans as SKLearnKMeans

    pd = pytest.importorskip("pandas")
    for data in (X, pd.DataFrame(X, columns=["a", "b", "c"])):
        ours, reference = KMeans(3, random_state=0).fit(data), SKLearnKMeans(3).fit(data)
        assert list(ours.get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]
        names = ["a", "b", "c"]
        assert list(ours.get_feature_names_out(names)) == list(
            reference.get_feature_names_out(names))
        for wrong in (["a", "b"], ["a", "b", "c", "d"], ["c", "b", "a"]):
            if wrong == ["c", "b", "a"] and data is X:
                continue  # any three names go without names at fit
            with pytest.raises(ValueError, match="input_features"):
                reference.get_feature_names_out(wrong)
            with pytest.raises(ValueError, match="input_features"):
                ours.get_feature_names_out(wrong)


@pytest.mark.parametrize("Estimator", ["KMeans", "MiniBatchKMeans"])
def test_feature_names_follow_scikit_learn(Estimator):
    """Column names of a data frame: kept at fit, checked at predict, as scikit-learn does."""
    import warnings

    import sklearn.cluster

    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    ours = getattr(xpkmeans, Estimator)(4, random_state=0).fit(frame)
    theirs = getattr(sklearn.cluster, Estimator)(4, random_state=0).fit(frame)
    np.testing.assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    assert ours.feature_names_in_.dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours.predict(frame)
        ours.transform(frame)
    for model in (ours, theirs):  # names at fit, none now: a warning
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            model.predict(X)
    for model in (ours, theirs):  # other names, or another order: an error
        with pytest.raises(ValueError, match="feature names"):
            model.predict(frame[["b", "a", "c"]])
    unnamed = getattr(xpkmeans, Estimator)(4, random_state=0).fit(X)
    assert not hasattr(unnamed, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but .* without feature names"):
        unnamed.score(frame)
    ours.fit(X)  # a refit without names forgets them
    assert not hasattr(ours, "feature_names_in_")
    assert not hasattr(getattr(xpkmeans, Estimator)(4).fit(pd.DataFrame(X)), "feature_names_in_")
    # names that are not str (NumPy's): none kept, as scikit-learn
    numpy_names = pd.DataFrame(X, columns=pd.Index([np.str_(name) for name in "abc"], dtype=object))
    for model in (getattr(xpkmeans, Estimator)(4, random_state=0),
                  getattr(sklearn.cluster, Estimator)(4, random_state=0)):
        assert not hasattr(model.fit(numpy_names), "feature_names_in_")


def test_mixed_column_names_are_refused_before_fitting():
    pd = pytest.importorskip("pandas")
    km = KMeans(3)
    with pytest.raises(TypeError, match="string names.*column name types"):
        km.fit(pd.DataFrame(X, columns=["a", 1, "c"]))
    assert not hasattr(km, "cluster_centers_")


def test_partial_fit_keeps_the_first_batchs_names():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    mbk = xpkmeans.MiniBatchKMeans(4, random_state=0).partial_fit(frame[:100])
    mbk.partial_fit(frame[100:])
    assert list(mbk.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        mbk.partial_fit(frame[["c", "b", "a"]])


def test_no_random_state_follows_numpy_global_seed():
    """As scikit-learn's ``check_random_state(None)``: ``np.random.seed`` makes
    fits reproducible, and each draw advances the global state."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    X = np.random.default_rng(0).normal(size=(300, 4))
    fits = []
    for estimator in (SKLearnKMeans, xpkmeans.KMeans):
        runs = []
        for _ in range(2):
            np.random.seed(0)
            runs.append(estimator(8, init="random", n_init=1).fit(X).cluster_centers_)
        runs.append(estimator(8, init="random", n_init=1).fit(X).cluster_centers_)
        fits.append(runs)
    for first, again, unseeded in fits:  # ours behaves as scikit-learn's
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, unseeded)


def test_checking_random_state_draws_nothing():
    """Only the fit draws its seed (one draw), as scikit-learn's
    ``check_random_state``: checking the parameters leaves any state alone."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    legacy = np.random.RandomState(3)
    for random_state in (None, legacy):
        for estimator in (SKLearnKMeans, KMeans):
            np.random.seed(0)
            before = (np.random.get_state()[2], legacy.get_state()[2])
            with pytest.raises(ValueError):  # the checks pass; X is then refused
                estimator(2, random_state=random_state).fit(np.zeros((1, 2)))
            after = (np.random.get_state()[2], legacy.get_state()[2])
            assert before == after, (estimator, random_state)


@pytest.mark.parametrize("Estimator", ["KMeans", "MiniBatchKMeans"])
def test_metadata_routing_requests_as_scikit_learn(Estimator):
    """``predict`` ignores its ``sample_weight`` (scikit-learn's has none), so
    routing requests none: with fit's requested, ``fit_predict`` in a pipeline
    routes the weights to the fit, as scikit-learn's does (the composed
    request of fit and predict had conflicted)."""
    import sklearn.cluster

    weights = np.random.default_rng(0).uniform(0.1, 2.0, X.shape[0])
    with sklearn.config_context(enable_metadata_routing=True):
        ours = getattr(xpkmeans, Estimator)(4, random_state=0)
        theirs = getattr(sklearn.cluster, Estimator)(4, random_state=0)
        assert not hasattr(ours, "set_predict_request")
        for model in (ours, theirs):
            model.set_fit_request(sample_weight=True)
        assert str(ours.get_metadata_routing()) == str(theirs.get_metadata_routing())
        labels = make_pipeline(ours).fit_predict(X, sample_weight=weights)
    expected = getattr(xpkmeans, Estimator)(4, random_state=0).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(labels, expected.labels_)


@pytest.mark.parametrize("Estimator", ["KMeans", "MiniBatchKMeans"])
def test_tags_say_transform_keeps_the_float_dtype(Estimator):
    """``transform`` answers in X's dtype, float32 or float64, and the tags say
    so (ClusterMixin's tags, first in the bases, had said no dtype is kept)."""
    from sklearn.utils import get_tags

    model = getattr(xpkmeans, Estimator)(4, random_state=0)
    assert get_tags(model).transformer_tags.preserves_dtype == ["float64", "float32"]
    for dtype in (np.float64, np.float32):
        data = np.asarray(X, dtype=dtype)
        assert model.fit(data).transform(data).dtype == dtype
        assert model.fit_transform(data).dtype == dtype
