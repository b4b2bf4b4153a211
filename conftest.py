"""Shared fixtures: every test that takes ``backend`` runs on each installed backend.

Backends: numpy, array_api_strict (its CPU device and the non-default
``device1``), torch on CPU, and cupy / torch on CUDA when a GPU is present.
A backend that is not installed is skipped with a reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

try:
    from hypothesis import settings

    settings.register_profile("xpkmeans", deadline=None, max_examples=40, derandomize=True)
    settings.register_profile("thorough", deadline=None, max_examples=1000)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "xpkmeans"))
except ImportError:  # pragma: no cover
    pass


@dataclass(frozen=True)
class Backend:
    """An array namespace and a device to put test data on."""

    name: str
    xp: Any
    device: Any

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


def _make_backend(name: str) -> Backend:
    if name == "numpy":
        import array_api_compat.numpy as xp

        return Backend(name, xp, "cpu")
    if name.startswith("array_api_strict"):
        xp = pytest.importorskip("array_api_strict")
        device = xp.Device("device1") if name.endswith("device1") else xp.Device("CPU_DEVICE")
        return Backend(name, xp, device)
    if name.startswith("torch"):
        pytest.importorskip("torch")
        import array_api_compat.torch as xp
        import torch

        if name == "torch-cuda" and not torch.cuda.is_available():
            pytest.skip("torch-cuda: no CUDA device")
        if name == "torch-cuda":  # results name the index: cuda:0, not cuda
            return Backend(name, xp, torch.device("cuda", torch.cuda.current_device()))
        return Backend(name, xp, torch.device("cpu"))
    if name == "cupy":
        cupy = pytest.importorskip("cupy")
        try:
            if cupy.cuda.runtime.getDeviceCount() == 0:
                pytest.skip("cupy: no CUDA device")
        except cupy.cuda.runtime.CUDARuntimeError:
            pytest.skip("cupy: no CUDA device")
        import array_api_compat.cupy as xp

        return Backend(name, xp, cupy.cuda.Device())
    if name.startswith("dask"):  # lazy: rows in 4 chunks, NumPy or CuPy chunks
        dask_array = pytest.importorskip("dask.array")
        chunk = _make_backend("cupy" if name == "dask-cupy" else "numpy")
        return DaskBackend(name, dask_array, None, chunk)
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


BACKENDS = ["numpy", "array_api_strict", "array_api_strict-device1", "torch", "cupy", "torch-cuda"]


LAZY_BACKENDS = ["dask", "dask-cupy"]


@pytest.fixture(params=LAZY_BACKENDS)
def lazy_backend(request: pytest.FixtureRequest) -> Backend:
    """Each lazy backend: Dask arrays of NumPy chunks, and of CuPy chunks on a GPU."""
    return _make_backend(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each installed backend in turn (GPU ones skip without a GPU)."""
    return _make_backend(request.param)


@pytest.fixture
def numpy_backend() -> Backend:
    return _make_backend("numpy")


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Row blocks of at most 16 cells on every device (a 4-column temporary:
    4 rows), so that small test data spans many blocks and a short last one."""
    from xpkmeans._backend import _host

    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(_host, "_GPU_BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    return 16
