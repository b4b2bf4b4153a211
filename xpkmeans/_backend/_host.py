"""Host-side services: random numbers, host copies, dtypes, devices and row blocks."""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable

import array_api_compat.numpy
import numpy as np
from array_api_compat import (
    array_namespace as _array_namespace,
    device as _device,
    is_cupy_array,
    is_cupy_namespace,
    is_lazy_array,
    is_numpy_array,
    is_torch_array,
    is_torch_namespace,
)

from .._errors import InputTypeError

# Elements of one (rows x width) block. CPU: a few MiB, within the L3
# cache yet large enough to amortise per-call costs (2^19 was the fastest of
# 2^17..2^20 on 2 AVX2 cores); GPU: enough to fill the device in one launch.
_CPU_BLOCK_ELEMENTS = 1 << 19
_GPU_BLOCK_ELEMENTS = 1 << 26
_MIN_BLOCK_ROWS = 256
_MAX_BLOCK_ELEMENTS = 1 << 24  # what ``_MIN_BLOCK_ROWS`` may stretch a block to
# Host arrays up to this size go to a CUDA device through pinned memory (``from_host``).
_PINNED_COPY_BYTES = 16 << 20


# ------------------------------------------------------------------ settings


def env_flag(name: str, default: bool) -> bool:
    """The on/off setting of environment variable ``name`` (unset or empty:
    ``default``); a value that is neither names the variable in its error."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    msg = f"`{name}` must be 1 or 0 (true/false, yes/no, on/off), got {os.environ[name]!r}."
    raise ValueError(msg)


# ------------------------------------------------------------------ namespaces

#: The array API namespace of host (NumPy) arrays, for the small bookkeeping
#: that stays on the host whatever the data's device (the mini-batch counts).
host_xp = array_api_compat.numpy


def _values_of(x: Any) -> Any:
    """The array that holds the values of ``x``: a sparse matrix counts as its
    dense values (SciPy: NumPy, ``cupyx``: CuPy, torch sparse: torch), a
    centred view as the data it centres."""
    from . import _sparse
    from ._centered import CenteredRows

    if isinstance(x, CenteredRows):
        return x.data
    return _sparse.dense_stand_in(x) if _sparse.is_sparse(x) else x


def array_namespace(*arrays: Any, **options: Any) -> Any:
    """The array API namespace of ``arrays`` (see ``_values_of``)."""
    return _array_namespace(*(_values_of(a) for a in arrays), **options)


def without_autograd(x: Any) -> Any:
    """``x`` outside any autograd graph: a torch tensor that requires grad
    becomes a detached view of the same memory (k-means is not
    differentiable, and a recorded graph would keep every temporary of a
    fit); other arrays are returned as they are."""
    if is_torch_array(x) and x.requires_grad:
        return x.detach()
    return x


def device_of(x: Any) -> Any:
    """The device of ``x`` (of its values for a sparse matrix)."""
    from . import _sparse

    return _sparse.device(x) if _sparse.is_sparse(x) else _device(_values_of(x))


# ------------------------------------------------------------------ random numbers


def host_rng(random_state: Any = None) -> np.random.Generator:
    """Turn ``random_state`` into a host ``numpy.random.Generator``.

    Accepts None, an integer seed, a ``Generator`` (used as is) or a legacy
    ``RandomState`` (a seed is drawn from it, so it advances, as in scikit-learn).
    None draws the seed from NumPy's global ``RandomState``, as scikit-learn
    does: after ``np.random.seed(0)`` a fit is reproducible.
    """
    check_random_state(random_state)
    if random_state is None:
        random_state = np.random.mtrand._rand  # what np.random.seed seeds
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


def legacy_random_state(rng: np.random.Generator) -> np.random.RandomState:
    """A ``numpy.random.RandomState`` that draws from ``rng``'s stream (its
    draws advance ``rng``): what scikit-learn hands a callable ``init``, whose
    code may call ``randint`` or scikit-learn functions that refuse a Generator."""
    return np.random.RandomState(rng.bit_generator)


def check_random_state(random_state: Any) -> None:
    """The errors of ``host_rng`` for a bad ``random_state``, drawing nothing."""
    if isinstance(random_state, (numbers.Integral, np.integer)):
        if int(random_state) < 0:
            msg = f"`random_state` must be a non-negative integer, got {random_state}."
            raise ValueError(msg)
    elif random_state is not None and not isinstance(
            random_state, (np.random.Generator, np.random.RandomState)):
        msg = (
            "`random_state` must be None, an int, a numpy.random.Generator or a "
            f"numpy.random.RandomState, got {type(random_state).__name__}."
        )
        raise InputTypeError(msg)


def from_host(values: Any, *, xp: Any, device: Any, dtype: Any = None) -> Any:
    """Move host values (NumPy array or scalars) into namespace ``xp`` on ``device``.

    A small NumPy array (centres, a block's weights) goes to a torch CUDA
    device through pinned memory, so the copy queues behind the device's
    work instead of waiting for it (a copy from pageable memory first waits
    for the stream to drain). A large one (a dataset) is copied as it is:
    torch would keep a pinned buffer of its size."""
    if isinstance(values, np.ndarray) and is_torch_namespace(xp) and values.dtype.kind in "biuf" \
            and values.nbytes <= _PINNED_COPY_BYTES:
        from . import _transfer

        if _transfer.is_cuda_device(device):
            return _transfer.torch_from_host(values, device, dtype)
    return xp.asarray(values, dtype=dtype, device=device)


# ------------------------------------------------------------------ host transfer


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any supported backend to a host NumPy array."""
    if is_numpy_array(x):
        return np.asarray(x)
    if is_cupy_array(x):
        return x.get()
    if is_torch_array(x):  # a negation bit (``x.conj().imag``) is applied first
        return x.detach().cpu().resolve_neg().numpy()
    try:  # CPU libraries such as array_api_strict implement the buffer protocol
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        host = array_namespace(x).__array_namespace_info__().default_device()
        return np.asarray(x.to_device(host))


def synchronize(x: Any) -> None:
    """Block until the device work that produces ``x`` (also the data of a
    ``CenteredRows``, a sparse matrix's values) has finished."""
    x = _values_of(x)
    if is_cupy_array(x):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif is_torch_array(x) and x.device.type == "cuda":
        import torch

        torch.cuda.synchronize(x.device)


# ------------------------------------------------------------------ devices


def is_cpu_device(xp: Any, device: Any) -> bool:
    """True when ``device`` is host memory (not a GPU)."""
    if is_cupy_namespace(xp):
        return False
    if is_torch_namespace(xp):
        return device.type == "cpu"
    return True


def is_cuda_array(x: Any) -> bool:
    """True for a CuPy array or a torch tensor on a CUDA device."""
    return is_cupy_array(x) or (is_torch_array(x) and x.device.type == "cuda")


def allows_data_dependent_shapes(xp: Any) -> bool:
    """False where the namespace declares it cannot size an array by its values
    (``nonzero``, ``unique_*``): array_api_strict with that flag off, for one."""
    info = getattr(xp, "__array_namespace_info__", None)
    return info is None or bool(info().capabilities().get("data-dependent shapes", True))


def picks_rows_cheaply(x: Any) -> bool:
    """True where picking a data-dependent number of rows (``nonzero``, then
    ``take``) is cheap: eager arrays in host memory. On a GPU it costs a device
    sync; lazy arrays (Dask, JAX) cannot size it before they compute."""
    from . import _sparse

    if _sparse.is_sparse(x):  # picked rows would be dense
        return False
    xp = array_namespace(x)
    return (
        is_cpu_device(xp, device_of(x)) and not is_lazy_array(_values_of(x))
        and allows_data_dependent_shapes(xp)
    )


# ------------------------------------------------------------------ dtypes


def default_float_dtype(xp: Any, device: Any) -> Any:
    """The namespace's default real floating dtype on ``device``."""
    return xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]


