"""The table model as a method of benchmark B8 (``benchmarks/b8_tables.py --method``).

    python benchmarks/b8_tables.py --method umeta.table_method:load \\
        --method-option checkpoint=PATH --out results.json

:func:`load` builds a :class:`TableMethod`: ``cluster(x, k)`` is `MetaClusterer` on the table
(its default for a table model: spectral clustering of the model's row embeddings;
``--method-option algorithm=kmeans`` for k-means), ``score(x)`` the model's outlier logit of
each row (`MetaAnomalyDetector`, fitted on the table itself: no labels), and ``training_tables`` the
exact list of real tables the model trained on, as its checkpoint records it, so that B8 leaves
them and their near-copies out.
"""

from __future__ import annotations

import numpy as np

from umeta.build import load_learner, resolve_device
from umeta.checkpoint import read_checkpoint
from umeta.errors import UmetaError
from umeta.estimators import MetaAnomalyDetector, MetaClusterer
from umeta.pretrained import BUILTIN, builtin_checkpoint

__all__ = ["TableMethod", "load"]


class TableMethod:
    """A table model behind B8's method interface.

    Parameters
    ----------
    checkpoint : str
        A table model's checkpoint (training or exported), or ``"builtin"``.
    device : str
        Where it runs ("cpu", "cuda", "auto").
    seed : int
        Seeds k-means and the context sample of long tables.
    algorithm : {"auto", "kmeans", "spectral"}
        `MetaClusterer`'s clustering step ("auto": its default).

    Attributes
    ----------
    name, training : str
        The method's row names in the results file.
    training_tables : list of str
        Keys of the real tables the model trained on.
    """

    name = "umeta-tables"

    def __init__(self, checkpoint: str = BUILTIN, device: str = "cpu", seed: int = 0,
                 algorithm: str = "auto") -> None:
        path = builtin_checkpoint("tables") if checkpoint == BUILTIN else checkpoint
        progress = read_checkpoint(path)[1].get("progress", {})
        if "training_tables" not in progress:
            raise UmetaError(f"checkpoint {str(path)!r} records no training_tables; B8 needs a "
                             f"table model trained by umeta train (data.dataset 'tables' or "
                             f"'table-priors')")
        self.training_tables = list(progress["training_tables"])
        self.learner = load_learner(path, resolve_device(device))
        self.seed = int(seed)
        self.algorithm = algorithm
        self.training = (f"meta-trained: synthetic priors + {len(self.training_tables)} real "
                         f"tables ({progress.get('step', '?')} steps)")

    def cluster(self, x: np.ndarray, k: int) -> np.ndarray:
        """Cluster labels (N,) of table ``x`` (N, D) into ``k`` clusters."""
        return MetaClusterer(self.learner, int(k), random_state=self.seed,
                             algorithm=self.algorithm).fit(x).labels_

    def score(self, x: np.ndarray) -> np.ndarray:
        """Outlier scores (N,) of the rows of table ``x`` (N, D), higher = more anomalous."""
        return -MetaAnomalyDetector(self.learner, random_state=self.seed).fit(x).training_scores_


def load(checkpoint: str = BUILTIN, device: str = "cpu", seed: str | int = 0,
         algorithm: str = "auto") -> TableMethod:
    """B8's factory: ``--method-option key=value`` arrive as text.

    Examples
    --------
    >>> load("missing.safetensors")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    umeta.errors.UmetaError: checkpoint 'missing.safetensors' not found; ...
    """
    return TableMethod(checkpoint, device, int(seed), algorithm)
