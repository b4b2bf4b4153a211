"""The EM (Lloyd) algorithm for k-means, written once against the array API.

E step: assign every point to its nearest centre.
M step: move every centre to the (weighted) mean of its points; a centre that
lost all its points is moved to the point farthest from its own centre.

Private functions here assume validated inputs and take the namespace ``xp``;
the public ``e_step``, ``m_step`` and ``lloyd_steps`` validate first.
No function builds an (n_samples x n_clusters) matrix: rows go in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

from ._backend import (
    block_width,
    centered,
    column_sums,
    device_of,
    is_sparse,
    largest_indices,
    map_row_blocks,
    nearest_centers,
    nearest_centers_and_sums,
    parallel_region,
    picks_rows_cheaply,
    row_block,
    segment_sum,
    sparse,
    sq_distances_to_assigned,
    sum_by_cluster,
    sums_in_pass,
    take_rows,
    to_numpy,
    widest_float_dtype,
)
from ._validation import (
    check_array,
    check_centers,
    check_inertia_is_finite,
    check_int,
    check_labels,
    check_n_clusters_fits,
    check_sample_weight,
    scaled_tolerance,
)

# ------------------------------------------------------------------ data


def column_means(X: Any, *, xp: Any) -> Any:
    """The mean of each column of the dense ``X``, in X's dtype: float64 sums
    of row blocks (``column_sums``), so that a Dask fit, adding its chunks'
    sums, finds the same float32 mean as a fit in memory."""
    return xp.astype(column_sums(X) / X.shape[0], X.dtype)


def center_data(X: Any, *, xp: Any) -> tuple[Any, Any]:
    """``X`` minus its column means, and the means.

    Distances are computed as ``||c||^2 - 2 x . c``; on centred data the
    terms are small and the cancellation loses little precision. The centred
    data is a copy, or a view centred as it is read where the backend's
    fused pass does that (``centered``): pass it to the backend's primitives
    (``row_block``, ``take_rows``, ...), not to ``xp`` functions.
    """
    if is_sparse(X):  # centring would fill it in; not centred, as in scikit-learn
        return X, xp.zeros((X.shape[1],), dtype=X.dtype, device=device_of(X))
    X_mean = column_means(X, xp=xp)
    return centered(X, X_mean), X_mean


def variance_scaled_tol(X_centered: Any, tol: float, *, xp: Any) -> float:
    """``tol`` scaled by the mean per-feature variance of X, and the overflow
    check (``scaled_tolerance``). Sparse X is not centred: the mean of its
    column variances (scikit-learn's rule)."""
    if is_sparse(X_centered):
        accumulate = widest_float_dtype(xp, device_of(X_centered))
        return sparse.mean_column_variance(X_centered, xp=xp, accumulate=accumulate) * tol
    n_values = X_centered.shape[0] * X_centered.shape[1]
    largest = float(xp.finfo(X_centered.dtype).max)
    scale = _reduce_blocks(X_centered, lambda block: xp.max(xp.abs(block)), xp.max, xp=xp)
    if tol == 0 and scale * scale * n_values <= largest / 16:
        # tol 0 (as scikit-learn's, whose ``_tolerance`` then reads nothing):
        # the variance would be multiplied by 0, and the sum of squares,
        # at most ``scale^2 n`` (and within rounding of it), passes the
        # overflow check: its pass (a third of a fit's fixed cost on 20k x
        # 512) is skipped
        return 0.0 * tol
    if scale * scale * n_values <= largest:  # no square can overflow
        total_variance = _sum_of_squares(X_centered, xp=xp)
    else:  # a Python float: an overflow gives inf, without a warning
        total_variance = _sum_of_squares(X_centered, scale=scale, xp=xp) * scale * scale
    return scaled_tolerance(total_variance, n_values, tol, dtype=X_centered.dtype,
                            dtype_max=largest)


def _sum_of_squares(X: Any, *, xp: Any, scale: float = 1.0) -> float:
    """Sum of the squares of ``X / scale``, in row blocks (no n x d temporary)."""
    def block_sum(block: Any) -> Any:
        block = block / scale if scale != 1.0 else block
        return xp.sum(block * block)

    return _reduce_blocks(X, block_sum, xp.sum, xp=xp)


def _reduce_blocks(X: Any, block_value: Callable, combine: Callable, *, xp: Any) -> float:
    """``combine`` of ``block_value(block)`` over X's row blocks (0-D each), as
    a float; ``block_value`` may hold two temporaries the size of its block."""
    blocks = map_row_blocks(
        lambda rows: block_value(row_block(X, rows)),
        X.shape[0], block_width(X, 2 * X.shape[1]), xp=xp, device=device_of(X),
    )
    return float(combine(xp.stack(blocks)))


# ------------------------------------------------------------------ E step


def _inertia(X: Any, sample_weight: Any, centers: Any, labels: Any, *, xp: Any) -> Any:
    """Sum of (weighted) squared distances of points to their assigned centres
    (0-D), added in the widest float of the device, as on Dask and streamed
    data: float32 sums had ranked two starts of a fit one way in memory and
    the other way on Dask."""
    accumulate = widest_float_dtype(xp, device_of(X))
    distances = xp.astype(sq_distances_to_assigned(X, centers, labels), accumulate)
    if sample_weight is not None:  # multiplied in the wide float too: large weights overflow
        distances = distances * xp.astype(sample_weight, accumulate)
    return xp.sum(distances)


# ------------------------------------------------------------------ M step


# The M step moves only the points that changed cluster, where that is cheap
# (see ``picks_rows_cheaply``) and fewer than this fraction changed; measured:
# about 0.4 ms per 1% of 10^5 points (16 features), against 4 ms for all.
_MAX_MOVED_FRACTION = 0.1


@dataclass(frozen=True)
class _ClusterSums:
    """Per-cluster (weighted) sums of the points and total weights, accumulated
    in the widest float of the device, and the labels they were summed for."""

    sums: Any
    totals: Any
    labels: Any


def _sums_by_moved_points(X: Any, sample_weight: Any) -> bool:
    """Whether the sums may be updated from the previous ones by the points that
    moved: unweighted (with weights, a running total could miss an exact zero:
    an empty cluster), where picking rows is cheap and the sums are not made
    for almost nothing in the pass that finds the labels (``sums_in_pass``).

    Asked once per fit, not per iteration: ``picks_rows_cheaply`` asks
    array_api_compat's ``is_lazy_array``, which reads a value of an array of
    a library it does not know (array_api_strict's): a host copy."""
    return sample_weight is None and picks_rows_cheaply(X) and not sums_in_pass(X)


def _cluster_sums(
    X: Any, sample_weight: Any, labels: Any, n_clusters: int, *, xp: Any,
    previous: _ClusterSums | None = None, moved_points: bool = False,
) -> _ClusterSums:
    """The sums of the M step for ``labels``.

    Given the sums of the previous labels, and when few points moved, only
    the moved points are subtracted from their old clusters and added to
    their new ones (where ``moved_points``: ``_sums_by_moved_points``);
    otherwise all points are summed.
    """
    accumulate = widest_float_dtype(xp, device_of(X))
    if previous is not None and moved_points:
        moved = xp.nonzero(labels != previous.labels)[0]
        if moved.shape[0] == 0:
            return replace(previous, labels=labels)
        if moved.shape[0] <= _MAX_MOVED_FRACTION * X.shape[0]:
            rows = take_rows(X, moved)
            added, added_totals = segment_sum(rows, xp.take(labels, moved), n_clusters)
            removed, removed_totals = segment_sum(
                rows, xp.take(previous.labels, moved), n_clusters
            )
            sums = previous.sums + (xp.astype(added, accumulate) - xp.astype(removed, accumulate))
            totals = previous.totals + xp.astype(added_totals - removed_totals, accumulate)
            return _ClusterSums(sums, totals, labels)
    sums, totals = sum_by_cluster(X, labels, n_clusters, weights=sample_weight)
    return _ClusterSums(sums, totals, labels)


def _centers_from_sums(cluster_sums: _ClusterSums, centers: Any, *, xp: Any) -> Any:
    """Means ``sums / totals`` in the dtype of ``centers``.

    A row of zero total (a cluster that relocation left empty, or could not
    fill) takes the mean of the cluster of largest total weight, the first
    such (scikit-learn's ``_average_centers``: "place them at the location of
    the biggest cluster"). scikit-learn 1.9.1 copies that cluster's row before
    dividing it when the empty cluster comes first, an unnormalised sum;
    here it is always the mean.
    """
    totals = cluster_sums.totals
    filled = totals > 0
    safe_totals = xp.where(filled, totals, xp.ones_like(totals))
    largest = xp.argmax(totals)
    rows = xp.where(filled, xp.arange(totals.shape[0], device=device_of(totals)), largest)
    # one k x d temporary, divided in place: the same numbers as the means of
    # all rows, then the largest's taken (which had held three)
    means = xp.take(cluster_sums.sums, rows, axis=0)
    means /= xp.take(safe_totals, rows)[:, None]
    return xp.astype(means, centers.dtype, copy=False)


def _count_empty(cluster_sums: _ClusterSums, *, xp: Any) -> Any:
    """Number of clusters without points (0-D, on device)."""
    return xp.sum(xp.astype(cluster_sums.totals == 0, cluster_sums.totals.dtype))


def _relocate_empty_clusters(
    X: Any, sample_weight: Any, centers: Any, cluster_sums: _ClusterSums, *, xp: Any
) -> _ClusterSums:
    """Give each empty cluster one of the points farthest from their own
    centre, by scikit-learn's rule (``_relocate_empty_clusters_dense``).

    The r-th empty cluster (by index) takes the r-th farthest point (ties:
    the lowest row), with its weight, which leaves the cluster it was in.
    Points are ranked by distance alone, as in scikit-learn: a point of zero
    weight can be the one taken, and then the cluster stays empty. A point
    on its centre (within the rounding of a mean of its copies) is never
    moved: it would only make a twin centre (scikit-learn skips relocation
    when every point is on its centre, and otherwise picks among such points,
    all at distance 0, in no defined order). A cluster still empty takes the
    mean of the largest cluster (``_centers_from_sums``). The shapes involved
    do not depend on the data. The returned sums no longer match ``labels``
    (the donors keep their label).
    """
    n_clusters = centers.shape[0]
    labels, sums, totals = cluster_sums.labels, cluster_sums.sums, cluster_sums.totals
    empty = totals == 0
    distances = sq_distances_to_assigned(X, centers, labels)
    farthest = largest_indices(distances, n_clusters)
    rank = xp.cumulative_sum(xp.astype(empty, xp.int64)) - 1
    donors = xp.take(farthest, xp.clip(rank, 0, n_clusters - 1))
    donor_points = xp.astype(take_rows(X, donors), sums.dtype, copy=False)
    if sample_weight is None:
        donor_weights = xp.ones_like(totals)
    else:
        donor_weights = xp.astype(xp.take(sample_weight, donors), totals.dtype)
    donor_centers = xp.astype(xp.take(centers, xp.take(labels, donors), axis=0), sums.dtype,
                              copy=False)
    # a distance within the rounding of a mean of copies of the point is zero:
    # some ulps of the coordinates, squared, against the donors' distances
    # taken directly (sparse distances come by expansion, rounded far more)
    ulps = 16 * xp.finfo(centers.dtype).eps
    resolution = ulps * ulps * (
        xp.sum(donor_points ** 2, axis=1) + xp.sum(donor_centers ** 2, axis=1))
    direct = xp.sum((donor_points - donor_centers) ** 2, axis=1)
    del donor_centers  # k x d: not held through the sums below
    movable = empty & (xp.take(distances, donors) > 0) & (direct > resolution)
    moved = xp.where(movable, donor_weights, xp.zeros_like(donor_weights))
    removed_sums, removed_totals = segment_sum(
        donor_points, xp.take(labels, donors), n_clusters, weights=moved
    )
    sums = xp.where(movable[:, None], donor_points * moved[:, None], sums - removed_sums)
    totals = xp.where(movable, moved, totals - removed_totals)
    return _ClusterSums(sums, totals, labels)


def _m_step(X: Any, sample_weight: Any, labels: Any, centers: Any, *, xp: Any) -> Any:
    """New centres for ``labels``, relocating empty clusters (one host sync)."""
    cluster_sums = _cluster_sums(X, sample_weight, labels, centers.shape[0], xp=xp)
    if float(_count_empty(cluster_sums, xp=xp)) > 0:
        cluster_sums = _relocate_empty_clusters(X, sample_weight, centers, cluster_sums, xp=xp)
    return _centers_from_sums(cluster_sums, centers, xp=xp)


# ------------------------------------------------------------------ EM loop


@dataclass(frozen=True)
class LloydStep:
    """One EM iteration.

    Attributes
    ----------
    iteration : int
        1 for the first iteration.
    labels : array of shape (n_samples,)
        E step: the nearest of ``previous_centers`` for each point (on the
        last step: of ``centers``, as ``KMeans.labels_``).
    centers : array of shape (n_clusters, n_features)
        M step: the mean of each cluster's points (an empty cluster: the
        point relocated to it, see ``m_step``, or the largest cluster's mean).
    previous_centers : array of shape (n_clusters, n_features)
        The centres this iteration started from.
    inertia : float or None
        The objective of ``centers``: the (weighted) sum of squared distances
        of the points to their nearest centre. It never rises from one step
        to the next. None when not tracked.
    center_shift : float
        Sum over centres of the squared distance each moved.
    converged : bool
        True when this is the last step because the labels stopped changing
        or the centre shift fell within the tolerance.
    """

    iteration: int
    labels: Any
    centers: Any
    previous_centers: Any
    inertia: float | None
    center_shift: float
    converged: bool


def _assign_and_sum(
    X: Any, sample_weight: Any, centers: Any, previous: _ClusterSums | None, *,
    nearest: Callable[[Any], Any] | None, xp: Any, moved_points: bool,
) -> _ClusterSums:
    """E step, then the sums of the M step for its labels.

    One fused pass over X (``nearest_centers_and_sums``) unless the E step is
    injected (Hamerly) or the sums can be updated from ``previous`` by the
    few points that moved (``_cluster_sums``, where ``moved_points``: see
    ``_sums_by_moved_points``).
    """
    if nearest is None and not (previous is not None and moved_points):
        labels, sums, totals = nearest_centers_and_sums(X, centers, weights=sample_weight)
        return _ClusterSums(sums, totals, labels)
    labels = nearest_centers(X, centers) if nearest is None else nearest(centers)
    return _cluster_sums(X, sample_weight, labels, centers.shape[0], xp=xp, previous=previous,
                         moved_points=moved_points)


@dataclass(frozen=True)
class _IterationSummary:
    """What the host learns of an iteration, in one device-to-host copy."""

    labels_changed: bool
    center_shift: float
    n_empty: int


def _summarise(
    previous_labels: Any, cluster_sums: _ClusterSums, centers: Any, new_centers: Any, *, xp: Any
) -> _IterationSummary:
    dtype = new_centers.dtype
    if previous_labels is None:
        changed = xp.ones((), dtype=dtype, device=device_of(centers))
    else:
        changed = xp.astype(xp.any(cluster_sums.labels != previous_labels), dtype)
    steps = new_centers - centers
    steps *= steps  # in place: one k x d temporary
    shift = xp.sum(steps)
    n_empty = xp.astype(_count_empty(cluster_sums, xp=xp), dtype)
    changed, shift, n_empty = to_numpy(xp.stack([changed, shift, n_empty]))
    return _IterationSummary(bool(changed), float(shift), int(n_empty))


def _lloyd_iterations(
    X: Any,
    sample_weight: Any,
    centers: Any,
    *,
    max_iter: int,
    tol: float,
    xp: Any,
    track_inertia: bool = False,
    nearest: Callable[[Any], Any] | None = None,
) -> Iterator[LloydStep]:
    """Run EM from ``centers`` and yield every iteration; the last one is final.

    Stop rule: the labels did not change (strict convergence), the squared
    centre shift is ``<= tol``, or ``max_iter`` iterations ran. Unless the
    labels stopped changing, the last step's labels are recomputed against the
    final centres so that labels and centres agree.

    ``nearest(centers)`` is the E step (default: ``nearest_centers`` of
    ``X``); it may keep state from call to call, as Hamerly's bounds do.

    Each iteration copies to the host once: three numbers (labels changed,
    centre shift, empty clusters). Relocating empty clusters, which is rare,
    costs one more copy.
    """
    cluster_sums = previous_labels = None
    moved_points = _sums_by_moved_points(X, sample_weight)  # once: it may copy to the host
    for iteration in range(1, max_iter + 1):
        cluster_sums = _assign_and_sum(
            X, sample_weight, centers, cluster_sums, nearest=nearest, xp=xp,
            moved_points=moved_points,
        )
        labels = cluster_sums.labels
        new_centers = _centers_from_sums(cluster_sums, centers, xp=xp)
        summary = _summarise(previous_labels, cluster_sums, centers, new_centers, xp=xp)
        shift = summary.center_shift
        relocated = False
        if summary.n_empty > 0:
            new_centers = None  # made again from the relocated sums: not held meanwhile
            cluster_sums = _relocate_empty_clusters(
                X, sample_weight, centers, cluster_sums, xp=xp
            )
            new_centers = _centers_from_sums(cluster_sums, centers, xp=xp)
            shift, n_empty = (float(value) for value in to_numpy(xp.stack([
                xp.sum((new_centers - centers) ** 2), _count_empty(cluster_sums, xp=xp)])))
            relocated = n_empty < summary.n_empty
            cluster_sums = None  # no longer the sums of `labels`

        # Unchanged labels: strict convergence, as in scikit-learn; centres
        # relocated in this step are then checked by the relabelling below.
        strict = not summary.labels_changed
        converged = strict or shift <= tol
        last = converged or iteration == max_iter
        previous_centers, centers = centers, new_centers
        if last and (relocated or not strict):
            labels = nearest_centers(X, centers) if nearest is None else nearest(centers)
        inertia = None
        if track_inertia:  # the objective of the new centres: each point to its nearest
            # last step: labels are already nearest (relabelled, or unchanged centres)
            nearest_labels = labels if last else nearest_centers(X, centers)
            inertia = float(_inertia(X, sample_weight, centers, nearest_labels, xp=xp))
        yield LloydStep(
            iteration=iteration,
            labels=labels,
            centers=centers,
            previous_centers=previous_centers,
            inertia=inertia,
            center_shift=shift,
            converged=converged,
        )
        if last:
            return
        previous_labels = labels
        # held by the step alone from here: the next pass runs without the
        # centres before these and, when it sums all points, the old sums
        previous_centers = None
        if not moved_points:
            cluster_sums = None


def _kmeans_single_lloyd(
    X: Any,
    sample_weight: Any,
    centers_init: Any,
    *,
    max_iter: int,
    tol: float,
    xp: Any,
    verbose: int = 0,
    nearest: Callable[[Any], Any] | None = None,
    callback: Callable[[LloydStep], None] | None = None,
) -> tuple[Any, float, Any, int]:
    """One k-means run by EM from ``centers_init`` (E step: ``nearest``, see
    ``_lloyd_iterations``); ``callback(step)`` after every iteration.

    Returns
    -------
    labels, inertia, centers, n_iter
    """
    steps = _lloyd_iterations(
        X, sample_weight, centers_init, max_iter=max_iter, tol=tol, xp=xp,
        track_inertia=bool(verbose), nearest=nearest,
    )
    with parallel_region(xp):
        for step in steps:
            if verbose:
                print(f"Iteration {step.iteration}, inertia {step.inertia}.")
            if callback is not None:
                callback(step)
            last = replace(step, previous_centers=None)
            del step  # its previous centres go before the next pass (k x d)
    step = last
    if verbose and step.converged:
        print(f"Converged at iteration {step.iteration}.")
    inertia = step.inertia  # tracked when verbose: on the last step, that of step.labels
    if inertia is None:
        inertia = float(_inertia(X, sample_weight, step.centers, step.labels, xp=xp))
    return step.labels, inertia, step.centers, step.iteration


# ------------------------------------------------------------------ public steps


def e_step(X: Any, centers: Any, *, sample_weight: Any = None) -> tuple[Any, Any]:
    """E step of k-means: assign each point to its nearest centre.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any array-API array (NumPy, CuPy, PyTorch, ...).
    centers : array of shape (n_clusters, n_features)
    sample_weight : array of shape (n_samples,), default=None
        Weights of the points in the inertia; None means 1 each.

    Returns
    -------
    labels : integer array of shape (n_samples,)
        Index of the nearest centre (ties go to the lowest index).
    inertia : 0-D array
        Sum of weighted squared distances of points to their centre.
    """
    from . import _dask  # imports no Dask: it tells Dask arrays and DataFrames apart

    if _dask.is_dask_input(X):  # Dask: lazy labels and inertia (_dask.py)
        return _dask.e_step(X, centers, sample_weight=sample_weight)
    X, xp = check_array(X)
    centers = check_centers(centers, X, xp)
    weights = check_sample_weight(sample_weight, X, xp)
    labels = nearest_centers(X, centers)
    inertia = xp.astype(_inertia(X, weights, centers, labels, xp=xp), X.dtype)
    # overflowed squared distances (X or centres near the dtype's largest
    # square root) give wrong labels and an infinite inertia: the error of
    # ``KMeans.score``, not an inf
    check_inertia_is_finite(float(inertia), X.dtype)
    return labels, inertia


def m_step(X: Any, labels: Any, centers: Any, *, sample_weight: Any = None) -> Any:
    """M step of k-means: move each centre to the weighted mean of its points.

    A cluster with no points (or only zero-weight points) takes the point
    farthest from its own centre, which leaves its old cluster (scikit-learn's
    rule: by distance alone, so a zero-weight point can be taken and leave
    the cluster empty); a point on its centre (duplicates, more clusters than
    distinct points) is never moved. A cluster still empty takes the mean of
    the largest cluster, as in scikit-learn.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    labels : integer array of shape (n_samples,)
        Cluster of each point, in ``[0, n_clusters)``.
    centers : array of shape (n_clusters, n_features)
        The current centres: they give ``n_clusters`` and the distances used
        to relocate empty clusters.
    sample_weight : array of shape (n_samples,), default=None

    Returns
    -------
    new_centers : array of shape (n_clusters, n_features)
    """
    from . import _dask  # imports no Dask: it tells Dask arrays and DataFrames apart

    if _dask.is_dask_input(X):  # Dask: lazy new centres (_dask.py)
        return _dask.m_step(X, labels, centers, sample_weight=sample_weight)
    X, xp = check_array(X)
    centers = check_centers(centers, X, xp)
    weights = check_sample_weight(sample_weight, X, xp)
    labels = check_labels(labels, X, centers.shape[0], xp)
    return _m_step(X, weights, labels, centers, xp=xp)


def lloyd_steps(
    X: Any, init: Any, *, max_iter: int = 300, sample_weight: Any = None
) -> Iterator[LloydStep]:
    """Walk through EM one iteration at a time, for learning and plotting.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    init : array of shape (n_clusters, n_features)
        Starting centres, e.g. from :func:`kmeans_plusplus`.
    max_iter : int, default=300
    sample_weight : array of shape (n_samples,), default=None

    Yields
    ------
    LloydStep
        With ``labels``, ``centers``, ``inertia`` and ``iteration``. The last
        step equals the result of ``KMeans(init=init, n_init=1, tol=0)``.
    """
    X, xp = check_array(X)  # checked here, not at the first step
    centers = check_centers(init, X, xp, name="init")
    weights = check_sample_weight(sample_weight, X, xp)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    check_n_clusters_fits(X.shape[0], centers.shape[0])
    X_centered, X_mean = center_data(X, xp=xp)
    variance_scaled_tol(X_centered, 0.0, xp=xp)  # the overflow check of ``fit``, before any step
    steps = _lloyd_iterations(
        X_centered, weights, centers - X_mean, max_iter=max_iter, tol=0.0, xp=xp,
        track_inertia=True,
    )
    return (replace(step, centers=step.centers + X_mean,
                    previous_centers=step.previous_centers + X_mean) for step in steps)
