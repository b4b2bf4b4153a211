"""The ``KMeans`` estimator and the ``k_means`` function.

A fit reads in three steps: resolve the parameters once (``_resolve_params``,
from the table ``_PARAMETER_CONSTRAINTS``), run ``n_init`` starts with one
EM each (``_run_starts``), keep the run of lowest inertia. Fitted arrays stay
in the namespace and on the device of the training data.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from ._backend import (
    array_namespace,
    blocks_run_compiled,
    check_random_state,
    centered,
    device_of,
    distances_to_centers,
    host_rng,
    is_bool,
    is_sparse,
    legacy_random_state,
    nearest_centers,
    object_array,
    parallel_region,
    refuse_row_blocks,
    segment_count,
    segment_sum,
    shape_of,
    sparse,
    widest_float_dtype,
)
from . import _dask, _streaming
from ._backend._capabilities import check_supported
from ._errors import InputTypeError
from ._hamerly import BoundedNearest
from ._init import INITIALIZERS
from ._lloyd import (
    LloydStep,
    _inertia,
    _kmeans_single_lloyd,
    center_data,
    variance_scaled_tol,
)
from ._sklearn_compat import (
    BaseEstimator,
    ClusterMixin,
    ConvergenceWarning,
    NotFittedError,
    TransformerMixin,
    UNUSED,
)
from ._validation import (
    as_namespace,
    boolean,
    check_array,
    check_centers,
    check_feature_names,
    check_inertia_is_finite,
    check_input_features,
    check_int,
    check_n_clusters_fits,
    check_sample_weight,
    check_tol,
    check_weighted_inertia_is_finite,
    feature_names,
    int_at_least,
    one_of,
    set_feature_names,
)

ALGORITHMS = ("lloyd", "elkan", "hamerly")


# ------------------------------------------------------------------ parameters
# One validator per constructor parameter: ``check(value, name)`` returns the
# value to use or raises a one-line error naming the parameter (in the spirit
# of scikit-learn's ``_parameter_constraints``).


def _verbosity(value: Any, name: str) -> int:
    if is_bool(value):
        return int(value)
    return check_int(value, name, minimum=0)


def _init_method(value: Any, name: str) -> Any:
    if isinstance(value, str) and value not in INITIALIZERS:
        msg = (
            f"Unknown init method {value!r}; use one of {sorted(INITIALIZERS)}, "
            "a callable or an array."
        )
        raise ValueError(msg)
    array_like = hasattr(value, "shape") or hasattr(value, "__array__") or isinstance(
        value, (list, tuple))
    if not isinstance(value, str) and not callable(value) and not array_like:
        msg = (
            f"`{name}` must be one of {sorted(INITIALIZERS)}, a callable or an array of "
            f"shape (n_clusters, n_features), got {value!r}."
        )
        raise InputTypeError(msg)
    return value  # an array is checked against X in the fit


def _n_init(value: Any, name: str) -> str | int:
    if isinstance(value, str):
        if value != "auto":
            msg = f"`{name}` must be 'auto' or an int >= 1, got {value!r}."
            raise ValueError(msg)
        return value
    return check_int(value, name, minimum=1)


def _random_state(value: Any, name: str) -> Any:
    check_random_state(value)  # the generator itself is made per fit
    return value


def _callable_or_none(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        msg = f"`{name}` must be None or a callable, got {value!r}."
        raise InputTypeError(msg)
    return value


_PARAMETER_CONSTRAINTS: dict[str, Callable[[Any, str], Any]] = {
    "n_clusters": int_at_least(1),
    "init": _init_method,
    "n_init": _n_init,
    "max_iter": int_at_least(1),
    "tol": lambda value, name: check_tol(value),
    "verbose": _verbosity,
    "random_state": _random_state,
    "copy_x": boolean,
    "algorithm": one_of(ALGORITHMS),
    "callback": _callable_or_none,
}


@dataclass(frozen=True)
class _FitParams:
    """The constructor's parameters, validated and resolved for one fit."""

    n_clusters: int
    init: Any
    explicit_init: bool  # init is an array of centres
    n_init: int
    max_iter: int
    tol: float  # relative; scaled by X's variance in the fit
    verbose: int
    random_state: Any
    algorithm: str


