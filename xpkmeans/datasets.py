"""Synthetic data: isotropic Gaussian blobs, as in ``sklearn.datasets.make_blobs``.

Numbers are drawn on the host with a ``numpy.random.Generator`` and moved to
the requested namespace and device, so one seed gives the same data everywhere.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._backend import default_float_dtype, from_host, host_rng, host_xp
from ._errors import InputTypeError
from ._validation import check_int


def make_blobs(
    n_samples: int | Any = 100,
    n_features: int = 2,
    *,
    centers: int | Any = None,
    cluster_std: float | Any = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    shuffle: bool = True,
    random_state: Any = None,
    return_centers: bool = False,
    xp: Any = None,
    device: Any = None,
    dtype: Any = None,
) -> tuple:
    """Generate isotropic Gaussian blobs for clustering.

    Parameters
    ----------
    n_samples : int or sequence of int, default=100
        Total number of points, split as evenly as possible between the
        blobs; or the number of points of each blob.
    n_features : int, default=2
        Dimension of each point (ignored when ``centers`` is an array).
    centers : int or array of shape (n_centers, n_features), default=None
        Number of blobs, or their centres. None gives 3 blobs (or one per
        entry of a sequence ``n_samples``).
    cluster_std : float or sequence of float, default=1.0
        Standard deviation of each blob.
    center_box : (float, float), default=(-10.0, 10.0)
        Bounds of the uniformly drawn centres.
    shuffle : bool, default=True
        Shuffle the points (otherwise they come blob by blob).
    random_state : int, numpy.random.Generator or None, default=None
    return_centers : bool, default=False
        Also return the blob centres.
    xp : array namespace or module, default=None
        Library of the outputs, e.g. ``array_api_compat.torch`` or ``torch``;
        None is NumPy.
    device : device, default=None
        Device of the outputs in ``xp``.
    dtype : dtype, default=None
        Floating dtype of ``X`` (and centres), or its name ("float32"); None
        is the namespace default.

    Returns
    -------
    X : array of shape (n_samples, n_features)
    y : integer array of shape (n_samples,)
        The blob of each point.
    centers : array of shape (n_centers, n_features)
        Only when ``return_centers`` is True.
    """
    rng = host_rng(random_state)
    n_features = check_int(n_features, "n_features", minimum=1)
    low, high = _check_center_box(center_box)
    if not isinstance(n_samples, (list, tuple, np.ndarray)):
        total = check_int(n_samples, "n_samples", minimum=1)
        if centers is None:
            centers = 3
        if isinstance(centers, numbers.Integral):
            n_centers = check_int(centers, "centers", minimum=1)
            center_points = rng.uniform(low, high, size=(n_centers, n_features))
        else:
            center_points = _check_center_points(centers)
            n_centers = center_points.shape[0]
        sizes = [total // n_centers + (i < total % n_centers) for i in range(n_centers)]
    else:
        sizes = [check_int(s, "n_samples[i]", minimum=0) for s in n_samples]
        n_centers = len(sizes)
        if n_centers == 0 or sum(sizes) == 0:
            raise ValueError("`n_samples` must list at least one blob size > 0.")
        if isinstance(centers, numbers.Integral):  # one centre per listed size
            if check_int(centers, "centers", minimum=1) != n_centers:
                msg = f"`centers`={centers} but `n_samples` lists {n_centers} blob sizes."
                raise ValueError(msg)
            centers = None
        if centers is None:
            center_points = rng.uniform(low, high, size=(n_centers, n_features))
        else:
            center_points = _check_center_points(centers)
            if center_points.shape[0] != n_centers:
                msg = (
                    f"`centers` has {center_points.shape[0]} rows but `n_samples` lists "
                    f"{n_centers} blob sizes; they must match."
                )
                raise ValueError(msg)
    n_features = center_points.shape[1]
    try:
        stds = np.broadcast_to(np.asarray(cluster_std, dtype=np.float64), (n_centers,))
    except (TypeError, ValueError) as e:
        msg = f"`cluster_std` must be a number or one per centre ({n_centers}), got {cluster_std!r}."
        raise ValueError(msg) from e
    if np.any(stds < 0) or not np.all(np.isfinite(stds)):
        msg = f"`cluster_std` must be finite and >= 0, got {cluster_std}."
        raise ValueError(msg)

    X = np.concatenate([
        rng.normal(loc=center_points[i], scale=stds[i], size=(size, n_features))
        for i, size in enumerate(sizes)
    ])
    y = np.repeat(np.arange(n_centers), sizes)
    if shuffle:
        order = rng.permutation(X.shape[0])
        X, y = X[order], y[order]

    xp = _check_namespace(xp)
    dtype = _check_dtype(dtype, xp, device)
    X_out = from_host(X, xp=xp, device=device, dtype=dtype)
    y_out = from_host(y, xp=xp, device=device, dtype=xp.int64)
    if return_centers:
        return X_out, y_out, from_host(center_points, xp=xp, device=device, dtype=dtype)
    return X_out, y_out


def _check_center_box(center_box: Any) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in center_box)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`center_box` must be two numbers (low, high), got {center_box!r}.") from e
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"`center_box` must be finite with low <= high, got {center_box!r}.")
    return low, high


def _check_center_points(centers: Any) -> np.ndarray:
    from ._backend import to_numpy

    points = np.asarray(to_numpy(centers) if hasattr(centers, "__array_namespace__") else centers,
                        dtype=np.float64)
    if points.ndim != 2:
        msg = f"`centers` must be an int or a 2-D array, got ndim={points.ndim}."
        raise ValueError(msg)
    return points


def _check_namespace(xp: Any) -> Any:
    """An array API namespace: None is NumPy's; a library's own module
    (``torch``, ``numpy``, ``cupy``) stands for its namespace."""
    if xp is None:
        return host_xp
    if hasattr(xp, "__array_namespace_info__"):
        return xp
    import array_api_compat

    try:
        return array_api_compat.array_namespace(xp.asarray(0.0))
    except (AttributeError, TypeError) as e:
        msg = (f"`xp` must be an array namespace (e.g. array_api_compat.torch) or an array "
               f"library's module, got {xp!r}.")
        raise InputTypeError(msg) from e


def _check_dtype(dtype: Any, xp: Any, device: Any) -> Any:
    """A real floating dtype of ``xp`` (or its name); None is its default."""
    if dtype is None:
        return default_float_dtype(xp, device)
    kind = getattr(xp, dtype, None) if isinstance(dtype, str) else dtype
    try:
        if kind is not None and xp.isdtype(kind, "real floating"):
            return kind
    except (AttributeError, TypeError, ValueError):
        pass
    raise InputTypeError(f"`dtype` must be a real floating dtype of `xp`, got {dtype!r}.")
