"""Sparse data (CSR): SciPy on the CPU, ``cupyx.scipy.sparse`` and torch on CUDA.

Sparse X is never densified as a whole: products with the centres go in
blocks of rows (``rows x k`` dense), per-cluster sums add each non-zero to a
dense ``k x d`` array, and only a few chosen rows (initial centres, points
moved to empty clusters) become dense. As in scikit-learn, sparse data is not
centred (that would fill it in).

Each function takes a CSR matrix of one of three kinds and uses that
library's own sparse products (cuSPARSE on a GPU):

- ``"scipy"``: ``scipy.sparse`` matrices and arrays (CPU);
- ``"cupyx"``: ``cupyx.scipy.sparse`` matrices (CUDA);
- ``"torch"``: torch tensors of sparse CSR layout (CPU or CUDA).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._host import concat_rows, row_blocks, row_chunk_size


def kind(X: Any) -> str | None:
    """``"scipy"``, ``"cupyx"`` or ``"torch"`` for a sparse matrix, else None."""
    scipy_sparse = sys.modules.get("scipy.sparse")
    if scipy_sparse is not None and scipy_sparse.issparse(X):
        return "scipy"
    cupyx_sparse = sys.modules.get("cupyx.scipy.sparse")
    if cupyx_sparse is not None and cupyx_sparse.issparse(X):
        return "cupyx"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(X, torch.Tensor) and X.layout != torch.strided:
        return "torch"
    return None


def is_sparse(X: Any) -> bool:
    """True for a SciPy, CuPy or torch sparse matrix."""
    return kind(X) is not None


def namespace(X: Any) -> Any:
    """The array namespace of X's dense arrays (centres, labels)."""
    library = kind(X)
    if library == "scipy":
        import array_api_compat.numpy as xp
    elif library == "cupyx":
        import array_api_compat.cupy as xp
    else:
        import array_api_compat.torch as xp
    return xp


def device(X: Any) -> Any:
    """The device of X's values."""
    library = kind(X)
    if library == "scipy":
        return "cpu"
    return X.device if library == "torch" else X.data.device


def dense_stand_in(X: Any) -> Any:
    """An empty dense array of X's library and device, for ``array_namespace``
    (any format: not all store their values as one array)."""
    library = kind(X)
    if library == "scipy":
        return np.empty(0)
    if library == "torch":
        import torch

        return torch.empty(0, device=X.device)
    return X.data[:0]


def as_csr(X: Any, dtype: Any = None) -> Any:
    """X in CSR format (CSC, COO and others converted) without repeated
    entries of a cell (added, on a copy), of ``dtype`` if given; a new matrix
    unless X already is such a CSR matrix of that dtype.

    SciPy CSR keeps its column order within a row (sorted or not: every pass
    here reads the stored values in any order), so that the result of a
    product (``A @ B``: unsorted) is not copied by each ``fit``, ``predict``
    or ``score``; CuPy's and torch's are sorted (torch's own rule for a
    valid CSR tensor, which its kernels assume)."""
    library = kind(X)
    if library == "torch":
        return _torch_csr(X, dtype)
    if X.format != "csr":
        X = X.tocsr()
    repeats = _repeats_a_cell(X) if library == "scipy" else not X.has_canonical_format
    if repeats:  # entries of one cell are added, on a copy
        X = X.copy()
        X.sum_duplicates()
    return X if dtype is None or X.dtype == dtype else X.astype(dtype)


# non-zeros checked at a time for repeated cells without numba (a column-major
# copy of their positions: 5 bytes each)
_CHECKED_NONZEROS = 1 << 22


