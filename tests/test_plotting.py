"""Figures: right objects, right data drawn, a real PNG written; any backend as input."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from xpkmeans import KMeans, lloyd_steps, make_blobs  # noqa: E402
from xpkmeans.plotting import (  # noqa: E402
    plot_clusters,
    plot_elbow,
    plot_lloyd_steps,
    plot_seeds,
    plot_silhouette,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _blobs(n_samples=120, n_features=2, centers=3, seed=0):
    X, y = make_blobs(n_samples, n_features, centers=centers, cluster_std=0.8, random_state=seed)
    return np.asarray(X), np.asarray(y)


def _assert_png(fig, tmp_path, name="figure.png"):
    path = tmp_path / name
    fig.savefig(path, dpi=40)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000


def _scatter_offsets(ax):
    """The drawn scatter points of an Axes, one array per scatter call."""
    return [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]


def _n_points(ax):
    return sum(len(offsets) for offsets in _scatter_offsets(ax))


# ------------------------------------------------------------------ plot_clusters


def test_plot_clusters_any_backend(backend, tmp_path):
    X_np, _ = _blobs()
    X = backend.asarray(X_np)
    model = KMeans(3, random_state=0).fit(X)
    fig = plot_clusters(X, model.labels_, model.cluster_centers_, title="three blobs")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "three blobs"
    assert _n_points(ax) == 120 + 3
    drawn = np.concatenate(_scatter_offsets(ax)[:3])
    np.testing.assert_allclose(np.sort(drawn[:, 0]), np.sort(X_np[:, 0]), rtol=1e-6)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["cluster 0", "cluster 1", "cluster 2", "centre"]
    _assert_png(ax.figure, tmp_path)


def test_plot_clusters_without_labels_is_one_grey_cloud():
    X, _ = _blobs()
    fig = plot_clusters(X)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(_scatter_offsets(ax)) == 1
    assert _n_points(ax) == X.shape[0]
    assert ax.get_legend() is None
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 1"


def test_plot_clusters_projects_on_principal_components(tmp_path):
    X, _ = _blobs(n_samples=150, n_features=5, centers=3)
    model = KMeans(3, random_state=0).fit(X)
    fig = plot_clusters(X, model.labels_, model.cluster_centers_)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "principal component 1" in ax.get_xlabel()
    assert "principal component 2" in ax.get_ylabel()
    *clusters, centers = _scatter_offsets(ax)
    # The points are the centred data on the two directions of largest variance.
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    expected = (X - X.mean(axis=0)) @ vt[:2].T
    for cluster, offsets in enumerate(clusters):  # principal axes: up to their sign
        np.testing.assert_allclose(np.abs(offsets), np.abs(expected[model.labels_ == cluster]),
                                   atol=1e-8)
    # Centres are projected the same way: a centre is the mean of its projected points.
    for cluster, offsets in enumerate(clusters):
        np.testing.assert_allclose(centers[cluster], offsets.mean(axis=0), atol=1e-8)
    _assert_png(ax.figure, tmp_path)


def test_plot_clusters_one_feature_uses_jitter():
    X = np.array([[0.0], [0.5], [1.0], [10.0], [10.5], [11.0]])
    centers = np.array([[0.5], [10.5]])
    fig = plot_clusters(X, np.array([0, 0, 0, 1, 1, 1]), centers)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    *clusters, drawn_centers = _scatter_offsets(ax)
    np.testing.assert_allclose(np.concatenate(clusters)[:, 0], X[:, 0])
    np.testing.assert_allclose(drawn_centers, [[0.5, 0.0], [10.5, 0.0]])
    assert "jitter" in ax.get_ylabel()


def test_plot_clusters_draws_into_given_axes():
    X, y = _blobs()
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot_clusters(X, y, ax=right) is fig
    assert _n_points(left) == 0 and _n_points(right) == X.shape[0]


def test_given_axes_in_a_subfigure_return_the_figure_that_saves(tmp_path):
    """README: given ax=, the Figure holding it comes back, so .savefig works
    (ax.figure of an Axes in a SubFigure is the SubFigure, which has no savefig)."""
    from xpkmeans.model_selection import select_n_clusters

    X, y = _blobs(n_samples=60, centers=3)
    fig = Figure(figsize=(18, 10))
    left, middle, right = fig.subfigures(1, 3)
    inner = right.subfigures(2, 1)[0]  # nested too
    returned = [
        plot_clusters(X, y, ax=left.add_subplot()),
        plot_elbow(select_n_clusters(X, range(2, 5), random_state=0), ax=middle.add_subplot()),
        plot_silhouette(X, y, ax=inner.add_subplot()),
    ]
    assert all(r is fig for r in returned)
    _assert_png(returned[0], tmp_path)


def test_plot_clusters_rejects_mismatched_labels():
    X, y = _blobs()
    with pytest.raises(ValueError, match="labels"):
        plot_clusters(X, y[:-1])
    with pytest.raises(ValueError, match="centers"):
        plot_clusters(X, y, np.zeros((3, 5)))


def test_missing_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    X, _ = _blobs()
    with pytest.raises(ImportError, match=r"pip install xpkmeans\[plot\]"):
        plot_clusters(X)


# ------------------------------------------------------------------ plot_lloyd_steps


def _poor_start(X, k):
    return X[np.argsort(X[:, 0])[:k]]


def test_plot_lloyd_steps_grid(backend, tmp_path):
    X_np, _ = _blobs(n_samples=150, centers=4, seed=3)
    X = backend.asarray(X_np)
    steps = list(lloyd_steps(X, backend.asarray(_poor_start(X_np, 4))))
    assert len(steps) > 3  # a poor start takes several iterations
    fig = plot_lloyd_steps(steps, X, max_panels=3, ncols=2)
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 3
    titles = [ax.get_title() for ax in shown]
    assert titles[0].startswith("iteration 1: new inertia ")
    assert titles[-1].startswith(f"iteration {steps[-1].iteration}: new inertia ")
    assert titles[-1].endswith("(converged)")
    assert f"{steps[-1].inertia:.6g}" in titles[-1]
    for ax in shown:  # one arrow per centre: previous -> new
        assert sum(isinstance(child, Annotation) for child in ax.get_children()) == 4
        assert _n_points(ax) == 150 + 4 + 4  # points, previous and new centres
    # The first panel's arrows go from the starting centres to the first M step's means.
    arrows = [c for c in shown[0].get_children() if isinstance(c, Annotation)]
    np.testing.assert_allclose([a.xyann for a in arrows], _poor_start(X_np, 4), rtol=1e-5)
    np.testing.assert_allclose([a.xy for a in arrows], backend.to_numpy(steps[0].centers),
                               rtol=1e-5)
    _assert_png(fig, tmp_path)


def test_plot_lloyd_steps_colours_the_last_panel_by_its_e_step():
    """A run cut by max_iter relabels its last step by the new centres; its
    panel still shows the E step, as the others and the legend say."""
    from xpkmeans import e_step

    X, _ = _blobs(n_samples=150, centers=4, seed=3)
    steps = list(lloyd_steps(X, _poor_start(X, 4), max_iter=2))
    e_labels = e_step(X, steps[-1].previous_centers)[0]
    assert not np.array_equal(e_labels, steps[-1].labels)  # the case under test
    fig = plot_lloyd_steps(steps, X)
    last = [ax for ax in fig.axes if ax.get_visible()][-1]
    sizes = [len(c.get_offsets()) for c in last.collections if isinstance(c, PathCollection)]
    assert sorted(sizes[:len(np.unique(e_labels))]) == sorted(np.bincount(e_labels)[
        np.bincount(e_labels) > 0].tolist())


def test_plot_lloyd_steps_all_panels_when_few():
    X, _ = _blobs(centers=2)
    steps = list(lloyd_steps(X, X[:2]))
    fig = plot_lloyd_steps(iter(steps), X, max_panels=50)
    assert sum(ax.get_visible() for ax in fig.axes) == len(steps)


def test_plot_lloyd_steps_needs_steps():
    X, _ = _blobs()
    with pytest.raises(ValueError, match="empty"):
        plot_lloyd_steps([], X)


# ------------------------------------------------------------------ plot_seeds


def test_plot_seeds_shows_worst_single_start_and_best_of_n_init(tmp_path):
    X, _ = _blobs(n_samples=200, centers=4, seed=3)
    seeds = range(8)
    fig = plot_seeds(X, 4, seeds=seeds, n_init=8)
    assert isinstance(fig, Figure)
    worst_ax, best_ax, bars_ax = fig.axes
    singles = [KMeans(4, init="random", n_init=1, random_state=s).fit(X).inertia_ for s in seeds]
    best = KMeans(4, init="random", n_init=8, random_state=0).fit(X).inertia_
    assert f"inertia {max(singles):.6g}" in worst_ax.get_title()
    assert f"inertia {best:.6g}" in best_ax.get_title()
    heights = [patch.get_height() for patch in bars_ax.patches]
    np.testing.assert_allclose(heights, singles)
    assert best <= max(singles)
    _assert_png(fig, tmp_path)


def test_plot_seeds_counts_the_best_clustering_stopped_early_as_the_best():
    """tol stops fits of one clustering at slightly different inertias: only
    starts of another clustering (by the adjusted Rand index) are red."""
    from matplotlib.colors import to_hex
    from sklearn.metrics import adjusted_rand_score

    X, _ = make_blobs(1000, 2, centers=4, random_state=3)
    seeds = range(20)
    fig = plot_seeds(X, 4, seeds=seeds, n_init=10)
    singles = [KMeans(4, init="random", n_init=1, random_state=s).fit(X) for s in seeds]
    best = KMeans(4, init="random", n_init=10, random_state=0).fit(X)
    other = [adjusted_rand_score(best.labels_, model.labels_) < 1 for model in singles]
    red = [to_hex(patch.get_facecolor()) == to_hex("tab:red") for patch in fig.axes[2].patches]
    assert red == other and 0 < sum(red)
    lowest = min(model.inertia_ for model in singles)
    assert any(not o and model.inertia_ > lowest * (1 + 1e-6)  # stopped early, yet the best
               for o, model in zip(other, singles))
    assert f"{sum(other)} of 20" in fig.axes[2].get_title()


# ------------------------------------------------------------------ plot_elbow


@pytest.mark.parametrize("method", ["silhouette", "elbow"])
def test_plot_elbow(method, tmp_path):
    from xpkmeans.model_selection import select_n_clusters

    X, _ = _blobs(n_samples=160, centers=4, seed=3)
    result = select_n_clusters(X, range(2, 7), method=method, random_state=0)
    fig = plot_elbow(result)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    inertia_line = ax.get_lines()[0]
    np.testing.assert_allclose(inertia_line.get_xdata(), result.n_clusters)
    np.testing.assert_allclose(inertia_line.get_ydata(), result.inertias)
    chosen = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(chosen) == 1 and chosen[0].get_xdata()[0] == result.best_n_clusters
    assert f"best k = {result.best_n_clusters}" in ax.get_title()
    if method == "elbow":
        assert len(ax.figure.axes) == 1
    else:
        (score_ax,) = [other for other in ax.figure.axes if other is not ax]
        np.testing.assert_allclose(score_ax.get_lines()[0].get_ydata(), result.scores)
        assert "silhouette" in score_ax.get_ylabel()
    _assert_png(ax.figure, tmp_path)


# ------------------------------------------------------------------ plot_silhouette


def test_plot_silhouette(tmp_path):
    from sklearn.metrics import silhouette_samples

    X, _ = _blobs(n_samples=150, centers=3)
    labels = KMeans(3, random_state=0).fit(X).labels_
    fig = plot_silhouette(X, labels)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bars) == 3  # one band per cluster
    expected = silhouette_samples(X, labels)
    mean_line = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert mean_line[0].get_xdata()[0] == pytest.approx(expected.mean(), rel=1e-6)
    # Each band's outline reaches its cluster's largest silhouette value.
    widest = sorted(band.get_paths()[0].vertices[:, 0].max() for band in bars)
    np.testing.assert_allclose(widest, sorted(expected[labels == c].max() for c in range(3)),
                               rtol=1e-6)
    _assert_png(ax.figure, tmp_path)


def test_plot_silhouette_any_backend(backend):
    X_np, _ = _blobs(n_samples=90, centers=3)
    X = backend.asarray(X_np)
    labels = KMeans(3, random_state=0).fit(X).labels_
    fig = plot_silhouette(X, labels)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3


# ------------------------------------------------------------------ conventions and edge cases


def _drawn_extent(fig):
    """The bounding box (inches) of everything drawn on ``fig``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return fig.get_tightbbox(canvas.get_renderer())


