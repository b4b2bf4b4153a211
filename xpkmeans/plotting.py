"""Figures for learning k-means: clusters, EM steps, seeds, choosing k.

Every function takes arrays from any backend (NumPy, CuPy, PyTorch, ...),
copies them to the host with ``to_numpy`` and draws with matplotlib's object
API. Every one returns the ``matplotlib.figure.Figure`` it drew on (given
``ax=``, the Figure that holds that Axes; ``fig.axes`` lists the Axes) and
never calls ``plt.show()``. Save with ``fig.savefig("name.png")``; in a notebook the
returned figure displays itself.

matplotlib is an optional dependency: ``pip install xpkmeans[plot]``.
Data with more than two features is drawn on its first two principal
components (computed on the host); one feature is drawn against a random
vertical jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ._backend import host_xp, to_numpy

__all__ = [
    "plot_clusters",
    "plot_elbow",
    "plot_lloyd_steps",
    "plot_seeds",
    "plot_silhouette",
]

_INSTALL_HINT = "pip install xpkmeans[plot]"

# Marker area (points^2) times the number of points: markers shrink as data grows.
_POINT_AREA_BUDGET = 12_000.0

_SCORE_NAMES = {
    "silhouette": "mean silhouette score",
    "calinski_harabasz": "Calinski-Harabasz score",
    "davies_bouldin": "Davies-Bouldin score",
    "elbow": "inertia",
}


# ------------------------------------------------------------------ matplotlib


def _figure_class() -> Any:
    """``matplotlib.figure.Figure``, or an ImportError that says what to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        msg = f"xpkmeans plotting needs matplotlib: {_INSTALL_HINT}"
        raise ImportError(msg) from e
    return Figure


def _new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    """``ax`` itself, or the single Axes of a new Figure."""
    if ax is not None:
        return ax
    Figure = _figure_class()
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _figure_of(ax: Any) -> Any:
    """The top-level ``Figure`` that holds ``ax`` (for an Axes of a ``SubFigure``,
    ``ax.figure`` is the SubFigure, which has no ``savefig``)."""
    figure = ax.figure
    while figure.figure is not figure:  # a SubFigure's .figure is the root Figure
        figure = figure.figure
    return figure


def _cluster_colors(n_colors: int) -> np.ndarray:
    """One RGBA colour per cluster: tab10, tab20, then a continuous map."""
    from matplotlib import colormaps

    if n_colors <= 10:
        return colormaps["tab10"](np.arange(n_colors))
    if n_colors <= 20:
        return colormaps["tab20"](np.arange(n_colors))
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_colors))


def _point_size(n_points: int) -> float:
    return float(np.clip(_POINT_AREA_BUDGET / max(n_points, 1), 1.0, 25.0))


# ------------------------------------------------------------------ host data


