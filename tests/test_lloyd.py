"""The E and M steps and the EM walk-through, against plain NumPy references."""

import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra.numpy import arrays

import xpkmeans
from xpkmeans import ConvergenceWarning, KMeans, e_step, lloyd_steps, m_step
from xpkmeans._backend import segment_sum


def reference_e_step(X, centers, weights=None):
    distances = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2)
    labels = distances.argmin(axis=1)
    weights = np.ones(len(X)) if weights is None else weights
    return labels, float((distances[np.arange(len(X)), labels] * weights).sum())


def data(seed=0, n=200, d=3, k=4):
    X, _ = xpkmeans.make_blobs(n, d, centers=k, cluster_std=2.0, random_state=seed)
    return X, X[np.random.default_rng(seed).choice(n, k, replace=False)]


def test_e_step_matches_reference(backend):
    X, centers = data()
    weights = np.random.default_rng(1).uniform(0, 2, len(X))
    labels, inertia = e_step(backend.asarray(X), backend.asarray(centers),
                             sample_weight=backend.asarray(weights))
    ref_labels, ref_inertia = reference_e_step(X, centers, weights)
    backend.assert_here(labels)
    backend.assert_here(inertia, backend.xp.float64)
    np.testing.assert_array_equal(backend.to_numpy(labels), ref_labels)
    assert float(inertia) == pytest.approx(ref_inertia, rel=1e-12)


def test_e_step_is_chunked_consistently(backend, request):
    X, centers = data(n=501)  # 4 centres: blocks of 4 rows, the last one short
    expected = backend.to_numpy(e_step(backend.asarray(X), backend.asarray(centers))[0])
    request.getfixturevalue("small_blocks")
    labels, _ = e_step(backend.asarray(X), backend.asarray(centers))
    np.testing.assert_array_equal(backend.to_numpy(labels), expected)


def test_m_step_is_weighted_mean(backend):
    X, centers = data()
    labels = np.random.default_rng(2).integers(0, 4, len(X))
    weights = np.random.default_rng(3).uniform(0.1, 2, len(X))
    new = m_step(backend.asarray(X), backend.asarray(labels), backend.asarray(centers),
                 sample_weight=backend.asarray(weights))
    backend.assert_here(new, backend.xp.float64)
    for j in range(4):
        members = labels == j
        expected = np.average(X[members], axis=0, weights=weights[members])
        np.testing.assert_allclose(backend.to_numpy(new)[j], expected, rtol=1e-10)


def test_float32_cluster_sums_add_up_in_the_widest_float(backend):
    """Copies of five points, weighted: each centre is its point after one
    step on every backend. Sums added in float32 (the paths without the
    compiled kernels) had moved the centres by rounding: a second step."""
    if backend.gpu:
        pytest.skip("CUDA float32 sums are float32 atomics unless deterministic (README)")
    rng = np.random.default_rng(1)
    points = rng.normal(0, 2, (5, 2)).astype(np.float32)
    X = np.repeat(points, 3000, axis=0)
    weights = rng.uniform(0.1, 3, X.shape[0]).astype(np.float32)
    km = KMeans(5, init=backend.asarray(points), tol=0).fit(
        backend.asarray(X), sample_weight=backend.asarray(weights))
    assert km.n_iter_ == 1
    # the centres of the centred data, plus the mean: float32 rounding of the sum
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), points, rtol=0, atol=1e-6)


def test_m_step_moves_empty_cluster_to_farthest_point(backend):
    X = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0, 0, 1])
    centers = np.array([[0.0, 0.0], [0.0, 1.0], [50.0, 50.0]])
    new = backend.to_numpy(m_step(backend.asarray(X), backend.asarray(labels),
                                  backend.asarray(centers)))
    # point 2 is farthest from its centre: it founds cluster 2 and leaves cluster 0
    np.testing.assert_allclose(new, [[0.5, 0.0], [0.0, 1.0], [10.0, 0.0]])


def test_m_step_never_moves_a_point_that_sits_on_its_centre(backend):
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    labels = np.array([0, 0, 1])
    centers = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    new = backend.to_numpy(m_step(backend.asarray(X), backend.asarray(labels),
                                  backend.asarray(centers)))
    # every point is on its centre: nothing is relocated, and the empty cluster
    # takes the mean of the largest one (scikit-learn's _average_centers)
    np.testing.assert_array_equal(new, [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])


