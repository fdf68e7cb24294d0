"""Label-free tasks from augmented copies of random images.

`UMTRA` (Khodadadeh, Bölöni and Shah 2019) treats ``n_way`` random images as ``n_way`` classes:
each image (or an augmented copy) is its class's support, augmented copies are its queries.
`ViewSampler` draws the same kind of random images for contrastive learners such as PsCo and
returns two augmented views of them as a `ViewBatch`.
Both are handed images only, never labels, and own a seeded `torch.Generator` on the images'
device; a draw is a handful of tensor operations there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from umeta.errors import UmetaError
from umeta.numeric.random import restore_generator, seeded_generator
from umeta.tasks.augment import PSCO_OMNIGLOT, UMTRA_OMNIGLOT, Augment, as_augment
from umeta.tasks.episode import Episode


def check_source_args(images: Tensor, n_way: int, k_shot: int, q_query: int) -> None:
    """Raise `UmetaError` unless ``images`` is uint8 (N, C, H, W), the task sizes are >= 1 and
    there are at least ``n_way`` images."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        what = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, Tensor) else type(images).__name__)
        raise UmetaError(f"a task builder takes uint8 images (N, C, H, W), e.g. "
                         f"ImageSet.unlabeled(); got a {what}")
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("q_query", q_query)):
        if int(value) != value or value < 1:
            raise UmetaError(f"{name} must be a whole number >= 1; got {value}")
    if n_way > len(images):
        raise UmetaError(f"n_way={n_way} is larger than the {len(images)} images given; "
                         f"use a smaller --n-way or more images")


def sample_distinct(counts: Tensor, m: int, generator: torch.Generator) -> Tensor:
    """Draw ``m`` distinct integers from ``0 .. counts - 1`` for every entry of ``counts``.

    Floyd's algorithm, vectorised over ``counts``: ``m`` small tensor steps whatever the
    population size, so drawing from large populations costs no memory. Each returned set is
    uniform over all ``m``-subsets and comes in a uniformly random order.

    Parameters
    ----------
    counts : Tensor of shape (*S), int64, every value >= m
    m : int

    Returns
    -------
    Tensor of shape (*S, m), int64
    """
    dev = counts.device
    # step i draws uniformly from 0 .. top_i; top_i itself cannot have been taken before step i
    top = counts[..., None] - m + torch.arange(m, device=dev)  # (*S, m)
    u = torch.rand(*counts.shape, m, device=dev, dtype=torch.float64, generator=generator)
    chosen = torch.minimum((u * (top + 1)).long(), top)
    for i in range(1, m):
        taken = (chosen[..., :i] == chosen[..., i : i + 1]).any(-1)
        chosen[..., i] = torch.where(taken, top[..., i], chosen[..., i])
    order = torch.rand(*counts.shape, m, device=dev, generator=generator).argsort(-1)
    return chosen.gather(-1, order)


def _copies(images: Tensor, idx: Tensor, copies: int, augment: Augment,
            generator: torch.Generator) -> Tensor:
    """``copies`` augmented float copies of ``images[idx]``, (T, N) -> (T, N * copies, C, H, W)."""
    t, n = idx.shape
    x = images[idx].float().div_(255.0)  # (T, N, C, H, W)
    x = x[:, :, None].expand(t, n, copies, *x.shape[2:]).reshape(t * n * copies, *x.shape[2:])
    if not augment.is_identity:
        x = augment(x, generator)
    return x.view(t, n * copies, *x.shape[1:])


