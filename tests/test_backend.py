"""The backend glue: each fast path equals the portable array-API path."""

import numpy as np
import pytest

from xpkmeans import _backend
from xpkmeans._backend import (
    _host,
    _numpy,
    first_equal_rows,
    host_rng,
    largest_indices,
    nearest_center_labels,
    nearest_centers,
    nearest_two_centers,
    scatter,
    segment_count,
    segment_sum,
    subtract_row,
    to_numpy,
)
from xpkmeans._backend._portable import (
    fold_candidates as fold_candidates_portable,
    largest_indices as largest_indices_portable,
    nearest_center_labels as nearest_center_labels_portable,
    nearest_two_centers as nearest_two_centers_portable,
    scatter as scatter_portable,
    segment_count as segment_count_portable,
    segment_sum as segment_sum_portable,
)


@pytest.mark.parametrize("k", [3, 12, 300])  # NumPy, 5 columns: one-hot for 3, bincount for 12, 300
@pytest.mark.parametrize("weighted", [False, True])
def test_segment_sum_fast_path_equals_portable(backend, weighted, k):
    rng = np.random.default_rng(0)
    n, d = 1000, 5
    values = backend.asarray(rng.standard_normal((n, d)))
    ids = backend.asarray(rng.integers(0, k - 1, n))  # the last segment stays empty
    weights = backend.asarray(rng.uniform(0, 2, n)) if weighted else None

    sums, totals = segment_sum(values, ids, k, weights=weights)
    ref_sums, ref_totals = segment_sum_portable(values, ids, k, weights=weights)

    backend.assert_here(sums, values.dtype)
    backend.assert_here(totals, values.dtype)
    np.testing.assert_allclose(to_numpy(sums), to_numpy(ref_sums), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(to_numpy(totals), to_numpy(ref_totals), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 7, 300])
def test_segment_count_fast_path_equals_portable_and_bincount(backend, k, monkeypatch):
    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS", 4096)  # several blocks
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    ids = np.random.default_rng(k).integers(0, max(k - 1, 1), 1000)  # the last segment empty

    counts = segment_count(backend.asarray(ids), k)
    portable = segment_count_portable(backend.asarray(ids), k)

    backend.assert_here(counts, backend.xp.int64)
    expected = np.bincount(ids, minlength=k)
    np.testing.assert_array_equal(to_numpy(counts), expected)
    np.testing.assert_array_equal(to_numpy(portable), expected)


