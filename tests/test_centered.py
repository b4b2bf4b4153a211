"""Data centred as it is read (``CenteredRows``), on every backend.

On CUDA the fit never writes a centred copy of X: the Triton pass centres
each tile as it loads it, and everything else reads centred row blocks.
Here every CPU backend is made to take that path (``force_views``), and its
results are scikit-learn's, as with the copy.
"""

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

import xpkmeans
from xpkmeans import KMeans
from xpkmeans._backend import _centered, centered


@pytest.fixture
def views(monkeypatch):
    monkeypatch.setattr(_centered, "force_views", True)


@pytest.fixture
def cpu_backend(backend):
    """The CPU backends: on CUDA, views are the default, so every other test
    of a fit there already takes this path."""
    if backend.gpu:
        pytest.skip("views are the default on CUDA: the regular tests cover them")
    return backend


def _far_blobs(n=240, d=3, k=4, seed=0):
    """Blobs far from the origin: centring matters to float32 labels there."""
    X, _ = xpkmeans.make_blobs(n, d, centers=k, cluster_std=1.5, random_state=seed)
    return X + 300.0


def test_centered_is_a_copy_on_the_cpu_and_a_view_when_forced(monkeypatch):
    X = np.arange(12.0).reshape(4, 3)
    mean = X.mean(axis=0)
    copy = centered(X, mean)
    assert isinstance(copy, np.ndarray)
    np.testing.assert_array_equal(copy, X - mean)
    monkeypatch.setattr(_centered, "force_views", True)
    view = centered(X, mean)
    assert isinstance(view, _centered.CenteredRows) and view.shape == (4, 3)
    np.testing.assert_array_equal(view.rows(slice(1, 3)), (X - mean)[1:3])


@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly"])
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_on_centred_views_equals_sklearn(cpu_backend, views, small_blocks, algorithm, weighted):
    X = _far_blobs()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    init = X[[0, 1, 2, 3]]
    sk = SkKMeans(4, init=init, n_init=1).fit(X, sample_weight=weights)

    km = KMeans(4, init=cpu_backend.asarray(init), algorithm=algorithm).fit(
        cpu_backend.asarray(X), sample_weight=None if weights is None else cpu_backend.asarray(weights)
    )

    np.testing.assert_array_equal(cpu_backend.to_numpy(km.labels_), sk.labels_)
    assert km.n_iter_ == sk.n_iter_
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=1e-10)
    np.testing.assert_allclose(cpu_backend.to_numpy(km.cluster_centers_), sk.cluster_centers_,
                               rtol=1e-10)
    Xb = cpu_backend.asarray(X)
    np.testing.assert_array_equal(cpu_backend.to_numpy(km.predict(Xb)), sk.predict(X))
    np.testing.assert_allclose(cpu_backend.to_numpy(km.transform(Xb)), sk.transform(X), rtol=1e-7)
    assert km.score(Xb) == pytest.approx(sk.score(X), rel=1e-10)


def test_empty_cluster_relocated_on_centred_views(cpu_backend, views, small_blocks):
    X = _far_blobs(200, 2, 3)
    init = np.vstack([X[:2], [[900.0, 900.0]]])  # the third centre gets no point
    sk = SkKMeans(3, init=init, n_init=1).fit(X)
    km = KMeans(3, init=cpu_backend.asarray(init)).fit(cpu_backend.asarray(X))
    np.testing.assert_array_equal(cpu_backend.to_numpy(km.labels_), sk.labels_)
    np.testing.assert_allclose(cpu_backend.to_numpy(km.cluster_centers_), sk.cluster_centers_,
                               rtol=1e-10)


def test_float32_fit_on_centred_views_equals_the_copy(cpu_backend, small_blocks, monkeypatch):
    """float32 far from the origin: the view's arithmetic is the copy's."""
    X = _far_blobs(300, 4, 5).astype(np.float32)
    init = X[:5]
    copy = KMeans(5, init=cpu_backend.asarray(init)).fit(cpu_backend.asarray(X))
    monkeypatch.setattr(_centered, "force_views", True)
    view = KMeans(5, init=cpu_backend.asarray(init)).fit(cpu_backend.asarray(X))
    np.testing.assert_array_equal(cpu_backend.to_numpy(view.labels_), cpu_backend.to_numpy(copy.labels_))
    np.testing.assert_allclose(cpu_backend.to_numpy(view.cluster_centers_),
                               cpu_backend.to_numpy(copy.cluster_centers_), rtol=1e-6)
    assert view.cluster_centers_.dtype == copy.cluster_centers_.dtype


@pytest.mark.filterwarnings("ignore::xpkmeans.ConvergenceWarning")  # max_iter=1
@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_initialisation_on_centred_views_equals_the_copy(cpu_backend, small_blocks, monkeypatch,
                                                         init):
    """One seed gives the same centres with a copy or a view."""
    X = _far_blobs(300, 3, 4)

    def initialise():
        fitted = KMeans(4, init=init, n_init=1, max_iter=1, random_state=0).fit(
            cpu_backend.asarray(X))
        _, rows = xpkmeans.kmeans_plusplus(cpu_backend.asarray(X), 4, random_state=0)
        return cpu_backend.to_numpy(fitted.cluster_centers_), cpu_backend.to_numpy(rows)

    copy_centers, copy_rows = initialise()
    monkeypatch.setattr(_centered, "force_views", True)
    view_centers, view_rows = initialise()
    np.testing.assert_allclose(view_centers, copy_centers, rtol=1e-12)
    np.testing.assert_array_equal(view_rows, copy_rows)
