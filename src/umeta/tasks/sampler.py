"""Labelled N-way K-shot Q-query episode sampling, entirely with index tensors on the device."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.numeric.random import restore_generator, seeded_generator
from umeta.tasks.augment import Augment, as_augment
from umeta.tasks.episode import Episode


class ClassIndex:
    """Per-class image indices as one padded tensor, for sampling without Python loops.

    Attributes
    ----------
    table : Tensor of shape (num_classes, max_count), int64
        ``table[c, :counts[c]]`` are the indices of class ``c``'s images; the rest is padding.
    counts : Tensor of shape (num_classes,), int64
    """

    def __init__(self, labels: Tensor, num_classes: int) -> None:
        labels = labels.long()
        device = labels.device
        valid = labels >= 0
        idx = valid.nonzero().squeeze(1)
        lab = labels[idx]
        order = torch.argsort(lab, stable=True)
        idx, lab = idx[order], lab[order]
        counts = torch.bincount(lab, minlength=num_classes)
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(len(lab), device=device) - starts[lab]
        width = int(counts.max().item()) if num_classes else 0
        table = torch.zeros(num_classes, max(width, 1), dtype=torch.long, device=device)
        table[lab, pos] = idx
        self.table, self.counts = table, counts

    def sample(self, classes: Tensor, per_class: int, generator: torch.Generator) -> Tensor:
        """Draw ``per_class`` distinct images from each class, without replacement.

        Parameters
        ----------
        classes : Tensor of shape (T, N), int64
        per_class : int

        Returns
        -------
        Tensor of shape (T, N, per_class), int64: indices into the image set.
        """
        counts = self.counts[classes]  # (T, N)
        width = self.table.shape[1]
        keys = torch.rand(*classes.shape, width, device=classes.device, generator=generator)
        keys = keys.masked_fill(torch.arange(width, device=classes.device) >= counts[..., None], 2.0)
        pos = keys.topk(per_class, dim=-1, largest=False).indices  # (T, N, per_class)
        return torch.gather(self.table[classes], 2, pos)


class EpisodeSampler:
    """Samples meta-batches of labelled N-way K-shot Q-query episodes from an `ImageSet`.

    The image set should already be on the device where training runs; every draw is a
    few tensor operations there, driven by this sampler's own `torch.Generator`.

    Parameters
    ----------
    data : ImageSet
    n_way, k_shot, q_query : int
        ``q_query`` may be 0 for tasks without queries (e.g. few-shot clustering tasks).
    seed : int
        Seeds the sampler's generator: the same seed gives the same episodes.
    augment : Augment or mapping, optional
        Applied to every support and query image, with the sampler's generator (training-time
        augmentation of labelled episodes); default none.

    Raises
    ------
    UmetaError
        If there are fewer than ``n_way`` classes, or a class has fewer than
        ``k_shot + q_query`` images (the message names the class).
    """

    batch_type = Episode
    label_free = False

    def __init__(self, data: ImageSet, n_way: int, k_shot: int, q_query: int, seed: int = 0,
                 augment: Augment | Mapping | None = None) -> None:
        for name, value, least in (("n_way", n_way, 1), ("k_shot", k_shot, 1),
                                   ("q_query", q_query, 0)):
            if int(value) < least:
                raise UmetaError(f"{name} must be at least {least}; got {value}")
        counts = data.class_counts()
        present = (counts > 0).nonzero().squeeze(1)
        if n_way > len(present):
            raise UmetaError(
                f"n_way={n_way} is larger than the {len(present)} classes of {data.name!r}; "
                f"use a smaller --n-way or more classes"
            )
        need = k_shot + q_query
        short = ((counts < need) & (counts > 0)).nonzero().squeeze(1)
        if len(short):
            c = int(short[0])
            raise UmetaError(
                f"class {data.class_names[c]!r} of {data.name!r} has {int(counts[c])} images but "
                f"k_shot + q_query = {k_shot} + {q_query} = {need} are needed; lower --k-shot or "
                f"--q-query"
            )
        self.data = data
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        self.device = data.device
        self.classes = present.to(self.device)
        self.index = ClassIndex(data.labels, data.num_classes)
        self.generator = seeded_generator(seed, self.device)
        self.augment = as_augment(augment, Augment())

    def sample_indices(self, num_tasks: int) -> tuple[Tensor, Tensor]:
        """Image indices of a meta-batch.

        Returns
        -------
        support : Tensor of shape (T, N * K), int64
        query : Tensor of shape (T, N * Q), int64
            Ordered class-major, so labels are ``arange(N).repeat_interleave(K or Q)``.
        """
        keys = torch.rand(num_tasks, len(self.classes), device=self.device, generator=self.generator)
        chosen = self.classes[keys.topk(self.n_way, dim=1).indices]  # (T, N)
        idx = self.index.sample(chosen, self.k_shot + self.q_query, self.generator)
        support = idx[..., : self.k_shot].reshape(num_tasks, -1)
        query = idx[..., self.k_shot :].reshape(num_tasks, -1)
        return support, query

    def sample(self, num_tasks: int) -> Episode:
        """A meta-batch of ``num_tasks`` episodes with float images in [0, 1]."""
        support, query = self.sample_indices(num_tasks)
        ways = torch.arange(self.n_way, device=self.device)
        return Episode(
            self._images(support),
            ways.repeat_interleave(self.k_shot).expand(num_tasks, -1),
            self._images(query),
            ways.repeat_interleave(self.q_query).expand(num_tasks, -1),
            self.n_way,
        )

    def _images(self, idx: Tensor) -> Tensor:
        """Float images of ``idx`` (T, M) -> (T, M, C, H, W), augmented if asked."""
        x = self.data.float_images(idx)
        if self.augment.is_identity or x.numel() == 0:
            return x
        return self.augment(x.flatten(0, 1), self.generator).view(x.shape)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])
