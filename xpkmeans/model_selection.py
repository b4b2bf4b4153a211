"""Choosing the number of clusters: fit K-Means for each candidate k and score it.

Criteria sit in one table, ``CRITERIA``, name -> how to score a fit and how to
pick the best k:

- ``"silhouette"``: mean silhouette coefficient, highest wins;
- ``"calinski_harabasz"``: variance ratio, highest wins;
- ``"davies_bouldin"``: cluster similarity, lowest wins;
- ``"elbow"``: the knee of the inertia curve (Kneedle, see ``knee_point``).

The fits and the scores run in the namespace and on the device of ``X``;
only one number per k comes back to the host.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


from . import _dask
from ._backend import device_of
from ._errors import InputTypeError
from ._kmeans import KMeans
from ._validation import check_array, check_int
from .metrics import (
    _sample_rows,
    _subsample_indices,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

__all__ = ["CRITERIA", "ClusterSelection", "Criterion", "knee_point", "select_n_clusters"]


# ------------------------------------------------------------------ picking the best k

# On the [0, 1] rescaled axes, a point less than this below the chord is on it
# (a straight line must not show a knee from rounding errors).
_KNEE_TOLERANCE = 1e-9


def _index_of_max(scores: Sequence[float]) -> int:
    """Position of the largest score (ties: the first, i.e. the smallest k)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _index_of_min(scores: Sequence[float]) -> int:
    """Position of the smallest score (ties: the first, i.e. the smallest k)."""
    return min(range(len(scores)), key=lambda i: (scores[i], i))


def _index_of_knee(n_clusters: Sequence[int], inertias: Sequence[float]) -> int:
    """Position of the knee of an increasing-k inertia curve (see ``knee_point``)."""
    k_first, k_last = n_clusters[0], n_clusters[-1]
    low, high = min(inertias), max(inertias)
    if high == low:  # a flat curve has no knee
        return 0
    x = [(k - k_first) / (k_last - k_first) for k in n_clusters]
    y = [(inertia - low) / (high - low) for inertia in inertias]
    # height of the chord joining the first and last points, minus the curve
    gaps = [y[0] + (y[-1] - y[0]) * x_i - y_i for x_i, y_i in zip(x, y)]
    best = _index_of_max(gaps)
    return best if gaps[best] > _KNEE_TOLERANCE else 0


def knee_point(n_clusters: Sequence[int], inertias: Sequence[float]) -> int:
    """The k at the knee ("elbow") of an inertia curve, by the Kneedle idea.

    k and inertia are both rescaled to ``[0, 1]``; the knee is the point that
    lies farthest below the straight line joining the first and the last
    point of the curve (the vertical gap, which on the rescaled axes ranks
    points as the perpendicular distance does). A curve with no point below
    that line by more than 1e-9 (straight, concave or flat) has no knee: the
    smallest k is returned.

    Parameters
    ----------
    n_clusters : sequence of int
        At least 3 distinct values, in increasing order.
    inertias : sequence of float
        The inertia of the fit with each number of clusters.

    Returns
    -------
    k : int
        An element of ``n_clusters``.

    References
    ----------
    V. Satopaa, J. Albrecht, D. Irwin and B. Raghavan (2011). "Finding a
    'Kneedle' in a Haystack: Detecting Knee Points in System Behavior".
    ICDCS Workshops, 166-171.

    Examples
    --------
    >>> knee_point([1, 2, 3, 4, 5, 6], [100.0, 40.0, 12.0, 10.0, 9.0, 8.5])
    3
    """
    ks = [check_int(k, "n_clusters[i]", minimum=1) for k in n_clusters]
    values = [float(v) for v in inertias]
    if len(ks) != len(values):
        msg = (
            f"`n_clusters` and `inertias` must have the same length, got {len(ks)} "
            f"and {len(values)}."
        )
        raise ValueError(msg)
    if len(ks) < 3:
        msg = f"A knee needs at least 3 points, got {len(ks)}."
        raise ValueError(msg)
    if any(later <= earlier for earlier, later in zip(ks, ks[1:])):
        msg = f"`n_clusters` must be strictly increasing, got {ks}."
        raise ValueError(msg)
    return ks[_index_of_knee(ks, values)]


# ------------------------------------------------------------------ criteria table


@dataclass(frozen=True)
class Criterion:
    """How one method scores a fit and picks the best number of clusters.

    Attributes
    ----------
    score : callable or None
        ``score(X, labels) -> float``; None scores a fit by its inertia.
    higher_is_better : bool
        The direction of ``score`` (inertia: lower is better).
    best_index : callable
        ``best_index(n_clusters, scores) -> int``: position of the best k.
    min_candidates : int
        Fewest values of k the method can choose from.
    """

    score: Callable[[Any, Any], float] | None
    higher_is_better: bool
    best_index: Callable[[Sequence[int], Sequence[float]], int]
    min_candidates: int = 1

    @property
    def needs_labels(self) -> bool:
        """True for cluster-validity metrics, which need ``2 <= k <= n_samples - 1``."""
        return self.score is not None


