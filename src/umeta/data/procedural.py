"""A procedural image prior: unlimited classes of strokes, outlines, filled and textured shapes.

Each class is a small scene of one to three parts drawn over each other in order. A part is an
open pen stroke (a cubic Bezier curve), the outline of a closed shape, a filled shape, a shape
filled with a texture (stripes, checks, dots or a ramp) or a "cut": a stroke of background drawn
over the parts before it. Closed shapes are star-shaped polygons: irregular 3- to 8-gons or smooth
blobs (a circle with random harmonics), stretched and rotated. A class also fixes its pen width
(from hairlines to bold), the grey level of each part and the size of the whole scene in the
frame (from a small mark to one that fills it). Each sample redraws the class with its own
jitter of every shape parameter, a small random affine map, a smooth elastic warp and pen width,
so classes are many and varied in style while their samples stay alike.

Every random number is a counter-based hash of ``(seed, class, sample, ...)`` (the hash of
`umeta.data.glyphs`), so class ``c`` looks the same whichever range of classes is generated and
on whichever device. Rendering evaluates exact distances from every pixel to every part's
polyline (16 points), and the even-odd inside test for closed parts, for blocks of images at once
on the chosen device: no per-image Python.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from umeta.data.glyphs import _bezier, _normal, _uniform, check_set_sizes
from umeta.data.imageset import ImageSet

MAX_PARTS = 3
POINTS = 16  # polyline points of every part (closed shapes join the last to the first)
#: part kinds, in the order of their probabilities in `_KIND_EDGES`
STROKE, OUTLINE, FILLED, TEXTURED, CUT = range(5)
_KIND_EDGES = (0.34, 0.52, 0.72, 0.88)  # cumulative: stroke .34, outline .18, filled .2, ...
_PART_EDGES = (0.35, 0.75)  # 1, 2 or 3 parts
_POLYGON = 0.45  # share of closed shapes that are polygons (the rest are blobs)
_MAX_SIDES = 8
_HARMONICS = 3  # blob radius: 1 + sum_k a_k cos(k theta + phi_k), k = 2 .. 4
# per-sample variation (lengths in [-1, 1] image units, 0.07 is about one pixel at 28)
_JITTER = 0.035
_ROTATION = 0.15
_SCALE = 0.08
_SHEAR = 0.08
_SHIFT = 0.07
_ELASTIC = 0.03
_WIDTH_JITTER = 0.12
_BLOCK = {"cpu": 3_000_000, "cuda": 200_000_000}  # (image, part, pixel, segment) at once

# stream ids: one per kind of random draw, so that adding a draw never shifts another
_S_PARTS, _S_KIND, _S_SHAPE, _S_STROKE, _S_STYLE, _S_TEXTURE, _S_FRAME = 1, 2, 3, 4, 5, 6, 7
_S_JITTER, _S_AFFINE, _S_ELASTIC, _S_WIDTH = 11, 12, 13, 14


def _class_params(classes: Tensor, seed: int) -> dict[str, Tensor]:
    """Everything that defines each class, shape (C, MAX_PARTS, ...) unless noted."""
    ids = (classes,)
    c, p = len(classes), MAX_PARTS
    dev = classes.device
    parts = 1 + torch.bucketize(_uniform(seed, _S_PARTS, ids, 1)[:, 0],
                                torch.tensor(_PART_EDGES, device=dev))
    active = torch.arange(p, device=dev) < parts[:, None]
    kind = torch.bucketize(_uniform(seed, _S_KIND, ids, p), torch.tensor(_KIND_EDGES, device=dev))
    kind[:, 0] = torch.where(kind[:, 0] == CUT, STROKE, kind[:, 0])  # a cut needs something below
    u = _uniform(seed, _S_SHAPE, ids, p * 8).view(c, p, 8)
    shape = {
        "centre": (u[..., 0:2] * 2 - 1) * 0.45,
        "radius": 0.3 + 0.55 * u[..., 2],
        "log_aspect": (u[..., 3] * 2 - 1) * 0.6,
        "angle": u[..., 4] * 2 * math.pi,
        "polygon": u[..., 5] < _POLYGON,
        "sides": 3 + (u[..., 6] * (_MAX_SIDES - 2)).long().clamp_max(_MAX_SIDES - 3),
        "harmonics": (_uniform(seed, _S_SHAPE + 100, ids, p * _HARMONICS).view(c, p, -1) * 2 - 1)
        * 0.3 / torch.arange(1, _HARMONICS + 1, device=dev),
        "phases": _uniform(seed, _S_SHAPE + 200, ids, p * _HARMONICS).view(c, p, -1) * 2 * math.pi,
        "corner_radii": 0.6 + 0.4 * _uniform(seed, _S_SHAPE + 300, ids, p * _MAX_SIDES)
        .view(c, p, -1),
        "corner_shift": (_uniform(seed, _S_SHAPE + 400, ids, p * _MAX_SIDES).view(c, p, -1) - 0.5)
        * 0.6,
    }
    # strokes: cubic Bezier from a start point along a direction, bent sideways
    s = _uniform(seed, _S_STROKE, ids, p * 5).view(c, p, 5)
    z = _normal(seed, _S_STROKE + 100, ids, p * 4).view(c, p, 4)
    start = (s[..., 0:2] * 2 - 1) * 0.55
    heading = s[..., 2] * 2 * math.pi
    length = 0.5 + 0.9 * s[..., 3]
    direction = torch.stack([torch.cos(heading), torch.sin(heading)], -1)
    normal = torch.stack([-direction[..., 1], direction[..., 0]], -1)
    bend = z[..., :2] * (0.1 + 0.5 * s[..., 4:5]) * length[..., None]
    along = torch.stack([1 / 3 + 0.15 * z[..., 2], 2 / 3 + 0.15 * z[..., 3]], -1)
    ctrl = [start, None, None, start + direction * length[..., None]]
    for i in (0, 1):
        ctrl[i + 1] = (start + direction * (length * along[..., i])[..., None]
                       + normal * bend[..., i : i + 1])
    shape["ctrl"] = torch.stack(ctrl, -2)  # (C, P, 4, 2)
    # join a later stroke's start to a point of the part before it
    j = _uniform(seed, _S_STROKE + 200, ids, p * 2).view(c, p, 2)
    shape["join"] = (j[..., 0] < 0.6) & (torch.arange(p, device=dev) > 0)
    shape["join_at"] = (j[..., 1] * POINTS).long().clamp_max(POINTS - 1)
    st = _uniform(seed, _S_STYLE, ids, 2 + 2 * p)
    pen = torch.exp(math.log(0.5) + (math.log(3.2) - math.log(0.5)) * st[:, 0])  # half-width px
    style = {
        "width": pen[:, None] * torch.exp((st[:, 2 : 2 + p] * 2 - 1) * 0.2),
        # grey level: full ink half of the time, else 0.45 .. 1
        "level": torch.where(st[:, 2 + p :] < 0.5, torch.ones_like(st[:, 2 + p :]),
                             0.45 + 0.55 * st[:, 2 + p :]),
        "extent": 0.5 + 0.45 * st[:, 1],  # half-size of the scene in the frame, (C,)
    }
    t = _uniform(seed, _S_TEXTURE, ids, p * 5).view(c, p, 5)
    texture = {
        "pattern": (t[..., 0] * 4).long().clamp_max(3),  # stripes, checks, dots, ramp
        "texture_angle": t[..., 1] * math.pi,
        "period": 2.5 + 5.0 * t[..., 2],  # pixels at 28
        "phase": t[..., 3] * 2 * math.pi,
        "floor": 0.5 * t[..., 4],  # the pattern's darkest level relative to the part's
    }
    return {"active": active, "kind": kind, **shape, **style, **texture}


def _part_points(prm: dict[str, Tensor], noise: Tensor | None) -> Tensor:
    """Polylines (..., MAX_PARTS, POINTS, 2) of every part from the class parameters, each shape
    parameter moved by ``noise`` (..., MAX_PARTS, 16) times its jitter (None: the template)."""
    dev = prm["radius"].device

    def jit(i: int, scale: float) -> Tensor | float:
        return 0.0 if noise is None else scale * noise[..., i]

    centre = prm["centre"] + (0.0 if noise is None else _JITTER * noise[..., 0:2])
    radius = prm["radius"] * torch.exp(jit(2, 0.06) if noise is not None else torch.zeros(()))
    log_aspect = prm["log_aspect"] + jit(3, 0.06)
    angle = prm["angle"] + jit(4, 0.06)
    # closed shapes in polar form: angles theta_j and radii r_j of POINTS vertices
    j = torch.arange(POINTS, device=dev)
    theta = 2 * math.pi * j / POINTS  # blobs
    harm = prm["harmonics"] + (0.0 if noise is None else 0.03 * noise[..., 5:8])
    k = torch.arange(2, 2 + _HARMONICS, device=dev)
    blob_r = 1 + (harm[..., None, :] * torch.cos(k * theta[:, None]
                                                  + prm["phases"][..., None, :])).sum(-1)
    # polygons: `sides` corners at jittered angles; later vertices repeat the last corner
    sides = prm["sides"][..., None]
    corner = torch.minimum(j, sides - 1)  # (..., P, POINTS)
    shift = prm["corner_shift"] + (0.0 if noise is None else 0.03 * noise[..., 8:16])
    poly_theta = 2 * math.pi * (corner + shift.gather(-1, corner.clamp_max(_MAX_SIDES - 1))
                                ) / sides
    poly_r = prm["corner_radii"].gather(-1, corner.clamp_max(_MAX_SIDES - 1))
    if noise is not None:
        poly_r = poly_r * torch.exp(0.04 * noise[..., 8:16].gather(-1, corner))
    polygon = prm["polygon"][..., None]
    r = torch.where(polygon, poly_r, blob_r).clamp_min(0.15)
    th = torch.where(polygon, poly_theta, theta.expand_as(poly_theta))
    local = torch.stack([r * torch.cos(th), r * torch.sin(th)], -1)  # (..., P, POINTS, 2)
    stretch = torch.stack([torch.exp(log_aspect / 2), torch.exp(-log_aspect / 2)], -1)
    local = local * (radius[..., None] * stretch)[..., None, :]
    cos, sin = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    closed = torch.stack([cos * local[..., 0] - sin * local[..., 1],
                          sin * local[..., 0] + cos * local[..., 1]], -1) + centre[..., None, :]
    ctrl = prm["ctrl"] + (0.0 if noise is None else 1.5 * _JITTER
                          * noise[..., 8:16].unflatten(-1, (4, 2)))
    stroke = _bezier(ctrl, torch.linspace(0, 1, POINTS, device=dev))
    is_stroke = ((prm["kind"] == STROKE) | (prm["kind"] == CUT))[..., None, None]
    pts = torch.where(is_stroke, stroke, closed)
    # joined strokes start at a point of the part before them
    for i in range(1, MAX_PARTS):
        anchor = pts[..., i - 1, :, :].gather(
            -2, prm["join_at"][..., i, None, None].expand(*pts.shape[:-3], 1, 2))[..., 0, :]
        moved = pts[..., i, :, :] + (anchor - pts[..., i, 0, :])[..., None, :]
        join = (prm["join"][..., i] & is_stroke[..., i, 0, 0])[..., None, None]
        pts[..., i, :, :] = torch.where(join, moved, pts[..., i, :, :])
    return pts


def _frame(prm: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Centre (C, 2) and scale (C,) that put each class's template scene at its extent."""
    pts = _part_points(prm, None)  # (C, P, POINTS, 2)
    mask = prm["active"][..., None, None]
    big = torch.tensor(1e6, device=pts.device)
    lo = torch.where(mask, pts, big).amin((1, 2))
    hi = torch.where(mask, pts, -big).amax((1, 2))
    scale = prm["extent"] / ((hi - lo).amax(-1) / 2).clamp_min(0.1)
    return (lo + hi) / 2, scale


