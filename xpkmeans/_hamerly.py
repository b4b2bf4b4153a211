"""Hamerly's E step: the same labels as Lloyd's, skipping the points whose
bounds prove their centre is still the nearest.

Each point keeps an upper bound on the distance to its centre and a lower
bound on the distance to every other centre. When the centres move by
``shift``, the upper bound grows by its centre's shift and the lower bound
shrinks by the largest shift (triangle inequality). A point is recomputed
only if its bounds overlap; late in a fit that is a small fraction of the
points, so an E step costs a few passes over ``n`` numbers instead of an
``n x k`` product.

Lloyd's E step chooses by computed scores, which carry rounding errors; a
point is skipped only if its bounds separate the nearest centre from the
others by more than those errors, so a skipped point keeps Lloyd's label.
A recomputed point goes through the same scores, but in a block of other
rows, and BLAS may round a product differently there: a point whose two
nearest centres are equally far to within rounding may get the other one
(3 points of 10^6 in one benchmark). Exact ties go to the lowest index.

Picking the points to recompute has a data-dependent shape, so this runs
only on the kinds of data that the capabilities table
(``_backend/_capabilities.py``) lists for ``algorithm='hamerly'``; elsewhere
the fit warns (``FallbackWarning``) and runs Lloyd.
"""

from __future__ import annotations

from typing import Any

from ._backend import (
    blocks_run_compiled,
    center_half_sq_norms,
    concat_rows,
    device_of,
    first_equal_rows,
    map_row_blocks,
    nearest_two_centers,
    row_block,
    scatter,
    block_sq_distances_to_assigned,
    sq_row_norms,
    take_rows,
)


