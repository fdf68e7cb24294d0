"""Users' images of any size and colour converted to a model's input shape (C, H, W).

:func:`convert_images` does, in this order: colour to the model's channels (RGB to grayscale by
luminance, or grayscale repeated to RGB), polarity (Omniglot-style models want light ink on a
dark background: a light background, detected from the images' border pixels, is inverted),
padding to the model's aspect ratio with the background value (so shapes are not squashed), and
an antialiased resize (exact area averaging when shrinking, bilinear when enlarging). It returns
the converted images and a one-line note of what was done, e.g. ``converted 37 RGB images of
64x64 to grayscale 28x28, inverted (light background detected: border median 0.94)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.data.omniglot import area_weights
from umeta.errors import UmetaError

#: ITU-R BT.601 luma weights, as Pillow's ``convert("L")`` uses them.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Width of the border used to detect the background, as a fraction of the shorter side.
BORDER_FRACTION = 0.1


@dataclass
class Conversion:
    """Images converted to a model's input, and what was done to them.

    Attributes
    ----------
    images : Tensor of shape (N, C, H, W), float32 in [0, 1]
    note : str
        One line saying what was done, for the user.
    inverted : bool
    background : float
        Median over the images of each image's median border value before any inversion, in
        [0, 1] (after the colour conversion).
    """

    images: Tensor
    note: str
    inverted: bool
    background: float


def _as_unit_float(image: Tensor | np.ndarray, what: str) -> Tensor:
    """One image (C, H, W) as float32 in [0, 1]: uint8 / 255, floats checked to lie in [0, 1]."""
    x = torch.as_tensor(image)
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype == torch.bool:
        return x.float()
    if not x.is_floating_point():
        raise UmetaError(f"{what} has dtype {x.dtype}; give uint8 images or floats in [0, 1]")
    x = x.float()
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise UmetaError(f"{what} contains NaN or inf; remove or repair the image")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise UmetaError(f"{what} has values in [{float(x.min()):g}, {float(x.max()):g}]; "
                         f"scale the pixels to [0, 1] (or give uint8)")
    return x


def _image_list(images: Tensor | np.ndarray | Sequence) -> list[Tensor]:
    """The images as a list of float (C, H, W) tensors, C in {1, 3}."""
    if isinstance(images, (Tensor, np.ndarray)):
        x = torch.as_tensor(images)
        if x.dim() == 3:
            x = x[:, None]
        if x.dim() != 4:
            raise UmetaError(f"images must be (N, H, W) or (N, C, H, W); got shape "
                             f"{tuple(x.shape)}")
        items = list(x)
    else:
        items = [torch.as_tensor(a) for a in images]
        items = [a[None] if a.dim() == 2 else a for a in items]
    if not items:
        raise UmetaError("no images to convert; give at least one")
    out = []
    for i, item in enumerate(items):
        if item.dim() != 3 or item.shape[0] not in (1, 3) or min(item.shape[1:]) < 1:
            raise UmetaError(f"image {i} has shape {tuple(item.shape)}; each image must be "
                             f"(H, W) or (C, H, W) with C = 1 or 3")
        out.append(_as_unit_float(item, f"image {i}"))
    return out


def to_grayscale(x: Tensor) -> Tensor:
    """RGB (..., 3, H, W) to luminance (..., 1, H, W) with `LUMA_WEIGHTS`."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)
    return (x * weights[:, None, None]).sum(-3, keepdim=True)


