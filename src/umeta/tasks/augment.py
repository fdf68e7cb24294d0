"""Batched, seeded image augmentations that run on the images' device.

Every random draw comes from a `torch.Generator` passed in by the caller, and every operation acts
on a whole batch ``(B, C, H, W)`` at once: geometric changes (fitting the ink's bounding box to a
random size and place, random resized crop, rotation, zoom, shear, a smooth elastic warp) are one
sampling grid per image applied by a single ``grid_sample``; flips, integer shifts and pixel
dropout are exact index arithmetic and masks; stroke width is grey-level morphology (max- and
min-pooling), blur a per-image Gaussian (one grouped convolution per axis). The photometric
changes (gamma, ink shading, contrast and background level, polarity, noise) are elementwise.
Pixels that come from outside the image are 0 (the background of `ImageSet` images such as
Omniglot, where ink is 1).

The domain-randomisation fields (``ink_fit`` .. ``noise``) exist so that a meta-learned prior does
not learn one data set's drawing style; they are all off by default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.errors import UmetaError

MAX_STROKE_RADIUS = 4.0  # pixels
MAX_BLUR_SIGMA = 4.0  # pixels
_ELASTIC_GRID = 4  # control points per side of the elastic and shading fields
_IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class Augment:
    """Strengths of a random augmentation; the default (all off) is the identity.

    Applied in this order: ink fit, elastic warp, random resized crop and affine map (one
    ``grid_sample``), horizontal flip, integer shift, stroke width, blur, pixel dropout, gamma,
    shading, contrast and background, polarity, noise. A field that is off draws no random
    numbers, so turning new fields on never changes what the others draw.

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
    ink_fit : (float, float)
        Range of the size of the ink's bounding box after the fit, as a fraction of the image's
        shorter side: the box (pixels above a tenth of the image's maximum) is scaled, keeping its
        aspect ratio, so that its longer side has that size; ``(0, 0)`` means no fit. Blank images
        are left as they are.
    ink_place : float
        In [0, 1]: how far the fitted box's centre may move from the image centre, as a fraction
        of the room left around the box (0 = centred, 1 = anywhere that keeps it inside).
    elastic : float
        Largest amplitude, in pixels, of a smooth random displacement field (a 4 x 4 grid of
        normal displacements, bicubically upsampled); each image draws its amplitude uniformly
        in ``[0, elastic]``.
    stroke : (float, float)
        Range of the radius, in pixels, of a grey-level dilation (> 0: thicker strokes) or
        erosion (< 0: thinner) with a 3 x 3 square per pixel of radius; fractional radii blend the
        two nearest whole ones. ``(0, 0)`` means none.
    blur : (float, float)
        Range of the standard deviation, in pixels, of a Gaussian blur; ``(0, 0)`` means none.
    gamma : (float, float)
        Range of the exponent of ``x ** gamma``, sampled log-uniformly (< 1 brightens faint
        ink); ``(1, 1)`` means none.
    shading : float
        In [0, 1]: the ink is multiplied by ``1 - a * T`` with ``T`` a smooth random field in
        [0, 1] and ``a`` uniform in ``[0, shading]`` (uneven ink, texture-like fills).
    contrast : (float, float)
        Range of the ink level ``c`` in (0, 1]: ``x -> b + c * (1 - b) * x``.
    background : (float, float)
        Range of the background level ``b`` in [0, 1) of the same map; ``(0, 0)`` keeps it black.
    invert : float
        Probability of inverting the polarity, ``x -> 1 - x`` (after contrast and background).
    noise : float
        Largest standard deviation of additive Gaussian pixel noise (uniform per image in
        ``[0, noise]``); the result is clipped to [0, 1].
    """

    crop_scale: tuple[float, float] = (1.0, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotate: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    shear: float = 0.0
    flip: float = 0.0
    shift: int = 0
    dropout: float = 0.0
    ink_fit: tuple[float, float] = (0.0, 0.0)
    ink_place: float = 0.0
    elastic: float = 0.0
    stroke: tuple[float, float] = (0.0, 0.0)
    blur: tuple[float, float] = (0.0, 0.0)
    gamma: tuple[float, float] = (1.0, 1.0)
    shading: float = 0.0
    contrast: tuple[float, float] = (1.0, 1.0)
    background: tuple[float, float] = (0.0, 0.0)
    invert: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name, low, high in (("crop_scale", 1e-3, 1.0), ("crop_ratio", 1e-2, 1e2),
                                ("zoom", 1e-2, 1e2), ("stroke", -MAX_STROKE_RADIUS,
                                                      MAX_STROKE_RADIUS),
                                ("blur", 0.0, MAX_BLUR_SIGMA), ("gamma", 0.1, 10.0),
                                ("contrast", 0.01, 1.0), ("background", 0.0, 0.99)):
            object.__setattr__(self, name, _pair(name, getattr(self, name), low, high))
        fit = _pair("ink_fit", self.ink_fit, 0.0, 4.0)
        if fit[0] == 0 < fit[1]:
            raise UmetaError(f"Augment.ink_fit must be (0, 0) (off) or a range of sizes > 0; "
                             f"got {self.ink_fit!r}")
        object.__setattr__(self, "ink_fit", fit)
        for name, value, top in (("rotate", self.rotate, 180.0), ("shear", self.shear, 80.0),
                                 ("flip", self.flip, 1.0), ("dropout", self.dropout, 1.0),
                                 ("ink_place", self.ink_place, 1.0),
                                 ("elastic", self.elastic, 10.0), ("shading", self.shading, 1.0),
                                 ("invert", self.invert, 1.0), ("noise", self.noise, 1.0)):
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
    def fits_ink(self) -> bool:
        return self.ink_fit != (0.0, 0.0)

    @property
    def photometric(self) -> bool:
        """Whether gamma, shading, contrast, background, polarity or noise is on."""
        return (self.gamma != (1.0, 1.0) or self.shading > 0 or self.contrast != (1.0, 1.0)
                or self.background != (0.0, 0.0) or self.invert > 0 or self.noise > 0)

    @property
    def is_identity(self) -> bool:
        return (not self.warps and not self.fits_ink and self.elastic == 0 and self.flip == 0
                and self.shift == 0 and self.stroke == (0.0, 0.0) and self.blur == (0.0, 0.0)
                and self.dropout == 0 and not self.photometric)

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
        if self.fits_ink or self.elastic > 0:
            theta = (self.sample_warp(b, h, w, generator, dev) if self.warps
                     else _IDENTITY.to(dev, x.dtype).expand(b, 2, 3))
            if self.fits_ink:
                theta = compose_affine(self.sample_ink_fit(x, generator), theta)
            shift = self.sample_elastic(b, h, w, generator, dev) if self.elastic > 0 else None
            x = grid_warp(x, theta, shift)
        elif self.warps:
            x = affine_warp(x, self.sample_warp(b, h, w, generator, dev))
        if self.flip > 0:
            flip = torch.rand(b, device=dev, generator=generator) < self.flip
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.shift > 0:
            dy, dx = torch.randint(-self.shift, self.shift + 1, (2, b), device=dev,
                                   generator=generator)
            x = translate(x, dy, dx)
        if self.stroke != (0.0, 0.0):
            x = morph(x, _uniform(self.stroke, b, generator, dev),
                      max(abs(self.stroke[0]), abs(self.stroke[1])))
        if self.blur != (0.0, 0.0):
            x = gaussian_blur(x, _uniform(self.blur, b, generator, dev), self.blur[1])
        if self.dropout > 0:
            keep = torch.rand(b, 1, h, w, device=dev, generator=generator) >= self.dropout
            x = x * keep
        if self.photometric:
            x = self._photometric(x, generator)
        return x

    def _photometric(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Gamma, shading, contrast and background, polarity and noise; values stay in [0, 1]."""
        b, dev = x.shape[0], x.device
        col = (b, 1, 1, 1)
        if self.gamma != (1.0, 1.0):
            lo, hi = math.log(self.gamma[0]), math.log(self.gamma[1])
            x = x.clamp_min(0.0) ** torch.exp(_uniform((lo, hi), b, generator, dev)).view(col)
        if self.shading > 0:
            amount = self.shading * torch.rand(col, device=dev, generator=generator)
            x = x * (1 - amount * smooth_field(b, x.shape[-2], x.shape[-1], generator, dev))
        if self.contrast != (1.0, 1.0) or self.background != (0.0, 0.0):
            ink = _uniform(self.contrast, b, generator, dev).view(col)
            back = _uniform(self.background, b, generator, dev).view(col)
            x = back + ink * (1 - back) * x
        if self.invert > 0:
            flip = torch.rand(col, device=dev, generator=generator) < self.invert
            x = torch.where(flip, 1 - x, x)
        if self.noise > 0:
            sigma = self.noise * torch.rand(col, device=dev, generator=generator)
            x = x + sigma * torch.randn(x.shape, device=dev, generator=generator, dtype=x.dtype)
        return x.clamp(0.0, 1.0)

    def sample_ink_fit(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Maps (B, 2, 3), output to input, that fit each image's ink box to a random size and place.

        In ``grid_sample``'s normalised frame (x first), for :func:`grid_warp`.
        """
        b, _, h, w = x.shape
        dev = x.device
        lo, hi = ink_box(x)  # (B, 2) normalised corners, x first
        half_px = torch.tensor([w / 2, h / 2], device=dev, dtype=x.dtype)
        extent = ((hi - lo) * half_px).amax(-1)  # longer side in pixels, (B,)
        blank = extent <= 0
        size = _uniform(self.ink_fit, b, generator, dev).to(x.dtype) * min(h, w)
        k = torch.where(blank, torch.ones_like(size), size / extent.clamp_min(1e-6))  # zoom
        room = (1 - (hi - lo) * k[:, None] / 2).clamp_min(0.0)  # free half-width, normalised
        u = torch.rand(b, 2, device=dev, generator=generator, dtype=x.dtype)
        centre = torch.where(blank[:, None], torch.zeros_like(lo),
                             self.ink_place * (2 * u - 1) * room)
        # output p -> input (p - centre) / k + box centre
        linear = torch.eye(2, device=dev, dtype=x.dtype) / k[:, None, None]
        offset = (lo + hi) / 2 - centre / k[:, None]
        return torch.cat([linear, offset[:, :, None]], -1)

    def sample_elastic(self, batch: int, height: int, width: int, generator: torch.Generator,
                       device: torch.device) -> Tensor:
        """Smooth displacements (B, H, W, 2) in ``grid_sample``'s normalised units (x first)."""
        amount = self.elastic * torch.rand(batch, 1, 1, 1, device=device, generator=generator)
        coarse = torch.randn(batch, 2, _ELASTIC_GRID, _ELASTIC_GRID, device=device,
                             generator=generator)
        field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
        to_norm = torch.tensor([2 / width, 2 / height], device=device)
        return (amount * field).permute(0, 2, 3, 1) * to_norm

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


def compose_affine(outer: Tensor, inner: Tensor) -> Tensor:
    """The map ``p -> outer(inner(p))`` of two batches of affine maps (B, 2, 3)."""
    linear = outer[:, :, :2] @ inner[:, :, :2]
    offset = outer[:, :, :2] @ inner[:, :, 2:] + outer[:, :, 2:]
    return torch.cat([linear, offset], -1)


def grid_warp(x: Tensor, theta: Tensor, shift: Tensor | None = None) -> Tensor:
    """Resample each image at ``theta(p + shift(p))``: an elastic shift, then an affine map.

    Bilinear, with the same border rule as :func:`affine_warp` (points outside the image are 0).

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W), float
    theta : Tensor of shape (B, 2, 3)
        Output-to-input maps in normalised coordinates (``align_corners=False``).
    shift : Tensor of shape (B, H, W, 2), optional
        Displacement of each output point before the affine map, normalised units (x first).
    """
    b, _, h, w = x.shape
    theta = theta.to(x.dtype)
    eye = _IDENTITY.to(x.device, x.dtype).expand(b, 2, 3)
    points = F.affine_grid(eye, list(x.shape), align_corners=False)  # (B, H, W, 2)
    if shift is not None:
        points = points + shift.to(x.dtype)
    grid = points @ theta[:, None, :, :2].transpose(-1, -2) + theta[:, None, None, :, 2]
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(-1)
    return out * inside[:, None]


def ink_box(x: Tensor, threshold: float = 0.1) -> tuple[Tensor, Tensor]:
    """Bounding box of each image's ink: pixels above ``threshold`` times the image's maximum.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)

    Returns
    -------
    (low, high) : Tensors of shape (B, 2)
        The box's corners (x first) in ``grid_sample``'s normalised frame (pixel edges, so a
        one-pixel box has width 2 / W); both are 0 for a blank image.
    """
    b, _, h, w = x.shape
    level = x.amax(1)  # (B, H, W)
    ink = level > threshold * level.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    ink = ink & (level > 0)
    rows, cols = ink.any(2), ink.any(1)  # (B, H), (B, W)
    blank = ~rows.any(1)

    def span(mask: Tensor, n: int) -> tuple[Tensor, Tensor]:
        first = mask.float().argmax(1)
        last = n - 1 - mask.flip(1).float().argmax(1)
        return -1 + 2 * first / n, -1 + 2 * (last + 1) / n

    x0, x1 = span(cols, w)
    y0, y1 = span(rows, h)
    low = torch.stack([x0, y0], -1).to(x.dtype)
    high = torch.stack([x1, y1], -1).to(x.dtype)
    zero = torch.zeros_like(low)
    return torch.where(blank[:, None], zero, low), torch.where(blank[:, None], zero, high)


def morph(x: Tensor, radius: Tensor, max_radius: float | None = None) -> Tensor:
    """Grey-level dilation (radius > 0) or erosion (< 0) of each image by its own radius.

    Radius ``r`` is ``|r|`` steps of a 3 x 3 max-pool (dilation) or min-pool (erosion); a
    fractional radius blends the results of the two nearest whole radii linearly. Pixels beyond
    the border never take part (ink touching the border is not eroded from outside).

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
    radius : Tensor of shape (B,)
    max_radius : float, optional
        A bound on ``|radius|`` (saves reading it from the device); radii beyond it are clipped.
    """
    if max_radius is None:
        max_radius = float(radius.abs().max()) if len(radius) else 0.0
    top = int(math.ceil(max_radius))
    if top == 0:
        return x
    levels = [x]
    for sign in (1, -1):  # dilations 1 .. top, then erosions 1 .. top
        y = x
        for _ in range(top):
            y = sign * F.max_pool2d(sign * y, 3, stride=1, padding=1)
            levels.append(y)
    # index of radius r in `levels`: 0 -> 0, +k -> k, -k -> top + k
    stack = torch.stack(levels)  # (1 + 2 * top, B, C, H, W)
    r = radius.to(x.dtype).clamp(-top, top)
    low = r.floor()
    frac = (r - low).view(-1, 1, 1, 1)

    def take(k: Tensor) -> Tensor:
        k = k.long()
        index = torch.where(k >= 0, k, top - k)
        return stack[index, torch.arange(len(k), device=x.device)]

    return take(low) * (1 - frac) + take((low + 1).clamp_max(top)) * frac


def gaussian_blur(x: Tensor, sigma: Tensor, max_sigma: float | None = None) -> Tensor:
    """Blur each image with its own Gaussian (zeros beyond the border); sigma 0 is the identity.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
    sigma : Tensor of shape (B,)
        Standard deviations in pixels.
    max_sigma : float, optional
        A bound on ``sigma`` (saves reading it from the device); it sets the kernel's reach.
    """
    b, c, h, w = x.shape
    if max_sigma is None:
        max_sigma = float(sigma.max()) if b else 0.0
    reach = int(math.ceil(3 * max_sigma))
    if reach == 0:
        return x
    t = torch.arange(-reach, reach + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-6)[:, None]
    kernel = torch.exp(-0.5 * (t / s) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B * C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(y, kernel[:, None, :, None], padding=(reach, 0), groups=b * c)
    y = F.conv2d(y, kernel[:, None, None, :], padding=(0, reach), groups=b * c)
    return y.view(b, c, h, w)


def smooth_field(batch: int, height: int, width: int, generator: torch.Generator,
                 device: torch.device) -> Tensor:
    """Smooth random fields in [0, 1], shape (B, 1, H, W): 4 x 4 uniforms upsampled bicubically."""
    coarse = torch.rand(batch, 1, _ELASTIC_GRID, _ELASTIC_GRID, device=device, generator=generator)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    return field.clamp(0.0, 1.0)


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


def _uniform(bounds: tuple[float, float], n: int, generator: torch.Generator,
             device: torch.device) -> Tensor:
    """``n`` uniforms in ``[low, high]``, shape (n,)."""
    low, high = bounds
    return low + (high - low) * torch.rand(n, device=device, generator=generator)


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
