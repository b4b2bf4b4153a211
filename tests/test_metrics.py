"""``xpkmeans.metrics`` against ``sklearn.metrics``, on every backend.

Reference data is made on the host with NumPy's RNG; expected values come
from scikit-learn on the same host data.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from xpkmeans._backend import _host
import xpkmeans.metrics as metrics_module
from xpkmeans.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)

RTOL = 1e-6

# each score with its scikit-learn reference
SCORES = {
    "silhouette": (silhouette_score, sk_metrics.silhouette_score),
    "calinski_harabasz": (calinski_harabasz_score, sk_metrics.calinski_harabasz_score),
    "davies_bouldin": (davies_bouldin_score, sk_metrics.davies_bouldin_score),
}
ALL_FUNCTIONS = [
    silhouette_samples, silhouette_score, calinski_harabasz_score, davies_bouldin_score,
]


def make_clusters(n_samples=150, n_features=3, n_clusters=4, *, mislabel=0.15, seed=0):
    """Gaussian clusters with some labels shuffled, so some silhouettes are negative."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-6, 6, size=(n_clusters, n_features))
    labels = rng.integers(0, n_clusters, size=n_samples)
    X = centers[labels] + rng.normal(size=(n_samples, n_features))
    wrong = rng.random(n_samples) < mislabel
    labels[wrong] = rng.integers(0, n_clusters, size=int(wrong.sum()))
    return X + 50.0, labels  # offset: the result must not depend on the origin


def assert_close(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-12)


# ------------------------------------------------------------------ equal to scikit-learn


def test_silhouette_samples_matches_sklearn(backend):
    X, labels = make_clusters()
    result = silhouette_samples(backend.asarray(X), backend.asarray(labels))
    backend.assert_here(result, backend.xp.float64)
    expected = sk_metrics.silhouette_samples(X, labels)
    assert (expected < 0).any() and (expected > 0).any()  # the data exercise both signs
    assert_close(backend.to_numpy(result), expected)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_scores_match_sklearn(backend, name):
    ours, reference = SCORES[name]
    X, labels = make_clusters(n_features=5, n_clusters=6, seed=1)
    result = ours(backend.asarray(X), backend.asarray(labels))
    assert type(result) is float
    assert_close(result, reference(X, labels))


@pytest.mark.parametrize("name", sorted(SCORES))
def test_float32_input_is_scored_in_float64(backend, name):
    ours, reference = SCORES[name]
    X, labels = make_clusters(seed=2)
    X32 = X.astype(np.float32)
    result = ours(backend.asarray(X32), backend.asarray(labels))
    assert_close(result, reference(X32.astype(np.float64), labels))


def test_silhouette_samples_keeps_float32(backend):
    X, labels = make_clusters(seed=3)
    X32 = X.astype(np.float32)
    result = silhouette_samples(backend.asarray(X32), backend.asarray(labels))
    backend.assert_here(result, backend.xp.float32)
    expected = sk_metrics.silhouette_samples(X32.astype(np.float64), labels)
    assert_close(backend.to_numpy(result), expected)


# ------------------------------------------------------------------ labels


@pytest.mark.parametrize("name", sorted(SCORES))
def test_any_integer_labels(backend, name):
    ours, reference = SCORES[name]
    X, labels = make_clusters(n_clusters=3, seed=4)
    renamed = np.array([-5, 3, 70])[labels]  # negative, non-contiguous
    result = ours(backend.asarray(X), backend.asarray(renamed))
    assert_close(result, reference(X, renamed))


def test_labels_from_lists_floats_and_numpy(backend):
    X, labels = make_clusters(n_clusters=3, seed=5)
    expected = sk_metrics.silhouette_score(X, labels)
    X_here = backend.asarray(X)
    assert_close(silhouette_score(X_here, labels.tolist()), expected)
    assert_close(silhouette_score(X_here, labels), expected)  # NumPy labels, any X
    assert_close(silhouette_score(X_here, backend.asarray(labels.astype(np.float64))), expected)


def test_two_clusters_from_bool_labels(backend):
    X, labels = make_clusters(n_clusters=2, seed=6)
    result = davies_bouldin_score(backend.asarray(X), backend.asarray(labels == 1))
    assert_close(result, sk_metrics.davies_bouldin_score(X, labels))


# ------------------------------------------------------------------ edge cases


def test_point_alone_in_its_cluster_has_silhouette_zero(backend):
    X, labels = make_clusters(n_samples=40, n_clusters=2, seed=7)
    labels[5] = 9  # a singleton cluster
    result = backend.to_numpy(silhouette_samples(backend.asarray(X), backend.asarray(labels)))
    assert result[5] == 0.0
    assert_close(result, sk_metrics.silhouette_samples(X, labels))