def _host_data(X: Any) -> np.ndarray:
    X = np.asarray(to_numpy(X), dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        msg = f"`X` must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}."
        raise ValueError(msg)
    return X


def _host_labels(labels: Any, n_samples: int) -> np.ndarray:
    labels = np.asarray(to_numpy(labels)).reshape(-1)
    if labels.shape[0] != n_samples:
        msg = f"`labels` must have shape ({n_samples},) to match X, got {labels.shape}."
        raise ValueError(msg)
    if labels.dtype.kind not in "iub":
        msg = f"`labels` must be integers, got dtype {labels.dtype}."
        raise TypeError(msg)
    if labels.size and labels.min() < 0:
        msg = f"`labels` must be >= 0, got {labels.min()}."
        raise ValueError(msg)
    return labels.astype(np.int64)


@dataclass(frozen=True)
class _Plane:
    """A map from feature space to the 2-D plane of the plot.

    Two features: identity. More: projection on the first two principal
    components of the data. One: the feature against a fixed random jitter.
    """

    mean: np.ndarray
    components: np.ndarray | None  # (2, n_features) for PCA, else None
    xlabel: str
    ylabel: str

    @classmethod
    def fit(cls, X: np.ndarray, feature_names: Sequence[str] | None = None) -> "_Plane":
        n_features = X.shape[1]
        names = list(feature_names) if feature_names is not None else None
        if names is not None and len(names) != n_features:
            msg = f"`feature_names` has {len(names)} names but X has {n_features} features."
            raise ValueError(msg)
        mean = X.mean(axis=0)
        if n_features == 1:
            xlabel = names[0] if names else "feature 0"
            return cls(mean, None, xlabel, "random jitter (spreads the points; no meaning)")
        if n_features == 2:
            xlabel, ylabel = names if names else ("feature 0", "feature 1")
            return cls(mean, None, xlabel, ylabel)
        _, singular, vt = np.linalg.svd(X - mean, full_matrices=False)
        # fewer rows than two (one point): the missing component is zero
        components = np.zeros((2, n_features))
        components[: vt.shape[0]] = vt[:2]
        # Deterministic signs: the largest loading of each component is positive.
        signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
        components = components * np.where(signs == 0, 1.0, signs)[:, None]
        variance = singular**2
        share = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
        share = np.concatenate([share, np.zeros(2)])
        return cls(
            mean,
            components,
            f"principal component 1 ({share[0]:.0%} of variance)",
            f"principal component 2 ({share[1]:.0%} of variance)",
        )

    def project(self, points: np.ndarray, *, jitter_seed: int = 0) -> np.ndarray:
        """``points`` (n, n_features) in plot coordinates (n, 2)."""
        if self.components is not None:
            return (points - self.mean) @ self.components.T
        if points.shape[1] == 2:
            return points
        jitter = np.random.default_rng(jitter_seed).uniform(-1.0, 1.0, points.shape[0])
        return np.column_stack([points[:, 0], jitter])

    def project_centers(self, centers: np.ndarray) -> np.ndarray:
        """Centres in plot coordinates; with one feature they sit at jitter 0."""
        if self.components is None and centers.shape[1] == 1:
            return np.column_stack([centers[:, 0], np.zeros(centers.shape[0])])
        return self.project(centers)

    def label(self, ax: Any) -> None:
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        if self.components is None and self.ylabel.startswith("random jitter"):
            ax.set_yticks([])


def _host_centers(centers: Any, n_features: int) -> np.ndarray:
    centers = np.asarray(to_numpy(centers), dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != n_features:
        msg = (
            f"`centers` must have shape (n_clusters, {n_features}) to match X, "
            f"got {centers.shape}."
        )
        raise ValueError(msg)
    return centers


# ------------------------------------------------------------------ drawing pieces


def _point_handle(color: Any, label: str) -> Any:
    """A legend entry for a point of ``color`` (the plotted points may be tiny)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", linestyle="", markersize=7, markeredgewidth=0,
                  color=color, label=label)


def _center_handle(label: str) -> Any:
    """A neutral legend entry for the centres' crosses."""
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="X", linestyle="", markersize=13, markerfacecolor="white",
                  markeredgecolor="black", markeredgewidth=1.5, label=label)


def _scatter_points(
    ax: Any, points: np.ndarray, labels: np.ndarray | None, colors: np.ndarray
) -> list[Any]:
    """Draw the points, one colour per cluster; return their legend entries."""
    size = _point_size(points.shape[0])
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, color="0.35", alpha=0.7, linewidths=0)
        return [_point_handle("0.35", "data point")]
    handles = []
    for cluster in np.unique(labels):
        rows = labels == cluster
        ax.scatter(points[rows, 0], points[rows, 1], s=size, color=colors[cluster],
                   alpha=0.75, linewidths=0)
        handles.append(_point_handle(colors[cluster], f"cluster {cluster}"))
    return handles


def _draw_centers(ax: Any, centers: np.ndarray, colors: np.ndarray, *, label: str) -> Any:
    """Centres as large crosses in their cluster's colour; return a legend entry."""
    ax.scatter(
        centers[:, 0], centers[:, 1], s=220, marker="X", c=colors[: centers.shape[0]],
        edgecolors="black", linewidths=1.5, zorder=4,
    )
    return _center_handle(label)


def _palette_for(labels: np.ndarray | None, centers: np.ndarray | None) -> np.ndarray:
    n = 1
    if labels is not None and labels.size:
        n = max(n, int(labels.max()) + 1)
    if centers is not None:
        n = max(n, centers.shape[0])
    return _cluster_colors(n)


# ------------------------------------------------------------------ public functions


