"""Prototypical networks over pixels: a dense embedding in which each image's segments separate.

Each task is one image (a `umeta.tasks.mosaic.SegmentBatch` scene). The learner embeds every
pixel, L2-normalised; a segment's prototype is the normalised mean of its support pixels, and
each query pixel is classified by its cosine similarity to the prototypes of its own image,
scaled by a learned temperature. The meta-loss is the cross-entropy of the query pixels, so the
embedding is trained so that the nearest-prototype rule, and hence k-means with the image's
number of segments (what `umeta.adapt.segment` runs on a new image), recovers the segments of
images it has never seen.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.learners.base import LEARNERS, Learner, MetaLoss
from umeta.tasks.mosaic import SegmentBatch


#: Why `PixelProto` has no episode rule (``umeta eval`` and few-shot tools need one).
NO_CLASSIFIER = ("the pixelproto learner segments images (umeta segment, MetaSegmenter); it has "
                 "no few-shot classification rule")


@LEARNERS.register("pixelproto")
class PixelProto(Learner):
    """Pixel-level prototypical networks (a segmentation learner).

    Parameters
    ----------
    backbone : nn.Module
        A dense backbone (with ``dense(x)``: (B, C, H, W) -> (B, D, H, W)), e.g. ``dilated``.
    temperature : float
        Initial temperature of the cosine logits (learned).

    Shapes: :meth:`dense_embedding` (B, C, H, W) -> (B, D, H, W), unit norm over D;
    :meth:`embedding` (B, C, H, W) -> (B, D) (the image mean of the dense features).

    Examples
    --------
    >>> from umeta.data.textures import make_textures
    >>> from umeta.models.dense import dilated
    >>> from umeta.tasks.mosaic import MosaicTasks
    >>> learner = PixelProto(dilated((3, 16, 16), hidden=4, out_dim=8))
    >>> batch = MosaicTasks(make_textures(8, image_size=16).images, n_way=3).sample(2)
    >>> learner.meta_loss(batch).loss.shape, learner.dense_embedding(batch.images).shape
    (torch.Size([]), torch.Size([2, 8, 16, 16]))
    """

    batch_type: ClassVar[type] = SegmentBatch
    graphable: ClassVar[bool] = False
    classifies: ClassVar[bool] = False

    def __init__(self, backbone: nn.Module, temperature: float = 0.1) -> None:
        super().__init__()
        if not hasattr(backbone, "dense"):
            raise UmetaError(f"the pixelproto learner needs a dense backbone (one with a "
                             f"per-pixel output, e.g. model.backbone = \"dilated\"); got "
                             f"{type(backbone).__name__}")
        if not temperature > 0:
            raise UmetaError(f"pixelproto temperature must be > 0; got {temperature}")
        self.backbone = backbone
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    def dense_embedding(self, x: Tensor) -> Tensor:
        """Unit-norm features of every pixel, (B, C, H, W) -> (B, D, H, W)."""
        return F.normalize(self.backbone.dense(x), dim=1)

    def segment_logits(self, batch: SegmentBatch) -> Tensor:
        """Scaled cosine logits (T, n_way * q_query, n_way) of every query pixel against its
        image's segment prototypes (absent segments get -inf)."""
        t, n, k = batch.support.shape
        feats = self.dense_embedding(batch.images).flatten(2)  # (T, D, H * W)
        d = feats.shape[1]

        def gather(index: Tensor) -> Tensor:  # (T, N, M) -> (T, N, M, D)
            flat = index.flatten(1)[:, None, :].expand(t, d, -1)
            return feats.gather(2, flat).permute(0, 2, 1).view(*index.shape, d)

        prototypes = F.normalize(gather(batch.support).mean(2), dim=-1)  # (T, N, D)
        queries = gather(batch.query).flatten(1, 2)  # (T, N * Q, D)
        logits = self.log_scale.exp() * queries @ prototypes.transpose(1, 2)
        return logits.masked_fill(~batch.present[:, None, :], -torch.inf)

    def meta_loss(self, batch: SegmentBatch) -> MetaLoss:
        """Cross-entropy and accuracy of the query pixels of present segments."""
        logits = self.segment_logits(batch)
        t, n, q = batch.query.shape
        target = torch.arange(n, device=logits.device).repeat_interleave(q).expand(t, -1)
        keep = batch.present.repeat_interleave(q, dim=1)  # (T, N * Q)
        loss = F.cross_entropy(logits[keep], target[keep])
        accuracy = (logits.argmax(-1) == target)[keep].float().mean()
        return MetaLoss(loss, accuracy.detach())

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None) -> Any:
        raise UmetaError(NO_CLASSIFIER)

    def predict(self, state: Any, query_x: Tensor) -> Tensor:
        raise UmetaError(NO_CLASSIFIER)


__all__ = ["PixelProto"]