def test_every_plotting_function_returns_a_figure():
    from xpkmeans.model_selection import select_n_clusters

    X, _ = _blobs(n_samples=60, centers=3)
    model = KMeans(3, random_state=0).fit(X)
    init = X[:3]
    figures = [
        plot_clusters(X, model.labels_, model.cluster_centers_),
        plot_lloyd_steps(lloyd_steps(X, init), X),
        plot_seeds(X, 3, seeds=range(2), n_init=2),
        plot_elbow(select_n_clusters(X, range(2, 4), random_state=0)),
        plot_silhouette(X, model.labels_),
    ]
    assert all(isinstance(fig, Figure) for fig in figures)


@pytest.mark.parametrize("n_steps", [1, 2, 6])
def test_plot_lloyd_steps_title_and_legend_fit_in_the_figure(n_steps):
    X, _ = _blobs(n_samples=200, centers=4, seed=0)
    steps = list(lloyd_steps(X, X[:4] + 3.0, max_iter=n_steps))
    fig = plot_lloyd_steps(steps, X)
    box = _drawn_extent(fig)
    width, height = fig.get_size_inches()
    slack = 0.02
    assert box.x0 >= -slack and box.y0 >= -slack, box
    assert box.x1 <= width + slack and box.y1 <= height + slack, (box, width, height)


@pytest.mark.parametrize("n_features", [1, 2, 4])
def test_plot_clusters_one_row(n_features, tmp_path):
    X = np.arange(n_features, dtype=float)[None, :]
    fig = plot_clusters(X, np.array([0]), X.copy())
    _assert_png(fig, tmp_path)


def test_plot_clusters_one_feature_many_rows(tmp_path):
    X = np.linspace(0.0, 1.0, 7)[:, None]
    fig = plot_clusters(X, np.array([0, 0, 0, 1, 1, 1, 1]), np.array([[0.1], [0.8]]))
    _assert_png(fig, tmp_path)
