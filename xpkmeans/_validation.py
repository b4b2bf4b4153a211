"""Input checks shared by every public entry point.

Each check names the parameter and states the rule and the offending value.
Inputs are never modified: conversions make new arrays.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Callable

from ._errors import InputTypeError
from ._backend import (
    all_finite,
    array_namespace,
    as_array,
    default_float_dtype,
    device_of,
    is_bool,
    is_sparse,
    object_array,
    shape_of,
    sparse,
    to_numpy,
    widest_float_dtype,
    without_autograd,
)


def check_real_dtype(kind: Any, xp: Any, name: str) -> None:
    """Refuse complex and non-numeric dtypes (booleans and integers pass)."""
    if xp.isdtype(kind, "complex floating"):
        msg = f"Complex data not supported: `{name}` has dtype {kind}."
        raise ValueError(msg)
    if not xp.isdtype(kind, ("bool", "numeric")):
        msg = f"`{name}` must be a numeric array, got dtype {kind}."
        raise InputTypeError(msg)


def check_array(
    X: Any, *, name: str = "X", ensure_min_samples: int = 1, dtype: Any = None
) -> tuple[Any, Any]:
    """Validate a 2-D finite real array; return it (as float) and its namespace.

    float32 and float64 are kept; other real or integer dtypes become the
    namespace's default floating dtype, unless ``dtype`` forces one. Sparse
    matrices (SciPy, CuPy, torch) are accepted, returned in CSR format.
    """
    if is_sparse(X):
        return _check_sparse(X, name=name, ensure_min_samples=ensure_min_samples, dtype=dtype)
    X, xp = as_array(X, name)
    kind = X.dtype
    check_real_dtype(kind, xp, name)
    if X.ndim != 2:
        msg = (
            f"`{name}` must be a 2-D array of shape (n_samples, n_features), got "
            f"ndim={X.ndim}. Reshape your data with X.reshape(-1, 1) for one feature or "
            "X.reshape(1, -1) for one sample."
        )
        raise ValueError(msg)
    n_samples, n_features = X.shape
    if n_samples < ensure_min_samples:
        msg = (
            f"`{name}`: found array with {n_samples} sample(s) (shape={tuple(X.shape)}) "
            f"while a minimum of {ensure_min_samples} is required."
        )
        raise ValueError(msg)
    if n_features < 1:
        msg = (
            f"`{name}`: found array with 0 feature(s) (shape={tuple(X.shape)}) "
            "while a minimum of 1 is required."
        )
        raise ValueError(msg)
    device = device_of(X)
    if dtype is None:
        dtype = kind if kind in (xp.float32, xp.float64) else default_float_dtype(xp, device)
    if kind != dtype:
        X = xp.astype(X, dtype)
    if not all_finite(X):  # in row blocks: some libraries' isfinite makes copies of X
        msg = f"`{name}` contains NaN or inf (infinity); remove or impute them first."
        raise ValueError(msg)
    return X, xp


def _check_sparse(X: Any, *, name: str, ensure_min_samples: int, dtype: Any) -> tuple[Any, Any]:
    """``check_array`` of a sparse matrix: CSR of a float dtype, finite values."""
    X = without_autograd(X)  # torch sparse tensors may require grad too
    if len(X.shape) != 2:
        msg = f"`{name}` must be a 2-D sparse matrix, got shape {tuple(X.shape)}."
        raise ValueError(msg)
    xp = array_namespace(X)
    kind = X.dtype
    if not xp.isdtype(kind, ("bool", "real floating", "integral")):
        msg = f"`{name}` must be a real numeric sparse matrix, got dtype {kind}."
        raise InputTypeError(msg)
    if X.shape[0] < ensure_min_samples or X.shape[1] < 1:
        msg = (
            f"`{name}`: found sparse matrix of shape {tuple(X.shape)}; it needs at least "
            f"{ensure_min_samples} sample(s) and 1 feature."
        )
        raise ValueError(msg)
    if dtype is None:
        dtype = kind if kind in (xp.float32, xp.float64) else default_float_dtype(xp, device_of(X))
    X = sparse.as_csr(X, dtype)
    if not sparse.all_finite(X, xp=xp):
        msg = f"`{name}` contains NaN or inf (infinity); remove or impute them first."
        raise ValueError(msg)
    return X, xp


def check_weight_layout(sample_weight: Any, n_samples: int, *, real: bool) -> None:
    """``sample_weight`` holds real numbers (``real``: its dtype does), one per sample."""
    if not real:
        msg = f"`sample_weight` must be real numbers, got dtype {sample_weight.dtype}."
        raise InputTypeError(msg)
    if sample_weight.ndim == 0:  # a bool, a string, a 0-d array
        msg = (
            f"`sample_weight` must be a real number (not a bool) or have shape ({n_samples},) "
            f"to match X, got a single value of dtype {sample_weight.dtype}."
        )
        raise ValueError(msg)
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        msg = (
            f"`sample_weight` must have shape ({n_samples},) to match X, got "
            f"{tuple(sample_weight.shape)}."
        )
        raise ValueError(msg)


def check_sample_weight(sample_weight: Any, X: Any, xp: Any) -> Any:
    """Validate ``sample_weight`` for ``X``: None, a scalar or a 1-D array of length n.

    Returns an array of X's dtype and device, or None for unit weights.
    """
    if sample_weight is None:
        return None
    n_samples = X.shape[0]
    device = device_of(X)
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        sample_weight = xp.full((n_samples,), float(sample_weight), device=device,
                                dtype=widest_float_dtype(xp, device))
    sample_weight, wxp = as_array(sample_weight, "sample_weight")
    check_weight_layout(  # in the weights' own library, before any conversion
        sample_weight, n_samples,
        real=wxp.isdtype(sample_weight.dtype, ("real floating", "integral", "bool")),
    )
    _check_weight_values(sample_weight, wxp)
    if wxp is not xp:  # another library: go through the host
        sample_weight = xp.asarray(to_numpy(sample_weight), device=device)
    weights = xp.astype(xp.asarray(sample_weight, device=device), X.dtype)
    _check_weight_values(weights, xp, dtype=X.dtype)
    return weights


def _check_weight_values(weights: Any, xp: Any, *, dtype: Any = None) -> None:
    """Finite, non-negative, at least one positive; ``dtype``: the same
    checks after the cast to it, which can only overflow or underflow, and a
    total that the widest float holds."""
    if not bool(xp.all(xp.isfinite(weights))):
        reason = "contains NaN or inf" if dtype is None else f"has values too large for {dtype}"
        raise ValueError(f"`sample_weight` {reason}.")
    if bool(xp.any(weights < 0)):
        msg = "`sample_weight` must be non-negative; negative values found."
        raise ValueError(msg)
    if not bool(xp.any(weights > 0)):
        reason = "all are zero" if dtype is None else f"all are zero in {dtype}"
        raise ValueError(f"`sample_weight` must have at least one positive value; {reason}.")
    if dtype is None:  # the total: once, after the cast
        return
    total = xp.sum(xp.astype(weights, widest_float_dtype(xp, device_of(weights))))
    if not math.isfinite(float(total)):  # the weighted sums of the M step would overflow
        raise ValueError("`sample_weight` sums to more than a float can hold.")


def draws_as_unweighted(weights: Any, xp: Any) -> bool:
    """Whether ``weights`` (None or an array) are all equal, so that rows are
    drawn as without weights: scikit-learn's None is ones, and the same seed
    gives the same fit with either (NumPy draws other rows given a uniform ``p``)."""
    return weights is None or bool(xp.all(weights == weights[0]))


def scaled_tolerance(
    sum_of_squares: float, n_values: int, tol: float, *, dtype: Any, dtype_max: float
) -> float:
    """``tol`` times the mean per-feature variance of centred data whose
    ``n_values`` values have squares summing to ``sum_of_squares``
    (scikit-learn's rule).

    Also the check that squared distances, and their sum, fit ``dtype`` (of
    largest value ``dtype_max``): values near the square root of the maximum
    would make them infinite.
    """
    if not sum_of_squares <= dtype_max / 4:
        raise_overflow(dtype)
    return sum_of_squares / n_values * tol


def check_inertia_is_finite(inertia: float, dtype: Any) -> float:
    """An inertia of finite X and centres that is not finite overflowed:
    the error of ``scaled_tolerance``, for the entry points that skip its pass."""
    if not math.isfinite(inertia):
        raise_overflow(dtype)
    return inertia


def check_weighted_inertia_is_finite(inertia: float) -> float:
    """The inertia of a fit, which ``scaled_tolerance`` bounds without
    weights: not finite, the weighted squared distances overflowed (the fit
    had kept ``inertia_ = inf``, and the first of ``n_init`` starts)."""
    if not math.isfinite(inertia):
        msg = ("The inertia (the sum of `sample_weight` times squared distances) overflows: "
               "rescale `sample_weight` (e.g. divide it by its largest value) or X.")
        raise ValueError(msg)
    return inertia


def raise_overflow(dtype: Any) -> None:
    """The error for X whose squared distances overflow ``dtype``."""
    msg = (
        f"`X` has values too large for {dtype}: their squared distances "
        "overflow. Rescale X (e.g. divide by its largest absolute value)."
    )
    raise ValueError(msg)


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """An integer (not bool) that is ``>= minimum``."""
    if is_bool(value) or not isinstance(value, numbers.Integral):
        msg = f"`{name}` must be an int, got {value!r} of type {type(value).__name__}."
        raise InputTypeError(msg)
    if value < minimum:
        msg = f"`{name}` must be >= {minimum}, got {value}."
        raise ValueError(msg)
    return int(value)


def int_at_least(minimum: int) -> Callable[[Any, str], int]:
    """The parameter check ``check(value, name)`` of an int ``>= minimum``."""
    return lambda value, name: check_int(value, name, minimum=minimum)


def one_of(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    """The parameter check of a string among ``options``."""
    def check(value: Any, name: str) -> str:
        if not isinstance(value, str) or value not in options:
            msg = f"`{name}` must be one of {options}, got {value!r}."
            raise ValueError(msg)
        return value

    return check


def none_or(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """The parameter check ``check`` that also takes None."""
    return lambda value, name: None if value is None else check(value, name)


def boolean(value: Any, name: str) -> bool:
    """The parameter check of True or False (Python's or NumPy's)."""
    if not is_bool(value):
        msg = f"`{name}` must be True or False, got {value!r} of type {type(value).__name__}."
        raise InputTypeError(msg)
    return bool(value)


def finite_at_least_zero(value: Any, name: str) -> float:
    """The parameter check of a finite real number ``>= 0`` (not a bool)."""
    if is_bool(value) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        msg = f"`{name}` must be a finite number >= 0, got {value!r}."
        raise ValueError(msg)
    return float(value)


def check_tol(tol: Any) -> float:
    """A finite, non-negative real number."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        msg = f"`tol` must be a real number, got {tol!r} of type {type(tol).__name__}."
        raise InputTypeError(msg)
    if not math.isfinite(tol) or tol < 0:
        msg = f"`tol` must be a finite number >= 0, got {tol}."
        raise ValueError(msg)
    return float(tol)


def check_n_clusters_fits(n_samples: int, n_clusters: int) -> None:
    """There must be at least as many samples as clusters."""
    if n_samples < n_clusters:
        msg = f"n_samples={n_samples} should be >= n_clusters={n_clusters}."
        raise ValueError(msg)


def as_namespace(array: Any, xp: Any, device: Any, *, name: str = "array") -> Any:
    """``array`` as an array of namespace ``xp`` on ``device`` (via the host if foreign)."""
    array, array_xp = as_array(array, name)
    if array_xp is xp:
        return xp.asarray(array, device=device)
    return xp.asarray(to_numpy(array), device=device)


def check_centers(centers: Any, X: Any, xp: Any, *, name: str = "centers") -> Any:
    """A finite (n_clusters, n_features) array in X's namespace, device and dtype."""
    centers = as_namespace(centers, xp, device_of(X), name=name)
    if centers.ndim != 2:
        msg = (f"`{name}` must be a 2-D array of shape (n_clusters, n_features), "
               f"got ndim={centers.ndim}.")
        raise ValueError(msg)
    centers, _ = check_array(centers, name=name, dtype=X.dtype)
    if centers.shape[1] != X.shape[1]:
        msg = f"`{name}` has {centers.shape[1]} features but X has {X.shape[1]}; they must match."
        raise ValueError(msg)
    return centers


def check_one_value_per_row(values: Any, X: Any, *, name: str) -> None:
    """``values`` (an array of any library, or a list) hold one value per row
    of X: shape (n,) or (n, 1), as scikit-learn takes them."""
    shape = shape_of(values)
    if shape not in ((X.shape[0],), (X.shape[0], 1)):
        msg = f"`{name}` must have shape ({X.shape[0]},) to match X, got {shape}."
        raise ValueError(msg)


def integer_labels(labels: Any, xp: Any) -> Any:
    """Cluster labels as int64: integers as they are, booleans as 0/1, and
    floats holding whole numbers that int64 holds (beyond, the cast would
    merge them); anything else is refused naming ``labels``."""
    kind = labels.dtype
    if xp.isdtype(kind, "real floating"):
        whole = xp.isfinite(labels) & (labels == xp.floor(labels)) & (xp.abs(labels) < 2.0**63)
        if not bool(xp.all(whole)):
            msg = ("`labels` must be integer-valued; found non-integer, NaN or inf values, "
                   "or values beyond int64.")
            raise ValueError(msg)
    elif not xp.isdtype(kind, ("bool", "integral")):
        msg = f"`labels` must be integers, got dtype {kind}."
        raise InputTypeError(msg)
    return xp.astype(labels, xp.int64)


def check_labels(labels: Any, X: Any, n_clusters: int, xp: Any) -> Any:
    """Integer labels, one per row of X, each in ``[0, n_clusters)``."""
    labels = as_namespace(labels, xp, device_of(X), name="labels")
    if not xp.isdtype(labels.dtype, "integral"):
        msg = f"`labels` must be integers, got dtype {labels.dtype}."
        raise InputTypeError(msg)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        msg = f"`labels` must have shape ({X.shape[0]},), got {tuple(labels.shape)}."
        raise ValueError(msg)
    if bool(xp.any((labels < 0) | (labels >= n_clusters))):
        msg = f"`labels` must lie in [0, {n_clusters}) for {n_clusters} centers."
        raise ValueError(msg)
    return xp.astype(labels, xp.int64)


def feature_names(X: Any) -> Any:
    """The column names of a data frame ``X`` (pandas, polars) when all are
    strings, as an object array; None for arrays and for frames whose names
    are not strings (scikit-learn's rule: a mix is an error)."""
    if is_sparse(X) or not hasattr(X, "columns"):
        return None
    try:
        names = object_array(list(X.columns))
    except TypeError:
        return None
    kinds = {type(name).__qualname__ for name in names}  # exactly str, as scikit-learn
    if "str" not in kinds:
        return None
    if len(kinds) > 1:
        msg = (
            "Feature names are only supported if all input features have string names, "
            f"but `X` has {sorted(kinds)} as column name types; convert them all to str."
        )
        raise InputTypeError(msg)
    return names


def check_feature_names(estimator: Any, X: Any, *, stacklevel: int = 1) -> None:
    """Compare the column names of ``X`` with those of the fit (``feature_names_in_``):
    different names raise, names on one side only warn, as in scikit-learn
    (``stacklevel`` counts from the caller, as in ``warnings.warn``)."""
    fitted = getattr(estimator, "feature_names_in_", None)
    given = feature_names(X)
    owner = type(estimator).__name__
    if fitted is None and given is None:
        return
    if given is None:
        warnings.warn(f"X does not have valid feature names, but {owner} was fitted with "
                      "feature names", UserWarning, stacklevel=stacklevel + 1)
    elif fitted is None:
        warnings.warn(f"X has feature names, but {owner} was fitted without feature names",
                      UserWarning, stacklevel=stacklevel + 1)
    elif list(fitted) != list(given):
        msg = (
            f"The feature names of X should match those passed to fit: got "
            f"{list(given)}, fitted with {list(fitted)}."
        )
        raise ValueError(msg)


def check_input_features(estimator: Any, input_features: Any, n_features: int) -> None:
    """``input_features`` of ``get_feature_names_out``: None, or the names
    of the fit's ``n_features`` features (scikit-learn's rule)."""
    if input_features is None:
        return
    names = object_array(input_features)
    if names.ndim != 1 or names.shape[0] != n_features:
        msg = (f"`input_features` should have length equal to number of features "
               f"({n_features}), got {names.size}.")
        raise ValueError(msg)
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and list(fitted) != list(names):
        raise ValueError("`input_features` is not equal to feature_names_in_.")


def set_feature_names(estimator: Any, names: Any) -> None:
    """``feature_names_in_`` of a fit: the column names (``feature_names``), or none."""
    if names is None:
        estimator.__dict__.pop("feature_names_in_", None)
    else:
        estimator.feature_names_in_ = names
