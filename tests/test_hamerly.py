"""Hamerly's bounded E step gives Lloyd's labels, with less work."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

import xpkmeans
from xpkmeans import KMeans, _lloyd
from xpkmeans._backend import nearest_centers, picks_rows_cheaply
from xpkmeans._backend._capabilities import supports
from xpkmeans._hamerly import BoundedNearest


def test_bounded_nearest_follows_moving_centres(backend):
    """Along a walk of the centres, every call equals a full E step."""
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.standard_normal((400, 3)) * 3)
    centers = rng.standard_normal((6, 3)) * 3
    nearest = BoundedNearest(X, xp=backend.xp)
    for step in range(12):
        centers = centers + rng.standard_normal(centers.shape) * (0.5 if step < 6 else 0.01)
        moved = backend.asarray(centers)
        labels = nearest(moved)
        backend.assert_here(labels)
        expected = nearest_centers(X, moved)
        np.testing.assert_array_equal(backend.to_numpy(labels), backend.to_numpy(expected))


def test_bounded_nearest_sends_equal_centres_to_the_first(backend):
    """As ``nearest_centers``: torch's product had rounded equal centres
    apart by their column, so elkan's labels_ sat on the later twin."""
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.normal(0, 1, (2000, 13)))
    centers = rng.normal(0, 1, (6, 13))
    centers[5] = centers[1]
    labels = BoundedNearest(X, xp=backend.xp)(backend.asarray(centers))
    assert not np.any(backend.to_numpy(labels) == 5)


def test_exact_ties_go_where_lloyd_sends_them(backend):
    """Integer points: many are exactly as far from two centres, and only the
    rounding of the scores breaks the tie. Hamerly's scores must be Lloyd's
    to the bit: on torch CPU its half norms came from torch's sum, which
    rounds apart from the compiled pass's, and 19 labels and the iteration
    count (13, not 10) differed."""
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(0, 3, (300, 8)))
    X_centered, mean = _lloyd.center_data(backend.asarray(X), xp=backend.xp)
    centers = backend.asarray(X[:16]) - mean
    labels = BoundedNearest(X_centered, xp=backend.xp)(centers)
    np.testing.assert_array_equal(backend.to_numpy(labels),
                                  backend.to_numpy(nearest_centers(X_centered, centers)))
    if not supports("algorithm='hamerly'", backend.asarray(X)):
        return
    fits = [KMeans(16, init=backend.asarray(X[:16]), tol=0, algorithm=algorithm)
            .fit(backend.asarray(X)) for algorithm in ("lloyd", "hamerly")]
    assert fits[1].n_iter_ == fits[0].n_iter_
    np.testing.assert_array_equal(backend.to_numpy(fits[1].labels_),
                                  backend.to_numpy(fits[0].labels_))


def test_bounded_nearest_skips_points_once_centres_settle(monkeypatch):
    import array_api_compat.numpy as xp

    X, _ = xpkmeans.make_blobs(2000, 2, centers=4, cluster_std=0.5, random_state=0)
    centers = np.array([[-5.0, -5.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])
    recomputed = []
    original = BoundedNearest._recompute

    def recording(self, indices, centers):
        recomputed.append(indices.shape[0])
        return original(self, indices, centers)

    monkeypatch.setattr(BoundedNearest, "_recompute", recording)
    nearest = BoundedNearest(X, xp=xp)
    nearest(centers)
    nearest(centers + 1e-3)  # tiny moves: every bound still separates
    assert recomputed == [2000]


def test_hamerly_fit_equals_lloyd_fit(backend):
    X, _ = xpkmeans.make_blobs(3000, 5, centers=12, cluster_std=2.0, random_state=3)
    X = backend.asarray(X)
    lloyd = KMeans(12, random_state=0, n_init=2, tol=0).fit(X)
    bounded = KMeans(12, random_state=0, n_init=2, tol=0, algorithm="hamerly")
    if supports("algorithm='hamerly'", X):
        hamerly = bounded.fit(X)
    else:  # a GPU: Lloyd, and a warning that says so
        with pytest.warns(xpkmeans.FallbackWarning, match="hamerly"):
            hamerly = bounded.fit(X)
    backend.assert_here(hamerly.cluster_centers_, backend.xp.float64)
    assert hamerly.n_iter_ == lloyd.n_iter_
    np.testing.assert_array_equal(backend.to_numpy(hamerly.labels_),
                                  backend.to_numpy(lloyd.labels_))
    np.testing.assert_allclose(backend.to_numpy(hamerly.cluster_centers_),
                               backend.to_numpy(lloyd.cluster_centers_), rtol=1e-12)
    assert hamerly.inertia_ == pytest.approx(lloyd.inertia_, rel=1e-12)


def test_elkan_runs_the_bounds_and_gives_scikit_learns_elkan_result(monkeypatch):
    from sklearn.cluster import KMeans as SklearnKMeans

    calls = []
    original = BoundedNearest.__call__
    monkeypatch.setattr(BoundedNearest, "__call__",
                        lambda self, centers: calls.append(1) or original(self, centers))
    X, _ = xpkmeans.make_blobs(3000, 5, centers=12, cluster_std=2.0, random_state=3)
    init = X[:12]
    ours = KMeans(12, init=init, algorithm="elkan").fit(X)
    theirs = SklearnKMeans(12, init=init, n_init=1, algorithm="elkan").fit(X)
    assert calls and ours.get_params()["algorithm"] == "elkan"
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-10)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-10)


