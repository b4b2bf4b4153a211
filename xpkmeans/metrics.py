"""Clustering quality scores, as in ``sklearn.metrics``, on any array-API backend.

- ``silhouette_samples`` / ``silhouette_score``: how much closer each point is
  to its own cluster than to the nearest other one (best 1, worst -1);
- ``calinski_harabasz_score``: between- over within-cluster dispersion
  (higher is better);
- ``davies_bouldin_score``: mean worst-case ratio of cluster spread to centroid
  separation (lower is better, 0 at best).

Everything is computed in the namespace and on the device of ``X``, in float64
where the device has it; on a Dask array the dispersion scores run inside
Dask, and the silhouette on a computed sample (``sample_size``). The
silhouette never builds the ``n x n`` distance matrix: rows go in blocks of
``rows x n`` distances, reduced at once to ``rows x n_labels`` per-cluster
sums by ``segment_sum``.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import is_lazy_array

from ._backend import (
    concat_rows,
    device_of,
    encode_host_categories,
    from_host,
    host_rng,
    host_xp,
    is_sparse,
    row_blocks,
    row_chunk_size,
    segment_count,
    segment_sum,
    sparse,
    sq_distances_to_assigned,
    sq_row_norms,
    subtract_row,
    sum_by_cluster,
    unique_inverse,
    widest_float_dtype,
)
from . import _dask
from ._errors import InputTypeError
from ._lloyd import column_means
from ._validation import as_namespace, check_array, check_int, integer_labels, raise_overflow

__all__ = [
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "silhouette_samples",
    "silhouette_score",
]

# Davies-Bouldin returns 0 when all spreads (or all centroid distances) are
# this close to 0: scikit-learn's ``isclose(..., 0)`` with its default atol.
_ZERO_ATOL = 1e-8


# ------------------------------------------------------------------ validation


def check_number_of_labels(n_labels: int, n_samples: int) -> None:
    """The scores are defined only for ``2 <= n_labels <= n_samples - 1``."""
    if not 1 < n_labels < n_samples:
        msg = (
            f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 "
            f"(inclusive), here 2 to {n_samples - 1} for n_samples={n_samples}."
        )
        raise ValueError(msg)


def _check_cluster_labels(labels: Any, X: Any, xp: Any) -> Any:
    """Integer-valued labels, one per row of X, as int64 in X's namespace and device.

    Any integers are accepted (negative, non-contiguous); booleans and floats
    holding whole numbers are converted; host strings or objects (a list, a
    NumPy array, a pandas Series) are encoded in sorted order, as scikit-learn's
    ``LabelEncoder``.
    """
    labels = encode_host_categories(labels, name="labels")
    try:
        labels = as_namespace(labels, xp, device_of(X), name="labels")
    except (TypeError, ValueError) as e:
        msg = f"`labels` could not be converted to an integer array: {e}"
        raise InputTypeError(msg) from e
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        msg = (
            f"`labels` must be 1-D of shape ({X.shape[0]},) to match X, got shape "
            f"{tuple(labels.shape)}."
        )
        raise ValueError(msg)
    return integer_labels(labels, xp)


def _encode_labels(labels: Any, *, xp: Any) -> tuple[Any, int]:
    """Labels renamed ``0 .. n_labels-1`` in sorted order (``LabelEncoder``)."""
    values, codes = unique_inverse(labels)
    return xp.astype(xp.reshape(codes, (-1,)), xp.int64), int(values.shape[0])


def _is_lazy(values: Any) -> bool:
    """A lazy array, or a Dask DataFrame or Series (not an array, but lazy:
    reading it as an array would compute all of it)."""
    return is_lazy_array(values) or _dask.is_dask_input(values)


def _check_in_memory(X: Any, labels: Any, *, sampled: bool = False) -> None:
    """The scores take data in memory (their shapes depend on the labels): a
    lazy (Dask) X or labels is refused, with what to pass instead."""
    if _is_lazy(X) or _is_lazy(labels):
        msg = (
            "`X` and `labels` must be in memory, not lazy (Dask) arrays: pass X.compute() "
            "and labels.compute()"
            + (", or a sample_size (its rows are computed)." if sampled else ".")
        )
        raise InputTypeError(msg)


def _check_X_labels(X: Any, labels: Any) -> tuple[Any, Any, int, Any]:
    """Validated ``X``, encoded labels, their number, and the namespace."""
    _check_in_memory(X, labels)
    X, xp = check_array(X)
    codes, n_labels = _encode_labels(_check_cluster_labels(labels, X, xp), xp=xp)
    check_number_of_labels(n_labels, X.shape[0])
    return X, codes, n_labels, xp


def _wide(X: Any, *, xp: Any) -> Any:
    """``X`` in the widest float dtype of its device (sparse stays sparse)."""
    wide = widest_float_dtype(xp, device_of(X))
    return sparse.with_dtype(X, wide) if is_sparse(X) else xp.astype(X, wide)  # X: checked


def _centered_wide(X: Any, *, xp: Any) -> Any:
    """``X`` minus its column means, in the widest float dtype of its device
    (sparse X is not centred: that would fill it in)."""
    X = _wide(X, xp=xp)
    return X if is_sparse(X) else subtract_row(X, column_means(X, xp=xp))


def _check_no_overflow(fits: bool, dtype: Any) -> None:
    """``KMeans.fit``'s error where the squared distances of X overflow
    ``dtype`` (that of the computation); scikit-learn returns NaN (or a
    silhouette of 0) there."""
    if not fits:
        raise_overflow(dtype)


def _cluster_means(X: Any, codes: Any, n_labels: int) -> tuple[Any, Any]:
    """Centroid and size of each cluster (every cluster is non-empty)."""
    sums, counts = sum_by_cluster(X, codes, n_labels)
    return sums / counts[:, None], counts


# ------------------------------------------------------------------ silhouette


def _silhouette_from_cluster_sums(
    cluster_sums: Any, own_cluster: Any, counts: Any, *, xp: Any
) -> Any:
    """Silhouette of a block of points from their summed distances to each cluster.

    Parameters
    ----------
    cluster_sums : array of shape (rows, n_labels)
        Sum of the distances of each point to the points of each cluster.
    own_cluster : array of shape (rows, n_labels)
        One-hot rows: the cluster of each point.
    counts : array of shape (n_labels,)
        Size of each cluster.
    """
    dtype, device = cluster_sums.dtype, device_of(cluster_sums)
    zero = xp.asarray(0.0, dtype=dtype, device=device)
    one = xp.asarray(1.0, dtype=dtype, device=device)
    inf = xp.asarray(xp.inf, dtype=dtype, device=device)
    own_size = xp.sum(own_cluster * counts, axis=1)
    # a: mean distance to the other points of the own cluster
    not_alone = own_size > 1
    intra = xp.sum(own_cluster * cluster_sums, axis=1) / xp.where(not_alone, own_size - 1, one)
    # b: smallest mean distance to the points of another cluster
    inter = xp.min(xp.where(own_cluster > 0, inf, cluster_sums / counts), axis=1)
    # (b - a) / max(a, b); 0 for a point alone in its cluster (and for a = b = 0)
    larger = xp.maximum(intra, inter)
    defined = not_alone & (larger > 0)
    return xp.where(defined, (inter - intra) / xp.where(defined, larger, one), zero)


def _silhouette_samples(X: Any, codes: Any, n_labels: int, *, xp: Any) -> Any:
    """Silhouette of each point (widest float dtype); validated, encoded inputs.

    Rows go in blocks: each block holds its ``rows x n`` distances, reduced at
    once to ``rows x n_labels`` sums; ``row_blocks`` keeps a block within
    the backend's work budget (one row at least), whatever ``n``.
    """
    n_samples = X.shape[0]
    device = device_of(X)
    X_centered = _centered_wide(X, xp=xp)
    dtype = X_centered.dtype
    zero = xp.asarray(0.0, dtype=dtype, device=device)
    sq_norms = sq_row_norms(X_centered)[:, None]
    # a squared distance is at most 4 times the largest squared norm: beyond
    # the largest float, they overflow to inf, and every silhouette had been 0
    _check_no_overflow(float(xp.max(sq_norms)) <= float(xp.finfo(dtype).max) / 4, dtype)
    ones = xp.ones_like(sq_norms)
    if is_sparse(X_centered):
        def sq_distances(block: slice) -> Any:
            products = sparse.products_with_rows(X_centered, block)
            return sq_norms[block, :] - 2 * products + xp.permute_dims(sq_norms, (1, 0))
    else:
        # ||x||^2 - 2 x.y + ||y||^2 as one matmul: [-2x, ||x||^2, 1] . [y, 1, ||y||^2]
        left = xp.concat([-2 * X_centered, sq_norms, ones], axis=1)
        right = xp.permute_dims(xp.concat([X_centered, ones, sq_norms], axis=1), (1, 0))

        def sq_distances(block: slice) -> Any:
            return left[block, :] @ right

    clusters = xp.arange(n_labels, device=device)[None, :]
    counts = xp.astype(segment_count(codes, n_labels), dtype)

    blocks = []
    for block in row_blocks(n_samples, n_samples, xp=xp, device=device):
        start, stop = block.start, block.stop
        distances = xp.sqrt(xp.clip(sq_distances(block), 0, None))
        # a point's distance to itself is exactly 0 (the expansion leaves ~sqrt(eps))
        is_self = xp.eye(stop - start, dtype=xp.bool, device=device)
        distances[:, block] = xp.where(is_self, zero, distances[:, block])
        # per cluster, the summed distances of each point of the block (n_labels x rows)
        cluster_sums = segment_sum(xp.permute_dims(distances, (1, 0)), codes, n_labels)[0]
        own_cluster = xp.astype(codes[block, None] == clusters, dtype)
        blocks.append(
            _silhouette_from_cluster_sums(
                xp.permute_dims(cluster_sums, (1, 0)), own_cluster, counts, xp=xp
            )
        )
    return concat_rows(blocks, xp=xp)


def silhouette_samples(X: Any, labels: Any) -> Any:
    """Silhouette Coefficient of each sample (Euclidean distance).

    For a sample, ``a`` is its mean distance to the other samples of its
    cluster and ``b`` its mean distance to the samples of the nearest other
    cluster; the coefficient is ``(b - a) / max(a, b)``, from -1 (worst) to 1
    (best), and 0 for a sample alone in its cluster. Defined only for
    ``2 <= n_labels <= n_samples - 1``.

    Distances are computed in blocks of rows, never as an ``n x n`` matrix,
    on centred data in float64 where the device supports it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any array-API array; the result stays in its namespace and device.
    labels : array-like of shape (n_samples,)
        Cluster of each sample: any integers (e.g. ``[3, 7, 7, 3]``).

    Returns
    -------
    silhouette : array of shape (n_samples,)
        In X's namespace, on X's device, of X's floating dtype.

    Raises
    ------
    ValueError
        If the number of distinct labels is not in ``[2, n_samples - 1]``, or
        ``labels`` does not have one value per sample.

    See Also
    --------
    sklearn.metrics.silhouette_samples : the reference implementation.

    Examples
    --------
    >>> import numpy as np
    >>> from xpkmeans.metrics import silhouette_samples
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> silhouette_samples(X, [0, 0, 1, 1]).round(3).tolist()
    [0.905, 0.895, 0.895, 0.905]
    """
    X, codes, n_labels, xp = _check_X_labels(X, labels)
    return xp.astype(_silhouette_samples(X, codes, n_labels, xp=xp), X.dtype)


def _sample_rows(n_samples: int, sample_size: int, random_state: Any) -> Any:
    """The first ``sample_size`` of a random permutation of the rows, on the host.

    Drawn by a ``numpy.random.Generator`` (as scikit-learn draws
    ``permutation(n)[:sample_size]``), so one seed picks the same rows on
    every backend, Dask included.
    """
    return host_rng(random_state).permutation(n_samples)[:sample_size]


def _subsample_indices(
    n_samples: int, sample_size: int, random_state: Any, *, xp: Any, device: Any
) -> Any:
    """``_sample_rows`` on ``device``."""
    return from_host(_sample_rows(n_samples, sample_size, random_state), xp=xp, device=device,
                     dtype=xp.int64)


def silhouette_score(
    X: Any, labels: Any, *, sample_size: int | None = None, random_state: Any = None
) -> float:
    """Mean Silhouette Coefficient of all samples (Euclidean distance).

    See :func:`silhouette_samples` for the coefficient. Best 1, worst -1;
    values near 0 mean overlapping clusters.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Cluster of each sample: any integers.
    sample_size : int, default=None
        Score a random subset of this many samples (all when larger than
        ``n_samples``); None scores all samples. The cost is quadratic in the
        number of samples scored.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None, \
