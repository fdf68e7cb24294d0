"""umeta: meta-unsupervised learning for PyTorch.

Meta-train on many tasks (labelled episodes or tasks built from unlabeled data), then adapt to a
new, unlabeled data set to cluster it, embed it or score its anomalies.
"""

from umeta.errors import UmetaError

__version__ = "0.1.0"
__all__ = ["UmetaError", "__version__"]
