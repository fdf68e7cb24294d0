"""Label maps as pictures and files: colours per segment, overlays with boundaries, PNG writing.

A label map is saved as a palette PNG whose pixel values *are* the labels (any image reader
gives them back; viewers show the palette's colours), or as 16-bit greyscale when there are
more than 256 labels. Files are written atomically (`umeta.files`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from umeta.files import atomic_path

#: Distinct colours of the first segments (then golden-ratio hues).
_BASE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60],
                  [250, 190, 212], [0, 128, 128], [220, 190, 255], [170, 110, 40],
                  [255, 250, 200], [128, 0, 0], [170, 255, 195]], dtype=np.uint8)


def label_colours(n: int) -> np.ndarray:
    """``n`` distinct RGB colours, uint8 (n, 3)."""
    if n <= len(_BASE):
        return _BASE[:n].copy()
    hue = (np.arange(n - len(_BASE)) * 0.618034) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + 6 * hue[:, None]) % 6
    extra = 1 - 0.8 * np.clip(np.minimum(k, 4 - k), 0, 1)
    return np.concatenate([_BASE, (extra * 230).astype(np.uint8)])


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels (H, W) bool whose right or lower neighbour has another label.

    Examples
    --------
    >>> boundaries(np.array([[0, 0, 1]])).tolist()
    [[False, True, False]]
    """
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image tinted by its segments' colours, with the boundaries in white.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), float in [0, 1]
    labels : ndarray of shape (H, W), int, values >= 0
    alpha : float
        Weight of the segment colours.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Examples
    --------
    >>> overlay(np.zeros((2, 2)), np.array([[0, 1], [0, 1]])).shape
    (2, 2, 3)
    """
    rgb = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
    colours = label_colours(int(labels.max()) + 1)[labels].astype(np.float64) / 255
    mixed = (1 - alpha) * rgb + alpha * colours
    mixed[boundaries(labels)] = 1.0
    return (np.clip(mixed, 0, 1) * 255).round().astype(np.uint8)


def save_png(picture: Image.Image, path: str | Path) -> None:
    """Write a PIL image as PNG to ``path`` atomically."""
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def label_map_picture(labels: np.ndarray) -> Image.Image:
    """A label map (H, W) as a palette image (16-bit greyscale beyond 256 labels).

    Examples
    --------
    >>> label_map_picture(np.array([[0, 1], [2, 1]])).mode
    'P'
    """
    labels = np.asarray(labels)
    count = int(labels.max()) + 1
    if count > 256:
        return Image.fromarray(labels.astype(np.uint16))
    picture = Image.fromarray(labels.astype(np.uint8))  # "L"; the palette makes it "P"
    picture.putpalette(label_colours(count).ravel().tolist())
    return picture


__all__ = ["boundaries", "label_colours", "label_map_picture", "overlay", "save_png"]
