"""Prototypical Networks (Snell, Swersky and Zemel 2017)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.learners.base import LEARNERS, Learner
from umeta.numeric.distances import squared_distances


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


def transductive_prototypes(support: Tensor, support_y: Tensor, query: Tensor, n_way: int,
                            score: Callable[[Tensor, Tensor], Tensor], steps: int,
                            temperature: float) -> Tensor:
    """Class prototypes refined with the unlabeled queries by soft k-means (Ren et al. 2018).

    Each step gives every query soft class weights ``softmax(score / temperature)`` and
    recomputes each prototype as the weighted mean of its support shots and the queries.

    Parameters
    ----------
    support : Tensor of shape (T, S, D)
    support_y : Tensor of shape (T, S)
    query : Tensor of shape (T, Q, D), or None when ``steps`` is 0
    score : maps (query (T, Q, D), prototypes (T, N, D)) to logits (T, Q, N)
    steps : int
        0 gives the plain class means.

    Returns
    -------
    Tensor of shape (T, n_way, D)
    """
    one_hot = F.one_hot(support_y, n_way).to(support.dtype)
    sums, counts = one_hot.transpose(1, 2) @ support, one_hot.sum(1)
    prototypes = sums / counts.clamp_min(1.0)[..., None]
    for _ in range(steps):
        weights = (score(query, prototypes) / temperature).softmax(-1)  # (T, Q, N)
        prototypes = ((sums + weights.transpose(1, 2) @ query)
                      / (counts + weights.sum(1)).clamp_min(1e-6)[..., None])
    return prototypes


def negative_squared_distances(x: Tensor, centres: Tensor) -> Tensor:
    """ProtoNets' logits: minus squared Euclidean distances, (T, Q, D) x (T, N, D) -> (T, Q, N)."""
    return -squared_distances(x, centres)


@dataclass
class TaskPrototypes:
    """What prototype learners adapt to: class prototypes, and the encoded queries they were
    given (so that :meth:`Learner.predict` on the same query tensor does not encode them again).

    Attributes
    ----------
    prototypes : Tensor of shape (T, n_way, D)
    query : Tensor of shape (T, Q, D) or None
        The encoding of ``query_x``, when :meth:`adapt` was given the queries.
    query_x : Tensor or None
        The query images that ``query`` encodes.
    """

    prototypes: Tensor
    query: Tensor | None = None
    query_x: Tensor | None = None

    def encoded_queries(self, query_x: Tensor, encode: Callable[[Tensor], Tensor]) -> Tensor:
        """The encoding of ``query_x``: the stored one if these are the queries adapt saw."""
        return self.query if query_x is self.query_x else encode(query_x)


@LEARNERS.register("protonet")
class ProtoNet(Learner):
    """Class-mean prototypes, logits = minus squared Euclidean distance to each prototype.

    The support and query images of the whole meta-batch go through the backbone in one call.

    Parameters
    ----------
    backbone : nn.Module
    transductive_steps : int
        At evaluation, refine the prototypes with the unlabeled queries by this many soft k-means
        steps (:func:`transductive_prototypes`); 0 (the default) is the inductive rule.
    transductive_temperature : float
    """

    def __init__(self, backbone: nn.Module, transductive_steps: int = 0,
                 transductive_temperature: float = 1.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.transductive_steps = int(transductive_steps)
        self.transductive_temperature = float(transductive_temperature)

    def _encode(self, x: Tensor) -> Tensor:
        """Backbone features of every task's images, (T, B, C, H, W) -> (T, B, D)."""
        t, b = x.shape[:2]
        return self.backbone(x.flatten(0, 1)).view(t, b, -1)

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None) -> TaskPrototypes:
        """Prototypes (T, n_way, D): class means of the support features, refined with the
        queries' in eval mode when ``transductive_steps > 0``. Support and queries go through
        the backbone in one call (one set of batch statistics in training mode)."""
        if query_x is None:
            support, query = self._encode(support_x), None
        else:
            s = support_x.shape[1]
            feats = self._encode(torch.cat([support_x, query_x], 1))
            support, query = feats[:, :s], feats[:, s:]
        steps = 0 if self.training or query is None else self.transductive_steps
        prototypes = transductive_prototypes(support, support_y, query, n_way,
                                             negative_squared_distances, steps,
                                             self.transductive_temperature)
        return TaskPrototypes(prototypes, query, query_x)

    def predict(self, state: TaskPrototypes, query_x: Tensor) -> Tensor:
        return negative_squared_distances(state.encoded_queries(query_x, self._encode),
                                          state.prototypes)