def test_identical_points(backend):
    X = np.ones((6, 2))
    labels = np.array([0, 0, 1, 1, 1, 2])
    X_here, labels_here = backend.asarray(X), backend.asarray(labels)
    samples = backend.to_numpy(silhouette_samples(X_here, labels_here))
    np.testing.assert_array_equal(samples, sk_metrics.silhouette_samples(X, labels))
    np.testing.assert_array_equal(samples, np.zeros(6))
    assert calinski_harabasz_score(X_here, labels_here) == 1.0
    assert sk_metrics.calinski_harabasz_score(X, labels) == 1.0
    assert davies_bouldin_score(X_here, labels_here) == 0.0
    assert sk_metrics.davies_bouldin_score(X, labels) == 0.0


def test_two_clusters_with_one_centroid(backend):
    # equal centroids: compared with nothing, as in scikit-learn (distance set to inf)
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0], [5.0, 5.0], [7.0, 5.0]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    result = davies_bouldin_score(backend.asarray(X), backend.asarray(labels))
    assert_close(result, sk_metrics.davies_bouldin_score(X, labels))


def test_distance_of_a_point_to_itself_is_exactly_zero(backend):
    # Two interleaved clusters far from the mean: a ~ b ~ 1 while ||x|| ~ 1e4, so
    # the ~sqrt(eps) * ||x|| self-distance the expansion leaves would show.
    rng = np.random.default_rng(13)
    far = rng.normal(size=(30, 8)) + 1e4 / np.sqrt(8)
    X = np.concatenate([far, -far])
    labels = np.concatenate([rng.integers(0, 2, size=30), np.full(30, 2)])
    result = silhouette_samples(backend.asarray(X), backend.asarray(labels))
    assert_close(backend.to_numpy(result), sk_metrics.silhouette_samples(X, labels))


def test_smallest_valid_problem(backend):
    X = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = np.array([4, 4, 2])
    for name, (ours, reference) in SCORES.items():
        assert_close(ours(backend.asarray(X), backend.asarray(labels)), reference(X, labels))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_one_label_is_an_error(backend, function):
    X, _ = make_clusters(n_samples=10)
    with pytest.raises(ValueError, match=r"Number of labels is 1\. Valid values are 2 to"):
        function(backend.asarray(X), backend.asarray(np.full(10, 3)))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_one_label_per_sample_is_an_error(backend, function):
    X, _ = make_clusters(n_samples=10)
    with pytest.raises(ValueError, match=r"Number of labels is 10\. .*n_samples=10"):
        function(backend.asarray(X), backend.asarray(np.arange(10)))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_labels_of_wrong_shape(backend, function):
    X, labels = make_clusters(n_samples=10)
    with pytest.raises(ValueError, match=r"`labels` must be 1-D of shape \(10,\).*\(9,\)"):
        function(backend.asarray(X), backend.asarray(labels[:9]))
    with pytest.raises(ValueError, match=r"`labels` must be 1-D .*\(10, 1\)"):
        function(backend.asarray(X), backend.asarray(labels[:, None]))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_labels_not_integers(backend, function):
    X, labels = make_clusters(n_samples=10)
    with pytest.raises(ValueError, match="`labels` must be integer-valued"):
        function(backend.asarray(X), backend.asarray(labels + 0.5))
    with pytest.raises(ValueError, match="`labels` must be integer-valued"):
        function(backend.asarray(X), backend.asarray(np.where(labels == 0, np.nan, labels)))
    # whole numbers beyond int64 had all become INT64_MIN: one cluster, a wrong score
    with pytest.raises(ValueError, match="`labels` must be integer-valued.*beyond int64"):
        function(backend.asarray(X), backend.asarray(labels * 1e300))


@pytest.mark.parametrize("name", sorted(SCORES))
def test_string_labels_as_scikit_learn(backend, name):
    ours, reference = SCORES[name]
    X, labels = make_clusters(n_clusters=3, seed=7)
    names = np.array(["virginica", "setosa", "versicolor"])[labels]
    expected = reference(X, names)
    assert_close(ours(backend.asarray(X), names), expected)
    assert_close(ours(backend.asarray(X), names.tolist()), expected)
    assert_close(ours(backend.asarray(X), names.astype(object)), expected)


