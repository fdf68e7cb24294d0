"""The `Learner` interface shared by training, evaluation and adaptation to new data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.progress import progress_bar
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

    Subclasses implement :meth:`adapt` (task-specific state from a labelled support set, and the
    unlabeled queries when a transductive rule uses them) and :meth:`predict` (query logits from
    that state). :meth:`forward` is always ``predict(adapt(...))``. Everything has a leading task
    axis ``T``.

    What a learner needs from the run is declared on its class, so that the factory
    (`umeta.build`) and the training loop never test a learner's name.

    Attributes
    ----------
    batch_type : type
        What :meth:`meta_loss` trains on (`Episode`, or `umeta.tasks.ViewBatch`); the task
        builder must make it.
    needs_batch_stats : bool
        The backbone's normalisation must use batch statistics, not running ones (learners
        that ``vmap`` over tasks: the statistics cannot be updated per task).
    compile_refusal : str or None
        Why ``torch.compile`` of :meth:`meta_loss` is refused (it would be wrong), or None.
    graphable : bool
        Whether a whole training step can be recorded as a CUDA graph (fixed shapes, no host
        synchronisation).
    classifies : bool
        Whether it has a few-shot classification rule (:meth:`adapt` / :meth:`predict`);
        ``umeta eval`` refuses a learner without one (a segmentation learner).
    training_only_state : tuple of str
        Prefixes of ``state_dict`` entries that only meta-training needs (a momentum copy, a
        queue): an exported model (`umeta.build.export_learner`) leaves them out, and loading
        one restores them with :meth:`restore_training_state`.
    backbone : nn.Module
        Maps images (B, C, H, W) to features (B, D); ``backbone.out_dim == D``.
    image_shape : tuple of int or None
        (C, H, W) of the images the learner was built for (set by `umeta.build.build_learner`).
    config : TrainConfig or None
        The run configuration the learner was built from (set by `umeta.build.build_learner`).
    """

    batch_type: ClassVar[type] = Episode
    needs_batch_stats: ClassVar[bool] = False
    compile_refusal: ClassVar[str | None] = None
    graphable: ClassVar[bool] = True
    training_only_state: ClassVar[tuple[str, ...]] = ()
    classifies: ClassVar[bool] = True

    backbone: nn.Module
    image_shape: tuple[int, ...] | None = None
    config: Any = None

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None) -> Any:
        """Adapt to each task's support set.

        Parameters
        ----------
        support_x : Tensor of shape (T, S, C, H, W)
        support_y : Tensor of shape (T, S), labels in ``0 .. n_way - 1``
        n_way : int
        query_x : Tensor of shape (T, Q, C, H, W), optional
            The unlabeled queries; a transductive rule (e.g. ``transductive_steps > 0`` in eval
            mode) refines the task state with them. Without them the rule is inductive.
        """
        raise NotImplementedError

    def predict(self, state: Any, query_x: Tensor) -> Tensor:
        """Query logits, shape (T, Q, n_way), for query_x of shape (T, Q, C, H, W)."""
        raise NotImplementedError

    def forward(self, episode: Episode) -> Tensor:
        """Query logits (T, N * Q, N): ``predict(adapt(support, labels, n_way, queries), queries)``."""
        state = self.adapt(episode.support_x, episode.support_y, episode.n_way, episode.query_x)
        return self.predict(state, episode.query_x)

    def restore_training_state(self) -> None:
        """Re-create the ``training_only_state`` of a model loaded from an export (nothing for
        learners that have none)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates (not, e.g., a momentum copy)."""
        return [p for p in self.parameters() if p.requires_grad]

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
    def embed(self, x: Tensor, batch_size: int = 1024, *, progress: bool = False) -> Tensor:
        """:meth:`embedding` of the images ``x`` (B, C, H, W) -> (B, D), in eval mode, in
        batches of ``batch_size``; ``progress`` shows a bar of the images done."""
        was_training = self.training
        self.eval()
        bar = progress_bar(len(x), desc="features", unit="image", enabled=progress)
        try:
            feats = []
            for i in range(0, len(x), batch_size):
                feats.append(self.embedding(x[i : i + batch_size]))
                bar.update(len(feats[-1]))
            return torch.cat(feats)
        finally:
            bar.close()
            self.train(was_training)