def plot_clusters(
    X: Any,
    labels: Any = None,
    centers: Any = None,
    *,
    ax: Any = None,
    title: str | None = None,
    feature_names: Sequence[str] | None = None,
) -> Any:
    """Scatter plot of the data, coloured by cluster, with the centres.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any backend. More than two features are drawn on the first two
        principal components of X (the centres are projected the same way);
        one feature is drawn against a random vertical jitter.
    labels : integer array of shape (n_samples,), default=None
        Cluster of each point; None draws all points in grey.
    centers : array of shape (n_clusters, n_features), default=None
        Drawn as large crosses in their cluster's colour.
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new Figure.
    title : str, default=None
    feature_names : sequence of str, default=None
        Axis labels when X has one or two features.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure of ``ax`` (the top-level Figure when ``ax`` is in a
        SubFigure); ``fig.axes[0]`` is the plot when ``ax`` is None.
    """
    data = _host_data(X)
    host_labels = None if labels is None else _host_labels(labels, data.shape[0])
    host_centers = None if centers is None else _host_centers(centers, data.shape[1])
    ax = _new_axes(ax, (7.5, 5.5))
    plane = _Plane.fit(data, feature_names)
    colors = _palette_for(host_labels, host_centers)
    handles = _scatter_points(ax, plane.project(data), host_labels, colors)
    if len(handles) > 10:  # a legend of many colours helps nobody
        handles = []
    if host_centers is not None:
        handles.append(
            _draw_centers(ax, plane.project_centers(host_centers), colors, label="centre")
        )
    plane.label(ax)
    if title is not None:
        ax.set_title(title)
    if host_labels is not None or host_centers is not None:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", frameon=False)
    return _figure_of(ax)


def _select_panels(n_steps: int, max_panels: int) -> list[int]:
    """Indices of the steps to draw: all, or evenly spaced with first and last."""
    if n_steps <= max_panels:
        return list(range(n_steps))
    return sorted({int(round(i)) for i in np.linspace(0, n_steps - 1, max_panels)})


