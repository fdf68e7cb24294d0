"""The `Learner` interface shared by training, evaluation and adaptation to new data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.registry import Registry
from umeta.tasks.episode import Episode

LEARNERS: Registry["Learner"] = Registry("learner")


@dataclass
class MetaLoss:
    """What one meta-training step returns: the scalar loss to minimise, and query accuracy."""

    loss: Tensor
    accuracy: Tensor


class Learner(nn.Module):
    """A meta-learner over a backbone.

    Subclasses implement :meth:`adapt` (task-specific state from a labelled support set) and
    :meth:`predict` (query logits from that state). Everything has a leading task axis ``T``.

    Attributes
    ----------
    backbone : nn.Module
        Maps images (B, C, H, W) to features (B, D); ``backbone.out_dim == D``.
    image_shape : tuple of int or None
        (C, H, W) of the images the learner was built for (set by `umeta.train.build_learner`).
    config : TrainConfig or None
        The run configuration the learner was built from (set by `umeta.train.build_learner`).
    """

    backbone: nn.Module
    image_shape: tuple[int, ...] | None = None
    config: Any = None

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int) -> Any:
        """Adapt to each task's support set.

        Parameters
        ----------
        support_x : Tensor of shape (T, S, C, H, W)
        support_y : Tensor of shape (T, S), labels in ``0 .. n_way - 1``
        n_way : int
        """
        raise NotImplementedError

    def predict(self, state: Any, query_x: Tensor) -> Tensor:
        """Query logits, shape (T, Q, n_way), for query_x of shape (T, Q, C, H, W)."""
        raise NotImplementedError

    def forward(self, episode: Episode) -> Tensor:
        """Query logits (T, N * Q, N) after adapting on each task's support set."""
        state = self.adapt(episode.support_x, episode.support_y, episode.n_way)
        return self.predict(state, episode.query_x)

    def meta_loss(self, episode: Episode) -> MetaLoss:
        """Mean query cross-entropy and accuracy over the meta-batch."""
        logits = self(episode)
        loss = F.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten())
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return MetaLoss(loss, accuracy.detach())

    def embedding(self, x: Tensor) -> Tensor:
        """The space the adaptation tools work in: backbone features (B, C, H, W) -> (B, D)."""
        return self.backbone(x)

    @torch.no_grad()
    def embed(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """:meth:`embedding` of the images ``x`` (B, C, H, W) -> (B, D), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self.embedding(x[i : i + batch_size])
                              for i in range(0, len(x), batch_size)])
        finally:
            self.train(was_training)
