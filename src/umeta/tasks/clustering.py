"""Unlabeled few-shot clustering tasks: N classes x M images each, in random order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.tasks.sampler import EpisodeSampler


@dataclass
class ClusteringTasks:
    """T clustering tasks of ``n_way`` classes x ``per_class`` images, shuffled.

    Attributes
    ----------
    index : Tensor of shape (T, n_way * per_class), int64
        Indices into the image set.
    images : Tensor of shape (T, n_way * per_class, C, H, W), float in [0, 1]
    labels : ndarray of shape (T, n_way * per_class)
        The true classes (indices of the image set), for scoring only.
    ways : Tensor of shape (T, n_way * per_class), int64
        The same classes renumbered ``0 .. n_way - 1`` within each task.
    n_way : int
    """

    index: Tensor
    images: Tensor
    labels: np.ndarray
    ways: Tensor
    n_way: int


def sample_clustering_tasks(data: ImageSet, n_way: int, per_class: int, num_tasks: int,
                            seed: int) -> ClusteringTasks:
    """Draw clustering tasks from ``data`` with a seeded generator; each task's images are put
    in random order so that no method sees the class-major order of the sampler."""
    sampler = EpisodeSampler(data, n_way, per_class, 0, seed=seed)
    idx, _ = sampler.sample_indices(num_tasks)
    order = torch.rand(idx.shape, device=idx.device, generator=sampler.generator).argsort(1)
    idx = torch.gather(idx, 1, order)
    ways = torch.arange(n_way, device=idx.device).repeat_interleave(per_class)
    return ClusteringTasks(idx, data.float_images(idx), data.labels[idx].cpu().numpy(),
                           ways.expand_as(order).gather(1, order), n_way)
