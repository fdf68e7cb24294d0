"""Why a clustering put each sample where it did: prototypes, typical and ambiguous members, and
a per-sample confidence.

All of it is read off the clustered features and the cluster centres (as
:func:`umeta.adapt.cluster_dataset` returns them, or `MetaClusterer`'s ``confidence_`` and
``prototype_indices_``):

- the **confidence** of a sample is the margin between its own centre and the nearest other
  one, relative to the larger distance: ``(d_other - d_own) / max(d_other, d_own)``; 1 at its
  centre, 0 on the boundary between two clusters, negative when a balanced refinement assigned it
  to a centre farther than another (with one cluster, every sample has confidence 1);
- the **prototype** of a cluster is its member nearest its centre (a real sample);
- its most **typical** members are those of highest confidence, its most **ambiguous** those of
  lowest confidence (relative margins also rank far outliers as ambiguous).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from umeta.errors import UmetaError
from umeta.numeric.distances import squared_distances
from umeta.params import Interval, check_params

#: Limits of the number of examples shown per cluster.
EXPLAIN_LIMITS = {"n_examples": [Interval(int, 1, None)]}


def _check(features: Tensor, labels: Tensor, centers: Tensor) -> None:
    if features.dim() != 2 or centers.dim() != 2 or features.shape[1] != centers.shape[1]:
        raise UmetaError(f"features (N, D) and centers (k, D) must share D; got "
                         f"{tuple(features.shape)} and {tuple(centers.shape)}")
    if labels.shape != features.shape[:1]:
        raise UmetaError(f"labels must have one entry per sample ({len(features)}); got shape "
                         f"{tuple(labels.shape)}")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(centers):
        raise UmetaError(f"labels must index the {len(centers)} centers")


def assignment_confidence(features: Tensor, labels: Tensor, centers: Tensor) -> Tensor:
    """The relative margin of each sample's cluster over the nearest other cluster.

    Parameters
    ----------
    features : Tensor of shape (N, D)
        The space the clustering ran in.
    labels : Tensor of shape (N,), int64 in ``0 .. k - 1``
    centers : Tensor of shape (k, D)

    Returns
    -------
    Tensor of shape (N,): ``(d_other - d_own) / max(d_other, d_own)`` with Euclidean distances
    ``d_own`` to the own centre and ``d_other`` to the nearest other centre, in [-1, 1]; 1 where
    there is one cluster or both distances are 0.

    Examples
    --------
    >>> import torch
    >>> feats = torch.tensor([[1.0, 0.0], [4.0, 0.0]])
    >>> centers = torch.tensor([[0.0, 0.0], [6.0, 0.0]])
    >>> confidence = assignment_confidence(feats, torch.tensor([0, 1]), centers)
    >>> [round(c, 3) for c in confidence.tolist()]  # (5 - 1) / 5 and (4 - 2) / 4
    [0.8, 0.5]
    """
    labels = torch.as_tensor(labels, device=features.device).long()
    _check(features, labels, centers)
    centers = centers.to(features.dtype)
    dist = squared_distances(features[None], centers[None])[0].sqrt()  # (N, k)
    own = dist.gather(1, labels[:, None]).squeeze(1)
    if len(centers) == 1:
        return torch.ones_like(own)
    other = dist.scatter(1, labels[:, None], torch.inf).amin(1)
    top = torch.maximum(own, other)
    return torch.where(top > 0, (other - own) / top.clamp_min(1e-30), torch.ones_like(own))


def prototype_indices(features: Tensor, labels: Tensor, centers: Tensor) -> Tensor:
    """Index of each cluster's member nearest its centre, shape (k,), int64; -1 for a cluster
    without members."""
    labels = torch.as_tensor(labels, device=features.device).long()
    _check(features, labels, centers)
    d2 = squared_distances(features[None], centers[None].to(features.dtype))[0]  # (N, k)
    mine = labels[:, None] == torch.arange(len(centers), device=features.device)
    d2 = d2.masked_fill(~mine, torch.inf)
    nearest = d2.argmin(0)
    return torch.where(mine.any(0), nearest, torch.full_like(nearest, -1))


def ranked_members(confidence, labels, n_clusters: int,
                   n_examples: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_examples`` most typical (highest confidence) and most ambiguous (lowest
    confidence) members of each cluster.

    Parameters
    ----------
    confidence : array-like of shape (N,)
    labels : array-like of shape (N,), int in ``0 .. n_clusters - 1``
    n_clusters : int
    n_examples : int

    Returns
    -------
    (typical, ambiguous) : ndarrays of shape (n_clusters, n_examples), int64
        Sample indices, most typical (most ambiguous) first; -1 pads clusters with fewer
        members. A cluster's members may appear in both when it has fewer than
        ``2 * n_examples``.

    Examples
    --------
    >>> typical, ambiguous = ranked_members([0.9, 0.2, 0.5, 0.7], [0, 0, 0, 1], 2, 2)
    >>> typical.tolist(), ambiguous.tolist()
    ([[0, 2], [3, -1]], [[1, 2], [3, -1]])
    """
    check_params({"n_examples": n_examples}, EXPLAIN_LIMITS)
    confidence = np.asarray(torch.as_tensor(confidence).cpu(), dtype=np.float64)
    labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    if confidence.shape != labels.shape or confidence.ndim != 1:
        raise UmetaError(f"confidence and labels must be two arrays of N values; got shapes "
                         f"{confidence.shape} and {labels.shape}")
    typical = np.full((n_clusters, n_examples), -1, dtype=np.int64)
    ambiguous = typical.copy()
    for cluster in range(n_clusters):
        members = np.flatnonzero(labels == cluster)
        order = members[np.argsort(-confidence[members], kind="stable")]
        typical[cluster, :len(order[:n_examples])] = order[:n_examples]
        low = order[::-1][:n_examples]
        ambiguous[cluster, :len(low)] = low
    return typical, ambiguous


