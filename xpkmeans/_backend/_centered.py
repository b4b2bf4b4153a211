"""Data centred as it is read: X minus its column means, never written out.

k-means computes distances as ``||c||^2 / 2 - x . c``, which is accurate on
centred data. A centred copy doubles the memory of X; where the fused pass
subtracts the means as it loads each tile (Triton on CUDA), ``centered``
gives a :class:`CenteredRows` instead, and the backend primitives take it
wherever they take X. Each centred value is ``x - mean`` rounded once, as in
a copy, so the arithmetic is the copy's.
"""

from __future__ import annotations

from typing import Any

#: Tests set this to True to run every backend on centred views (the CUDA
#: path's arithmetic on the CPU); None leaves the choice to ``on_the_fly``.
force_views: bool | None = None


class CenteredRows:
    """The rows of ``data`` minus the row ``mean``, centred block by block.

    ``row_block`` and ``take_rows`` (backend primitives) give plain arrays of
    centred rows; the whole passes (``nearest_centers``, ...) centre each tile
    inside their kernel, or go in centred row blocks.
    """

    def __init__(self, data: Any, mean: Any) -> None:
        self.data = data
        self.mean = mean

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return 2

    def rows(self, rows: slice) -> Any:
        """Rows ``rows`` centred: a block-sized temporary."""
        return self.data[rows, :] - self.mean


def is_centered_view(X: Any) -> bool:
    return isinstance(X, CenteredRows)
