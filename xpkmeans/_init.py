"""Initial centres: greedy k-means++ and random points, plus the init table.

Every initialiser takes ``(X, n_clusters, *, sample_weight, rng, xp)`` and
returns ``(n_clusters, n_features)`` centres. Random numbers come from a host
``numpy.random.Generator`` and are moved to the device, so a seed gives the
same centres on every backend.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ._lloyd import center_data
from ._backend import (
    device_of,
    from_host,
    host_rng,
    concat_rows,
    map_row_blocks,
    parallel_region,
    row_block,
    sq_row_norms,
    take_rows,
    to_numpy,
    widest_float_dtype,
)
from ._validation import (
    check_array,
    check_int,
    check_n_clusters_fits,
    check_sample_weight,
)


def _weighted_draws(cumulative: Any, uniforms: Any, *, xp: Any) -> Any:
    """Indices drawn with probability proportional to the increments of ``cumulative``.

    ``uniforms`` are in [0, 1); zero-weight rows are never drawn.
    """
    targets = uniforms * cumulative[-1]
    indices = xp.searchsorted(cumulative, targets, side="right")
    return xp.clip(indices, 0, cumulative.shape[0] - 1)


def _closest_with_candidates(
    X: Any, x_sq_norms: Any, weights: Any, closest_sq: Any, candidates: Any, *, xp: Any
) -> tuple[Any, Any]:
    """For each candidate, the squared distance of every point to its nearest centre
    if that candidate were added, and the resulting potential.

    Returns ``(to_candidates, potentials)`` of shapes (n_samples, n_candidates)
    and (n_candidates,). Rows go in blocks that stay in cache, on all cores.
    """
    rows_x = take_rows(X, candidates)
    rows_sq_norms = xp.take(x_sq_norms, candidates)[None, :]
    rows_x_t = xp.permute_dims(rows_x, (1, 0))

    def block(rows: slice) -> tuple[Any, Any]:
        cross = row_block(X, rows) @ rows_x_t  # sparse X: the library's sparse product
        distances = xp.clip(x_sq_norms[rows, None] - 2 * cross + rows_sq_norms, 0, None)
        nearest = xp.minimum(closest_sq[rows, None], distances)
        return nearest, weights[rows] @ nearest

    blocks = map_row_blocks(
        block, X.shape[0], 4 * candidates.shape[0], xp=xp, device=device_of(X)
    )
    to_candidates = concat_rows([b[0] for b in blocks], xp=xp)
    potentials = blocks[0][1]
    for _, partial in blocks[1:]:
        potentials = potentials + partial
    return to_candidates, potentials


def _kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any,
    rng: Any,
    xp: Any,
    n_local_trials: int | None = None,
) -> tuple[Any, Any]:
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, scikit-learn's variant).

    Each new centre is the best of ``n_local_trials`` candidates drawn with
    probability proportional to ``weight * D(x)^2``; best means lowest
    potential (weighted sum of squared distances to the nearest centre).
    Everything stays on the device: no host copy until the caller asks.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
    indices : integer array of shape (n_clusters,)
    """
    n_samples = X.shape[0]
    device = device_of(X)
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    accumulate = widest_float_dtype(xp, device)
    weights = (
        xp.ones(n_samples, dtype=X.dtype, device=device)
        if sample_weight is None
        else sample_weight
    )
    x_sq_norms = sq_row_norms(X)

    def draw(potentials: Any, size: int) -> Any:
        cumulative = xp.cumulative_sum(xp.astype(potentials, accumulate))
        uniforms = from_host(rng.random(size), xp=xp, device=device, dtype=accumulate)
        return _weighted_draws(cumulative, uniforms, xp=xp)

    indices = [draw(weights, 1)]
    far = xp.full((n_samples,), math.inf, dtype=X.dtype, device=device)
    with parallel_region(xp):
        closest_sq = _closest_with_candidates(X, x_sq_norms, weights, far, indices[0], xp=xp)[0]
        closest_sq = closest_sq[:, 0]
        for _ in range(1, n_clusters):
            candidates = draw(weights * closest_sq, n_local_trials)
            to_candidates, potentials = _closest_with_candidates(
                X, x_sq_norms, weights, closest_sq, candidates, xp=xp
            )
            best = xp.argmin(potentials)
            closest_sq = xp.take(to_candidates, best[None], axis=1)[:, 0]
            indices.append(xp.take(candidates, best[None]))
    indices = xp.concat(indices)
    return take_rows(X, indices), indices


def _init_kmeans_plusplus(X, n_clusters, *, sample_weight, rng, xp):
    return _kmeans_plusplus(X, n_clusters, sample_weight=sample_weight, rng=rng, xp=xp)[0]


def _init_random(X, n_clusters, *, sample_weight, rng, xp):
    """``n_clusters`` distinct points, drawn with probability proportional to weight."""
    n_samples = X.shape[0]
    p = None
    if sample_weight is not None:
        host_weights = to_numpy(sample_weight).astype("float64")
        p = host_weights / host_weights.sum()
        if (p > 0).sum() < n_clusters:
            msg = (
                f"init='random' needs at least n_clusters={n_clusters} points with "
                "positive sample_weight."
            )
            raise ValueError(msg)
    rows = rng.choice(n_samples, size=n_clusters, replace=False, p=p)
    return take_rows(X, from_host(rows, xp=xp, device=device_of(X)))


INITIALIZERS: dict[str, Callable[..., Any]] = {
    "k-means++": _init_kmeans_plusplus,
    "random": _init_random,
}


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    random_state: Any = None,
    n_local_trials: int | None = None,
) -> tuple[Any, Any]:
    """Choose initial centres with greedy k-means++.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any array-API array; the result is in the same namespace and device.
    n_clusters : int
        Number of centres to choose.
    sample_weight : array of shape (n_samples,), default=None
        Point weights; a point is drawn with probability proportional to
        ``weight * D(x)^2``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the host random generator.
    n_local_trials : int, default=None
        Candidates tried per centre; None means ``2 + int(log(n_clusters))``.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
    indices : integer array of shape (n_clusters,)
        Rows of ``X`` chosen as centres.
    """
    X, xp = check_array(X)
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    check_n_clusters_fits(X.shape[0], n_clusters)
    if n_local_trials is not None:
        n_local_trials = check_int(n_local_trials, "n_local_trials", minimum=1)
    weights = check_sample_weight(sample_weight, X, xp)
    _, indices = _kmeans_plusplus(
        center_data(X, xp=xp)[0],
        n_clusters,
        sample_weight=weights,
        rng=host_rng(random_state),
        xp=xp,
        n_local_trials=n_local_trials,
    )
    return take_rows(X, indices), indices
