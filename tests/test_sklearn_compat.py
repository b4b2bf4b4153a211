"""xpkmeans.KMeans is a real scikit-learn estimator when scikit-learn is installed."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import xpkmeans  # noqa: E402
from xpkmeans import KMeans  # noqa: E402

X, y = xpkmeans.make_blobs(300, 3, centers=4, random_state=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # duplicate points
@pytest.mark.filterwarnings("ignore::xpkmeans.FallbackWarning")  # hamerly on sparse data: Lloyd
@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly"])
def test_check_estimator_passes(algorithm):
    expected_failures = {
        # As for scikit-learn's own KMeans: the check shuffles the weighted
        # data, so the random initialisation differs from the repeated data.
        "check_sample_weight_equivalence_on_dense_data": "random init depends on sample order",
        "check_sample_weight_equivalence_on_sparse_data": "random init depends on sample order",
    }
    results = check_estimator(KMeans(algorithm=algorithm), on_fail=None, on_skip=None,
                              expected_failed_checks=expected_failures)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 40


def test_clone_and_params():
    km = KMeans(5, init="random", n_init=3, random_state=2)
    copy = clone(km)
    assert copy is not km and copy.get_params() == km.get_params()
    copy.set_params(n_clusters=7)
    assert copy.n_clusters == 7 and km.n_clusters == 5
    with pytest.raises(ValueError):
        km.set_params(not_a_param=1)
    assert "n_clusters=5" in repr(km)


def test_pipeline_and_grid_search():
    pipe = make_pipeline(StandardScaler(), KMeans(random_state=0))
    labels = pipe.fit_predict(X)
    assert labels.shape == (300,) and len(np.unique(labels)) == 8
    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [2, 4, 8]}, cv=3).fit(X)
    # score is the negative inertia, so more clusters always score higher
    assert search.best_params_ == {"n_clusters": 8}
    assert search.best_estimator_.cluster_centers_.shape == (8, 3)


def test_feature_names_out():
    km = KMeans(3, random_state=0).fit(X)
    assert list(km.get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]