default=None
        Picks the subset when ``sample_size`` is given. The subset is drawn
        with a ``numpy.random.Generator``, so an int seed picks other rows
        than scikit-learn's (a ``RandomState``) does.

    Returns
    -------
    silhouette : float

    Raises
    ------
    ValueError
        If the number of distinct labels (in the subset, when sampling) is
        not in ``[2, n_samples - 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpkmeans.metrics import silhouette_score
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> round(silhouette_score(X, [0, 0, 1, 1]), 4)
    0.8997
    """
    if sample_size is not None and _is_lazy(X):  # a Dask array: its sample, computed
        sample_size = check_int(sample_size, "sample_size", minimum=1)
        X = _dask.check_dask_array(X)  # a Dask DataFrame: its array, its rows counted
        X, labels = _dask.rows_in_memory(X, labels, _sample_rows(X.shape[0], sample_size,
                                                                 random_state))
        sample_size = None
    _check_in_memory(X, labels, sampled=True)
    X, xp = check_array(X)
    labels = _check_cluster_labels(labels, X, xp)
    if sample_size is not None:
        sample_size = check_int(sample_size, "sample_size", minimum=1)
        indices = _subsample_indices(
            X.shape[0], sample_size, random_state, xp=xp, device=device_of(X)
        )
        X = sparse.select_rows(X, indices) if is_sparse(X) else xp.take(X, indices, axis=0)
        labels = xp.take(labels, indices)
    codes, n_labels = _encode_labels(labels, xp=xp)
    check_number_of_labels(n_labels, X.shape[0])
    return float(xp.mean(_silhouette_samples(X, codes, n_labels, xp=xp)))


# ------------------------------------------------------------------ dispersion scores


def calinski_harabasz_score(X: Any, labels: Any) -> float:
    """Calinski-Harabasz score (Variance Ratio Criterion); higher is better.

    ``B / W * (n_samples - n_labels) / (n_labels - 1)`` where ``B`` is the
    between-cluster dispersion (size-weighted squared distances of the
    centroids to the overall mean) and ``W`` the within-cluster dispersion
    (squared distances of the samples to their centroid). 1.0 when ``W = 0``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Cluster of each sample: any integers.

    Returns
    -------
    score : float

    Raises
    ------
    ValueError
        If the number of distinct labels is not in ``[2, n_samples - 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpkmeans.metrics import calinski_harabasz_score
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> calinski_harabasz_score(X, [0, 0, 1, 1])
    200.0
    """
    if _is_lazy(X):  # three computes of k x d numbers; Dask labels of X in memory: refused
        centroids, counts, within, _ = _dask.cluster_dispersions(X, labels)
        return _calinski_harabasz(centroids, counts, within, xp=host_xp)
    X, codes, n_labels, xp = _check_X_labels(X, labels)
    X_centered = _centered_wide(X, xp=xp)
    centroids, counts = _cluster_means(X_centered, codes, n_labels)
    within = float(xp.sum(sq_distances_to_assigned(X_centered, centroids, codes)))
    return _calinski_harabasz(centroids, counts, within, xp=xp)


def _calinski_harabasz(centroids: Any, counts: Any, within: float, *, xp: Any) -> float:
    """The score from the clusters' centroids and sizes and the within-cluster
    sum of squares."""
    n_samples, n_labels = float(xp.sum(counts)), centroids.shape[0]
    offsets = centroids - xp.sum(centroids * counts[:, None], axis=0) / n_samples
    between = float(xp.sum(counts * xp.sum(offsets * offsets, axis=1)))
    _check_no_overflow(math.isfinite(between) and math.isfinite(within), centroids.dtype)
    if within == 0.0:
        return 1.0
    return between * (n_samples - n_labels) / (within * (n_labels - 1.0))


def davies_bouldin_score(X: Any, labels: Any) -> float:
    """Davies-Bouldin score; lower is better, 0 at best.

    For clusters ``i`` and ``j`` with spreads ``s`` (mean distance of their
    samples to their centroid) and centroid distance ``d``, the similarity is
    ``(s_i + s_j) / d_ij``; the score is the mean over clusters of the
    largest similarity to another cluster. 0.0 when all spreads or all
    centroid distances are 0 (within 1e-8).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Cluster of each sample: any integers.

    Returns
    -------
    score : float

    Raises
    ------
    ValueError
        If the number of distinct labels is not in ``[2, n_samples - 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpkmeans.metrics import davies_bouldin_score
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> davies_bouldin_score(X, [0, 0, 1, 1])
    0.1
    """
    if _is_lazy(X):  # three computes of k x d numbers; Dask labels of X in memory: refused
        centroids, _, _, spread = _dask.cluster_dispersions(X, labels)
        return _davies_bouldin(centroids, spread, xp=host_xp)
    X, codes, n_labels, xp = _check_X_labels(X, labels)
    # not centred: only differences are taken, and clusters with the same mean
    # get bitwise equal centroids, as in scikit-learn
    X_wide = _wide(X, xp=xp)
    centroids, counts = _cluster_means(X_wide, codes, n_labels)
    distances = xp.sqrt(sq_distances_to_assigned(X_wide, centroids, codes))
    spread = segment_sum(distances[:, None], codes, n_labels)[0][:, 0] / counts
    return _davies_bouldin(centroids, spread, xp=xp)


def _davies_bouldin(centroids: Any, spread: Any, *, xp: Any) -> float:
    """The score from the clusters' centroids and spreads (mean distance of
    their points to their centroid).

    The centroid distances go in blocks of centroid rows, each block's
    ``rows x n_labels x n_features`` differences within the backend's block
    budget: labels may be many (up to ``n_samples - 1``), and the whole
    ``n_labels x n_labels x n_features`` differences had taken 3.9 GB for
    1 MB of X (4000 x 64 float32, 2000 labels)."""
    n_labels, n_features = centroids.shape
    device = device_of(centroids)
    inf = xp.asarray(xp.inf, dtype=centroids.dtype, device=device)
    width = n_labels * n_features
    step = row_chunk_size(n_labels, width, xp=xp, device=device, min_rows=1)
    worst, all_close, finite = [], [], [xp.all(xp.isfinite(spread))]
    for rows in row_blocks(n_labels, width, xp=xp, device=device, step=step):
        differences = centroids[rows, None, :] - centroids[None, :, :]
        distances = xp.sqrt(xp.sum(differences * differences, axis=2))
        finite.append(xp.all(xp.isfinite(distances)))
        all_close.append(xp.all(xp.abs(distances) <= _ZERO_ATOL))
        # a cluster is not compared with itself (nor with one of the same centroid)
        distances = xp.where(distances == 0, inf, distances)
        similarity = (spread[rows, None] + spread[None, :]) / distances
        worst.append(xp.max(similarity, axis=1))
    # overflowing squared distances: inf spreads gave NaN, inf centroid distances 0
    _check_no_overflow(bool(xp.all(xp.stack(finite))), centroids.dtype)
    if bool(xp.all(xp.abs(spread) <= _ZERO_ATOL)) or bool(xp.all(xp.stack(all_close))):
        return 0.0
    return float(xp.mean(concat_rows(worst, xp=xp)))