def _repeats_a_cell(X: Any) -> bool:
    """Whether a row of the SciPy CSR matrix X stores a column twice, found
    without a copy of X: SciPy's flags where the indices are sorted, else
    (the result of a product) the compiled check, or the positions of rows
    in blocks made column-major (a linear pass that sorts each column by
    row: a repeat is two equal rows in a column)."""
    if X.has_sorted_indices:  # both flags: one pass each, kept by X
        return not X.has_canonical_format
    from . import _numba

    if _numba.AVAILABLE:
        return _numba.csr_repeats_a_column(X)
    import scipy.sparse

    n_rows, indptr = X.shape[0], X.indptr
    # a block's column-major copy has d + 1 pointers: blocks of at least d
    # non-zeros keep the whole check linear in the non-zeros and columns
    step = max(1, max(_CHECKED_NONZEROS, X.shape[1]) * n_rows // max(X.nnz, 1))
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        first, last = int(indptr[start]), int(indptr[stop])
        positions = scipy.sparse.csr_matrix(
            (np.ones(last - first, dtype=np.int8), X.indices[first:last],
             indptr[start:stop + 1] - first), shape=(stop - start, X.shape[1]))
        if not positions.tocsc().has_canonical_format:
            return True
    return False


def _falls_within_a_row(columns: Any, indptr: Any, xp: Any) -> bool:
    """Whether a column index is at most the one before it in the same row
    (a repeated cell in sorted rows; torch's rule broken in any rows)."""
    if columns.shape[0] < 2:
        return False
    falls = xp.nonzero(columns[1:] <= columns[:-1])[0] + 1  # none in a valid matrix
    if falls.shape[0] == 0:
        return False
    starts = xp.astype(indptr, falls.dtype)  # a fall where a row starts is no repeat
    at_start = xp.searchsorted(starts, falls)
    return not bool(xp.all(xp.take(starts, xp.clip(at_start, 0, starts.shape[0] - 1)) == falls))


def _torch_csr(X: Any, dtype: Any) -> Any:
    """``as_csr`` of a torch sparse tensor: CSR with sorted, distinct columns
    in each row (torch's rule), of ``dtype`` if given."""
    import torch

    if X.layout in (torch.sparse_bsr, torch.sparse_bsc):  # torch converts blocks only to COO
        X = X.to_sparse_coo()
    if X.layout != torch.sparse_csr:
        X = X.to_sparse_csr()  # from COO: repeated entries added, columns sorted
    import array_api_compat.torch as xp

    if _falls_within_a_row(X.col_indices(), X.crow_indices(), xp):
        X = _torch_sorted_and_added(X)
    return X if dtype is None or X.dtype == dtype else X.to(dtype)


def _torch_sorted_and_added(X: Any) -> Any:
    """A torch CSR tensor built without torch's checks (unsorted columns or
    repeated cells in a row) as a valid one: sorted, repeats added, in X's
    index dtype."""
    import torch

    columns = X.col_indices()
    rows = _row_ids(X, None)
    coalesced = torch.sparse_coo_tensor(
        torch.stack([rows, columns.to(rows.dtype)]), X.values(), X.shape).coalesce()
    csr = coalesced.to_sparse_csr()
    return torch.sparse_csr_tensor(
        csr.crow_indices().to(columns.dtype), csr.col_indices().to(columns.dtype),
        csr.values(), size=X.shape, check_invariants=False)  # valid: made by torch


def with_dtype(X: Any, dtype: Any) -> Any:
    """A CSR matrix that ``as_csr`` gave (or a row block of one) in ``dtype``:
    a new matrix only where the dtype differs (no new check for repeats: a
    check of each row block of a wide matrix costs a pass over its columns)."""
    if X.dtype == dtype:
        return X
    return X.to(dtype) if kind(X) == "torch" else X.astype(dtype)


def values(X: Any) -> Any:
    """The stored values of a CSR matrix (a dense 1-D array, shared)."""
    return X.values() if kind(X) == "torch" else X.data


def _indptr(X: Any) -> Any:
    return X.crow_indices() if kind(X) == "torch" else X.indptr


def _columns(X: Any) -> Any:
    return X.col_indices() if kind(X) == "torch" else X.indices


def _row_ids(X: Any, xp: Any) -> Any:
    """The row of each stored value (n_nonzero integers)."""
    indptr = _indptr(X)
    library = kind(X)
    if library == "scipy":
        return np.repeat(np.arange(X.shape[0]), np.diff(indptr))
    if library == "torch":
        import torch

        counts = indptr[1:] - indptr[:-1]
        return torch.repeat_interleave(torch.arange(X.shape[0], device=X.device), counts)
    # CuPy: the row whose range holds each position (no repeat by an array of counts)
    positions = xp.arange(values(X).shape[0], dtype=xp.int64, device=device(X))
    return xp.searchsorted(xp.astype(indptr[1:], xp.int64), positions, side="right")


def row_block(X: Any, rows: slice) -> Any:
    """``X[rows, :]`` as a CSR matrix of the same kind (no copy of other rows)."""
    if rows.start == 0 and rows.stop == X.shape[0]:  # all rows (one GPU block): X itself
        return X
    if kind(X) != "torch":
        return X[rows]
    import torch

    indptr = X.crow_indices()
    first, last = int(indptr[rows.start]), int(indptr[rows.stop])
    return torch.sparse_csr_tensor(
        indptr[rows.start : rows.stop + 1] - first, X.col_indices()[first:last],
        X.values()[first:last], size=(rows.stop - rows.start, X.shape[1]),
        check_invariants=False,  # slices of a valid matrix
    )


def take_rows(X: Any, indices: Any) -> Any:
    """The rows ``indices`` of X as a dense array (a few rows: centres)."""
    if kind(X) != "torch":
        return X[indices].toarray()
    import torch

    if indices.shape[0] == 0:
        return torch.zeros((0, X.shape[1]), dtype=X.dtype, device=X.device)
    return torch.cat([
        row_block(X, slice(i, i + 1)).to_dense() for i in indices.tolist()
    ])


def _products(block: Any, centers_t: Any) -> Any:
    """``block @ centers_t``: the library's sparse times dense product."""
    product = block @ centers_t
    return np.asarray(product) if kind(block) == "scipy" else product


def select_rows(X: Any, indices: Any) -> Any:
    """The rows ``indices`` of X, as a sparse CSR matrix of the same kind."""
    if kind(X) != "torch":
        return X[indices]
    import torch  # the rows' slices of the CSR arrays: work in their non-zeros only

    indptr, indices = X.crow_indices(), torch.as_tensor(indices, device=X.device)
    starts, counts = indptr[indices], indptr[indices + 1] - indptr[indices]
    new_indptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0, dtype=indptr.dtype)])
    positions = torch.arange(int(new_indptr[-1]), device=X.device) + torch.repeat_interleave(
        starts - new_indptr[:-1], counts)
    return torch.sparse_csr_tensor(new_indptr, X.col_indices()[positions], X.values()[positions],
                                   size=(indices.shape[0], X.shape[1]), check_invariants=False)