def border_median(x: Tensor) -> Tensor:
    """Median of each image's border pixels (all channels), (N, C, H, W) -> (N,).

    The border is the frame of width ``max(1, round(BORDER_FRACTION * min(H, W)))``.
    """
    h, w = x.shape[-2:]
    b = max(1, round(BORDER_FRACTION * min(h, w)))
    mask = torch.ones(h, w, dtype=torch.bool, device=x.device)
    mask[b:h - b, b:w - b] = False
    return x[..., mask].flatten(1).median(1).values


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Antialiased resize of (N, C, H, W) to (N, C, *size), each axis on its own: exact area
    averaging (`umeta.data.omniglot.area_weights`) where it shrinks, bilinear where it grows."""
    (h, w), (out_h, out_w) = x.shape[-2:], size
    if out_h < h:
        x = torch.einsum("oh,nchw->ncow", area_weights(h, out_h).to(x), x)
    if out_w < w:
        x = torch.einsum("ow,nchw->ncho", area_weights(w, out_w).to(x), x)
    if x.shape[-2] < out_h or x.shape[-1] < out_w:
        x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return x.clamp_(0.0, 1.0)


def pad_to_aspect(x: Tensor, aspect: float, value: Tensor) -> Tensor:
    """Pad (N, C, H, W) evenly to the aspect ratio ``aspect`` = width / height, each image with
    its own ``value`` (N,)."""
    h, w = x.shape[-2:]
    if w / h < aspect:
        extra = round(h * aspect) - w
        pad = (extra // 2, extra - extra // 2, 0, 0)
    else:
        extra = round(w / aspect) - h
        pad = (0, 0, extra // 2, extra - extra // 2)
    if extra <= 0:
        return x
    level = value.to(x)[:, None, None, None]
    return F.pad(x - level, pad) + level


def _sizes_text(images: list[Tensor]) -> str:
    sizes = sorted({(int(a.shape[-1]), int(a.shape[-2])) for a in images})
    if len(sizes) == 1:
        return f"{sizes[0][0]}x{sizes[0][1]}"
    return f"sizes {sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}"


def convert_images(images: Tensor | np.ndarray | Sequence, image_shape: Sequence[int], *,
                   invert: bool | None = None, ink: str = "light") -> Conversion:
    """Convert images to a model's input shape and polarity.

    Parameters
    ----------
    images : Tensor or ndarray of shape (N, H, W) or (N, C, H, W), or a sequence of (H, W) /
        (C, H, W) images of any sizes; C in {1, 3}; uint8, bool or float in [0, 1].
    image_shape : (C, H, W)
        The model's input; C in {1, 3}.
    invert : bool or None
        None detects the polarity: the images are inverted when the median of their border
        medians (`border_median`) is on the wrong side of 0.5 for ``ink``. True / False force it
        (``--invert`` / ``--no-invert``).
    ink : {"light", "dark"}
        What the model was trained on: ``"light"`` ink on a dark background (Omniglot as umeta
        loads it) or ``"dark"`` ink on a light background.

    Returns
    -------
    Conversion with images of shape (N, *image_shape)
    """
    if len(image_shape) != 3 or image_shape[0] not in (1, 3) or min(image_shape) < 1:
        raise UmetaError(f"image_shape must be (C, H, W) with C = 1 or 3; got {tuple(image_shape)}")
    if ink not in ("light", "dark"):
        raise UmetaError(f"ink must be 'light' or 'dark'; got {ink!r}")
    c, h, w = (int(v) for v in image_shape)
    items = _image_list(images)
    colour = any(a.shape[0] == 3 and not (torch.equal(a[0], a[1]) and torch.equal(a[1], a[2]))
                 for a in items)
    source = "RGB" if colour else "grayscale"
    sizes = _sizes_text(items)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(items):
        groups.setdefault(tuple(a.shape[-2:]), []).append(i)
    batches = []  # images of one size are converted as one batch
    for index in groups.values():
        batch = torch.stack([items[i] for i in index])
        if batch.shape[1] == 3 and c == 1:
            batch = to_grayscale(batch)
        elif batch.shape[1] == 1 and c == 3:
            batch = batch.expand(-1, 3, -1, -1)
        batches.append((index, batch, border_median(batch)))
    background = float(torch.cat([levels for *_, levels in batches]).median())
    if invert is None:
        flip = (background > 0.5) != (ink == "dark")
        side = "light" if background > 0.5 else "dark"
        why = f"{side} background detected: border median {background:.2f}"
    else:
        flip = bool(invert)
        why = "--invert" if flip else "--no-invert"
    out: list[Tensor] = [torch.empty(0)] * len(items)
    padded = False
    for index, batch, levels in batches:
        if flip:
            batch, levels = 1.0 - batch, 1.0 - levels
        framed = pad_to_aspect(batch, w / h, levels)
        padded |= framed.shape[-2:] != batch.shape[-2:]
        framed = resize(framed, (h, w)) if framed.shape[-2:] != (h, w) else framed
        for i, image in zip(index, framed):
            out[i] = image
    x = torch.stack(out).contiguous()
    target = "grayscale" if c == 1 else "RGB"
    steps = [f"converted {len(items)} {source} images of {sizes} to {target} {w}x{h}"]
    if padded:
        steps.append(f"padded to {w}:{h} with the background")
    steps.append(f"{'inverted' if flip else 'not inverted'} ({why})")
    return Conversion(x, ", ".join(steps), flip, background)
