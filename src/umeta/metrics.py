"""Evaluation metrics as pure functions: arrays or tensors in, floats out.

Clustering (Hungarian accuracy, NMI, ARI), embedding quality (trustworthiness, continuity, k-NN
preservation, correlation of pairwise distances), anomaly ranking (AUROC, average precision) and
few-shot accuracy. Scores are fractions in ``[0, 1]`` (correlations in ``[-1, 1]``); reports
convert to percent.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import pdist
from sklearn import metrics as skm
from torch import Tensor

from umeta.errors import UmetaError


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (Student t) over ``values``.

    Parameters
    ----------
    values : array-like of shape (n,)

    Returns
    -------
    (mean, ci95) : tuple of float; ci95 is 0.0 for a single value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = float(v.mean())
    if v.size == 1:
        return mean, 0.0
    sem = float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, float(stats.t.ppf(0.975, v.size - 1) * sem)


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)


def _label_pair(labels_true, labels_pred, name: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = _numpy(labels_true).ravel(), _numpy(labels_pred).ravel()
    if t.size != p.size:
        raise UmetaError(f"{name}: labels_true has {t.size} entries but labels_pred has {p.size}; "
                         "give one predicted label per sample")
    if t.size == 0:
        raise UmetaError(f"{name}: got no labels; give at least one sample")
    return t, p


# ----------------------------------------------------------------------------- clustering

def _contingency(labels_true, labels_pred, name: str) -> np.ndarray:
    """Counts (clusters, classes) of each (predicted, true) label pair."""
    t, p = _label_pair(labels_true, labels_pred, name)
    _, t_idx = np.unique(t, return_inverse=True)
    _, p_idx = np.unique(p, return_inverse=True)
    counts = np.zeros((p_idx.max() + 1, t_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (p_idx, t_idx), 1)
    return counts


def clustering_accuracy(labels_true, labels_pred) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (Hungarian).

    Clusters and classes may differ in number and in their label values: unmatched clusters
    (when there are more clusters than classes) count as wrong.

    Parameters
    ----------
    labels_true : array-like or Tensor of shape (n,)
    labels_pred : array-like or Tensor of shape (n,)

    Returns
    -------
    float in [0, 1]
    """
    counts = _contingency(labels_true, labels_pred, "clustering_accuracy")
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def matched_confusion(labels_true, labels_pred) -> np.ndarray:
    """Confusion matrix (classes x clusters) with clusters reordered by the Hungarian matching,
    so that the diagonal holds the matched counts; unmatched clusters come last.

    Returns
    -------
    ndarray of shape (n_classes, n_clusters), int64
    """
    counts = _contingency(labels_true, labels_pred, "matched_confusion")
    rows, cols = linear_sum_assignment(counts, maximize=True)
    order = list(rows[np.argsort(cols)]) + [r for r in range(counts.shape[0]) if r not in set(rows)]
    return counts[order].T


def nmi(labels_true, labels_pred) -> float:
    """Normalized mutual information (arithmetic normalisation, as scikit-learn's default).

    Parameters
    ----------
    labels_true, labels_pred : array-like or Tensor of shape (n,)
    """
    t, p = _label_pair(labels_true, labels_pred, "nmi")
    return float(skm.normalized_mutual_info_score(t, p))


def ari(labels_true, labels_pred) -> float:
    """Adjusted Rand index (1 for identical partitions, about 0 for random ones).

    Parameters
    ----------
    labels_true, labels_pred : array-like or Tensor of shape (n,)
    """
    t, p = _label_pair(labels_true, labels_pred, "ari")
    return float(skm.adjusted_rand_score(t, p))


def clustering_scores(labels_true, labels_pred) -> dict[str, float]:
    """``{"clustering_accuracy", "nmi", "ari"}`` of one clustering."""
    return {"clustering_accuracy": clustering_accuracy(labels_true, labels_pred),
            "nmi": nmi(labels_true, labels_pred), "ari": ari(labels_true, labels_pred)}