@dataclass(frozen=True)
class FitProgress:
    """What a ``KMeans`` fit passes to its ``callback`` after each EM iteration.

    Attributes
    ----------
    start : int
        Index of the current initialisation, from 0 to ``n_init - 1``.
    n_init : int
    iteration : int
        EM iteration of this start, from 1.
    max_iter : int
    center_shift : float
        Sum over centres of the squared distance each moved in this iteration.
    tol : float
        The shift at or below which the start has converged (``tol`` scaled
        by the mean variance of the features).
    converged : bool
        This start stopped because it converged (labels unchanged or shift
        within ``tol``).
    last : bool
        This is the start's last iteration (converged or ``max_iter``).
    elapsed : float
        Seconds since the fit began.
    """

    start: int
    n_init: int
    iteration: int
    max_iter: int
    center_shift: float
    tol: float
    converged: bool
    last: bool
    elapsed: float
    _objective: Callable[[], float]

    def inertia(self) -> float:
        """Inertia of this iteration's centres: one more pass over X (on a Dask
        array, one more compute), so call it sparingly."""
        return self._objective()


@dataclass(frozen=True)
class _Run:
    """The result of one start."""

    labels: Any
    inertia: float
    centers: Any  # in the centred frame of the fit
    n_iter: int
    converged: bool


def _is_same_clustering(labels1: Any, labels2: Any, n_clusters: int, *, xp: Any) -> bool:
    """True if ``labels2`` is ``labels1`` up to a renaming of the clusters."""
    values = xp.astype(labels2, widest_float_dtype(xp, device_of(labels2)))[:, None]
    sums, counts = segment_sum(values, labels1, n_clusters)
    mapping = xp.round(sums[:, 0] / xp.where(counts > 0, counts, xp.ones_like(counts)))
    return bool(xp.all(xp.take(mapping, labels1) == xp.astype(labels2, mapping.dtype)))


def _count_nonempty(labels: Any, n_clusters: int, *, xp: Any) -> int:
    return int(xp.sum(xp.astype(segment_count(labels, n_clusters) > 0, xp.int64)))


def _replaces_best(run: Any, best: Any, same_clustering: Callable[[Any, Any], bool]) -> bool:
    """Whether the start ``run`` becomes the best: the first, or one of lower
    inertia that is not the best's clustering renamed (``same_clustering(run,
    best)``, asked only then), as scikit-learn chooses."""
    return best is None or (run.inertia < best.inertia and not same_clustering(run, best))


def _warn_if_not_converged(
    estimator: Any, n_distinct: int, params: _FitParams, converged: bool
) -> None:
    """The fit's ``ConvergenceWarning``: fewer distinct clusters than
    ``n_clusters``, or ``max_iter`` ended the best start. Called by a fit
    function that ``fit`` called (stacklevel: the caller of ``fit``)."""
    if n_distinct < params.n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than "
            f"n_clusters ({params.n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=4,
        )
    elif not converged:
        warnings.warn(
            f"{type(estimator).__name__} did not converge: max_iter={params.max_iter} "
            "iterations ended the fit. Increase max_iter, or tol.",
            ConvergenceWarning,
            stacklevel=4,
        )


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-Means clustering by EM (Lloyd), on any array-API backend.

    The same code runs on NumPy, CuPy, PyTorch (CPU or CUDA) and any other
    array-API library; fitted arrays stay in the input's namespace and device.
    Parameters and results follow :class:`sklearn.cluster.KMeans`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters and centres.
    init : {"k-means++", "k-means||", "random"}, callable or array of shape \