CRITERIA: dict[str, Criterion] = {
    "silhouette": Criterion(
        silhouette_score, True, lambda ks, scores: _index_of_max(scores)
    ),
    "calinski_harabasz": Criterion(
        calinski_harabasz_score, True, lambda ks, scores: _index_of_max(scores)
    ),
    "davies_bouldin": Criterion(
        davies_bouldin_score, False, lambda ks, scores: _index_of_min(scores)
    ),
    "elbow": Criterion(None, False, _index_of_knee, min_candidates=3),
}


# ------------------------------------------------------------------ result


@dataclass(frozen=True)
class ClusterSelection:
    """Scores of K-Means for several numbers of clusters, and the best one.

    Attributes
    ----------
    n_clusters : tuple of int
        The candidate numbers of clusters, in increasing order.
    scores : tuple of float
        The score of the method for each k (for "elbow": the inertias).
    inertias : tuple of float
        The inertia of the fit for each k.
    best_n_clusters : int
        The chosen k.
    method : str
        The criterion used, a key of ``CRITERIA``.
    higher_is_better : bool
        The direction of ``scores`` (for "elbow", False: the best k is the
        knee, not the lowest inertia).
    models : tuple of KMeans
        The fitted estimator for each k.
    """

    n_clusters: tuple[int, ...]
    scores: tuple[float, ...]
    inertias: tuple[float, ...]
    best_n_clusters: int
    method: str
    higher_is_better: bool
    models: tuple = field(repr=False, compare=False)

    @property
    def best_model(self) -> KMeans:
        """The fitted ``KMeans`` with ``best_n_clusters`` clusters."""
        return self.models[self.n_clusters.index(self.best_n_clusters)]


# ------------------------------------------------------------------ validation


def _check_method(method: Any) -> Criterion:
    if not isinstance(method, str) or method not in CRITERIA:
        msg = f"Unknown method {method!r}; use one of {sorted(CRITERIA)}."
        raise ValueError(msg)
    return CRITERIA[method]


def _check_candidates(
    n_clusters: Any, n_samples: int, *, method: str, criterion: Criterion
) -> tuple[int, ...]:
    """The distinct candidate k, sorted, each valid for ``method`` on n_samples."""
    if isinstance(n_clusters, (numbers.Number, str)):
        msg = (
            "`n_clusters` must be a sequence of ints such as range(2, 11), got "
            f"{n_clusters!r} of type {type(n_clusters).__name__}."
        )
        raise InputTypeError(msg)
    try:
        values = list(n_clusters)
    except TypeError as e:
        msg = (
            "`n_clusters` must be a sequence of ints such as range(2, 11), got "
            f"an object of type {type(n_clusters).__name__}."
        )
        raise InputTypeError(msg) from e
    if not values:
        msg = "`n_clusters` must hold at least one number of clusters, got none."
        raise ValueError(msg)
    lowest = 2 if criterion.needs_labels else 1
    highest = n_samples - 1 if criterion.needs_labels else n_samples
    candidates = []
    for i, k in enumerate(values):
        k = check_int(k, f"n_clusters[{i}]", minimum=lowest)
        if k > highest:
            msg = (
                f"`n_clusters[{i}]`={k} is too large: method={method!r} needs "
                f"n_clusters <= {highest} for n_samples={n_samples}."
            )
            raise ValueError(msg)
        candidates.append(k)
    if len(set(candidates)) != len(candidates):
        msg = f"`n_clusters` must not repeat a value, got {candidates}."
        raise ValueError(msg)
    if len(candidates) < criterion.min_candidates:
        msg = (
            f"method={method!r} needs at least {criterion.min_candidates} values of "
            f"n_clusters, got {len(candidates)}."
        )
        raise ValueError(msg)
    return tuple(sorted(candidates))


# ------------------------------------------------------------------ selection


