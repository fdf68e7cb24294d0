"""Input standardisation a model can rely on: contrast stretch, then ink bounding-box framing.

The same batched function, :func:`standardize_ink`, is meant to run on meta-training batches
(as a preprocess of the task builders) and on new data at adaptation time, so that a model
always sees its inputs framed alike, whatever the source's scale, placement and contrast:

1. :func:`stretch_contrast`: each image's values mapped linearly so that its darkest pixel is 0
   and its brightest 1 (a blank image is left as it is);
2. :func:`frame_ink`: a window of the image's aspect ratio, centred on the bounding box of the
   pixels above ``threshold``, is resampled (0 outside the image) to the image's size, so that
   the box's longer side (relative to the frame) spans ``1 - 2 * margin`` of the output.

Images must already be in the model's polarity, ink high on a dark (0) background
(`umeta.data.convert` makes them so). The default margin, 0.16, frames the ink as Omniglot's own
characters are framed at 28x28: the longer side of their ink box (threshold 0.2) is a median
0.68 of the image side over the 19,280 background images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.errors import UmetaError

#: Fraction of the output side left empty on each side of the ink box (see the module docstring).
OMNIGLOT_MARGIN = 0.16


def _check_images(x: Tensor) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise UmetaError(f"standardisation takes float images (N, C, H, W) in [0, 1]; got "
                         f"{x.dtype} of shape {tuple(x.shape)}")


def stretch_contrast(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Map each image's values linearly onto [0, 1] (its minimum to 0, its maximum to 1).

    Parameters
    ----------
    x : Tensor of shape (N, C, H, W), float
    eps : float
        Images whose values span less than this are returned unchanged.

    Returns
    -------
    Tensor of shape (N, C, H, W)
    """
    _check_images(x)
    flat = x.flatten(1)
    lo, hi = flat.amin(1), flat.amax(1)
    span = hi - lo
    flat_ok = span > eps
    scale = torch.where(flat_ok, 1.0 / span.clamp_min(eps), torch.ones_like(span))
    shift = torch.where(flat_ok, lo, torch.zeros_like(lo))
    return (x - shift[:, None, None, None]) * scale[:, None, None, None]


def ink_boxes(x: Tensor, threshold: float = 0.2) -> Tensor:
    """Bounding boxes of the pixels above ``threshold`` (any channel), (N, C, H, W) -> (N, 4).

    Rows ``(top, left, bottom, right)`` in pixels, bottom and right exclusive; an image with no
    such pixel gets the whole frame ``(0, 0, H, W)``.
    """
    _check_images(x)
    h, w = x.shape[-2:]
    mask = x.amax(1) > threshold  # (N, H, W)
    rows, cols = mask.any(2), mask.any(1)

    def extent(hit: Tensor, size: int) -> tuple[Tensor, Tensor]:
        first = hit.float().argmax(1)
        last = size - hit.flip(1).float().argmax(1)
        empty = ~hit.any(1)
        return (torch.where(empty, torch.zeros_like(first), first),
                torch.where(empty, torch.full_like(last, size), last))

    top, bottom = extent(rows, h)
    left, right = extent(cols, w)
    return torch.stack([top, left, bottom, right], 1)


def frame_ink(x: Tensor, *, margin: float = OMNIGLOT_MARGIN, threshold: float = 0.2,
              max_zoom: float = 4.0, oversample: int = 4) -> Tensor:
    """Re-frame each image around its ink box (see the module docstring), same size out.

    Parameters
    ----------
    x : Tensor of shape (N, C, H, W), float, ink high on a 0 background
    margin : float
        Empty fraction of the output side on each side of the box, in [0, 0.5).
    threshold : float
        Pixels above it count as ink for the box.
    max_zoom : float
        Largest enlargement (a tiny mark is not blown up beyond this).
    oversample : int
        Each output pixel is the mean of ``oversample ** 2`` bilinear samples (antialiasing when
        the box is shrunk).

    Returns
    -------
    Tensor of shape (N, C, H, W); pixels from outside the input are 0.
    """
    _check_images(x)
    if not 0.0 <= margin < 0.5 or max_zoom < 1.0 or int(oversample) != oversample or oversample < 1:
        raise UmetaError(f"frame_ink needs 0 <= margin < 0.5, max_zoom >= 1 and a whole "
                         f"oversample >= 1; got {margin}, {max_zoom}, {oversample}")
    n, c, h, w = x.shape
    box = ink_boxes(x, threshold).to(x.dtype)
    cy, cx = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    # the window, as a fraction of the frame: the box's longer side (relative to the frame's)
    # over 1 - 2 * margin; the window has the frame's aspect ratio
    fraction = torch.maximum((box[:, 2] - box[:, 0]) / h, (box[:, 3] - box[:, 1]) / w)
    scale = (fraction / (1.0 - 2.0 * margin)).clamp_min(1.0 / max_zoom)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, 0, 2] = 2 * cx / w - 1
    theta[:, 1, 2] = 2 * cy / h - 1
    grid = F.affine_grid(theta, [n, c, h * oversample, w * oversample], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(out, oversample) if oversample > 1 else out


def standardize_ink(x: Tensor, *, margin: float = OMNIGLOT_MARGIN, threshold: float = 0.2,
                    max_zoom: float = 4.0, oversample: int = 4) -> Tensor:
    """:func:`stretch_contrast` then :func:`frame_ink` (same arguments), clamped to [0, 1].

    Parameters
    ----------
    x : Tensor of shape (N, C, H, W), float in [0, 1], ink high
        uint8 images are scaled by 1 / 255 first.

    Returns
    -------
    Tensor of shape (N, C, H, W), float in [0, 1]
    """
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    framed = frame_ink(stretch_contrast(x), margin=margin, threshold=threshold,
                       max_zoom=max_zoom, oversample=oversample)
    return framed.clamp_(0.0, 1.0)
