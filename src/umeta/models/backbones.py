"""Backbones (feature extractors) behind a registry."""

from __future__ import annotations

import math

from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")


class Conv4(nn.Module):
    """Four blocks of conv3x3 -> BatchNorm -> ReLU -> max-pool 2 (Vinyals et al.; Snell et al.).

    The ReLU runs after the pool: max-pooling and ReLU commute (values and gradients), and the
    pooled tensor is a quarter of the size.

    Parameters
    ----------
    in_channels : int
    hidden : int
        Filters per block (64 in the papers).
    image_size : int
        Height (= width) of the inputs; sets :attr:`out_dim`.
    running_stats : bool
        Whether BatchNorm keeps running statistics. Learners that ``vmap`` over tasks (MAML)
        need ``False``: every forward pass then normalises with the statistics of its batch.
    ceil_mode : bool
        Round pooled sizes up (28 -> 14 -> 7 -> 4 -> 2: 4x more features than the usual 1x1).

    Shapes: input (B, C, H, W) -> output (B, out_dim).
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, image_size: int = 28,
                 running_stats: bool = True, ceil_mode: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for _ in range(4):
            layers += [
                nn.Conv2d(channels, hidden, 3, padding=1),
                nn.BatchNorm2d(hidden, track_running_stats=running_stats),
                nn.MaxPool2d(2, ceil_mode=ceil_mode),
                nn.ReLU(),
            ]
            channels, size = hidden, (size + 1) // 2 if ceil_mode else size // 2
        if size < 1:
            raise UmetaError(f"Conv4 needs images of at least 16x16 pixels; got {image_size}")
        self.features = nn.Sequential(*layers)
        self.out_dim = hidden * size * size

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)


class MLP(nn.Module):
    """A multilayer perceptron for vector data (images are flattened first).

    Shapes: input (B, *in_shape) -> output (B, out_dim).
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (256, 128),
                 norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.ReLU())
            width = h
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@BACKBONES.register("conv4")
def conv4(image_shape: tuple[int, int, int], hidden: int = 64, running_stats: bool = True,
          ceil_mode: bool = False) -> Conv4:
    c, h, w = image_shape
    if h != w:
        raise UmetaError(f"conv4 expects square images; got {h}x{w}: resize the data first")
    return Conv4(c, hidden, h, running_stats, ceil_mode)


@BACKBONES.register("mlp")
def mlp(image_shape: tuple[int, ...], hidden: int = 256, depth: int = 2,
        running_stats: bool = True) -> MLP:
    """An MLP over flattened inputs; it has no BatchNorm, so ``running_stats`` is moot."""
    widths = tuple(max(hidden // (2 ** i), 16) for i in range(depth))
    return MLP(int(math.prod(image_shape)), widths)


def build_backbone(name: str, image_shape: tuple[int, ...], **kwargs: object) -> nn.Module:
    """Build the backbone ``name`` for inputs of shape ``image_shape`` (without batch axis)."""
    return BACKBONES.build(name, image_shape=tuple(image_shape), **kwargs)


def has_running_stats(module: nn.Module) -> bool:
    """True if any normalisation layer of ``module`` keeps running statistics."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in module.modules()
    )