(n_clusters, n_features), default="k-means++"
        "k-means++": greedy k-means++ (``2 + log(k)`` local trials per centre,
        each drawn with probability proportional to ``weight * D(x)^2``); it
        reads X once per centre.
        "k-means||": scalable k-means++ (Bahmani et al. 2012): 5 rounds, each
        drawing ``2 * n_clusters`` candidates by ``weight * D(x)^2``, then greedy
        k-means++ over the candidates weighted by the points nearest to them.
        Its passes over X are 6 rounds whatever ``n_clusters`` (greedy
        k-means++: one per centre): choose it when ``n_clusters`` is in the
        hundreds or more, or X is large, distributed or on a GPU; the final
        inertia is about that of "k-means++".
        "random": ``n_clusters`` distinct points drawn by weight. A callable
        is called as ``init(X, n_clusters, random_state=rng)`` with the
        centred data and a ``numpy.random.RandomState`` (as in scikit-learn)
        drawing from the fit's generator. An array gives the
        starting centres. The named initialisations honour ``sample_weight``
        and give one seed the same centres on every backend.
    n_init : "auto" or int, default="auto"
        Number of initialisations; the lowest inertia wins. "auto" means 1 for
        "k-means++", "k-means||" or an array, 10 for "random" or a callable.
    max_iter : int, default=300
        Maximum EM iterations per initialisation.
    tol : float, default=1e-4
        Convergence when the summed squared centre shift is at most ``tol``
        times the mean per-feature variance of X. The fit also stops as soon
        as no label changes.
    verbose : int or bool, default=0
        Print the inertia at each iteration (an extra pass over X each).
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the host generator used for initialisation; one seed gives
        the same clustering on every backend.
    copy_x : bool, default=True
        Accepted (and checked) for scikit-learn compatibility. xpkmeans never
        modifies X.
    algorithm : {"lloyd", "elkan", "hamerly"}, default="lloyd"
        How the E step finds the nearest centres. "lloyd" compares every
        point with every centre. "hamerly" keeps two distance bounds per point
        and recomputes only the points whose bounds overlap: the same labels,
        centres and iterations (up to points equally far from two centres
        within rounding), and much less work once few points move: faster
        on long fits with many clusters, slower on fits of a few iterations.
        Picking those points out has a data-dependent shape, so it runs only
        where the capabilities table (``xpkmeans/_backend/_capabilities.py``)
        says; elsewhere the fit warns (``FallbackWarning``) and runs "lloyd".
        "elkan" (scikit-learn's bounded Lloyd, with k + 1 bounds per point)
        runs these same two bounds: the same results as scikit-learn's
        "elkan", with memory of two numbers per point instead of k + 1.
    callback : callable, default=None
        Called as ``callback(progress)`` after every EM iteration of every
        start, with a :class:`FitProgress` (start, iteration, centre shift
        against tol, elapsed time; ``progress.inertia()`` on demand). For
        progress bars; its return value is ignored.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : int64 array of shape (n_samples,)
        Index of each sample's centre; int64 on every backend (scikit-learn's
        are int32), as ``predict`` gives.
    inertia_ : float
        Sum of (weighted) squared distances of samples to their nearest centre.
    n_iter_ : int
        EM iterations of the best run. When it ends at ``max_iter`` without
        converging, the fit warns (``ConvergenceWarning``).
    n_features_in_ : int
    mean_ : array of shape (n_features,)
        Column means of the training data. Distances are computed on data
        centred by them, as in the fit, while ``cluster_centers_`` are those
        of the fit. Centres set by hand need no ``mean_``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpkmeans import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        n_init: str | int = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        callback: Callable[[FitProgress], Any] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.callback = callback

    # -------------------------------------------------------------- parameters

    # the parameters of this estimator and their checks (a subclass may name fewer)
    _parameter_constraints = _PARAMETER_CONSTRAINTS

    # ``predict`` takes ``sample_weight`` and ignores it (scikit-learn's has
    # none): metadata routing must not request it, or the composed request of
    # ``fit_predict`` (fit's and predict's) conflicts once fit's is set
    __metadata_request__predict = {"sample_weight": UNUSED}

    def _checked_params(self) -> dict[str, Any]:
        """Every parameter through its check (``_parameter_constraints``)."""
        return {
            name: check(getattr(self, name), name)
            for name, check in self._parameter_constraints.items()
        }

    def _resolve_params(self, values: dict[str, Any] | None = None) -> _FitParams:
        """The checked parameters (``_checked_params``, checked here unless
        given) with ``n_init`` resolved."""
        values = self._checked_params() if values is None else values
        init = values["init"]
        explicit = not isinstance(init, str) and not callable(init)
        n_init = values["n_init"]
        if n_init == "auto":
            n_init = self._auto_n_init(init, explicit)
        elif explicit and n_init != 1:
            warnings.warn(
                "Explicit initial center position passed: performing only one "
                f"init in {type(self).__name__} instead of n_init={n_init}.",
                RuntimeWarning,
                stacklevel=4,
            )
            n_init = 1
        return _FitParams(
            n_clusters=values["n_clusters"], init=init, explicit_init=explicit,
            n_init=n_init, max_iter=values["max_iter"], tol=values["tol"],
            verbose=values["verbose"], random_state=values["random_state"],
            algorithm=values.get("algorithm", "lloyd"),
        )

    def _auto_n_init(self, init: Any, explicit: bool) -> int:
        """``n_init="auto"``: 1 for k-means++, k-means|| and arrays, 10 otherwise."""
        return 1 if explicit or init in ("k-means++", "k-means||") else 10

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            msg = (
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this estimator."
            )
            raise NotFittedError(msg)

    def _check_fitted_on(self, X: Any) -> None:
        """Fitted, and X's column names (if any) are those of the fit."""
        self._check_fitted()
        check_feature_names(self, X, stacklevel=3)

    def _check_test_data(self, X: Any) -> tuple[Any, Any, Any]:
        """X for predict/transform/score and the centres, in X's namespace and
        the wider of X's and the centres' dtypes; and X's own dtype.

        The fitted state is ``cluster_centers_`` (set by ``fit`` or by hand)
        and, after ``fit``, ``mean_``: when the centres are those of the fit,
        X and centres are centred by it, the arithmetic of ``fit``, so that
        ``predict(X_train)`` equals ``labels_``.
        """
        self._check_fitted()
        X, xp = check_array(X)
        n_features = self._n_center_features()
        if X.shape[1] != n_features:
            msg = (
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{n_features} features as input."
            )
            raise ValueError(msg)
        device, own_dtype = device_of(X), X.dtype
        if is_sparse(X):  # sparse data is never centred
            centers = self._given_centers(xp, device)
            dtype = xp.result_type(own_dtype, centers.dtype)
            return sparse.as_csr(X, dtype), xp.astype(centers, dtype), own_dtype
        origin, centers = self._prediction_frame(xp, device)  # in the centres' dtype
        dtype = xp.result_type(own_dtype, centers.dtype)
        origin, centers = xp.astype(origin, dtype), xp.astype(centers, dtype)
        return centered(xp.astype(X, dtype), origin), centers, own_dtype

    def _prediction_frame(self, xp: Any, device: Any) -> tuple[Any, Any]:
        """The origin that X is centred on for predict/transform/score, and the
        centres about it, in ``xp`` on ``device``: the fit's mean and centred
        centres (so that ``predict(X_train)`` equals ``labels_``), or for
        centres set by hand their own mean (float32 distances far from the
        origin lose the clusters)."""
        if self._centers_are_fitted():  # also for X of another library or device
            return (as_namespace(self.mean_, xp, device),
                    as_namespace(self._centered_centers, xp, device))
        centers = self._given_centers(xp, device)
        origin = xp.mean(centers, axis=0)
        return origin, centers - origin

    def _n_center_features(self) -> int:
        """The features of ``cluster_centers_`` (of the fit, or set by hand:
        an array of any library, or nested lists), which must be 2-D."""
        shape = shape_of(self.cluster_centers_)
        if len(shape) != 2:
            msg = ("`cluster_centers_` must be a 2-D array of shape (n_clusters, n_features), "
                   f"got shape {shape}.")
            raise ValueError(msg)
        return shape[1]

    def _given_centers(self, xp: Any, device: Any) -> Any:
        """``cluster_centers_`` in ``xp`` on ``device``; centres set by hand are
        checked as ``init`` is (finite real numbers): NaN centres had given NaN
        distances and arbitrary labels."""
        centers = as_namespace(self.cluster_centers_, xp, device, name="cluster_centers_")
        return check_array(centers, name="cluster_centers_")[0]

    def _centers_are_fitted(self) -> bool:
        """True while ``cluster_centers_`` are those of the fit (not set by hand).

        A comparison of values, not of identity: pickling keeps the values.
        """
        centered = getattr(self, "_centered_centers", None)
        if centered is None or getattr(self, "mean_", None) is None:
            return False
        try:
            xp = array_namespace(centered)
            fitted = centered + self.mean_
            return tuple(fitted.shape) == shape_of(self.cluster_centers_) and bool(
                xp.all(fitted == self.cluster_centers_)
            )
        except (TypeError, ValueError, RuntimeError):  # another namespace or device
            return False

    # -------------------------------------------------------------- fitting

    def _init_centroids(self, X, n_clusters, *, sample_weight, rng, xp):
        init = self.init
        if isinstance(init, str):
            return INITIALIZERS[init](X, n_clusters, sample_weight=sample_weight, rng=rng, xp=xp)
        if callable(init):
            centers = init(X, n_clusters, random_state=legacy_random_state(rng))
        else:
            centers = init
        centers = check_centers(centers, X, xp, name="init")
        if centers.shape[0] != n_clusters:
            msg = (
                f"The shape of the initial centers {tuple(centers.shape)} does not match "
                f"the number of clusters {n_clusters}."
            )
            raise ValueError(msg)
        return centers

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "KMeans":
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: any array-API array (fitted arrays stay in its
            namespace and on its device), or a list / NumPy-convertible object.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each observation; None gives weight 1.

        Returns
        -------
        self : KMeans
        """
        names = feature_names(X)
        if _dask.is_dask_input(X):  # Dask: the EM runs inside Dask (_dask.py)
            _dask.fit(self, X, sample_weight)
        elif _streaming.is_streamed_input(X):  # RowBlocks: out of core (_streaming.py)
            _streaming.fit(self, X, sample_weight)
        else:
            self._fit(X, sample_weight)
        set_feature_names(self, names)
        return self

    def _fit(self, X: Any, sample_weight: Any = None) -> "KMeans":
        """``fit``: resolve the parameters, run the starts, keep the best."""
        params = self._resolve_params()
        X, xp = check_array(X)
        # the whole fit: BLAS never wakes its own threads (nor, for torch CPU
        # tensors that the compiled kernels read, does NumPy's: its gemv of the
        # mean woke two OpenBLAS threads, which then spun on the cores of the
        # passes: a torch CPU fit took 2x a NumPy one)
        with parallel_region(xp, compiled=blocks_run_compiled(X)):
            check_n_clusters_fits(X.shape[0], params.n_clusters)
            weights = check_sample_weight(sample_weight, X, xp)
            X_centered, X_mean = center_data(X, xp=xp)
            scaled_tol = variance_scaled_tol(X_centered, params.tol, xp=xp)
            best = self._run_starts(X, X_centered, X_mean, weights, params, scaled_tol, xp=xp)
            distinct = _count_nonempty(best.labels, params.n_clusters, xp=xp)
        _warn_if_not_converged(self, distinct, params, best.converged)
        self.cluster_centers_ = best.centers + X_mean
        self.mean_ = X_mean
        self._centered_centers = best.centers
        self.labels_ = best.labels
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        self.n_features_in_ = X.shape[1]
        self._n_features_out = params.n_clusters
        return self

    def _run_starts(
        self, X: Any, X_centered: Any, X_mean: Any, weights: Any, params: _FitParams,
        scaled_tol: float, *, xp: Any,
    ) -> _Run:
        """``n_init`` initialisations, one EM each; the run of lowest inertia."""
        bounded = params.algorithm != "lloyd" and check_supported(
            f"algorithm={params.algorithm!r}", X, stacklevel=4
        )

        def initial_centers(rng: Any) -> Any:
            if params.explicit_init:
                return self._init_centroids(
                    X, params.n_clusters, sample_weight=weights, rng=rng, xp=xp
                ) - X_mean
            return self._init_centroids(
                X_centered, params.n_clusters, sample_weight=weights, rng=rng, xp=xp
            )

        def objective(centers: Any) -> float:
            labels = nearest_centers(X_centered, centers)
            return float(_inertia(X_centered, weights, centers, labels, xp=xp))

        def lloyd(centers: Any, report: Callable[[LloydStep], None]) -> tuple:
            return _kmeans_single_lloyd(
                X_centered, weights, centers, max_iter=params.max_iter, tol=scaled_tol,
                xp=xp, verbose=params.verbose, callback=report,
                nearest=BoundedNearest(X_centered, xp=xp) if bounded else None,
            )

        def finish(result: tuple, converged: bool, best: _Run | None) -> _Run:
            return _Run(*result, converged)

        def same_clustering(run: _Run, best: _Run) -> bool:
            return _is_same_clustering(run.labels, best.labels, params.n_clusters, xp=xp)

        return self._best_of_starts(params, scaled_tol, initial_centers=initial_centers,
                                    objective=objective, lloyd=lloyd, finish=finish,
                                    same_clustering=same_clustering)

    def _best_of_starts(
        self, params: _FitParams, scaled_tol: float, *,
        initial_centers: Callable[[Any], Any], objective: Callable[[Any], float],
        lloyd: Callable[[Any, Callable[[LloydStep], None]], Any],
        finish: Callable[[Any, bool, Any], Any], same_clustering: Callable[[Any, Any], bool],
    ) -> Any:
        """The loop over ``n_init`` starts, wherever X lives (in memory, Dask,
        row blocks): per start, ``initial_centers(rng)``, then ``lloyd(centers,
        report)`` and ``finish(its result, converged, best)``, the start's run;
        the best run by ``_replaces_best``. ``objective(centers)`` is the
        inertia of centres, which only the callback asks for."""
        rng = host_rng(params.random_state)
        started = time.perf_counter()
        best = None
        for start in range(params.n_init):
            centers = initial_centers(rng)
            if params.verbose:
                print("Initialization complete")
            converged: list[bool] = []
            report = self._progress_reporter(
                objective, params, scaled_tol, start, started, converged
            )
            run = finish(lloyd(centers, report), converged[-1], best)
            check_weighted_inertia_is_finite(run.inertia)
            if _replaces_best(run, best, same_clustering):
                best = run
            del centers, run  # the next start runs without them (k x d each)
        return best

    def _progress_reporter(
        self, objective: Callable[[Any], float], params: _FitParams, scaled_tol: float,
        start: int, started: float, converged: list,
    ) -> Callable[[LloydStep], None]:
        """The per-iteration hook of one start (in memory and on Dask): keeps
        whether its last step converged (not the step, which holds the centres
        before it) and calls ``callback``; ``objective(centers)`` is the
        inertia of centres (a pass over X), asked for only by the callback."""
        def report(step: LloydStep) -> None:
            converged[:1] = [step.converged]  # not the step: its previous centres go
            if self.callback is None:
                return

            def inertia() -> float:
                return step.inertia if step.inertia is not None else objective(step.centers)

            self.callback(FitProgress(
                start=start, n_init=params.n_init, iteration=step.iteration,
                max_iter=params.max_iter, center_shift=step.center_shift, tol=scaled_tol,
                converged=step.converged,
                last=step.converged or step.iteration == params.max_iter,
                elapsed=time.perf_counter() - started, _objective=inertia,
            ))

        return report

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        labels : integer array of shape (n_samples,), in X's namespace
        """
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return the distances of X to the centres (see ``transform``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        distances : array of shape (n_samples, n_clusters), in X's namespace
        """
        refuse_row_blocks(X, "X")  # before the fit, not after
        if _dask.is_dask_input(X):  # read once: the fit and the distances share its chunks
            X = X.persist()
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # -------------------------------------------------------------- using the fit

    def predict(self, X: Any, sample_weight: Any = None) -> Any:
        """Index of the nearest centre for each sample of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), default=None
            Validated, then ignored: weights do not change which centre is
            nearest (scikit-learn's ``predict`` took them until 1.5). Metadata
            routing requests none (``set_predict_request`` does not exist).

        Returns
        -------
        labels : integer array of shape (n_samples,), in X's namespace
        """
        self._check_fitted_on(X)
        if _dask.is_dask_input(X):  # Dask: a lazy Dask array (_dask.py)
            return _dask.predict(self, X, sample_weight)
        X, centers, _ = self._check_test_data(X)
        check_sample_weight(sample_weight, X, array_namespace(X))
        return nearest_centers(X, centers)

    def transform(self, X: Any) -> Any:
        """Euclidean distance of each sample to each centre.

        The result has shape (n_samples, n_clusters): it is what was asked for,
        so it is the one place an n x k matrix is built. Distances are computed
        in the widest float of the device, from X and centres in the wider of
        their dtypes, and returned in X's dtype (float32 X on a float64 model:
        float32, where scikit-learn returns float64).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        distances : array of shape (n_samples, n_clusters), in X's namespace
        """
        self._check_fitted_on(X)
        if _dask.is_dask_input(X):  # Dask: a lazy Dask array (_dask.py)
            return _dask.transform(self, X)
        X, centers, dtype = self._check_test_data(X)
        return array_namespace(X).astype(distances_to_centers(X, centers), dtype, copy=False)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X on the fitted centres.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
            Minus the sum of (weighted) squared distances to the nearest centres.
        """
        self._check_fitted_on(X)
        if _dask.is_dask_input(X):  # Dask: one compute (_dask.py)
            return _dask.score(self, X, sample_weight)
        X, centers, _ = self._check_test_data(X)
        xp = array_namespace(X)
        weights = check_sample_weight(sample_weight, X, xp)
        labels = nearest_centers(X, centers)
        return -check_inertia_is_finite(float(_inertia(X, weights, centers, labels, xp=xp)),
                                        X.dtype)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """Output names for ``transform``: ``kmeans0`` ... ``kmeans{k-1}``.
        ``input_features``, if given, must be the names of the fit's features
        (checked as scikit-learn does; they do not change the output)."""
        self._check_fitted()
        check_input_features(self, input_features, self._n_center_features())
        prefix = type(self).__name__.lower()
        return object_array([f"{prefix}{i}" for i in range(self._n_features_out)])

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn hook
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        # transform answers in X's dtype (ClusterMixin's tags say none is kept)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True
        return tags


