"""The registry of label-free task builders and the factory the trainer calls.

A task source has ``sample(num_tasks)``, returning what its learner's ``meta_loss`` takes, and
``state_dict()`` / ``load_state_dict(state)`` holding its generator state so that training
resumes exactly. Label-free builders are handed images only, never labels:

========  ===========  ====================================================================
name      returns      what a task is
========  ===========  ====================================================================
umtra     `Episode`    ``n_way`` random images; support = the image, queries = augmented copies
cactus    `Episode`    ``n_way`` k-means clusters of embeddings (option ``embeddings``)
psco      `ViewBatch`  ``n_way`` random images as two augmented views, for the PsCo learner
========  ===========  ====================================================================
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from torch import Tensor

from umeta.errors import UmetaError
from umeta.registry import Registry
from umeta.tasks.cactus import CACTUs
from umeta.tasks.umtra import UMTRA, ViewSampler, check_source_args


class TaskSource(Protocol):
    """What the trainer draws meta-batches from."""

    def sample(self, num_tasks: int) -> Any: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


TASK_BUILDERS: Registry[TaskSource] = Registry("task builder")
TASK_BUILDERS.register("umtra")(UMTRA)
TASK_BUILDERS.register("cactus")(CACTUs)
TASK_BUILDERS.register("psco")(ViewSampler)


def build_task_source(name: str, images: Tensor, n_way: int, k_shot: int, q_query: int,
                      seed: int = 0, **options: Any) -> TaskSource:
    """Build the label-free task source ``name`` over ``images``.

    Parameters
    ----------
    name : str
        A name in `TASK_BUILDERS`: ``"umtra"``, ``"cactus"`` or ``"psco"``.
    images : Tensor of shape (N, C, H, W), uint8
        The unlabeled images (e.g. ``ImageSet.unlabeled()``), on the training device.
    n_way, k_shot, q_query : int
    seed : int
    **options
        Builder-specific keyword arguments (e.g. ``embeddings`` for cactus, ``query_augment``
        for umtra, ``augment`` for psco).

    Raises
    ------
    UmetaError
        For an unknown name, an option the builder does not take, or a bad configuration.
    """
    factory = TASK_BUILDERS.get(name)
    check_source_args(images, n_way, k_shot, q_query)
    accepted = set(inspect.signature(factory).parameters) - {"self", "images", "n_way", "k_shot",
                                                              "q_query", "seed"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UmetaError(f"task builder {name!r} has no option {unknown[0]!r}; its options are: "
                         f"{', '.join(sorted(accepted))}")
    return factory(images=images, n_way=n_way, k_shot=k_shot, q_query=q_query, seed=seed,
                   **options)
