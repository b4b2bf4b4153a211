"""Every benchmarked library as an adapter, registered by name.

An adapter provides two calls with one signature across libraries:

- ``lloyd(X, init, max_iter)``: exactly ``max_iter`` Lloyd iterations from
  the centres ``init`` (``tol=0`` or its equivalent, one initialisation);
- ``fit(X, n_clusters, seed)``: the library's default fit, seeded;

both returning :class:`Fitted` with the centres still on the library's
device (copying them to the host happens after the clock stops), the
iteration count the library reports (None when it reports none) and, for
xpkmeans's default fit, the seconds its initialisation took.

``X`` and ``init`` come in the adapter's ``array`` kind (see
``problems.Dataset``). A library is available when its modules import and,
for GPU libraries, a CUDA device is present; otherwise it is skipped with
the reason.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass
class Fitted:
    """Result of one timed call: centres (any array kind) and iterations run."""

    centers: Any
    n_iter: int | None
    init_s: float | None = None  # of the fit, in the initialisation (xpkmeans)


@dataclass(frozen=True)
class Library:
    """A benchmarked library on one device.

    Attributes
    ----------
    name : str
        Name on the command line and in the results.
    device : {"cpu", "gpu"}
    array : str
        Array kind it takes: "numpy", "torch-cpu", "torch-cuda" or "cupy".
    modules : tuple of str
        Imports that must succeed.
    lloyd, fit : callables
        See the module docstring.
    notes : str
        How the calls map onto the library (written into the report).
    sparse : bool
        Takes sparse CSR data (SciPy, or its array kind's own sparse CSR).
    """

    name: str
    device: str
    array: str
    modules: tuple[str, ...]
    lloyd: Callable[[Any, Any, int], Fitted]
    fit: Callable[[Any, int, int], Fitted]
    notes: str = ""
    sparse: bool = False

    def unavailable(self) -> str | None:
        """None when usable here, else why not."""
        for module in self.modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # ImportError, or a broken CUDA install
                return f"{module} not importable ({type(exc).__name__})"
        if self.device == "gpu":
            return _no_cuda_reason(self.array)
        return None


def _no_cuda_reason(array: str) -> str | None:
    if array == "cupy":
        import cupy

        try:
            return None if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device"
        except cupy.cuda.runtime.CUDARuntimeError:
            return "no CUDA device"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device"


# ------------------------------------------------------------------ xpkmeans, scikit-learn


def _kmeans_estimator(module: str, algorithm: str):
    """Adapters for ``module.KMeans`` (xpkmeans and scikit-learn share its API)."""

    def lloyd(X, init, max_iter):
        KMeans = importlib.import_module(module).KMeans
        km = KMeans(
            init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm=algorithm
        ).fit(X)
        return Fitted(km.cluster_centers_, km.n_iter_)

    def fit(X, n_clusters, seed):
        KMeans = importlib.import_module(module).KMeans
        with _timed_initializers(module) as init_s:
            km = KMeans(n_clusters, random_state=seed, algorithm=algorithm).fit(X)
        return Fitted(km.cluster_centers_, km.n_iter_, init_s[0] if init_s else None)

    return lloyd, fit


@contextlib.contextmanager
def _timed_initializers(module: str) -> Iterator[list[float]]:
    """While open, xpkmeans's named initialisers add their seconds (device
    work finished) to the list yielded; other modules: the list stays empty."""
    seconds: list[float] = []
    if module != "xpkmeans":
        yield seconds
        return
    from xpkmeans._backend import synchronize
    from xpkmeans._init import INITIALIZERS

    def timed(initializer):
        def run(X, *args, **kwargs):
            synchronize(X)
            start = time.perf_counter()
            centers = initializer(X, *args, **kwargs)
            synchronize(centers)
            spent = time.perf_counter() - start
            seconds[:] = [spent + (seconds[0] if seconds else 0.0)]
            return centers
        return run

    saved = dict(INITIALIZERS)
    INITIALIZERS.update({name: timed(initializer) for name, initializer in saved.items()})
    try:
        yield seconds
    finally:
        INITIALIZERS.update(saved)


_xpkmeans_lloyd, _xpkmeans_fit = _kmeans_estimator("xpkmeans", "lloyd")
_XPKMEANS_NOTES = "KMeans(k, init=init, n_init=1, tol=0, max_iter) / KMeans(k, random_state=0)"

# ------------------------------------------------------------------ faiss


def _faiss_lloyd(X, init, max_iter):
    import faiss

    n, d = X.shape
    k = init.shape[0]
    extra = {}
    if hasattr(faiss.ClusteringParameters(), "early_stop_threshold"):
        extra["early_stop_threshold"] = -1.0  # recent faiss stops when the objective stalls
    km = faiss.Kmeans(
        d, k, niter=max_iter, seed=0,
        max_points_per_centroid=max(256, -(-n // k)),  # no subsampling
        min_points_per_centroid=1,  # no "too few points" warning on tiny problems
        **extra,
    )
    km.train(X, init_centroids=init)
    return Fitted(km.centroids, len(km.obj))


def _faiss_fit(X, n_clusters, seed):
    import faiss

    km = faiss.Kmeans(X.shape[1], n_clusters, seed=seed)
    km.train(X)
    return Fitted(km.centroids, len(km.obj))


_FAISS_NOTES = (
    "Lloyd: faiss.Kmeans(d, k, niter, max_points_per_centroid>=n/k, early_stop_threshold=-1)"
    ".train(X, init_centroids=init); "
    "default fit: faiss.Kmeans(d, k, seed=0) (niter=25, random init, "
    "subsamples to 256 points per centroid)"
)

# ------------------------------------------------------------------ GPU peers


def _fast_pytorch_lloyd(X, init, max_iter):
    from fast_pytorch_kmeans import KMeans

    # tol=-1: its stop test is ``shift <= tol``, so every iteration runs.
    km = KMeans(n_clusters=init.shape[0], max_iter=max_iter, tol=-1.0, mode="euclidean")
    km.fit_predict(X, centroids=init.clone())
    return Fitted(km.centroids, max_iter)


def _fast_pytorch_fit(X, n_clusters, seed):
    import torch
    from fast_pytorch_kmeans import KMeans

    torch.manual_seed(seed)
    km = KMeans(n_clusters=n_clusters, mode="euclidean")
    km.fit_predict(X)
    return Fitted(km.centroids, None)


def _flash_lloyd(X, init, max_iter):
    from flash_kmeans import batch_kmeans_Euclid

    # Batched API (B=1); tol=-1: its stop test is ``shift < tol``. The init is
    # cloned because the fused path reuses the centroid buffer in place.
    _, centers, n_iter = batch_kmeans_Euclid(
        X[None], init.shape[0], max_iters=max_iter, tol=-1.0, init_centroids=init[None].clone()
    )
    return Fitted(centers[0], int(n_iter))


def _flash_fit(X, n_clusters, seed):
    import flash_kmeans

    if hasattr(flash_kmeans, "FlashKMeans"):
        km = flash_kmeans.FlashKMeans(X.shape[1], n_clusters, seed=seed).fit(X)
        return Fitted(km.centroids_b[0], None)
    import torch

    torch.manual_seed(seed)
    _, centers, n_iter = flash_kmeans.batch_kmeans_Euclid(X[None], n_clusters)
    return Fitted(centers[0], int(n_iter))


# ------------------------------------------------------------------ registry

_sk_lloyd, _sk_lloyd_fit = _kmeans_estimator("sklearn.cluster", "lloyd")
_sk_elkan, _sk_elkan_fit = _kmeans_estimator("sklearn.cluster", "elkan")

LIBRARIES: tuple[Library, ...] = (
    Library("sklearn-lloyd", "cpu", "numpy", ("sklearn",), _sk_lloyd, _sk_lloyd_fit,
            "KMeans(algorithm='lloyd'); the reference of every ratio", sparse=True),
    Library("sklearn-elkan", "cpu", "numpy", ("sklearn",), _sk_elkan, _sk_elkan_fit,
            "KMeans(algorithm='elkan')", sparse=True),
    Library("xpkmeans-numpy", "cpu", "numpy", ("xpkmeans",), _xpkmeans_lloyd, _xpkmeans_fit,
            _XPKMEANS_NOTES, sparse=True),
    Library("xpkmeans-hamerly", "cpu", "numpy", ("xpkmeans",),
            *_kmeans_estimator("xpkmeans", "hamerly"),
            "as xpkmeans-numpy, with algorithm='hamerly'"),
    Library("xpkmeans-torch", "cpu", "torch-cpu", ("xpkmeans", "torch"), _xpkmeans_lloyd,
            _xpkmeans_fit, _XPKMEANS_NOTES, sparse=True),
    Library("faiss", "cpu", "numpy", ("faiss",), _faiss_lloyd, _faiss_fit, _FAISS_NOTES),
    Library("xpkmeans-cupy", "gpu", "cupy", ("xpkmeans", "cupy"), _xpkmeans_lloyd,
            _xpkmeans_fit, _XPKMEANS_NOTES, sparse=True),
    Library("xpkmeans-torch-cuda", "gpu", "torch-cuda", ("xpkmeans", "torch"), _xpkmeans_lloyd,
            _xpkmeans_fit, _XPKMEANS_NOTES, sparse=True),
    Library("fast-pytorch-kmeans", "gpu", "torch-cuda", ("torch", "fast_pytorch_kmeans"),
            _fast_pytorch_lloyd, _fast_pytorch_fit,
            "KMeans(k, max_iter, tol=-1).fit_predict(X, centroids=init); default: "
            "KMeans(k) (random init, max_iter=100, tol=1e-4); reports no n_iter"),
    Library("flash-kmeans", "gpu", "torch-cuda", ("torch", "flash_kmeans"), _flash_lloyd,
            _flash_fit,
            "batch_kmeans_Euclid(X[None], k, max_iters, tol=-1, init_centroids=init[None]); "
            "default: FlashKMeans(d, k, seed=0) (random init, niter=25); reports no n_iter"),
)

BY_NAME: dict[str, Library] = {lib.name: lib for lib in LIBRARIES}

#: The library every ratio is taken against.
REFERENCE = "sklearn-lloyd"

#: Libraries of the time-versus-n figure, per device.
SCALING_LIBRARIES = {
    "cpu": ("xpkmeans-numpy", "xpkmeans-torch", "sklearn-lloyd"),
    "gpu": ("xpkmeans-cupy", "xpkmeans-torch-cuda", "flash-kmeans"),
}


def select_libraries(names: list[str] | None, *, device: str) -> tuple[list[Library], dict[str, str]]:
    """Available libraries and the reasons the others are skipped.

    Default: every library of ``device``, plus the reference (scikit-learn)
    on a GPU run, where it only runs the problems marked for the CPU.
    """
    if names is None:
        wanted = [lib for lib in LIBRARIES if lib.device == device or lib.name == REFERENCE]
    else:
        unknown = [name for name in names if name not in BY_NAME]
        if unknown:
            msg = f"Unknown backend(s) {unknown}; choose from {sorted(BY_NAME)}."
            raise ValueError(msg)
        wanted = [BY_NAME[name] for name in names]
    chosen, skipped = [], {}
    for lib in wanted:
        reason = lib.unavailable()
        if reason is None:
            chosen.append(lib)
        else:
            skipped[lib.name] = reason
    return chosen, skipped
