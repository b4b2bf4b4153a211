"""Out-of-core k-means: Lloyd over data read one row block at a time.

``KMeans.fit`` takes this path for a :class:`RowBlocks` (a memmap or host
array, or a callable giving a fresh iterator of row blocks, optionally
streamed to a GPU). A bare ``np.memmap`` is an array like any other, fitted
in memory as scikit-learn does: the same seed gives the same clustering
whether joblib hands a worker an array or a memmap of it. Each pass reads
the blocks in order; a block is centred on the fly and goes through the same
per-chunk kernels as the Dask EM (``_dask``), and the pages of a read-only
memmap are dropped from the process once read, so memory stays at a few
blocks plus the labels whatever the size of X.

To a GPU, blocks go through two pinned host buffers and a copy stream: the
copy of block i + 1 overlaps the kernels of block i (torch on CUDA; the
backend's ``blocks_to_device``).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np

from ._backend import (
    array_namespace,
    kept_float_dtype,
    blocks_to_device,
    from_host,
    host_xp,
    is_cuda_device,
    is_pinned_tensor,
    map_blocks,
    to_numpy,
)
from ._backend._capabilities import check_supported
from ._dask import (
    ClientRows,
    _centers_for,
    _chunk_farthest,
    _chunk_inertia,
    _chunk_labels,
    _chunk_lloyd_sums,
    _chunk_moments,
    _chunk_sum_of_squares,
    _end_iteration,
    _host_centers,
    _relocate,
    _same_sums,
    _split_moments,
    _split_sums,
)
from ._errors import InputTypeError
from ._validation import check_int, check_n_clusters_fits, check_real_dtype, draws_as_unweighted, scaled_tolerance

# Bytes of one host block: large enough for efficient kernels (a few ms each),
# small against memory (a 20M x 32 float32 memmap: 320 blocks). Blocks for a
# GPU are larger: each costs tens of microseconds of launches, and its copy
# (1.3 ms at 50 GB/s) should outweigh them.
_BLOCK_BYTES = 8 << 20
_CUDA_BLOCK_BYTES = 64 << 20

# k-means++ on a stream runs on a uniform sample of this many rows per cluster
# (at least _MIN_INIT_ROWS), as MiniBatchKMeans initialises on ``init_size`` rows.
_INIT_ROWS_PER_CLUSTER = 100
_MIN_INIT_ROWS = 10_000
#: rows of a memmap read between two drops of its pages (the kernel maps up to
#: 16 cached pages around each page read: about 64 KB a row at most)
_ROWS_PER_READ = 256


class RowBlocks:
    """Data that ``KMeans.fit`` reads one block of rows at a time.

    Parameters
    ----------
    source : numpy array (e.g. ``np.memmap``), torch CPU tensor, or callable
        The data, or a callable returning a fresh iterator of 2-D NumPy row
        blocks each time it is called (one call per pass over the data). A
        torch tensor in pinned memory (``tensor.pin_memory()``) is copied to
        a CUDA device straight from where it lies.
    block_rows : int, default=None
        Rows per block for an array source (None: about 8 MiB per block, 64
        MiB to a CUDA device).
    device : str or torch.device, default=None
        None keeps the blocks as NumPy arrays; a torch device (e.g. "cuda")
        moves each block there (on CUDA the copy of the next block overlaps
        the kernels on the current one), and the fit's arrays live there.

    Examples
    --------
    >>> import numpy as np, xpkmeans
    >>> X = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    >>> blocks = xpkmeans.RowBlocks(lambda: iter(np.array_split(X, 7)))
    >>> xpkmeans.KMeans(3, init=X[:3]).fit(blocks).cluster_centers_.shape
    (3, 3)
    """

    array_kind = "streamed"  # for the capabilities table (``_backend/_capabilities.py``)

    def __init__(self, source: Any, *, block_rows: int | None = None, device: Any = None) -> None:
        if isinstance(source, Iterator):
            msg = (
                "`source` is a one-shot iterator, but k-means reads the data several "
                "times: pass a callable returning a fresh iterator, or feed the chunks "
                "to MiniBatchKMeans.partial_fit."
            )
            raise InputTypeError(msg)
        self._pinned = None  # a pinned torch tensor's rows, copied to CUDA without staging
        if not callable(source):
            if device is not None and is_cuda_device(device) and is_pinned_tensor(source):
                self._pinned = source
            source = np.asarray(source) if not isinstance(source, np.ndarray) else source
            if source.ndim != 2:
                msg = f"`source` must be 2-D (n_samples, n_features), got ndim={source.ndim}."
                raise ValueError(msg)
            check_real_dtype(source.dtype, host_xp, "source")
        self.source = source
        self.block_rows = None if block_rows is None else check_int(
            block_rows, "block_rows", minimum=1)
        self.device = device
        self._shape = None  # (rows, features) of the first whole pass of a callable

    def _host_blocks(self) -> Iterator[np.ndarray]:
        """Host row blocks in order; a read-only memmap's pages are dropped once read."""
        if callable(self.source):
            blocks = self.source()
            try:
                blocks = iter(blocks)
            except TypeError:  # had been Python's "'int' object is not iterable"
                msg = ("`source` must return an iterator of row blocks when called, got "
                       f"{type(blocks).__name__}.")
                raise InputTypeError(msg) from None
            yield from self._checked_pass(blocks)
            return
        X = self.source
        rows = self.block_rows or max(1, self._block_bytes() // max(1, X.shape[1] * X.itemsize))
        for start in range(0, X.shape[0], rows):
            stop = min(start + rows, X.shape[0])
            if self._pinned is not None:
                yield self._pinned[start:stop]
                continue
            block = X[start:stop]
            yield block
            _drop_pages(block)

    def _checked_pass(self, blocks: Iterator[Any]) -> Iterator[np.ndarray]:
        """One pass of a callable source: 2-D real blocks, all as wide as the
        first, and as many rows in all as in the first pass of the fit."""
        rows, width = 0, None if self._shape is None else self._shape[1]
        for block in blocks:
            block = np.asarray(block)
            if block.ndim != 2:
                msg = f"Each row block must be 2-D, got ndim={block.ndim}."
                raise ValueError(msg)
            check_real_dtype(block.dtype, host_xp, "source")
            if width is None:
                width = block.shape[1]
            elif block.shape[1] != width:
                msg = (f"`source` gave a block of {block.shape[1]} features after blocks of "
                       f"{width}: every block must have the same features.")
                raise ValueError(msg)
            rows += block.shape[0]
            yield block
        if self._shape is None:
            self._shape = (rows, width)
        elif rows != self._shape[0]:
            msg = (f"`source` gave {rows} rows in a later pass and {self._shape[0]} in the "
                   "first: every call must give the same rows.")
            raise ValueError(msg)

    def _block_bytes(self) -> int:
        return _CUDA_BLOCK_BYTES if self.device is not None and is_cuda_device(self.device) \
            else _BLOCK_BYTES

    def blocks(self) -> Iterator[Any]:
        """Row blocks in the fit's namespace and device, in order."""
        if self.device is None:
            yield from self._host_blocks()
            return
        yield from blocks_to_device(self._host_blocks(), self.device)


#: memmap modes whose pages may be dropped: shared mappings, where the file (or
#: the page cache) keeps every write; not "c", whose writes live in its pages
_SHARED_MODES = ("r", "r+", "w+")


def _is_shared_memmap(X: Any) -> bool:
    return (isinstance(X, np.memmap) and getattr(X, "_mmap", None) is not None
            and X.mode in _SHARED_MODES)


def _drop_pages(block: np.ndarray) -> None:
    """Drop the pages that a memmap block spans from this process (they are
    re-read from the file when needed): RSS stays at the blocks in use."""
    if not _is_shared_memmap(block):
        return
    mapping = block._mmap
    base = np.frombuffer(mapping, dtype=np.uint8).__array_interface__["data"][0]
    low, high = _byte_bounds(block)  # a strided view spans more than its bytes
    start = low - base
    page = mmap.PAGESIZE
    first = start // page * page
    stop = min(high - base, len(mapping))
    last = -(-stop // page) * page
    last = min(last, len(mapping))
    if last > first:
        mapping.madvise(mmap.MADV_DONTNEED, first, last - first)


def _byte_bounds(X: np.ndarray) -> tuple[int, int]:
    """The first and one past the last byte address of ``X``'s elements."""
    array_utils = getattr(np.lib, "array_utils", None)  # NumPy 2; before, np.byte_bounds
    return (array_utils.byte_bounds if array_utils else np.byte_bounds)(X)


def _read_rows(X: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = X[rows]`` for sorted ``rows``; from a read-only memmap, in
    pieces whose pages are dropped once read, with the kernel's read-ahead
    off (random rows would otherwise bring in most of the file)."""
    if not _is_shared_memmap(X):
        out[:] = X[rows]
        return
    mapping = X._mmap
    def read(start: int) -> None:  # pieces span disjoint ranges of the file
        piece = rows[start:start + _ROWS_PER_READ]
        out[start:start + piece.shape[0]] = X[piece]
        _drop_pages(X[piece[0]:piece[-1] + 1])

    mapping.madvise(mmap.MADV_RANDOM)
    try:  # page faults and copies on all cores
        map_blocks(read, range(0, rows.shape[0], _ROWS_PER_READ), xp=np)
    finally:
        mapping.madvise(mmap.MADV_NORMAL)


def is_streamed_input(X: Any) -> bool:
    """True for a ``RowBlocks`` (the hook of ``KMeans.fit``)."""
    return isinstance(X, RowBlocks)


# ------------------------------------------------------------------ the fit


def _as_row_blocks(X: Any) -> RowBlocks:
    """``X`` itself if a ``RowBlocks``, else the blocks of the array ``X``."""
    if isinstance(X, RowBlocks):
        return X
    check_real_dtype(np.asarray(X[:0]).dtype, host_xp, "X")
    return RowBlocks(X)


def _as_float(block: Any, dtype: Any) -> Any:
    xp = array_namespace(block)
    if dtype is None:
        dtype = kept_float_dtype(block.dtype, xp)
    return block if block.dtype == dtype else xp.astype(block, dtype)


class _Stream:
    """Blocks with their row offsets and weights; the first pass's numbers."""

    def __init__(self, data: RowBlocks, sample_weight: Any, tol: float) -> None:
        self.data = data
        data._shape = None  # a new fit may read new data
        self.dtype = None
        self.n_samples = 0

        def moments() -> Iterator[Any]:  # as a Dask chunk's: sums | non-finite | ...
            for block in data.blocks():
                block = _as_float(block, self.dtype)
                self.dtype = block.dtype
                self.n_samples += block.shape[0]
                yield _chunk_moments(block, None)[0]

        totals = _added_up(moments())
        if totals is None or self.n_samples == 0:
            raise ValueError("`X` has no rows.")
        sums, n_nonfinite, _ = _split_moments(totals)
        if sums.shape[0] == 0:
            raise ValueError("`X` has no features.")
        if n_nonfinite > 0:
            raise ValueError("`X` contains NaN or inf (infinity); remove or impute them first.")
        n = self.n_samples
        self.n_features = sums.shape[0]
        self.mean = (sums / n).astype(_numpy_dtype(self.dtype))
        self.weights = _check_stream_weights(sample_weight, n)
        total = float(_added_up(_chunk_sum_of_squares(block, self.mean)[0, 0]
                                for block, _ in self.weighted_blocks()))
        self.tol = scaled_tolerance(total, n * self.n_features, tol, dtype=self.mean.dtype,
                                    dtype_max=float(np.finfo(self.mean.dtype).max))

    def weighted_blocks(self) -> Iterator[tuple[Any, Any]]:
        """(block, its (rows, 1) weights or None), in order; the per-block
        kernels centre a block as they read it, given ``self.mean``."""
        start = 0
        for block in self.data.blocks():
            block = _as_float(block, self.dtype)
            stop = start + block.shape[0]
            weights = None
            if self.weights is not None:
                weights = _centers_for(self.weights[start:stop, None], block)
            yield block, weights
            start = stop

    def centered(self) -> Iterator[tuple[Any, Any]]:
        """(centred block, its (rows, 1) weights or None), in order."""
        for block, weights in self.weighted_blocks():
            yield block - _centers_for(self.mean, block), weights

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The given rows (sorted, distinct) of the centred data, on the host: one pass."""
        out = np.empty((indices.shape[0], self.n_features), dtype=self.mean.dtype)
        start = filled = 0
        for block, _ in self.centered():
            stop = start + block.shape[0]
            inside = indices[(indices >= start) & (indices < stop)] - start
            if inside.shape[0]:
                xp = array_namespace(block)
                taken = xp.take(block, from_host(inside, xp=xp, device=_device(block)), axis=0)
                out[filled:filled + inside.shape[0]] = to_numpy(taken)
                filled += inside.shape[0]
            start = stop
        return out


def _added_up(parts: Iterator[Any]) -> np.ndarray | None:
    """The sum of the blocks' partial results, added where they are and copied
    to the host once (a copy per block would make the host wait for each
    block's kernels); None without blocks."""
    total = None
    for part in parts:
        total = part if total is None else total + part
    return None if total is None else to_numpy(total)


def _device(block: Any) -> Any:
    from ._backend import device_of

    return device_of(block)


def _numpy_dtype(dtype: Any) -> Any:
    return np.float32 if str(dtype).endswith("float32") else np.float64


def _check_stream_weights(sample_weight: Any, n_samples: int) -> Any:
    if sample_weight is None:
        return None
    weights = np.asarray(to_numpy(sample_weight) if not np.isscalar(sample_weight) else
                         np.full(n_samples, float(sample_weight)), dtype=np.float64)
    if weights.shape != (n_samples,):
        msg = f"`sample_weight` must have shape ({n_samples},) to match X, got {weights.shape}."
        raise ValueError(msg)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("`sample_weight` must be finite and non-negative.")
    if not np.any(weights > 0):
        raise ValueError("`sample_weight` must have at least one positive value; all are zero.")
    return weights


def _initial_centers(estimator: Any, stream: _Stream, n_clusters: int, rng: Any) -> np.ndarray:
    from ._init import _kmeans_plusplus

    init = estimator.init
    n = stream.n_samples
    dtype = stream.mean.dtype
    if isinstance(init, str):
        if init == "random":
            p = None if draws_as_unweighted(stream.weights, host_xp) else (
                stream.weights / stream.weights.sum())
            rows = rng.choice(n, size=n_clusters, replace=False, p=p)  # as in memory
            order = np.argsort(rows)
            centers = np.empty((n_clusters, stream.n_features), dtype=dtype)
            centers[order] = stream.rows(rows[order])
            return centers
        if init == "k-means||":
            check_supported("init='k-means||'", stream.data, stacklevel=5)  # fit's caller
            init = "k-means++"
        if init == "k-means++":  # on a uniform sample of rows
            size = min(n, max(_MIN_INIT_ROWS, _INIT_ROWS_PER_CLUSTER * n_clusters))
            rows = np.sort(rng.choice(n, size=size, replace=False))
            sample = stream.rows(rows)
            weights = None if stream.weights is None else stream.weights[rows].astype(dtype)
            return np.asarray(_kmeans_plusplus(sample, n_clusters, sample_weight=weights,
                                               rng=rng, xp=host_xp)[0])
        msg = f"Unknown init method {init!r} for streamed data; use 'k-means++', 'k-means||', 'random' or an array."
        raise ValueError(msg)
    if callable(init):
        msg = "A callable `init` is not supported on streamed data; pass an array."
        raise InputTypeError(msg)
    centers = _host_centers(init, dtype, name="init") - stream.mean
    if centers.shape != (n_clusters, stream.n_features):
        msg = (
            f"The shape of the initial centers {tuple(centers.shape)} does not match "
            f"the number of clusters {n_clusters} and features {stream.n_features}."
        )
        raise ValueError(msg)
    return centers


def _lloyd(stream: _Stream, centers: np.ndarray, *, max_iter: int, verbose: int,
           report: Any) -> tuple:
    """EM from ``centers``: one pass per iteration (two when a cluster
    empties); ``report(step)`` after each (a ``LloydStep`` without labels)."""
    weighted = stream.weights is not None
    previous = None
    for iteration in range(1, max_iter + 1):
        reduced = _added_up(
            _chunk_lloyd_sums(block, weights, centers, stream.mean)[0]
            for block, weights in stream.weighted_blocks())
        cluster_sums = _split_sums(reduced)
        if np.any(cluster_sums.totals == 0):
            candidates = np.concatenate([
                to_numpy(_chunk_farthest(block, None, weights, centers))
                for block, weights in stream.centered()
            ])
            cluster_sums = _relocate(cluster_sums.sums, cluster_sums.totals, candidates,
                                     centers, weighted)
        centers, converged = _end_iteration(cluster_sums, centers, iteration, tol=stream.tol,
                                            verbose=verbose, report=report,
                                            same_sums=_same_sums(reduced, previous))
        previous = reduced
        if converged:
            break
    return centers, iteration


def _labels_and_inertia(stream: _Stream, centers: np.ndarray) -> tuple[Any, float]:
    """Labels (NumPy blocks fill one array: no concatenated copy) and inertia."""
    labels = []
    host_labels = np.empty(stream.n_samples, dtype=np.intp) if stream.data.device is None else None

    def inertias() -> Iterator[Any]:
        start = 0
        for block, weights in stream.weighted_blocks():
            block_labels = _chunk_labels(block, centers, stream.mean)
            yield _chunk_inertia(block, block_labels, weights, centers, stream.mean)[0]
            if host_labels is None:
                labels.append(block_labels)
            else:
                host_labels[start:start + block.shape[0]] = block_labels
            start += block.shape[0]

    inertia = float(_added_up(inertias()))
    if host_labels is not None:
        return host_labels, inertia
    return (labels[0] if len(labels) == 1 else array_namespace(labels[0]).concat(labels)), inertia


class MiniBatchRows(ClientRows):
    """An ``np.memmap`` (or ``RowBlocks`` of one) as ``MiniBatchKMeans.fit``
    reads it: checked in one pass of blocks, each draw's rows read from the
    mapping, whose pages are then dropped (RSS stays at the rows in use);
    labels in one more pass. The counterpart of ``_dask.MiniBatchRows``."""

    def __init__(self, X: Any, sample_weight: Any) -> None:
        data = _as_row_blocks(X)
        if callable(data.source) or data.device is not None:
            msg = (
                "MiniBatchKMeans.fit reads random rows: pass the array itself (e.g. a "
                "np.memmap), or feed the blocks one by one to partial_fit."
            )
            raise InputTypeError(msg)
        self._data, self._sample_weight = data, sample_weight
        self.n_samples = data.source.shape[0]
        self.xp = host_xp

    def prepare(self, tol: float) -> float:
        """Check X in one pass of blocks; the scaled ``tol``. Rows are then
        taken centred on ``mean``, as in memory."""
        self.stream = _Stream(self._data, self._sample_weight, tol)
        self.mean = self.stream.mean
        return self.stream.tol

    def host_weights(self) -> np.ndarray | None:
        return self.stream.weights

    def take(self, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows of X and their weights (all rows for None: small data only)."""
        rows = np.arange(self.n_samples) if rows is None else np.asarray(rows)
        order = np.argsort(rows, kind="stable")
        source = self._data.source
        in_order = np.empty((rows.shape[0], source.shape[1]), dtype=source.dtype)
        _read_rows(source, rows[order], in_order)
        taken = np.empty(in_order.shape, dtype=_numpy_dtype(self.stream.dtype))
        taken[order] = in_order
        taken -= self.mean
        weights = self.stream.weights
        return taken, None if weights is None else weights[rows].astype(taken.dtype)

    def labels_and_inertia(self, centers: np.ndarray) -> tuple[Any, float]:
        """Labels of the (centred) ``centers`` and the inertia."""
        return _labels_and_inertia(self.stream, centers)

    def in_chunk_namespace(self, centers: np.ndarray) -> np.ndarray:
        return centers


def fit(estimator: Any, X: Any, sample_weight: Any = None) -> Any:
    """``KMeans.fit`` for streamed data (called by the hook in ``KMeans.fit``)."""
    # imported here: _kmeans imports this module
    from ._kmeans import (
        _count_nonempty, _is_same_clustering, _Run, _warn_if_not_converged,
    )

    data = _as_row_blocks(X)
    params = estimator._resolve_params()
    n_clusters = params.n_clusters
    if params.algorithm != "lloyd":  # the EM here is Lloyd's
        check_supported(f"algorithm={params.algorithm!r}", X, stacklevel=3)
    stream = _Stream(data, sample_weight, params.tol)
    check_n_clusters_fits(stream.n_samples, n_clusters)

    def lloyd(centers: np.ndarray, report: Any) -> tuple[np.ndarray, int]:
        return _lloyd(stream, centers, max_iter=params.max_iter, verbose=params.verbose,
                      report=report)

    def finish(result: tuple[np.ndarray, int], converged: bool, best: Any) -> Any:
        centers, n_iter = result
        labels, inertia = _labels_and_inertia(stream, centers)
        return _Run(labels, inertia, centers, n_iter, converged)

    def same_clustering(run: Any, best: Any) -> bool:
        return _is_same_clustering(run.labels, best.labels, n_clusters,
                                   xp=array_namespace(run.labels))

    best = estimator._best_of_starts(
        params, stream.tol,
        initial_centers=partial(_initial_centers, estimator, stream, n_clusters),
        objective=lambda centers: _labels_and_inertia(stream, centers)[1],
        lloyd=lloyd, finish=finish, same_clustering=same_clustering,
    )
    distinct = _count_nonempty(best.labels, n_clusters, xp=array_namespace(best.labels))
    _warn_if_not_converged(estimator, distinct, params, best.converged)
    labels, inertia, centers, n_iter = best.labels, best.inertia, best.centers, best.n_iter
    mean = _centers_for(stream.mean, labels)
    centered = _centers_for(centers, labels)
    estimator.cluster_centers_ = centered + mean
    estimator.mean_, estimator._centered_centers = mean, centered
    estimator.labels_ = labels
    estimator.inertia_ = inertia
    estimator.n_iter_ = n_iter
    estimator.n_features_in_ = stream.n_features
    estimator._n_features_out = n_clusters
    return estimator
