"""xpkmeans: K-Means written once against the Python array API.

The same EM code runs on NumPy, CuPy, PyTorch and any array-API library;
results stay in the input's namespace and on its device.
"""

from ._init import kmeans_plusplus
from ._kmeans import KMeans, k_means
from ._lloyd import LloydStep, e_step, lloyd_steps, m_step
from ._sklearn_compat import ConvergenceWarning, NotFittedError
from .datasets import make_blobs

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "KMeans",
    "LloydStep",
    "NotFittedError",
    "e_step",
    "k_means",
    "kmeans_plusplus",
    "lloyd_steps",
    "m_step",
    "make_blobs",
]
