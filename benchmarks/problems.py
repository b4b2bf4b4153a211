"""Benchmark problems, declared as data, and the data sets they generate.

A problem is ``(n, d, k)`` float32 data, by default Gaussian blobs
(``make_blobs``-like: ``k`` centres drawn uniformly in ``[-10, 10]^d``, each
point a centre plus isotropic noise of standard deviation ``cluster_std``);
``data="uniform"``: uniform in ``[-10, 10]^d``, no clusters;
``data="tfidf"``: a TF-IDF-like SciPy CSR matrix (about ``nnz_per_row``
columns per row drawn from a power law, values exponential times the
column's IDF, rows scaled to unit norm). Generation is never timed.

On the CPU the data is drawn by NumPy; on a GPU it is drawn on the device
(torch, else CuPy), since drawing 10^9 normals on the host would cost more
device time than the benchmark itself. Within one run every library sees
the same array.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

# ------------------------------------------------------------------ problems


@dataclass(frozen=True)
class Problem:
    """One benchmark shape.

    Attributes
    ----------
    name : str
        Key used on the command line (``--problems``).
    n, d, k : int
        Samples, features, clusters.
    lloyd_iter : int
        Fixed number of Lloyd iterations of the per-iteration benchmark.
    devices : tuple of str
        Where it runs by default: "cpu", "gpu".
    cluster_std : float
        Noise of each blob.
    default : bool
        In the default selection (``tiny`` is only run when asked for).
    skip : tuple of (figure, device) pairs
        Figures that libraries of that device leave out on this problem, with
        the reason in ``skip_reason``.
    """

    name: str
    n: int
    d: int
    k: int
    lloyd_iter: int
    devices: tuple[str, ...]
    cluster_std: float = 1.0
    default: bool = True
    skip: tuple[tuple[str, str], ...] = ()
    skip_reason: str = ""
    data: str = "blobs"
    nnz_per_row: int = 0

    @property
    def shape(self) -> str:
        return f"{_short(self.n)}×{_short(self.d)}×{self.k}"

    @property
    def sparse(self) -> bool:
        return self.data == "tfidf"

    @property
    def data_bytes(self) -> int:
        if self.sparse:  # float32 values and int32 column indices
            return self.n * self.nnz_per_row * 8
        return self.n * self.d * 4

    def quick(self) -> "Problem":
        """The ``--quick`` variant: a tenth of the samples, at most 5 iterations."""
        n = max(self.n // 10, min(self.n, 2_000))
        return dataclasses.replace(self, n=n, lloyd_iter=min(self.lloyd_iter, 5))


#: Every problem. ``tiny`` is the smoke test; its blobs overlap (std 4) so that
#: Lloyd does not converge before ``lloyd_iter`` iterations.
PROBLEMS: tuple[Problem, ...] = (
    #       name      n            d    k     iters  devices
    Problem("tiny",   2_000,       4,   4,    5,     ("cpu", "gpu"), cluster_std=4.0, default=False),
    Problem("small",  100_000,     16,  16,   10,    ("cpu", "gpu")),
    Problem("medium", 1_000_000,   32,  64,   10,    ("cpu", "gpu")),
    Problem("wide",   200_000,     128, 1000, 5,     ("cpu", "gpu"), skip=(("fit", "cpu"),),
            skip_reason="default fit of CPU libraries left out of the default run: greedy "
            "k-means++ with k=1000 takes about a minute per fit on two cores (run it "
            "with --problems wide)"),
    # overlapping blobs: many iterations in which few points move (Hamerly's case)
    Problem("overlap", 100_000,    32,  256,  30,    ("cpu",), cluster_std=3.0),
    # few features, many clusters: where a fused compiled pass beats BLAS + NumPy
    Problem("uniform", 2_000_000,  16,  100,  5,     ("cpu",), data="uniform",
            skip=(("fit", "cpu"),), skip_reason="default fit left out of the default run: "
            "about 300 iterations on uniform data, minutes per fit on two cores (run it with "
            "--problems uniform)"),
    # the course's blobs, scaled up
    Problem("course", 2_000_000,   2,   4,    10,    ("cpu", "gpu")),
    # TF-IDF-like sparse CSR (power-law columns, rows of unit norm)
    Problem("sparse", 200_000,     20_000, 50, 3,    ("cpu", "gpu"), data="tfidf",
            nnz_per_row=50, skip=(("memory", "cpu"),),
            skip_reason="peak memory is measured on dense problems only"),
    Problem("large",  10_000_000,  32,  256,  5,     ("gpu",)),
    Problem("huge",   8_000_000,   128, 1024, 5,     ("gpu",)),
)

#: Time versus n (d=32, k=64, fixed iterations): sizes per device and mode.
SCALING_D, SCALING_K, SCALING_ITER = 32, 64, 5
SCALING_SIZES: dict[tuple[str, bool], tuple[int, ...]] = {
    ("cpu", False): (10_000, 30_000, 100_000, 300_000, 1_000_000),
    ("cpu", True): (10_000, 30_000, 100_000),
    ("gpu", False): (100_000, 300_000, 1_000_000, 3_000_000, 10_000_000),
    ("gpu", True): (100_000, 300_000, 1_000_000),
}


def select_problems(names: list[str] | None, *, device: str, quick: bool) -> list[Problem]:
    """Problems named in ``names`` (all defaults of ``device`` when None)."""
    by_name = {p.name: p for p in PROBLEMS}
    if names is None:
        chosen = [p for p in PROBLEMS if p.default and device in p.devices]
    else:
        unknown = [name for name in names if name not in by_name]
        if unknown:
            msg = f"Unknown problem(s) {unknown}; choose from {sorted(by_name)}."
            raise ValueError(msg)
        chosen = [by_name[name] for name in names]
    return [p.quick() for p in chosen] if quick else chosen


def scaling_problems(*, device: str, quick: bool) -> list[Problem]:
    iters = 3 if quick else SCALING_ITER
    return [
        Problem(f"scaling-{_short(n)}", n, SCALING_D, SCALING_K, iters, (device,))
        for n in SCALING_SIZES[device, quick]
    ]


def _short(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10) == 0:
            value = n / size
            return f"{value:g}{unit}"
    return str(n)


# ------------------------------------------------------------------ data


class Dataset:
    """The data of one problem, converted on demand to each array kind.

    Array kinds: "numpy", "torch-cpu" (shares NumPy's memory), "torch-cuda",
    "cupy" (shares the torch-cuda buffer through DLPack when both exist).
    ``init(kind)`` gives the fixed initial centres of the per-iteration
    benchmark: ``k`` distinct rows drawn with ``numpy.random.default_rng(seed + 1)``.
    """

    def __init__(self, problem: Problem, *, device: str, seed: int = 0) -> None:
        self.problem = problem
        self.seed = seed
        self._arrays: dict[str, Any] = {}
        if device == "gpu" and not problem.sparse:
            kind, X = _blobs_on_gpu(problem, seed)
            self._arrays[kind] = X
            self.home = kind
        elif problem.sparse:
            self._arrays["numpy"] = _tfidf_scipy(problem, seed)
            self.home = "numpy"
        else:
            self._arrays["numpy"] = _blobs_numpy(problem, seed)
            self.home = "numpy"
        rng = np.random.default_rng(seed + 1)
        self.init_rows = np.sort(rng.choice(problem.n, size=problem.k, replace=False))

    def array(self, kind: str) -> Any:
        if kind not in self._arrays:
            self._arrays[kind] = _convert(self._arrays[self.home], kind)
        return self._arrays[kind]

    def init(self, kind: str) -> Any:
        X = self.array(kind)
        if self.problem.sparse:  # dense centres, in the library's dense arrays
            return _convert(self._arrays[self.home][self.init_rows].toarray(), kind)
        if kind == "numpy":
            return X[self.init_rows].copy()
        if kind.startswith("torch"):
            import torch

            return X[torch.as_tensor(self.init_rows, device=X.device)].clone()
        import cupy

        return X[cupy.asarray(self.init_rows)].copy()

    def release(self) -> None:
        self._arrays.clear()


def _blobs_numpy(problem: Problem, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if problem.data == "uniform":
        return rng.uniform(-10.0, 10.0, size=(problem.n, problem.d)).astype(np.float32)
    centers = rng.uniform(-10.0, 10.0, size=(problem.k, problem.d)).astype(np.float32)
    labels = rng.integers(0, problem.k, size=problem.n)
    X = rng.standard_normal((problem.n, problem.d), dtype=np.float32)
    if problem.cluster_std != 1.0:
        X *= np.float32(problem.cluster_std)
    X += centers[labels]
    return X


def _tfidf_scipy(problem: Problem, seed: int) -> Any:
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n, d, per_row = problem.n, problem.d, problem.nnz_per_row
    frequency = 1.0 / (np.arange(d) + 10.0)  # Zipf-like column frequencies
    frequency /= frequency.sum()
    columns = rng.choice(d, size=n * per_row, p=frequency).astype(np.int32)
    rows = np.repeat(np.arange(n, dtype=np.int32), per_row)
    values = rng.exponential(1.0, n * per_row) * np.log(1.0 / frequency)[columns]
    X = sp.csr_matrix((values.astype(np.float32), (rows, columns)), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1.0 / norms) @ X, dtype=np.float32)
    X.sort_indices()
    return X


def _blobs_on_gpu(problem: Problem, seed: int) -> tuple[str, Any]:
    try:
        import torch

        if torch.cuda.is_available():
            gen = torch.Generator(device="cuda").manual_seed(seed)
            kw = {"generator": gen, "device": "cuda"}
            centers = torch.rand((problem.k, problem.d), **kw) * 20.0 - 10.0
            labels = torch.randint(0, problem.k, (problem.n,), **kw)
            X = torch.randn((problem.n, problem.d), **kw).mul_(problem.cluster_std)
            X += centers[labels]
            del labels
            return "torch-cuda", X
    except ImportError:
        pass
    import cupy

    rs = cupy.random.RandomState(seed)
    centers = rs.uniform(-10.0, 10.0, size=(problem.k, problem.d), dtype=cupy.float32)
    labels = rs.randint(0, problem.k, size=problem.n)
    X = rs.standard_normal((problem.n, problem.d), dtype=cupy.float32) * problem.cluster_std
    X += centers[labels]
    return "cupy", X


def _convert(X: Any, kind: str) -> Any:
    """Copy (or share) ``X`` as an array of ``kind`` (a SciPy CSR matrix as
    that library's CSR matrix)."""
    if not isinstance(X, np.ndarray) and hasattr(X, "tocsr"):
        return _convert_sparse(X, kind)
    if kind == "numpy":
        from xpkmeans._backend import to_numpy

        return np.ascontiguousarray(to_numpy(X))
    if kind == "torch-cpu":
        import torch

        return torch.from_numpy(X) if isinstance(X, np.ndarray) else X.cpu()
    if kind == "torch-cuda":
        import torch

        if isinstance(X, np.ndarray):
            return torch.from_numpy(X).cuda()
        return torch.from_dlpack(X)
    if kind == "cupy":
        import cupy

        if isinstance(X, np.ndarray):
            return cupy.asarray(X)
        return cupy.from_dlpack(X)
    msg = f"Unknown array kind {kind!r}."
    raise ValueError(msg)


def _convert_sparse(X: Any, kind: str) -> Any:
    if kind == "numpy":
        return X
    if kind == "cupy":
        import cupyx.scipy.sparse

        return cupyx.scipy.sparse.csr_matrix(X)
    import warnings

    import torch

    device = "cuda" if kind == "torch-cuda" else "cpu"
    parts = (torch.as_tensor(X.indptr), torch.as_tensor(X.indices), torch.as_tensor(X.data))
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(*parts, size=X.shape, device=device,
                                       check_invariants=False)
