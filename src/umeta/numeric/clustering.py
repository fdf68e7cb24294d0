"""Batched k-means++ on the device, prototype refinement, silhouettes, the number of clusters.

:func:`kmeans` runs many tasks and many restarts at once (one tensor program, a seeded
``torch.Generator``); :func:`cluster_tasks` adds L2-normalisation and prototype refinement for a
batch of tasks; :func:`estimate_n_clusters` picks k by the silhouette.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.errors import UmetaError
from umeta.numeric.distances import squared_distances
from umeta.numeric.random import as_generator
from umeta.params import Interval, OneOf, Pair, ParamError, check_params

REFINEMENTS = ("none", "soft", "balanced")
#: Limits of the clustering parameters, declared once (used by the functions here, by
#: `umeta.adapt.cluster_dataset` and by `MetaClusterer`).
CLUSTERING_LIMITS = {
    "n_clusters": [Interval(int, 1, None)],
    "k_range": [Pair(Interval(int, 2, None))],
    "n_init": [Interval(int, 1, None)],
    "max_iter": [Interval(int, 1, None)],
    "tol": [Interval(float, 0, None)],
    "normalize": [bool],
    "refine": [OneOf(*REFINEMENTS)],
    "refine_steps": [Interval(int, 0, None)],
}
_ELEMENT_BUDGET = 1 << 25  # largest (tasks x points x restarts x clusters) block at once


@dataclass
class Clustering:
    """Cluster assignments of a batch of tasks (or of one data set, without the task axis).

    Attributes
    ----------
    labels : Tensor of shape (T, M) or (N,), int64 in ``0 .. k - 1``
    centers : Tensor of shape (T, k, D) or (k, D)
    inertia : Tensor of shape (T,) or ()
        Sum of squared distances of the points to their assigned centre.
    n_iter : int
        Lloyd iterations run (all tasks and restarts of a batch iterate together).
    features : Tensor of shape (N, D) or None
        The features that were clustered, where the caller keeps them
        (`umeta.adapt.cluster_dataset` does, for `umeta.adapt.explain`).
    """

    labels: Tensor
    centers: Tensor
    inertia: Tensor
    n_iter: int = 0
    features: Tensor | None = None

    @property
    def n_clusters(self) -> int:
        return int(self.centers.shape[-2])


def _take(x: Tensor, index: Tensor) -> Tensor:
    """Rows of each task, (T, M, D) and index (T, *S) -> (T, *S, D)."""
    t, shape = index.shape[0], index.shape[1:]
    flat = index.reshape(t, -1, 1).expand(-1, -1, x.shape[-1])
    return x.gather(1, flat).view(t, *shape, x.shape[-1])


def _kmeans_plus_plus(x: Tensor, k: int, n_init: int, gen: torch.Generator) -> Tensor:
    """Greedy k-means++ seeding (2 + log k candidates per step), centres (T, R, k, D)."""
    t, m, _ = x.shape
    trials = 2 + int(math.log(k))
    chosen = torch.randint(m, (t, n_init), generator=gen, device=x.device)
    closest = squared_distances(x, _take(x, chosen)).transpose(1, 2)  # (T, R, M)
    picks = [chosen]
    for _ in range(1, k):
        weights = closest.reshape(t * n_init, m)
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        cand = torch.multinomial(weights, trials, replacement=True, generator=gen)
        cand = cand.view(t, n_init * trials)
        d_cand = squared_distances(x, _take(x, cand)).transpose(1, 2)  # (T, R * L, M)
        d_new = torch.minimum(closest[:, :, None, :], d_cand.view(t, n_init, trials, m))
        best = d_new.sum(-1).argmin(-1)  # (T, R)
        closest = d_new.gather(2, best[:, :, None, None].expand(-1, -1, 1, m)).squeeze(2)
        picks.append(cand.view(t, n_init, trials).gather(2, best[..., None]).squeeze(2))
    return _take(x, torch.stack(picks, -1))  # (T, R, k, D)


def _assign(x: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest centre and its squared distance, for centres (T, R, k, D) -> (T, M, R) each."""
    t, r, k, d = centers.shape
    d2 = squared_distances(x, centers.reshape(t, r * k, d)).view(t, -1, r, k)
    best, labels = d2.min(-1)
    return labels, best


