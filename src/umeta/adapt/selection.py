"""Label-free criteria that say which of several embedding spaces clusters one data set best.

Each candidate (a meta-trained model in some embedding space, or the raw pixels) gives the data
set's features and the features of ``R`` held-out augmented views of the same images
(:data:`SELECTION_VIEWS`: random resized crops and small rotations, which keep an image's
class; for a table, :func:`masked_views`: a share :data:`TABLE_VIEW_MASK` of its cells
missing, which a table model and the imputed raw values both take). A criterion scores each
candidate without labels; spaces differ in dimension and scale, so every criterion here except
the silhouette compares partitions or neighbours, not distances:

- ``consistency``: the images clustered as `umeta cluster` clusters them (:func:`partition`:
  k-means, or in a meta-learned space with 10 or more images a cluster spectral clustering),
  then each view assigned as ``MetaClusterer.predict`` assigns it (its nearest centre; after
  spectral clustering its nearest image's cluster); the adjusted Rand index (ARI) of the two
  partitions, mean over the views. A space whose clusters survive class-preserving changes
  scores high.
- ``retrieval``: a pseudo-episode with every image its own class, one shot, the views as
  queries: the share of views whose nearest image is their own (UMTRA's task, held out).
- ``stability``: prediction strength under resampling: the images split in random halves, each
  clustered by k-means (a centroid method, whatever the candidate's step); the ARI between one
  half's own clusters and its assignment to the other half's centres, mean over the splits.
- ``silhouette``: of the candidate's partition, in its space (Euclidean; comparable
  within one space, not across spaces: the benchmark measures it as a reference).
- ``consensus``: the mean ARI of a candidate's partition with the other candidates' (model
  centrality: the partition most others agree with).

:func:`score_candidates` scores every candidate on the images (or a resample of them) and
:func:`bootstrap_scores` repeats it on resamples, for the uncertainty of a recommendation.
Labels never reach this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from umeta.adapt.cluster import auto_algorithm, cluster_dataset
from umeta.errors import UmetaError
from umeta.metrics import ari
from umeta.numeric.clustering import check_cluster_count, nearest_center, silhouette_scores
from umeta.numeric.random import seeded_generator
from umeta.numeric.spectral import nearest_point_labels
from umeta.tasks.augment import Augment

#: The label-free criteria; the first is `umeta compare`'s default, chosen on a pilot before
#: B11 (``benchmarks/b11_compare.py`` measures them all).
CRITERIA = ("consistency", "retrieval", "stability", "silhouette", "consensus")
#: The held-out views: random resized crops (area 0.7 .. 1) and rotations up to 10 degrees,
#: unlike the training augmentations of UMTRA (shifts, pixel dropout) and PsCo (crops down to
#: 0.2 of the area, flips).
SELECTION_VIEWS = Augment(crop_scale=(0.7, 1.0), rotate=10.0)
#: Share of a table's cells made missing in each of its held-out views.
TABLE_VIEW_MASK = 0.15
#: Random half splits of the stability criterion.
STABILITY_SPLITS = 5


@dataclass
class CandidateFeatures:
    """One candidate's features of a data set and of its held-out views.

    Attributes
    ----------
    feats : Tensor of shape (N, D)
        As the candidate clusters them (L2-normalised for a model, raw for pixels).
    views : Tensor of shape (R, N, D)
        The same map of ``R`` augmented views of every image (row ``i`` of view ``r`` is a view
        of image ``i``).
    learned : bool
        A meta-learned space (a model's, not the raw inputs): clustered by the "auto" step of
        `umeta cluster` (`umeta.adapt.cluster.auto_algorithm`).
    """

    feats: Tensor
    views: Tensor
    learned: bool = False

    def __post_init__(self) -> None:
        if self.feats.dim() != 2 or self.views.dim() != 3 or \
                self.views.shape[1:] != self.feats.shape or len(self.views) < 1:
            raise UmetaError(f"CandidateFeatures needs feats (N, D) and views (R, N, D) of the "
                             f"same N and D; got {tuple(self.feats.shape)} and "
                             f"{tuple(self.views.shape)}")


def augmented_views(images: Tensor, n_views: int, seed: int = 0,
                    views: Augment = SELECTION_VIEWS) -> Tensor:
    """``n_views`` seeded augmentations of every image, (N, C, H, W) -> (R, N, C, H, W)."""
    gen = seeded_generator(seed, images.device)
    return torch.stack([views(images, gen) for _ in range(n_views)])


def masked_views(table: Tensor, n_views: int, seed: int = 0,
                 rate: float = TABLE_VIEW_MASK) -> Tensor:
    """``n_views`` seeded copies of ``table`` (N, D) with a share ``rate`` of the cells set
    missing (NaN) -> (R, N, D).

    Examples
    --------
    >>> views = masked_views(torch.ones(1000, 10), 2, rate=0.2)
    >>> views.shape, round(float(views.isnan().float().mean()), 1)
    (torch.Size([2, 1000, 10]), 0.2)
    """
    gen = seeded_generator(seed, table.device)
    hide = torch.rand((n_views, *table.shape), generator=gen, device=table.device) < rate
    return table.expand(n_views, *table.shape).masked_fill(hide, float("nan"))


def check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise UmetaError(f"unknown criterion {criterion!r}; choose one of: {', '.join(CRITERIA)}")


def _partition(feats: Tensor, n_clusters: int, seed: int, algorithm: str = "kmeans"
               ) -> tuple[np.ndarray, Tensor]:
    """Labels (N,) and centres (k, D, each cluster's mean after spectral clustering) of
    ``feats`` by ``algorithm``, as `umeta cluster` makes them."""
    result = cluster_dataset(None, feats, n_clusters, seed=seed, algorithm=algorithm)
    return result.labels.cpu().numpy(), result.centers


def partition(cand: CandidateFeatures, feats: Tensor, n_clusters: int, seed: int
              ) -> tuple[np.ndarray, Tensor, str]:
    """The candidate's clusters of ``feats`` (its features of some rows) as `umeta cluster`
    makes them: labels (N,), centres (k, D) and the step run (the "auto" rule of
    `umeta.adapt.cluster.auto_algorithm`: spectral in a learned space with 10 or more
    samples a cluster, k-means otherwise)."""
    algorithm = auto_algorithm(len(feats), n_clusters, learned=cand.learned)
    return (*_partition(feats, n_clusters, seed, algorithm), algorithm)


def consistency(feats: Tensor, views: Tensor, labels: np.ndarray, centers: Tensor,
                algorithm: str = "kmeans") -> float:
    """Mean ARI between ``labels`` (N,) of ``feats`` (N, D) and each view's (R, N, D) own
    assignment: the nearest of ``centers`` (k, D), or after ``"spectral"`` the label of the
    nearest row of ``feats`` (as ``MetaClusterer.predict``)."""
    if algorithm == "spectral":
        own = torch.as_tensor(labels, device=feats.device)
        assign = [nearest_point_labels(v, feats, own) for v in views]
    else:
        assign = [nearest_center(v, centers) for v in views]
    return float(np.mean([ari(labels, a.cpu().numpy()) for a in assign]))


def retrieval(feats: Tensor, views: Tensor, ids: Tensor | None = None) -> float:
    """Share of views (R, N, D) whose nearest row of ``feats`` (N, D) is their own image
    (rows with equal ``ids`` (N,) are the same image, as in a resample)."""
    ids = torch.arange(len(feats), device=feats.device) if ids is None else ids
    nearest = torch.stack([torch.cdist(v, feats).argmin(1) for v in views])  # (R, N)
    return float((ids[nearest] == ids).float().mean())


def stability(feats: Tensor, n_clusters: int, seed: int = 0,
              splits: int = STABILITY_SPLITS) -> float:
    """Prediction strength: mean ARI, over random half splits (A, B), between B's own k-means
    and B assigned to the nearest of A's centres; 0 when a half is smaller than ``n_clusters``."""
    gen = seeded_generator(seed, torch.device("cpu"))
    half = len(feats) // 2
    if half < n_clusters:
        return 0.0
    scores = []
    for split in range(splits):
        order = torch.randperm(len(feats), generator=gen).to(feats.device)
        a, b = feats[order[:half]], feats[order[half:]]
        _, centers_a = _partition(a, n_clusters, seed + split)
        own_b, _ = _partition(b, n_clusters, seed + split)
        scores.append(ari(own_b, nearest_center(b, centers_a).cpu().numpy()))
    return float(np.mean(scores))


def score_candidates(candidates: Mapping[str, CandidateFeatures], n_clusters: int, *,
                     criteria: Sequence[str] = CRITERIA, index: Tensor | None = None,
                     seed: int = 0) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Every criterion of ``criteria`` for every candidate, on the images or a resample.

    Parameters
    ----------
    candidates : {name: CandidateFeatures}, all of the same N images
    n_clusters : int
        k of every clustering (the same for all candidates).
    criteria : names of :data:`CRITERIA`
    index : Tensor of shape (M,), optional
        Rows to use (a resample, repeats allowed); None uses all N.
    seed : int
        Seeds the k-means and the stability splits.

    Returns
    -------
    scores : {name: {criterion: float}}
    partitions : {name: ndarray of shape (M,)}, the labels each criterion judged
        (:func:`partition`).
    """
    for criterion in criteria:
        check_criterion(criterion)
    if not candidates:
        raise UmetaError("score_candidates needs at least one candidate")
    scores: dict[str, dict[str, float]] = {}
    partitions: dict[str, np.ndarray] = {}
    for name, cand in candidates.items():
        rows = torch.arange(len(cand.feats)) if index is None else index
        rows = rows.to(cand.feats.device)
        feats, views = cand.feats[rows], cand.views[:, rows]
        check_cluster_count(n_clusters, len(feats))
        labels, centers, algorithm = partition(cand, feats, n_clusters, seed)
        partitions[name] = labels
        found = {}
        if "consistency" in criteria:
            found["consistency"] = consistency(feats, views, labels, centers, algorithm)
        if "retrieval" in criteria:
            found["retrieval"] = retrieval(feats, views, rows)
        if "stability" in criteria:
            found["stability"] = stability(feats, n_clusters, seed)
        if "silhouette" in criteria:
            found["silhouette"] = float(silhouette_scores(
                feats[None].float(), torch.as_tensor(labels, device=feats.device)[None],
                n_clusters)[0]) if n_clusters > 1 else 0.0
        scores[name] = found
    if "consensus" in criteria:
        for name in candidates:
            others = [ari(partitions[name], partitions[m]) for m in candidates if m != name]
            scores[name]["consensus"] = float(np.mean(others)) if others else 0.0
    return scores, partitions


def bootstrap_scores(candidates: Mapping[str, CandidateFeatures], n_clusters: int,
                     criterion: str, n_boot: int, *, seed: int = 0) -> np.ndarray:
    """``criterion`` of every candidate on ``n_boot`` resamples of the images (drawn with
    replacement, seeded), shape (n_boot, candidates) in the order of ``candidates``."""
    check_criterion(criterion)
    n = len(next(iter(candidates.values())).feats)
    gen = seeded_generator(seed, torch.device("cpu"))
    out = np.zeros((n_boot, len(candidates)))
    for b in range(n_boot):
        index = torch.randint(n, (n,), generator=gen)
        scores, _ = score_candidates(candidates, n_clusters, criteria=(criterion,), index=index,
                                     seed=seed + 1 + b)
        out[b] = [scores[name][criterion] for name in candidates]
    return out


__all__ = ["CRITERIA", "SELECTION_VIEWS", "TABLE_VIEW_MASK", "CandidateFeatures", "augmented_views",
           "bootstrap_scores", "check_criterion", "consistency", "masked_views", "partition",
           "retrieval", "score_candidates", "stability"]