def test_segment_sum_matches_numpy_reference(backend, monkeypatch):
    monkeypatch.setattr(_host, "_CPU_BLOCK_ELEMENTS", 64)  # many blocks
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    rng = np.random.default_rng(1)
    values = rng.standard_normal((300, 3))
    ids = rng.integers(0, 4, 300)
    weights = rng.uniform(0, 1, 300)
    expected = np.zeros((4, 3))
    np.add.at(expected, ids, values * weights[:, None])

    for fn in (segment_sum, segment_sum_portable):
        sums, totals = fn(backend.asarray(values), backend.asarray(ids), 4,
                          weights=backend.asarray(weights))
        np.testing.assert_allclose(to_numpy(sums), expected, rtol=1e-10)
        np.testing.assert_allclose(to_numpy(totals), np.bincount(ids, weights, 4), rtol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 16, 64, 65, 300])  # NumPy: scan up to 64 clusters
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nearest_center_labels_fast_path_equals_portable(backend, k, dtype):
    rng = np.random.default_rng(k)
    X = rng.integers(-3, 4, (500, 6)).astype(dtype)  # small integers: many exact ties
    centers = rng.integers(-3, 4, (k, 6)).astype(dtype)
    centers[k // 2] = centers[0]  # duplicate centres tie on every row
    X = backend.asarray(X)
    centers = backend.asarray(centers)
    half_sq_norms = 0.5 * backend.xp.sum(centers * centers, axis=1)
    shifted = subtract_row(X, X[0, :])  # the layout the EM loop uses (NumPy: column-major)
    half_sq_norms = half_sq_norms - centers @ X[0, :] - 0.5 * backend.xp.sum(X[0, :] ** 2)
    centers = centers - X[0, :]
    for block in (shifted, shifted[100:357, :]):
        labels = nearest_center_labels(block, centers, half_sq_norms)
        expected = nearest_center_labels_portable(block, centers, half_sq_norms)
        backend.assert_here(labels)
        np.testing.assert_array_equal(to_numpy(labels), to_numpy(expected))


@pytest.mark.parametrize("k", [1, 2, 16, 65])
def test_nearest_two_centers_fast_path_equals_portable(backend, k):
    rng = np.random.default_rng(k)
    X = backend.asarray(rng.integers(-3, 4, (300, 4)).astype(float))
    centers = rng.integers(-3, 4, (k, 4)).astype(float)
    centers[k // 2] = centers[0]
    centers = backend.asarray(centers)
    half_sq_norms = 0.5 * backend.xp.sum(centers * centers, axis=1)
    got = nearest_two_centers(X, centers, half_sq_norms)
    expected = nearest_two_centers_portable(X, centers, half_sq_norms)
    for value, reference in zip(got, expected):
        backend.assert_here(value)
        np.testing.assert_array_equal(to_numpy(value), to_numpy(reference))
    np.testing.assert_array_equal(to_numpy(got[0]),
                                  to_numpy(nearest_center_labels(X, centers, half_sq_norms)))
    scores = to_numpy(half_sq_norms)[None, :] - to_numpy(X) @ to_numpy(centers).T
    ordered = np.sort(scores, axis=1)
    np.testing.assert_array_equal(to_numpy(got[1]), ordered[:, 0])
    np.testing.assert_array_equal(to_numpy(got[2]), ordered[:, 1] if k > 1 else np.inf)


@pytest.mark.parametrize("indices", [[], [0], [2, 5, 9], list(range(10))])
def test_scatter_fast_path_equals_portable(backend, indices):
    values = backend.asarray(np.arange(10.0))
    positions = backend.asarray(np.asarray(indices, dtype=np.int64))
    updates = backend.asarray(-np.arange(1.0, len(indices) + 1))
    got = scatter(values, positions, updates)
    expected = scatter_portable(values, positions, updates)
    backend.assert_here(got, values.dtype)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(expected))
    reference = np.arange(10.0)
    reference[indices] = -np.arange(1.0, len(indices) + 1)
    np.testing.assert_array_equal(to_numpy(got), reference)
    np.testing.assert_array_equal(to_numpy(values), np.arange(10.0))  # not modified


def test_nearest_center_labels_takes_the_first_of_tied_centres():
    X = np.zeros((3, 2))
    centers = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    half_sq_norms = 0.5 * np.sum(centers * centers, axis=1)
    np.testing.assert_array_equal(nearest_center_labels(X, centers, half_sq_norms), [2, 2, 2])
    np.testing.assert_array_equal(
        nearest_center_labels(np.asfortranarray(X), centers[::-1], half_sq_norms[::-1]), [0, 0, 0]
    )


@pytest.mark.parametrize("k", [1, 2, 7, 40])
def test_first_equal_rows_names_the_first_of_each_set_of_equal_rows(backend, k):
    rng = np.random.default_rng(k)
    distinct = rng.integers(-2, 3, (k, 3)).astype(np.float64)  # small integers: repeats too
    rows = distinct[rng.integers(0, k, k)]
    expected = [next(i for i in range(k) if np.array_equal(rows[i], row)) for row in rows]
    first = first_equal_rows(backend.asarray(rows))
    np.testing.assert_array_equal(backend.to_numpy(first), expected)
    assert backend.to_numpy(first_equal_rows(backend.asarray(rows[:0]))).shape == (0,)


def test_nearest_centers_sends_equal_centres_to_the_first(backend):
    """A matrix product may round equal centres' scores apart by their
    column: torch's product without the compiled kernels sent 49 of 2000
    points to the later of two equal centres."""
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (2000, 13))
    centers = rng.normal(0, 1, (6, 13))
    centers[5] = centers[1]
    labels = backend.to_numpy(nearest_centers(backend.asarray(X), backend.asarray(centers)))
    distances = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2)
    assert not np.any(labels == 5)
    np.testing.assert_array_equal(labels, np.argmin(distances, axis=1))


