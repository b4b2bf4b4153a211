"""What users hand in that is not yet an array: lists, data frames, object
arrays, strings and NumPy scalars. Validation turns them into host NumPy
arrays here, so that it names no library itself."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import is_array_api_obj, is_dask_array, is_torch_array

from .._errors import InputTypeError
from ._host import array_namespace, without_autograd
from ._sparse import is_sparse


def refuse_row_blocks(X: Any, name: str) -> None:
    """A ``RowBlocks`` is read only by ``KMeans.fit``."""
    if getattr(X, "array_kind", None) == "streamed":
        msg = f"`{name}` is a RowBlocks, which only `fit` reads; pass an array or a memmap."
        raise InputTypeError(msg)


def as_array(X: Any, name: str) -> tuple[Any, Any]:
    """``X`` as an array-API array and its namespace; other inputs (lists,
    data frames, objects with ``__array__``) go through NumPy."""
    if is_sparse(X):
        msg = f"`{name}` is a sparse matrix; it must be dense here (use `{name}.toarray()`)."
        raise InputTypeError(msg)
    check_dense_chunks(X, name)
    refuse_row_blocks(X, name)
    if isinstance(X, np.matrix):  # its products and reductions stay 2-D
        msg = f"`{name}` is an np.matrix, which is not supported: pass np.asarray({name})."
        raise InputTypeError(msg)
    if isinstance(X, np.ma.MaskedArray):  # its products carry the mask along, misshapen
        if np.ma.is_masked(X):  # scikit-learn reads the hidden values: refused here
            msg = (f"`{name}` is a masked array with masked values; fill them "
                   f"(`{name}.filled(value)`) or drop their rows.")
            raise ValueError(msg)
        X = np.ma.getdata(X)  # nothing masked: its values, as scikit-learn reads them
    try:
        xp = array_namespace(X)
        if not (isinstance(X, np.ndarray) and X.dtype == object):
            _check_holds_values(X, name)
            return _values_resolved(without_autograd(X)), xp
    except TypeError:
        pass
    try:
        X = _native_byte_order(np.asarray(X))
    except (TypeError, ValueError) as e:
        msg = f"`{name}` could not be converted to a numeric array: {e}"
        raise InputTypeError(msg) from e
    if X.dtype == object:
        try:
            X = _missing_as_nan(X).astype(np.float64)
        except (TypeError, ValueError) as e:
            msg = f"`{name}` must be numeric; {e}"
            raise InputTypeError(msg) from e
    return X, array_namespace(X)


def _values_resolved(X: Any) -> Any:
    """A torch tensor with its lazy negation bit set (``x.conj().imag`` of a
    complex tensor) as a tensor holding its values: NumPy views and the
    compiled kernels read a tensor's memory as it is (``.numpy()`` refuses
    it); a NumPy array of another byte order (``'>f4'``) in the native one,
    so that float32 stays float32. Other arrays are returned as they are."""
    if is_torch_array(X) and X.is_neg():
        return X.resolve_neg()
    return _native_byte_order(X) if isinstance(X, np.ndarray) else X


def kept_float_dtype(kind: Any, xp: Any) -> Any:
    """The float dtype an input of dtype ``kind`` is computed in: float32 and
    float64 kept (a NumPy one of another byte order, '>f4', in the native
    one), anything else float64."""
    if isinstance(kind, np.dtype):
        kind = kind.newbyteorder("=")
    return kind if kind in (xp.float32, xp.float64) else xp.float64


def _native_byte_order(X: np.ndarray) -> np.ndarray:
    """``X`` in the machine's byte order (a copy only where it is not)."""
    return X if X.dtype.isnative else X.astype(X.dtype.newbyteorder("="))


def check_dense_chunks(X: Any, name: str) -> None:
    """Refuse a Dask array of sparse chunks (SciPy, CuPy or pydata ``sparse``,
    as its ``_meta`` tells): neither the per-chunk kernels nor the sparse
    passes take it."""
    if not is_dask_array(X):
        return
    meta = getattr(X, "_meta", None)
    if is_sparse(meta) or type(meta).__module__.partition(".")[0] == "sparse":
        msg = (
            f"`{name}` is a Dask array of sparse chunks ({type(meta).__name__}), which is not "
            f"supported: pass the sparse matrix itself (`{name}.compute()`) or dense chunks "
            f"(`{name}.map_blocks(lambda block: block.toarray())`)."
        )
        raise InputTypeError(msg)


def _missing_as_nan(X: np.ndarray) -> np.ndarray:
    """Object values with None or pandas' NA (nullable columns) as NaN, which
    the finiteness check then names."""
    missing = np.asarray(
        np.frompyfunc(lambda v: v is None or type(v).__name__ == "NAType", 1, 1)(X), dtype=bool)
    return np.where(missing, np.nan, X) if X.ndim and np.any(missing) else X


def _check_holds_values(X: Any, name: str) -> None:
    """Refuse arrays that have a shape but no values (torch's "meta" device)."""
    if getattr(getattr(X, "device", None), "type", None) == "meta":
        msg = f"`{name}` is on the 'meta' device, which holds no values; move it to a real device."
        raise ValueError(msg)


def shape_of(values: Any) -> tuple[int, ...]:
    """The shape of an array of any library, or of nested lists."""
    return tuple(values.shape) if hasattr(values, "shape") else np.shape(values)


def is_bool(value: Any) -> bool:
    """True for Python's and NumPy's booleans (neither is a valid number of anything)."""
    return isinstance(value, (bool, np.bool_))


def is_memmap(X: Any) -> bool:
    """True for a NumPy memory map (rows that may live in a file)."""
    return isinstance(X, np.memmap)


def encode_host_categories(values: Any, *, name: str) -> Any:
    """Host strings or objects (a list, a NumPy array, a pandas Series) as
    int64 codes in sorted order, as scikit-learn's ``LabelEncoder``; anything
    else as it is."""
    if is_array_api_obj(values) and not isinstance(values, np.ndarray):
        return values
    host = np.asarray(values)
    if host.dtype.kind not in "USO":
        return values
    try:
        return np.unique(host, return_inverse=True)[1].reshape(-1)
    except TypeError as e:  # objects that do not compare
        msg = f"`{name}` could not be encoded: {e}"
        raise InputTypeError(msg) from e


def object_array(items: Any) -> np.ndarray:
    """Names (strings) as a 1-D NumPy object array, scikit-learn's type for
    ``feature_names_in_`` and ``get_feature_names_out``."""
    return np.asarray(items, dtype=object)
