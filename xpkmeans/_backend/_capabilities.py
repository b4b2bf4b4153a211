"""Which algorithm or feature runs on which arrays, declared once.

Data comes in six kinds (``array_kind``): dense in host memory, dense on a
GPU, sparse, lazy (Dask), of a namespace without data-dependent shapes, and
streamed (read one block of rows at a time). Each feature below lists the
kinds it runs on. The estimator asks ``supports(feature, X)`` before it takes
a path, the tests read the same table to know what to expect on each backend, and a
requested feature that cannot run warns (``FallbackWarning``) and falls back
instead of changing the algorithm silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from array_api_compat import is_lazy_array

from ._host import allows_data_dependent_shapes, array_namespace, device_of, is_cpu_device
from ._sparse import is_sparse


class FallbackWarning(UserWarning):
    """A requested algorithm or feature does not run on these arrays; another one did."""


ARRAY_KINDS: dict[str, str] = {
    "host": "dense arrays in host memory (NumPy, PyTorch CPU, array_api_strict)",
    "fixed_shapes": "arrays of a namespace without data-dependent shapes "
    "(array_api_strict with that flag off)",
    "gpu": "dense arrays on a GPU (CuPy, PyTorch CUDA)",
    "sparse": "sparse matrices (SciPy, CuPy, PyTorch)",
    "lazy": "lazy arrays (Dask)",
    "streamed": "data read one block of rows at a time (RowBlocks)",
}
ALL_KINDS = frozenset(ARRAY_KINDS)


def array_kind(X: Any) -> str:
    """The kind of ``X``, a key of ``ARRAY_KINDS`` (``RowBlocks`` declares its own)."""
    declared = getattr(X, "array_kind", None)
    if isinstance(declared, str):
        return declared
    if is_sparse(X):
        return "sparse"
    if is_lazy_array(X):
        return "lazy"
    xp = array_namespace(X)
    if not allows_data_dependent_shapes(xp):
        return "fixed_shapes"
    return "host" if is_cpu_device(xp, device_of(X)) else "gpu"


@dataclass(frozen=True)
class Capability:
    """A feature, the kinds of arrays it runs on, and what runs elsewhere."""

    runs_on: frozenset[str]  # keys of ARRAY_KINDS
    fallback: str | None = None  # what runs instead; None where it runs on every kind


_DISTANCE_BOUNDS = Capability(
    frozenset({"host"}),
    "algorithm='lloyd' (same labels and centres, without the distance bounds)",
)

CAPABILITIES: dict[str, Capability] = {
    "algorithm='lloyd'": Capability(ALL_KINDS),
    # Hamerly picks the points whose bounds overlap: a data-dependent number of
    # rows (a device sync on a GPU, unknown before compute on Dask, dense rows).
    "algorithm='hamerly'": _DISTANCE_BOUNDS,
    "algorithm='elkan'": _DISTANCE_BOUNDS,  # scikit-learn's name: the same bounded E step
    # on Dask one pass per centre (it warns); streamed: on a uniform sample of rows
    "init='k-means++'": Capability(ALL_KINDS),
    "init='k-means||'": Capability(  # a constant number of passes over X
        ALL_KINDS - {"streamed"}, "init='k-means++' on a uniform sample of rows"
    ),
    "init='random'": Capability(ALL_KINDS),
}


def supports(feature: str, X: Any) -> bool:
    """True if ``feature`` (a key of ``CAPABILITIES``) runs on arrays like ``X``."""
    return array_kind(X) in CAPABILITIES[feature].runs_on


def fallback_message(feature: str, X: Any) -> str:
    """Why ``feature`` does not run on ``X``, and what runs instead."""
    return (
        f"{feature} does not run on {ARRAY_KINDS[array_kind(X)]}, such as this "
        f"{type(X).__module__}.{type(X).__name__}; running {CAPABILITIES[feature].fallback} "
        "instead."
    )


def check_supported(feature: str, X: Any, *, stacklevel: int = 1) -> bool:
    """``supports(feature, X)``; where not, also the ``FallbackWarning`` that says
    what runs instead (``stacklevel`` counts from the caller, as in ``warnings.warn``)."""
    if supports(feature, X):
        return True
    warnings.warn(fallback_message(feature, X), FallbackWarning, stacklevel=stacklevel + 1)
    return False