def products_with_rows(X: Any, rows: slice) -> Any:
    """``X[rows, :] @ X.T`` as a dense ``rows x n`` array (silhouette blocks)."""
    if kind(X) == "torch":
        # CSR @ dense is what torch has on CPU and CUDA: X times the block made
        # dense, a few rows at a time (a 256-row block of 2^20 features: 1 GB)
        import torch

        xp = namespace(X)
        step = row_chunk_size(rows.stop - rows.start, X.shape[1], xp=xp, device=X.device,
                              min_rows=1)
        products = []
        for start in range(rows.start, rows.stop, step):
            part = row_block(X, slice(start, min(start + step, rows.stop))).to_dense()
            products.append((X @ part.t()).t())
        return torch.cat(products)
    return (row_block(X, rows) @ X.T).toarray()


# ------------------------------------------------------------------ whole passes


def nearest_centers(X: Any, centers: Any, *, xp: Any) -> Any:
    """Index of the nearest centre of each row (the scores of the dense path)."""
    half_sq_norms = 0.5 * xp.sum(centers * centers, axis=1)
    centers_t = transposed(centers, xp=xp)

    def labels_of(rows: slice) -> Any:
        scores = half_sq_norms - _products(row_block(X, rows), centers_t)
        return xp.argmin(scores, axis=1)

    blocks = row_blocks(X.shape[0], centers.shape[0], xp=xp, device=device(X))
    return concat_rows([labels_of(rows) for rows in blocks], xp=xp)


def transposed(centers: Any, *, xp: Any) -> Any:
    """``centers.T`` laid out row-major (C-contiguous): the operand that the
    libraries' sparse times dense products read as it is (SciPy ravels a
    non-contiguous operand: one more copy of the centres per product)."""
    view = xp.permute_dims(centers, (1, 0))
    if hasattr(view, "contiguous"):  # torch
        return view.contiguous()
    if hasattr(xp, "ascontiguousarray"):
        # NumPy's and CuPy's ``asarray(copy=True)`` keep the view's column-major layout
        return xp.ascontiguousarray(view)
    return xp.asarray(view, copy=True)