def _segment_distance(q: Tensor, pts: Tensor, closed: Tensor) -> tuple[Tensor, Tensor]:
    """Distance from points to polylines, and whether they are inside closed ones.

    Parameters
    ----------
    q : Tensor of shape (K, M, 2)
        Query points (pixels) of each polyline.
    pts : Tensor of shape (K, V, 2)
        Polylines; closed ones join point V - 1 to point 0.
    closed : Tensor of shape (K,), bool

    Returns
    -------
    distance : Tensor of shape (K, M)
    inside : Tensor of shape (K, M), bool (even-odd rule; False for open polylines)
    """
    ax, ay = pts[:, None, :, 0], pts[:, None, :, 1]  # (K, 1, V)
    nxt = torch.roll(pts, -1, dims=-2)
    abx, aby = nxt[:, None, :, 0] - ax, nxt[:, None, :, 1] - ay
    inv = 1.0 / (abx * abx + aby * aby).clamp_min(1e-12)
    qx, qy = q[:, :, None, 0], q[:, :, None, 1]  # (K, M, 1)
    aqx, aqy = qx - ax, qy - ay  # (K, M, V)
    t = ((aqx * abx + aqy * aby) * inv).clamp_(0.0, 1.0)
    dx, dy = aqx - t * abx, aqy - t * aby
    d2 = dx * dx + dy * dy
    last = torch.arange(pts.shape[-2], device=pts.device) == pts.shape[-2] - 1
    d2 = d2.masked_fill_(last & ~closed[:, None, None], torch.inf)
    crosses = (ay > qy) != (ay + aby > qy)
    x_at = ax + aqy * abx / torch.where(aby == 0, 1e-12, aby)
    odd = (crosses & (qx < x_at)).sum(-1, dtype=torch.int32) % 2 == 1
    return d2.amin(-1).sqrt_(), odd & closed[:, None]