def k_means(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    init: Any = "k-means++",
    n_init: str | int = "auto",
    max_iter: int = 300,
    verbose: int = 0,
    tol: float = 1e-4,
    random_state: Any = None,
    copy_x: bool = True,
    algorithm: str = "lloyd",
    return_n_iter: bool = False,
) -> tuple:
    """Run k-means clustering; the function form of :class:`KMeans`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_clusters : int
    sample_weight : array-like of shape (n_samples,), default=None
    init : {"k-means++", "k-means||", "random"}, callable or array, default="k-means++"
    n_init : "auto" or int, default="auto"
    max_iter : int, default=300
    verbose : int, default=0
    tol : float, default=1e-4
    random_state : int, numpy.random.Generator, RandomState or None, default=None
    copy_x : bool, default=True
    algorithm : {"lloyd", "elkan", "hamerly"}, default="lloyd"
        Each as in :class:`KMeans`.
    return_n_iter : bool, default=False
        Also return the number of iterations of the best start.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
    labels : integer array of shape (n_samples,)
    inertia : float
    n_iter : int
        Only when ``return_n_iter`` is True.
    """
    est = KMeans(
        n_clusters=n_clusters, init=init, n_init=n_init, max_iter=max_iter,
        verbose=verbose, tol=tol, random_state=random_state, copy_x=copy_x,
        algorithm=algorithm,
    ).fit(X, sample_weight=sample_weight)
    result = (est.cluster_centers_, est.labels_, est.inertia_)
    return result + (est.n_iter_,) if return_n_iter else result