@pytest.mark.parametrize("count", [1, 3, 10, 40])
def test_largest_indices_fast_path_equals_portable(backend, count):
    rng = np.random.default_rng(count)
    for values in (rng.standard_normal(40), rng.integers(0, 4, 40).astype(float)):  # ties
        values = backend.asarray(values)
        chosen = to_numpy(largest_indices(values, count))
        expected = to_numpy(largest_indices_portable(values, count))
        assert chosen.shape == (count,)
        np.testing.assert_array_equal(chosen, expected)


def test_fold_candidates_fast_path_equals_portable():
    """NumPy folds a block of greedy k-means++'s products in place, bit for bit
    as the portable twin: negative sums clipped, a first centre (inf)."""
    rng = np.random.default_rng(0)
    x_sq = rng.uniform(0, 50, (300, 1)).astype(np.float32)
    rows_sq = rng.uniform(0, 50, (1, 7)).astype(np.float32)
    for closest in (np.full((300, 1), np.inf, np.float32), rng.uniform(0, 30, (300, 1))):
        closest = closest.astype(np.float32)
        cross = rng.uniform(-110, 10, (300, 7)).astype(np.float32)
        expected = fold_candidates_portable(cross, x_sq, rows_sq, closest)
        got = _numpy.fold_candidates(cross.copy(), x_sq, rows_sq, closest)
        assert (expected == 0).any() and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_to_numpy_round_trip(backend):
    values = np.arange(6.0).reshape(2, 3)
    out = to_numpy(backend.asarray(values))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_from_host_gives_the_values_of_asarray_on_the_device(backend, dtype):
    """On torch CUDA through pinned memory (the host does not wait for the
    device): the values, dtype and device of ``asarray``, from strided rows."""
    source = np.arange(24).reshape(4, 6)[:, ::2].astype(dtype)
    out = _host.from_host(source, xp=backend.xp, device=backend.device)
    backend.assert_here(out, getattr(backend.xp, dtype))
    np.testing.assert_array_equal(to_numpy(out), source)
    if dtype != "bool":
        widened = _host.from_host(source, xp=backend.xp, device=backend.device,
                                  dtype=backend.xp.float64)
        backend.assert_here(widened, backend.xp.float64)
        np.testing.assert_array_equal(to_numpy(widened), source.astype(np.float64))


def test_host_rng_accepts_seeds_and_generators():
    assert host_rng(3).random() == np.random.default_rng(3).random()
    generator = np.random.default_rng(5)
    assert host_rng(generator) is generator
    assert isinstance(host_rng(np.random.RandomState(0)), np.random.Generator)
    with pytest.raises(TypeError, match="random_state"):
        host_rng("seed")
    with pytest.raises(ValueError, match="random_state"):
        host_rng(-1)


def test_row_chunk_size_bounds_block():
    import array_api_compat.numpy as xp

    rows = _backend.row_chunk_size(10**6, 1024, xp=xp, device="cpu")
    assert 1 <= rows and rows * 1024 <= _host._CPU_BLOCK_ELEMENTS
    assert _backend.row_chunk_size(5, 3, xp=xp, device="cpu") == 5
    # very wide blocks keep a floor of rows, still far from n x n
    assert _backend.row_chunk_size(20_000, 20_000, xp=xp, device="cpu") == _host._MIN_BLOCK_ROWS
    # within a hard cap: 256 rows of a silhouette on 1M points had held 2 GB a temporary
    rows = _backend.row_chunk_size(10**6, 10**6, xp=xp, device="cpu")
    assert 1 <= rows <= 16 and rows * 10**6 <= _host._MAX_BLOCK_ELEMENTS
    assert _backend.row_chunk_size(10**9, 10**9, xp=xp, device="cpu") == 1


@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float32", "float64")])
def test_subtract_row_equals_broadcast_subtraction(backend, monkeypatch, dtypes):
    monkeypatch.setattr(_numpy, "_TRANSPOSE_BLOCK_ELEMENTS", 12)  # blocks of 4 rows
    monkeypatch.setattr(_host, "_MIN_BLOCK_ROWS", 1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3)).astype(dtypes[0])
    row = rng.standard_normal(3).astype(dtypes[1])
    out = subtract_row(backend.asarray(X), backend.asarray(row))
    backend.assert_here(out, getattr(backend.xp, dtypes[1]))
    np.testing.assert_array_equal(to_numpy(out), X - row)