def test_labels_that_do_not_compare_are_refused():
    X, _ = make_clusters(n_samples=4)
    with pytest.raises(TypeError, match="`labels` could not be encoded"):
        silhouette_score(X, np.array(["a", 1, "a", 1], dtype=object))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_bad_X(backend, function):
    X, labels = make_clusters(n_samples=10)
    with pytest.raises(ValueError, match="`X` must be a 2-D array"):
        function(backend.asarray(X[:, 0]), backend.asarray(labels))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="`X` contains NaN"):
        function(backend.asarray(X), backend.asarray(labels))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_squared_distances_that_overflow_are_an_error(backend, function):
    """The error of KMeans.fit: the dispersion scores had returned NaN (as
    scikit-learn does), and every silhouette 0."""
    X, labels = make_clusters(n_samples=30)
    with pytest.raises(ValueError, match="^`X` has values too large for .*float64"):
        function(backend.asarray(X * 1e160), backend.asarray(labels))
    # float32 data is scored in float64: no overflow there
    huge32 = backend.asarray((X * 1e30).astype(np.float32))
    expected = function(backend.asarray(X.astype(np.float32)), backend.asarray(labels))
    assert_close(backend.to_numpy(function(huge32, backend.asarray(labels))),
                 backend.to_numpy(expected), rtol=1e-4)


# ------------------------------------------------------------------ sampling


def test_sample_size_scores_a_host_drawn_subset(backend):
    X, labels = make_clusters(n_samples=200, seed=8)
    subset = np.random.default_rng(11).permutation(200)[:60]
    result = silhouette_score(
        backend.asarray(X), backend.asarray(labels), sample_size=60, random_state=11
    )
    assert_close(result, sk_metrics.silhouette_score(X[subset], labels[subset]))
    # a Generator is used as is, so the same seed gives the same subset
    again = silhouette_score(
        backend.asarray(X), backend.asarray(labels), sample_size=60,
        random_state=np.random.default_rng(11),
    )
    assert again == pytest.approx(result, rel=1e-12)  # GPU sums may round differently


def test_sample_size_above_n_samples_scores_all(backend):
    X, labels = make_clusters(n_samples=50, seed=9)
    result = silhouette_score(
        backend.asarray(X), backend.asarray(labels), sample_size=500, random_state=0
    )
    assert_close(result, sk_metrics.silhouette_score(X, labels))


def test_bad_sample_size():
    X, labels = make_clusters(n_samples=20)
    with pytest.raises(ValueError, match="`sample_size` must be >= 1, got 0"):
        silhouette_score(X, labels, sample_size=0)
    with pytest.raises(TypeError, match="`sample_size` must be an int"):
        silhouette_score(X, labels, sample_size=2.5)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        silhouette_score(X, labels, sample_size=1, random_state=0)


# ------------------------------------------------------------------ memory


def test_silhouette_in_many_small_blocks(backend, monkeypatch):
    X, labels = make_clusters(n_samples=97, seed=10)
    # 7 rows of 97 distances per block: 14 blocks, the last one ragged
    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS", 7 * 97)
    monkeypatch.setattr(_host, "_GPU_BLOCK_ELEMENTS", 7 * 97)
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    blocks = []

    def recording_row_blocks(*args, **kwargs):
        blocks.extend(_host.row_blocks(*args, **kwargs))
        return blocks

    monkeypatch.setattr(metrics_module, "row_blocks", recording_row_blocks)
    result = silhouette_samples(backend.asarray(X), backend.asarray(labels))
    assert [b.stop - b.start for b in blocks] == [7] * 13 + [6]
    assert_close(backend.to_numpy(result), sk_metrics.silhouette_samples(X, labels))


def test_silhouette_never_builds_the_distance_matrix():
    n_samples = 20_000  # the full matrix would take 3.2 GB
    X, labels = make_clusters(n_samples=n_samples, n_features=2, seed=12)
    full_matrix_bytes = n_samples * n_samples * 8
    tracemalloc.start()
    try:
        silhouette_score(X, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_matrix_bytes / 10, f"peak {peak / 1e6:.1f} MB"


def test_davies_bouldin_of_many_labels_in_bounded_memory():
    """Labels may be many (up to n_samples - 1): the n_labels x n_labels x
    n_features centroid differences had taken 3.9 GB for 1 MB of X (4000 x 64
    float32, 2000 labels); they go in blocks of centroid rows."""
    rng = np.random.default_rng(13)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    labels = np.arange(3000) // 2  # 1500 clusters of 2 points
    whole_bytes = 1500 * 1500 * 32 * 8  # one float64 n_labels x n_labels x n_features array
    tracemalloc.start()
    try:
        score = davies_bouldin_score(X, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < whole_bytes / 10, f"peak {peak / 2**20:.0f} MiB"
    assert_close(score, sk_metrics.davies_bouldin_score(X, labels))


def test_davies_bouldin_in_blocks_of_centroids(backend, monkeypatch):
    X, labels = make_clusters(n_samples=200, n_clusters=40, seed=14)
    # 3 centroid rows of 40 x 3 differences per block: 14 blocks, the last one short
    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS", 3 * 40 * 3)
    monkeypatch.setattr(_host, "_GPU_BLOCK_ELEMENTS", 3 * 40 * 3)
    assert_close(davies_bouldin_score(backend.asarray(X), backend.asarray(labels)),
                 sk_metrics.davies_bouldin_score(X, labels))
