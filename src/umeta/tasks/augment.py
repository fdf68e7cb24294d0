"""Batched, seeded image augmentations that run on the images' device.

Every random draw comes from a `torch.Generator` passed in by the caller, and every operation acts
on a whole batch ``(B, C, H, W)`` at once: geometric changes (random resized crop, rotation, zoom,
shear) are one affine map per image applied by a single ``grid_sample``; flips, integer shifts and
pixel dropout are exact index arithmetic and masks. Pixels that come from outside the image are 0
(the background of `ImageSet` images such as Omniglot, where ink is 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.errors import UmetaError


@dataclass(frozen=True)
class Augment:
    """Strengths of a random augmentation; the default (all off) is the identity.

    Applied in this order: random resized crop and affine map (one ``grid_sample``), horizontal
    flip, integer shift, pixel dropout.

    Attributes
    ----------
    crop_scale : (float, float)
        Range of the crop's area as a fraction of the image (random resized crop); ``(1, 1)``
        means no crop.
    crop_ratio : (float, float)
        Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    rotate : float
        Largest rotation in degrees; the angle is uniform in ``[-rotate, rotate]``.
    zoom : (float, float)
        Range of the zoom factor (> 1 enlarges the content); ``(1, 1)`` means none.
    shear : float
        Largest horizontal shear angle in degrees.
    flip : float
        Probability of a horizontal flip.
    shift : int
        Largest translation in whole pixels, drawn independently per axis in ``[-shift, shift]``.
    dropout : float
        Probability that a pixel is set to 0 (in every channel).
    """

    crop_scale: tuple[float, float] = (1.0, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotate: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    shear: float = 0.0
    flip: float = 0.0
    shift: int = 0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_scale", _pair("crop_scale", self.crop_scale, 1e-3, 1.0))
        object.__setattr__(self, "crop_ratio", _pair("crop_ratio", self.crop_ratio, 1e-2, 1e2))
        object.__setattr__(self, "zoom", _pair("zoom", self.zoom, 1e-2, 1e2))
        for name, value, top in (("rotate", self.rotate, 180.0), ("shear", self.shear, 80.0),
                                 ("flip", self.flip, 1.0), ("dropout", self.dropout, 1.0)):
            if not 0.0 <= float(value) <= top:
                raise UmetaError(f"Augment.{name} must be in [0, {top:g}]; got {value}")
        if int(self.shift) != self.shift or self.shift < 0:
            raise UmetaError(f"Augment.shift must be a whole number of pixels >= 0; got {self.shift}")
        object.__setattr__(self, "shift", int(self.shift))

    @property
    def warps(self) -> bool:
        """Whether a crop, rotation, zoom or shear is on (so a ``grid_sample`` is needed)."""
        return (self.crop_scale != (1.0, 1.0) or self.rotate > 0 or self.zoom != (1.0, 1.0)
                or self.shear > 0)

    @property
    def is_identity(self) -> bool:
        return not self.warps and self.flip == 0 and self.shift == 0 and self.dropout == 0

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment each image of ``x`` independently.

        Parameters
        ----------
        x : Tensor of shape (B, C, H, W), float
        generator : torch.Generator on ``x.device``

        Returns
        -------
        Tensor of shape (B, C, H, W); ``x`` itself when the augmentation is the identity.
        """
        if x.dim() != 4 or not x.is_floating_point():
            raise UmetaError(f"Augment expects float images (B, C, H, W); got {x.dtype} "
                             f"{tuple(x.shape)}")
        b, _, h, w = x.shape
        dev = x.device
        if self.warps:
            x = affine_warp(x, self.sample_warp(b, h, w, generator, dev))
        if self.flip > 0:
            flip = torch.rand(b, device=dev, generator=generator) < self.flip
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.shift > 0:
            dy, dx = torch.randint(-self.shift, self.shift + 1, (2, b), device=dev,
                                   generator=generator)
            x = translate(x, dy, dx)
        if self.dropout > 0:
            keep = torch.rand(b, 1, h, w, device=dev, generator=generator) >= self.dropout
            x = x * keep
        return x

    def sample_warp(self, batch: int, height: int, width: int, generator: torch.Generator,
                    device: torch.device) -> Tensor:
        """Random crop-and-affine maps, shape (batch, 2, 3), for :func:`affine_warp`.

        Each maps output coordinates to input coordinates in ``grid_sample``'s normalised
        ``[-1, 1]`` frame (x first). The affine part (zoom, shear, then rotation about the
        centre) acts on the cropped image, in pixel units, so angles hold for any aspect ratio.
        """
        u = torch.rand(batch, 6, device=device, generator=generator)
        # random resized crop: area fraction and aspect ratio -> crop size relative to the image
        if self.crop_scale == (1.0, 1.0):
            cw = ch = torch.ones(batch, device=device)
        else:
            area = self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * u[:, 0]
            lo, hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
            ratio = torch.exp(lo + (hi - lo) * u[:, 1])
            cw = torch.sqrt(area * ratio * height / width).clamp(max=1.0)
            ch = torch.sqrt(area / ratio * width / height).clamp(max=1.0)
        cx = (2 * u[:, 2] - 1) * (1 - cw)
        cy = (2 * u[:, 3] - 1) * (1 - ch)
        # affine map of the content in pixel units: A = rotation @ shear @ zoom
        angle = torch.deg2rad(self.rotate * (2 * u[:, 4] - 1))
        shear = math.tan(math.radians(self.shear)) * (2 * u[:, 5] - 1)
        z = self._draw_zoom(batch, generator, device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # A = [[cos, cos * shear - sin], [sin, sin * shear + cos]] * z has determinant z ** 2
        inv = torch.stack([
            torch.stack([sin * shear + cos, sin - cos * shear], -1),
            torch.stack([-sin, cos], -1),
        ], -2) / z[:, None, None]  # A^-1, (B, 2, 2)
        half = torch.tensor([width / 2, height / 2], device=device)
        inv = inv * half[None, None, :] / half[None, :, None]  # N A^-1 N^-1 in normalised units
        linear = inv * torch.stack([cw, ch], -1)[:, :, None]
        return torch.cat([linear, torch.stack([cx, cy], -1)[:, :, None]], -1)

    def _draw_zoom(self, batch: int, generator: torch.Generator, device: torch.device) -> Tensor:
        if self.zoom == (1.0, 1.0):
            return torch.ones(batch, device=device)
        lo, hi = math.log(self.zoom[0]), math.log(self.zoom[1])
        return torch.exp(lo + (hi - lo) * torch.rand(batch, device=device, generator=generator))


def as_augment(value: Augment | Mapping | None, default: Augment) -> Augment:
    """An `Augment` from an instance, a mapping of its fields (from a config file) or None.

    Raises
    ------
    UmetaError
        If the mapping names a field that `Augment` does not have.
    """
    if value is None:
        return default
    if isinstance(value, Augment):
        return value
    if isinstance(value, Mapping):
        valid = set(asdict(Augment()))
        unknown = sorted(set(value) - valid)
        if unknown:
            raise UmetaError(f"unknown augmentation option {unknown[0]!r}; choose from: "
                             f"{', '.join(sorted(valid))}")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
        return Augment(**fields)
    raise UmetaError(f"an augmentation must be an Augment or a mapping of its fields; got "
                     f"{type(value).__name__}")


def affine_warp(x: Tensor, theta: Tensor) -> Tensor:
    """Resample each image through its own affine map (bilinear, zeros outside the image).

    Points inside the image but beyond the outermost pixel centres take the edge value, so a
    crop that touches the border is not darkened there; points outside the image are 0.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W), float
    theta : Tensor of shape (B, 2, 3)
        Output-to-input maps in normalised coordinates (``align_corners=False``).
    """
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(-1)  # (B, H, W)
    return out * inside[:, None]


def translate(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Shift each image by whole pixels, filling the uncovered border with 0.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
    dy, dx : Tensor of shape (B,), int64
        Downward and rightward shift of each image: ``out[b, :, i, j] = x[b, :, i - dy, j - dx]``.
    """
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device) - dy[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device) - dx[:, None]  # (B, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    out = x.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(b, c, h, w))
    return out * inside[:, None]


def _pair(name: str, value, low: float, high: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UmetaError(f"Augment.{name} must be a pair (low, high); got {value!r}") from None
    if not low <= a <= b <= high:
        raise UmetaError(f"Augment.{name} must satisfy {low:g} <= low <= high <= {high:g}; "
                         f"got {value!r}")
    return (a, b)


UMTRA_OMNIGLOT = Augment(shift=6, dropout=0.1)
"""UMTRA's query augmentation for Omniglot: random pixel zeroing and shifts of up to 6 pixels."""

PSCO_OMNIGLOT = Augment(crop_scale=(0.2, 1.0), flip=0.5)
"""PsCo's augmentation for Omniglot: random resized crop (area 0.2 .. 1) and horizontal flip."""