def plot_lloyd_steps(
    steps: Iterable[Any],
    X: Any,
    *,
    max_panels: int = 6,
    ncols: int = 3,
    title: str | None = None,
) -> Any:
    """A grid of EM iterations: labels, and each centre's move in the M step.

    Each panel is one iteration: points are coloured by the E step (their
    nearest centre at the start of the iteration), hollow circles are those
    starting centres, arrows lead to the new centres of the M step (crosses).

    Parameters
    ----------
    steps : iterable of LloydStep
        For example ``list(lloyd_steps(X, init))``.
    X : array of shape (n_samples, n_features)
        The data the steps were computed on (any backend).
    max_panels : int, default=6
        With more steps, evenly spaced ones are drawn, always with the first
        and the last.
    ncols : int, default=3
        Panels per row.
    title : str, default=None
        Figure title; None gives a one-line explanation of the E and M steps.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    from ._lloyd import e_step

    steps = list(steps)
    if not steps:
        msg = "`steps` is empty; pass the steps of lloyd_steps(X, init)."
        raise ValueError(msg)
    if max_panels < 1 or ncols < 1:
        msg = f"`max_panels` and `ncols` must be >= 1, got {max_panels} and {ncols}."
        raise ValueError(msg)
    data = _host_data(X)
    plane = _Plane.fit(data)
    points = plane.project(data)
    chosen = _select_panels(len(steps), max_panels)
    ncols = min(ncols, len(chosen))
    nrows = -(-len(chosen) // ncols)

    Figure = _figure_class()
    # at least as wide as the longest legend entry (6.5 inches)
    fig = Figure(figsize=(max(4.2 * ncols, 6.5), 3.8 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, index in zip(axes, chosen):
        step = steps[index]
        labels = _host_labels(step.labels, data.shape[0])
        if index == len(steps) - 1:  # the last step's labels may be those of its new centres
            labels = _host_labels(
                e_step(data, _host_centers(step.previous_centers, data.shape[1]))[0],
                data.shape[0])
        previous = plane.project_centers(_host_centers(step.previous_centers, data.shape[1]))
        new = plane.project_centers(_host_centers(step.centers, data.shape[1]))
        colors = _cluster_colors(new.shape[0])
        _scatter_points(ax, points, labels, colors)
        ax.scatter(previous[:, 0], previous[:, 1], s=110, facecolors="white",
                   edgecolors="black", linewidths=1.5, zorder=3)
        for start, end in zip(previous, new):
            ax.annotate("", xy=end, xytext=start, zorder=5,
                        arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.6})
        _draw_centers(ax, new, colors, label="")
        inertia = "" if step.inertia is None else f": new inertia {step.inertia:.6g}"
        done = " (converged)" if step.converged else ""
        ax.set_title(f"iteration {step.iteration}{inertia}{done}", fontsize="medium")
        plane.label(ax)
        ax.label_outer()
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    shown = ""
    if len(chosen) < len(steps):
        shown = f" ({len(chosen)} of {len(steps)} iterations shown)"
    default_title = ("K-means EM. E step: colour each point by its nearest centre. "
                     "M step: move each centre to the mean of its points (arrow).")
    width = fig.get_size_inches()[0]
    fig.suptitle(_wrap(title or default_title + shown, width, _SUPTITLE_CHARS_PER_INCH),
                 fontsize="large")
    from matplotlib.lines import Line2D

    handles = [
        _point_handle("0.5", "point, coloured by its nearest centre before the step (E step)"),
        Line2D([], [], marker="o", linestyle="", markersize=10, markerfacecolor="white",
               markeredgecolor="black", markeredgewidth=1.5, label="centre before the step"),
        _center_handle("centre after the step = mean of its points (M step)"),
    ]
    # three entries side by side need about 11.5 inches; a narrower figure stacks them
    fig.legend(handles=handles, loc="outside lower center", ncols=3 if width >= 12 else 1,
               frameon=False)
    return fig


# Characters of a "large" title per inch of figure width (DejaVu Sans, 12 pt at 100 dpi).
_SUPTITLE_CHARS_PER_INCH = 11.0


def _wrap(text: str, width_inches: float, chars_per_inch: float) -> str:
    """``text`` with each of its lines wrapped to fit ``width_inches``."""
    import textwrap

    columns = max(20, int(width_inches * chars_per_inch))
    return "\n".join(textwrap.fill(line, columns) for line in text.split("\n"))


@dataclass(frozen=True)
class _SeedComparison:
    """Single-start fits, one per seed, and the best of ``n_init`` starts."""

    seeds: tuple[int, ...]
    single_inertias: tuple[float, ...]
    worst: Any  # the fitted KMeans of the highest inertia
    worst_seed: int
    best: Any  # KMeans(n_init=n_init) fitted
    n_init: int
    init: str
    # per single start: it ends at the best minimum (the best's clustering,
    # or an inertia within rounding of the lowest); tol stops fits of the
    # same clustering at slightly different inertias
    at_best: tuple[bool, ...]


def _compare_seeds(
    X: Any, n_clusters: int, *, seeds: Iterable[int], n_init: int, init: str,
    max_iter: int, random_state: Any,
) -> _SeedComparison:
    from ._kmeans import KMeans, _is_same_clustering

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        msg = "`seeds` must list at least one seed."
        raise ValueError(msg)
    singles = [
        KMeans(n_clusters, init=init, n_init=1, max_iter=max_iter, random_state=seed).fit(X)
        for seed in seeds
    ]
    inertias = tuple(float(model.inertia_) for model in singles)
    worst_index = int(np.argmax(inertias))
    best = KMeans(
        n_clusters, init=init, n_init=n_init, max_iter=max_iter, random_state=random_state
    ).fit(X)
    lowest = min(min(inertias), float(best.inertia_))
    best_labels = to_numpy(best.labels_)
    at_best = tuple(
        inertia <= lowest * (1 + 1e-6)
        or _is_same_clustering(to_numpy(model.labels_), best_labels, n_clusters, xp=host_xp)
        for model, inertia in zip(singles, inertias)
    )
    return _SeedComparison(
        seeds, inertias, singles[worst_index], seeds[worst_index], best, n_init, init, at_best
    )


def _draw_seed_comparison(X: Any, comparison: _SeedComparison, *, title: str | None = None) -> Any:
    Figure = _figure_class()
    fig = Figure(figsize=(15.5, 5.0), layout="constrained")
    worst_ax, best_ax, bars_ax = fig.subplots(
        1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 0.8]}
    )
    worst, best = comparison.worst, comparison.best
    n_runs = len(comparison.seeds)
    same = comparison.at_best[int(np.argmax(comparison.single_inertias))]
    plot_clusters(X, worst.labels_, worst.cluster_centers_, ax=worst_ax,
                  title=f"worst of {n_runs} single starts "
                        f"(n_init=1, seed {comparison.worst_seed})\n"
                        f"inertia {worst.inertia_:.6g}"
                        + (" (same as the best)" if same else ": a bad local minimum"))
    plot_clusters(X, best.labels_, best.cluster_centers_, ax=best_ax,
                  title=f"best of n_init={comparison.n_init} starts (what KMeans keeps)\n"
                        f"inertia {best.inertia_:.6g}")
    for ax in (worst_ax, best_ax):
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()

    inertias = np.asarray(comparison.single_inertias)
    bad = ~np.asarray(comparison.at_best)
    bars_ax.bar(np.arange(n_runs), inertias, color=np.where(bad, "tab:red", "tab:green"))
    bars_ax.axhline(best.inertia_, color="black", linestyle="--",
                    label=f"best of n_init={comparison.n_init}")
    bars_ax.set_xticks(np.arange(n_runs), [str(s) for s in comparison.seeds],
                       fontsize="small" if n_runs <= 20 else "xx-small")
    bars_ax.set_xlabel("seed of the single start (random_state)")
    bars_ax.set_ylabel("inertia after EM (lower is better)")
    bars_ax.set_title(f"inertia of each single start: {int(bad.sum())} of {n_runs}\n"
                      "end in a worse local minimum (red)")
    bars_ax.set_ylim(0, 1.2 * inertias.max())  # room for the legend above the bars
    bars_ax.legend(loc="upper right", fontsize="small")
    fig.suptitle(
        title
        or "EM only finds a local minimum, which depends on the start "
        f"(init={comparison.init!r}).\n"
        "The cure: several starts (n_init) and keeping the one of lowest inertia.",
        fontsize="large",
    )
    return fig


def plot_seeds(
    X: Any,
    n_clusters: int,
    *,
    seeds: Iterable[int] = range(20),
    n_init: int = 10,
    init: str = "random",
    max_iter: int = 300,
    random_state: Any = 0,
    title: str | None = None,
) -> Any:
    """Why ``n_init`` matters: the worst single start next to the best of several.

    Fits one ``KMeans(n_init=1)`` per seed, draws the one of highest inertia
    (often a bad local minimum: two centres share a blob, one centre spans
    two), then ``KMeans(n_init=n_init)``, and a bar chart of every single
    start's inertia.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    n_clusters : int
    seeds : iterable of int, default=range(20)
        ``random_state`` of each single-start fit.
    n_init : int, default=10
        Starts of the fit drawn on the right.
    init : {"random", "k-means++"}, default="random"
        "random" shows bad minima more often than k-means++.
    max_iter : int, default=300
    random_state : int or None, default=0
        Seed of the ``n_init`` fit.
    title : str, default=None
        Figure title; None explains local minima in one sentence.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    _figure_class()
    comparison = _compare_seeds(
        X, n_clusters, seeds=seeds, n_init=n_init, init=init, max_iter=max_iter,
        random_state=random_state,
    )
    return _draw_seed_comparison(X, comparison, title=title)