# scikit-learn's empty clusters (``_relocate_empty_clusters_dense``, then
# ``_average_centers``): the farthest points by distance alone, whatever their
# weight, none when every point is on its centre, and a cluster still empty
# at the mean of the largest cluster. Each: X, init, sample_weight, max_iter
# (no ties for the relocation to break).
SKLEARN_EMPTY_CLUSTERS = {
    "zero-weight farthest point": (
        [[0.0], [1.0], [2.0], [10.0]], [[1.0], [100.0]], [1.0, 1.0, 1.0, 0.0], 300),
    "donor drains its cluster": ([[0.0], [1.0], [2.0], [20.0]], [[1.0], [30.0], [-50.0]], None, 1),
    "every point on its centre": ([[0.0], [0.0], [1.0], [1.0]], [[0.0], [1.0], [5.0]], None, 300),
    "more empty clusters than points off their centre": (
        [[0.0], [0.0], [0.0], [3.0]], [[0.0], [50.0], [60.0]], None, 300),
}


def fit_recording_distinct_clusters(estimator, X, sample_weight=None):
    """Fit; the messages of the warnings about distinct clusters."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(X, sample_weight=sample_weight)
    return [str(w.message) for w in caught if "distinct clusters" in str(w.message)]


@pytest.mark.parametrize("case", list(SKLEARN_EMPTY_CLUSTERS))
def test_empty_clusters_as_scikit_learn(backend, case):
    """Zero-weight points had never been taken (scikit-learn takes the
    farthest and leaves that cluster empty), and a cluster left empty had
    kept its centre (scikit-learn moves it to the largest cluster's)."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    X, init, weights, max_iter = (None if v is None else np.array(v) if isinstance(v, list)
                                  else v for v in SKLEARN_EMPTY_CLUSTERS[case])
    reference = SKLearnKMeans(len(init), init=init, n_init=1, max_iter=max_iter)
    expected_warnings = fit_recording_distinct_clusters(reference, X, weights)
    km = KMeans(len(init), init=backend.asarray(init), n_init=1, max_iter=max_iter)
    warned = fit_recording_distinct_clusters(
        km, backend.asarray(X), None if weights is None else backend.asarray(weights))
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), reference.labels_)
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), reference.cluster_centers_,
                               rtol=0, atol=1e-12)
    assert km.inertia_ == pytest.approx(reference.inertia_, abs=1e-12)
    assert km.n_iter_ == reference.n_iter_
    assert warned == expected_warnings


def test_cluster_left_empty_takes_the_largest_clusters_mean():
    """Where the empty cluster comes before the largest one, scikit-learn
    1.9.1 copies the largest cluster's row of sums before dividing it (its
    centre here: -8.5, the sum about the mean); the rule it states, and this
    one, is the largest cluster's mean."""
    X = np.array([[20.0], [0.0], [1.0], [2.0]])
    init = np.array([[30.0], [1.0], [-50.0]])
    step = next(lloyd_steps(X, init))  # the point at 20 leaves cluster 0 for cluster 2
    np.testing.assert_array_equal(step.centers, [[1.0], [1.0], [20.0]])


def test_points_near_their_centre_far_from_the_origin_still_relocate(backend):
    """They are not "on their centre": only a distance within the rounding
    of a mean of copies is (a bound of eps times the squared norms had left
    these clusters empty)."""
    points = np.array([[1000.0, 1000.1], [999.9, 1000.0], [1000.1, 999.9]], dtype=np.float32)
    moved = m_step(backend.asarray(points), backend.asarray(np.zeros(3, dtype=np.int64)),
                   backend.asarray(np.array([[1000, 1000], [0, 0]], dtype=np.float32)))
    assert np.abs(backend.to_numpy(moved)[1] - 1000).max() < 1


