"""Out-of-core KMeans: RowBlocks of memmaps and callables of row blocks,
bounded memory, blocks streamed to a (CPU) torch device. The reference is the
in-memory fit. A bare memmap is fitted in memory, as any array."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpkmeans


def _blobs(n=6000, d=5, centers=6, seed=0):
    from sklearn.datasets import make_blobs

    return make_blobs(n, d, centers=centers, random_state=seed)[0]


def _init(X, k, seed=0):
    return X[np.random.default_rng(seed).choice(X.shape[0], k, replace=False)]


@pytest.fixture
def memmap(tmp_path):
    X = _blobs()
    np.save(tmp_path / "X.npy", X)
    return X, np.load(tmp_path / "X.npy", mmap_mode="r")


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
def test_bare_memmap_is_fitted_as_the_array(memmap, init):
    """joblib hands workers large arrays as memmaps: the same seed must give
    the same clustering either way, as in scikit-learn."""
    X, mm = memmap
    ref = xpkmeans.KMeans(6, init=init, random_state=0).fit(X)
    km = xpkmeans.KMeans(6, init=init, random_state=0).fit(mm)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    assert km.n_iter_ == ref.n_iter_


def test_memmap_blocks_fit_equals_in_memory(memmap):
    X, mm = memmap
    init = _init(X, 6)
    ref = xpkmeans.KMeans(6, init=init).fit(X)
    km = xpkmeans.KMeans(6, init=init).fit(xpkmeans.RowBlocks(mm))
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    assert km.n_iter_ == ref.n_iter_
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)
    np.testing.assert_array_equal(km.predict(X), ref.labels_)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_string_inits(memmap, init):
    X, mm = memmap
    km = xpkmeans.KMeans(6, init=init, random_state=0).fit(xpkmeans.RowBlocks(mm))
    greedy = xpkmeans.KMeans(6, random_state=0).fit(X)
    assert km.inertia_ <= 1.02 * greedy.inertia_ or init == "random"
    assert km.cluster_centers_.shape == (6, 5)


def test_random_init_draws_the_in_memory_rows(memmap):
    X, mm = memmap
    ref = xpkmeans.KMeans(6, init="random", n_init=2, random_state=3).fit(X)
    km = xpkmeans.KMeans(6, init="random", n_init=2, random_state=3).fit(xpkmeans.RowBlocks(mm))
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10)


@pytest.mark.parametrize("case", ["max_iter", "duplicates"])
def test_fit_warns_as_in_memory(case):
    X = _blobs(n=2000) if case == "max_iter" else np.repeat(_blobs(n=3), 100, axis=0)
    params = {"max_iter": 1} if case == "max_iter" else {}
    match = "max_iter=1" if case == "max_iter" else r"distinct clusters \(3\)"
    for data in (X, xpkmeans.RowBlocks(X, block_rows=500)):
        with pytest.warns(xpkmeans.ConvergenceWarning, match=match):
            xpkmeans.KMeans(5, init=_init(X, 5), **params).fit(data)


def test_callback_and_choice_among_starts_as_in_memory(memmap):
    X, mm = memmap
    seen = {}
    for name, data in (("memory", X), ("blocks", xpkmeans.RowBlocks(mm, block_rows=700))):
        steps = seen[name] = []
        km = xpkmeans.KMeans(6, init="random", n_init=4, random_state=5, callback=lambda p: (
            steps.append((p.start, p.iteration, p.center_shift, p.converged, p.last)),
            p.start == 0 and p.iteration == 1 and steps.append(p.inertia()))).fit(data)
        seen[name + " fit"] = km
    assert len(seen["memory"]) == len(seen["blocks"])
    for ours, reference in zip(seen["blocks"], seen["memory"]):
        np.testing.assert_allclose(ours, reference, rtol=1e-9)
    np.testing.assert_array_equal(seen["blocks fit"].labels_, seen["memory fit"].labels_)
    assert seen["blocks fit"].n_iter_ == seen["memory fit"].n_iter_


def test_callable_of_blocks_weights_and_empty_clusters():
    X = _blobs(n=3000)
    w = np.random.default_rng(2).random(3000)
    init = np.vstack([_init(X, 4), np.full((2, 5), 1e3)])  # two empty clusters
    ref = xpkmeans.KMeans(6, init=init).fit(X, sample_weight=w)
    blocks = xpkmeans.RowBlocks(lambda: iter(np.array_split(X, 7)))
    km = xpkmeans.KMeans(6, init=init).fit(blocks, sample_weight=w)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    assert km.n_iter_ == ref.n_iter_


def test_blocks_streamed_to_a_torch_device(memmap):
    torch = pytest.importorskip("torch")
    X, mm = memmap
    init = _init(X, 6)
    ref = xpkmeans.KMeans(6, init=init).fit(X)
    km = xpkmeans.KMeans(6, init=init).fit(xpkmeans.RowBlocks(mm, block_rows=1000, device="cpu"))
    assert isinstance(km.labels_, torch.Tensor) and isinstance(km.cluster_centers_, torch.Tensor)
    np.testing.assert_array_equal(km.labels_.numpy(), ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_.numpy(), ref.cluster_centers_, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::xpkmeans.ConvergenceWarning")  # max_iter=4
@pytest.mark.parametrize("block_rows", [250, 2000])
def test_one_host_copy_per_pass_whatever_the_blocks(memmap, monkeypatch, block_rows):
    """The blocks' partial sums are added where they are: a device never waits
    for the host block by block."""
    pytest.importorskip("torch")
    import xpkmeans._streaming as streaming

    X, mm = memmap
    copies = []
    real = streaming.to_numpy
    monkeypatch.setattr(streaming, "to_numpy", lambda x: copies.append(x.shape) or real(x))
    blocks = xpkmeans.RowBlocks(mm, block_rows=block_rows, device="cpu")
    km = xpkmeans.KMeans(6, init=_init(X, 6), max_iter=4, tol=0.0).fit(blocks)
    # mean | non-finite count, sum of squares, 4 Lloyd passes, inertia
    assert len(copies) == 1 + 1 + km.n_iter_ + 1, copies


@pytest.mark.parametrize("rows", [5, 70_000])  # one part, and one per core (>= 4 MiB each)
def test_staging_copies_every_row_and_casts(rows):
    from xpkmeans._backend._transfer import copy_rows_on_all_cores

    block = np.random.default_rng(0).normal(size=(rows, 16))
    pinned = np.full((rows, 16), np.nan, dtype=np.float32)
    copy_rows_on_all_cores(pinned, block)
    np.testing.assert_array_equal(pinned, block.astype(np.float32))


def test_sources_are_checked_as_arrays_are_in_memory():
    X = _blobs(n=100)
    with pytest.raises(ValueError, match="^Complex data not supported: `source` has dtype complex"):
        xpkmeans.RowBlocks(X + 1j)
    with pytest.raises(TypeError, match="^`source` must be a numeric array, got dtype <U"):
        xpkmeans.KMeans(2).fit(xpkmeans.RowBlocks(lambda: iter([X.astype(str)])))
    for block_rows, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="^`block_rows`"):
            xpkmeans.RowBlocks(X, block_rows=block_rows)
    with pytest.raises(ValueError, match="block of 2 features after blocks of 5"):
        xpkmeans.KMeans(2).fit(xpkmeans.RowBlocks(lambda: iter([X[:50], X[50:, :2]])))
    with pytest.raises(ValueError, match="^`X` has no rows"):
        xpkmeans.KMeans(2).fit(xpkmeans.RowBlocks(lambda: iter([X[:0], X[:0]])))
    with pytest.raises(ValueError, match="^`X` has no features"):
        xpkmeans.KMeans(2).fit(xpkmeans.RowBlocks(np.zeros((10, 0))))
    passes = []

    def shrinking():  # a source whose later passes lose rows: labels had kept garbage
        passes.append(1)
        return iter([X[:50], X[50:] if len(passes) == 1 else X[50:99]])

    with pytest.raises(ValueError, match="^`source` gave 99 rows in a later pass and 100"):
        xpkmeans.KMeans(2, init=X[:2]).fit(xpkmeans.RowBlocks(shrinking))
    km = xpkmeans.KMeans(2, init=X[:2]).fit(xpkmeans.RowBlocks(X))
    for use in (km.predict, km.transform, km.score):
        with pytest.raises(TypeError, match="^`X` is a RowBlocks"):
            use(xpkmeans.RowBlocks(X))
    fresh = xpkmeans.KMeans(2)
    with pytest.raises(TypeError, match="^`X` is a RowBlocks"):
        fresh.fit_transform(xpkmeans.RowBlocks(X))
    assert not hasattr(fresh, "cluster_centers_")  # refused before the fit


def test_bad_sources():
    with pytest.raises(TypeError, match="one-shot iterator"):
        xpkmeans.RowBlocks(iter([np.zeros((3, 2))]))
    with pytest.raises(ValueError, match="2-D"):
        xpkmeans.RowBlocks(np.zeros(3))
    X = _blobs(n=100)
    X[3, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        xpkmeans.KMeans(2).fit(xpkmeans.RowBlocks(lambda: iter([X[:50], X[50:]])))
    # a callable that returns no blocks had raised "'int' object is not iterable"
    with pytest.raises(TypeError, match="^`source` must return an iterator of row blocks.*int"):
        xpkmeans.KMeans(2).fit(xpkmeans.RowBlocks(lambda: 3))


_RSS_SCRIPT = """
import json, sys
import numpy as np
import xpkmeans
mm = np.load(sys.argv[1], mmap_mode=sys.argv[3])
if sys.argv[4] == "columns":  # a strided view: its blocks span more than their bytes
    mm = mm[:, :12]