def _texture(u: Tensor, prm: dict[str, Tensor], size: int) -> Tensor:
    """Fill patterns in [0, 1] of each part at object coordinates u (N, M, 2) -> (N, P, M)."""
    angle = prm["texture_angle"][..., None]
    s1 = u[:, None, :, 0] * torch.cos(angle) + u[:, None, :, 1] * torch.sin(angle)
    s2 = -u[:, None, :, 0] * torch.sin(angle) + u[:, None, :, 1] * torch.cos(angle)
    freq = (size / 2) / prm["period"][..., None] * (28 / size)  # cycles per unit, period at 28
    w1 = torch.cos(2 * math.pi * freq * s1 + prm["phase"][..., None])
    w2 = torch.cos(2 * math.pi * freq * s2 + prm["phase"][..., None])
    stripes = (0.5 + 2 * w1).clamp(0, 1)
    checks = (0.5 + 2 * w1 * w2).clamp(0, 1)
    dots = (2 * (w1 + w2) - 1.5).clamp(0, 1)
    ramp = (0.5 + 0.6 * s1).clamp(0, 1)
    pattern = prm["pattern"][..., None]
    return torch.where(pattern == 0, stripes, torch.where(
        pattern == 1, checks, torch.where(pattern == 2, dots, ramp)))


