"""What a result depends on: machine, library versions, threads, date.

The result files are named by :func:`machine_tag`, built from the CPU model
and core count (or the GPU name), never from the host name.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]

#: Distributions whose versions are recorded (import name -> label).
VERSIONED = {
    "xpkmeans": "xpkmeans",
    "numpy": "numpy",
    "array_api_compat": "array-api-compat",
    "sklearn": "scikit-learn",
    "torch": "torch",
    "faiss": "faiss",
    "cupy": "cupy",
    "fast_pytorch_kmeans": "fast-pytorch-kmeans",
    "flash_kmeans": "flash-kmeans",
    "threadpoolctl": "threadpoolctl",
    "matplotlib": "matplotlib",
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def gpu_info() -> dict[str, Any] | None:
    """Name and memory of the CUDA device, from torch or CuPy; None without one."""
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return {
                "name": torch.cuda.get_device_name(0),
                "memory_gib": props.total_memory / 1024**3,
                "cuda": torch.version.cuda,
            }
    except ImportError:
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            return {
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_gib": props["totalGlobalMem"] / 1024**3,
                "cuda": cupy.cuda.runtime.runtimeGetVersion(),
            }
    except Exception:  # ImportError, or CUDA present but unusable
        pass
    return None


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "kind": device,
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    if device == "gpu":
        info["gpu"] = gpu_info()
    return info


def machine_tag(info: dict[str, Any]) -> str:
    """``cpu-amd-epyc-2c`` or ``gpu-nvidia-h100-80gb-hbm3``: no host name."""
    if info["kind"] == "gpu" and info.get("gpu"):
        return "gpu-" + _slug(info["gpu"]["name"])
    return f"cpu-{_slug(info['cpu'])}-{info['cores']}c"


def _slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|\bcpu\b|@.*$|\bprocessor\b", " ", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def versions() -> dict[str, str]:
    """Versions of the libraries importable here (import failures are skipped)."""
    found = {}
    for module, label in VERSIONED.items():
        try:
            mod = importlib.import_module(module)
        except Exception:
            continue
        found[label] = str(getattr(mod, "__version__", "unknown"))
    return found


def git_revision() -> str | None:
    """Commit of the working tree, with ``+dirty`` when xpkmeans/ has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=_REPO, capture_output=True,
            text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "xpkmeans"], cwd=_REPO,
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def threads() -> dict[str, Any]:
    """Thread pools as the libraries left them (read, never changed)."""
    info: dict[str, Any] = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info

        info["threadpoolctl"] = [
            {key: pool.get(key) for key in ("user_api", "internal_api", "prefix", "version",
                                             "num_threads", "threading_layer", "architecture")}
            for pool in threadpool_info()
        ]
    except ImportError:
        info["threadpoolctl"] = None
    if "torch" in sys.modules:
        info["torch.get_num_threads"] = sys.modules["torch"].get_num_threads()
    if "faiss" in sys.modules:
        info["faiss.omp_get_max_threads"] = sys.modules["faiss"].omp_get_max_threads()
    return info


def limit_threads(n: int) -> dict[str, Any]:
    """Set every thread pool to ``n`` (only on request: ``--threads``); returns what was done.

    BLAS and OpenMP pools loaded so far through threadpoolctl, plus torch's
    intra-op pool and faiss's OpenMP pool. Call after the libraries are imported.
    """
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(limits=n)  # kept alive: the limits hold until the process ends
    done = {"threadpoolctl": n}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
        done["torch.set_num_threads"] = n
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)
        done["faiss.omp_set_num_threads"] = n
    return done


_LIMITS: Any = None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
