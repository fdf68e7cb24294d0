"""Spectral clustering of one set of points on its k-nearest-neighbour graph.

k-means asks for convex clusters around their means. Where a meta-learned embedding leaves a
cluster curved or stretched (rings, moons, the few-column tables of clustering-data-v1), the
graph of each point's nearest neighbours still joins it. :func:`spectral_clustering` is
scikit-learn's ``SpectralClustering`` (affinity ``'nearest_neighbors'``, k-means on the spectral
embedding) with umeta's conventions: tensors in and out, and at most :data:`SPECTRAL_FIT_ROWS`
points fitted (a seeded sample; every other point takes the label of its nearest fitted point,
:func:`nearest_point_labels`), since the eigen-solve grows faster than the points.
"""

from __future__ import annotations

import warnings

import torch
from sklearn.cluster import SpectralClustering
from torch import Tensor

from umeta.numeric.distances import QUERY_CHUNK, squared_distances
from umeta.numeric.random import seeded_subset
from umeta.params import ParamError

#: Neighbours of each point in the graph (scikit-learn's default, and B8's Spectral baseline).
SPECTRAL_NEIGHBOURS = 10
#: Most points whose graph is solved; the others take their nearest fitted point's label.
SPECTRAL_FIT_ROWS = 5_000


def nearest_point_labels(feats: Tensor, points: Tensor, labels: Tensor) -> Tensor:
    """The label of each point's nearest point of ``points``, (N, D) x (P, D), (P,) -> (N,),
    in blocks of `QUERY_CHUNK` queries (so that no (N, P) matrix is held at once)."""
    points = points.to(feats.dtype)
    nearest = [squared_distances(block[None], points[None])[0].argmin(-1)
               for block in feats.split(QUERY_CHUNK)]
    return labels[torch.cat(nearest)]


def spectral_clustering(feats: Tensor, n_clusters: int, *, n_init: int = 10,
                        seed: int = 0) -> Tensor:
    """Labels (N,) int64 (on ``feats``' device) of spectral clustering of ``feats`` (N, D).

    The graph joins each point to its `SPECTRAL_NEIGHBOURS` nearest (fewer when there are
    fewer points); a graph of several components is solved as it is (scikit-learn's warning
    about it is silenced: separate components are clusters the spectral embedding keeps apart).
    With more than `SPECTRAL_FIT_ROWS` points, a sample of that many (seeded by ``seed``) is
    fitted. It needs ``n_clusters <= N - 2`` (the eigen-solve's limit); more raise `ParamError`.

    Examples
    --------
    >>> import torch
    >>> angle = torch.linspace(0, 6.28, 100)
    >>> ring = torch.stack([angle.cos(), angle.sin()], 1)
    >>> x = torch.cat([ring, 4 * ring])  # two rings, one inside the other
    >>> labels = spectral_clustering(x, 2)
    >>> bool((labels[:100] == labels[0]).all() and (labels[100:] != labels[0]).all())
    True
    """
    n = len(feats)
    if not 1 <= n_clusters <= n - 2:
        raise ParamError("n_clusters", n_clusters, f"spectral clustering makes at most {n - 2} "
                                                   f"clusters of {n} samples ({{setting}}); "
                                                   f"choose a smaller {{param}} or algorithm "
                                                   f"'kmeans'")
    fitted = feats
    if n > SPECTRAL_FIT_ROWS:
        fitted = seeded_subset(feats, SPECTRAL_FIT_ROWS, seed)
    model = SpectralClustering(n_clusters, affinity="nearest_neighbors",
                               n_neighbors=min(SPECTRAL_NEIGHBOURS, len(fitted) - 1),
                               assign_labels="kmeans", n_init=n_init, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels = model.fit_predict(fitted.detach().double().cpu().numpy())
    labels = torch.as_tensor(labels, dtype=torch.int64, device=feats.device)
    return labels if fitted is feats else nearest_point_labels(feats, fitted, labels)