class BoundedNearest:
    """Callable ``centers -> labels`` (the nearest centre of each row of
    ``X``), which remembers bounds from one call to the next."""

    def __init__(self, X: Any, *, xp: Any) -> None:
        self.X, self.xp = X, xp
        n_features = X.shape[1]
        eps = float(xp.finfo(X.dtype).eps)
        # relative error of a squared distance computed as |x|^2 + |c|^2 - 2 x.c
        self._expansion_error = 4.0 * (n_features + 3) * eps
        # relative error of a distance computed directly, and of one bound update
        self._direct_pad = 1.0 + (n_features + 4) * eps
        self._update_pad = 1.0 + 4.0 * eps
        self._sq_norms = sq_row_norms(X)
        self.labels = self._upper = self._lower = self._centers = None

    def __call__(self, centers: Any) -> Any:
        xp = self.xp
        if self.labels is None:
            every = xp.arange(self.X.shape[0], device=device_of(self.X))
            self.labels, self._upper, self._lower = self._recompute(every, centers)
        else:
            self._update(centers)
        self._centers = centers
        return self.labels

    # -------------------------------------------------------------- steps

    def _update(self, centers: Any) -> None:
        xp = self.xp
        shift = xp.sqrt(xp.sum((centers - self._centers) ** 2, axis=1)) * self._direct_pad
        upper = (self._upper + xp.take(shift, self.labels)) * self._update_pad
        # the other centres moved at most the largest shift, or the second
        # largest for the points of the centre that moved most
        order = xp.argsort(shift, descending=True)
        largest = xp.take(shift, order[:1])
        second = xp.take(shift, order[1:2]) if shift.shape[0] > 1 else xp.zeros_like(largest)
        others_shift = xp.where(self.labels == order[0], second, largest)
        lower = xp.clip(self._lower - others_shift, min=0.0) / self._update_pad
        # a centre 2 s away from all others: d(x, c_j) >= 2 s - d(x, c_a) for j != a
        gap_bound = 2.0 * xp.take(self._half_gaps_between(centers), self.labels)
        separated = xp.maximum(lower, gap_bound - upper)
        unsure = xp.nonzero(self._overlap(self._sq_norms, upper, separated, centers))[0]
        if unsure.shape[0]:
            # first tighten the upper bound to the exact distance
            exact = self._distances_to(unsure, xp.take(self.labels, unsure), centers)
            upper = scatter(upper, unsure, exact)
            separated = xp.maximum(xp.take(lower, unsure), xp.take(gap_bound, unsure) - exact)
            overlap = self._overlap(xp.take(self._sq_norms, unsure), exact, separated, centers)
            still = xp.take(unsure, xp.nonzero(overlap)[0])
            if still.shape[0]:
                labels, near, far = self._recompute(still, centers)
                self.labels = scatter(self.labels, still, labels)
                upper = scatter(upper, still, near)
                lower = scatter(lower, still, far)
        self._upper, self._lower = upper, lower

    def _overlap(self, sq_norms: Any, upper: Any, lower: Any, centers: Any) -> Any:
        """True where the bounds do not separate the nearest centre from the
        others by more than the rounding errors of Lloyd's scores."""
        return lower * lower - upper * upper <= 2.0 * self._score_errors(sq_norms, centers)

    def _score_errors(self, sq_norms: Any, centers: Any) -> Any:
        """Bounds on the rounding error of squared distances by expansion."""
        xp = self.xp
        return self._expansion_error * (sq_norms + xp.max(xp.sum(centers * centers, axis=1)))

    def _recompute(self, indices: Any, centers: Any) -> tuple[Any, Any, Any]:
        """Labels, upper and lower bounds of the rows ``indices``, from scratch."""
        xp = self.xp
        every = indices.shape[0] == self.X.shape[0]  # then indices is arange(n)
        half_sq_norms = center_half_sq_norms(self.X, centers)  # Lloyd's, bit for bit

        def block(rows: slice) -> tuple[Any, Any, Any]:
            points = row_block(self.X, rows) if every else take_rows(self.X, indices[rows])
            return nearest_two_centers(points, centers, half_sq_norms)

        blocks = map_row_blocks(
            block, indices.shape[0], centers.shape[0], xp=xp, device=device_of(self.X),
            compiled=blocks_run_compiled(self.X),
        )
        labels, best, second = (concat_rows([b[i] for b in blocks], xp=xp) for i in range(3))
        labels = xp.take(first_equal_rows(centers), labels)  # as ``nearest_centers``
        sq_norms = xp.take(self._sq_norms, indices)
        errors = self._score_errors(sq_norms, centers)
        upper = xp.sqrt(xp.clip(sq_norms + 2.0 * best + errors, min=0.0)) * self._direct_pad
        lower = xp.sqrt(xp.clip(sq_norms + 2.0 * second - errors, min=0.0)) / self._direct_pad
        return labels, upper, lower

    def _distances_to(self, indices: Any, labels: Any, centers: Any) -> Any:
        """Upper bounds of the distances of rows ``indices`` to ``centers[labels]``,
        computed directly (no cancellation), in blocks of gathered rows."""
        xp = self.xp

        def block(rows: slice) -> Any:
            points = take_rows(self.X, indices[rows])
            return block_sq_distances_to_assigned(points, centers, labels[rows])

        blocks = map_row_blocks(
            block, indices.shape[0], self.X.shape[1], xp=xp, device=device_of(self.X),
            compiled=blocks_run_compiled(self.X),
        )
        return xp.sqrt(concat_rows(blocks, xp=xp)) * self._direct_pad

    def _half_gaps_between(self, centers: Any) -> Any:
        """Half the distance from each centre to its nearest other centre, rounded down."""
        xp = self.xp
        n_clusters = centers.shape[0]
        sq_norms = xp.sum(centers * centers, axis=1)
        products = centers @ xp.permute_dims(centers, (1, 0))
        sq_gaps = sq_norms[:, None] + sq_norms[None, :] - 2.0 * products
        indices = xp.arange(n_clusters, device=device_of(centers))
        itself = indices[:, None] == indices[None, :]
        inf = xp.asarray(xp.inf, dtype=centers.dtype, device=device_of(centers))
        nearest_sq = xp.min(xp.where(itself, inf, sq_gaps), axis=1)
        nearest_sq = nearest_sq - 2.0 * self._expansion_error * xp.max(sq_norms)
        return 0.5 * xp.sqrt(xp.clip(nearest_sq, min=0.0)) / self._direct_pad
