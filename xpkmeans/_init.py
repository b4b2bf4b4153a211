"""Initial centres: greedy k-means++, k-means|| and random points, plus the init table.

Every initialiser takes ``(X, n_clusters, *, sample_weight, rng, xp)`` and
returns ``(n_clusters, n_features)`` centres. Random numbers come from a host
``numpy.random.Generator``, all those of one initialisation in one call, and
are moved to the device once, so a seed gives the same centres on every
backend and no loop waits for the device.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ._lloyd import center_data, variance_scaled_tol
from ._backend import (
    closest_with_candidates,
    cumulative_sum,
    device_of,
    from_host,
    host_rng,
    concat_rows,
    nearest_centers,
    parallel_region,
    run_steps,
    segment_sum,
    select_rows,
    sq_distances_to_assigned,
    sq_row_norms,
    take_rows,
    to_numpy,
    widest_float_dtype,
)
from ._validation import (
    check_array,
    check_int,
    check_n_clusters_fits,
    check_one_value_per_row,
    check_sample_weight,
    draws_as_unweighted,
)


def _weighted_draws(cumulative: Any, uniforms: Any, *, xp: Any, fallback: Any = None) -> Any:
    """Indices drawn with probability proportional to the increments of ``cumulative``.

    ``uniforms`` are in [0, 1); zero-weight rows are never drawn. Where
    ``cumulative`` adds up to 0 (every point of weight is a centre already),
    the draws follow ``fallback`` (the weights' own cumulative) instead.
    """
    indices = xp.searchsorted(cumulative, uniforms * cumulative[-1], side="right")
    if fallback is not None:  # both searched (a few draws each), not an n-sized choice of arrays
        instead = xp.searchsorted(fallback, uniforms * fallback[-1], side="right")
        indices = xp.where(cumulative[-1] > 0, indices, instead)
    return xp.clip(indices, 0, cumulative.shape[0] - 1)


def _scaled_to_unit(weights: Any, *, xp: Any) -> Any:
    """``weights`` times the power of two that brings the largest below 2.

    The draws, by ``weight * D(x)^2``, and the order of the potentials are
    the same bit for bit (a power of two scales without rounding), but the
    products fit X's dtype wherever the squared distances do: 1e9 weights on
    float32 X of 1e15 had made them inf, and every later centre the same row.
    Weights below 1 are left as they are. On the device: nothing waits for it.
    """
    wide = xp.astype(weights, widest_float_dtype(xp, device_of(weights)))
    exponent = xp.clip(xp.floor(xp.log2(xp.max(wide))), min=0.0)
    return xp.astype(wide * 2.0 ** (-exponent), weights.dtype)


def _closest_with_candidates(
    X: Any, x_sq_norms: Any, weights: Any, closest_sq: Any, candidates: Any, *, xp: Any
) -> tuple[list, Any]:
    """One pass over X for one greedy k-means++ centre
    (``closest_with_candidates`` for the rows ``candidates`` of X)."""
    return closest_with_candidates(
        X, x_sq_norms, weights, closest_sq, take_rows(X, candidates),
        take_rows(x_sq_norms, candidates),
    )


def _column(blocks: list, column: Any, *, xp: Any) -> Any:
    """Column ``column`` (a 1-element index array) of the row blocks, as one vector
    (a row of each transposed block: ``take_rows`` is the backend's fastest gather)."""
    return concat_rows(
        [take_rows(xp.permute_dims(b, (1, 0)), column)[0, :] for b in blocks], xp=xp
    )


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

    All the uniforms are drawn on the host first, in one call (NumPy's
    ``rng.random(a)`` then ``rng.random(b)`` equals ``rng.random(a + b)``
    split, so the centres are those of one draw per centre) and moved to the
    device once. The loop over centres then never waits for the device: no
    host copy, no data-dependent shape; each centre reads X once.

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
        else _scaled_to_unit(sample_weight, xp=xp)
    )
    x_sq_norms = sq_row_norms(X)
    # uniforms[0]: the first centre; then n_local_trials per further centre
    uniforms = from_host(
        rng.random(1 + (n_clusters - 1) * n_local_trials),
        xp=xp, device=device, dtype=accumulate,
    )
    trials = xp.reshape(uniforms[1:], (n_clusters - 1, n_local_trials))
    positions = xp.arange(n_clusters, device=device)

    by_weight = cumulative_sum(weights, accumulate)

    def next_center(state: tuple) -> tuple:
        """Centre ``t``: the best of its candidates. Everything it uses
        lives on the device, ``t`` too: a step can be replayed as it is."""
        closest_sq, indices, t = state
        candidates = _weighted_draws(
            cumulative_sum(closest_sq if sample_weight is None else weights * closest_sq,
                           accumulate),
            xp.reshape(take_rows(trials, t - 1), (-1,)),
            xp=xp, fallback=by_weight,
        )
        blocks, potentials = _closest_with_candidates(
            X, x_sq_norms, weights, closest_sq, candidates, xp=xp
        )
        best = xp.argmin(potentials)[None]
        indices = xp.where(positions == t, take_rows(candidates, best), indices)
        return _column(blocks, best, xp=xp), indices, t + 1

    first = _weighted_draws(by_weight, uniforms[:1], xp=xp)
    far = xp.full((n_samples,), math.inf, dtype=X.dtype, device=device)
    with parallel_region(xp):
        blocks, _ = _closest_with_candidates(X, x_sq_norms, weights, far, first, xp=xp)
        state = (_column(blocks, first * 0, xp=xp), xp.where(positions == 0, first, first * 0),
                 xp.ones_like(first))
        indices = run_steps(next_center, state, n_clusters - 1, reads=(X,))[1]
    return take_rows(X, indices), indices


# ------------------------------------------------------------------ k-means||
# Bahmani et al., "Scalable k-means++" (2012): a few passes over X, each
# adding oversampled candidates drawn by weight * D(x)^2, then a weighted
# greedy k-means++ over the candidates. Written as whole passes over X in row
# blocks, so that a distributed backend can run each pass as one map-reduce.

KMEANS_PARALLEL_ROUNDS = 5
"""Candidate rounds of k-means|| (Spark uses 2): one pass over X each, here
and on Dask (``_dask.kmeans_parallel``)."""

KMEANS_PARALLEL_OVERSAMPLING = 2.0
"""Candidates drawn per round of k-means||, as a multiple of ``n_clusters``."""


def _nearest_candidate_pass(
    X: Any, candidate_rows: Any, first_candidate: int, closest_sq: Any, nearest: Any, *, xp: Any
) -> tuple[Any, Any]:
    """One k-means|| round's pass over X: the distance of every point to the new
    candidates, folded into the running minimum.

    The nearest new candidate of each point comes from the whole-pass
    primitive ``nearest_centers`` (a fused kernel where one exists); its
    squared distance is then computed exactly (``||x - c||^2``, no expansion),
    so a repeat of an earlier candidate is never strictly closer: it weighs 0.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    candidate_rows : array of shape (n_new, n_features)
        The candidates added this round.
    first_candidate : int
        Number of the first new candidate among all candidates so far.
    closest_sq, nearest : arrays of shape (n_samples,)
        Squared distance of each point to its nearest candidate so far
        (``inf`` before the first), and that candidate's number.

    Returns
    -------
    closest_sq, nearest : arrays of shape (n_samples,)
        Updated: a new candidate wins only where it is strictly closer.
    """
    labels = nearest_centers(X, candidate_rows)
    distances = sq_distances_to_assigned(X, candidate_rows, labels)
    closer = distances < closest_sq
    numbers = xp.astype(labels, nearest.dtype) + first_candidate
    return xp.where(closer, distances, closest_sq), xp.where(closer, numbers, nearest)


def _kmeans_parallel_candidates(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any,
    rng: Any,
    xp: Any,
    n_rounds: int = KMEANS_PARALLEL_ROUNDS,
    oversampling: float = KMEANS_PARALLEL_OVERSAMPLING,
) -> tuple[Any, Any]:
    """The candidates of k-means|| and their weights.

    A first candidate is drawn by weight; each of ``n_rounds`` rounds draws
    ``ceil(oversampling * n_clusters)`` more, with replacement, with
    probability proportional to ``weight * D(x)^2`` (D: distance to the nearest
    candidate so far), then makes one pass over X
    (``_nearest_candidate_pass``). A candidate drawn twice keeps its repeats
    (their weight stays 0, or shares that of the same row): the shapes never
    depend on the data, so nothing waits for the device. The uniforms are
    drawn on the host in one call and moved once.

    Returns
    -------
    indices : integer array of shape (1 + n_rounds * per_round,)
        Rows of ``X`` that are candidates.
    weights : array of shape (1 + n_rounds * per_round,)
        Per candidate, the summed sample weight of the points nearest to it,
        in the widest float of the device.
    """
    n_samples = X.shape[0]
    device = device_of(X)
    accumulate = widest_float_dtype(xp, device)
    per_round = math.ceil(oversampling * n_clusters)
    n_candidates = 1 + n_rounds * per_round
    weights = (
        xp.ones(n_samples, dtype=X.dtype, device=device)
        if sample_weight is None
        else _scaled_to_unit(sample_weight, xp=xp)
    )
    uniforms = from_host(rng.random(n_candidates), xp=xp, device=device, dtype=accumulate)

    by_weight = cumulative_sum(weights, accumulate)
    first = _weighted_draws(by_weight, uniforms[:1], xp=xp)
    closest_sq = xp.full((n_samples,), math.inf, dtype=X.dtype, device=device)
    nearest = xp.zeros((n_samples,), dtype=first.dtype, device=device)
    candidates = [first]
    with parallel_region(xp):
        closest_sq, nearest = _nearest_candidate_pass(
            X, take_rows(X, first), 0, closest_sq, nearest, xp=xp
        )
        for round_ in range(n_rounds):
            start = 1 + round_ * per_round
            drawn = _weighted_draws(
                cumulative_sum(weights * closest_sq, accumulate),
                uniforms[start : start + per_round],
                xp=xp, fallback=by_weight,
            )
            closest_sq, nearest = _nearest_candidate_pass(
                X, take_rows(X, drawn), start, closest_sq, nearest, xp=xp
            )
            candidates.append(drawn)
        ones = xp.ones((n_samples, 1), dtype=accumulate, device=device)
        totals = segment_sum(ones, nearest, n_candidates, weights=xp.astype(weights, accumulate))[1]
    return xp.concat(candidates), totals


def _kmeans_parallel(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any,
    rng: Any,
    xp: Any,
    n_rounds: int = KMEANS_PARALLEL_ROUNDS,
    oversampling: float = KMEANS_PARALLEL_OVERSAMPLING,
) -> Any:
    """k-means|| initialisation: ``n_clusters`` centres, always.

    The weighted candidates of ``_kmeans_parallel_candidates`` (``n_rounds + 1``
    passes over X), then greedy k-means++ over the candidates with their
    weights. On data no larger than the candidate set, it is greedy k-means++
    on X itself.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        Rows of ``X``.
    """
    n_candidates = 1 + n_rounds * math.ceil(oversampling * n_clusters)
    if X.shape[0] <= n_candidates:
        return _kmeans_plusplus(X, n_clusters, sample_weight=sample_weight, rng=rng, xp=xp)[0]
    indices, candidate_weights = _kmeans_parallel_candidates(
        X, n_clusters, sample_weight=sample_weight, rng=rng, xp=xp,
        n_rounds=n_rounds, oversampling=oversampling,
    )
    candidates = select_rows(X, indices)  # sparse X: sparse candidates (10k+ rows)
    centers, _ = _kmeans_plusplus(
        candidates, n_clusters, sample_weight=xp.astype(candidate_weights, X.dtype),
        rng=rng, xp=xp,
    )
    return centers


def _init_kmeans_plusplus(X, n_clusters, *, sample_weight, rng, xp):
    return _kmeans_plusplus(X, n_clusters, sample_weight=sample_weight, rng=rng, xp=xp)[0]


def _init_random(X, n_clusters, *, sample_weight, rng, xp):
    """``n_clusters`` distinct points, drawn with probability proportional to weight."""
    n_samples = X.shape[0]
    p = None
    if not draws_as_unweighted(sample_weight, xp):
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
    "k-means||": _kmeans_parallel,
    "random": _init_random,
}


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    x_squared_norms: Any = None,
    random_state: Any = None,
    n_local_trials: int | None = None,
) -> tuple[Any, Any]:
    """Choose initial centres with greedy k-means++.

    The initialisation of ``KMeans(init="k-means++")``, the same code: one
    pass over X per centre; the random numbers are drawn on the host in one
    call and moved to the device once, so the loop never waits for the device.
    A seed gives the same rows on every backend.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any array-API array; the result is in the same namespace and device.
    n_clusters : int
        Number of centres to choose.
    sample_weight : array of shape (n_samples,), default=None
        Point weights; a point is drawn with probability proportional to
        ``weight * D(x)^2``.
    x_squared_norms : array of shape (n_samples,), default=None
        Taken for scikit-learn's signature, its shape checked, and not used:
        the norms are those of X centred, computed here.
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
    if x_squared_norms is not None:
        check_one_value_per_row(x_squared_norms, X, name="x_squared_norms")
    X_centered = center_data(X, xp=xp)[0]
    variance_scaled_tol(X_centered, 0.0, xp=xp)  # overflowing distances would draw wrong centres
    _, indices = _kmeans_plusplus(
        X_centered,
        n_clusters,
        sample_weight=weights,
        rng=host_rng(random_state),
        xp=xp,
        n_local_trials=n_local_trials,
    )
    return take_rows(X, indices), indices
