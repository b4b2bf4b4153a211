"""Initial centres: k-means++ and random, the same on every backend for one seed."""

import numpy as np
import pytest

import xpkmeans
from xpkmeans import KMeans, kmeans_plusplus

X, _ = xpkmeans.make_blobs(400, 2, centers=5, cluster_std=0.5, random_state=3)


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


def test_greedy_trials_lower_the_start_potential():
    """More local trials give a lower potential on average (the point of greedy k-means++)."""
    def potential(centers):
        return ((X[:, None] - centers[None]) ** 2).sum(axis=2).min(axis=1).sum()

    plain = [potential(kmeans_plusplus(X, 8, random_state=s, n_local_trials=1)[0])
             for s in range(20)]
    greedy = [potential(kmeans_plusplus(X, 8, random_state=s)[0]) for s in range(20)]
    assert np.mean(greedy) < np.mean(plain)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1
def test_random_init_draws_distinct_rows(backend):
    km = KMeans(5, init="random", n_init=1, max_iter=1, random_state=0)
    km.fit(backend.asarray(X))
    expected = KMeans(5, init="random", n_init=1, max_iter=1, random_state=0).fit(X)
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), expected.cluster_centers_)


def test_random_init_needs_enough_weighted_points():
    weights = np.zeros(len(X))
    weights[:3] = 1
    with pytest.raises(ValueError, match="positive sample_weight"):
        KMeans(5, init="random").fit(X, sample_weight=weights)
