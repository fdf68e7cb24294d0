"""Clustering one new, unlabeled data set in a meta-learned embedding space.

The numeric work (batched k-means++, prototype refinement, the silhouette estimate of k) is in
`umeta.numeric.clustering`, spectral clustering on the neighbour graph in
`umeta.numeric.spectral`; this module embeds the data with a learner and clusters it.
`MetaClusterer` is the scikit-learn face of :func:`cluster_dataset`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from umeta.adapt.embed import EMBED_LIMITS, embed_inputs
from umeta.learners.base import Learner
from umeta.numeric.clustering import (CLUSTERING_LIMITS, Clustering, check_cluster_count,
                                      cluster_tasks, estimate_n_clusters, nearest_center)
from umeta.numeric.random import seeded_generator, seeded_subset
from umeta.numeric.spectral import SPECTRAL_NEIGHBOURS, spectral_clustering
from umeta.params import OneOf, ParamError, check_params

#: The clustering steps :func:`cluster_dataset` runs on the embedding.
ALGORITHMS = ("kmeans", "spectral")
#: Limits of :func:`cluster_dataset`'s parameters (n_clusters may be None: estimated).
CLUSTER_DATASET_LIMITS = {**CLUSTERING_LIMITS, **EMBED_LIMITS,
                          "n_clusters": CLUSTERING_LIMITS["n_clusters"] + [None],
                          "algorithm": [OneOf(*ALGORITHMS)]}


def auto_algorithm(n_samples: int, n_clusters: int, *, learned: bool,
                   refine: str = "none") -> str:
    """The clustering step that ``algorithm="auto"`` names: "spectral" in a meta-learned space
    (``learned``) with no ``refine`` where the ``n_samples`` make at least a neighbourhood
    (`SPECTRAL_NEIGHBOURS`) for each of ``n_clusters``, "kmeans" otherwise (smaller clusters
    lose with it: B2's 5 images a cluster, README)."""
    spectral = learned and refine == "none" and n_samples >= SPECTRAL_NEIGHBOURS * n_clusters
    return "spectral" if spectral else "kmeans"


def search_range(k_range: tuple[int, int], n_samples: int) -> tuple[int, int]:
    """The candidates for the number of clusters that :func:`cluster_dataset` searches:
    ``k_range`` with its top lowered to ``n_samples - 1`` (the silhouette needs a sample more
    than clusters)."""
    low, high = (int(k) for k in k_range)
    return low, max(low, min(high, n_samples - 1))


def cluster_dataset(learner: Learner | None, x: Tensor | np.ndarray,
                    n_clusters: int | None = None, *, k_range: tuple[int, int] = (2, 10),
                    normalize: bool = False, n_init: int = 10, max_iter: int = 100,
                    tol: float = 1e-4, refine: str = "none", refine_steps: int = 10,
                    seed: int = 0, batch_size: int = 1024,
                    input_shape: tuple[int, ...] | None = None,
                    progress: bool = False, fit_rows: int | None = None,
                    algorithm: str = "kmeans") -> Clustering:
    """Cluster one new, unlabeled data set in the embedding space of a meta-trained learner.

    Parameters
    ----------
    learner : Learner or None
        None clusters the inputs themselves (flattened).
    x : Tensor or ndarray of shape (N, C, H, W) (or (N, ...) without a learner)
    n_clusters : int or None
        None estimates it: the k whose k-means has the best silhouette, over ``k_range``
        (:func:`search_range`: at most ``N - 1``).
    k_range : (int, int)
    normalize : bool
        L2-normalise the embedding.
    n_init, max_iter, tol, refine, refine_steps : see `umeta.numeric.cluster_tasks`
    seed : int
    batch_size : int
        Images per forward pass of the learner.
    input_shape : see `umeta.adapt.model_inputs`
    progress : bool
        Show a bar of the images embedded.
    fit_rows : int, optional
        With more points than this, k-means (and the estimate of k) runs on a seeded sample of
        ``fit_rows`` of them, and every point takes its nearest centre (the inertia is over all
        points): the time no longer grows with the product of points and clusters.
    algorithm : {"kmeans", "spectral"}
        The clustering step: k-means++ (``n_init`` restarts), or spectral clustering on the
        embedding's nearest-neighbour graph (:func:`umeta.numeric.spectral.spectral_clustering`:
        it follows curved clusters; at most ``SPECTRAL_FIT_ROWS`` points are fitted, the others
        take their nearest fitted point's label, so ``fit_rows`` does not apply to it; each
        centre is then its cluster's mean; no ``refine``).

    Returns
    -------
    Clustering with labels (N,), centers (k, D) in the embedding space, inertia () and the
    clustered features (N, D) (the embedding, L2-normalised with ``normalize``); ``n_iter`` is
    0 for ``"spectral"``.
    """
    check_params({"n_clusters": n_clusters, "k_range": k_range, "normalize": normalize,
                  "n_init": n_init, "max_iter": max_iter, "tol": tol, "refine": refine,
                  "refine_steps": refine_steps, "batch_size": batch_size,
                  "algorithm": algorithm}, CLUSTER_DATASET_LIMITS)
    if algorithm == "spectral" and refine != "none":
        raise ParamError("refine", refine, "{setting} refines k-means prototypes; with "
                                           "algorithm 'spectral' set {param} to 'none'")
    feats = embed_inputs(learner, x, normalize=normalize, batch_size=batch_size, min_samples=2,
                         input_shape=input_shape, progress=progress)
    if n_clusters is not None:
        check_cluster_count(n_clusters, len(feats))
    gen = seeded_generator(seed, feats.device)
    fitted = feats
    if fit_rows is not None and len(feats) > fit_rows:
        fitted = seeded_subset(feats, fit_rows, seed)
    k = n_clusters if n_clusters is not None else estimate_n_clusters(
        fitted, search_range(k_range, len(fitted)), n_init=n_init, max_iter=max_iter, seed=gen)
    if algorithm == "spectral":
        labels = spectral_clustering(feats, k, n_init=n_init, seed=seed)
        return _cluster_means(feats, labels, k)
    result = cluster_tasks(fitted[None], k, n_init=n_init, max_iter=max_iter, tol=tol,
                           refine=refine, refine_steps=refine_steps, seed=gen)
    centers = result.centers[0]
    if fitted is feats:
        return Clustering(result.labels[0], centers, result.inertia[0], result.n_iter, feats)
    labels = nearest_center(feats, centers)
    inertia = (feats - centers[labels]).square().sum()
    return Clustering(labels, centers, inertia, result.n_iter, feats)


def _cluster_means(feats: Tensor, labels: Tensor, k: int) -> Clustering:
    """The `Clustering` of given labels (N,): each centre its cluster's mean (0 where empty),
    the inertia about those centres."""
    sums = feats.new_zeros(k, feats.shape[1]).index_add_(0, labels, feats)
    counts = torch.bincount(labels, minlength=k).clamp(min=1).to(feats.dtype)
    centers = sums / counts[:, None]
    inertia = (feats - centers[labels]).square().sum()
    return Clustering(labels, centers, inertia, 0, feats)
