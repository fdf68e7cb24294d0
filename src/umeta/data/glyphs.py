"""Built-in offline data: procedural handwriting-like glyph classes (an Omniglot stand-in).

Each class is a "character" of one to four smooth pen strokes (cubic Bezier curves, often joined
to an earlier stroke); each sample redraws it with its own wobble: jittered control points, a
small random affine (rotation, scale, shear, shift), a smooth elastic warp and its own pen width.
Pixel distance is therefore a poor measure of class identity while the classes stay distinct to
the eye. Every random number is a counter-based hash of ``(seed, class, sample, ...)``, so class
``c`` looks the same whichever range of classes is generated, held-out classes are genuinely new,
and every sample can be regenerated alone. Rendering splats dense stroke points into the images
of a whole block at once (a scatter max): no per-image Python.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError

MAX_STROKES = 4
_POINTS_PER_STROKE = 16  # points per Bezier curve for a class's bounding box
_DENSE_POINTS = 64  # points per stroke drawn in a 28-pixel image (under ~0.6 px apart)
_MASK = 0xFFFFFFFF
_MIX = 0x45D9F3B  # < 2**27: a 32-bit value times this stays well inside int64
_GOLDEN = 0x9E3779B9
# per-sample variation: control-point noise, affine (radians, log-scale, ...), warp amplitude;
# lengths are in [-1, 1] image units (0.07 is about one pixel)
_CTRL_JITTER = 0.09
_ROTATION = 0.25
_SCALE = 0.12
_STRETCH = 0.08
_SHEAR = 0.12
_SHIFT = 0.14
_ELASTIC = 0.035
_BLOCK_ELEMENTS = 4_000_000  # (image, point, window pixel) triples splatted at once: ~100 MB

# stream ids: one per kind of random draw, so that adding a draw never shifts another
_S_NSTROKES, _S_STROKE, _S_JOIN = 1, 2, 3
_S_JITTER, _S_AFFINE, _S_ELASTIC, _S_WIDTH = 11, 12, 13, 14


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash applied elementwise to int64 values in ``[0, 2**32)``."""
    x = (((x >> 16) ^ x) * _MIX) & _MASK
    x = (((x >> 16) ^ x) * _MIX) & _MASK
    return (x >> 16) ^ x


def _uniform(seed: int, stream: int, ids: tuple[Tensor, ...], n: int) -> Tensor:
    """Counter-based uniforms in (0, 1) that depend only on ``(seed, stream, ids, position)``.

    Parameters
    ----------
    ids : tuple of int64 Tensors, broadcastable to a common shape ``B``
        E.g. ``(class_ids,)`` or ``(class_ids[:, None], sample_ids[None, :])``.
    n : int
        Numbers per entity.

    Returns
    -------
    Tensor of shape (*B, n), float32, on the device of ``ids``.
    """
    seed = int(seed)
    device = ids[0].device if ids else None
    h = _mix(torch.tensor(((seed ^ (seed >> 32)) & _MASK) ^ (stream * 0x2545F491 & _MASK),
                          device=device))
    for t in ids:
        h = _mix(h ^ (t.long() & _MASK))
    pos = torch.arange(n, dtype=torch.long, device=device) * _GOLDEN
    h = _mix((h.unsqueeze(-1) + pos) & _MASK)
    return ((h.double() + 0.5) / 2.0**32).float()


def _normal(seed: int, stream: int, ids: tuple[Tensor, ...], n: int) -> Tensor:
    """Standard normals of shape (*B, n) by Box-Muller over :func:`_uniform`."""
    u = _uniform(seed, stream, ids, 2 * n)
    return torch.sqrt(-2.0 * torch.log(u[..., :n])) * torch.cos(2.0 * math.pi * u[..., n:])


def _bezier(ctrl: Tensor, t: Tensor) -> Tensor:
    """Points of cubic Bezier curves.

    Parameters
    ----------
    ctrl : Tensor of shape (..., 4, 2)
        Control points.
    t : Tensor of shape (P,) or (..., P)
        Curve parameters in [0, 1], broadcast against the leading dimensions of ``ctrl``.

    Returns
    -------
    Tensor of shape (..., P, 2).
    """
    s = 1.0 - t
    w = torch.stack([s**3, 3 * s * s * t, 3 * s * t * t, t**3], dim=-1)  # (..., P, 4)
    return (w.unsqueeze(-1) * ctrl.unsqueeze(-3)).sum(-2)


