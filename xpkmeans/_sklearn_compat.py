"""scikit-learn integration, optional at run time.

With scikit-learn installed, ``KMeans`` is a real scikit-learn estimator
(``clone``, ``Pipeline``, ``GridSearchCV``, ``check_estimator``) and raises
scikit-learn's ``NotFittedError`` and ``ConvergenceWarning``. Without it, the
small stand-ins below give the same public behaviour. The command line uses
the stand-ins (it never hands an estimator to scikit-learn, whose import
costs about a second).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

try:
    if os.environ.get("_XPKMEANS_WITHOUT_SKLEARN") == "1":  # set by the command line
        raise ImportError("scikit-learn not wanted: the command line does not use it")
    from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
    from sklearn.exceptions import ConvergenceWarning, NotFittedError

    HAS_SKLEARN = True
    try:  # metadata routing came in scikit-learn 1.3; before, nothing reads it
        from sklearn.utils.metadata_routing import UNUSED
    except ImportError:  # pragma: no cover - scikit-learn < 1.3
        UNUSED = "$UNUSED$"
except ImportError:  # pragma: no cover - exercised in environments without scikit-learn
    HAS_SKLEARN = False

    #: scikit-learn's marker of a method parameter that metadata routing ignores
    UNUSED = "$UNUSED$"

    class ConvergenceWarning(UserWarning):
        """The fit ended in a degenerate or unconverged state."""

    class NotFittedError(ValueError, AttributeError):
        """The estimator was used before ``fit``."""

    class ClusterMixin:
        """Marker for clustering estimators."""

    class TransformerMixin:
        """Marker for estimators with ``transform``."""

    class BaseEstimator:
        """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            signature = inspect.signature(cls.__init__)
            return sorted(
                name for name, p in signature.parameters.items()
                if name != "self" and p.kind != p.VAR_KEYWORD
            )

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params: Any) -> "BaseEstimator":
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    msg = f"Invalid parameter {name!r} for {type(self).__name__}; valid: {valid}."
                    raise ValueError(msg)
                setattr(self, name, value)
            return self

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"


__all__ = [
    "HAS_SKLEARN",
    "BaseEstimator",
    "ClusterMixin",
    "ConvergenceWarning",
    "NotFittedError",
    "TransformerMixin",
    "UNUSED",
]