def _update(x: Tensor, labels: Tensor, best: Tensor, old: Tensor) -> Tensor:
    """Cluster means (T, R, k, D); an empty cluster moves to a point far from its centre."""
    t, r, k, d = old.shape
    one_hot = F.one_hot(labels, k).to(x.dtype)  # (T, M, R, k)
    sums = one_hot.flatten(2).transpose(1, 2) @ x  # (T, R * k, D)
    counts = one_hot.sum(1)  # (T, R, k)
    means = sums.view(t, r, k, d) / counts.clamp_min(1)[..., None]
    empty = counts == 0
    far = best.transpose(1, 2).topk(k, dim=-1).indices  # (T, R, k), farthest points first
    rank = (empty.long().cumsum(-1) - 1).clamp_min(0)
    moved = _take(x, far.gather(-1, rank).view(t, r * k)).view(t, r, k, d)
    return torch.where(empty[..., None], moved, means)


def kmeans(x: Tensor, k: int, *, n_init: int = 10, max_iter: int = 100, tol: float = 1e-4,
           seed: int | torch.Generator = 0) -> Clustering:
    """k-means (greedy k-means++ seeding, Lloyd iterations) for a batch of tasks at once.

    All tasks and all ``n_init`` restarts run as one batched tensor program on ``x.device``;
    each task keeps its restart of lowest inertia.

    Parameters
    ----------
    x : Tensor of shape (T, M, D)
        T tasks of M points each.
    k : int
        Clusters per task, ``1 <= k <= M``.
    n_init : int
        Restarts per task.
    max_iter : int
        Most Lloyd iterations.
    tol : float
        Stop when every restart moved its centres by at most ``tol`` times the mean feature
        variance of its task (squared Frobenius norm), as scikit-learn does.
    seed : int or torch.Generator
        A generator on ``x.device``, or the seed of a new one.

    Returns
    -------
    Clustering with labels (T, M), centers (T, k, D), inertia (T,)
    """
    if x.dim() != 3 or x.shape[1] == 0 or x.shape[2] == 0:
        raise UmetaError(f"kmeans expects features of shape (tasks, points, dims); "
                         f"got {tuple(x.shape)}")
    check_params({"n_clusters": k, "n_init": n_init, "max_iter": max_iter, "tol": tol},
                 CLUSTERING_LIMITS)
    check_cluster_count(k, x.shape[1])
    x = x if x.is_floating_point() else x.float()
    gen = as_generator(seed, x.device)
    centers = _kmeans_plus_plus(x, k, n_init, gen)
    threshold = tol * x.var(1, unbiased=False).mean(-1)[:, None]  # (T, 1)
    for n_iter in range(1, max_iter + 1):
        labels, best = _assign(x, centers)
        new = _update(x, labels, best, centers)
        shift = (new - centers).pow(2).sum((-1, -2))  # (T, R)
        centers = new
        if bool((shift <= threshold).all()):
            break
    labels, best = _assign(x, centers)
    inertia = best.sum(1)  # (T, R)
    pick = inertia.argmin(-1)  # (T,)
    t, m = x.shape[:2]
    return Clustering(
        labels.gather(2, pick[:, None, None].expand(-1, m, 1)).squeeze(2),
        centers[torch.arange(t, device=x.device), pick],
        inertia.gather(1, pick[:, None]).squeeze(1),
        n_iter,
    )


def _soft_weights(x: Tensor, centers: Tensor, temperature: float, balanced: bool,
                  sinkhorn_iters: int) -> tuple[Tensor, Tensor]:
    """Soft assignment weights (T, M, k), rows summing to 1, and the squared distances."""
    d2 = squared_distances(x, centers)  # (T, M, k)
    scale = d2.mean((1, 2)).clamp_min(1e-12)[:, None, None]
    logits = (-d2 / (temperature * scale)).log_softmax(-1)
    if balanced:
        log_size = math.log(x.shape[1] / centers.shape[1])
        for _ in range(sinkhorn_iters):
            logits = logits - logits.logsumexp(1, keepdim=True) + log_size  # equal cluster sizes
            logits = logits.log_softmax(-1)  # each point's weights sum to 1
    return logits.exp(), d2


