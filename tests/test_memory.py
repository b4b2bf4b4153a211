"""Memory stays bounded: no (n_samples x n_clusters) matrix is ever built."""

import tracemalloc

import numpy as np
import pytest

from xpkmeans import KMeans


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1
def test_fit_one_million_points_1024_clusters_in_bounded_memory():
    n, d, k = 1_000_000, 8, 1024
    X = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    init = X[:k].copy()
    full_matrix_bytes = n * k * 4  # 4 GB: what a naive E step would allocate
    data_bytes = X.nbytes  # 32 MB

    tracemalloc.start()
    try:
        km = KMeans(k, init=init, max_iter=1, tol=0).fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert km.labels_.shape == (n,) and km.n_iter_ == 1
    # a centred copy of X, labels and small blocks: a few copies of the data at most
    assert peak < 6 * data_bytes, f"peak {peak / 2**20:.0f} MiB"
    assert peak < full_matrix_bytes / 20
