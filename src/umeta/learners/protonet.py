"""Prototypical Networks (Snell, Swersky and Zemel 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.learners.base import LEARNERS, Learner


def class_prototypes(features: Tensor, labels: Tensor, n_way: int) -> Tensor:
    """Mean feature of each class.

    Parameters
    ----------
    features : Tensor of shape (T, S, D)
    labels : Tensor of shape (T, S), values in ``0 .. n_way - 1``

    Returns
    -------
    Tensor of shape (T, n_way, D)
    """
    one_hot = F.one_hot(labels, n_way).to(features.dtype)  # (T, S, N)
    sums = one_hot.transpose(1, 2) @ features  # (T, N, D)
    return sums / one_hot.sum(1).clamp_min(1.0)[..., None]


def squared_distances(x: Tensor, centres: Tensor) -> Tensor:
    """Squared Euclidean distances, (T, Q, D) x (T, N, D) -> (T, Q, N)."""
    return (
        x.pow(2).sum(-1, keepdim=True)
        - 2 * x @ centres.transpose(1, 2)
        + centres.pow(2).sum(-1)[:, None, :]
    ).clamp_min(0.0)


@LEARNERS.register("protonet")
class ProtoNet(Learner):
    """Class-mean prototypes, logits = minus squared Euclidean distance to each prototype.

    The support and query images of the whole meta-batch go through the backbone in one call.
    """

    def __init__(self, backbone: nn.Module, **_: object) -> None:
        super().__init__()
        self.backbone = backbone

    def _features(self, x: Tensor) -> Tensor:
        t, b = x.shape[:2]
        return self.backbone(x.flatten(0, 1)).view(t, b, -1)

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        """Prototypes, shape (T, n_way, D)."""
        return class_prototypes(self._features(support_x), support_y, n_way)

    def predict(self, state: Tensor, query_x: Tensor) -> Tensor:
        return -squared_distances(self._features(query_x), state)

    def forward(self, episode) -> Tensor:
        t, s = episode.support_x.shape[:2]
        feats = self._features(torch.cat([episode.support_x, episode.query_x], 1))
        protos = class_prototypes(feats[:, :s], episode.support_y, episode.n_way)
        return -squared_distances(feats[:, s:], protos)
