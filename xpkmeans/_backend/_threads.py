"""NumPy's row blocks on all CPU cores, with BLAS limited to one thread per block."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from array_api_compat import is_numpy_namespace

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def n_cores() -> int:
    """CPU cores this process may run on (its affinity where the system says;
    cached: uncached it costs tens of microseconds)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _cpu_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=n_cores())
        return _pool


def map_blocks(
    function: Callable[[Any], Any], blocks: Iterable[Any], *, xp: Any, compiled: bool = False
) -> list:
    """``[function(b) for b in blocks]``, run on all CPU cores for NumPy, and
    for any library where each block runs ``compiled`` host code (numba,
    one core a block: torch CPU tensors read as NumPy arrays).

    NumPy works on one core outside BLAS but releases the GIL in matmul,
    argmin and element-wise loops, so blocks run in threads: one contiguous
    run of blocks per core, the first in the calling thread (waking a thread
    costs tens of microseconds, as much as a small block). Other libraries
    parallelise (or queue on a device) by themselves and run the blocks in order.
    """
    blocks = list(blocks)
    n_runs = min(len(blocks), n_cores())
    if n_runs < 2 or not (compiled or is_numpy_namespace(xp)):
        return [function(block) for block in blocks]
    bounds = [len(blocks) * run // n_runs for run in range(n_runs + 1)]
    runs = [blocks[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
    with parallel_region(xp, compiled=compiled):
        others = [_cpu_pool().submit(_map_run, function, run) for run in runs[1:]]
        results = _map_run(function, runs[0])
        for other in others:
            results.extend(other.result())
    return results


def _map_run(function: Callable[[Any], Any], blocks: list) -> list:
    return [function(block) for block in blocks]


# BLAS limits are process-wide, so regions are counted across threads: the
# limit is set when the first region opens and lifted when the last one closes.
_regions_open = 0
_regions_lock = threading.Lock()
_saved_limits: Any = None


@contextlib.contextmanager
def _blas_on_one_thread(controller: Any) -> Iterator[None]:
    global _regions_open, _saved_limits
    with _regions_lock:
        if _regions_open == 0:
            with _leaving_openblas_uncontrolled():
                _saved_limits = controller.limit(limits=1, user_api="blas")
        _regions_open += 1
    try:
        yield
    finally:
        with _regions_lock:
            _regions_open -= 1
            if _regions_open == 0:
                with _leaving_openblas_uncontrolled():
                    _saved_limits.restore_original_limits()
                _saved_limits = None


def _openblas_control() -> Any:
    """threadpoolctl's record of the thread that controls OpenBLAS's limits
    (threadpoolctl >= 3.7, OpenBLAS on its own pthreads pool), or None."""
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:  # older threadpoolctl: any thread sets the limits
        return None
    return getattr(OpenBLASController, "_SHARED_STATE", None)


@contextlib.contextmanager
def _leaving_openblas_uncontrolled() -> Iterator[None]:
    """Set or lift a limit without keeping control of OpenBLAS's limits.

    From threadpoolctl 3.7 on, the first thread to set a limit of an
    OpenBLAS on pthreads becomes the one thread whose limits take effect,
    until a ``with threadpool_limits(...)`` block of that thread ends; other
    threads' limits are silently ignored. A region is set and lifted without
    such a block (by the first thread to open one and the last to close
    one), so the first thread to fit kept control for its lifetime: a fit
    in any other thread then ran BLAS on all cores beside the blocks'
    threads (and rounded differently: a fit's result depended on the
    thread it ran in), and the user's own ``threadpool_limits`` in other
    threads were ignored. Control this thread took is handed back; a
    ``threadpool_limits`` block of the user's keeps its own."""
    control = _openblas_control()
    this_thread = threading.current_thread()
    held_before = control is not None and control.controlling_thread is this_thread
    try:
        yield
    finally:
        if control is not None and not held_before and control.controlling_thread is this_thread:
            from threadpoolctl import OpenBLASController

            OpenBLASController.clear_controlling_thread()


_this_thread = threading.local()  # its open regions, and the OpenMP limit it holds


def torch_on_one_thread() -> None:
    """Called by compiled passes over torch CPU tensors: until this thread's
    outermost parallel region closes, its OpenMP threads (torch's own) are
    limited to one. Between two passes, torch's small operations woke its
    OpenMP workers, which then spun on the cores that the next pass needed
    (greedy k-means++ on 200k x 128, 200 centres: 1.6x the time of NumPy's).
    The limit is the calling thread's alone (OpenMP's per-thread setting,
    not torch's process-wide one), set and lifted in that thread."""
    if getattr(_this_thread, "regions", 0) and getattr(_this_thread, "openmp", None) is None:
        controller = _openmp_controller()
        if controller is not None:
            _this_thread.openmp = controller.limit(limits=1)


@contextlib.contextmanager
def parallel_region(xp: Any, *, compiled: bool = False) -> Iterator[None]:
    """Context for a region that calls ``map_blocks``: one BLAS thread per block.

    As in scikit-learn, BLAS is limited to one thread while blocks run in
    parallel, so the cores are not oversubscribed. A whole fit runs in one
    region: entering the first costs 40 us (nested or concurrent ones are
    free), and BLAS's own worker threads, once woken, keep spinning after the
    call and slow whatever runs next on the cores. Two fits in two threads
    share one limit, lifted when the last of them ends. ``compiled``: the
    blocks are compiled host code, whose products call NumPy's BLAS (torch's
    own threads: ``torch_on_one_thread``).
    """
    _this_thread.regions = getattr(_this_thread, "regions", 0) + 1
    try:
        controller = _blas_controller() if compiled or is_numpy_namespace(xp) else None
        with contextlib.nullcontext() if controller is None else _blas_on_one_thread(controller):
            yield
    finally:
        _this_thread.regions -= 1
        openmp = getattr(_this_thread, "openmp", None)
        if _this_thread.regions == 0 and openmp is not None:
            _this_thread.openmp = None
            openmp.restore_original_limits()


def _threadpool_controller() -> Any:
    """threadpoolctl's view of the thread pools loaded by now (finding them
    takes milliseconds: the callers cache it)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a core dependency
        return None
    return ThreadpoolController()


_blas_controller = functools.lru_cache(maxsize=1)(_threadpool_controller)


@functools.lru_cache(maxsize=1)
def _openmp_controller() -> Any:
    """The OpenMP libraries loaded by then (asked once torch data has come: torch's too)."""
    controller = _threadpool_controller()
    return None if controller is None else controller.select(user_api="openmp")


def _after_fork_in_child() -> None:
    """The parent's pool threads do not exist in a forked child, nor do its
    regions: a limit that a region of the parent had set (the child forked
    while another thread fitted) is lifted, or BLAS stayed on one thread in
    the child for good (its own regions restored the limit they found)."""
    global _pool, _pool_lock, _regions_open, _regions_lock, _saved_limits, _this_thread
    inherited = _saved_limits
    _pool, _pool_lock = None, threading.Lock()
    _regions_open, _regions_lock, _saved_limits = 0, threading.Lock(), None
    _this_thread = threading.local()
    if inherited is not None:
        with _leaving_openblas_uncontrolled():
            inherited.restore_original_limits()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def blas_is_limited() -> bool:
    """True while a ``parallel_region`` is open in any thread."""
    return _regions_open > 0