def refine_prototypes(x: Tensor, centers: Tensor, *, steps: int = 10, temperature: float = 0.05,
                      balanced: bool = False, sinkhorn_iters: int = 50) -> Clustering:
    """A few soft prototype re-assignment steps from given centres.

    Each step weights every point by ``softmax(-d^2 / (temperature * s))`` over the prototypes,
    where ``s`` is the task's mean squared point-to-prototype distance, and moves each prototype
    to its weighted mean. With ``balanced`` the weights are first pushed (Sinkhorn) towards
    clusters of equal size, a prior that fits tasks with as many samples per class.

    Temperatures of 0.2 and above can merge prototypes (docs/adaptation.md has the measured
    effect of each refinement).

    Parameters
    ----------
    x : Tensor of shape (T, M, D)
    centers : Tensor of shape (T, k, D)
    steps : int
    temperature : float
        > 0; small values approach hard k-means steps.
    balanced : bool
    sinkhorn_iters : int

    Returns
    -------
    Clustering with labels (T, M) = the largest weight of each point under the refined
    centres (T, k, D), and the inertia (T,) of those labels
    """
    if temperature <= 0 or steps < 0:
        raise UmetaError(f"temperature={temperature} must be > 0 and steps={steps} >= 0")
    for _ in range(steps):
        weights, _ = _soft_weights(x, centers, temperature, balanced, sinkhorn_iters)
        centers = (weights.transpose(1, 2) @ x) / weights.sum(1).clamp_min(1e-12)[..., None]
    weights, d2 = _soft_weights(x, centers, temperature, balanced, sinkhorn_iters)
    labels = weights.argmax(-1)
    return Clustering(labels, centers, d2.gather(2, labels[..., None]).squeeze(2).sum(-1))


def check_cluster_count(n_clusters: int, n_samples: int) -> None:
    """Raise `ParamError` unless ``1 <= n_clusters <= n_samples``."""
    if not 1 <= n_clusters <= n_samples:
        raise ParamError("n_clusters", n_clusters, f"cannot make {{setting}} clusters of "
                                                   f"{n_samples} samples; choose 1 <= {{param}} "
                                                   f"<= {n_samples}")