def test_tight_clusters_far_from_the_origin_relocate_as_scikit_learn():
    """NumPy's E step resolves these clusters (the portable float32 one, by
    expansion, cannot: its labels tie), so the relocated centre keeps points."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.01, (50, 2)) + [-100, 0],
                        rng.normal(0, 0.01, (50, 2)) + [100, 0]]).astype(np.float32)
    init = np.array([[-100, 0], [100, 0], [0, 500]], dtype=np.float32)
    from sklearn.cluster import KMeans as SKLearnKMeans

    reference = SKLearnKMeans(3, init=init, n_init=1).fit(X)
    km = KMeans(3, init=init, n_init=1).fit(X)
    assert np.all(np.bincount(reference.labels_, minlength=3) > 0)
    assert np.all(np.bincount(km.labels_, minlength=3) > 0)


def test_more_clusters_than_distinct_points_stops_as_scikit_learn(backend):
    """Duplicate points, k above the distinct points: an empty cluster can
    only take a duplicate of a centre, so EM stops once labels are stable
    (it had run to max_iter, relocating twin centres back and forth)."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    X = np.random.default_rng(0).integers(0, 3, size=(200, 2)).astype(np.float64)
    init = X[np.unique(X, axis=0, return_index=True)[1]]  # the 9 distinct points
    init = np.concatenate([init, init[:1]])  # and a twin: 10 centres
    with pytest.warns(Warning, match="distinct clusters"):
        reference = SKLearnKMeans(10, init=init, n_init=1).fit(X)
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        km = KMeans(10, init=backend.asarray(init), n_init=1).fit(backend.asarray(X))
    assert km.n_iter_ <= reference.n_iter_
    np.testing.assert_array_equal(backend.to_numpy(km.predict(backend.asarray(X))),
                                  backend.to_numpy(km.labels_))
    # tol=0: the twin centre, exact, may take its points from the mean of
    # their copies (rounded) once; then the labels are stable
    steps = list(lloyd_steps(backend.asarray(X), backend.asarray(init)))
    assert steps[-1].converged and len(steps) <= reference.n_iter_ + 1


def test_cluster_sums_of_moved_points_equal_sums_of_all(backend, monkeypatch):
    from xpkmeans import _lloyd
    from xpkmeans._backend import picks_rows_cheaply, sums_in_pass

    X, _ = data(n=500)
    rng = np.random.default_rng(4)
    before = rng.integers(0, 4, len(X))
    after = before.copy()
    after[:20] = (after[:20] + 1) % 4  # 4% of the points move
    X, before, after = backend.asarray(X), backend.asarray(before), backend.asarray(after)
    xp = backend.xp

    summed_rows = []
    def recording(sum_function):
        def recording_sum(values, *args, **kwargs):
            summed_rows.append(values.shape[0])
            return sum_function(values, *args, **kwargs)
        return recording_sum

    previous = _lloyd._cluster_sums(X, None, before, 4, xp=xp)
    monkeypatch.setattr(_lloyd, "segment_sum", recording(segment_sum))
    monkeypatch.setattr(_lloyd, "sum_by_cluster", recording(_lloyd.sum_by_cluster))
    updated = _lloyd._cluster_sums(X, None, after, 4, xp=xp, previous=previous,
                                   moved_points=_lloyd._sums_by_moved_points(X, None))
    expected = _lloyd._cluster_sums(X, None, after, 4, xp=xp)

    moved_only = picks_rows_cheaply(X) and not sums_in_pass(X)  # not when compiled
    assert summed_rows[0] == (20 if moved_only else 500)
    backend.assert_here(updated.sums, xp.float64)
    np.testing.assert_allclose(backend.to_numpy(updated.sums), backend.to_numpy(expected.sums),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(updated.totals),
                                  backend.to_numpy(expected.totals))
    assert updated.labels is after


def test_m_step_rejects_bad_labels():
    X, centers = data()
    with pytest.raises(ValueError, match="labels.*\\[0, 4\\)"):
        m_step(X, np.full(len(X), 4), centers)
    with pytest.raises(ValueError, match="labels.*shape"):
        m_step(X, np.zeros(3, dtype=int), centers)
    with pytest.raises(TypeError, match="labels.*integers"):
        m_step(X, np.zeros(len(X)), centers)
    with pytest.raises(ValueError, match="centers.*features"):
        e_step(X, centers[:, :2])


def test_lloyd_steps_walk_to_the_kmeans_result(backend):
    X, init = data(seed=3, k=5)
    steps = list(lloyd_steps(backend.asarray(X), backend.asarray(init)))
    km = KMeans(5, init=init, n_init=1, tol=0).fit(X)
    last = steps[-1]
    assert [s.iteration for s in steps] == list(range(1, len(steps) + 1))
    assert last.iteration == km.n_iter_ and last.converged
    np.testing.assert_array_equal(backend.to_numpy(last.labels), km.labels_)
    np.testing.assert_allclose(backend.to_numpy(last.centers), km.cluster_centers_, rtol=1e-10)
    assert last.inertia == pytest.approx(km.inertia_, rel=1e-10)
    backend.assert_here(last.centers, backend.xp.float64)
    backend.assert_here(last.labels)
    np.testing.assert_allclose(backend.to_numpy(steps[0].previous_centers), init, rtol=1e-12)