def select_n_clusters(
    X: Any,
    n_clusters: Sequence[int] = range(2, 11),
    *,
    method: str = "silhouette",
    random_state: Any = None,
    n_init: str | int = "auto",
    sample_weight: Any = None,
    silhouette_sample_size: int | None = None,
    progress: Callable[[int, float, Any], Any] | None = None,
    **kmeans_params: Any,
) -> ClusterSelection:
    """Fit K-Means for each candidate number of clusters and pick the best.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any array-API array; the fits stay in its namespace and on its device.
    n_clusters : sequence of int, default=range(2, 11)
        Candidate numbers of clusters, distinct; they are tried in increasing
        order. The metric methods need ``2 <= k <= n_samples - 1``; "elbow"
        accepts ``1 <= k <= n_samples`` and needs at least 3 candidates.
    method : {"silhouette", "calinski_harabasz", "davies_bouldin", "elbow"}, \
default="silhouette"
        How to score a fit and choose k (see ``CRITERIA``):

        - "silhouette": :func:`~xpkmeans.metrics.silhouette_score`, highest wins;
        - "calinski_harabasz": :func:`~xpkmeans.metrics.calinski_harabasz_score`,
          highest wins;
        - "davies_bouldin": :func:`~xpkmeans.metrics.davies_bouldin_score`,
          lowest wins;
        - "elbow": the knee of the inertia curve (:func:`knee_point`).

        Ties go to the smallest k. The metrics ignore ``sample_weight``.
    random_state : int, numpy.random.Generator or None, default=None
        Passed to every ``KMeans``; also draws the silhouette subsample.
    n_init : "auto" or int, default="auto"
        Passed to every ``KMeans``.
    sample_weight : array-like of shape (n_samples,), default=None
        Passed to every ``KMeans.fit`` (and so weighs the inertias).
    silhouette_sample_size : int, default=None
        With method="silhouette", score every k on the same random subset of
        this many samples: the silhouette costs O(n_samples^2). None scores
        all samples.
    progress : callable, default=None
        Called as ``progress(k, score, model)`` after each candidate is fitted
        and scored (the score is the inertia for "elbow").
    **kmeans_params
        Further ``KMeans`` parameters (``init``, ``max_iter``, ``tol``, ...).

    Returns
    -------
    ClusterSelection
        Per-k scores, inertias and fitted models, and ``best_n_clusters``.

    Raises
    ------
    ValueError
        For an unknown method, or candidates that the method cannot score.
    TypeError
        If ``n_clusters`` is not a sequence of ints, or ``progress`` not callable.

    Examples
    --------
    >>> from xpkmeans import make_blobs
    >>> from xpkmeans.model_selection import select_n_clusters
    >>> X, _ = make_blobs(300, centers=[[0, 0], [10, 0], [0, 10]], random_state=0)
    >>> select_n_clusters(X, range(2, 7), random_state=0).best_n_clusters
    3
    """
    criterion = _check_method(method)
    if progress is not None and not callable(progress):
        msg = f"`progress` must be None or a callable, got {progress!r}."
        raise TypeError(msg)
    lazy = _dask.is_dask_input(X)
    X_fitted = X
    if lazy:  # the source read once, not by every fit and score; a frame keeps its names
        X_fitted = X.persist()
        X = _dask.check_dask_array(X_fitted)
    else:  # the fits take X as given: a data frame's names stay with the models
        X, xp = check_array(X)
    candidates = _check_candidates(
        n_clusters, X.shape[0], method=method, criterion=criterion
    )
    X_scored = X
    if silhouette_sample_size is not None:
        if method != "silhouette":
            msg = (
                "`silhouette_sample_size` applies only to method='silhouette', "
                f"got method={method!r}."
            )
            raise ValueError(msg)
        sample_size = check_int(silhouette_sample_size, "silhouette_sample_size", minimum=1)
        if min(sample_size, X.shape[0]) <= max(candidates):
            msg = (
                f"`silhouette_sample_size`={sample_size} must exceed the largest n_clusters "
                f"({max(candidates)}): a silhouette needs fewer clusters than points."
            )
            raise ValueError(msg)
        if lazy:  # the sampled rows of X and of each fit's labels, computed per fit
            sample = _sample_rows(X.shape[0], sample_size, random_state)
        else:
            sample = _subsample_indices(
                X.shape[0], sample_size, random_state, xp=xp, device=device_of(X)
            )
            X_scored = xp.take(X, sample, axis=0)
    elif lazy and method == "silhouette":  # before any fit, not after all of them
        msg = (
            "method='silhouette' scores data in memory; on a Dask array give a "
            "silhouette_sample_size (those rows are computed), or use another method."
        )
        raise InputTypeError(msg)

    models, scores = [], []
    for k in candidates:
        model = KMeans(k, random_state=random_state, n_init=n_init, **kmeans_params)
        model.fit(X_fitted, sample_weight=sample_weight)
        if criterion.score is None:
            scores.append(float(model.inertia_))
        else:
            labels = model.labels_
            if lazy and silhouette_sample_size is not None:
                X_scored, labels = _dask.rows_in_memory(X, labels, sample)
            elif X_scored is not X:
                labels = xp.take(labels, sample)
            scores.append(float(criterion.score(X_scored, labels)))
        models.append(model)
        if progress is not None:
            progress(k, scores[-1], model)

    best = criterion.best_index(candidates, scores)
    return ClusterSelection(
        n_clusters=candidates,
        scores=tuple(scores),
        inertias=tuple(float(model.inertia_) for model in models),
        best_n_clusters=candidates[best],
        method=method,
        higher_is_better=criterion.higher_is_better,
        models=tuple(models),
    )
