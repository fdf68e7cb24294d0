"""Anomaly scores in a meta-learned feature space: distance to what normal data looks like.

With a few normal examples a sample scores its distance to the nearest normal prototype, or to
its k-th nearest normal example; with none, its distance to its k-th nearest neighbour within
the data itself. Higher scores are more anomalous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from umeta.adapt.embed import EMBED_LIMITS, embed_inputs
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.numeric.clustering import kmeans
from umeta.numeric.distances import kth_neighbour_distance
from umeta.params import Interval, OneOf, ParamError, check_params

METHODS = ("knn", "prototype")
#: Limits of the anomaly-scoring parameters (checked here and by `MetaAnomalyDetector`).
ANOMALY_LIMITS = {
    **EMBED_LIMITS,
    "method": [OneOf(*METHODS)],
    "n_neighbors": [Interval(int, 1, None)],
    "n_prototypes": [Interval(int, 1, None)],
    "contamination": [Interval(float, 0, 0.5, closed="right")],
}


@dataclass
class NormalProfile:
    """What normal data looks like in feature space.

    Attributes
    ----------
    reference : Tensor of shape (R, D)
        The normal features (method "knn") or the normal prototypes (method "prototype").
    method : {"knn", "prototype"}
    n_neighbors : int
        Which neighbour's distance "knn" scores.
    """

    reference: Tensor
    method: str
    n_neighbors: int = 1

    def scores(self, feats: Tensor, *, exclude_self: bool = False) -> Tensor:
        """Anomaly scores (N,) of features (N, D); ``exclude_self`` when ``feats`` are the
        normal features themselves (leave-one-out for "knn")."""
        k = self.n_neighbors if self.method == "knn" else 1
        return kth_neighbour_distance(feats, self.reference, k,
                                      exclude_self=exclude_self and self.method == "knn")


def fit_normal(normal_feats: Tensor, method: str = "knn", *, n_neighbors: int = 1,
               n_prototypes: int = 1, seed: int | torch.Generator = 0) -> NormalProfile:
    """Summarise normal features (R, D) as a :class:`NormalProfile`.

    Parameters
    ----------
    normal_feats : Tensor of shape (R, D)
    method : {"knn", "prototype"}
        "knn" keeps every normal sample; "prototype" keeps the mean (``n_prototypes=1``) or the
        k-means centres of the normal features.
    n_neighbors : int
        For "knn": score the distance to the ``n_neighbors``-th nearest normal sample.
    n_prototypes : int
        For "prototype", ``1 <= n_prototypes <= R``.
    seed : int or torch.Generator
        For the k-means of "prototype".
    """
    check_params({"method": method, "n_neighbors": n_neighbors, "n_prototypes": n_prototypes},
                 ANOMALY_LIMITS)
    if method == "knn":
        if n_neighbors > len(normal_feats):
            raise ParamError("n_neighbors", n_neighbors, f"{{setting}} needs at least that many "
                                                         f"normal samples; got {len(normal_feats)}")
        return NormalProfile(normal_feats, method, n_neighbors)
    if n_prototypes > len(normal_feats):
        raise ParamError("n_prototypes", n_prototypes, f"{{setting}} must be between 1 and the "
                                                       f"number of normal samples, "
                                                       f"{len(normal_feats)}")
    if n_prototypes == 1:
        return NormalProfile(normal_feats.mean(0, keepdim=True), method)
    return NormalProfile(kmeans(normal_feats[None], n_prototypes, seed=seed).centers[0], method)


def anomaly_scores(learner: Learner | None, x: Tensor | np.ndarray,
                   normal: Tensor | np.ndarray | None = None, *, method: str = "knn",
                   n_neighbors: int = 1, n_prototypes: int = 1, normalize: bool = False,
                   seed: int = 0, batch_size: int = 1024) -> Tensor:
    """Anomaly score of each sample of ``x`` (higher = more anomalous).

    Parameters
    ----------
    learner : Learner or None
        None scores in the input space (flattened).
    x : Tensor or ndarray of shape (N, C, H, W) (or (N, ...) without a learner)
    normal : Tensor or ndarray of shape (R, C, H, W), or None
        A few known-normal samples. None scores each sample by its distance to its
        ``n_neighbors``-th nearest other sample of ``x`` (method must be "knn").
    method : {"knn", "prototype"}
        See :func:`fit_normal`.
    n_neighbors, n_prototypes : int
    normalize : bool
        L2-normalise the features.
    seed : int
    batch_size : int

    Returns
    -------
    Tensor of shape (N,)
    """
    check_params({"method": method, "n_neighbors": n_neighbors, "n_prototypes": n_prototypes,
                  "normalize": normalize, "batch_size": batch_size}, ANOMALY_LIMITS)
    if normal is None:
        if method != "knn":
            raise UmetaError("method='prototype' needs normal examples; pass normal=... or use "
                             "method='knn'")
        feats = embed_inputs(learner, x, normalize=normalize, batch_size=batch_size,
                             min_samples=2)
        return fit_normal(feats, "knn", n_neighbors=n_neighbors).scores(feats, exclude_self=True)
    feats = embed_inputs(learner, x, normalize=normalize, batch_size=batch_size)
    normal_feats = embed_inputs(learner, normal, normalize=normalize, batch_size=batch_size)
    if normal_feats.shape[1:] != feats.shape[1:]:
        raise UmetaError(f"normal samples give features of shape {tuple(normal_feats.shape[1:])} "
                         f"but x gives {tuple(feats.shape[1:])}; give both in the same format")
    profile = fit_normal(normal_feats.to(feats.device), method, n_neighbors=n_neighbors,
                         n_prototypes=n_prototypes, seed=seed)
    return profile.scores(feats)
