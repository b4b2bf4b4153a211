"""xpkmeans: K-Means written once against the Python array API.

The same EM code runs on NumPy, CuPy, PyTorch and any array-API library;
results stay in the input's namespace and on its device. Plots live in
``xpkmeans.plotting`` (needs matplotlib; imported on demand).
"""

from ._init import kmeans_plusplus
from ._kmeans import KMeans, k_means
from ._lloyd import LloydStep, e_step, lloyd_steps, m_step
from ._minibatch import MiniBatchKMeans
from ._streaming import RowBlocks
from ._sklearn_compat import ConvergenceWarning, NotFittedError
from .datasets import make_blobs
from .metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)
from .model_selection import ClusterSelection, select_n_clusters

__version__ = "0.1.0"

__all__ = [
    "ClusterSelection",
    "ConvergenceWarning",
    "KMeans",
    "LloydStep",
    "MiniBatchKMeans",
    "NotFittedError",
    "RowBlocks",
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "e_step",
    "k_means",
    "kmeans_plusplus",
    "lloyd_steps",
    "m_step",
    "make_blobs",
    "select_n_clusters",
    "silhouette_samples",
    "silhouette_score",
]