def plot_elbow(result: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Inertia against k with the chosen k marked, and the score curve.

    Parameters
    ----------
    result : ClusterSelection
        From :func:`xpkmeans.model_selection.select_n_clusters`. For a
        score-based method (silhouette, Calinski-Harabasz, Davies-Bouldin)
        the score is drawn on a second y axis on the right.
    ax : matplotlib Axes, default=None
    title : str, default=None

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure of ``ax`` (the top-level Figure when ``ax`` is in a
        SubFigure); with ``ax`` None, its Axes are the inertia axes and, for a
        score method, their twin with the score (``fig.axes``).
    """
    ks = np.asarray(result.n_clusters, dtype=np.int64)
    inertias = np.asarray(result.inertias, dtype=np.float64)
    best = int(result.best_n_clusters)
    ax = _new_axes(ax, (8.0, 5.0))
    inertia_color, score_color = "tab:blue", "tab:orange"
    lines = ax.plot(ks, inertias, "o-", color=inertia_color,
                    label="inertia (within-cluster sum of squares)")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("inertia (lower = tighter clusters)", color=inertia_color)
    ax.tick_params(axis="y", labelcolor=inertia_color)
    ax.set_xticks(ks)
    chosen = ax.axvline(best, color="tab:red", linestyle="--", linewidth=1.5,
                        label=f"chosen k = {best}")
    handles = [*lines, chosen]
    if result.method != "elbow":
        score_ax = ax.twinx()
        name = _SCORE_NAMES.get(result.method, result.method)
        better = "higher" if result.higher_is_better else "lower"
        scores = np.asarray(result.scores, dtype=np.float64)
        handles[1:1] = score_ax.plot(ks, scores, "s-", color=score_color,
                                     label=f"{name} ({better} is better)")
        score_ax.plot([best], scores[ks == best], "*", color="tab:red", markersize=18, zorder=5)
        score_ax.set_ylabel(f"{name} ({better} is better)", color=score_color)
        score_ax.tick_params(axis="y", labelcolor=score_color)
    else:
        ax.plot([best], inertias[ks == best], "*", color="tab:red", markersize=18, zorder=5)
    if result.method == "elbow":
        default_title = (f"Choosing k by the elbow of the inertia: best k = {best}\n"
                         "past the elbow, more clusters reduce the inertia only a little")
    else:
        default_title = (f"Choosing k by the {_SCORE_NAMES.get(result.method, result.method)}: "
                         f"best k = {best}\ninertia always falls as k grows, so it cannot "
                         "choose k on its own")
    ax.set_title(title or default_title)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3,
              fontsize="small", frameon=False)
    return _figure_of(ax)


def plot_silhouette(
    X: Any, labels: Any, *, ax: Any = None, title: str | None = None
) -> Any:
    """Classic silhouette plot: each cluster's sorted silhouette values as bars.

    A point's silhouette is ``(b - a) / max(a, b)``, with ``a`` its mean
    distance to its own cluster and ``b`` to the nearest other cluster: near
    1 it sits well inside its cluster, near 0 on a border, below 0 it is
    probably in the wrong cluster. The dashed line is the mean (the
    silhouette score). Costs O(n_samples^2) distances.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    labels : integer array of shape (n_samples,)
    ax : matplotlib Axes, default=None
    title : str, default=None

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure of ``ax`` (the top-level Figure when ``ax`` is in a
        SubFigure).
    """
    from .metrics import silhouette_samples

    _figure_class()
    data = _host_data(X)
    host_labels = _host_labels(labels, data.shape[0])
    values = np.asarray(to_numpy(silhouette_samples(X, labels)), dtype=np.float64)
    ax = _new_axes(ax, (7.0, 5.5))
    clusters = np.unique(host_labels)
    colors = _cluster_colors(int(host_labels.max()) + 1)
    gap = max(2, data.shape[0] // 50)
    lower = gap
    for cluster in clusters:
        cluster_values = np.sort(values[host_labels == cluster])
        upper = lower + cluster_values.shape[0]
        ax.fill_betweenx(np.arange(lower, upper), 0, cluster_values,
                         facecolor=colors[cluster], edgecolor=colors[cluster], alpha=0.8)
        ax.text(-0.03, (lower + upper) / 2, str(cluster), ha="right", va="center",
                fontsize="small")
        lower = upper + gap
    mean = float(values.mean())
    ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean silhouette = {mean:.3f}")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlim(min(-0.1, float(values.min()) - 0.05), 1.0)
    ax.set_ylim(0, lower)
    ax.set_yticks([])
    ax.set_xlabel("silhouette value (1: well inside its cluster, 0: on a border, <0: misplaced)")
    ax.set_ylabel("points, grouped by cluster (cluster number at left)")
    ax.set_title(title or f"Silhouette plot, k = {len(clusters)}: mean {mean:.3f}")
    ax.legend(loc="lower right", fontsize="small")
    return _figure_of(ax)
