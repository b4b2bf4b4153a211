"""The ``KMeans`` estimator and the ``k_means`` function.

The estimator validates, centres the data, runs ``n_init`` initialisations
with one EM each (``_lloyd``) and keeps the run of lowest inertia. Fitted
arrays stay in the namespace and on the device of the training data.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ._backend import (
    array_namespace,
    device_of,
    host_rng,
    is_sparse,
    map_row_blocks,
    nearest_centers,
    parallel_region,
    picks_rows_cheaply,
    segment_sum,
    sparse,
    widest_float_dtype,
)
from ._hamerly import BoundedNearest
from ._init import INITIALIZERS
from ._lloyd import _inertia, _kmeans_single_lloyd, center_data
from ._sklearn_compat import (
    BaseEstimator,
    ClusterMixin,
    ConvergenceWarning,
    NotFittedError,
    TransformerMixin,
)
from ._validation import (
    as_namespace,
    check_array,
    check_centers,
    check_int,
    check_n_clusters_fits,
    check_sample_weight,
    check_tol,
)

ALGORITHMS = ("lloyd", "hamerly")


def _tolerance(X_centered: Any, tol: float, *, xp: Any) -> float:
    """``tol`` scaled by the mean per-feature variance of X (scikit-learn's rule).

    Also the check that squared distances, and their sum, fit the dtype:
    values near the square root of the dtype's maximum would make them infinite.
    Sparse X is not centred: the mean of its column variances (scikit-learn's rule).
    """
    if is_sparse(X_centered):
        accumulate = widest_float_dtype(xp, device_of(X_centered))
        return sparse.mean_column_variance(X_centered, xp=xp, accumulate=accumulate) * tol
    n_values = X_centered.shape[0] * X_centered.shape[1]
    largest = float(xp.finfo(X_centered.dtype).max)
    scale = float(xp.max(xp.stack([xp.max(X_centered), -xp.min(X_centered)])))
    if scale * scale * n_values <= largest:  # no square can overflow
        total_variance = _sum_of_squares(X_centered, xp=xp)
    else:  # a Python float: an overflow gives inf, without a warning
        total_variance = _sum_of_squares(X_centered, scale=scale, xp=xp) * scale * scale
    if not total_variance <= largest / 4:
        msg = (
            f"`X` has values too large for {X_centered.dtype}: their squared distances "
            "overflow. Rescale X (e.g. divide by its largest absolute value)."
        )
        raise ValueError(msg)
    return total_variance / n_values * tol


def _sum_of_squares(X: Any, *, xp: Any, scale: float = 1.0) -> float:
    """Sum of the squares of ``X / scale``, in row blocks (no n x d temporary)."""
    def block_sum(rows: slice) -> Any:
        block = X[rows, :] / scale if scale != 1.0 else X[rows, :]
        return xp.sum(block * block)

    blocks = map_row_blocks(block_sum, X.shape[0], X.shape[1], xp=xp, device=device_of(X))
    return float(xp.sum(xp.stack(blocks)))


def _is_same_clustering(labels1: Any, labels2: Any, n_clusters: int, *, xp: Any) -> bool:
    """True if ``labels2`` is ``labels1`` up to a renaming of the clusters."""
    values = xp.astype(labels2, widest_float_dtype(xp, device_of(labels2)))[:, None]
    sums, counts = segment_sum(values, labels1, n_clusters)
    mapping = xp.round(sums[:, 0] / xp.where(counts > 0, counts, xp.ones_like(counts)))
    return bool(xp.all(xp.take(mapping, labels1) == xp.astype(labels2, mapping.dtype)))


def _count_nonempty(labels: Any, n_clusters: int, *, xp: Any) -> int:
    ones = xp.ones((labels.shape[0], 1), dtype=xp.float32, device=device_of(labels))
    return int(xp.sum(xp.astype(segment_sum(ones, labels, n_clusters)[1] > 0, xp.int64)))


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-Means clustering by EM (Lloyd), on any array-API backend.

    The same code runs on NumPy, CuPy, PyTorch (CPU or CUDA) and any other
    array-API library; fitted arrays stay in the input's namespace and device.
    Parameters and results follow :class:`sklearn.cluster.KMeans`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters and centres.
    init : {"k-means++", "random"}, callable or array of shape (n_clusters, n_features), \
default="k-means++"
        "k-means++": greedy k-means++ (``2 + log(k)`` local trials per centre).
        "random": ``n_clusters`` distinct points drawn by weight. A callable
        is called as ``init(X, n_clusters, random_state=rng)`` with the
        centred data and a ``numpy.random.Generator``. An array gives the
        starting centres.
    n_init : "auto" or int, default="auto"
        Number of initialisations; the lowest inertia wins. "auto" means 1 for
        "k-means++" or an array, 10 for "random" or a callable.
    max_iter : int, default=300
        Maximum EM iterations per initialisation.
    tol : float, default=1e-4
        Convergence when the summed squared centre shift is at most ``tol``
        times the mean per-feature variance of X. The fit also stops as soon
        as no label changes.
    verbose : int, default=0
        Print the inertia at each iteration.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the host generator used for initialisation; one seed gives
        the same clustering on every backend.
    copy_x : bool, default=True
        Accepted for scikit-learn compatibility. xpkmeans never modifies X.
    algorithm : {"lloyd", "hamerly"}, default="lloyd"
        How the E step finds the nearest centres. "lloyd" compares every
        point with every centre. "hamerly" keeps two distance bounds per point
        and recomputes only the points whose bounds overlap: the same labels,
        centres and iterations (up to points equally far from two centres
        within rounding), and much less work once few points move: faster
        on long fits with many clusters, slower on fits of a few iterations.
        It needs to pick those points out, so it runs on eager arrays in
        host memory (NumPy, PyTorch CPU); elsewhere it is "lloyd".

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : integer array of shape (n_samples,)
    inertia_ : float
        Sum of (weighted) squared distances of samples to their nearest centre.
    n_iter_ : int
        EM iterations of the best run.
    n_features_in_ : int

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

    # -------------------------------------------------------------- validation

    def _check_params(self) -> tuple[int, int, float, int]:
        n_clusters = check_int(self.n_clusters, "n_clusters", minimum=1)
        max_iter = check_int(self.max_iter, "max_iter", minimum=1)
        tol = check_tol(self.tol)
        if self.algorithm not in ALGORITHMS:
            msg = f"`algorithm` must be one of {ALGORITHMS}, got {self.algorithm!r}."
            raise ValueError(msg)
        init = self.init
        if isinstance(init, str):
            if init not in INITIALIZERS:
                msg = f"Unknown init method {init!r}; use one of {sorted(INITIALIZERS)}, a callable or an array."
                raise ValueError(msg)
        explicit = not isinstance(init, str) and not callable(init)
        if self.n_init == "auto":
            n_init = 1 if explicit or init == "k-means++" else 10
        else:
            if isinstance(self.n_init, str):
                msg = f"`n_init` must be 'auto' or an int >= 1, got {self.n_init!r}."
                raise ValueError(msg)
            n_init = check_int(self.n_init, "n_init", minimum=1)
            if explicit and n_init != 1:
                warnings.warn(
                    "Explicit initial center position passed: performing only one "
                    f"init in {type(self).__name__} instead of n_init={n_init}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                n_init = 1
        return n_clusters, max_iter, tol, n_init

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            msg = (
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this estimator."
            )
            raise NotFittedError(msg)

    def _check_test_data(self, X: Any) -> tuple[Any, Any]:
        """X for predict/transform/score: fitted features and the centres' dtype."""
        self._check_fitted()
        X, xp = check_array(X)
        if X.shape[1] != self.n_features_in_:
            msg = (
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
            raise ValueError(msg)
        centers = as_namespace(self.cluster_centers_, xp, device_of(X))
        X = sparse.as_csr(X, centers.dtype) if is_sparse(X) else xp.astype(X, centers.dtype)
        return X, centers

    # -------------------------------------------------------------- fitting

    def _init_centroids(self, X, n_clusters, *, sample_weight, rng, xp):
        init = self.init
        if isinstance(init, str):
            return INITIALIZERS[init](X, n_clusters, sample_weight=sample_weight, rng=rng, xp=xp)
        if callable(init):
            centers = init(X, n_clusters, random_state=rng)
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
        return self._fit(X, sample_weight)

    def _fit(
        self, X: Any, sample_weight: Any = None, *, track_starts: Callable = iter
    ) -> "KMeans":
        """``fit``; ``track_starts`` wraps the ``range`` of starts (a progress bar)."""
        n_clusters, max_iter, tol, n_init = self._check_params()
        X, xp = check_array(X)
        with parallel_region(xp):  # the whole fit: BLAS never wakes its own threads
            check_n_clusters_fits(X.shape[0], n_clusters)
            weights = check_sample_weight(sample_weight, X, xp)
            rng = host_rng(self.random_state)

            X_centered, X_mean = center_data(X, xp=xp)
            scaled_tol = _tolerance(X_centered, tol, xp=xp)
            explicit = not isinstance(self.init, str) and not callable(self.init)

            best = None
            for _ in track_starts(range(n_init)):
                if explicit:
                    centers_init = self._init_centroids(
                        X, n_clusters, sample_weight=weights, rng=rng, xp=xp
                    ) - X_mean
                else:
                    centers_init = self._init_centroids(
                        X_centered, n_clusters, sample_weight=weights, rng=rng, xp=xp
                    )
                if self.verbose:
                    print("Initialization complete")
                nearest = None
                if self.algorithm == "hamerly" and picks_rows_cheaply(X_centered):
                    nearest = BoundedNearest(X_centered, xp=xp)
                labels, inertia, centers, n_iter = _kmeans_single_lloyd(
                    X_centered, weights, centers_init, max_iter=max_iter, tol=scaled_tol,
                    xp=xp, verbose=self.verbose, nearest=nearest,
                )
                if best is None or (
                    inertia < best[1]
                    and not _is_same_clustering(labels, best[0], n_clusters, xp=xp)
                ):
                    best = labels, inertia, centers, n_iter

            labels, inertia, centers, n_iter = best
            distinct = _count_nonempty(labels, n_clusters, xp=xp)
            if distinct < n_clusters:
                warnings.warn(
                    f"Number of distinct clusters ({distinct}) found smaller than "
                    f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
            self.cluster_centers_ = centers + X_mean
            self._fit_frame = (X_mean, centers, self.cluster_centers_)
            self.labels_ = labels
            self.inertia_ = inertia
            self.n_iter_ = n_iter
            self.n_features_in_ = X.shape[1]
            self._n_features_out = n_clusters
            return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return the distances of X to the centres (see ``transform``)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # -------------------------------------------------------------- using the fit

    def predict(self, X: Any, sample_weight: Any = None) -> Any:
        """Index of the nearest centre for each sample of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), default=None
            Validated for scikit-learn compatibility; weights do not change
            which centre is nearest.

        Returns
        -------
        labels : integer array of shape (n_samples,), in X's namespace
        """
        X, centers = self._check_test_data(X)
        xp = array_namespace(X)
        check_sample_weight(sample_weight, X, xp)
        X_mean, centered_centers, fitted = self._fit_frame
        same_frame = fitted is self.cluster_centers_ and device_of(X_mean) == device_of(X)
        if same_frame and not is_sparse(X):  # sparse data is never centred
            # the arithmetic of fit (centred data), so predict(X_train) == labels_
            X, centers = X - xp.astype(X_mean, X.dtype), xp.astype(centered_centers, X.dtype)
        return nearest_centers(X, centers)

    def transform(self, X: Any) -> Any:
        """Euclidean distance of each sample to each centre.

        The result has shape (n_samples, n_clusters): it is what was asked for,
        so it is the one place an n x k matrix is built.
        """
        X, centers = self._check_test_data(X)
        xp = array_namespace(X)
        if is_sparse(X):
            return xp.sqrt(sparse.sq_distances_to_all(X, centers, xp=xp))
        x_sq = xp.sum(X * X, axis=1)[:, None]
        c_sq = xp.sum(centers * centers, axis=1)[None, :]
        sq = xp.clip(x_sq - 2 * (X @ xp.permute_dims(centers, (1, 0))) + c_sq, 0, None)
        return xp.sqrt(sq)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X on the fitted centres."""
        X, centers = self._check_test_data(X)
        xp = array_namespace(X)
        weights = check_sample_weight(sample_weight, X, xp)
        labels = nearest_centers(X, centers)
        return -float(_inertia(X, weights, centers, labels, xp=xp))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output names for ``transform``: ``kmeans0`` ... ``kmeans{k-1}``."""
        self._check_fitted()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn hook
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
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