def widest_float_dtype(xp: Any, device: Any) -> Any:
    """float64 where ``device`` supports it, else float32 (for accurate running sums)."""
    kinds = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    return kinds.get("float64", xp.float32)


# ------------------------------------------------------------------ row blocks


def row_chunk_size(
    n_rows: int, n_cols: int, *, xp: Any, device: Any, min_rows: int | None = None
) -> int:
    """Rows per block so that a ``rows x n_cols`` temporary stays within budget.

    At least ``min_rows`` rows (default ``_MIN_BLOCK_ROWS``, when there are
    that many and they hold at most ``_MAX_BLOCK_ELEMENTS``), so that very
    wide blocks (silhouette: ``rows x n_samples``) still make efficient
    products; one row at least.
    """
    budget = _CPU_BLOCK_ELEMENTS if is_cpu_device(xp, device) else _GPU_BLOCK_ELEMENTS
    min_rows = _MIN_BLOCK_ROWS if min_rows is None else min_rows
    n_cols = max(n_cols, 1)
    rows = budget // n_cols
    if rows < min_rows:  # wide blocks: min_rows, within a hard cap (2 GB had held 256 x 1M)
        rows = min(min_rows, max(budget, _MAX_BLOCK_ELEMENTS) // n_cols)
    return max(1, min(n_rows, rows))


def row_blocks(n_rows: int, width: int, *, xp: Any, device: Any, step: int | None = None) -> list[slice]:
    """Consecutive row slices covering ``range(n_rows)``, each short enough that a
    ``rows x width`` temporary fits the block budget (or ``step`` rows).

    The last slice stops at ``n_rows``: the standard leaves slices past the
    end of an axis unspecified, and some libraries (array_api_strict) reject them.
    No rows (a Dask chunk emptied by a filter) make one empty slice, so that a
    map over the blocks still has a result of the right type and width.
    """
    if step is None:
        step = row_chunk_size(n_rows, width, xp=xp, device=device)
    return [slice(start, min(start + step, n_rows)) for start in range(0, max(n_rows, 1), step)]


def map_row_blocks(
    function: Callable[[slice], Any], n_rows: int, width: int, *, xp: Any, device: Any,
    compiled: bool = False,
) -> list:
    """``[function(rows) for rows in row_blocks(...)]``, on all CPU cores for
    NumPy, or where the blocks run ``compiled`` host code (``map_blocks``)."""
    from ._threads import map_blocks

    return map_blocks(function, row_blocks(n_rows, width, xp=xp, device=device), xp=xp,
                      compiled=compiled)


def concat_rows(blocks: list, *, xp: Any) -> Any:
    """The per-block results stacked along the first axis (no copy for one block)."""
    return blocks[0] if len(blocks) == 1 else xp.concat(blocks)
