"""A dense (fully convolutional) backbone: a feature vector for every pixel.

`DilatedNet` sees each pixel at several scales. A full-resolution stem (two 3x3 convolutions)
keeps sharp colour and edge features; ``levels`` stride-2 convolutions build coarser maps with
twice the channels each, and the coarsest runs residual 3x3 blocks of growing dilation
(``dilations``), so that the receptive field reaches textures and context of a large part of the
image at little cost. Every level is upsampled (bilinear) to the full resolution, and a 1x1
fusion and a 1x1 head make ``out_dim`` features per pixel. Borders are padded by replicating
edge pixels, and any image size of at least 2 x 2 works. ``dense(x)`` gives the per-pixel
features segmentation learners use; ``forward(x)`` averages them over the image, so that it is
also an ordinary backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.models.backbones import BACKBONES


class _Conv(nn.Module):
    """``relu(norm(conv3x3(x)))`` with replicated borders, optionally strided or dilated; with
    ``residual``, added to its input."""

    def __init__(self, cin: int, cout: int, running_stats: bool, *, stride: int = 1,
                 dilation: int = 1, residual: bool = False) -> None:
        super().__init__()
        self.dilation, self.residual = dilation, residual
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(cout, track_running_stats=running_stats)

    def forward(self, x: Tensor) -> Tensor:
        d = self.dilation
        y = F.relu(self.norm(self.conv(F.pad(x, (d, d, d, d), mode="replicate"))))
        return x + y if self.residual else y


class DilatedNet(nn.Module):
    """Per-pixel features from a full-resolution stem and a dilated multi-scale pyramid.

    Parameters
    ----------
    in_channels : int
    hidden : int
        Channels of the full-resolution stem; level ``i`` has ``hidden * 2 ** i``.
    out_dim : int
        Features per pixel.
    levels : int
        Stride-2 levels below the stem, >= 0.
    dilations : tuple of int
        One residual block per entry at the coarsest level.
    coords : bool
        Also feed the pixel's normalised coordinates (two more input channels, in [-1, 1]).
    running_stats : bool
        Whether BatchNorm keeps running statistics.

    Shapes: ``dense``: (B, C, H, W) -> (B, out_dim, H, W); ``forward``: -> (B, out_dim).

    Examples
    --------
    >>> net = DilatedNet(3, hidden=4, out_dim=8)
    >>> net.dense(torch.rand(2, 3, 30, 20)).shape, net(torch.rand(2, 3, 30, 20)).shape
    (torch.Size([2, 8, 30, 20]), torch.Size([2, 8]))
    """

    def __init__(self, in_channels: int = 3, hidden: int = 24, out_dim: int = 16,
                 levels: int = 2, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 coords: bool = False, running_stats: bool = True) -> None:
        super().__init__()
        self.coords = coords
        self.stem = nn.Sequential(_Conv(in_channels + 2 * coords, hidden, running_stats),
                                  _Conv(hidden, hidden, running_stats))
        widths = [hidden * 2 ** i for i in range(levels + 1)]
        self.down = nn.ModuleList(_Conv(a, b, running_stats, stride=2)
                                  for a, b in zip(widths, widths[1:]))
        self.blocks = nn.Sequential(*[_Conv(widths[-1], widths[-1], running_stats, dilation=d,
                                            residual=True) for d in dilations])
        self.fuse = nn.Sequential(nn.Conv2d(sum(widths), 2 * hidden, 1, bias=False),
                                  nn.BatchNorm2d(2 * hidden, track_running_stats=running_stats),
                                  nn.ReLU())
        self.head = nn.Conv2d(2 * hidden, out_dim, 1)
        self.out_dim = out_dim

    def dense(self, x: Tensor) -> Tensor:
        """Features of every pixel, (B, C, H, W) -> (B, out_dim, H, W)."""
        b, _, h, w = x.shape
        if self.coords:
            ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
            xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
            grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
            x = torch.cat([x, grid.expand(b, 2, h, w)], 1)
        maps = [self.stem(x)]
        for down in self.down:
            maps.append(down(maps[-1]))
        maps[-1] = self.blocks(maps[-1])
        full = [maps[0]] + [F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
                            for m in maps[1:]]
        return self.head(self.fuse(torch.cat(full, 1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(x).mean((-2, -1))


@BACKBONES.register("dilated")
def dilated(image_shape: tuple[int, int, int], hidden: int = 24, running_stats: bool = True,
            out_dim: int = 16, levels: int = 2,
            dilations: list[int] | tuple[int, ...] = (1, 2, 4, 8),
            coords: bool = False) -> DilatedNet:
    """`DilatedNet` for images of ``image_shape`` (any height and width work)."""
    if out_dim < 1 or levels < 0 or min(dilations, default=1) < 1:
        raise UmetaError(f"the dilated backbone needs out_dim >= 1, levels >= 0 and dilations "
                         f">= 1; got out_dim={out_dim}, levels={levels}, "
                         f"dilations={list(dilations)}")
    return DilatedNet(image_shape[0], hidden, out_dim, levels, tuple(int(d) for d in dilations),
                      coords, running_stats)


__all__ = ["DilatedNet", "dilated"]
