"""CACTUs (Hsu, Levine and Finn 2019): tasks from k-means clusters of unsupervised embeddings.

The images' embeddings (from any encoder trained without labels) are clustered ``P`` times by
k-means++ / Lloyd, each time after scaling every embedding dimension by a random factor in
``[0, 1)``; each clustering is a partition of the images into pseudo-classes. A task picks a
partition, ``n_way`` of its clusters that hold at least ``k_shot + q_query`` images, and
``k_shot`` support and ``q_query`` query images from each. The clustering runs once, on the
images' device, batched over partitions (`umeta.numeric.kmeans`); a draw is a few tensor
operations.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from umeta.errors import UmetaError
from umeta.numeric.clustering import kmeans
from umeta.numeric.random import restore_generator, seeded_generator
from umeta.progress import progress_bar
from umeta.tasks.augment import Augment, as_augment
from umeta.tasks.episode import Episode
from umeta.tasks.umtra import check_source_args, sample_distinct


def scaled_partitions(embeddings: Tensor, num_partitions: int, num_clusters: int, iters: int,
                      generator: torch.Generator, max_elements: int = 2 ** 26, *,
                      progress: bool = False) -> Tensor:
    """CACTUs' partitions: k-means of the embeddings with randomly rescaled dimensions.

    Parameters
    ----------
    embeddings : Tensor of shape (N, D), float
    num_partitions, num_clusters : int
    iters : int
        Most Lloyd iterations of each k-means (`umeta.numeric.kmeans`, one restart).
    generator : torch.Generator on ``embeddings.device``
    max_elements : int
        Partitions are clustered in chunks whose (chunk, N, num_clusters) distance matrix has at
        most this many entries (at least one partition per chunk).
    progress : bool
        Show a bar of the partitions done.

    Returns
    -------
    Tensor of shape (num_partitions, N), int64: the cluster of each image in each partition.
    """
    n, d = embeddings.shape
    scales = torch.rand(num_partitions, d, device=embeddings.device, generator=generator)
    chunk = max(1, max_elements // (n * num_clusters))
    parts = []
    with progress_bar(num_partitions, desc="cactus partitions", unit="partition",
                      enabled=progress) as bar:
        for start in range(0, num_partitions, chunk):
            x = embeddings[None] * scales[start : start + chunk, None, :]
            parts.append(kmeans(x, num_clusters, n_init=1, max_iter=iters, seed=generator).labels)
            bar.update(len(x))
    return torch.cat(parts)


class CACTUs:
    """Episodes whose classes are k-means clusters of embeddings, over several partitions.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8
        The unlabeled images, on the device where training runs.
    n_way, k_shot, q_query : int
    seed : int
        Seeds the clustering and the task draws.
    embeddings : Tensor of shape (N, D)
        An unsupervised embedding of each image (e.g. from a PsCo encoder trained first).
    num_partitions : int
        ``P``, the number of clusterings (100 in the paper).
    num_clusters : int
        Clusters per partition (500 in the paper for Omniglot).
    kmeans_iters : int
        Most Lloyd iterations per clustering.
    augment : Augment or mapping, optional
        Applied to every support and query image; default none.
    progress : bool
        Show a bar while the partitions are made (minutes for Omniglot on a CPU).

    Raises
    ------
    UmetaError
        If the embeddings do not match the images, or no partition has ``n_way`` clusters of at
        least ``k_shot + q_query`` images (clusters with fewer are never drawn, and partitions
        without ``n_way`` such clusters are skipped).
    """

    batch_type = Episode
    label_free = True

    def __init__(self, images: Tensor, n_way: int, k_shot: int = 1, q_query: int = 1,
                 seed: int = 0, embeddings: Tensor | None = None, num_partitions: int = 100,
                 num_clusters: int = 500, kmeans_iters: int = 20,
                 augment: Augment | Mapping | None = None, progress: bool = False) -> None:
        check_source_args(images, n_way, k_shot, q_query)
        n = len(images)
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2 or len(embeddings) != n:
            got = tuple(embeddings.shape) if isinstance(embeddings, Tensor) else embeddings
            raise UmetaError(f"cactus needs embeddings=<tensor (N, D)> with one row per image "
                             f"({n} images); got {got}")
        if not n_way <= num_clusters <= n:
            raise UmetaError(f"num_clusters must be between n_way={n_way} and the number of "
                             f"images {n}; got {num_clusters}")
        if num_partitions < 1 or kmeans_iters < 1:
            raise UmetaError(f"num_partitions and kmeans_iters must be >= 1; got "
                             f"{num_partitions} and {kmeans_iters}")
        embeddings = embeddings.detach().to(images.device, torch.float32)
        if not torch.isfinite(embeddings).all():
            raise UmetaError("cactus embeddings contain NaN or infinite values; check the encoder")
        self.images = images
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        self.num_clusters = int(num_clusters)
        self.augment = as_augment(augment, Augment())
        self.generator = seeded_generator(seed, images.device)
        self.assignments = scaled_partitions(embeddings, num_partitions, self.num_clusters,
                                             kmeans_iters, self.generator,
                                             progress=progress)  # (P, N)
        p, k, need = num_partitions, self.num_clusters, self.k_shot + self.q_query
        flat = (torch.arange(p, device=images.device)[:, None] * k + self.assignments).flatten()
        self.counts = torch.bincount(flat, minlength=p * k)  # (P * k,) images per cluster
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.members = torch.argsort(flat, stable=True) % n  # images grouped by cluster
        self.eligible = (self.counts >= need).view(p, k)
        per_partition = self.eligible.sum(1)
        self.partitions = (per_partition >= self.n_way).nonzero().squeeze(1)
        if len(self.partitions) == 0:
            raise UmetaError(
                f"no partition has n_way={n_way} clusters with at least k_shot + q_query = "
                f"{k_shot} + {q_query} = {need} images (the best of the {p} partitions has "
                f"{int(per_partition.max())} of its {k} clusters); lower --n-way, --k-shot or "
                f"--q-query, or use fewer clusters"
            )

    def sample(self, num_tasks: int) -> Episode:
        """A meta-batch of ``num_tasks`` episodes, labels ``0 .. n_way - 1`` class-major."""
        dev, gen, k = self.images.device, self.generator, self.num_clusters
        pick = torch.randint(len(self.partitions), (num_tasks,), device=dev, generator=gen)
        part = self.partitions[pick]
        keys = torch.rand(num_tasks, k, device=dev, generator=gen)
        keys = keys.masked_fill(~self.eligible[part], -1.0)
        cluster = part[:, None] * k + keys.topk(self.n_way, dim=1).indices  # (T, N)
        pos = sample_distinct(self.counts[cluster], self.k_shot + self.q_query, gen)
        idx = self.members[self.starts[cluster][..., None] + pos]  # (T, N, K + Q)
        ways = torch.arange(self.n_way, device=dev)
        return Episode(
            self._load(idx[..., : self.k_shot]),
            ways.repeat_interleave(self.k_shot).expand(num_tasks, -1),
            self._load(idx[..., self.k_shot :]),
            ways.repeat_interleave(self.q_query).expand(num_tasks, -1),
            self.n_way,
        )

    def _load(self, idx: Tensor) -> Tensor:
        """Float images of ``idx`` (T, N, M) -> (T, N * M, C, H, W), augmented."""
        t = idx.shape[0]
        x = self.images[idx.reshape(-1)].float().div_(255.0)
        if not self.augment.is_identity:
            x = self.augment(x, self.generator)
        return x.view(t, -1, *x.shape[1:])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])
