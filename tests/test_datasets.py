"""make_blobs: like scikit-learn's, in any namespace and on any device."""

import numpy as np
import pytest

from xpkmeans import make_blobs


def test_shapes_labels_and_centers(backend):
    X, y, centers = make_blobs(103, 3, centers=4, random_state=0, return_centers=True,
                               xp=backend.xp, device=backend.device)
    default = backend.xp.__array_namespace_info__().default_dtypes(device=backend.device)
    backend.assert_here(X, default["real floating"])
    backend.assert_here(y)
    backend.assert_here(centers)
    X, y, centers = backend.to_numpy(X), backend.to_numpy(y), backend.to_numpy(centers)
    assert X.shape == (103, 3) and centers.shape == (4, 3)
    assert sorted(np.bincount(y).tolist()) == [25, 26, 26, 26]
    assert np.all((centers >= -10) & (centers <= 10))
    for j in range(4):  # every point lies near its own centre
        assert np.linalg.norm(X[y == j].mean(axis=0) - centers[j]) < 1.0


def test_same_seed_same_data_on_every_backend(backend):
    expected, _ = make_blobs(50, 2, random_state=7)
    X, _ = make_blobs(50, 2, random_state=7, xp=backend.xp, device=backend.device,
                      dtype=backend.xp.float32)
    np.testing.assert_allclose(backend.to_numpy(X), expected.astype(np.float32))


def test_explicit_centers_sizes_and_std():
    centers = np.array([[0.0, 0.0], [100.0, 100.0]])
    X, y = make_blobs([10, 30], centers=centers, cluster_std=[0.0, 1.0], shuffle=False,
                      random_state=0)
    assert y.tolist() == [0] * 10 + [1] * 30
    np.testing.assert_array_equal(X[:10], 0.0)
    assert np.abs(X[10:].mean(axis=0) - 100).max() < 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        make_blobs(0)
    with pytest.raises(ValueError, match="cluster_std"):
        make_blobs(10, cluster_std=-1.0)
    with pytest.raises(ValueError, match="centers.*rows"):
        make_blobs([5, 5], centers=np.zeros((3, 2)))


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"n_samples": 1e4}, TypeError, "^`n_samples` must be an int"),
    ({"n_samples": []}, ValueError, "^`n_samples` must list at least one blob size"),
    ({"n_features": 0}, ValueError, "^`n_features` must be >= 1"),
    ({"n_features": 2.0}, TypeError, "^`n_features` must be an int"),
    ({"cluster_std": [1.0, 2.0]}, ValueError, "^`cluster_std` must be a number or one per centre"),
    ({"center_box": (10, -10)}, ValueError, "^`center_box` must be finite with low <= high"),
    ({"center_box": 5}, ValueError, "^`center_box` must be two numbers"),
    ({"n_samples": [10, 5], "centers": 3}, ValueError, "^`centers`=3 but `n_samples` lists 2"),
    ({"dtype": np.int64}, TypeError, "^`dtype` must be a real floating dtype"),
    ({"dtype": "int32"}, TypeError, "^`dtype` must be a real floating dtype"),
    ({"xp": "numpy"}, TypeError, "^`xp` must be an array namespace"),
])
def test_each_bad_argument_is_named(kwargs, error, words):
    with pytest.raises(error, match=words):
        make_blobs(**kwargs)


def test_a_library_module_or_a_dtype_name_stands_for_its_namespace_and_dtype():
    torch = pytest.importorskip("torch")
    X, y = make_blobs(20, 3, xp=torch, random_state=0)
    X_np, y_np = make_blobs(20, 3, dtype="float32", random_state=0)
    assert isinstance(X, torch.Tensor) and X.dtype == torch.float32 and X_np.dtype == np.float32
    np.testing.assert_array_equal(X.numpy(), X_np)
    np.testing.assert_array_equal(y.numpy(), y_np)
    with pytest.raises(TypeError, match="^`dtype` must be a real floating dtype of `xp`"):
        make_blobs(20, xp=torch, dtype=np.float32)  # a NumPy dtype for torch


def test_blob_sizes_with_their_number_of_centres():
    X, y = make_blobs([10, 5], centers=2, random_state=0)
    assert X.shape == (15, 2) and np.bincount(y).tolist() == [10, 5]