def test_lloyd_steps_checks_its_arguments_when_called():
    """Not at the first step: a generator function would defer the error."""
    X, _ = data()
    with pytest.raises(ValueError, match=r"^`init` must be a 2-D array of shape "
                                         r"\(n_clusters, n_features\), got ndim=0"):
        lloyd_steps(X, 3)
    with pytest.raises(ValueError, match="^`max_iter` must be >= 1"):
        lloyd_steps(X, X[:2], max_iter=0)


def test_lloyd_steps_stop_at_max_iter():
    X, init = data(seed=3, k=5)
    steps = list(lloyd_steps(X, init, max_iter=2))
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        km = KMeans(5, init=init, max_iter=2, tol=0).fit(X)
    assert len(steps) == 2 and not steps[-1].converged
    np.testing.assert_array_equal(steps[-1].labels, km.labels_)
    assert steps[-1].inertia == pytest.approx(km.inertia_, rel=1e-12)


points = arrays(np.float64, st.tuples(st.integers(8, 40), st.integers(1, 3)),
                elements=st.floats(-100, 100, allow_nan=False, width=32))


@given(X=points, k=st.integers(1, 5), seed=st.integers(0, 2**16))
@example(X=np.array([[-1.0], [1.0], [0.0], [0.0], [0.0], [0.0], [0.0], [0.0]]), k=2, seed=0)
def test_inertia_never_rises_along_em(X, k, seed):
    """Found by hypothesis: two equal starting centres, one cluster emptied and relocated."""
    init = X[np.random.default_rng(seed).choice(len(X), min(k, len(X)), replace=False)]
    inertias = [step.inertia for step in lloyd_steps(X, init)]
    start = reference_e_step(X, init)[1]
    for before, after in zip([start, *inertias], inertias):
        assert after <= before * (1 + 1e-9) + 1e-9


@given(X=points, k=st.integers(1, 5), seed=st.integers(0, 2**16))
@example(X=np.array([[0.0]] + [[1.0]] + [[0.0]] * 7), k=3, seed=0)  # duplicate centres
def test_predict_reproduces_labels_after_converged_fit(X, k, seed):
    import warnings

    from xpkmeans import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicates are drawn often
        km = KMeans(k, random_state=seed, tol=0, max_iter=1000).fit(X)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert np.isfinite(km.inertia_)
    np.testing.assert_allclose(km.inertia_, reference_e_step(X, km.cluster_centers_)[1],
                               rtol=1e-9, atol=1e-9)


@given(X=points, k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_em_moving_only_changed_points_equals_summing_all(X, k, seed):
    from xpkmeans import _lloyd

    init = X[np.random.default_rng(seed).choice(len(X), min(k, len(X)), replace=False)]
    walks = []
    for fraction in (0.0, 1.0):  # never / always move only the changed points
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_lloyd, "_MAX_MOVED_FRACTION", fraction)
            walks.append(list(lloyd_steps(X, init)))
    all_points, moved_points = walks
    assert len(all_points) == len(moved_points)
    for full, updated in zip(all_points, moved_points):
        np.testing.assert_array_equal(updated.labels, full.labels)
        np.testing.assert_allclose(updated.centers, full.centers, rtol=1e-9, atol=1e-9)



@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, before the error
@pytest.mark.parametrize("dtype,value", [("float64", 1e200), ("float64", 1e153),
                                         ("float32", 1e20), ("float32", 1e18)])
def test_zero_tol_skips_the_variance_but_not_the_overflow_check(dtype, value):
    """``tol=0`` needs no sum of squares (scikit-learn reads nothing then):
    0.0 where the squares cannot overflow, and the error of any other tol
    where they can, whichever side of the shortcut's bound X falls."""
    import array_api_compat.numpy as xp_numpy

    from xpkmeans._lloyd import variance_scaled_tol

    rng = np.random.default_rng(0)
    for scale in (1.0, value / 100, value):
        X = (rng.standard_normal((257, 3)) * scale).astype(dtype)
        try:  # a positive tol reads the sum of squares
            variance_scaled_tol(X, 1e-300, xp=xp_numpy)
            overflows = False
        except ValueError:
            overflows = True
        if overflows:
            with pytest.raises(ValueError, match="too large"):
                variance_scaled_tol(X, 0.0, xp=xp_numpy)
        else:
            assert variance_scaled_tol(X, 0.0, xp=xp_numpy) == 0.0
