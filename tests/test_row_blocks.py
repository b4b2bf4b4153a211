"""Row blocks whose last block is shorter, on array_api_strict (which rejects
slices past the end of an axis): every entry point over many small blocks.

``small_blocks`` makes a 4-column temporary 4 rows long, so 103 rows end in a
block of 3 and a 23-row silhouette block in one of 3 (issue 11, bug 1).
"""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.cluster import KMeans as SkKMeans

import xpkmeans
from xpkmeans import KMeans

xp = pytest.importorskip("array_api_strict")
N_SAMPLES = 103  # not a multiple of any block size used here


@pytest.fixture
def data():
    X, _ = xpkmeans.make_blobs(N_SAMPLES, 4, centers=3, cluster_std=2.0, random_state=0)
    return X


def _strict(values):
    return xp.asarray(values)


def test_fit_predict_transform_score(small_blocks, data):
    init = data[[0, 40, 80]]
    km = KMeans(3, init=_strict(init)).fit(_strict(data))
    reference = SkKMeans(3, init=init, n_init=1).fit(data)
    np.testing.assert_array_equal(np.asarray(km.labels_), reference.labels_)
    np.testing.assert_allclose(np.asarray(km.cluster_centers_), reference.cluster_centers_,
                               rtol=1e-10)
    np.testing.assert_array_equal(np.asarray(km.predict(_strict(data))), reference.labels_)
    np.testing.assert_allclose(np.asarray(km.transform(_strict(data))),
                               reference.transform(data), rtol=1e-8, atol=1e-8)
    assert km.score(_strict(data)) == pytest.approx(reference.score(data), rel=1e-10)
    assert km.inertia_ == pytest.approx(reference.inertia_, rel=1e-10)


def test_kmeans_plusplus(small_blocks, data):
    centers, indices = xpkmeans.kmeans_plusplus(_strict(data), 5, random_state=0)
    np.testing.assert_array_equal(np.asarray(centers), data[np.asarray(indices)])
    on_numpy, _ = xpkmeans.kmeans_plusplus(data, 5, random_state=0)  # one seed, one result
    np.testing.assert_array_equal(np.asarray(centers), on_numpy)


def test_metrics(small_blocks, data):
    labels = SkKMeans(3, n_init=1, random_state=0).fit(data).labels_
    X, codes = _strict(data), _strict(labels)
    np.testing.assert_allclose(np.asarray(xpkmeans.silhouette_samples(X, codes)),
                               sk_metrics.silhouette_samples(data, labels), rtol=1e-8)
    for name in ("silhouette_score", "calinski_harabasz_score", "davies_bouldin_score"):
        assert getattr(xpkmeans, name)(X, codes) == pytest.approx(
            getattr(sk_metrics, name)(data, labels), rel=1e-8), name


def test_select_n_clusters(small_blocks, data):
    result = xpkmeans.select_n_clusters(_strict(data), range(2, 5), random_state=0)
    on_numpy = xpkmeans.select_n_clusters(data, range(2, 5), random_state=0)
    np.testing.assert_allclose(result.scores, on_numpy.scores, rtol=1e-8)
    assert result.best_n_clusters == on_numpy.best_n_clusters


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=3
def test_the_large_case_users_hit():
    """20,000 x 30 float32, k=30 (the report): default blocks end past n."""
    X, _ = xpkmeans.make_blobs(20_000, 30, centers=30, random_state=1, dtype=np.float32)
    km = KMeans(30, random_state=1, max_iter=3).fit(_strict(X))
    assert km.labels_.shape == (20_000,)


# ------------------------------------------------------------------ threads (bug 4)


def test_two_threads_fitting_at_once_keep_blas_limited_until_both_end():
    """The first region to close must not lift the limit of the other thread's."""
    pytest.importorskip("threadpoolctl")
    import array_api_compat.numpy as np_xp

    from xpkmeans._backend import blas_is_limited, parallel_region

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with parallel_region(np_xp):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with parallel_region(np_xp):
            second_in.set()
            first_out.wait(10)  # the first region has closed; this one is still open
            seen["limited"] = blas_is_limited()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == {"limited": True}
    assert not blas_is_limited()


def _blas_threads():
    import threadpoolctl

    return [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]


def test_a_region_limits_blas_in_any_thread_and_leaves_the_users_limits_working():
    """threadpoolctl (3.7 on) lets one thread at a time set the limits of an
    OpenBLAS on pthreads: the first thread to set one keeps that control
    until its own ``with threadpool_limits`` ends. A region opened in one
    thread had kept it, so that regions in every other thread (fits in a
    ThreadPoolExecutor, joblib's threading backend, Dask worker threads)
    left BLAS on all cores, and the user's ``threadpool_limits`` there did
    nothing."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import array_api_compat.numpy as np_xp

    from xpkmeans._backend import parallel_region

    before = _blas_threads()
    with parallel_region(np_xp):  # this thread sets (and lifts) a limit first
        pass
    seen = {}

    def other():
        with parallel_region(np_xp):
            seen["region"] = _blas_threads()
        seen["after region"] = _blas_threads()
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            seen["user"] = _blas_threads()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(20)
    assert seen["region"] and all(n == 1 for n in seen["region"])
    assert seen["after region"] == before
    assert all(n == 1 for n in seen["user"])
    assert _blas_threads() == before


def test_a_fit_in_another_thread_equals_the_fit_in_this_one():
    """The same fit, bit for bit, whichever thread runs it: BLAS on one
    thread in both (its products rounded differently on two threads)."""
    pytest.importorskip("threadpoolctl")
    from xpkmeans import KMeans

    X = np.random.default_rng(0).normal(size=(12000, 70))  # row blocks of a wide gemv

    def fit():
        return KMeans(10, random_state=2).fit(X)

    here = fit()
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        there = executor.submit(fit).result()
    np.testing.assert_array_equal(there.mean_, here.mean_)
    np.testing.assert_array_equal(there.cluster_centers_, here.cluster_centers_)


@pytest.mark.parametrize("compiled", [False, True])
def test_blocks_of_compiled_host_code_run_on_all_cores_whatever_the_library(
        compiled, monkeypatch, small_blocks):
    """Torch's blocks run in order (torch has threads of its own), unless each
    is compiled host code on one core (numba reading torch CPU tensors):
    then in threads, BLAS limited to one thread each, as NumPy's blocks."""
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as torch_xp

    from xpkmeans._backend import _threads, blas_is_limited, map_row_blocks

    monkeypatch.setattr(_threads, "n_cores", lambda: 2)
    seen = []

    def block(rows):
        seen.append((threading.get_ident(), blas_is_limited()))
        return rows

    map_row_blocks(block, 1000, 1, xp=torch_xp, device=torch.device("cpu"), compiled=compiled)

    assert len(seen) > 1
    assert (len({ident for ident, _ in seen}) == 2) is compiled
    assert all(limited is compiled for _, limited in seen) or not _threads._blas_controller()


# ------------------------------------------------------------------ packaging (bug 2)


def test_threadpoolctl_is_a_core_dependency():
    """A bare install must get the BLAS limits (4x faster on 1M x 32, k=64)."""
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert any(dep.split(">")[0].split("=")[0].strip() == "threadpoolctl"
               for dep in dependencies)
