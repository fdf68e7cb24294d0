"""The registry of task builders, and the function that builds a label-free one from images.

A task source has ``sample(num_tasks)``, returning a meta-batch of its class's ``batch_type``,
and ``state_dict()`` / ``load_state_dict(state)`` holding its generator state so that training
resumes exactly. Its class also says ``label_free``: label-free builders are handed images only,
never labels (their constructors take ``images``; the labelled sampler takes an `ImageSet`):

=========  ==============  ================================================================
name       makes           what a task is
=========  ==============  ================================================================
labelled   `Episode`       ``n_way`` classes of a labelled image set, ``k_shot`` + ``q_query``
umtra      `Episode`       ``n_way`` random images; support = the image, queries = copies
cactus     `Episode`       ``n_way`` k-means clusters of embeddings (argument ``embeddings``)
psco       `ViewBatch`     ``n_way`` random images as two augmented views (PsCo learner)
mosaic     `SegmentBatch`  one scene of 2 .. ``n_way`` images in a random partition, with its
                           mask (segmentation learners: pixelproto)
tables     `TableBatch`    whole tables (synthetic priors and real tables) with known clusters
                           and outliers, for the table learner (`umeta.tasks.tables`)
=========  ==============  ================================================================

A builder that takes ``embeddings`` (CACTUs) is given, by `umeta.build`, the embeddings of the
training images under the label-free checkpoint that its ``encoder`` option names.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from umeta.errors import UmetaError
from umeta.registry import Registry
from umeta.tasks.cactus import CACTUs
from umeta.tasks.mosaic import MosaicTasks
from umeta.tasks.sampler import EpisodeSampler
from umeta.tasks.tables import TableTasks
from umeta.tasks.umtra import UMTRA, ViewSampler, check_source_args


class TaskSource(Protocol):
    """What the trainer draws meta-batches from."""

    batch_type: type
    label_free: bool

    def sample(self, num_tasks: int) -> Any: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


TASK_BUILDERS: Registry[TaskSource] = Registry("task builder")
TASK_BUILDERS.register("labelled")(EpisodeSampler)
TASK_BUILDERS.register("umtra")(UMTRA)
TASK_BUILDERS.register("cactus")(CACTUs)
TASK_BUILDERS.register("psco")(ViewSampler)
TASK_BUILDERS.register("mosaic")(MosaicTasks)
TASK_BUILDERS.register("tables")(TableTasks)


def build_task_source(name: str, images: Tensor, n_way: int, k_shot: int, q_query: int,
                      seed: int = 0, **options: Any) -> TaskSource:
    """Build the label-free task source ``name`` over ``images``.

    Parameters
    ----------
    name : str
        A label-free builder of `TASK_BUILDERS`: ``"umtra"``, ``"cactus"`` or ``"psco"``.
    images : Tensor of shape (N, C, H, W), uint8
        The unlabeled images (e.g. ``ImageSet.unlabeled()``), on the training device.
    n_way, k_shot, q_query : int
    seed : int
    **options
        Builder-specific keyword arguments (e.g. ``embeddings`` for cactus, ``query_augment``
        for umtra, ``augment`` for psco), checked against the builder's signature.

    Raises
    ------
    UmetaError
        For an unknown name, an option the builder does not take, or a bad configuration.
    """
    if not TASK_BUILDERS.get(name).label_free:
        raise UmetaError(f"task builder {name!r} needs labelled data, not images alone; use "
                         f"EpisodeSampler(ImageSet, ...) or a label-free builder")
    check_source_args(images, n_way, k_shot, q_query)
    return TASK_BUILDERS.build(name, options, images=images, n_way=n_way, k_shot=k_shot,
                               q_query=q_query, seed=seed)