def sum_by_cluster(
    X: Any, labels: Any, n_clusters: int, *, weights: Any, xp: Any, accumulate: Any
) -> tuple[Any, Any]:
    """Per cluster, the (weighted) sum of its rows (dense ``k x d``) and total weight.

    Every stored value is added to its row's cluster and column, in ``accumulate``.
    """
    n_features = X.shape[1]
    rows = _row_ids(X, xp)
    slot = xp.take(labels, rows) * n_features + xp.astype(_columns(X), labels.dtype)
    added = xp.astype(values(X), accumulate)
    if weights is None:
        row_weights = xp.ones((X.shape[0],), dtype=accumulate, device=device(X))
    else:
        row_weights = xp.astype(weights, accumulate)
        added = added * xp.take(row_weights, rows)
    sums = _add_at(slot, added, n_clusters * n_features, xp=xp, accumulate=accumulate)
    totals = _add_at(labels, row_weights, n_clusters, xp=xp, accumulate=accumulate)
    return xp.reshape(sums, (n_clusters, n_features)), totals


def _add_at(slots: Any, added: Any, size: int, *, xp: Any, accumulate: Any) -> Any:
    """``out[slots[i]] += added[i]`` into zeros of ``size``."""
    from array_api_compat import is_numpy_array, is_torch_array

    if is_numpy_array(slots):
        return np.bincount(slots, weights=added, minlength=size).astype(accumulate, copy=False)
    from array_api_compat import device as device_of

    out = xp.zeros((size,), dtype=accumulate, device=device_of(slots))
    if is_torch_array(slots):
        return out.index_add_(0, slots, added)
    import cupy

    cupy.add.at(out, slots, added)
    return out


def sq_distances_to_assigned(X: Any, centers: Any, labels: Any, *, xp: Any) -> Any:
    """``||x_i - centers[labels_i]||^2`` for each row, as scikit-learn computes
    it for sparse rows: ``||c||^2`` plus, over the stored values,
    ``(x - c)^2 - c^2`` (no cancellation between ``||x||^2`` and ``2 x.c``)."""
    from . import _numba

    if _numba.handles_sparse(X):
        return _numba.csr_sq_distances_to_assigned(X, centers, labels)
    n_features = X.shape[1]
    rows = _row_ids(X, xp)
    flat_centers = xp.reshape(centers, (-1,))
    slot = xp.take(labels, rows) * n_features + xp.astype(_columns(X), labels.dtype)
    at_centers = xp.take(flat_centers, slot)
    stored = xp.astype(values(X), centers.dtype)
    terms = (stored - at_centers) ** 2 - at_centers * at_centers
    per_row = _add_at(rows, terms, X.shape[0], xp=xp, accumulate=centers.dtype)
    sq_norms = xp.sum(centers * centers, axis=1)
    return xp.clip(xp.take(sq_norms, labels) + per_row, min=0.0)


def sq_row_norms(X: Any, *, xp: Any) -> Any:
    """``||x_i||^2`` of each row."""
    stored = values(X)
    return _add_at(_row_ids(X, xp), stored * stored, X.shape[0], xp=xp, accumulate=stored.dtype)


def mean_column_variance(X: Any, *, xp: Any, accumulate: Any) -> float:
    """The mean over columns of each column's variance, as scikit-learn's
    ``mean_variance_axis``: each column's mean first, then the squared
    deviations from it, in ``accumulate`` (the sums of values and of squares
    cancel: a column of values near 1e8 of variance 1 had come out 13)."""
    from . import _numba

    n_samples, n_features = X.shape
    if _numba.handles_sparse(X):
        variances = _numba.column_variances(X)
    else:
        stored = xp.astype(values(X), accumulate)
        columns = _columns(X)
        means = _add_at(columns, stored, n_features, xp=xp, accumulate=accumulate) / n_samples
        counts = _add_at(columns, xp.ones_like(stored), n_features, xp=xp, accumulate=accumulate)
        deviations = stored - xp.take(means, columns)
        squares = _add_at(columns, deviations * deviations, n_features, xp=xp,
                          accumulate=accumulate)
        variances = (squares + (n_samples - counts) * means * means) / n_samples
    return float(xp.mean(variances))


def sq_distances_to_all(X: Any, centers_t: Any, c_sq: Any, *, xp: Any) -> Any:
    """``||x_i - c_j||^2`` for every row and centre (``n x k``: for ``transform``),
    given ``transposed(centers)`` and the centres' squared norms (a row): made
    once by the caller for all its row blocks (each a pass over ``k x d``)."""
    products = _products(X, centers_t)
    x_sq = sq_row_norms(X, xp=xp)[:, None]
    return xp.clip(x_sq - 2 * products + c_sq, min=0.0)


def all_finite(X: Any, *, xp: Any) -> bool:
    """True when every stored value is finite."""
    return bool(xp.all(xp.isfinite(values(X))))
