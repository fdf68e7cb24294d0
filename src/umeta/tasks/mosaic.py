"""Segmentation tasks cut from unlabeled images: mosaics with exact masks (the ``mosaic`` builder).

A task is one scene of ``K`` segments (``min_segments <= K <= n_way``, uniform per task): a
random partition of the frame, each part filled with a different randomly chosen image (after a
random resized crop and flip, so that its scale varies), with soft boundaries, then
the whole scene lit unevenly, blurred and noised. The learner is told which pixels belong
together: ``k_shot`` support and ``q_query`` query pixels of every segment, drawn uniformly
from it (so that small segments count as much as large ones).

Partitions (:func:`random_partition`): ``voronoi`` (nearest of K random sites, each with its
own weight, in a smoothly warped frame: straight-ish, wavy boundaries) and ``blobs`` (the
largest of K smooth random fields: organic, possibly disconnected regions). A segment that a
partition leaves with fewer than ``MIN_PIXELS`` pixels is marked absent.

The builder is handed images only, never labels; with ``umeta train --dataset textures`` they
are procedural textures (`umeta.data.textures`), with a folder of one's own photos they are
those photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.errors import UmetaError
from umeta.numeric.random import restore_generator, seeded_generator
from umeta.tasks.augment import Augment, as_augment, gaussian_blur
from umeta.tasks.umtra import check_source_args, sample_distinct

#: Partition kinds of `random_partition`.
PARTITIONS = ("voronoi", "blobs")
#: Fewest pixels of a segment that counts as present.
MIN_PIXELS = 16
#: How each region's image is varied before it is cut out.
REGION_AUGMENT = Augment(crop_scale=(0.15, 1.0), flip=0.5)
#: What is done to the whole scene: uneven lighting, contrast, blur, noise.
SCENE_AUGMENT = Augment(shading=0.5, contrast=(0.7, 1.0), background=(0.0, 0.15),
                        blur=(0.0, 1.0), noise=0.06)


@dataclass
class SegmentBatch:
    """A meta-batch of ``T`` segmentation tasks: scenes, masks and the pixels to learn from.

    Attributes
    ----------
    images : Tensor of shape (T, C, H, W), float in [0, 1]
    masks : Tensor of shape (T, H, W), int64
        Segment of each pixel, in ``0 .. n_way - 1``.
    support : Tensor of shape (T, n_way, k_shot), int64
        Flat pixel indices (``row * W + col``) drawn from each segment.
    query : Tensor of shape (T, n_way, q_query), int64
    present : Tensor of shape (T, n_way), bool
        Whether each segment is in the scene (absent ones' indices are meaningless).
    """

    images: Tensor
    masks: Tensor
    support: Tensor
    query: Tensor
    present: Tensor

    @property
    def n_way(self) -> int:
        return int(self.present.shape[1])


def random_partition(num: int, k: Tensor, size: int, generator: torch.Generator,
                     kinds: tuple[str, ...] = PARTITIONS) -> Tensor:
    """Random partitions of a ``size`` x ``size`` frame into at most ``k[i]`` parts.

    Parameters
    ----------
    num : int
        Partitions to draw.
    k : Tensor of shape (num,), int64
        Parts of each, >= 1 (some may end up empty).
    size : int
    generator : torch.Generator on ``k``'s device
    kinds : tuple of str
        Kinds of `PARTITIONS` to draw from, uniformly.

    Returns
    -------
    Tensor of shape (num, size, size), int64, values in ``0 .. k[i] - 1``.

    Examples
    --------
    >>> masks = random_partition(2, torch.tensor([2, 4]), 8, torch.Generator().manual_seed(0))
    >>> masks.shape, bool(masks[0].max() <= 1)
    (torch.Size([2, 8, 8]), True)
    """
    unknown = [kind for kind in kinds if kind not in PARTITIONS]
    if unknown or not kinds:
        raise UmetaError(f"unknown partition kind {unknown[0] if unknown else None!r}; choose "
                         f"from {', '.join(PARTITIONS)}")
    dev = k.device
    most = int(k.max())
    axis = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    # voronoi: weighted distance to random sites, in a frame warped by a smooth field
    warp = torch.randn(num, 2, 4, 4, device=dev, generator=generator)
    warp = F.interpolate(warp, size=(size, size), mode="bicubic", align_corners=True)
    amount = 0.25 * torch.rand(num, 1, 1, 1, device=dev, generator=generator)
    px, py = (xx + amount[:, 0] * warp[:, 0]), (yy + amount[:, 0] * warp[:, 1])  # (num, S, S)
    sites = torch.rand(num, most, 2, device=dev, generator=generator) * 2 - 1
    weight = 0.3 * torch.rand(num, most, 1, 1, device=dev, generator=generator)
    dist = ((px[:, None] - sites[..., 0, None, None]) ** 2
            + (py[:, None] - sites[..., 1, None, None]) ** 2).sqrt() - weight
    # blobs: the largest of smooth random fields
    cells = 2 + int(torch.randint(0, 3, (), device=dev, generator=generator))
    fields = torch.randn(num, most, cells, cells, device=dev, generator=generator)
    fields = F.interpolate(fields, size=(size, size), mode="bicubic", align_corners=True)
    score = torch.stack([-dist, fields], 1)  # (num, 2 kinds, most, S, S)
    absent = torch.arange(most, device=dev)[None, :] >= k[:, None]
    score = score.masked_fill(absent[:, None, :, None, None], -torch.inf)
    choice = torch.tensor([PARTITIONS.index(kind) for kind in kinds], device=dev)
    pick = choice[torch.randint(0, len(choice), (num,), device=dev, generator=generator)]
    return score[torch.arange(num, device=dev), pick].argmax(1)


def sample_pixels(masks: Tensor, n_way: int, count: int, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """``count`` pixels drawn uniformly (with replacement) from each segment of each mask.

    Parameters
    ----------
    masks : Tensor of shape (T, H, W), int64 in ``0 .. n_way - 1``
    n_way : int
    count : int
    generator : torch.Generator on ``masks``' device

    Returns
    -------
    index : Tensor of shape (T, n_way, count), int64 flat pixel indices
    present : Tensor of shape (T, n_way), bool: segments with at least `MIN_PIXELS` pixels
    """
    t = masks.shape[0]
    one_hot = F.one_hot(masks.flatten(1), n_way).transpose(1, 2).float()  # (T, N, H * W)
    present = one_hot.sum(-1) >= MIN_PIXELS
    weights = torch.where(present[..., None], one_hot, torch.ones_like(one_hot))
    index = torch.multinomial(weights.flatten(0, 1), count, replacement=True, generator=generator)
    return index.view(t, n_way, count), present


class MosaicTasks:
    """Segmentation tasks: mosaics of ``min_segments`` to ``n_way`` random images.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8
        The images regions are cut from; scenes have their size (H, W must be equal).
    n_way : int
        Most segments of a scene, >= 2.
    k_shot : int
        Support pixels drawn from each segment.
    q_query : int
        Query pixels drawn from each segment.
    seed : int
    min_segments : int
        Fewest segments of a scene, in ``2 .. n_way``.
    partitions : list of str
        Partition kinds (`PARTITIONS`).
    region_augment, scene_augment : Augment or mapping, optional
        Default `REGION_AUGMENT` and `SCENE_AUGMENT`.
    edge_blur : float
        Largest standard deviation, in pixels, of the blur of each region's mask (soft edges).

    Examples
    --------
    >>> from umeta.data.textures import make_textures
    >>> tasks = MosaicTasks(make_textures(20, image_size=32).images, n_way=4, k_shot=5,
    ...                     q_query=7)
    >>> batch = tasks.sample(3)
    >>> batch.images.shape, batch.masks.shape, batch.support.shape, batch.query.shape
    (torch.Size([3, 3, 32, 32]), torch.Size([3, 32, 32]), torch.Size([3, 4, 5]), torch.Size([3, 4, 7]))
    """

    batch_type = SegmentBatch
    label_free = True

    def __init__(self, images: Tensor, n_way: int, k_shot: int = 32, q_query: int = 64,
                 seed: int = 0, min_segments: int = 2,
                 partitions: list[str] | tuple[str, ...] = PARTITIONS,
                 region_augment: Augment | Mapping | None = None,
                 scene_augment: Augment | Mapping | None = None, edge_blur: float = 1.0) -> None:
        check_source_args(images, n_way, k_shot, q_query)
        if images.shape[-1] != images.shape[-2] or images.shape[-1] < 8:
            raise UmetaError(f"mosaic tasks need square images of at least 8 x 8 pixels; got "
                             f"{tuple(images.shape[-2:])} (set data.image_size)")
        if not 2 <= min_segments <= n_way:
            raise UmetaError(f"min_segments must be in 2 .. n_way={n_way}; got {min_segments}")
        if not 0 <= edge_blur <= 4:
            raise UmetaError(f"edge_blur must be in [0, 4] pixels; got {edge_blur}")
        self.images = images
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        self.min_segments = int(min_segments)
        self.partitions = tuple(partitions)
        random_partition(1, torch.ones(1, dtype=torch.long), 8, torch.Generator(),
                         self.partitions)  # checks the kinds now
        self.region_augment = as_augment(region_augment, REGION_AUGMENT)
        self.scene_augment = as_augment(scene_augment, SCENE_AUGMENT)
        self.edge_blur = float(edge_blur)
        self.generator = seeded_generator(seed, images.device)

    def sample(self, num_tasks: int) -> SegmentBatch:
        """``num_tasks`` scenes, each with distinct images in its segments."""
        gen, dev, n = self.generator, self.images.device, self.n_way
        size = self.images.shape[-1]
        k = torch.randint(self.min_segments, n + 1, (num_tasks,), device=dev, generator=gen)
        masks = random_partition(num_tasks, k, size, gen, self.partitions)
        counts = torch.full((num_tasks,), len(self.images), device=dev)
        idx = sample_distinct(counts, n, gen)  # (T, n_way)
        regions = self.region_augment(self.images[idx.flatten()].float() / 255, gen)
        regions = regions.view(num_tasks, n, *regions.shape[1:])
        cover = F.one_hot(masks, n).permute(0, 3, 1, 2).float()  # (T, N, H, W)
        if self.edge_blur > 0:
            sigma = self.edge_blur * torch.rand(num_tasks, device=dev, generator=gen)
            cover = gaussian_blur(cover, sigma, self.edge_blur)
            cover = cover / cover.sum(1, keepdim=True).clamp_min(1e-6)
        scene = (cover[:, :, None] * regions).sum(1)
        scene = self.scene_augment(scene, gen)
        pixels, present = sample_pixels(masks, n, self.k_shot + self.q_query, gen)
        return SegmentBatch(scene, masks, pixels[..., :self.k_shot], pixels[..., self.k_shot:],
                            present)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])


__all__ = ["MIN_PIXELS", "PARTITIONS", "MosaicTasks", "SegmentBatch", "random_partition",
           "sample_pixels"]
