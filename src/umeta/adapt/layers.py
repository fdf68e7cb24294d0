"""Embedding new data with an intermediate layer of a meta-trained backbone.

A meta-learned embedding is tuned to tell its training domain's classes apart; on images from
another domain its last layer can discard what separates the new classes, while earlier layers
keep more general features. :class:`LayerEmbedding` wraps a learner so that its
:meth:`~umeta.learners.base.Learner.embedding` (what clustering, embedding, anomaly scoring and
AdaBN use) is the flattened output of one named module of the learner; everything else
(``adapt``, ``predict``, ``meta_loss``) is the wrapped learner's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.learners.base import Learner


class _Reached(Exception):
    """Carries a layer's output out of the forward pass."""

    def __init__(self, output: Tensor) -> None:
        super().__init__()
        self.output = output


def block_outputs(learner: Learner) -> list[str]:
    """Names (as in ``learner.named_modules()``) of the outputs of the backbone's blocks.

    Conv4 (``backbone.features``: conv, norm, pool, ReLU per block): each block's ReLU. A
    backbone with a ``blocks`` or ``layers`` container: each of its children.
    """
    backbone = learner.backbone
    features = getattr(backbone, "features", None)
    if isinstance(features, nn.Sequential):
        names = [f"backbone.features.{i}" for i, m in enumerate(features) if isinstance(m, nn.ReLU)]
        if names:
            return names
    for attr in ("blocks", "layers"):
        container = getattr(backbone, attr, None)
        if isinstance(container, (nn.Sequential, nn.ModuleList)):
            return [f"backbone.{attr}.{i}" for i in range(len(container))]
    raise UmetaError(f"cannot find the blocks of backbone {type(backbone).__name__}; name the "
                     f"layer to embed with (one of learner.named_modules())")


class LayerEmbedding(Learner):
    """A learner whose embedding is one layer's output, flattened.

    Parameters
    ----------
    learner : Learner
        The meta-trained learner (held, not copied).
    layer : int or str
        A block number, 1-based (``block_outputs(learner)[layer - 1]``; ``-1`` is the last
        block), or a module name of ``learner``.

    Shapes: :meth:`embedding` maps (B, C, H, W) to (B, D_layer).
    """

    def __init__(self, learner: Learner, layer: int | str) -> None:
        super().__init__()
        modules = dict(learner.named_modules())
        if isinstance(layer, int):
            blocks = block_outputs(learner)
            if not (1 <= layer <= len(blocks) or -len(blocks) <= layer <= -1):
                raise UmetaError(f"block {layer} does not exist; the backbone has blocks 1 .. "
                                 f"{len(blocks)}")
            name = blocks[layer - 1 if layer > 0 else layer]
        elif layer in modules and layer:
            name = layer
        else:
            raise UmetaError(f"the learner has no module {layer!r}; give a block number or one "
                             f"of its module names (e.g. {block_outputs(learner)[0]!r})")
        self.learner = learner
        self.layer = name
        self.backbone = learner.backbone
        self.image_shape = learner.image_shape
        self.config = learner.config
        self._module = modules[name]

    def embedding(self, x: Tensor) -> Tensor:
        """The output of ``layer`` for images (B, C, H, W), flattened to (B, D); the forward
        pass stops there (later layers do not run, so AdaBN leaves them as they are)."""
        def stop(_module, _inputs, out):
            raise _Reached(out)

        hook = self._module.register_forward_hook(stop)
        try:
            self.learner.embedding(x)
        except _Reached as reached:
            return reached.output.flatten(1)
        finally:
            hook.remove()
        raise UmetaError(f"layer {self.layer!r} is not on the path of the learner's "
                         f"embedding; choose a layer of its backbone")

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None):
        return self.learner.adapt(support_x, support_y, n_way, query_x)

    def predict(self, state, query_x: Tensor) -> Tensor:
        return self.learner.predict(state, query_x)

    def meta_loss(self, batch):
        return self.learner.meta_loss(batch)


class JointEmbedding(LayerEmbedding):
    """A learner whose embedding joins its own and one layer's: the two L2-normalised and
    concatenated, (B, C, H, W) -> (B, D + D_layer), so that cosine similarities add up. One
    forward pass gives both (the layer's output is kept on the way)."""

    def embedding(self, x: Tensor) -> Tensor:
        kept: list[Tensor] = []
        hook = self._module.register_forward_hook(lambda _m, _i, out: kept.append(out))
        try:
            own = self.learner.embedding(x)
        finally:
            hook.remove()
        if not kept:
            raise UmetaError(f"layer {self.layer!r} is not on the path of the learner's "
                             f"embedding; choose a layer of its backbone")
        return torch.cat([F.normalize(own, dim=-1), F.normalize(kept[0].flatten(1), dim=-1)], 1)


def parse_space(space: str) -> tuple[str, int | None]:
    """``space`` as (kind, block): ``"embedding"`` -> ("embedding", None), ``"blockN"`` ->
    ("block", N), ``"embedding+blockN"`` -> ("embedding+block", N); anything else is an error."""
    if space == "embedding":
        return "embedding", None
    kind, _, block = space.rpartition("block")
    if kind not in ("", "embedding+") or not block.isdigit() or int(block) < 1:
        raise UmetaError(f"unknown embedding space {space!r}; use embedding, blockN or "
                         f"embedding+blockN (N >= 1)")
    return kind + "block", int(block)


def in_space(learner: Learner, space: str) -> Learner:
    """``learner`` embedding in ``space``: ``"embedding"`` (its own), ``"blockN"`` (the
    backbone's N-th block, `LayerEmbedding`) or ``"embedding+blockN"`` (both, `JointEmbedding`)."""
    kind, block = parse_space(space)
    if block is None:
        return learner
    return (JointEmbedding if kind == "embedding+block" else LayerEmbedding)(learner, block)