def cluster_tasks(feats: Tensor, n_clusters: int, *, normalize: bool = False, n_init: int = 10,
                  max_iter: int = 100, tol: float = 1e-4, refine: str = "none",
                  refine_steps: int = 10, seed: int | torch.Generator = 0) -> Clustering:
    """Cluster each of T tasks of M feature vectors into ``n_clusters`` clusters.

    Tasks run in as few batched blocks as memory allows (one block for a B2-sized batch).

    Parameters
    ----------
    feats : Tensor of shape (T, M, D)
        E.g. ``learner.embed(images.flatten(0, 1)).view(T, M, -1)``.
    n_clusters : int
    normalize : bool
        L2-normalise the features first.
    n_init, max_iter, tol : see :func:`kmeans`
    refine : {"none", "soft", "balanced"}
        Prototype refinement after k-means (:func:`refine_prototypes`); "balanced" assumes
        clusters of about equal size.
    refine_steps : int
    seed : int or torch.Generator

    Returns
    -------
    Clustering with labels (T, M), centers (T, k, D), inertia (T,); after refinement the
    centres and inertia are those of the refined prototypes.
    """
    check_params({"n_clusters": n_clusters, "normalize": normalize, "refine": refine,
                  "refine_steps": refine_steps}, CLUSTERING_LIMITS)
    if feats.dim() != 3 or feats.numel() == 0:
        raise UmetaError(f"cluster_tasks expects features of shape (tasks, points, dims); "
                         f"got {tuple(feats.shape)}")
    if not bool(torch.isfinite(feats).all()):
        raise UmetaError("the features contain NaN or inf; check the inputs and the model")
    feats = F.normalize(feats.float() if not feats.is_floating_point() else feats, dim=-1) \
        if normalize else feats
    gen = as_generator(seed, feats.device)
    t, m = feats.shape[:2]
    per_task = m * n_init * max(n_clusters, 2 + int(math.log(max(n_clusters, 1))))
    block = max(1, _ELEMENT_BUDGET // per_task)
    parts = [kmeans(feats[i:i + block], n_clusters, n_init=n_init, max_iter=max_iter, tol=tol,
                    seed=gen) for i in range(0, t, block)]
    result = Clustering(*(torch.cat([getattr(p, f) for p in parts])
                          for f in ("labels", "centers", "inertia")),
                        max(p.n_iter for p in parts))
    if refine != "none":
        refined = refine_prototypes(feats, result.centers, steps=refine_steps,
                                    balanced=refine == "balanced")
        result = replace(refined, n_iter=result.n_iter)
    return result


def silhouette_scores(x: Tensor, labels: Tensor, k: int) -> Tensor:
    """Mean silhouette coefficient of each task's clustering (Euclidean distances).

    Parameters
    ----------
    x : Tensor of shape (T, M, D)
    labels : Tensor of shape (T, M), values in ``0 .. k - 1``
    k : int

    Returns
    -------
    Tensor of shape (T,); points alone in their cluster count 0, as in scikit-learn.
    """
    dist = torch.cdist(x, x)  # (T, M, M)
    labels = labels.long()
    one_hot = F.one_hot(labels, k).to(x.dtype)  # (T, M, k)
    sums = dist @ one_hot  # (T, M, k)
    counts = one_hot.sum(1, keepdim=True)  # (T, 1, k)
    own_count = counts.expand_as(sums).gather(2, labels[..., None]).squeeze(2)
    a = sums.gather(2, labels[..., None]).squeeze(2) / (own_count - 1).clamp_min(1)
    other = (sums / counts.clamp_min(1)).masked_fill(one_hot.bool() | (counts == 0), math.inf)
    b = other.min(-1).values
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-12)
    return torch.where(own_count > 1, s, torch.zeros_like(s)).mean(-1)


def estimate_n_clusters(feats: Tensor, k_range: tuple[int, int] = (2, 10), *, n_init: int = 10,
                        max_iter: int = 100, max_points: int = 2000,
                        seed: int | torch.Generator = 0) -> int:
    """The number of clusters in ``k_range`` (inclusive) whose k-means has the best silhouette.

    Parameters
    ----------
    feats : Tensor of shape (N, D)
    k_range : (int, int)
        Smallest and largest candidate, ``2 <= low <= high < N``.
    n_init, max_iter : see :func:`kmeans`
    max_points : int
        The silhouette is computed on a seeded random subset of at most this many points.
    seed : int or torch.Generator

    Returns
    -------
    int
    """
    check_params({"k_range": k_range}, CLUSTERING_LIMITS)
    low, high = k_range
    if high >= len(feats):
        raise ParamError("k_range", tuple(k_range), f"{{setting}} must satisfy 2 <= low <= high "
                                                    f"< n_samples = {len(feats)}; narrow the "
                                                    f"range or give more samples")
    gen = as_generator(seed, feats.device)
    x = feats[None]
    if len(feats) > max_points:
        keep = torch.randperm(len(feats), generator=gen, device=feats.device)[:max_points]
        x = x[:, keep]
    scores = [float(silhouette_scores(x, kmeans(x, k, n_init=n_init, max_iter=max_iter,
                                                seed=gen).labels, k)[0])
              for k in range(low, high + 1)]
    return low + int(np.argmax(scores))


def nearest_center(feats: Tensor, centers: Tensor) -> Tensor:
    """Index of the nearest centre of each point, (N, D) x (k, D) -> (N,) int64."""
    return squared_distances(feats[None], centers[None].to(feats.dtype))[0].argmin(-1)
