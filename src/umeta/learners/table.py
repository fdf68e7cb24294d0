"""The table learner: meta-learns, across many tables, to embed rows so that clusters separate
and to score outliers, with a `umeta.models.table_encoder.TableEncoder` backbone.

Meta-loss of a `TableBatch` (every task a whole table, its rows the context):

* **clusters**: each table's row embeddings are centred and scaled to a mean squared norm of 1
  (so that no table can lower its loss by growing), the centroid of each known cluster is taken,
  and each row is classified by ``softmax(-|z - centroid|^2 / temperature)``: cross-entropy
  against its cluster (rows of no cluster are left out). It asks for what k-means needs:
  clusters tight around their means and far from each other.
* **outliers**: the outlier logit of each row, binary cross-entropy against the known outlier
  flags, the outliers and the inliers of a table weighted half and half (balanced whatever the
  contamination).

Each term is the mean over the tables that have it; ``accuracy`` is the share of rows whose
nearest centroid is their own cluster's.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.data.table_priors import MAX_CLUSTERS
from umeta.errors import UmetaError
from umeta.learners.base import LEARNERS, Learner, MetaLoss
from umeta.models.table_encoder import TableContext, TableEncoder, plain_scores
from umeta.progress import progress_bar
from umeta.tasks.tables import TableBatch

__all__ = ["TableLearner", "cluster_loss", "outlier_loss"]


def _task_mean(per_row: Tensor, weight: Tensor) -> Tensor:
    """Mean over rows (weights (T, N)) per task -> (T,)."""
    return (per_row * weight).sum(1) / weight.sum(1).clamp(min=1e-12)


def cluster_loss(z: Tensor, y: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-task centroid cross-entropy and accuracy (module docstring).

    Parameters
    ----------
    z : Tensor of shape (T, N, e)
    y : Tensor of shape (T, N), int64; -1 = no cluster
    temperature : float

    Returns
    -------
    (loss (T,), accuracy (T,))

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[[0.0], [0.1], [5.0], [5.1]]])
    >>> loss, acc = cluster_loss(z, torch.tensor([[0, 0, 1, 1]]), 0.1)
    >>> float(loss) < 1e-3, float(acc)
    (True, 1.0)
    """
    valid = (y >= 0).float()
    count = valid.sum(1, keepdim=True).clamp(min=1)
    mean = (z * valid[..., None]).sum(1, keepdim=True) / count[..., None]
    centred = z - mean
    scale = ((centred.square().sum(-1) * valid).sum(1, keepdim=True) / count).sqrt()
    zn = centred / (scale[..., None] + 1e-6)
    k = int(y.max().clamp(min=0)) + 1
    onehot = F.one_hot(y.clamp(min=0), k).float() * valid[..., None]  # (T, N, K)
    sizes = onehot.sum(1)  # (T, K)
    centroids = onehot.transpose(1, 2) @ zn / sizes.clamp(min=1)[..., None]  # (T, K, e)
    dist = (zn.square().sum(-1, keepdim=True) + centroids.square().sum(-1)[:, None]
            - 2 * zn @ centroids.transpose(1, 2))
    logits = (-dist / temperature).masked_fill(sizes[:, None] == 0, -1e9)
    ce = F.cross_entropy(logits.transpose(1, 2), y.clamp(min=0), reduction="none")
    hit = (logits.argmax(-1) == y).float()
    return _task_mean(ce, valid), _task_mean(hit, valid)


def outlier_loss(logit: Tensor, outlier: Tensor) -> Tensor:
    """Per-task balanced binary cross-entropy of outlier logits (T, N) against flags (T, N).

    Examples
    --------
    >>> import torch
    >>> logit = torch.tensor([[-5.0, -5.0, 5.0]])
    >>> float(outlier_loss(logit, torch.tensor([[False, False, True]]))) < 0.01
    True
    """
    out = outlier.float()
    return 0.5 * (_task_mean(F.softplus(-logit), out) + _task_mean(F.softplus(logit), 1 - out))