@dataclass
class ClusterExplanation:
    """What :func:`explain_clusters` finds.

    Attributes
    ----------
    confidence : ndarray of shape (N,)
        :func:`assignment_confidence`.
    prototypes : ndarray of shape (k,), int64
        :func:`prototype_indices`.
    typical, ambiguous : ndarrays of shape (k, n_examples), int64
        :func:`ranked_members`.
    """

    confidence: np.ndarray
    prototypes: np.ndarray
    typical: np.ndarray
    ambiguous: np.ndarray


def explain_clusters(features, labels, centers, n_examples: int = 5) -> ClusterExplanation:
    """Prototypes, typical and ambiguous members and per-sample confidence of a clustering.

    Parameters
    ----------
    features : array-like of shape (N, D)
        The space the clustering ran in (e.g. ``cluster_dataset(...).features``).
    labels : array-like of shape (N,)
    centers : array-like of shape (k, D)
    n_examples : int
        Typical and ambiguous members per cluster.

    Returns
    -------
    ClusterExplanation

    Examples
    --------
    >>> import numpy as np
    >>> feats = np.array([[0.0], [0.2], [2.9], [10.0], [10.4]])
    >>> out = explain_clusters(feats, [0, 0, 0, 1, 1], [[1.0], [10.25]], n_examples=1)
    >>> out.prototypes.tolist(), out.ambiguous[:, 0].tolist()
    ([1, 4], [2, 3])
    """
    feats = torch.as_tensor(np.asarray(features, dtype=np.float64)
                            if not isinstance(features, Tensor) else features)
    labels_t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels,
                               device=feats.device).long()
    centers_t = torch.as_tensor(centers, device=feats.device, dtype=feats.dtype)
    if feats.dim() != 2:
        raise UmetaError(f"features must be (N, D); got shape {tuple(feats.shape)}")
    confidence = assignment_confidence(feats, labels_t, centers_t)
    typical, ambiguous = ranked_members(confidence, labels_t, len(centers_t), n_examples)
    return ClusterExplanation(confidence.cpu().numpy(),
                              prototype_indices(feats, labels_t, centers_t).cpu().numpy(),
                              typical, ambiguous)