init = np.asarray(mm[:8])
KMeans = xpkmeans.KMeans  # imported and compiled (numba) before the measurement
fit = lambda km, X: km.fit(xpkmeans.RowBlocks(X))  # out of core: read in row blocks
if sys.argv[2] == "MiniBatchKMeans":  # a bare memmap's random rows: read in pieces, pages dropped
    KMeans = lambda k, **kw: xpkmeans.MiniBatchKMeans(k, batch_size=1024, random_state=0, **kw)
    fit = lambda km, X: km.fit(X)
fit(KMeans(8, init=init, max_iter=2), mm[:20000])  # a memmap too: the same kernels
def peak_kib():  # this process's own peak RSS (ru_maxrss keeps the parent's across exec)
    return int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
before = peak_kib()
km = fit(KMeans(8, init=init, max_iter=2), mm)
after = peak_kib()
print(json.dumps({"growth_kib": after - before, "labels": int(km.labels_.shape[0])}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's VmHWM")
@pytest.mark.parametrize(("estimator", "mode", "view"), [
    ("KMeans", "r", "rows"), ("MiniBatchKMeans", "r", "rows"),
    # np.memmap's default mode, and a column view: their pages had stayed (+394, +219 MiB)
    ("KMeans", "r+", "columns"), ("MiniBatchKMeans", "r+", "rows"),
])
def test_memmap_fit_memory_stays_far_below_the_data(tmp_path, estimator, mode, view):
    n, d = 2_000_000, 16  # 128 MB of float32
    path = tmp_path / "big.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for start in range(0, n, 500_000):
        X[start:start + 500_000] = rng.normal(size=(500_000, d))  # not all in memory at once
    X.flush()
    del X
    result = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(path), estimator, mode, view],
        capture_output=True, text=True,
        check=True, cwd=Path(__file__).resolve().parents[1],
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["labels"] == n
    data_kib = n * d * 4 // 1024
    # labels (16 MB of int64) and a few 8 MiB blocks, not the data (128 MB) or its copy
    assert measured["growth_kib"] < data_kib // 2, measured


def test_blocks_streamed_to_cuda_with_overlap(memmap):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch-cuda: no CUDA device")
    X, mm = memmap
    init = _init(X, 6)
    ref = xpkmeans.KMeans(6, init=init).fit(X)
    pinned = torch.from_numpy(np.array(X)).pin_memory()
    for source in (mm, pinned):  # staged in pinned buffers; copied from where it lies
        km = xpkmeans.KMeans(6, init=init).fit(
            xpkmeans.RowBlocks(source, block_rows=700, device="cuda"))
        assert km.labels_.device.type == "cuda"
        np.testing.assert_array_equal(km.labels_.cpu().numpy(), ref.labels_)
        np.testing.assert_allclose(km.cluster_centers_.cpu().numpy(), ref.cluster_centers_,
                                   rtol=1e-8)


def test_values_too_large_for_the_dtype_are_refused_alike_in_memory_on_dask_and_streamed(tmp_path):
    import dask.array as da

    X = np.zeros((40, 2), dtype=np.float32)
    X[0, 0] = 3e19  # its square overflows float32
    np.save(tmp_path / "X.npy", X)
    for data in (X, da.from_array(X, chunks=10),
                 xpkmeans.RowBlocks(np.load(tmp_path / "X.npy", mmap_mode="r"))):
        with pytest.raises(ValueError, match="^`X` has values too large for float32: their "
                           "squared distances overflow"):
            xpkmeans.KMeans(2, init=X[:2]).fit(data)