@LEARNERS.register("table")
class TableLearner(Learner):
    """Meta-learned clustering and outlier scoring of whole tables (module docstring).

    Parameters
    ----------
    backbone : TableEncoder
    temperature : float
        Of the centroid cross-entropy (on embeddings of mean squared norm 1).
    cluster_weight, outlier_weight : float
        Weights of the two terms.

    Examples
    --------
    >>> import torch
    >>> from umeta.models.table_encoder import TableEncoder
    >>> from umeta.tasks.tables import TableTasks
    >>> from umeta.data.table_sets import TableCollection
    >>> learner = TableLearner(TableEncoder(hidden=8, row_width=16, embed_dim=4, heads=2))
    >>> tasks = TableTasks(TableCollection([]), max_rows=64, max_columns=4, real_share=0.0)
    >>> out = learner.meta_loss(tasks.sample(2))
    >>> bool(torch.isfinite(out.loss))
    True
    >>> learner.embed(torch.randn(50, 3)).shape  # 4 learned numbers, 2 weighted values a column
    torch.Size([50, 10])
    """

    batch_type = TableBatch
    graphable = False
    compile_refusal = ("the table learner's tables change shape every step; set "
                       "run.compile=false")
    #: The inputs this learner takes: whole tables (N, D), not images.
    input_kind: ClassVar[str] = "tables"

    def __init__(self, backbone: TableEncoder, temperature: float = 0.25,
                 cluster_weight: float = 1.0, outlier_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(backbone, TableEncoder):
            raise UmetaError(f"the table learner needs model.backbone = 'table_encoder'; got "
                             f"{type(backbone).__name__}")
        if temperature <= 0 or min(cluster_weight, outlier_weight) < 0:
            raise UmetaError(f"table learner: temperature must be > 0 and the weights >= 0; got "
                             f"{temperature}, {cluster_weight}, {outlier_weight}")
        self.backbone = backbone
        self.temperature = float(temperature)
        self.cluster_weight = float(cluster_weight)
        self.outlier_weight = float(outlier_weight)

    def meta_loss(self, batch: TableBatch) -> MetaLoss:
        """Cluster + outlier loss of a `TableBatch` (module docstring)."""
        if not isinstance(batch, TableBatch):
            raise UmetaError(f"the table learner trains on TableBatch tasks (tasks.builder = "
                             f"'tables'); got {type(batch).__name__}")
        z, logit = self.backbone(batch.x)
        ce, accuracy = cluster_loss(z, batch.y, self.temperature)
        bce = outlier_loss(logit, batch.outlier)
        clusters, outliers = batch.cluster_task.float(), batch.outlier_task.float()
        loss = (self.cluster_weight * (ce * clusters).sum() / clusters.sum().clamp(min=1)
                + self.outlier_weight * (bce * outliers).sum() / outliers.sum().clamp(min=1))
        acc = (accuracy * clusters).sum() / clusters.sum().clamp(min=1)
        return MetaLoss(loss, acc.detach())

    # -- one new table ------------------------------------------------------------------------

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None) -> Any:
        raise UmetaError("the table learner reads whole tables, not few-shot episodes; use "
                         "umeta cluster / detect / embed on a table")

    @contextlib.contextmanager
    def _evaluating(self):
        """Eval mode and no gradients for the block; the mode is put back after it."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def encode_table(self, x: Tensor, seed: int = 0) -> tuple[Tensor, Tensor, TableContext]:
        """One table x (N, D) -> (embeddings (N, e), outlier logits (N,), its context), in eval
        mode (`TableEncoder.encode`)."""
        with self._evaluating():
            return self.backbone.encode(x, seed)

    def encode_rows(self, x: Tensor, context: TableContext) -> tuple[Tensor, Tensor]:
        """Rows x (M, D) of a table against its context -> (embeddings (M, e), logits (M,))."""
        with self._evaluating():
            return self.backbone.rows(x, context)

    def standard_values(self, x: Tensor, context: TableContext) -> Tensor:
        """Rows x (M, D) of a table as their columns' plain z-scores against its context
        (`umeta.models.table_encoder.plain_scores`): the space `umeta.estimators.MetaClusterer`
        clusters in beyond :attr:`trained_clusters`, (M, D)."""
        return plain_scores(x[None], context.stats)[0]

    @property
    def trained_clusters(self) -> int:
        """The most clusters of the synthetic tables it was meta-trained on
        (``tasks.options.max_clusters``; `umeta.data.table_priors.MAX_CLUSTERS` without a
        config)."""
        options = {} if self.config is None else self.config.tasks.options
        return int(options.get("max_clusters", MAX_CLUSTERS))

    def clusters_on_values(self, n_clusters: int | None) -> bool:
        """Whether a table asked for ``n_clusters`` (None: estimated) is clustered on its
        :meth:`standard_values` rather than on the embedding: beyond :attr:`trained_clusters`,
        outside the range the model was trained on."""
        return n_clusters is not None and n_clusters > self.trained_clusters

    def embedding(self, x: Tensor) -> Tensor:
        """A whole table x (N, D) -> row embeddings (N, e)."""
        return self.backbone.encode(x)[0]

    @torch.no_grad()
    def embed(self, x: Tensor, batch_size: int = 1024, *, progress: bool = False) -> Tensor:
        """Row embeddings (N, e) of one whole table x (N, D) (``batch_size`` is not used: the
        encoder bounds its own memory); ``progress`` shows one step for the table."""
        bar = progress_bar(1, desc="table", unit="table", enabled=progress)
        try:
            return self.encode_table(x)[0]
        finally:
            bar.update(1)
            bar.close()