def segmentation_scores(labels_true, labels_pred) -> dict[str, float]:
    """Hungarian-matched mean IoU and pixel accuracy of an unsupervised segmentation.

    Predicted segments are matched one-to-one to true segments so that the matched pixels are
    most (the matching of :func:`clustering_accuracy`). ``pixel_accuracy`` is the share of
    pixels in matched pairs; ``miou`` the mean over true segments of the IoU with the matched
    predicted segment (0 for a true segment left unmatched).

    Parameters
    ----------
    labels_true, labels_pred : array-like or Tensor of the same size (e.g. (H, W) label maps)

    Returns
    -------
    dict with ``miou`` and ``pixel_accuracy``, each in [0, 1]

    Examples
    --------
    >>> segmentation_scores([[0, 0, 1, 1]], [[5, 5, 5, 7]])
    {'miou': 0.5833333333333333, 'pixel_accuracy': 0.75}
    """
    counts = _contingency(labels_true, labels_pred, "segmentation_scores")  # (pred, true)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    overlap = counts[rows, cols]
    union = counts.sum(1)[rows] + counts.sum(0)[cols] - overlap
    return {"miou": float((overlap / union).sum() / counts.shape[1]),
            "pixel_accuracy": float(overlap.sum() / counts.sum())}


# ----------------------------------------------------------------------------- embeddings

_ROW_CHUNK = 1024


def _points_pair(x_high, x_low, k: int, name: str) -> tuple[Tensor, Tensor]:
    h = torch.as_tensor(_numpy(x_high), dtype=torch.float64)
    lo = torch.as_tensor(_numpy(x_low), dtype=torch.float64)
    h, lo = h.reshape(len(h), -1), lo.reshape(len(lo), -1)
    if len(h) != len(lo):
        raise UmetaError(f"{name}: x_high has {len(h)} points but x_low has {len(lo)}; "
                         "give the same points in both spaces")
    if not 1 <= k < len(h) / 2:
        raise UmetaError(f"{name}: k={k} must satisfy 1 <= k < n_points / 2 = {len(h) / 2}; "
                         "use a smaller k or more points")
    return h, lo


def _row_distances(x: Tensor, start: int, stop: int) -> Tensor:
    """Distances from points ``start:stop`` to all points, with +inf for each point to itself."""
    d = torch.cdist(x[start:stop], x)
    rows = torch.arange(stop - start)
    d[rows, rows + start] = math.inf
    return d


def _nearest(x: Tensor, start: int, stop: int, k: int) -> Tensor:
    """Indices (stop - start, k) of the k nearest other points of points ``start:stop``."""
    return _row_distances(x, start, stop).topk(k, dim=1, largest=False).indices


def trustworthiness(x_high, x_low, k: int = 5) -> float:
    """How far the low-dimensional neighbours of each point are from being true neighbours.

    ``1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_i} (r(i, j) - k)`` where ``U_i`` are the
    ``k`` nearest neighbours of point ``i`` in ``x_low`` that are not among its ``k`` nearest in
    ``x_high`` and ``r(i, j)`` is the rank of ``j`` among the neighbours of ``i`` in ``x_high``
    (Venna and Kaski 2001; equals :func:`sklearn.manifold.trustworthiness`).

    Parameters
    ----------
    x_high : array-like or Tensor of shape (n, D)
        The input points.
    x_low : array-like or Tensor of shape (n, d)
        Their embedding.
    k : int
        Neighbourhood size, ``1 <= k < n / 2``.

    Returns
    -------
    float in [0, 1]; 1 means no false neighbours.
    """
    h, lo = _points_pair(x_high, x_low, k, "trustworthiness")
    n = len(h)
    penalty = 0.0
    for start in range(0, n, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, n)
        order = _row_distances(h, start, stop).argsort(dim=1)
        ranks = torch.empty_like(order).scatter_(
            1, order, torch.arange(1, n + 1).expand(stop - start, n))
        excess = ranks.gather(1, _nearest(lo, start, stop, k)) - k
        penalty += float(excess.clamp_min(0).sum())
    return 1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def continuity(x_high, x_low, k: int = 5) -> float:
    """How well the input neighbours of each point stay neighbours in the embedding.

    Trustworthiness with the two spaces swapped: ``continuity(x_high, x_low, k) ==
    trustworthiness(x_low, x_high, k)``. Same parameters as :func:`trustworthiness`.
    """
    return trustworthiness(x_low, x_high, k)


