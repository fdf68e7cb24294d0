"""Metrics against hand-computed values, brute force and scikit-learn."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.manifold import trustworthiness as sk_trustworthiness

from umeta import UmetaError
from umeta import metrics as M


def test_mean_ci95_single_and_pair():
    assert M.mean_ci95([3.0]) == (3.0, 0.0)
    mean, ci = M.mean_ci95([1.0, 3.0])
    # t(0.975, 1) = 12.7062..., sem = sqrt(2) / sqrt(2) = 1
    assert mean == 2.0 and ci == pytest.approx(12.7062047, rel=1e-6)


# ----------------------------------------------------------------------------- clustering

@pytest.mark.parametrize("true, pred, expected", [
    ([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 2], 1.0),          # relabelled, perfect
    ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], 5 / 6),        # one sample in the wrong cluster
    ([0, 0, 1, 1], [0, 1, 2, 3], 2 / 4),                    # more clusters than classes
    ([0, 1, 2, 3], [0, 0, 0, 0], 1 / 4),                    # fewer clusters than classes
    (["a", "a", "b"], [5, 5, 7], 1.0),                      # any label values
    # cluster 0 holds 3 of class 0 and 2 of class 1, cluster 1 holds 2 of class 0: greedy
    # (0->0, 1->1) scores 3/7, the optimum (0->1, 1->0) 4/7
    ([0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1], 4 / 7),
])
def test_clustering_accuracy_hand_cases(true, pred, expected):
    assert M.clustering_accuracy(true, pred) == pytest.approx(expected)


def _brute_force_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    classes, clusters = np.unique(true), np.unique(pred)
    best = 0
    if len(clusters) <= len(classes):
        for perm in itertools.permutations(classes, len(clusters)):
            mapping = dict(zip(clusters, perm))
            best = max(best, sum(mapping[p] == t for p, t in zip(pred, true)))
    else:
        for perm in itertools.permutations(clusters, len(classes)):
            mapping = dict(zip(perm, classes))
            best = max(best, sum(mapping.get(p, -1) == t for p, t in zip(pred, true)))
    return best / len(true)


@pytest.mark.parametrize("seed", range(6))
def test_clustering_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, 30)
    pred = rng.integers(0, 3 + seed % 3, 30)  # 3, 4 or 5 clusters for 4 classes
    assert M.clustering_accuracy(true, pred) == pytest.approx(_brute_force_accuracy(true, pred))
    assert M.clustering_accuracy(torch.as_tensor(true), torch.as_tensor(pred)) == pytest.approx(
        _brute_force_accuracy(true, pred))


def test_nmi_ari_hand_cases():
    # pred refines true: MI = H(true) = ln 2, H(pred) = 1.5 ln 2 -> NMI = 1 / 1.25
    assert M.nmi([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.8)
    # pairs: sum C(n_ij, 2) = 1, rows 2, cols 1, C(4, 2) = 6 -> (1 - 1/3) / (1.5 - 1/3) = 4/7
    assert M.ari([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert M.nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert M.ari([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    scores = M.clustering_scores([0, 0, 1, 1], [0, 0, 1, 2])
    assert scores == pytest.approx({"clustering_accuracy": 0.75, "nmi": 0.8, "ari": 4 / 7})


def test_label_metrics_reject_mismatched_or_empty():
    with pytest.raises(UmetaError, match="labels_pred has 2"):
        M.clustering_accuracy([0, 1, 1], [0, 1])
    with pytest.raises(UmetaError, match="no labels"):
        M.nmi([], [])


# ----------------------------------------------------------------------------- embeddings

# 1-D points with distinct gaps; the embedding swaps the positions of points 0 and 4.
HIGH = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
LOW = np.array([[15.0], [1.0], [3.0], [7.0], [0.0]])


def test_trustworthiness_continuity_hand_case():
    # low-space 1-NN: 0->3, 1->4, 2->1, 3->2, 4->1; their input-space ranks 3, 4, 1, 1, 3
    # penalty = 2 + 3 + 0 + 0 + 2 = 7 -> 1 - 7 * 2 / (5 * 1 * (10 - 3 - 1)) = 8 / 15
    assert M.trustworthiness(HIGH, LOW, k=1) == pytest.approx(8 / 15)
    # input 1-NN: 0->1, 1->0, 2->1, 3->2, 4->3; their low-space ranks 3, 4, 1, 1, 3 -> 8 / 15
    assert M.continuity(HIGH, LOW, k=1) == pytest.approx(8 / 15)
    assert M.trustworthiness(HIGH, HIGH, k=2) == 1.0


def test_knn_preservation_hand_case():
    # kept neighbours: points 2 and 3 only
    assert M.knn_preservation(HIGH, LOW, k=1) == pytest.approx(2 / 5)
    assert M.knn_preservation(HIGH, 3 * HIGH + 1, k=2) == 1.0


@pytest.mark.parametrize("k", [1, 5, 12])
def test_trustworthiness_matches_sklearn(k, monkeypatch):
    monkeypatch.setattr(M, "_ROW_CHUNK", 16)  # exercise the row chunking
    rng = np.random.default_rng(k)
    x = rng.normal(size=(40, 6))
    y = x[:, :2] + 0.3 * rng.normal(size=(40, 2))
    assert M.trustworthiness(x, y, k) == pytest.approx(sk_trustworthiness(x, y, n_neighbors=k))
    assert M.continuity(x, y, k) == pytest.approx(sk_trustworthiness(y, x, n_neighbors=k))
    assert M.trustworthiness(torch.as_tensor(x), torch.as_tensor(y), k) == pytest.approx(
        sk_trustworthiness(x, y, n_neighbors=k))


def test_knn_preservation_matches_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 2))
    k = 4
    kept = 0
    for i in range(30):
        dx = np.linalg.norm(x - x[i], axis=1)
        dy = np.linalg.norm(y - y[i], axis=1)
        dx[i] = dy[i] = np.inf
        kept += len(set(np.argsort(dx)[:k]) & set(np.argsort(dy)[:k]))
    assert M.knn_preservation(x, y, k) == pytest.approx(kept / (30 * k))


def test_embedding_metrics_validate_k_and_sizes():
    with pytest.raises(UmetaError, match="k=3"):
        M.trustworthiness(HIGH, LOW, k=3)
    with pytest.raises(UmetaError, match="5 points but x_low has 4"):
        M.knn_preservation(HIGH, LOW[:4], k=1)


def test_distance_correlation_hand_case():
    # distances (01, 02, 12): high [1, 3, 2], low [2, 3, 1] -> Pearson = Spearman = 1/2
    high, low = np.array([[0.0], [1.0], [3.0]]), np.array([[0.0], [2.0], [3.0]])
    assert M.distance_correlation(high, low, "pearson") == pytest.approx(0.5)
    assert M.distance_correlation(high, low, "spearman") == pytest.approx(0.5)
    assert M.distance_correlation(HIGH, 2 * HIGH, "pearson") == pytest.approx(1.0)
    with pytest.raises(UmetaError, match="'kendall'"):
        M.distance_correlation(high, low, "kendall")


# ----------------------------------------------------------------------------- anomaly ranking

def test_auroc_ap_hand_cases():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert M.auroc(y, s) == pytest.approx(3 / 4)  # 3 of 4 (anomaly, normal) pairs ordered
    # thresholds 0.8, 0.4, 0.35, 0.1: (R, P) = (.5, 1), (.5, .5), (1, 2/3), (1, .5)
    assert M.average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert M.auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(4))
def test_auroc_ap_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.normal(size=50) + y, 1)  # rounding makes ties
    assert M.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert M.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))
    assert M.auroc(torch.as_tensor(y), torch.as_tensor(s)) == pytest.approx(
        skm.roc_auc_score(y, s))


def test_anomaly_metrics_validate():
    with pytest.raises(UmetaError, match="both normal"):
        M.auroc([1, 1], [0.2, 0.3])
    with pytest.raises(UmetaError, match="no anomalies"):
        M.average_precision([0, 0], [0.2, 0.3])
    with pytest.raises(UmetaError, match=r"0 \(normal\) or 1"):
        M.auroc([0, 2], [0.2, 0.3])
    with pytest.raises(UmetaError, match="NaN"):
        M.auroc([0, 1], [0.2, np.nan])


# ----------------------------------------------------------------------------- few-shot

def test_few_shot_accuracy():
    logits = torch.tensor([[[2.0, 1.0], [0.0, 3.0], [5.0, 4.0]]])  # (T=1, Q=3, N=2)
    labels = torch.tensor([[0, 1, 1]])
    assert M.few_shot_accuracy(logits, labels) == pytest.approx(2 / 3)
    assert M.few_shot_accuracy(np.array([0, 1, 0]), np.array([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(UmetaError, match="do not match"):
        M.few_shot_accuracy(np.zeros((2, 3)), np.zeros((3,)))


def test_matched_confusion_puts_matches_on_the_diagonal():
    from umeta.metrics import matched_confusion

    truth = [0, 0, 0, 1, 1, 2, 2, 2]
    pred = [5, 5, 7, 7, 7, 9, 9, 5]  # cluster 5 ~ class 0, 7 ~ class 1, 9 ~ class 2
    assert matched_confusion(truth, pred).tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