def _render_block(prm: dict[str, Tensor], frame: tuple[Tensor, Tensor], classes: Tensor,
                  samples: Tensor, seed: int, size: int) -> Tensor:
    """Images (n, 1, size, size) uint8 of the (class, sample) pairs ``classes[i], samples[i]``;
    ``prm`` and ``frame`` are indexed by ``classes`` already."""
    n, dev = len(classes), classes.device
    ids = (classes, samples)
    noise = _normal(seed, _S_JITTER, ids, MAX_PARTS * 16).view(n, MAX_PARTS, 16)
    pts = _part_points(prm, noise)  # (n, P, POINTS, 2)
    centre, scale = frame
    pts = (pts - centre[:, None, None]) * scale[:, None, None, None]
    # the sample's affine map: rotation, scale, shear, shift
    a = _normal(seed, _S_AFFINE, ids, 6)
    rot, zoom, shear = _ROTATION * a[:, 0], torch.exp(_SCALE * a[:, 1]), _SHEAR * a[:, 2]
    cos, sin = torch.cos(rot), torch.sin(rot)
    mat = torch.stack([cos, cos * shear - sin, sin, sin * shear + cos], -1).view(n, 2, 2)
    mat = mat * zoom[:, None, None]
    offset = _SHIFT * a[:, 3:5]
    pts = (mat[:, None, None] @ pts[..., None]).squeeze(-1) + offset[:, None, None]
    # pixel centres, elastically warped: two sinusoidal waves per axis
    axis = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) * (2 / size) - 1
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).view(1, -1, 2)
    e = _uniform(seed, _S_ELASTIC, ids, 16).view(n, 1, 4, 4)
    arg = (1.5 + 2.0 * e[..., 1]) * (torch.cos(2 * math.pi * e[..., 0]) * grid[..., 0:1]
                                     + torch.sin(2 * math.pi * e[..., 0]) * grid[..., 1:2])
    wave = torch.sin(arg + 2 * math.pi * e[..., 2])  # (n, M, 4)
    q = grid + _ELASTIC * wave.view(n, -1, 2, 2).sum(-1)
    kind = prm["kind"]
    closed = (kind == OUTLINE) | (kind == FILLED) | (kind == TEXTURED)
    # distances of the parts a class uses only (inactive ones stay infinitely far)
    image, part = prm["active"].nonzero(as_tuple=True)
    d, ins = _segment_distance(q[image], pts[image, part], closed[image, part])
    dist = torch.full((n, MAX_PARTS, size * size), torch.inf, device=dev)
    inside = torch.zeros(n, MAX_PARTS, size * size, dtype=torch.bool, device=dev)
    dist[image, part], inside[image, part] = d, ins
    dist = dist * (size / 2)  # pixels
    width = prm["width"] * torch.exp(_WIDTH_JITTER * _normal(seed, _S_WIDTH, ids, 1))
    width = (width * (size / 28))[..., None]
    line = (width - dist + 0.5).clamp(0, 1)
    signed = torch.where(inside, -dist, dist)
    fill = (0.5 - signed).clamp(0, 1)
    # texture in the scene's own frame (before the sample's affine map)
    u = torch.linalg.solve(mat, (q - offset[:, None]).transpose(1, 2)).transpose(1, 2)
    u = u / scale[:, None, None] + centre[:, None]
    pattern = _texture(u, prm, size)
    level = prm["level"][..., None]
    cover = torch.where(((kind == FILLED) | (kind == TEXTURED))[..., None], fill, line)
    value = torch.where((kind == TEXTURED)[..., None],
                        level * (prm["floor"][..., None] + (1 - prm["floor"][..., None]) * pattern),
                        torch.where((kind == CUT)[..., None], torch.zeros_like(level), level))
    cover = cover * prm["active"][..., None]
    img = torch.zeros(n, size * size, device=dev)
    for i in range(MAX_PARTS):
        img = img * (1 - cover[:, i]) + cover[:, i] * value[:, i]
    return (img * 255).round_().clamp_(0, 255).to(torch.uint8).view(n, 1, size, size)


