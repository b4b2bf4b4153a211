"""xpkmeans: K-Means written once against the Python array API.

The same EM code runs on NumPy, CuPy, PyTorch and any array-API library;
results stay in the input's namespace and on its device. Plots live in
``xpkmeans.plotting`` (needs matplotlib; imported on demand).

Names are imported on first use (PEP 562), so ``import xpkmeans`` and the
command line's ``--version`` start in milliseconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "kmeans_plusplus": "._init",
    "FitProgress": "._kmeans",
    "KMeans": "._kmeans",
    "k_means": "._kmeans",
    "LloydStep": "._lloyd",
    "e_step": "._lloyd",
    "lloyd_steps": "._lloyd",
    "m_step": "._lloyd",
    "MiniBatchKMeans": "._minibatch",
    "RowBlocks": "._streaming",
    "ConvergenceWarning": "._sklearn_compat",
    "NotFittedError": "._sklearn_compat",
    "FallbackWarning": "._backend._capabilities",
    "make_blobs": ".datasets",
    "calinski_harabasz_score": ".metrics",
    "davies_bouldin_score": ".metrics",
    "silhouette_samples": ".metrics",
    "silhouette_score": ".metrics",
    "ClusterSelection": ".model_selection",
    "select_n_clusters": ".model_selection",
}

__all__ = [
    "ClusterSelection",
    "ConvergenceWarning",
    "FallbackWarning",
    "FitProgress",
    "KMeans",
    "LloydStep",
    "MiniBatchKMeans",
    "NotFittedError",
    "RowBlocks",
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "e_step",
    "k_means",
    "kmeans_plusplus",
    "lloyd_steps",
    "m_step",
    "make_blobs",
    "select_n_clusters",
    "silhouette_samples",
    "silhouette_score",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from ._backend._capabilities import FallbackWarning
    from ._init import kmeans_plusplus
    from ._kmeans import FitProgress, KMeans, k_means
    from ._lloyd import LloydStep, e_step, lloyd_steps, m_step
    from ._sklearn_compat import ConvergenceWarning, NotFittedError
    from .datasets import make_blobs
    from .metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_samples,
        silhouette_score,
    )
    from .model_selection import ClusterSelection, select_n_clusters