def knn_preservation(x_high, x_low, k: int = 10) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours in ``x_high`` kept in ``x_low``.

    Parameters
    ----------
    x_high : array-like or Tensor of shape (n, D)
    x_low : array-like or Tensor of shape (n, d)
    k : int
        ``1 <= k < n / 2``.

    Returns
    -------
    float in [0, 1]
    """
    h, lo = _points_pair(x_high, x_low, k, "knn_preservation")
    kept = 0
    for start in range(0, len(h), _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, len(h))
        a, b = _nearest(h, start, stop, k), _nearest(lo, start, stop, k)
        kept += int((a[:, :, None] == b[:, None, :]).any(-1).sum())
    return kept / (len(h) * k)


def distance_correlation(x_high, x_low, method: str = "spearman") -> float:
    """Correlation between the pairwise Euclidean distances of ``x_high`` and of ``x_low``.

    Parameters
    ----------
    x_high : array-like or Tensor of shape (n, D)
    x_low : array-like or Tensor of shape (n, d)
    method : {"spearman", "pearson"}

    Returns
    -------
    float in [-1, 1]; uses all ``n (n - 1) / 2`` pairs, so subsample large sets first.
    """
    if method not in ("spearman", "pearson"):
        raise UmetaError(f"distance_correlation: unknown method {method!r}; "
                         "choose 'spearman' or 'pearson'")
    h = _numpy(x_high).astype(np.float64).reshape(len(x_high), -1)
    lo = _numpy(x_low).astype(np.float64).reshape(len(x_low), -1)
    if len(h) != len(lo) or len(h) < 3:
        raise UmetaError(f"distance_correlation: needs the same n >= 3 points in both spaces; "
                         f"got {len(h)} and {len(lo)}")
    dh, dl = pdist(h), pdist(lo)
    corr = stats.spearmanr(dh, dl)[0] if method == "spearman" else stats.pearsonr(dh, dl)[0]
    return float(corr)


# ----------------------------------------------------------------------------- anomaly ranking

def _binary_scores(y_true, scores, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = _numpy(y_true).ravel()
    s = _numpy(scores).astype(np.float64).ravel()
    if y.size != s.size or y.size == 0:
        raise UmetaError(f"{name}: y_true has {y.size} entries and scores {s.size}; "
                         "give one score per sample")
    if not np.isin(y, (0, 1)).all():
        raise UmetaError(f"{name}: y_true must be 0 (normal) or 1 (anomaly); "
                         f"got values {np.unique(y)[:5].tolist()}")
    if not np.isfinite(s).all():
        raise UmetaError(f"{name}: scores contain NaN or inf; give every sample a finite score")
    return y.astype(bool), s


def auroc(y_true, scores) -> float:
    """Area under the ROC curve (probability that an anomaly outscores a normal sample; ties 1/2).

    Parameters
    ----------
    y_true : array-like or Tensor of shape (n,), 1 = anomaly (positive), 0 = normal
    scores : array-like or Tensor of shape (n,), higher = more anomalous

    Returns
    -------
    float in [0, 1]
    """
    y, s = _binary_scores(y_true, scores, "auroc")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise UmetaError("auroc: y_true needs both normal (0) and anomalous (1) samples")
    rank_sum = stats.rankdata(s)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y_true, scores) -> float:
    """Average precision: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds.

    Equals :func:`sklearn.metrics.average_precision_score`. Same parameters as :func:`auroc`.
    """
    y, s = _binary_scores(y_true, scores, "average_precision")
    if not y.any():
        raise UmetaError("average_precision: y_true has no anomalies (1); it is undefined")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# ----------------------------------------------------------------------------- few-shot

def few_shot_accuracy(predictions, labels) -> float:
    """Fraction of correct query predictions.

    Parameters
    ----------
    predictions : array-like or Tensor of shape (..., Q, N) logits, or (..., Q) class indices
    labels : array-like or Tensor of shape (..., Q)

    Returns
    -------
    float in [0, 1]
    """
    p, y = _numpy(predictions), _numpy(labels)
    if p.ndim == y.ndim + 1:
        p = p.argmax(-1)
    if p.shape != y.shape or y.size == 0:
        raise UmetaError(f"few_shot_accuracy: predictions of shape {p.shape} do not match labels "
                         f"of shape {y.shape}; give logits (..., Q, N) or classes (..., Q)")
    return float((p == y).mean())
