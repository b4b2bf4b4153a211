"""Shared fixtures: every test that takes ``backend`` runs on each installed backend.

Backends: numpy, array_api_strict (its CPU device and the non-default
``device1``), torch on CPU, and cupy / torch on CUDA when a GPU is present.
A backend that is not installed is skipped with a reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

try:
    from hypothesis import settings

    settings.register_profile("xpkmeans", deadline=None, max_examples=40, derandomize=True)
    settings.register_profile("thorough", deadline=None, max_examples=1000)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "xpkmeans"))
except ImportError:  # pragma: no cover
    pass


def _has_cuda_device() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or no driver
        return False


def _interpret_triton_without_cuda() -> None:
    """Without a CUDA device, Triton's kernels run in its interpreter on torch
    CPU tensors (``tests/test_triton.py``): TRITON_INTERPRET must be set
    before triton is first imported."""
    if _has_cuda_device():
        return
    os.environ.setdefault("TRITON_INTERPRET", "1")
    try:
        from triton.runtime import interpreter
    except ImportError:
        return
    # triton 3.6's interpreter takes a scalar's index by ``int`` of a 1-element
    # array, which NumPy >= 2.4 refuses: ``range`` over a kernel argument fails
    original = interpreter._patch_lang_tensor

    def patch_lang_tensor(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    interpreter._patch_lang_tensor = patch_lang_tensor


_interpret_triton_without_cuda()


@dataclass(frozen=True)
class Backend:
    """An array namespace and a device to put test data on."""

    name: str
    xp: Any
    device: Any
    lazy: bool = False
    gpu: bool = False

    def asarray(self, values: Any, dtype: Any = None) -> Any:
        """Host values as an array of this backend; float64 NumPy data keeps its dtype."""
        values = np.asarray(values)
        if dtype is None and values.dtype.kind == "f":
            dtype = getattr(self.xp, values.dtype.name)
        return self.xp.asarray(values, dtype=dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        from xpkmeans._backend import to_numpy

        return to_numpy(x)

    def assert_here(self, x: Any, dtype: Any = None) -> None:
        """``x`` is an array of this namespace, on this device (and of ``dtype``)."""
        from array_api_compat import array_namespace, device

        assert array_namespace(x) is self.xp, f"{type(x)} is not a {self.name} array"
        assert device(x) == self.device, f"on {device(x)}, expected {self.device}"
        if dtype is not None:
            assert x.dtype == dtype, f"dtype {x.dtype}, expected {dtype}"


def _numpy() -> tuple[Any, Any]:
    import array_api_compat.numpy as xp

    return xp, "cpu"


def _array_api_strict(device_name: str) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        xp = pytest.importorskip("array_api_strict")
        return xp, xp.Device(device_name)

    return make


def _torch(kind: str) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        torch = pytest.importorskip("torch")
        import array_api_compat.torch as xp

        if kind == "cuda":
            if not torch.cuda.is_available():
                pytest.skip("torch-cuda: no CUDA device")
            # results name the index: cuda:0, not cuda
            return xp, torch.device("cuda", torch.cuda.current_device())
        return xp, torch.device("cpu")

    return make


def _cupy() -> tuple[Any, Any]:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("cupy: no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("cupy: no CUDA device")
    import array_api_compat.cupy as xp

    return xp, cupy.cuda.Device()


@dataclass(frozen=True)
class BackendSpec:
    """One entry of the test backends: how to make it, and what it is.

    ``make`` returns ``(xp, device)`` or skips (library missing, no GPU).
    ``lazy``: arrays compute on demand (Dask): no data-dependent shapes.
    ``gpu``: device memory, so host paths (``picks_rows_cheaply``) are off.
    ``portable``: torch CPU tensors without the compiled CPU kernels, which
    would read them as NumPy arrays: the torch code that a GPU without
    Triton runs (float64 CUDA), tested on the CPU.
    What a feature needs is in ``xpkmeans._backend._capabilities``; tests ask
    it with ``supports(feature, X)`` on this backend's arrays.
    """

    name: str
    make: Callable[[], tuple[Any, Any]]
    lazy: bool = False
    gpu: bool = False
    portable: bool = False  # the host's compiled kernels (numba) left out

    def backend(self) -> Backend:
        xp, device = self.make()
        return Backend(self.name, xp, device, lazy=self.lazy, gpu=self.gpu)


# Every backend the tests run on. A new one (Dask: lazy=True) is one line here.
BACKENDS = [
    BackendSpec("numpy", _numpy),
    BackendSpec("array_api_strict", _array_api_strict("CPU_DEVICE")),
    BackendSpec("array_api_strict-device1", _array_api_strict("device1")),
    BackendSpec("torch", _torch("cpu")),
    BackendSpec("torch-portable", _torch("cpu"), portable=True),
    BackendSpec("cupy", _cupy, gpu=True),
    BackendSpec("torch-cuda", _torch("cuda"), gpu=True),
]


def _make_backend(name: str) -> Backend:
    """The backend called ``name`` in ``BACKENDS`` (skips where it cannot run)."""
    for spec in BACKENDS:
        if spec.name == name:
            return spec.backend()
    raise ValueError(name)


@dataclass(frozen=True)
class DaskBackend(Backend):
    """Dask arrays chunked along rows (about 4 chunks), chunks of ``chunk_backend``."""

    chunk_backend: Backend = None

    def asarray(self, values: Any, dtype: Any = None) -> Any:
        values = self.chunk_backend.asarray(values, dtype)
        rows = max(1, -(-values.shape[0] // 4)) if values.ndim else ()
        return self.xp.from_array(values, chunks=(rows,) + values.shape[1:], asarray=False)

    def assert_here(self, x: Any, dtype: Any = None) -> None:
        assert isinstance(x, self.xp.Array), f"{type(x)} is not a Dask array"
        if dtype is not None:
            assert x.dtype == dtype, f"dtype {x.dtype}, expected {dtype}"


def _make_dask_backend(name: str) -> Backend:
    """Lazy: rows in 4 chunks, NumPy or CuPy chunks."""
    dask_array = pytest.importorskip("dask.array")
    chunk = _make_backend("cupy" if name == "dask-cupy" else "numpy")
    return DaskBackend(name, dask_array, None, lazy=True, gpu=chunk.gpu, chunk_backend=chunk)


LAZY_BACKENDS = ["dask", "dask-cupy"]


@pytest.fixture(params=LAZY_BACKENDS)
def lazy_backend(request: pytest.FixtureRequest) -> Backend:
    """Each lazy backend: Dask arrays of NumPy chunks, and of CuPy chunks on a GPU."""
    return _make_dask_backend(request.param)


@pytest.fixture(params=BACKENDS, ids=[spec.name for spec in BACKENDS])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Each installed backend in turn (GPU ones skip without a GPU)."""
    if request.param.portable:
        from xpkmeans._backend import _numba

        monkeypatch.setattr(_numba, "_is_torch_cpu", lambda x: False)
    return request.param.backend()


@pytest.fixture
def numpy_backend() -> Backend:
    return _make_backend("numpy")


@pytest.fixture
def cupy_backend() -> Backend:
    """CuPy on the current CUDA device (skips without CuPy or a GPU)."""
    return _make_backend("cupy")


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Row blocks of at most 16 cells on every device (a 4-column temporary:
    4 rows), so that small test data spans many blocks and a short last one."""
    from xpkmeans._backend import _host

    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(_host, "_GPU_BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    return 16
