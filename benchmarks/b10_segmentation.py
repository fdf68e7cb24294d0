"""B10: unsupervised segmentation of images with exact masks, against k-means and SLIC.

Three sets of images, each with its exact label map and its number of segments K given to every
method:

* ``mosaic-textures``: the training distribution's own generator (`umeta.tasks.mosaic` over
  the *test* part of the procedural textures, images the model never saw), 96 x 96 (the
  training size of ``configs/segment_mosaic.toml``), 2 to 6 segments (in-family check).
* ``heldout-textures``: a held-out family, 128 x 128, 2 to 5 segments: texture kinds the
  training prior does not have (wood rings, marble veins, cells, plaid, weave), colours of other
  statistics (low saturation, mid lightness), partitions of other kinds (layered polygons and
  ellipses, straight cuts, the scikit-image horse silhouette), other edge blur and noise.
* ``photo-mosaics``: the same held-out partitions filled with crops of the real photographs
  that ship inside scikit-image (``skimage.data``: astronaut, coffee, chelsea, rocket, the
  Hubble deep field, immunohistochemistry, retina, brick, grass, gravel, camera, moon, coins,
  page, text); each segment is a crop of a different photo (64 to 160 pixels wide, resized to
  the scene), so its content may itself vary (an object in the crop): the masks are exact, the
  segments are not always uniform.

Methods, in the same run, each told K: ``umeta`` (k-means++ in the meta-learned dense space of
``--checkpoint``, `umeta.adapt.segment_image`, its edges then snapped to the colour edges unless
``--no-snap-edges``), ``kmeans-colour`` (k-means++ on the RGB
colours), ``kmeans-colour+position`` (RGB and the position divided by the longer side, times
``POSITION_WEIGHT``), and ``slic`` (scikit-image SLIC, ``SLIC_SEGMENTS`` superpixels of
compactness ``SLIC_COMPACTNESS``, merged to K by k-means++ on their mean colours). Every k-means
has ``N_INIT`` restarts. Scores: Hungarian-matched mIoU and pixel accuracy
(`umeta.metrics.segmentation_scores`) per image (``per_image``), their means +- 95% CI per set,
umeta's paired gain over each baseline, and the share of images on which umeta's mIoU is ahead
of each baseline and of all of them.

    python benchmarks/b10_segmentation.py --checkpoint builtin \
        --out benchmarks/results/b10_segmentation.json --figure docs/segmentation_benchmark.png \
        --examples docs/segmentation_examples.png
    python benchmarks/b10_segmentation.py --checkpoint builtin --no-snap-edges \
        --out benchmarks/results/b10_segmentation_nosnap.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from entry import run_main

from umeta.adapt.segment import segment_image
from umeta.build import load_learner
from umeta.data.sources import TEXTURE_PARTS
from umeta.data.textures import hsv_to_rgb, make_textures, smooth_noise
from umeta.metrics import mean_ci95, segmentation_scores
from umeta.numeric.clustering import kmeans
from umeta.pretrained import BUILTIN, builtin_checkpoint, sha256_of
from umeta.results import result_row, write_results
from umeta.tasks.mosaic import MosaicTasks

SETS = ("mosaic-textures", "heldout-textures", "photo-mosaics")
BASELINES = ("kmeans-colour", "kmeans-colour+position", "slic")
POSITION_WEIGHT = 1.0
SLIC_SEGMENTS, SLIC_COMPACTNESS = 200, 10.0
N_INIT = 4
HELDOUT_SIZE = 128
MOSAIC_SIZE = 96  # data.image_size of configs/segment_mosaic.toml
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "brick", "grass", "gravel", "camera", "moon",
          "coins", "page", "text")
HELDOUT_TEXTURES = ("wood", "marble", "cells", "plaid", "weave")
HELDOUT_LAYOUTS = ("polygons", "cuts", "horse")


# ----------------------------------------------------------------------------- image sets

def relabel(mask: np.ndarray) -> np.ndarray:
    """Segment ids made 0 .. K - 1 (in order of first appearance in sorted ids)."""
    return np.unique(mask, return_inverse=True)[1].reshape(mask.shape)


def mosaic_set(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The training generator over the test textures (2 .. 6 segments)."""
    texture_seed, size = TEXTURE_PARTS["test"]
    textures = make_textures(size, image_size=MOSAIC_SIZE, seed=texture_seed).images
    batch = MosaicTasks(textures, n_way=6, seed=seed).sample(count)
    images = (batch.images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [(images[i], relabel(batch.masks[i].numpy())) for i in range(count)]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    return np.meshgrid(axis, axis, indexing="xy")


def heldout_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """One texture (size, size, 3) in [0, 1] of a kind the training prior lacks, in low
    saturation colours."""
    xx, yy = _grid(size)
    kind = HELDOUT_TEXTURES[rng.integers(len(HELDOUT_TEXTURES))]
    angle = rng.uniform(0, np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    across = -xx * np.sin(angle) + yy * np.cos(angle)
    freq = rng.uniform(4, 14)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    turbulence = smooth_noise(1, torch.tensor([int(rng.integers(3, 8))]), size, gen)[0].numpy()
    if kind == "wood":
        cx, cy = rng.uniform(-1.5, 1.5, 2)
        r = np.hypot(xx - cx, yy - cy) + 0.3 * (turbulence - 0.5)
        t = (r * freq) % 1.0
    elif kind == "marble":
        t = 0.5 + 0.5 * np.sin(freq * np.pi * along + 8 * turbulence)
    elif kind == "cells":
        points = rng.uniform(-1, 1, (int(freq * 3), 2))
        d = np.hypot(xx[..., None] - points[:, 0], yy[..., None] - points[:, 1]).min(-1)
        t = np.clip(d * freq / 2.5, 0, 1)
    elif kind == "plaid":
        t = (0.5 * (np.sin(freq * np.pi * along) > 0.3)
             + 0.5 * (np.sin(freq * 0.6 * np.pi * across) > 0.5))
    else:  # weave
        t = 0.5 + 0.5 * np.sign(np.sin(freq * np.pi * along)) * np.sin(freq * np.pi * across)
    hsv = np.stack([rng.uniform(0, 1, 2), rng.uniform(0, 0.4, 2), rng.uniform(0.25, 0.9, 2)], -1)
    first, second = hsv_to_rgb(torch.tensor(hsv, dtype=torch.float32)).numpy()
    return first * (1 - t[..., None]) + second * t[..., None]


def _polygon_mask(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """A random convex polygon or ellipse."""
    cx, cy = rng.uniform(-0.6, 0.6, 2)
    rx, ry = rng.uniform(0.2, 0.7, 2)
    angle = rng.uniform(0, np.pi)
    u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / rx
    v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / ry
    if rng.random() < 0.5:
        return u ** 2 + v ** 2 <= 1
    sides = int(rng.integers(3, 8))
    normals = np.sort(rng.uniform(0, 2 * np.pi, sides))
    inside = np.ones_like(u, dtype=bool)
    for theta in normals:
        inside &= u * np.cos(theta) + v * np.sin(theta) <= 1
    return inside


def _horse(size: int, rng: np.random.Generator) -> np.ndarray:
    """The scikit-image horse silhouette, scaled and placed at random, as a mask."""
    from skimage import data

    horse = ~data.horse()  # True on the horse
    scale = rng.uniform(0.6, 1.0) * size / max(horse.shape)
    h, w = max(2, round(horse.shape[0] * scale)), max(2, round(horse.shape[1] * scale))
    small = F.interpolate(torch.tensor(horse, dtype=torch.float32)[None, None], size=(h, w),
                          mode="bilinear")[0, 0].numpy() > 0.5
    mask = np.zeros((size, size), dtype=bool)
    top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    mask[top: top + h, left: left + w] = small
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    return mask


def heldout_layout(rng: np.random.Generator, size: int, k: int) -> np.ndarray:
    """A partition (size, size) into k parts of a kind the training prior lacks (some parts may
    vanish; callers relabel)."""
    xx, yy = _grid(size)
    kind = HELDOUT_LAYOUTS[rng.integers(len(HELDOUT_LAYOUTS))]
    mask = np.zeros((size, size), dtype=np.int64)
    if kind == "cuts":
        for part in range(1, k):  # cut the largest part by a random line through a point of it
            largest = np.bincount(mask.ravel()).argmax()
            ys, xs = np.nonzero(mask == largest)
            i = rng.integers(len(ys))
            angle = rng.uniform(0, np.pi)
            side = ((xx - xx[ys[i], xs[i]]) * np.cos(angle)
                    + (yy - yy[ys[i], xs[i]]) * np.sin(angle)) > 0
            mask[(mask == largest) & side] = part
        return mask
    first = 1
    if kind == "horse":
        mask[_horse(size, rng)] = 1
        first = 2
    for part in range(first, k):
        mask[_polygon_mask(rng, xx, yy)] = part
    return mask


def _compose(rng: np.random.Generator, mask: np.ndarray, fills: list[np.ndarray]) -> np.ndarray:
    """Scene uint8 (H, W, 3) with fill k in segment k, soft edges and pixel noise."""
    cover = torch.tensor(np.stack([mask == k for k in range(len(fills))]), dtype=torch.float32)
    sigma = rng.uniform(0, 1.5)
    if sigma > 0.2:
        reach = int(np.ceil(3 * sigma))
        t = torch.arange(-reach, reach + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (t / sigma) ** 2)
        kernel = kernel / kernel.sum()
        padded = F.pad(cover[:, None], (reach, reach, reach, reach), mode="replicate")
        cover = F.conv2d(F.conv2d(padded, kernel.view(1, 1, -1, 1)), kernel.view(1, 1, 1, -1))[:, 0]
    cover = (cover / cover.sum(0, keepdim=True)).numpy()
    scene = sum(cover[k][..., None] * fills[k] for k in range(len(fills)))
    scene = scene + rng.normal(0, rng.uniform(0, 0.03), scene.shape)
    return (np.clip(scene, 0, 1) * 255).round().astype(np.uint8)


def _masked_scene(rng: np.random.Generator, size: int, fill) -> tuple[np.ndarray, np.ndarray]:
    """A held-out partition with K in 2 .. 5 filled by ``fill(rng, size, k)`` for each part."""
    while True:
        mask = heldout_layout(rng, size, int(rng.integers(2, 6)))
        counts = np.bincount(mask.ravel())
        if (counts[counts > 0] >= 0.02 * size * size).all() and (counts > 0).sum() >= 2:
            break
    mask = relabel(mask)
    fills = [fill(rng, size, k) for k in range(mask.max() + 1)]
    return _compose(rng, mask, fills), mask


def heldout_set(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rngs = [np.random.default_rng([seed, 1, i]) for i in range(count)]
    return [_masked_scene(rng, HELDOUT_SIZE, lambda r, s, k: heldout_texture(r, s))
            for rng in rngs]


def load_photos() -> list[np.ndarray]:
    """The bundled scikit-image photos as float (H, W, 3) in [0, 1]."""
    from skimage import data

    photos = []
    for name in PHOTOS:
        image = np.asarray(getattr(data, name)(), dtype=np.float32) / 255
        photos.append(np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3])
    return photos


def photo_set(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    photos = load_photos()

    def crop(rng: np.random.Generator, size: int, k: int, order: list) -> np.ndarray:
        photo = photos[order[k]]
        side = int(rng.integers(64, min(160, *photo.shape[:2]) + 1))
        top = rng.integers(0, photo.shape[0] - side + 1)
        left = rng.integers(0, photo.shape[1] - side + 1)
        window = torch.tensor(photo[top: top + side, left: left + side]).permute(2, 0, 1)
        return F.interpolate(window[None], size=(size, size), mode="bilinear",
                             antialias=True)[0].permute(1, 2, 0).clamp(0, 1).numpy()

    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, 2, i])
        order = list(rng.permutation(len(photos)))
        out.append(_masked_scene(rng, HELDOUT_SIZE, lambda r, s, k: crop(r, s, k, order)))
    return out


def make_sets(count: int, seed: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    return {"mosaic-textures": mosaic_set(count, seed), "heldout-textures": heldout_set(count, seed),
            "photo-mosaics": photo_set(count, seed)}


# ----------------------------------------------------------------------------- methods

def slic_segments(image: np.ndarray, k: int, seed: int) -> np.ndarray:
    """SLIC superpixels merged to k segments by k-means++ on their mean colours."""
    from skimage.segmentation import slic

    superpixels = slic(image, n_segments=SLIC_SEGMENTS, compactness=SLIC_COMPACTNESS,
                       start_label=0, channel_axis=-1)
    ids = relabel(superpixels)
    colours = torch.tensor(image.reshape(-1, 3) / 255, dtype=torch.float32)
    flat = torch.tensor(ids.ravel())
    n = int(flat.max()) + 1
    means = torch.zeros(n, 3).index_add_(0, flat, colours) / torch.bincount(flat, minlength=n)[:, None]
    if n <= k:
        return ids
    merged = kmeans(means[None], k, n_init=N_INIT, seed=seed).labels[0]
    return merged[flat].view(ids.shape).numpy()


def run_methods(learner, image: np.ndarray, k: int, seed: int, snap_edges: bool = True
                ) -> dict[str, np.ndarray]:
    """Every method's label map (H, W) of one image with K = k (``snap_edges``: umeta's)."""
    return {
        "umeta": segment_image(learner, image, k, n_init=N_INIT, seed=seed,
                               snap_edges=snap_edges).labels.numpy(),
        "kmeans-colour": segment_image(None, image, k, n_init=N_INIT, seed=seed).labels.numpy(),
        "kmeans-colour+position": segment_image(None, image, k, position_weight=POSITION_WEIGHT,
                                                n_init=N_INIT, seed=seed).labels.numpy(),
        "slic": slic_segments(image, k, seed),
    }


# ----------------------------------------------------------------------------- scoring

def summary_rows(per_image: list[dict]) -> list[dict]:
    """Means +- 95% CI per set, method and metric; umeta's paired gains and shares ahead."""
    rows = []
    methods = ("umeta",) + BASELINES
    for name in SETS + ("all",):
        cell = [r for r in per_image if name in ("all", r["set"])]
        if not cell:
            continue
        for method in methods:
            for metric in ("miou", "pixel_accuracy"):
                mean, ci = mean_ci95([100 * r[method][metric] for r in cell])
                rows.append(result_row(method, "label-free" if method == "umeta" else "none",
                                       name, metric, mean, ci, len(cell)))
        ahead_all = [all(r["umeta"]["miou"] > r[b]["miou"] for b in BASELINES) for r in cell]
        level_all = [all(r["umeta"]["miou"] >= r[b]["miou"] for b in BASELINES) for r in cell]
        for baseline in BASELINES:
            gain = [100 * (r["umeta"]["miou"] - r[baseline]["miou"]) for r in cell]
            mean, ci = mean_ci95(gain)
            rows.append(result_row("umeta", "label-free", name, f"miou_gain_vs_{baseline}", mean,
                                   ci, len(cell)))
            ahead = [g > 0 for g in gain]
            rows.append(result_row("umeta", "label-free", name, f"pct_images_ahead_of_{baseline}",
                                   100 * np.mean(ahead), 0.0, len(cell)))
        rows.append(result_row("umeta", "label-free", name, "pct_images_ahead_of_all_baselines",
                               100 * np.mean(ahead_all), 0.0, len(cell), target=100.0,
                               target_met=bool(all(ahead_all))))
        rows.append(result_row("umeta", "label-free", name,
                               "pct_images_not_behind_any_baseline", 100 * np.mean(level_all),
                               0.0, len(cell)))
    return rows


def plot(doc: dict, path: Path) -> None:
    """Mean mIoU +- 95% CI of every method on every set (from the results document)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = ("umeta",) + BASELINES
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        cells = [next(r for r in doc["results"] if r["method"] == method and r["setting"] == s
                      and r["metric"] == "miou") for s in SETS]
        ax.bar(np.arange(len(SETS)) + (j - (len(methods) - 1) / 2) * width,
               [c["mean"] for c in cells], width, yerr=[c["ci95"] for c in cells], capsize=2,
               label=method)
    ax.set_xticks(np.arange(len(SETS)), [f"{s}\n({doc['images_per_set']} images)" for s in SETS])
    ax.set_ylabel("Hungarian-matched mIoU (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.set_title(f"B10 unsupervised segmentation (K given; {doc['checkpoint_name']})",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_examples(learner, sets: dict, seed: int, path: Path) -> None:
    """For the first image of each set: the image, the true segments and every method's, as
    overlays (`umeta.label_maps.overlay`), with each method's mIoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from umeta.label_maps import overlay

    columns = ("image", "truth", "umeta") + BASELINES
    fig, axes = plt.subplots(len(SETS), len(columns), figsize=(1.6 * len(columns), 1.7 * len(SETS)))
    for row, name in enumerate(SETS):
        image, mask = sets[name][0]
        labels = run_methods(learner, image, int(mask.max()) + 1, seed)
        pictures = {"image": image, "truth": overlay(image / 255, mask)}
        pictures.update({m: overlay(image / 255, lab) for m, lab in labels.items()})
        for col, method in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(pictures[method], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = method if method in ("image", "truth") else (
                f"{method}\n{100 * segmentation_scores(mask, labels[method])['miou']:.0f}% mIoU")
            ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=BUILTIN,
                        help="a segmentation checkpoint (pixelproto) or 'builtin'")
    parser.add_argument("--images", type=int, default=40, help="images per set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-snap-edges", dest="snap_edges", action="store_false",
                        help="umeta without snapping its edges to the colour edges (ablation)")
    parser.add_argument("--figure", help="also draw the mIoU bar chart here (PNG)")
    parser.add_argument("--examples", help="also draw the first image of each set with every "
                                           "method's segments here (PNG)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    path = builtin_checkpoint("segmentation") if args.checkpoint == BUILTIN else args.checkpoint
    learner = load_learner(path, "cpu")
    start = time.perf_counter()
    per_image = []
    sets = make_sets(args.images, args.seed)
    for name, images in sets.items():
        for i, (image, mask) in enumerate(images):
            k = int(mask.max()) + 1
            labels = run_methods(learner, image, k, args.seed + i, args.snap_edges)
            per_image.append({"set": name, "image": i, "k": k, "size": list(mask.shape),
                              **{m: segmentation_scores(mask, lab) for m, lab in labels.items()}})
        print(f"{name}: done", flush=True)
    wall = time.perf_counter() - start
    rows = summary_rows(per_image)
    doc = write_results(
        args.out, "B10", rows, device="cpu", wall_s=wall, seed=args.seed,
        dataset=", ".join(SETS), checkpoint=str(args.checkpoint),
        checkpoint_name=Path(path).name, checkpoint_sha256=sha256_of(Path(path)),
        images_per_set=args.images,
        settings={"n_init": N_INIT, "position_weight": POSITION_WEIGHT,
                  "slic_segments": SLIC_SEGMENTS, "slic_compactness": SLIC_COMPACTNESS,
                  "umeta_max_side": 256, "umeta_snap_edges": args.snap_edges},
        note="K (the true number of segments) given to every method; mIoU and pixel accuracy "
             "in percent, Hungarian-matched", per_image=per_image)
    for r in rows:
        if r["setting"] == "all" or r["metric"] == "miou":
            print(f"{r['setting']:<17} {r['method']:<23} {r['metric']:<36} {r['mean']:7.2f} "
                  f"+- {r['ci95']:.2f}")
    if args.figure:
        plot(doc, Path(args.figure))
    if args.examples:
        plot_examples(learner, sets, args.seed, Path(args.examples))


if __name__ == "__main__":
    run_main(main)
