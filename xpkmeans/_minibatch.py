"""``MiniBatchKMeans``: k-means on random mini-batches, with ``partial_fit``.

scikit-learn's algorithm and semantics (Sculley 2010, with scikit-learn's
early stopping and low-count reassignment), written against the array API:
the batch indices come from the host generator, the batch is gathered on
the device, and each step copies ``k + 2`` numbers to the host (the batch's
per-cluster weights, its inertia and the centre shift), where the counts,
the stopping rule and the reassignment decisions live.

Unlike scikit-learn's, rows are centred, as in ``KMeans``: on the mean of X
(``fit``) or of the first batch (``partial_fit``), kept in ``mean_``. Far
from the origin, float32 distances of raw rows lose the clusters.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

from ._backend import (
    centered,
    device_of,
    from_host,
    host_rng,
    host_xp,
    is_memmap,
    is_sparse,
    nearest_centers,
    parallel_region,
    select_rows,
    sum_by_cluster,
    take_rows,
    to_numpy,
    widest_float_dtype,
)
from . import _dask, _streaming
from ._kmeans import _PARAMETER_CONSTRAINTS, KMeans
from ._lloyd import _inertia, column_means, variance_scaled_tol
from ._validation import (
    draws_as_unweighted,
    as_namespace,
    boolean,
    check_array,
    check_feature_names,
    check_inertia_is_finite,
    check_n_clusters_fits,
    check_sample_weight,
    check_weighted_inertia_is_finite,
    feature_names,
    finite_at_least_zero,
    int_at_least,
    none_or,
    set_feature_names,
)


def _mini_batch_step(
    X: Any, sample_weight: Any, centers: Any, counts: Any, *, xp: Any
) -> tuple[Any, Any, float]:
    """One mini-batch step: E step on the batch, then each centre moves to the
    weighted mean of its old position (weight: its count so far) and its new points.

    Returns the new centres, the batch's per-cluster weights (host) and the
    batch inertia against the old centres (host).
    """
    labels = nearest_centers(X, centers)
    sums, totals = sum_by_cluster(X, labels, centers.shape[0], weights=sample_weight)
    inertia = _inertia(X, sample_weight, centers, labels, xp=xp)
    accumulate = widest_float_dtype(xp, device_of(X))
    host = to_numpy(xp.concat([xp.astype(totals, accumulate),
                               xp.astype(xp.reshape(inertia, (1,)), accumulate)]))
    batch_totals, batch_inertia = host_xp.astype(host[:-1], host_xp.float64), float(host[-1])
    new_counts = counts + batch_totals
    old = from_host(counts, xp=xp, device=device_of(X), dtype=accumulate)[:, None]
    denominator = from_host(host_xp.where(new_counts > 0, new_counts, 1.0), xp=xp,
                            device=device_of(X), dtype=accumulate)[:, None]
    moved = (xp.astype(centers, accumulate) * old + xp.astype(sums, accumulate)) / denominator
    has_points = from_host(batch_totals > 0, xp=xp, device=device_of(X))[:, None]
    new_centers = xp.where(has_points, xp.astype(moved, centers.dtype), centers)
    return new_centers, batch_totals, batch_inertia


#: batch rows are drawn this many steps at a time: one gather from a Dask
#: array, one copy of the indices to a GPU, serves them all
STEPS_PER_DRAW = 32


class _InMemoryRows:
    """X in memory as ``fit`` reads it: rows taken on its device, centred on
    ``mean`` (the Dask counterpart is ``_dask.MiniBatchRows``).

    Rows are centred, as in ``KMeans``: far from the origin, float32
    distances of raw rows lose the clusters (scikit-learn's MiniBatchKMeans
    does not centre: on blobs offset by 3e4 its labels had an adjusted Rand
    index of 0.01)."""

    def __init__(self, X: Any, sample_weight: Any) -> None:
        self.X, self.xp = check_array(X)
        self.weights = check_sample_weight(sample_weight, self.X, self.xp)
        self.n_samples = self.X.shape[0]

    def center(self, mean: Any = None) -> None:
        """Read the rows centred on ``mean`` (None: X's column means), as a
        view: no copy of X. Sparse rows are not centred (``mean`` is 0)."""
        xp, X = self.xp, self.X
        if is_sparse(X):
            self.mean = xp.zeros((X.shape[1],), dtype=X.dtype, device=device_of(X))
            return
        self.mean = column_means(X, xp=xp) if mean is None else xp.astype(mean, X.dtype)
        self.X = centered(X, self.mean, view=True)

    def prepare(self, tol: float) -> float:
        """Centre the rows; the scaled ``tol``, and the overflow check of
        ``KMeans.fit``."""
        self.center()
        return variance_scaled_tol(self.X, tol, xp=self.xp)

    def host_weights(self) -> Any:
        return None if self.weights is None else host_xp.astype(to_numpy(self.weights),
                                                                 host_xp.float64)

    def take(self, rows: Any) -> tuple[Any, Any]:
        """Rows of X (an array) and their weights (all rows for None)."""
        if rows is None:
            rows = host_xp.arange(self.n_samples)
        index = from_host(rows, xp=self.xp, device=device_of(self.X))
        weights = None if self.weights is None else self.xp.take(self.weights, index)
        return select_rows(self.X, index), weights

    def gather(self, rows: Any) -> tuple[Any, Any]:
        """``(source, index)``: row ``rows[i]`` of X is row ``index[i]`` of ``source``."""
        return self.X, from_host(rows, xp=self.xp, device=device_of(self.X))

    def labels_and_inertia(self, centers: Any) -> tuple[Any, float]:
        labels = nearest_centers(self.X, centers)
        return labels, float(_inertia(self.X, self.weights, centers, labels, xp=self.xp))

    def in_chunk_namespace(self, centers: Any) -> Any:
        return centers



_MINIBATCH_CONSTRAINTS: dict[str, Callable[[Any, str], Any]] = {
    "batch_size": int_at_least(1),
    "compute_labels": boolean,
    "max_no_improvement": none_or(int_at_least(0)),
    "init_size": none_or(int_at_least(1)),
    "reassignment_ratio": finite_at_least_zero,
}


class MiniBatchKMeans(KMeans):
    """Mini-batch K-Means, on any array-API backend (scikit-learn's API).

    Each step draws ``batch_size`` points (with replacement, by weight) and
    moves each centre towards the mean of its batch points, with a step that
    shrinks as the centre's count of points grows. ``partial_fit`` runs one
    step on the given batch, for data that arrives in chunks or does not fit
    in memory. Results stay in the input's namespace and on its device.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"}, callable or array of shape (n_clusters, n_features), \
default="k-means++"
        Computed on ``init_size`` points drawn at random.
    max_iter : int, default=100
        Passes over the data: ``max_iter * n_samples // batch_size`` steps at most.
    batch_size : int, default=1024
    verbose : int, default=0
    compute_labels : bool, default=True
        Compute ``labels_`` and ``inertia_`` on the whole data after the fit
        (on the batch after ``partial_fit``).
    random_state : int, numpy.random.Generator or None, default=None
    tol : float, default=0.0
        Stop when the squared centre shift of a step is at most ``tol`` times
        the mean per-feature variance of X (0 disables it).
    max_no_improvement : int or None, default=10
        Stop after this many steps without a new minimum of the smoothed
        (exponentially weighted) batch inertia; None disables it.
    init_size : int or None, default=None
        Points for the initialisation and for choosing among ``n_init``
        starts: ``3 * batch_size`` (at least ``3 * n_clusters``) by default.
    n_init : "auto" or int, default="auto"
        1 for "k-means++" or an array, 3 otherwise; the start of lowest
        inertia on the ``init_size`` validation points wins.
    reassignment_ratio : float, default=0.01
        Centres whose count is below this fraction of the largest count are
        moved to random batch points (every ``10 * n_clusters`` points seen,
        and whenever a centre has no points). ``partial_fit`` counts the rows
        of each batch; scikit-learn's counts the first batch's size at every
        call, so with batches of unequal sizes the two check at other steps.

    Attributes
    ----------
    cluster_centers_, labels_, inertia_, n_features_in_
    n_iter_ : int
        Passes over the data started: ``ceil(n_steps_ * batch_size / n_samples)``.
    n_steps_ : int
        Mini-batch steps run.

    Examples
    --------
    >>> import numpy as np
    >>> from xpkmeans import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]])
    >>> km = MiniBatchKMeans(n_clusters=2, batch_size=6, random_state=0)
    >>> km = km.partial_fit(X[0:6, :]).partial_fit(X[6:12, :])
    >>> km.cluster_centers_.shape
    (2, 2)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: str | int = "auto",
        reassignment_ratio: float = 0.01,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio

    # -------------------------------------------------------------- parameters

    # KMeans' checks of the parameters the two share (no copy_x, algorithm or
    # callback), and the checks of its own
    _parameter_constraints = {
        **{name: check for name, check in _PARAMETER_CONSTRAINTS.items()
           if name not in ("copy_x", "algorithm", "callback")},
        **_MINIBATCH_CONSTRAINTS,
    }

    def _auto_n_init(self, init: Any, explicit: bool) -> int:
        """``n_init="auto"``: 1 for k-means++ and arrays, 3 otherwise (scikit-learn's)."""
        return 1 if explicit or init == "k-means++" else 3

    def _check_minibatch_params(self, n_samples: int) -> tuple[int, int, int, float, int]:
        """n_clusters, max_iter, batch size, tol, n_init, and ``self._init_size``."""
        values = self._checked_params()  # its own parameters too
        params = self._resolve_params(values)
        n_clusters, max_iter, tol, n_init = (
            params.n_clusters, params.max_iter, params.tol, params.n_init
        )
        batch_size = min(values["batch_size"], n_samples)
        init_size = values["init_size"]
        if init_size is None:
            init_size = 3 * batch_size if 3 * batch_size >= n_clusters else 3 * n_clusters
        elif init_size < n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={n_clusters}. "
                "Setting it to min(3*n_clusters, n_samples)",
                RuntimeWarning, stacklevel=3,
            )
            init_size = 3 * n_clusters
        self._init_size = min(init_size, n_samples)
        self._batch_size = batch_size
        return n_clusters, max_iter, batch_size, tol, n_init

    # -------------------------------------------------------------- steps

    def _reset_state(self, n_clusters: int) -> None:
        self._counts = host_xp.zeros(n_clusters, dtype=host_xp.float64)
        self._ewa_inertia = None
        self._ewa_inertia_min = None
        self._no_improvement = 0
        self._n_since_last_reassign = 0

    def _random_reassign(self, batch_size: int) -> bool:
        """Reassign every ``10 * n_clusters`` points seen, or when a centre has none."""
        self._n_since_last_reassign += batch_size
        if host_xp.any(self._counts == 0) or self._n_since_last_reassign >= 10 * self._counts.shape[0]:
            self._n_since_last_reassign = 0
            return True
        return False

    def _step(self, X: Any, sample_weight: Any, centers: Any, rng: Any, *, xp: Any) -> tuple[Any, float]:
        """One step (with reassignment when due): new centres and the batch inertia."""
        new_centers, batch_totals, batch_inertia = _mini_batch_step(
            X, sample_weight, centers, self._counts, xp=xp
        )
        check_inertia_is_finite(batch_inertia, X.dtype)  # before the state changes
        reassign = self._random_reassign(X.shape[0])
        self._counts = self._counts + batch_totals
        if reassign and self.reassignment_ratio > 0:
            new_centers = self._reassign_low_counts(X, new_centers, rng, xp=xp)
        return new_centers, batch_inertia

    def _reassign_low_counts(self, X: Any, centers: Any, rng: Any, *, xp: Any) -> Any:
        """Centres of count below ``reassignment_ratio * max`` jump to random batch points."""
        counts = self._counts
        to_reassign = counts < self.reassignment_ratio * host_xp.max(counts)
        to_reassign[host_xp.argmax(counts)] = False  # a ratio above 1 keeps the largest
        if host_xp.sum(to_reassign) > 0.5 * X.shape[0]:  # at most half the batch
            to_reassign[host_xp.argsort(counts, stable=True)[int(0.5 * X.shape[0]):]] = False
        n_reassigns = int(host_xp.sum(to_reassign))
        if n_reassigns == 0:
            return centers
        if self.verbose:
            print(f"[MiniBatchKMeans] Reassigning {n_reassigns} cluster centers.")
        rows = host_xp.zeros(counts.shape[0], dtype=host_xp.int64)
        rows[to_reassign] = rng.choice(X.shape[0], replace=False, size=n_reassigns)
        device = device_of(X)
        picked = take_rows(X, from_host(rows, xp=xp, device=device))
        mask = from_host(to_reassign, xp=xp, device=device)[:, None]
        # reset the counts of the moved centres, not so low that they move again at once
        counts[to_reassign] = host_xp.min(counts[~to_reassign])
        return xp.where(mask, xp.astype(picked, centers.dtype), centers)

    def _converged(self, step: int, n_steps: int, n_samples: int, shift: float,
                   batch_inertia: float) -> bool:
        """scikit-learn's stopping rule: small centre shift, or no improvement
        of the smoothed batch inertia for ``max_no_improvement`` steps."""
        batch_inertia /= self._batch_size
        self._last_batch_inertia = batch_inertia
        step += 1
        if step == 1:  # the first step's inertia is that of the initial centres
            if self.verbose:
                print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self._ewa_inertia is None:
            self._ewa_inertia = batch_inertia
        else:
            alpha = min(self._batch_size * 2.0 / (n_samples + 1), 1.0)
            self._ewa_inertia = self._ewa_inertia * (1 - alpha) + batch_inertia * alpha
        if self.verbose:
            print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}, "
                  f"ewa inertia: {self._ewa_inertia}")
        if self._tol > 0.0 and shift <= self._tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{n_steps}")
            return True
        if self._ewa_inertia_min is None or self._ewa_inertia < self._ewa_inertia_min:
            self._no_improvement = 0
            self._ewa_inertia_min = self._ewa_inertia
        else:
            self._no_improvement += 1
        if self.max_no_improvement is not None and self._no_improvement >= self.max_no_improvement:
            if self.verbose:
                print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            return True
        return False

    # -------------------------------------------------------------- fitting

    def _set_centers(self, centers: Any, mean: Any) -> None:
        """The fitted state: centres about ``mean`` (the origin the rows were
        centred on), and ``cluster_centers_``, their sum."""
        self.mean_, self._centered_centers = mean, centers
        self.cluster_centers_ = centers + mean

    def _fitted_origin(self, xp: Any, device: Any) -> Any:
        """The origin of the fit so far (0 for centres set by hand)."""
        if getattr(self, "mean_", None) is None:
            return xp.zeros((self.cluster_centers_.shape[1],), device=device)
        return as_namespace(self.mean_, xp, device)

    def _centers_about(self, mean: Any, *, xp: Any, device: Any, fitted_origin: bool) -> Any:
        """The current centres, centred on ``mean``: those of the fit as they
        are where ``mean`` is the fit's origin (``fitted_origin``), else
        ``cluster_centers_`` minus ``mean``."""
        if fitted_origin and self._centers_are_fitted():
            centers = as_namespace(self._centered_centers, xp, device)
        else:
            centers = as_namespace(self.cluster_centers_, xp, device) - mean
        return xp.astype(centers, mean.dtype)

    def _initial_centers(self, data: Any, n_clusters: int, rng: Any, *, xp: Any) -> Any:
        """Centres from ``init`` on ``init_size`` points drawn at random (as scikit-learn)."""
        drawn = rng.integers(0, data.n_samples, self._init_size) if (
            self._init_size < data.n_samples) else None
        X, weights = data.take(drawn)
        if draws_as_unweighted(weights, data.xp):
            weights = None
        if isinstance(self.init, str):
            return self._init_centroids(X, n_clusters, sample_weight=weights, rng=rng, xp=xp)
        # an array, or a callable's centres, are in X's own frame (scikit-learn's)
        mean = xp.asarray(data.mean, device=device_of(X))
        raw = X if is_sparse(X) else X + mean  # sparse rows are not centred
        return self._init_centroids(raw, n_clusters, sample_weight=weights, rng=rng, xp=xp) - mean

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the centres by mini-batch steps over X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Batches are drawn with probability proportional to the weights.

        Returns
        -------
        self : MiniBatchKMeans
        """
        names = feature_names(X)
        if _dask.is_dask_input(X):  # persisted; rows gathered by a compute a draw
            data = _dask.MiniBatchRows(X, sample_weight)
        elif is_memmap(X) or _streaming.is_streamed_input(X):
            # rows read from the file a draw: the same results as in memory
            data = _streaming.MiniBatchRows(X, sample_weight)
        else:
            data = _InMemoryRows(X, sample_weight)
        n_samples, xp = data.n_samples, data.xp
        n_clusters, max_iter, batch_size, tol, n_init = self._check_minibatch_params(n_samples)
        check_n_clusters_fits(n_samples, n_clusters)
        rng = host_rng(self.random_state)
        with parallel_region(xp):
            self._tol = data.prepare(tol)
            X_valid, w_valid = data.take(rng.integers(0, n_samples, self._init_size))
            best = None
            for init_idx in range(n_init):
                if self.verbose:
                    print(f"Init {init_idx + 1}/{n_init} with method {self.init}")
                centers = self._initial_centers(data, n_clusters, rng, xp=xp)
                inertia = float(_inertia(X_valid, w_valid, centers,
                                         nearest_centers(X_valid, centers), xp=xp))
                if self.verbose:
                    print(f"Inertia for init {init_idx + 1}/{n_init}: {inertia}")
                if best is None or inertia < best[1]:
                    best = centers, inertia
            centers = best[0]
            self._reset_state(n_clusters)
            n_steps = (max_iter * n_samples) // batch_size
            weights = data.host_weights()
            p = None if draws_as_unweighted(weights, host_xp) else weights / weights.sum()
            step = 0
            for step in range(n_steps):
                if step % STEPS_PER_DRAW == 0:
                    drawn = rng.choice(n_samples, (min(STEPS_PER_DRAW, n_steps - step), batch_size),
                                       p=p, replace=True)
                    source, index = data.gather(drawn)
                batch = select_rows(source, index[step % STEPS_PER_DRAW, ...])
                new_centers, batch_inertia = self._step(batch, None, centers, rng, xp=xp)
                shift = float(xp.sum((new_centers - centers) ** 2)) if self._tol > 0 else 0.0
                centers = new_centers
                if self._converged(step, n_steps, n_samples, shift, batch_inertia):
                    break
            self._set_centers(data.in_chunk_namespace(centers), data.in_chunk_namespace(data.mean))
            self._random_state = rng  # partial_fit goes on from here
            self.n_features_in_ = centers.shape[1]
            self._n_features_out = n_clusters
            self.n_steps_ = step + 1
            self.n_iter_ = math.ceil((step + 1) * batch_size / n_samples)
            if self.compute_labels:
                self.labels_, self.inertia_ = data.labels_and_inertia(centers)
            else:
                total = n_samples if weights is None else float(weights.sum())
                ewa = self._ewa_inertia  # None after a single step
                self.inertia_ = (self._last_batch_inertia if ewa is None else ewa) * total
            # the batches are drawn by weight and unweighted: only the weighted
            # inertia of all of X can overflow
            check_weighted_inertia_is_finite(self.inertia_)
        set_feature_names(self, names)
        return self

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Update the centres with one mini-batch step on X.

        The first call initialises the centres from X (``init``; ``init_size``
        points at most). ``n_steps_`` counts the calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One batch; later batches must have the same features. A Dask
            array is computed: a batch is one step's data, in memory.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MiniBatchKMeans
        """
        first = not hasattr(self, "cluster_centers_")
        if not first:
            check_feature_names(self, X, stacklevel=2)
        names = feature_names(X)
        if _dask.is_dask_input(X):  # one batch: it comes into memory
            X = X.compute()
        batch = _InMemoryRows(X, sample_weight)
        X, xp, weights = batch.X, batch.xp, batch.weights
        if not first and X.shape[1] != self.n_features_in_:
            msg = (
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
            raise ValueError(msg)
        with parallel_region(xp):
            if first:  # the first batch's mean is the origin of every batch
                n_clusters = self._check_minibatch_params(X.shape[0])[0]
                check_n_clusters_fits(X.shape[0], n_clusters)
                self._random_state = host_rng(self.random_state)
                self._tol = 0.0
                self._reset_state(n_clusters)
                batch.center()
                centers = self._initial_centers(batch, n_clusters, self._random_state, xp=xp)
            else:
                origin = self._fitted_origin(xp, device_of(X))
                batch.center(origin)  # sparse rows stay uncentred: their origin is 0
                centers = self._centers_about(batch.mean, xp=xp, device=device_of(X),
                                              fitted_origin=not is_sparse(batch.X))
            X = batch.take(None)[0]  # the batch, centred
            variance_scaled_tol(X, 0.0, xp=xp)  # the overflow check of ``fit``, before any change
            centers, batch_inertia = self._step(X, weights, centers, self._random_state, xp=xp)
            if first:  # set once the first step went through
                self.n_features_in_ = X.shape[1]
                self._n_features_out = centers.shape[0]
                self.n_steps_ = 0
            self._set_centers(centers, batch.mean)
            if self.compute_labels:
                self.labels_ = nearest_centers(X, centers)
                self.inertia_ = float(_inertia(X, weights, centers, self.labels_, xp=xp))
            self.n_steps_ += 1
        if first:
            set_feature_names(self, names)
        return self