def test_take_rows_equals_take_on_any_layout(backend):
    from xpkmeans._backend import subtract_row, take_rows

    X = np.arange(40.0).reshape(10, 4)
    indices = backend.asarray(np.array([7, 0, 7, 3]))
    for values in (backend.asarray(X), subtract_row(backend.asarray(X), backend.asarray(X[0]))):
        rows = take_rows(values, indices)
        backend.assert_here(rows, values.dtype)
        expected = backend.xp.take(values, indices, axis=0)
        np.testing.assert_array_equal(to_numpy(rows), to_numpy(expected))


def test_parallel_region_limits_blas_once_and_restores_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import array_api_compat.numpy as xp

    def blas_threads():
        return [m["num_threads"] for m in threadpoolctl.threadpool_info()
                if m["user_api"] == "blas"]

    before = blas_threads()
    assert before, "threadpoolctl finds no BLAS behind NumPy"
    with _backend.parallel_region(xp):
        assert all(n == 1 for n in blas_threads())
        with _backend.parallel_region(xp):  # nested: free, and leaves the limit alone
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_column_sums_fast_path_equals_portable_and_an_exact_sum(backend, small_blocks, dtype):
    """float64 sums of row blocks, far from the origin: each equals the
    exactly rounded sum (math.fsum) to float64 rounding, on every backend."""
    import math

    from xpkmeans._backend import _portable, column_sums

    rng = np.random.default_rng(0)
    X = (1000.0 + rng.standard_normal((203, 3))).astype(dtype)
    exact = np.array([math.fsum(X[:, j].astype(np.float64)) for j in range(3)])
    sums = backend.to_numpy(column_sums(backend.asarray(X)))
    np.testing.assert_allclose(sums, exact, rtol=1e-14)
    portable = _portable.column_sums_of_block(np.asarray(X), np.float64)
    np.testing.assert_allclose(portable, exact, rtol=1e-14)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_run_steps_applies_the_step_count_times(count):
    state = (np.zeros(2), np.ones(1))
    final = _backend.run_steps(lambda s: (s[0] + 1, s[1] * 2), state, count)
    np.testing.assert_array_equal(final[0], [count, count])
    np.testing.assert_array_equal(final[1], [2**count])


def test_cuda_graphs_are_for_torch_cuda_tensors_only_and_can_be_turned_off(monkeypatch):
    torch = pytest.importorskip("torch")
    from xpkmeans._backend import _gpu

    monkeypatch.delenv("XPKMEANS_CUDA_GRAPHS", raising=False)
    assert not _gpu.graphs_handle((torch.zeros(2),))
    assert not _gpu.graphs_handle((np.zeros(2),))
    if not torch.cuda.is_available():
        pytest.skip("the CUDA half needs a CUDA device")
    on_cuda = (torch.zeros(2, device="cuda"),)
    assert _gpu.graphs_handle(on_cuda)
    monkeypatch.setenv("XPKMEANS_CUDA_GRAPHS", "0")
    assert not _gpu.graphs_handle(on_cuda)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
def test_cuda_graphs_never_capture_a_step_over_sparse_data(monkeypatch):
    """Greedy k-means++ over sparse data gathers its candidates' rows through
    host copies of the row pointers: its loop runs eagerly, never captured
    (CPU tensors stand in for CUDA ones here)."""
    torch = pytest.importorskip("torch")
    from xpkmeans import kmeans_plusplus
    from xpkmeans._backend import _gpu

    class Captured(Exception):
        pass

    def capture(step, state, count):
        raise Captured

    monkeypatch.delenv("XPKMEANS_CUDA_GRAPHS", raising=False)
    monkeypatch.setattr(_gpu, "_is_cuda_tensor", lambda value: isinstance(value, torch.Tensor))
    monkeypatch.setattr(_gpu, "run_steps_in_graph", capture)
    rng = np.random.default_rng(0)
    X = np.where(rng.random((60, 5)) < 0.5, 0.0, rng.normal(size=(60, 5)))
    assert _gpu.graphs_handle((torch.zeros(2),), reads=(torch.asarray(X),))
    with pytest.raises(Captured):  # dense: the loop would be captured
        kmeans_plusplus(torch.asarray(X), 4, random_state=0)
    sparse = torch.asarray(X).to_sparse_csr()
    assert not _gpu.graphs_handle((torch.zeros(2),), reads=(sparse,))
    _, indices = kmeans_plusplus(sparse, 4, random_state=0)
    np.testing.assert_array_equal(indices.numpy(), kmeans_plusplus(X, 4, random_state=0)[1])


