"""Which algorithm or feature runs on which arrays, declared once.

The estimator asks ``supports(feature, X)`` before it takes a path, the
tests read the same table to know what to expect on each backend, and a
requested feature that cannot run warns (``FallbackWarning``) and falls back
instead of changing the algorithm silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._host import picks_rows_cheaply


class FallbackWarning(UserWarning):
    """A requested algorithm or feature does not run on these arrays; another one did."""


@dataclass(frozen=True)
class Capability:
    """A feature, the arrays it runs on, and what runs elsewhere."""

    runs_on: str  # in words, for messages and docs
    supported: Callable[[Any], bool]  # given the data X
    fallback: str  # what runs instead


CAPABILITIES: dict[str, Capability] = {
    # Hamerly picks the points whose bounds overlap: a data-dependent number of rows.
    "algorithm='hamerly'": Capability(
        "eager arrays in host memory (NumPy, PyTorch CPU, array_api_strict)",
        picks_rows_cheaply,
        "algorithm='lloyd' (same labels and centres, without the distance bounds)",
    ),
}


def supports(feature: str, X: Any) -> bool:
    """True if ``feature`` (a key of ``CAPABILITIES``) runs on arrays like ``X``."""
    return CAPABILITIES[feature].supported(X)


def fallback_message(feature: str, X: Any) -> str:
    """Why ``feature`` does not run on ``X``, and what runs instead."""
    capability = CAPABILITIES[feature]
    return (
        f"{feature} runs on {capability.runs_on}, not on {type(X).__module__}."
        f"{type(X).__name__} arrays on this device; running {capability.fallback} instead."
    )
