"""A procedural prior of colour textures: the regions that segmentation tasks are cut from.

Each image is one stationary texture: two colours mixed by a pattern field ``t(x, y)`` in
[0, 1]. Patterns: flat colour, stripes, checks, dots, a linear ramp, smooth (band-limited) noise
at a random scale, thresholded blotches of that noise, and grain (per-pixel noise, lightly
blurred). Regular patterns have a random period, angle, phase and edge sharpness; half of all
patterns are drawn in a frame warped by smooth noise (irregular stripes, wavy checks). The second
colour is either independent of the first or a small change of its lightness and saturation
(low-contrast textures), so that neither mean colour nor contrast alone tells textures apart.
Every image also gets faint pixel noise.

`umeta.tasks.mosaic` composes several of these images into one scene with a random partition:
a segmentation task with exact masks. The ``textures`` data set (`umeta.data.sources`) holds
disjoint seeded parts of this prior.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError

#: Pattern kinds, drawn uniformly.
PATTERNS = ("flat", "stripes", "checks", "dots", "ramp", "noise", "blotches", "grain")
_BLOCK = 256  # images rendered at once


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Colours (..., 3) in HSV, each in [0, 1], to RGB in [0, 1]."""
    h, s, v = hsv.unbind(-1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=hsv.device) + 6 * h[..., None]) % 6
    return v[..., None] - (v * s)[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def smooth_noise(n: int, cells: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Band-limited noise (n, size, size) with ``cells[i]`` random values per side, bicubically
    upsampled and normalised to mean 0.5 and standard deviation about 0.2."""
    out = torch.empty(n, size, size, device=cells.device)
    for c in torch.unique(cells).tolist():
        rows = (cells == c).nonzero()[:, 0]
        coarse = torch.randn(len(rows), 1, c + 3, c + 3, device=cells.device, generator=generator)
        field = F.interpolate(coarse, size=(size + 2 * size // c, size + 2 * size // c),
                              mode="bicubic", align_corners=False)
        off = size // c
        field = field[:, 0, off: off + size, off: off + size]
        field = (field - field.mean((1, 2), keepdim=True)) / field.std((1, 2), keepdim=True
                                                                    ).clamp_min(1e-6)
        out[rows] = 0.5 + 0.2 * field
    return out


def _patterns(n: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Pattern fields (n, size, size) in [0, 1] of random kinds and parameters."""
    u = torch.rand(n, 8, device=device, generator=generator)
    kind = (u[:, 0] * len(PATTERNS)).long().clamp_max(len(PATTERNS) - 1)
    axis = torch.arange(size, device=device, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    angle = u[:, 1, None, None] * math.pi
    # half of the textures are irregular: their frame is warped by smooth noise
    warp = (smooth_noise(2 * n, 3 + (u[:, 7] * 4).long().repeat(2), size, generator) - 0.5)
    amount = torch.where(u[:, 7] < 0.5, 60.0 * u[:, 7], 0.0)[:, None, None] * size / 64
    xx, yy = xx + amount * warp[:n], yy + amount * warp[n:]
    along = xx * torch.cos(angle) + yy * torch.sin(angle)
    across = -xx * torch.sin(angle) + yy * torch.cos(angle)
    period = (3.0 * (16 / 3) ** u[:, 2])[:, None, None] * size / 64  # 3 .. 16 pixels at 64
    phase = u[:, 3, None, None] * 2 * math.pi
    w1 = torch.sin(2 * math.pi * along / period + phase)
    w2 = torch.sin(2 * math.pi * across / period + phase)
    sharp = (1.5 * 12 ** u[:, 4])[:, None, None]  # edge sharpness of regular patterns
    cells = (2 + u[:, 5] * 14).long()  # noise cells per side
    noise = smooth_noise(n, cells, size, generator)
    grain = torch.rand(n, 1, size, size, device=device, generator=generator)
    grain = F.avg_pool2d(F.pad(grain, (1, 1, 1, 1), mode="replicate"), 3, 1)[:, 0]
    fields = torch.stack([
        torch.zeros_like(w1),
        torch.sigmoid(sharp * w1),
        torch.sigmoid(sharp * w1 * w2 * 2),
        torch.sigmoid(sharp * (w1 + w2 - 1.0)),
        ((along - along.amin((1, 2), keepdim=True))
         / (along.amax((1, 2), keepdim=True) - along.amin((1, 2), keepdim=True)).clamp_min(1)),
        noise.clamp(0, 1),
        torch.sigmoid(sharp * (noise - 0.35 - 0.3 * u[:, 6, None, None]) * 4),
        (0.5 + 2.5 * (grain - 0.5)).clamp(0, 1),
    ], 1)
    return fields[torch.arange(n, device=device), kind]


def _colours(n: int, generator: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor]:
    """The two colours (n, 3) of each texture, in RGB."""
    u = torch.rand(n, 7, device=device, generator=generator)
    first = torch.stack([u[:, 0], u[:, 1] ** 0.7, 0.08 + 0.92 * u[:, 2]], -1)
    independent = torch.stack([u[:, 3], u[:, 4] ** 0.7, 0.08 + 0.92 * u[:, 5]], -1)
    change = (u[:, 6:7] * 2 - 1) * torch.tensor([0.05, 0.3, 0.45], device=device)
    near = torch.stack([(first[:, 0] + change[:, 0]) % 1, (first[:, 1] + change[:, 1]).clamp(0, 1),
                        (first[:, 2] + change[:, 2]).clamp(0.02, 1)], -1)
    pick = torch.rand(n, 1, device=device, generator=generator) < 0.5
    return hsv_to_rgb(first), hsv_to_rgb(torch.where(pick, independent, near))


def make_textures(num_images: int, image_size: int = 64, seed: int = 0, name: str | None = None,
                  device: torch.device | str = "cpu") -> ImageSet:
    """Random colour textures (unlabeled).

    Parameters
    ----------
    num_images : int
        >= 1.
    image_size : int
        Side of the square images, >= 8; pattern periods scale with it (3 to 16 pixels at 64).
    seed : int
    name : str, optional
        Default ``"textures(seed=S)"``.
    device : torch.device or str

    Returns
    -------
    ImageSet
        ``images`` uint8 (num_images, 3, image_size, image_size); no labels (all -1).

    Examples
    --------
    >>> make_textures(4, image_size=16).images.shape
    torch.Size([4, 3, 16, 16])
    """
    if num_images < 1 or image_size < 8:
        raise UmetaError(f"make_textures needs num_images >= 1 and image_size >= 8; got "
                         f"{num_images} and {image_size}")
    dev = torch.device(device)
    gen = torch.Generator(dev).manual_seed(int(seed))
    images = torch.empty(num_images, 3, image_size, image_size, dtype=torch.uint8, device=dev)
    for lo in range(0, num_images, _BLOCK):
        n = min(_BLOCK, num_images - lo)
        t = _patterns(n, image_size, gen, dev)[:, None]
        first, second = _colours(n, gen, dev)
        x = first[:, :, None, None] * (1 - t) + second[:, :, None, None] * t
        sigma = 0.02 * torch.rand(n, 1, 1, 1, device=dev, generator=gen)
        x = x + sigma * torch.randn(x.shape, device=dev, generator=gen)
        images[lo: lo + n] = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.full((num_images,), -1, dtype=torch.long, device=dev)
    return ImageSet(images, labels, [], None, name or f"textures(seed={seed})")


__all__ = ["PATTERNS", "hsv_to_rgb", "make_textures", "smooth_noise"]
