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

    Conv4 (``backbone.features``: conv, norm, pool, ReLU per block): each block's ReLU.
    ResNet-12 (``backbone.features``: one residual block per child): each child. A backbone
    with a ``blocks`` or ``layers`` container: each of its children.
    """
    backbone = learner.backbone
    features = getattr(backbone, "features", None)
    if isinstance(features, nn.Sequential):
        names = [f"backbone.features.{i}" for i, m in enumerate(features) if isinstance(m, nn.ReLU)]
        if names:
            return names
        if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in features.children()):
            return [f"backbone.features.{i}" for i in range(len(features))]
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


class JointEmbedding(Learner):
    """A learner whose embedding joins several spaces: the learner's own and/or the outputs of
    some of its backbone's blocks, each flattened and L2-normalised, then concatenated, so that
    the cosine similarities of the parts add up: (B, C, H, W) -> (B, sum of the parts' sizes).
    One forward pass gives every part (the blocks' outputs are kept on the way).

    Parameters
    ----------
    learner : Learner
        The meta-trained learner (held, not copied).
    parts : sequence of (str or int)
        ``"embedding"`` (the learner's own) or a block number (1-based, as `LayerEmbedding`).
    """

    def __init__(self, learner: Learner, parts) -> None:
        super().__init__()
        parts = list(parts)
        if len(parts) < 2:
            raise UmetaError("a joint embedding joins at least two spaces")
        self.learner = learner
        self.parts = parts
        self.layers = [None if p == "embedding" else LayerEmbedding(learner, p).layer
                       for p in parts]
        self.backbone = learner.backbone
        self.image_shape = learner.image_shape
        self.config = learner.config
        modules = dict(learner.named_modules())
        self._kept_modules = [None if name is None else modules[name] for name in self.layers]

    @property
    def layer(self) -> str:
        """The parts, as ``embedding`` and module names joined by ``+``."""
        return "+".join("embedding" if name is None else name for name in self.layers)

    def embedding(self, x: Tensor) -> Tensor:
        kept: dict[int, Tensor] = {}
        hooks = [module.register_forward_hook(
                     lambda _m, _i, out, i=i: kept.setdefault(i, out))
                 for i, module in enumerate(self._kept_modules) if module is not None]
        try:
            own = self.learner.embedding(x)
        finally:
            for hook in hooks:
                hook.remove()
        outputs = []
        for i, name in enumerate(self.layers):
            if name is None:
                outputs.append(own)
            elif i in kept:
                outputs.append(kept[i].flatten(1))
            else:
                raise UmetaError(f"layer {name!r} is not on the path of the learner's "
                                 f"embedding; choose a layer of its backbone")
        return torch.cat([F.normalize(out, dim=-1) for out in outputs], 1)

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int,
              query_x: Tensor | None = None):
        return self.learner.adapt(support_x, support_y, n_way, query_x)

    def predict(self, state, query_x: Tensor) -> Tensor:
        return self.learner.predict(state, query_x)

    def meta_loss(self, batch):
        return self.learner.meta_loss(batch)


def parse_space(space: str) -> list[str | int]:
    """The parts of an embedding space: ``"embedding"`` (the learner's own), ``"blockN"`` (the
    backbone's N-th block, N >= 1), or several of them joined by ``+`` (e.g.
    ``"embedding+block2"``), each at most once. Returns ``"embedding"`` or N per part."""
    parts: list[str | int] = []
    for part in space.split("+"):
        block = part[5:] if part.startswith("block") else ""
        if part == "embedding":
            parts.append(part)
        elif block.isdigit() and int(block) >= 1:
            parts.append(int(block))
        else:
            parts = []
            break
    if not parts or len(set(parts)) != len(parts):
        raise UmetaError(f"unknown embedding space {space!r}; use embedding, blockN (N >= 1) "
                         f"or several of them joined by + (e.g. embedding+block2)")
    return parts


def in_space(learner: Learner, space: str) -> Learner:
    """``learner`` embedding in ``space`` (:func:`parse_space`): itself for ``"embedding"``,
    `LayerEmbedding` for one block, `JointEmbedding` for several parts."""
    parts = parse_space(space)
    if len(parts) > 1:
        return JointEmbedding(learner, parts)
    return learner if parts[0] == "embedding" else LayerEmbedding(learner, parts[0])