def test_hamerly_warns_and_is_lloyd_where_the_capability_table_says_no(monkeypatch):
    from xpkmeans._backend import _capabilities

    table = dict(_capabilities.CAPABILITIES)
    table["algorithm='hamerly'"] = dataclasses.replace(
        table["algorithm='hamerly'"], runs_on=frozenset()
    )
    monkeypatch.setattr(_capabilities, "CAPABILITIES", table)
    monkeypatch.setattr(BoundedNearest, "__call__", lambda self, centers: pytest.fail("used"))
    X, _ = xpkmeans.make_blobs(300, 2, centers=3, random_state=0)
    with pytest.warns(_capabilities.FallbackWarning, match="hamerly.*running algorithm='lloyd'"):
        km = KMeans(3, random_state=0, algorithm="hamerly").fit(X)
    lloyd = KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.labels_, lloyd.labels_)


def test_the_capability_table_knows_each_kind_of_data(tmp_path):
    import dask.array as da
    import scipy.sparse

    from xpkmeans._backend._capabilities import array_kind

    X = np.zeros((10, 2), dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    memmap = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert array_kind(X) == "host"
    assert array_kind(scipy.sparse.csr_matrix(X)) == "sparse"
    assert array_kind(da.from_array(X)) == "lazy"
    assert array_kind(memmap) == "host"  # fitted in memory, as any array
    assert array_kind(xpkmeans.RowBlocks(memmap)) == "streamed"


@pytest.mark.parametrize("algorithm", ["hamerly", "elkan"])
@pytest.mark.parametrize("kind", ["sparse", "lazy", "streamed"])
def test_bounds_warn_and_are_lloyd_on_sparse_dask_and_streamed_data(kind, algorithm, tmp_path):
    import dask.array as da
    import scipy.sparse

    X = np.asarray(xpkmeans.make_blobs(300, 2, centers=3, random_state=0)[0], dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    data = {"sparse": scipy.sparse.csr_matrix(X), "lazy": da.from_array(X, chunks=100),
            "streamed": xpkmeans.RowBlocks(np.load(tmp_path / "X.npy", mmap_mode="r"))}[kind]
    init = X[:3]
    with pytest.warns(xpkmeans.FallbackWarning,
                      match=f"{algorithm}' does not run on .*lloyd") as record:
        km = KMeans(3, init=init, algorithm=algorithm).fit(data)
    assert {w.filename for w in record} == {__file__}  # the caller's line
    lloyd = KMeans(3, init=init).fit(data)
    np.testing.assert_array_equal(np.asarray(km.labels_), np.asarray(lloyd.labels_))


def test_kmeans_parallel_on_streamed_data_warns_and_is_kmeans_plusplus(tmp_path):
    X = np.asarray(xpkmeans.make_blobs(300, 2, centers=3, random_state=0)[0], dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    blocks = xpkmeans.RowBlocks(np.load(tmp_path / "X.npy", mmap_mode="r"))
    with pytest.warns(xpkmeans.FallbackWarning,
                      match="k-means\\|\\|' does not run on data read") as record:
        km = KMeans(3, init="k-means||", random_state=0).fit(blocks)
    assert {w.filename for w in record} == {__file__}  # the caller's line
    plusplus = KMeans(3, init="k-means++", random_state=0).fit(blocks)
    np.testing.assert_array_equal(km.cluster_centers_, plusplus.cluster_centers_)


def test_hamerly_runs_where_the_capability_table_says_so(backend, monkeypatch):
    from xpkmeans._backend._capabilities import supports

    calls = []
    original = BoundedNearest.__call__
    monkeypatch.setattr(BoundedNearest, "__call__",
                        lambda self, centers: calls.append(1) or original(self, centers))
    X = backend.asarray(xpkmeans.make_blobs(200, 2, centers=3, random_state=0)[0])
    if supports("algorithm='hamerly'", X):
        KMeans(3, random_state=0, algorithm="hamerly").fit(X)
        assert calls
    else:
        with pytest.warns(UserWarning, match="hamerly"):
            KMeans(3, random_state=0, algorithm="hamerly").fit(X)
        assert not calls


# small integers: distances are exact, so ties are exact ties in every product
points = arrays(np.float64, st.tuples(st.integers(8, 40), st.integers(1, 3)),
                elements=st.integers(-6, 6).map(float))


@given(X=points, k=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_hamerly_walk_equals_lloyd_walk_with_ties(X, k, seed):
    import array_api_compat.numpy as xp

    k = min(k, len(X))
    init = X[np.random.default_rng(seed).choice(len(X), k, replace=False)]
    X_centered, X_mean = _lloyd.center_data(X, xp=xp)
    walks = [
        list(_lloyd._lloyd_iterations(X_centered, None, init - X_mean, max_iter=50, tol=0.0,
                                      xp=xp, nearest=nearest))
        for nearest in (None, BoundedNearest(X_centered, xp=xp))
    ]
    assert len(walks[0]) == len(walks[1])
    for lloyd, hamerly in zip(*walks):
        np.testing.assert_array_equal(hamerly.labels, lloyd.labels)
        np.testing.assert_array_equal(hamerly.centers, lloyd.centers)


def test_picks_rows_cheaply_only_on_host():
    assert picks_rows_cheaply(np.zeros((2, 2)))