# ------------------------------------------------------------------ the process around a fit


def _fit_in_child(queue):
    from xpkmeans import KMeans, make_blobs

    X, _ = make_blobs(20_000, 8, centers=5, random_state=1)
    queue.put(float(KMeans(5, random_state=0).fit(X).inertia_))


def test_a_forked_child_fits_after_its_parent_did():
    """The parent's thread pool is gone in a forked child: its work had
    waited for threads that do not exist there (the child hung)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this system")
    from xpkmeans import KMeans, make_blobs

    X, _ = make_blobs(20_000, 8, centers=5, random_state=1)
    expected = float(KMeans(5, random_state=0).fit(X).inertia_)  # the pool now has threads
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_in_child, args=(queue,))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0, "the forked child did not finish its fit"
    assert queue.get(timeout=5) == pytest.approx(expected)


def _blas_threads_in_child(queue):
    import threadpoolctl

    queue.put([m["num_threads"] for m in threadpoolctl.threadpool_info()
               if m["user_api"] == "blas"])


def test_a_child_forked_while_another_thread_fits_gets_blas_back():
    """A region open in another thread at the fork had left the child's BLAS
    on one thread for good: the region does not exist there to lift it."""
    import multiprocessing
    import threading

    threadpoolctl = pytest.importorskip("threadpoolctl")
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this system")
    import array_api_compat.numpy as xp

    before = [m["num_threads"] for m in threadpoolctl.threadpool_info()
              if m["user_api"] == "blas"]
    opened, release = threading.Event(), threading.Event()

    def fitting():
        with _backend.parallel_region(xp):
            opened.set()
            release.wait(30)

    thread = threading.Thread(target=fitting)
    thread.start()
    try:
        assert opened.wait(10)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_blas_threads_in_child, args=(queue,))
        child.start()
        in_child = queue.get(timeout=60)
        child.join(60)
    finally:
        release.set()
        thread.join(30)
    assert in_child == before


def test_env_flags_take_on_off_words_and_name_the_variable(monkeypatch):
    for value, expected in [("1", True), ("ON", True), ("yes", True), ("0", False),
                            ("off", False), ("False", False), ("", True)]:
        monkeypatch.setenv("XPKMEANS_TEST_FLAG", value)
        assert _host.env_flag("XPKMEANS_TEST_FLAG", True) is expected
    monkeypatch.delenv("XPKMEANS_TEST_FLAG")
    assert _host.env_flag("XPKMEANS_TEST_FLAG", False) is False
    monkeypatch.setenv("XPKMEANS_TEST_FLAG", "2")
    with pytest.raises(ValueError, match="^`XPKMEANS_TEST_FLAG` must be 1 or 0"):
        _host.env_flag("XPKMEANS_TEST_FLAG", False)


def test_cores_are_those_the_process_may_run_on(monkeypatch):
    import os

    from xpkmeans._backend import _threads

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this system")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert _threads.n_cores.__wrapped__() == 1


def test_kernels_compile_without_a_writable_cache():
    """numba refuses ``cache=True`` where it finds nowhere to write (a
    read-only install without a writable home): the import had failed."""
    from xpkmeans._backend import _numba

    def decorator(cache, **options):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return lambda function: ("compiled", function, options)

    assert _numba._cached(decorator, len, nogil=True) == ("compiled", len, {"nogil": True})


def test_numba_disable_jit_takes_the_portable_path():
    """With ``NUMBA_DISABLE_JIT=1`` (debugging, coverage) every float64 fit
    had failed in an intrinsic that has no Python form."""
    import subprocess
    import sys

    pytest.importorskip("numba")
    script = (
        "import numpy as np, xpkmeans; from xpkmeans._backend import _numba\n"
        "X, _ = xpkmeans.make_blobs(500, 4, centers=3, random_state=0)\n"
        "print(_numba.AVAILABLE, xpkmeans.KMeans(3, random_state=0).fit(X).inertia_)\n"
    )
    import os

    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    available, inertia = done.stdout.split()
    assert available == "False" and float(inertia) > 0
