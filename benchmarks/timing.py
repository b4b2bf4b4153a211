"""Timing machinery shared by every benchmark.

- :func:`timed` runs one call and stops the clock only after the device
  has finished (``xpkmeans._backend.synchronize`` on the data: a CUDA
  stream synchronise for CuPy and torch-cuda, nothing on the CPU);
- :func:`interleaved` warms every case up once, then runs ``rounds``
  rounds in which every case runs once, the order rotating from round to
  round, so that a noisy machine slows every library alike. A case whose
  rounds would take more than ``budget`` seconds in all stops repeating
  (two rounds always run, so that one disturbed round is not the only
  one): slow libraries get fewer rounds, recorded;
- :class:`Measurement` keeps the times, the median and the last result.

Thread counts are never changed here: every library runs with its own
default (recorded by ``environment.threads``).
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from xpkmeans._backend import synchronize


@dataclass
class Case:
    """One library on one problem.

    ``run`` is the timed call; ``warmup`` a cheaper call of the same code
    (None: no warm-up); ``data`` the array whose device is synchronised;
    ``before`` is called (untimed) ahead of every run, e.g. to release
    another allocator's cached GPU memory.
    """

    library: str
    run: Callable[[], Any]
    data: Any
    warmup: Callable[[], Any] | None = None
    before: Callable[[], None] | None = None


@dataclass
class Measurement:
    library: str
    times: list[float] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def to_json(self) -> dict[str, Any]:
        return {"times_s": self.times, "median_s": self.median, "error": self.error,
                "warnings": self.warnings}


def timed(fn: Callable[[], Any], data: Any) -> tuple[float, Any, list[str]]:
    """Seconds taken by ``fn()`` until the device of ``data`` is idle, its result
    and the warnings it emitted (recorded, not printed)."""
    synchronize(data)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        result = fn()
        synchronize(data)
        seconds = time.perf_counter() - start
    messages = [f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught]
    return seconds, result, messages


def interleaved(
    cases: list[Case], rounds: int, *, budget: float = math.inf, log: Callable[[str], None]
) -> dict[str, Measurement]:
    """Warm up, then ``rounds`` interleaved rounds; errors are recorded, not raised.

    Round ``r`` (from the third on) of a case runs only if its time so far
    plus one more median stays within ``budget`` seconds.
    """
    out = {case.library: Measurement(case.library) for case in cases}
    for case in cases:
        if case.warmup is None:
            continue
        try:
            if case.before is not None:
                case.before()
            seconds, _, _ = timed(case.warmup, case.data)  # warnings of a warm-up: ignored
            log(f"    warm-up {case.library}: {seconds:.3f} s")
        except Exception as exc:  # a library that fails is reported, the run goes on
            out[case.library].error = describe(exc)
            log(f"    warm-up {case.library} FAILED: {out[case.library].error}")
    live = [case for case in cases if out[case.library].error is None]
    for r in range(rounds):
        shift = r % len(live) if live else 0
        for case in live[shift:] + live[:shift]:
            m = out[case.library]
            if m.error is not None:
                continue
            if len(m.times) >= 2 and sum(m.times) + m.median > budget:
                continue
            try:
                if case.before is not None:
                    case.before()
                seconds, m.result, caught = timed(case.run, case.data)
                m.times.append(seconds)
                m.warnings += [w for w in caught if w not in m.warnings]
                log(f"    round {r + 1}/{rounds} {case.library}: {seconds:.3f} s")
            except Exception as exc:
                m.error = describe(exc)
                m.result = None
                release_device_memory()
                log(f"    round {r + 1}/{rounds} {case.library} FAILED: {m.error}")
    return out


def release_device_memory(keep: str | None = None) -> None:
    """Free the cached GPU blocks of torch's and CuPy's allocators (not ``keep``'s).

    Libraries on one GPU share it through two caching allocators; a block
    cached by one is unusable by the other. Only acts on modules already
    imported and on a CUDA context already made.
    """
    torch = sys.modules.get("torch")
    if keep != "torch" and torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    cupy = sys.modules.get("cupy")
    if keep != "cupy" and cupy is not None:
        try:
            cupy.get_default_memory_pool().free_all_blocks()
        except Exception:  # no CUDA device: nothing cached
            pass


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: how busy the machine was."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def stderr_log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)