class UMTRA:
    """Episodes whose classes are single random images and their augmented copies.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8
        The unlabeled images, on the device where training runs.
    n_way, k_shot, q_query : int
        Images per task; support and query copies per image. The paper uses ``k_shot = 1``.
    seed : int
    query_augment : Augment or mapping, optional
        Makes the queries; default `UMTRA_OMNIGLOT` (pixel zeroing, shifts of up to 6 pixels).
    support_augment : Augment or mapping, optional
        Applied to the support copies; default none (the support is the image itself).

    Raises
    ------
    UmetaError
        If there are fewer than ``n_way`` images or an argument is malformed.
    """

    batch_type = Episode
    label_free = True

    def __init__(self, images: Tensor, n_way: int, k_shot: int = 1, q_query: int = 1,
                 seed: int = 0, query_augment: Augment | Mapping | None = None,
                 support_augment: Augment | Mapping | None = None) -> None:
        check_source_args(images, n_way, k_shot, q_query)
        self.images = images
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        self.query_augment = as_augment(query_augment, UMTRA_OMNIGLOT)
        self.support_augment = as_augment(support_augment, Augment())
        self.generator = seeded_generator(seed, images.device)
        self._population = torch.tensor(len(images), device=images.device)

    def sample(self, num_tasks: int) -> Episode:
        """A meta-batch of ``num_tasks`` episodes, labels ``0 .. n_way - 1`` class-major."""
        idx = sample_distinct(self._population.expand(num_tasks), self.n_way, self.generator)
        support = _copies(self.images, idx, self.k_shot, self.support_augment, self.generator)
        query = _copies(self.images, idx, self.q_query, self.query_augment, self.generator)
        ways = torch.arange(self.n_way, device=self.images.device)
        return Episode(support, ways.repeat_interleave(self.k_shot).expand(num_tasks, -1),
                       query, ways.repeat_interleave(self.q_query).expand(num_tasks, -1),
                       self.n_way)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])


@dataclass
class ViewBatch:
    """Augmented views of ``T * n_way`` distinct images for a contrastive learner (PsCo).

    Image ``i`` of task ``t`` is pseudo-class ``i`` of that task.

    Attributes
    ----------
    query_x : Tensor of shape (T, n_way * q_query, C, H, W), float
        Views for the online network, image-major: rows ``i * q_query ..`` show image ``i``.
    key_x : Tensor of shape (T, n_way, C, H, W), float
        One view of each image for the momentum network.
    n_way : int
    k_shot : int
        Support shots per pseudo-class that the learner draws from its queue.
    """

    query_x: Tensor
    key_x: Tensor
    n_way: int
    k_shot: int

    @property
    def num_tasks(self) -> int:
        return int(self.key_x.shape[0])

    def to(self, device: torch.device | str) -> "ViewBatch":
        return ViewBatch(self.query_x.to(device), self.key_x.to(device), self.n_way, self.k_shot)


class ViewSampler:
    """Batches of distinct random images as two augmented views (the ``"psco"`` task source).

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8
    n_way : int
        Pseudo-classes per task; PsCo's paper uses one task per batch, ``n_way`` = batch size.
    k_shot : int
        Shots per pseudo-class the learner takes from its queue (passed on in the batch).
    q_query : int
        Online views per image (1 in the paper).
    seed : int
    augment : Augment or mapping, optional
        Makes the online views; default `PSCO_OMNIGLOT` (random resized crop, flip).
    key_augment : Augment or mapping, optional
        Makes the momentum views; default: the same as ``augment``.
    """

    batch_type = ViewBatch
    label_free = True

    def __init__(self, images: Tensor, n_way: int, k_shot: int = 1, q_query: int = 1,
                 seed: int = 0, augment: Augment | Mapping | None = None,
                 key_augment: Augment | Mapping | None = None) -> None:
        check_source_args(images, n_way, k_shot, q_query)
        self.images = images
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        self.augment = as_augment(augment, PSCO_OMNIGLOT)
        self.key_augment = as_augment(key_augment, self.augment)
        self.generator = seeded_generator(seed, images.device)

    def sample(self, num_tasks: int) -> ViewBatch:
        """``num_tasks * n_way`` distinct images (distinct across the whole batch), two views."""
        batch = num_tasks * self.n_way
        if batch > len(self.images):
            raise UmetaError(f"a batch of {num_tasks} x n_way={self.n_way} = {batch} images is "
                             f"larger than the {len(self.images)} images given; sample fewer tasks")
        keys = torch.rand(len(self.images), device=self.images.device, generator=self.generator)
        idx = keys.topk(batch).indices.view(num_tasks, self.n_way)
        query = _copies(self.images, idx, self.q_query, self.augment, self.generator)
        key = _copies(self.images, idx, 1, self.key_augment, self.generator)
        return ViewBatch(query, key, self.n_way, self.k_shot)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])