def _class_strokes(classes: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """The template strokes of each class.

    Parameters
    ----------
    classes : Tensor of shape (C,), int64

    Returns
    -------
    ctrl : Tensor of shape (C, MAX_STROKES, 4, 2)
        Bezier control points in [-1, 1] image coordinates (x right, y down), glyph centred.
    active : Tensor of shape (C, MAX_STROKES), bool
        Which strokes the class uses (at least the first).
    """
    ids = (classes,)
    num_strokes = 1 + torch.bucketize(
        _uniform(seed, _S_NSTROKES, ids, 1)[:, 0], torch.tensor([0.2, 0.6, 0.9])
    )
    active = torch.arange(MAX_STROKES) < num_strokes[:, None]
    u = _uniform(seed, _S_STROKE, ids, MAX_STROKES * 6).view(-1, MAX_STROKES, 6)
    z = _normal(seed, _S_STROKE + 100, ids, MAX_STROKES * 4).view(-1, MAX_STROKES, 4)
    start = (u[..., 0:2] * 2 - 1) * 0.6
    angle = u[..., 2] * 2 * math.pi
    length = 0.45 + 0.85 * u[..., 3]
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    normal = torch.stack([-direction[..., 1], direction[..., 0]], -1)
    # inner control points: a third and two thirds along the chord, pushed sideways (curvature)
    bend = z * (0.15 + 0.45 * u[..., 4:5]) * length[..., None]
    along = torch.stack([1 / 3 + 0.2 * z[..., 2], 2 / 3 + 0.2 * z[..., 3]], -1)
    p0 = start
    p3 = start + direction * length[..., None]
    p1 = p0 + direction * (length * along[..., 0])[..., None] + normal * bend[..., 0:1]
    p2 = p0 + direction * (length * along[..., 1])[..., None] + normal * bend[..., 1:2]
    ctrl = torch.stack([p0, p1, p2, p3], dim=-2)  # (C, K, 4, 2)
    # join most later strokes to a point of an earlier one (an end, or somewhere along it)
    j = _uniform(seed, _S_JOIN, ids, MAX_STROKES * 3).view(-1, MAX_STROKES, 3)
    rows = torch.arange(len(classes))
    for k in range(1, MAX_STROKES):
        parent = (j[:, k, 0] * k).long().clamp_max(k - 1)
        where = torch.where(j[:, k, 1] < 0.5, (j[:, k, 1] < 0.25).float(), 2 * j[:, k, 1] - 1)
        anchor = _bezier(ctrl[rows, parent], where[:, None])[:, 0]
        joined = (j[:, k, 2] < 0.7)[:, None, None]
        shift = (anchor - ctrl[:, k, 0])[:, None, :]
        ctrl[:, k] = torch.where(joined, ctrl[:, k] + shift, ctrl[:, k])
    # centre the glyph and scale its bounding box into [-0.65, 0.65]
    pts = _bezier(ctrl, torch.linspace(0, 1, _POINTS_PER_STROKE))  # (C, K, P, 2)
    big = torch.tensor(1e6)
    mask = active[:, :, None, None]
    lo = torch.where(mask, pts, big).amin((1, 2))
    hi = torch.where(mask, pts, -big).amax((1, 2))
    centre = (lo + hi) / 2
    scale = 1.3 / (hi - lo).amax(-1).clamp_min(0.3)
    ctrl = (ctrl - centre[:, None, None]) * scale[:, None, None, None]
    return ctrl, active


def _sample_points(
    ctrl: Tensor, classes: Tensor, num_samples: int, image_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Stroke points of every sample: jittered strokes through a random affine and elastic warp.

    Parameters
    ----------
    ctrl : Tensor of shape (C, K, 4, 2)
        Class template strokes.
    classes : Tensor of shape (C,), int64
    num_samples : int
        ``S``, samples per class.
    image_size : int
        Sets the number ``P`` of points per stroke (dense enough to draw).

    Returns
    -------
    points : Tensor of shape (C, S, K, P, 2)
        In [-1, 1] image coordinates.
    width : Tensor of shape (C, S)
        Pen half-width, in units of a 28-pixel image's pixel.
    """
    C, K = ctrl.shape[:2]
    ids = (classes[:, None], torch.arange(num_samples)[None, :])
    jitter = _normal(seed, _S_JITTER, ids, K * 8).view(C, num_samples, K, 4, 2)
    ctrl = ctrl[:, None] + _CTRL_JITTER * jitter
    dense = int(math.ceil(_DENSE_POINTS * image_size / 28))
    pts = _bezier(ctrl, torch.linspace(0, 1, dense))  # (C, S, K, P, 2)
    a = _normal(seed, _S_AFFINE, ids, 6)  # (C, S, 6)
    rot = _ROTATION * a[..., 0]
    scale = torch.exp(_SCALE * a[..., 1])
    stretch = torch.exp(_STRETCH * a[..., 2])
    shear = _SHEAR * a[..., 3]
    cos, sin = torch.cos(rot), torch.sin(rot)
    sx, sy = scale * stretch, scale / stretch
    # matrix = rotation @ shear @ diag(sx, sy)
    m00, m01 = cos * sx, (cos * shear - sin) * sy
    m10, m11 = sin * sx, (sin * shear + cos) * sy
    mat = torch.stack([m00, m01, m10, m11], -1).view(C, num_samples, 1, 1, 2, 2)
    shift = (_SHIFT * a[..., 4:6]).view(C, num_samples, 1, 1, 2)
    pts = (mat @ pts.unsqueeze(-1)).squeeze(-1) + shift
    # elastic warp: per axis, two sinusoidal waves with random direction, frequency and phase
    e = _uniform(seed, _S_ELASTIC, ids, 16).view(C, num_samples, 1, 1, 4, 4)
    angle = 2 * math.pi * e[..., 0]
    freq = 1.5 + 2.0 * e[..., 1]
    arg = freq * (torch.cos(angle) * pts[..., 0:1] + torch.sin(angle) * pts[..., 1:2])
    wave = torch.sin(arg + 2 * math.pi * e[..., 2])  # (C, S, K, P, 4)
    pts = pts + _ELASTIC * wave.view(*wave.shape[:-1], 2, 2).sum(-1)
    width = 0.75 + 0.7 * _uniform(seed, _S_WIDTH, ids, 1)[..., 0]
    return pts, width


def _render(points: Tensor, active: Tensor, width: Tensor, image_size: int) -> Tensor:
    """Anti-aliased pen strokes as uint8 images, ink 255, by splatting dense stroke points.

    Each point inks the pixels of a small window around it by ``clamp(radius - distance + 0.5)``;
    a pixel keeps the darkest value over all points (a scatter max), which equals the distance to
    the stroke when the points are denser than about half a pixel.

    Parameters
    ----------
    points : Tensor of shape (N, K, P, 2)
        Dense stroke points in [-1, 1] image coordinates.
    active : Tensor of shape (N, K), bool
    width : Tensor of shape (N,)
        Pen half-width in 28-pixel-image pixels (scaled with ``image_size``).

    Returns
    -------
    Tensor of shape (N, 1, image_size, image_size), uint8.
    """
    n, _, p_count, _ = points.shape
    size = image_size
    radius = width * (size / 28)
    reach = int(math.ceil(float(radius.max()) + 0.5)) if n else 1
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float32)
    pix = (points + 1) * (size / 2) - 0.5  # pixel (i, j) has its centre at (i, j)
    on = active.repeat_interleave(p_count, dim=1)  # (N, K * P)
    out = torch.empty(n, size * size, dtype=torch.uint8)
    chunk = max(1, _BLOCK_ELEMENTS // (on.shape[1] * len(offsets) ** 2))
    for lo in range(0, n, chunk):
        p = pix[lo:lo + chunk].flatten(1, 2)  # (n, M, 2)
        px, py = p[..., 0, None, None], p[..., 1, None, None]
        ix = px.round() + offsets.view(1, 1, 1, -1)  # (n, M, 1, W)
        iy = py.round() + offsets.view(1, 1, -1, 1)  # (n, M, W, 1)
        dist = ((ix - px).square() + (iy - py).square()).sqrt_()  # (n, M, W, W)
        r = radius[lo:lo + chunk].view(-1, 1, 1, 1)
        ink = (r - dist + 0.5).clamp_(0.0, 1.0)
        inside = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
        ink = ink * (inside & on[lo:lo + chunk, :, None, None])
        index = (iy.clamp(0, size - 1) * size + ix.clamp(0, size - 1)).long().expand_as(ink)
        img = torch.zeros(p.shape[0], size * size)
        img.scatter_reduce_(1, index.flatten(1), ink.flatten(1), "amax")
        out[lo:lo + chunk] = (img * 255).round_().to(torch.uint8)
    return out.view(n, 1, size, size)


def check_set_sizes(maker: str, num_classes: int, samples_per_class: int, image_size: int,
                    first_class: int) -> None:
    """Raise `UmetaError` unless the sizes of a generated set are integers in range (at least
    1 class and sample, images of at least 8 pixels, a first class >= 0)."""
    checks = (("num_classes", num_classes, 1), ("samples_per_class", samples_per_class, 1),
              ("image_size", image_size, 8), ("first_class", first_class, 0))
    for arg, value, least in checks:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
            raise UmetaError(f"{maker}: {arg} must be an integer >= {least}; got {value!r}")


def make_glyphs(
    num_classes: int,
    samples_per_class: int = 20,
    image_size: int = 28,
    seed: int = 0,
    first_class: int = 0,
    name: str | None = None,
) -> ImageSet:
    """Procedural handwriting-like glyphs: classes ``first_class .. first_class + num_classes - 1``.

    Class ``c``'s strokes depend only on ``(seed, c)`` and its ``i``-th sample only on
    ``(seed, c, i)``, so disjoint class ranges give genuinely different characters.

    Parameters
    ----------
    num_classes : int
        Number of classes, >= 1.
    samples_per_class : int
        Drawings of each class, >= 1.
    image_size : int
        Side of the square images in pixels, >= 8.
    seed : int
        Seed of the whole alphabet.
    first_class : int
        Index of the first class, >= 0.
    name : str, optional
        Name of the set, for reports; default ``"glyphs(seed=S)"``.

    Returns
    -------
    ImageSet
        ``images`` uint8 of shape (num_classes * samples_per_class, 1, image_size, image_size),
        ink 255 on 0; labels ``0 .. num_classes - 1``, images grouped by class; class names
        ``"glyphNNNN"`` after the global class index; no groups.

    Raises
    ------
    UmetaError
        If a count or size is out of range.
    """
    check_set_sizes("make_glyphs", num_classes, samples_per_class, image_size, first_class)
    classes = torch.arange(first_class, first_class + num_classes, dtype=torch.long)
    ctrl, active = _class_strokes(classes, seed)
    points, width = _sample_points(ctrl, classes, samples_per_class, image_size, seed)
    act = active[:, None].expand(-1, samples_per_class, -1)
    images = _render(points.flatten(0, 1), act.flatten(0, 1), width.flatten(), image_size)
    labels = torch.arange(num_classes).repeat_interleave(samples_per_class)
    names = [f"glyph{c:04d}" for c in classes.tolist()]
    return ImageSet(images, labels, names, None, name or f"glyphs(seed={seed})")


def builtin_glyph_splits(
    num_seen: int = 600,
    num_unseen: int = 200,
    samples_per_class: int = 20,
    image_size: int = 28,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet]:
    """Disjoint seen (meta-training) and unseen (meta-test) glyph classes.

    Seen classes are ``0 .. num_seen - 1``, unseen ones ``num_seen .. num_seen + num_unseen - 1``
    of the same seed: new characters, drawn the same way.

    Returns
    -------
    (seen, unseen) : tuple of ImageSet
        Named ``"glyphs-seen"`` and ``"glyphs-unseen"``.
    """
    for arg, value in (("num_seen", num_seen), ("num_unseen", num_unseen)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise UmetaError(f"builtin_glyph_splits: {arg} must be an integer >= 1; got {value!r}")
    seen = make_glyphs(num_seen, samples_per_class, image_size, seed, 0, "glyphs-seen")
    unseen = make_glyphs(num_unseen, samples_per_class, image_size, seed, num_seen, "glyphs-unseen")
    return seen, unseen
