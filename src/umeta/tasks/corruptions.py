"""Image corruptions at five severities (ImageNet-C style), batched and seeded.

Each corruption acts on a whole batch ``(B, C, H, W)`` of images in [0, 1] on their own device,
draws every random number from the caller's `torch.Generator` and keeps values in [0, 1].
Severity 0 is the clean image; severities 1 .. 5 take the parameters of :data:`CORRUPTIONS`,
which grow the damage monotonically. Sizes are fractions of the image's shorter side, so that a
severity means the same on 28 x 28 and on larger images:

- ``gaussian_noise``: add noise of standard deviation ``p`` (ImageNet-C's values), clip;
- ``blur``: a Gaussian blur of standard deviation ``p`` sides (`umeta.tasks.augment.gaussian_blur`);
- ``occlusion``: a grey (0.5) square of side ``p`` sides at a uniform random place;
- ``shift``: a translation by ``p`` sides in a uniform random direction, whole pixels, the
  uncovered border 0 (`umeta.tasks.augment.translate`);
- ``contrast``: ``x -> m + p * (x - m)`` with ``m`` the image's mean (ImageNet-C's values).

>>> import torch
>>> from umeta.tasks.corruptions import corrupt
>>> x = torch.zeros(2, 1, 28, 28)
>>> corrupt(x, "occlusion", 3, torch.Generator().manual_seed(0)).amax().item()
0.5
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from umeta.errors import UmetaError
from umeta.tasks.augment import gaussian_blur, translate

#: Corruption -> its parameter at severities 1 .. 5 (see the module's docstring for units).
CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "blur": (0.02, 0.03, 0.04, 0.05, 0.06),
    "occlusion": (0.2, 0.3, 0.4, 0.5, 0.6),
    "shift": (0.04, 0.08, 0.12, 0.16, 0.2),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
}
SEVERITIES = (1, 2, 3, 4, 5)
OCCLUDER = 0.5  # grey level of the occluding square


def check_corruption(name: str, severity: int) -> None:
    """Raise `UmetaError` unless ``name`` is a corruption and ``severity`` is in 0 .. 5."""
    if name not in CORRUPTIONS:
        raise UmetaError(f"unknown corruption {name!r}; choose from: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 5:
        raise UmetaError(f"corruption severity must be an integer in 0 .. 5 (0 = clean); got "
                         f"{severity!r}")


def corrupt(x: Tensor, name: str, severity: int, generator: torch.Generator) -> Tensor:
    """Corrupt each image of ``x`` independently.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W), float, values in [0, 1]
    name : str
        A key of :data:`CORRUPTIONS`.
    severity : int
        0 (``x`` itself) to 5.
    generator : torch.Generator on ``x.device``
        Source of every random draw (noise, places, directions).

    Returns
    -------
    Tensor of shape (B, C, H, W), values in [0, 1]
    """
    check_corruption(name, severity)
    if x.dim() != 4 or not x.is_floating_point():
        raise UmetaError(f"corrupt expects float images (B, C, H, W); got {x.dtype} "
                         f"{tuple(x.shape)}")
    if severity == 0:
        return x
    p = CORRUPTIONS[name][severity - 1]
    b, _, h, w = x.shape
    side = min(h, w)
    dev = x.device
    if name == "gaussian_noise":
        noise = torch.randn(x.shape, device=dev, generator=generator, dtype=x.dtype)
        return (x + p * noise).clamp(0.0, 1.0)
    if name == "blur":
        sigma = p * side
        return gaussian_blur(x, torch.full((b,), sigma, device=dev), sigma).clamp(0.0, 1.0)
    if name == "occlusion":
        size = max(1, round(p * side))
        top = torch.randint(h - size + 1, (b,), device=dev, generator=generator)
        left = torch.randint(w - size + 1, (b,), device=dev, generator=generator)
        rows = torch.arange(h, device=dev)[None] - top[:, None]  # (B, H)
        cols = torch.arange(w, device=dev)[None] - left[:, None]  # (B, W)
        inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None]
        return torch.where(inside[:, None], torch.full_like(x, OCCLUDER), x)
    if name == "shift":
        angle = 2 * math.pi * torch.rand(b, device=dev, generator=generator)
        distance = p * side
        dy = torch.round(distance * torch.sin(angle)).long()
        dx = torch.round(distance * torch.cos(angle)).long()
        return translate(x, dy, dx)
    mean = x.mean((1, 2, 3), keepdim=True)  # contrast
    return (mean + p * (x - mean)).clamp(0.0, 1.0)
