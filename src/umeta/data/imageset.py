"""`ImageSet`: a labelled (or unlabeled) set of uint8 images that can live on any device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from umeta.errors import UmetaError


@dataclass
class ImageSet:
    """Images with integer class labels, class names and an optional group per class.

    Attributes
    ----------
    images : Tensor of shape (N, C, H, W), dtype uint8
        Pixel values; for Omniglot ink is 255 (1.0 after :meth:`float_images`), background 0.
    labels : Tensor of shape (N,), dtype int64
        Class index of each image, in ``0 .. len(class_names) - 1``; ``-1`` marks unlabeled data.
    class_names : list of str
        Name of each class (for Omniglot ``"Alphabet/characterNN"``, with ``"/rotDDD"`` for
        rotated copies).
    groups : list of str or None
        Group of each class (the alphabet for Omniglot), or None.
    name : str
        Where the data came from, for reports.
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    groups: list[str] | None = None
    name: str = "images"
    _class_index: dict[str, int] = field(default=None, init=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise UmetaError(
                f"ImageSet.images must be a uint8 tensor of shape (N, C, H, W); got dtype "
                f"{self.images.dtype} and shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise UmetaError(
                f"ImageSet.labels must have shape ({self.images.shape[0]},) to match the images; "
                f"got {tuple(self.labels.shape)}"
            )
        self.labels = self.labels.long()
        if self.groups is not None and len(self.groups) != len(self.class_names):
            raise UmetaError(
                f"ImageSet.groups has {len(self.groups)} entries but there are "
                f"{len(self.class_names)} classes; give one group per class"
            )
        self._class_index = {n: i for i, n in enumerate(self.class_names)}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "ImageSet":
        """A copy with images and labels on ``device`` (still uint8)."""
        return ImageSet(
            self.images.to(device), self.labels.to(device), list(self.class_names),
            None if self.groups is None else list(self.groups), self.name,
        )

    def float_images(self, index: Tensor | None = None) -> Tensor:
        """Images (or ``images[index]``) as float32 in [0, 1], shape (..., C, H, W)."""
        x = self.images if index is None else self.images[index]
        return x.float().div_(255.0)

    def class_counts(self) -> Tensor:
        """Number of images in each class, shape (num_classes,)."""
        labelled = self.labels[self.labels >= 0]
        return torch.bincount(labelled, minlength=self.num_classes)

    def select_classes(self, names: Sequence[str], name: str | None = None) -> "ImageSet":
        """The images of the classes ``names``, relabelled ``0 .. len(names) - 1`` in that order.

        Raises
        ------
        UmetaError
            If a name is not a class of this set.
        """
        missing = [n for n in names if n not in self._class_index]
        if missing:
            raise UmetaError(
                f"{len(missing)} requested classes are not in {self.name!r} (first: "
                f"{missing[0]!r}); check the split list against the data"
            )
        old = torch.tensor([self._class_index[n] for n in names], dtype=torch.long)
        remap = torch.full((self.num_classes,), -1, dtype=torch.long)
        remap[old] = torch.arange(len(names))
        new_labels = remap[self.labels.cpu().clamp_min(0)]
        new_labels[self.labels.cpu() < 0] = -1
        keep = (new_labels >= 0).nonzero().squeeze(1)
        order = torch.argsort(new_labels[keep], stable=True)
        keep = keep[order]
        groups = None if self.groups is None else [self.groups[i] for i in old.tolist()]
        return ImageSet(
            self.images[keep.to(self.device)], new_labels[keep].to(self.device), list(names),
            groups, name or self.name,
        )

    def select_groups(self, groups: Sequence[str], name: str | None = None) -> "ImageSet":
        """The classes whose group is in ``groups`` (e.g. Omniglot alphabets), in class order."""
        if self.groups is None:
            raise UmetaError(f"{self.name!r} has no groups; select by class names instead")
        wanted = set(groups)
        names = [n for n, g in zip(self.class_names, self.groups) if g in wanted]
        return self.select_classes(names, name)

    def unlabeled(self) -> Tensor:
        """The images alone, uint8 (N, C, H, W): what a label-free task builder is handed."""
        return self.images

    @staticmethod
    def concat(sets: Sequence["ImageSet"], name: str) -> "ImageSet":
        """Join sets with disjoint classes into one, offsetting the labels."""
        images, labels, names, groups, offset = [], [], [], [], 0
        for s in sets:
            images.append(s.images)
            labels.append(torch.where(s.labels >= 0, s.labels + offset, s.labels))
            names.extend(s.class_names)
            groups.extend(s.groups if s.groups is not None else [""] * s.num_classes)
            offset += s.num_classes
        return ImageSet(torch.cat(images), torch.cat(labels), names, groups, name)
