"""Initial centres: k-means++, k-means|| and random, the same on every backend for one seed."""

import numpy as np
import pytest

import xpkmeans
from xpkmeans import KMeans, kmeans_plusplus

X, _ = xpkmeans.make_blobs(400, 2, centers=5, cluster_std=0.5, random_state=3)

# Data of the pinned centres below: four shifted Gaussian groups, made by NumPy.
_pin_rng = np.random.default_rng(2024)
X_PIN = _pin_rng.normal(size=(300, 3)) + _pin_rng.integers(0, 4, size=(300, 1)) * 3.0
W_PIN = _pin_rng.uniform(0.1, 2.0, size=300)

# Rows chosen by k-means++ before its uniforms were drawn in one call (commit
# 37f047a: one rng.random(n_local_trials) per centre). The same on numpy,
# array_api_strict (both devices) and torch, float32 and float64.
PINNED_KMEANS_PLUSPLUS = {
    # (seed, weighted, n_clusters, n_local_trials): indices
    (0, False, 7, None): [191, 73, 182, 225, 245, 221, 261],
    (0, True, 12, 1): [192, 73, 22, 5, 244, 268, 185, 220, 170, 281, 243, 0],
    (1, False, 12, 1): [153, 283, 39, 286, 94, 125, 250, 127, 175, 7, 224, 162],
    (1, True, 7, None): [155, 42, 126, 7, 221, 144, 64],
    (7, False, 7, None): [187, 67, 261, 233, 82, 130, 298],
    (7, True, 12, 1): [189, 259, 230, 57, 79, 255, 0, 238, 227, 142, 93, 86],
}


def test_kmeans_plusplus_picks_rows_of_x(backend):
    centers, indices = kmeans_plusplus(backend.asarray(X), 5, random_state=0)
    backend.assert_here(centers, backend.xp.float64)
    backend.assert_here(indices)
    indices = backend.to_numpy(indices)
    assert len(set(indices.tolist())) == 5
    np.testing.assert_array_equal(backend.to_numpy(centers), X[indices])


def test_kmeans_plusplus_same_on_every_backend(backend):
    _, expected = kmeans_plusplus(X, 6, random_state=4)
    _, indices = kmeans_plusplus(backend.asarray(X), 6, random_state=4)
    np.testing.assert_array_equal(backend.to_numpy(indices), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(PINNED_KMEANS_PLUSPLUS, key=str))
def test_kmeans_plusplus_keeps_the_centres_of_one_draw_per_centre(backend, dtype, case):
    seed, weighted, n_clusters, n_local_trials = case
    weights = backend.asarray(W_PIN.astype(dtype)) if weighted else None
    _, indices = kmeans_plusplus(
        backend.asarray(X_PIN.astype(dtype)), n_clusters, sample_weight=weights,
        random_state=seed, n_local_trials=n_local_trials,
    )
    assert backend.to_numpy(indices).tolist() == PINNED_KMEANS_PLUSPLUS[case]


def test_kmeans_plusplus_same_in_small_blocks(backend, small_blocks):
    _, indices = kmeans_plusplus(backend.asarray(X_PIN), 7, random_state=0)
    assert backend.to_numpy(indices).tolist() == PINNED_KMEANS_PLUSPLUS[(0, False, 7, None)]


# ------------------------------------------------------------------ host round trips
# Every torch call goes through a TorchFunctionMode; these are the calls that
# copy to the host (a sync on CUDA) or give a data-dependent shape.
_SYNCING_CALLS = {
    "item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__",
    "__array__", "nonzero", "unique", "masked_select", "argwhere",
}


class _TorchCallLog:
    """Names of the torch functions and tensor methods called inside ``with``."""

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        calls = self.calls = []

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                calls.append(getattr(func, "__name__", str(func)))
                return func(*args, **(kwargs or {}))

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)

    def count(self, names):
        return sum(call in names for call in self.calls)


def _torch_call_log(initialiser, n_clusters, weighted):
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp

    from xpkmeans._backend import host_rng

    data = torch.asarray(X_PIN, dtype=torch.float32)
    weights = torch.asarray(W_PIN, dtype=torch.float32) if weighted else None
    with _TorchCallLog() as log:
        initialiser(data, n_clusters, sample_weight=weights, rng=host_rng(0), xp=xp)
    return log


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_never_waits_for_the_device(weighted):
    """No host copy and no data-dependent shape in the loop over centres, and
    one host-to-device move of the uniforms, whatever the number of centres."""
    from xpkmeans._init import _kmeans_plusplus

    few = _torch_call_log(_kmeans_plusplus, 3, weighted)
    many = _torch_call_log(_kmeans_plusplus, 12, weighted)
    assert [c for c in many.calls if c in _SYNCING_CALLS] == []
    assert len(many.calls) > len(few.calls) > 0  # the log sees the loop
    moves = {"asarray", "tensor", "as_tensor", "from_numpy"}
    assert many.count(moves) == few.count(moves) <= 1


def test_kmeans_plusplus_covers_separated_blobs():
    """Each of five tight, far-apart blobs gets exactly one centre."""
    _, truth = xpkmeans.make_blobs(400, 2, centers=5, cluster_std=0.5, random_state=3)
    for seed in range(5):
        _, indices = kmeans_plusplus(X, 5, random_state=seed)
        assert sorted(truth[indices].tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_plusplus_respects_n_local_trials():
    a = kmeans_plusplus(X, 5, random_state=1, n_local_trials=1)[1]
    b = kmeans_plusplus(X, 5, random_state=1, n_local_trials=1)[1]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_local_trials"):
        kmeans_plusplus(X, 5, n_local_trials=0)
    with pytest.raises(ValueError, match="n_samples=400 should be >= n_clusters=401"):
        kmeans_plusplus(X, 401)


def test_greedy_trials_lower_the_start_potential():
    """More local trials give a lower potential on average (the point of greedy k-means++)."""
    def potential(centers):
        return ((X[:, None] - centers[None]) ** 2).sum(axis=2).min(axis=1).sum()

    plain = [potential(kmeans_plusplus(X, 8, random_state=s, n_local_trials=1)[0])
             for s in range(20)]
    greedy = [potential(kmeans_plusplus(X, 8, random_state=s)[0]) for s in range(20)]
    assert np.mean(greedy) < np.mean(plain)


def test_random_init_draws_distinct_rows(backend):
    km = KMeans(5, init="random", n_init=1, max_iter=1, random_state=0)
    km.fit(backend.asarray(X))
    expected = KMeans(5, init="random", n_init=1, max_iter=1, random_state=0).fit(X)
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), expected.cluster_centers_)


def test_random_init_needs_enough_weighted_points():
    weights = np.zeros(len(X))
    weights[:3] = 1
    with pytest.raises(ValueError, match="positive sample_weight"):
        KMeans(5, init="random").fit(X, sample_weight=weights)