def make_procedural(
    num_classes: int,
    samples_per_class: int = 20,
    image_size: int = 28,
    seed: int = 0,
    first_class: int = 0,
    name: str | None = None,
    device: torch.device | str = "cpu",
) -> ImageSet:
    """Procedural scenes of strokes and shapes: classes ``first_class .. first_class +
    num_classes - 1``.

    Class ``c`` depends only on ``(seed, c)`` and its ``i``-th sample only on ``(seed, c, i)``.

    Parameters
    ----------
    num_classes : int
        Number of classes, >= 1.
    samples_per_class : int
        Drawings of each class, >= 1.
    image_size : int
        Side of the square images in pixels, >= 8.
    seed : int
    first_class : int
        Index of the first class, >= 0.
    name : str, optional
        Name of the set; default ``"procedural(seed=S)"``.
    device : torch.device or str
        Where the images are drawn and returned (a GPU draws tens of thousands in a second).

    Returns
    -------
    ImageSet
        ``images`` uint8 of shape (num_classes * samples_per_class, 1, image_size, image_size),
        ink high (up to 255) on 0; labels ``0 .. num_classes - 1``, grouped by class; class names
        ``"procNNNNNN"`` after the global class index; no groups.

    Raises
    ------
    UmetaError
        If a count or size is out of range.
    """
    check_set_sizes("make_procedural", num_classes, samples_per_class, image_size, first_class)
    dev = torch.device(device)
    classes = torch.arange(first_class, first_class + num_classes, dtype=torch.long, device=dev)
    prm = _class_params(classes, seed)
    frame = _frame(prm)
    total = num_classes * samples_per_class
    per_image = 2 * image_size * image_size * POINTS  # about two active parts an image
    block = max(1, _BLOCK.get(dev.type, _BLOCK["cpu"]) // per_image)
    images = torch.empty(total, 1, image_size, image_size, dtype=torch.uint8, device=dev)
    for lo in range(0, total, block):
        flat = torch.arange(lo, min(total, lo + block), device=dev)
        cls, smp = flat // samples_per_class, flat % samples_per_class
        sub = {k: v[cls] for k, v in prm.items()}
        images[lo : lo + len(flat)] = _render_block(
            sub, (frame[0][cls], frame[1][cls]), classes[cls], smp, seed, image_size)
    labels = torch.arange(num_classes, device=dev).repeat_interleave(samples_per_class)
    names = [f"proc{c:06d}" for c in classes.tolist()]
    return ImageSet(images, labels, names, None, name or f"procedural(seed={seed})")
