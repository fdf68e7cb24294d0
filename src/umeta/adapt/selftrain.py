"""Cluster-then-fine-tune: label-free test-time training on a new collection's own clusters.

Per-image pseudo-classes (UMTRA, `umeta.adapt.finetune`) push apart images of the same real
class. Here the pseudo-classes are the collection's own k-means clusters in the learner's
embedding (refreshed every few steps): each step draws a balanced pseudo-episode, ``shots``
support and ``shots`` query images of every cluster (with replacement, each image augmented on
its own), and takes one optimizer step of the learner's own episode loss
(:meth:`Learner.meta_loss`: ProtoNets' or PsCo's prototype cross-entropy). Images of one cluster
are pulled together and clusters apart, under augmentation, so the features become invariant to
what the augmentation changes on this data.

BatchNorm is kept in eval mode, as in `umeta.adapt.finetune`: only the weights change (combine
with `umeta.adapt.adabn` to re-estimate the statistics first). Labels never reach this module.

Self-training can lose on some collections, so :func:`checked_selftrain` keeps the self-trained
copy only when a label-free check says it helped: its partition must agree better (ARI) with
k-means of the images' pixels than the partition before self-training does
(:func:`pixel_agreement_gain`), pixels being a second view of the same images whose errors are
not the model's. The check was chosen on one B6 set and judged on the others
(``benchmarks/results/b6_selftrain_criterion_*.json``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from umeta.adapt.embed import as_images, model_device
from umeta.adapt.finetune import check_finetune_args
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.metrics import ari
from umeta.numeric.clustering import cluster_tasks
from umeta.numeric.random import seeded_generator
from umeta.tasks.augment import Augment
from umeta.tasks.episode import Episode

#: The views' augmentation: random resized crops (area 0.6 .. 1) and rotations up to 10 degrees.
SELFTRAIN_VIEWS = Augment(crop_scale=(0.6, 1.0), rotate=10.0)


@dataclass
class SelfTraining:
    """What :func:`selftrain` returns.

    Attributes
    ----------
    learner : Learner
        The fine-tuned copy, in eval mode.
    labels : Tensor of shape (N,)
        The last pseudo-labels (k-means in the copy's embedding before its last refresh).
    losses : list of float
        The loss of every step.
    """

    learner: Learner
    labels: Tensor
    losses: list[float]


def _as_float(images: Tensor, device: torch.device) -> Tensor:
    x = torch.as_tensor(images).to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def pseudo_labels(learner: Learner, x: Tensor, n_clusters: int, seed: int) -> Tensor:
    """k-means (10 restarts) of the L2-normalised embedding of ``x`` (N, C, H, W) -> (N,)."""
    feats = learner.embed(x)
    return cluster_tasks(feats[None], n_clusters, normalize=True, seed=seed).labels[0]


def _balanced_draw(labels: Tensor, n_clusters: int, shots: int, gen: torch.Generator) -> Tensor:
    """Indices (n_clusters, shots) drawn uniformly with replacement from each cluster."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=n_clusters)
    starts = torch.cumsum(counts, 0) - counts
    u = torch.rand(n_clusters, shots, device=labels.device, generator=gen)
    pos = (u * counts[:, None]).long().clamp_max((counts - 1).clamp_min(0)[:, None])
    return order[starts[:, None] + pos]


def selftrain(learner: Learner, images: Tensor, n_clusters: int, *, steps: int = 20,
              lr: float = 1e-4, shots: int = 4, refresh_every: int = 5,
              views: Augment = SELFTRAIN_VIEWS, seed: int = 0) -> SelfTraining:
    """A copy of ``learner`` fine-tuned on the clusters of one new collection.

    Parameters
    ----------
    learner : Learner
        Meta-trained; its ``meta_loss`` takes an `Episode`.
    images : Tensor of shape (N, C, H, W)
        uint8, or float in [0, 1]; N >= n_clusters.
    n_clusters : int
        Pseudo-classes (the number of clusters asked for, >= 2).
    steps : int
        Optimizer steps (Adam); 0 returns an unchanged copy.
    lr : float
    shots : int
        Support and query images per cluster and step.
    refresh_every : int
        Re-cluster in the current embedding every this many steps (>= 1).
    views : Augment
        Applied independently to every support and query image.
    seed : int
        Seeds the clustering, the draws and the augmentation.

    Returns
    -------
    SelfTraining
    """
    check_finetune_args(steps, lr)
    if not isinstance(learner, Learner):
        raise UmetaError(f"self-training needs a meta-trained Learner; got "
                         f"{type(learner).__name__}")
    if n_clusters < 2 or shots < 1 or refresh_every < 1:
        raise UmetaError(f"self-training needs n_clusters >= 2, shots >= 1 and refresh_every "
                         f">= 1; got {n_clusters}, {shots}, {refresh_every}")
    x = as_images(_as_float(images, model_device(learner, torch.device("cpu"))),
                  learner.image_shape)
    device = x.device
    if len(x) < n_clusters:
        raise UmetaError(f"cannot make {n_clusters} pseudo-classes of {len(x)} images; give more "
                         f"images or fewer clusters")
    gen = seeded_generator(seed, device)
    tuned = copy.deepcopy(learner).eval()
    params = [p for p in tuned.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    labels = pseudo_labels(tuned, x, n_clusters, seed)
    ways = torch.arange(n_clusters, device=device).repeat_interleave(shots)[None]
    losses = []
    with torch.enable_grad():
        for step in range(steps):
            if step and step % refresh_every == 0:
                labels = pseudo_labels(tuned, x, n_clusters, seed + step)
            support = _balanced_draw(labels, n_clusters, shots, gen).flatten()
            query = _balanced_draw(labels, n_clusters, shots, gen).flatten()
            episode = Episode(views(x[support], gen)[None], ways, views(x[query], gen)[None],
                              ways, n_clusters)
            loss = tuned.meta_loss(episode).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    if not all(bool(torch.isfinite(p).all()) for p in params):
        raise UmetaError(f"self-training diverged (non-finite weights after {steps} steps at "
                         f"lr={lr:g}); lower the learning rate")
    return SelfTraining(tuned.eval(), labels, losses)


def selftrain_task_features(learner: Learner, images: Tensor, n_clusters: int, *,
                            seed: int = 0, **options) -> Tensor:
    """Each task's features under a copy of ``learner`` self-trained on that task's images.

    Parameters
    ----------
    learner : Learner
    images : Tensor of shape (T, M, C, H, W)
    n_clusters : int
    seed : int
        Task ``t`` uses ``seed + t``.
    **options
        More arguments of :func:`selftrain`.

    Returns
    -------
    Tensor of shape (T, M, D), on the learner's device
    """
    if images.dim() != 5:
        raise UmetaError(f"selftrain_task_features takes tasks (T, M, C, H, W); got shape "
                         f"{tuple(images.shape)}")
    out = []
    for t, task in enumerate(images):
        tuned = selftrain(learner, task, n_clusters, seed=seed + t, **options).learner
        out.append(tuned.embed(_as_float(task, model_device(tuned, task.device))))
    return torch.stack(out)


def pixel_agreement_gain(images: Tensor, before: Tensor, after: Tensor, n_clusters: int,
                         seed: int = 0) -> float:
    """ARI of ``after`` with k-means of the pixels minus that of ``before`` (label-free).

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), float
    before, after : Tensor of shape (N,)
        Two partitions of the images.
    n_clusters : int
        Clusters of the pixel k-means (10 restarts, seeded).

    Returns
    -------
    float in [-2, 2]; > 0 means ``after`` agrees better with the pixels.
    """
    pixels = cluster_tasks(images.flatten(1)[None].float(), n_clusters, seed=seed).labels[0]
    p = pixels.cpu().numpy()
    return ari(p, after.cpu().numpy()) - ari(p, before.cpu().numpy())


@dataclass
class CheckedSelfTraining:
    """What :func:`checked_selftrain` returns.

    Attributes
    ----------
    learner : Learner
        The self-trained copy if it was kept, else (a copy of) the learner given.
    kept : bool
    agreement_gain : float
        :func:`pixel_agreement_gain` of the self-trained partition over the one before.
    labels : Tensor of shape (N,)
        The partition of the learner returned (k-means of its normalised embedding).
    """

    learner: Learner
    kept: bool
    agreement_gain: float
    labels: Tensor


def checked_selftrain(learner: Learner, images: Tensor, n_clusters: int, *, seed: int = 0,
                      **options) -> CheckedSelfTraining:
    """:func:`selftrain`, kept only if :func:`pixel_agreement_gain` is positive.

    Parameters
    ----------
    learner, images, n_clusters, seed : see :func:`selftrain`
    **options
        More arguments of :func:`selftrain` (steps, lr, shots, refresh_every, views).

    Returns
    -------
    CheckedSelfTraining
    """
    tuned = selftrain(learner, images, n_clusters, seed=seed, **options).learner
    x = _as_float(images, model_device(learner, torch.device("cpu")))
    before = pseudo_labels(learner, x, n_clusters, seed)
    after = pseudo_labels(tuned, x, n_clusters, seed)
    gain = pixel_agreement_gain(x, before, after, n_clusters, seed)
    if gain > 0:
        return CheckedSelfTraining(tuned, True, gain, after)
    return CheckedSelfTraining(copy.deepcopy(learner).eval(), False, gain, before)
