"""ResNet-12, the larger few-shot backbone (Oreshkin et al. 2018; Lee et al. 2019), as ``resnet12``.

Four residual blocks; each is three conv3x3 -> BatchNorm layers with LeakyReLU(0.1) between
them, a conv1x1 -> BatchNorm shortcut, LeakyReLU after the sum and a 2x2 max-pool. The usual
widths are 64-160-320-640 (``hidden=64``); ``hidden`` scales all four (``hidden=32`` gives
32-80-160-320, a quarter of the weights). Features are the global average of the last block
(``pool="avg"``, ``out_dim`` = the last width) or its flattened map (``pool="flatten"``).
DropBlock, which supervised ResNet-12 recipes add, is left out.
"""

from __future__ import annotations

from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.models.backbones import BACKBONES

#: widths of the four blocks relative to ``hidden`` (64 -> 64-160-320-640)
WIDTH_FACTORS = (1.0, 2.5, 5.0, 10.0)
POOLS = ("avg", "flatten")


class ResidualBlock(nn.Module):
    """Three conv3x3 + BatchNorm with a conv1x1 + BatchNorm shortcut, then a 2x2 max-pool.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H // 2, W // 2) (rounded up with
    ``ceil_mode``).
    """

    def __init__(self, in_channels: int, out_channels: int, running_stats: bool,
                 ceil_mode: bool) -> None:
        super().__init__()

        def bn() -> nn.BatchNorm2d:
            return nn.BatchNorm2d(out_channels, track_running_stats=running_stats)

        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), bn(),
            nn.LeakyReLU(0.1),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), bn(),
            nn.LeakyReLU(0.1),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), bn(),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), bn())
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2, ceil_mode=ceil_mode))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNet12(nn.Module):
    """Four `ResidualBlock` stages and a global average pool (or a flatten).

    Parameters
    ----------
    in_channels : int
    widths : tuple of four ints
    image_size : int
        Height (= width) of the inputs; sets :attr:`out_dim` with ``pool="flatten"``.
    running_stats : bool
        Whether BatchNorm keeps running statistics (``False`` for learners that ``vmap``).
    ceil_mode : bool
        Round pooled sizes up (28 -> 14 -> 7 -> 4 -> 2 instead of ... -> 3 -> 1).
    pool : {"avg", "flatten"}

    Shapes: input (B, C, H, W) -> output (B, out_dim).
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (64, 160, 320, 640),
                 image_size: int = 28, running_stats: bool = True, ceil_mode: bool = True,
                 pool: str = "avg") -> None:
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise UmetaError(f"resnet12 needs four positive widths; got {tuple(widths)}")
        if pool not in POOLS:
            raise UmetaError(f"resnet12 pool must be one of {', '.join(POOLS)}; got {pool!r}")
        blocks, channels, size = [], in_channels, image_size
        for width in widths:
            blocks.append(ResidualBlock(channels, int(width), running_stats, ceil_mode))
            channels, size = int(width), (size + 1) // 2 if ceil_mode else size // 2
        if size < 1:
            raise UmetaError(f"resnet12 needs images of at least 16x16 pixels; got {image_size}")
        self.features = nn.Sequential(*blocks)
        self.pool = pool
        self.out_dim = channels if pool == "avg" else channels * size * size

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return x.mean((2, 3)) if self.pool == "avg" else x.flatten(1)


@BACKBONES.register("resnet12")
def resnet12(image_shape: tuple[int, int, int], hidden: int = 64, running_stats: bool = True,
             widths: tuple[int, ...] | list[int] | None = None, ceil_mode: bool = True,
             pool: str = "avg") -> ResNet12:
    """ResNet-12 with widths ``hidden`` x (1, 2.5, 5, 10), or ``widths`` when given."""
    c, h, w = image_shape
    if h != w:
        raise UmetaError(f"resnet12 expects square images; got {h}x{w}: resize the data first")
    if widths is None:
        widths = tuple(max(1, round(hidden * f)) for f in WIDTH_FACTORS)
    return ResNet12(c, tuple(widths), h, running_stats, ceil_mode, pool)
