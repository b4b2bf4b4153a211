"""``select_n_clusters`` and ``knee_point``.

Expected scores come from ``sklearn.metrics`` on the fitted labels; the data
are well separated blobs whose number is known.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from xpkmeans import KMeans, make_blobs
from xpkmeans._backend import to_numpy
from xpkmeans.model_selection import CRITERIA, ClusterSelection, knee_point, select_n_clusters

FOUR_CORNERS = [[0.0, 0.0], [12.0, 0.0], [0.0, 12.0], [12.0, 12.0]]
SKLEARN_SCORES = {
    "silhouette": sk_metrics.silhouette_score,
    "calinski_harabasz": sk_metrics.calinski_harabasz_score,
    "davies_bouldin": sk_metrics.davies_bouldin_score,
}


@pytest.fixture(scope="module")
def four_blobs():
    """400 points in 4 well separated blobs (NumPy)."""
    X, _ = make_blobs(400, centers=FOUR_CORNERS, cluster_std=1.0, random_state=0)
    return X


# ------------------------------------------------------------------ finding k


@pytest.mark.parametrize("method", sorted(CRITERIA))
def test_finds_four_blobs(four_blobs, method):
    result = select_n_clusters(four_blobs, range(2, 9), method=method, random_state=0)
    assert isinstance(result, ClusterSelection)
    assert result.best_n_clusters == 4
    assert result.method == method
    assert result.n_clusters == (2, 3, 4, 5, 6, 7, 8)
    assert len(result.scores) == len(result.inertias) == len(result.models) == 7
    assert all(type(s) is float for s in result.scores + result.inertias)
    assert [model.n_clusters for model in result.models] == list(result.n_clusters)
    assert result.best_model is result.models[2]


@pytest.mark.parametrize("method", sorted(SKLEARN_SCORES))
def test_scores_are_the_metric_of_each_fit(four_blobs, method):
    result = select_n_clusters(four_blobs, [2, 4, 6], method=method, random_state=1)
    for k, score, model in zip(result.n_clusters, result.scores, result.models):
        labels = to_numpy(model.labels_)
        assert len(np.unique(labels)) == k
        expected = SKLEARN_SCORES[method](four_blobs, labels)
        assert score == pytest.approx(expected, rel=1e-6)


def test_elbow_scores_are_the_inertias(four_blobs):
    result = select_n_clusters(four_blobs, [1, 2, 3, 4, 5], method="elbow", random_state=0)
    assert result.scores == result.inertias
    assert not result.higher_is_better
    for k, inertia, model in zip(result.n_clusters, result.inertias, result.models):
        labels = to_numpy(model.labels_)
        centers = to_numpy(model.cluster_centers_)
        expected = ((four_blobs - centers[labels]) ** 2).sum()
        assert inertia == pytest.approx(expected, rel=1e-9)
    assert list(result.inertias) == sorted(result.inertias, reverse=True)


@pytest.mark.parametrize(
    ("method", "higher_is_better"),
    [("silhouette", True), ("calinski_harabasz", True), ("davies_bouldin", False),
     ("elbow", False)],
)
def test_direction_of_each_method(four_blobs, method, higher_is_better):
    result = select_n_clusters(four_blobs, [2, 3, 4], method=method, random_state=0)
    assert result.higher_is_better is higher_is_better


def test_runs_on_every_backend(backend):
    X_host, _ = make_blobs(200, centers=FOUR_CORNERS, cluster_std=1.0, random_state=2)
    result = select_n_clusters(backend.asarray(X_host), range(2, 7), random_state=0)
    assert result.best_n_clusters == 4
    for model in result.models:
        backend.assert_here(model.labels_)
        backend.assert_here(model.cluster_centers_, backend.xp.float64)
    best_labels = to_numpy(result.best_model.labels_)
    assert result.scores[2] == pytest.approx(
        sk_metrics.silhouette_score(X_host, best_labels), rel=1e-6
    )


def test_candidates_are_sorted(four_blobs):
    result = select_n_clusters(four_blobs, np.array([5, 2, 3]), random_state=0)
    assert result.n_clusters == (2, 3, 5)
    assert [model.n_clusters for model in result.models] == [2, 3, 5]


def test_result_is_frozen(four_blobs):
    result = select_n_clusters(four_blobs, [2, 3], random_state=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.best_n_clusters = 3


# ------------------------------------------------------------------ options


def test_silhouette_sample_size_scores_one_subset(four_blobs):
    result = select_n_clusters(
        four_blobs, [3, 4, 5], random_state=7, silhouette_sample_size=120
    )
    subset = np.random.default_rng(7).permutation(four_blobs.shape[0])[:120]
    for score, model in zip(result.scores, result.models):
        labels = to_numpy(model.labels_)
        expected = sk_metrics.silhouette_score(four_blobs[subset], labels[subset])
        assert score == pytest.approx(expected, rel=1e-6)
    assert result.best_n_clusters == 4


def test_kmeans_params_are_passed_on(four_blobs):
    result = select_n_clusters(
        four_blobs, [2, 3], random_state=3, n_init=2, init="random", max_iter=50
    )
    for k, model in zip(result.n_clusters, result.models):
        assert isinstance(model, KMeans)
        assert (model.n_clusters, model.init, model.n_init, model.max_iter) == (
            k, "random", 2, 50,
        )
        assert model.random_state == 3


def test_sample_weight_is_passed_on(four_blobs):
    plain = select_n_clusters(four_blobs, [2, 3, 4], method="elbow", random_state=0)
    doubled = select_n_clusters(
        four_blobs, [2, 3, 4], method="elbow", random_state=0,
        sample_weight=np.full(four_blobs.shape[0], 2.0),
    )
    np.testing.assert_allclose(doubled.inertias, 2 * np.array(plain.inertias), rtol=1e-9)


# ------------------------------------------------------------------ knee


def test_knee_of_a_sharp_bend():
    assert knee_point([1, 2, 3, 4, 5, 6], [100.0, 40.0, 12.0, 10.0, 9.0, 8.5]) == 3
    assert knee_point([2, 4, 8, 16], [50.0, 10.0, 8.0, 7.0]) == 4


@pytest.mark.parametrize(
    "inertias",
    [[5.0, 4.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [5.0, 4.9, 4.5, 0.0]],
    ids=["straight", "flat", "concave"],
)
def test_no_knee_gives_the_smallest_k(inertias):
    assert knee_point([3, 4, 5, 6], inertias) == 3


def test_bad_knee_input():
    with pytest.raises(ValueError, match="at least 3 points, got 2"):
        knee_point([1, 2], [2.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        knee_point([1, 3, 2], [3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        knee_point([1, 2, 3], [2.0, 1.0])


# ------------------------------------------------------------------ bad input


def test_unknown_method(four_blobs):
    with pytest.raises(ValueError, match=r"Unknown method 'gap'; use one of \['calinski"):
        select_n_clusters(four_blobs, method="gap")


@pytest.mark.parametrize(
    ("n_clusters", "error", "message"),
    [
        (4, TypeError, r"`n_clusters` must be a sequence of ints such as range\(2, 11\)"),
        (None, TypeError, "`n_clusters` must be a sequence of ints"),
        ([], ValueError, "at least one number of clusters"),
        ([2, 2.5], TypeError, r"`n_clusters\[1\]` must be an int"),
        ([1, 2, 3], ValueError, r"`n_clusters\[0\]` must be >= 2, got 1"),
        ([2, 400], ValueError, r"`n_clusters\[1\]`=400 is too large.*<= 399"),
        ([2, 3, 2], ValueError, "must not repeat a value"),
    ],
)
def test_bad_n_clusters(four_blobs, n_clusters, error, message):
    with pytest.raises(error, match=message):
        select_n_clusters(four_blobs, n_clusters)


def test_elbow_limits(four_blobs):
    with pytest.raises(ValueError, match="method='elbow' needs at least 3 values"):
        select_n_clusters(four_blobs, [2, 3], method="elbow")
    with pytest.raises(ValueError, match=r"`n_clusters\[0\]` must be >= 1, got 0"):
        select_n_clusters(four_blobs, [0, 1, 2], method="elbow")
    with pytest.raises(ValueError, match=r"`n_clusters\[2\]`=401 is too large.*<= 400"):
        select_n_clusters(four_blobs, [1, 2, 401], method="elbow")


def test_bad_options(four_blobs):
    with pytest.raises(ValueError, match="`silhouette_sample_size` applies only to"):
        select_n_clusters(four_blobs, [2, 3], method="davies_bouldin", silhouette_sample_size=50)
    with pytest.raises(ValueError, match="`silhouette_sample_size` must be >= 1, got 0"):
        select_n_clusters(four_blobs, [2, 3], silhouette_sample_size=0)
    fitted = []  # refused before any fit, naming the parameter
    with pytest.raises(ValueError, match=r"^`silhouette_sample_size`=3 must exceed the largest "
                                         r"n_clusters \(5\)"):
        select_n_clusters(four_blobs, range(2, 6), silhouette_sample_size=3,
                          progress=fitted.append)
    assert fitted == []
    with pytest.raises(ValueError, match="`X` must be a 2-D array"):
        select_n_clusters(four_blobs[:, 0], [2, 3])


def test_models_of_a_data_frame_keep_its_column_names():
    """They had been fitted on the checked array: predict(frame) then warned."""
    import warnings

    pd = pytest.importorskip("pandas")
    X, _ = make_blobs(300, 2, centers=3, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b"])
    result = select_n_clusters(frame, [2, 3], method="calinski_harabasz", random_state=0)
    for model in result.models:
        assert list(model.feature_names_in_) == ["a", "b"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.predict(frame)
