"""Adaptation to new unlabeled data: batched k-means, refinement, PCA embedding, anomaly scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA as SkPCA
from sklearn.metrics import silhouette_score

from umeta import UmetaError
from umeta import metrics as M
from umeta.adapt import (anomaly_scores, cluster_dataset, embed_dataset, embed_inputs,
                         embedding_quality, fit_normal)
from umeta.learners import ProtoNet
from umeta.models import build_backbone
from umeta.numeric import (cluster_tasks, estimate_n_clusters, fit_pca, kmeans,
                           kth_neighbour_distance, refine_prototypes, silhouette_scores)
from umeta.numeric.clustering import _update


@pytest.fixture
def learner() -> ProtoNet:
    """An untrained ProtoNet over an MLP for 1x8x8 images (a random projection)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ProtoNet(build_backbone("mlp", (1, 8, 8), hidden=64))


def image_blobs(n_classes: int = 3, per_class: int = 10, noise: float = 0.05, seed: int = 0):
    """Images (n, 1, 8, 8) in [0, 1]: a random pattern per class plus a little noise."""
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.rand(n_classes, 1, 8, 8, generator=gen)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    images = patterns[labels] + noise * torch.randn(len(labels), 1, 8, 8, generator=gen)
    return images.clamp(0, 1), labels


def blob_tasks(n_tasks: int, k: int, per: int, seed: int = 0):
    xs, ys = [], []
    for t in range(n_tasks):
        x, y = make_blobs(k * per, centers=k, n_features=5, cluster_std=0.5,
                          center_box=(-10, 10), random_state=seed + t)
        xs.append(x)
        ys.append(y)
    return torch.tensor(np.stack(xs)), torch.tensor(np.stack(ys))


# ----------------------------------------------------------------------------- k-means

@pytest.mark.parametrize("seed", range(3))
def test_kmeans_inertia_matches_sklearn(seed):
    x, _ = make_blobs(200, centers=6, n_features=4, cluster_std=2.5, random_state=seed)
    ours = kmeans(torch.tensor(x)[None], 6, n_init=10, seed=seed)
    ref = KMeans(6, n_init=10, random_state=seed).fit(x)
    assert float(ours.inertia[0]) == pytest.approx(ref.inertia_, rel=1e-3)
    # a Lloyd fixed point: labels are the nearest centres, centres the means of their points
    labels, centers = ours.labels[0].numpy(), ours.centers[0].numpy()
    d2 = ((x[:, None] - centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))
    assert float(ours.inertia[0]) == pytest.approx(d2.min(1).sum())
    for j in range(6):
        np.testing.assert_allclose(centers[j], x[labels == j].mean(0), atol=1e-6)


def test_cluster_tasks_batched_blobs_are_perfect_and_match_sklearn():
    x, y = blob_tasks(8, 4, 6)
    result = cluster_tasks(x, 4, n_init=5, seed=0)
    assert result.labels.shape == (8, 24) and result.centers.shape == (8, 4, 5)
    for t in range(8):
        assert M.clustering_accuracy(y[t], result.labels[t]) == 1.0
        ref = KMeans(4, n_init=5, random_state=0).fit(x[t].numpy())
        assert float(result.inertia[t]) == pytest.approx(ref.inertia_, rel=1e-6)


def test_cluster_tasks_blocks_equal_one_batch(monkeypatch):
    x, _ = blob_tasks(5, 3, 4, seed=10)
    whole = cluster_tasks(x, 3, n_init=4, seed=0)
    monkeypatch.setattr("umeta.numeric.clustering._ELEMENT_BUDGET", 1)  # one task per block
    parts = cluster_tasks(x, 3, n_init=4, seed=0)
    torch.testing.assert_close(parts.inertia, whole.inertia)


def test_kmeans_is_seeded():
    x = torch.randn(4, 30, 3, generator=torch.Generator().manual_seed(0))
    a, b = kmeans(x, 5, n_init=2, seed=7), kmeans(x, 5, n_init=2, seed=7)
    torch.testing.assert_close(a.centers, b.centers)
    assert torch.equal(a.labels, b.labels)


def test_kmeans_duplicates_and_empty_clusters():
    # 3 distinct points for 4 clusters: seeding must cope with all-zero weights and the
    # duplicate centre's cluster is empty; nothing may become NaN
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]).repeat(4, 1)[None]
    result = kmeans(x, 4, n_init=3)
    assert torch.isfinite(result.centers).all()
    assert float(result.inertia[0]) == 0.0


def test_update_moves_an_empty_cluster_to_the_farthest_point():
    x = torch.tensor([[[0.0], [1.0], [10.0]]])
    old = torch.tensor([[[[0.5], [100.0]]]])  # (T=1, R=1, k=2, D=1)
    labels = torch.zeros(1, 3, 1, dtype=torch.long)  # every point in cluster 0
    best = torch.tensor([[[0.25], [0.25], [90.25]]])  # squared distances to centre 0
    new = _update(x, labels, best, old)
    torch.testing.assert_close(new[0, 0], torch.tensor([[11 / 3], [10.0]]))


# ----------------------------------------------------------------------------- refinement

def test_soft_refinement_at_low_temperature_keeps_kmeans_fixed_point():
    x, _ = blob_tasks(3, 3, 8, seed=3)
    base = cluster_tasks(x, 3, seed=0)
    refined = refine_prototypes(x, base.centers, steps=3, temperature=1e-4)
    assert torch.equal(refined.labels, base.labels)
    torch.testing.assert_close(refined.centers, base.centers)
    torch.testing.assert_close(refined.inertia, base.inertia)


def test_balanced_refinement_makes_equal_clusters():
    gen = torch.Generator().manual_seed(0)
    # 15 points around 0 and 5 around (5, 5): k-means splits 15 / 5, the balanced prior 10 / 10
    x = torch.cat([torch.randn(15, 2, generator=gen),
                   5 + torch.randn(5, 2, generator=gen)])[None].double()
    base = cluster_tasks(x, 2, seed=0)
    assert sorted(torch.bincount(base.labels[0]).tolist()) == [5, 15]
    refined = cluster_tasks(x, 2, refine="balanced", seed=0)
    assert torch.bincount(refined.labels[0]).tolist() == [10, 10]
    assert cluster_tasks(x, 2, refine="soft", seed=0).labels.shape == (1, 20)


# ----------------------------------------------------------------------------- silhouette, k

def test_silhouette_matches_sklearn_with_a_singleton_cluster():
    x, _ = make_blobs(40, centers=3, n_features=3, random_state=1)
    labels = KMeans(4, n_init=2, random_state=0).fit_predict(x)
    labels[0] = 4  # a cluster of one point, which scores 0
    ours = silhouette_scores(torch.tensor(x)[None], torch.tensor(labels)[None], 5)
    assert float(ours[0]) == pytest.approx(silhouette_score(x, labels))


def test_estimate_n_clusters_on_blobs():
    x, _ = make_blobs(120, centers=4, n_features=2, cluster_std=0.4, center_box=(-10, 10),
                      random_state=2)
    assert estimate_n_clusters(torch.tensor(x), (2, 8), n_init=5) == 4
    assert estimate_n_clusters(torch.tensor(x), (2, 8), n_init=5, max_points=60) == 4
    with pytest.raises(UmetaError, match="k_range"):
        estimate_n_clusters(torch.tensor(x[:5]), (2, 8))


# ----------------------------------------------------------------------------- cluster_dataset()

def test_cluster_with_a_learner_separates_image_blobs(learner):
    images, labels = image_blobs()
    result = cluster_dataset(learner, images, 3, seed=0)
    assert result.labels.shape == (30,) and result.centers.shape == (3, learner.backbone.out_dim)
    assert M.clustering_accuracy(labels, result.labels) == 1.0
    estimated = cluster_dataset(learner, images, None, k_range=(2, 6), normalize=True)
    assert estimated.n_clusters == 3
    assert M.clustering_accuracy(labels, estimated.labels) == 1.0
    as_uint8 = cluster_dataset(learner, (images * 255).round().to(torch.uint8), 3, seed=0)
    assert M.clustering_accuracy(labels, as_uint8.labels) == 1.0


def test_cluster_without_a_learner_equals_kmeans_on_inputs():
    x, y = make_blobs(60, centers=3, n_features=4, random_state=0)
    result = cluster_dataset(None, x, 3, seed=0)
    assert M.clustering_accuracy(y, result.labels) == 1.0
    reference = KMeans(3, n_init=10, random_state=0).fit(x)
    assert float(result.inertia) == pytest.approx(reference.inertia_)


@pytest.mark.parametrize("x, k, match", [
    (torch.rand(4, 1, 8, 8), 5, "n_clusters=5 clusters of 4 samples"),
    (torch.rand(1, 1, 8, 8), 1, "at least 2"),
    (torch.rand(0, 1, 8, 8), 2, "got 0 sample"),
    (torch.full((4, 1, 8, 8), float("nan")), 2, "NaN or inf"),
    (torch.full((4, 1, 8, 8), float("inf")), 2, "NaN or inf"),
    (torch.rand(4, 1, 7, 7), 2, r"\(1, 7, 7\) do not fit the model"),
    (torch.rand(4, 8, 8), 2, r"shape \(N, C, H, W\)"),
    (torch.rand(4, 1, 8, 8), 0, "n_clusters=0"),
])
def test_cluster_input_errors(learner, x, k, match):
    with pytest.raises(UmetaError, match=match):
        cluster_dataset(learner, x, k)


def test_cluster_rejects_unknown_refinement_and_bad_task_shapes():
    with pytest.raises(UmetaError, match="unknown refine 'hard'"):
        cluster_dataset(None, np.random.default_rng(0).normal(size=(6, 2)), 2, refine="hard")
    with pytest.raises(UmetaError, match=r"\(tasks, points, dims\)"):
        cluster_tasks(torch.rand(5, 2), 2)
    with pytest.raises(UmetaError, match="NaN or inf"):
        cluster_tasks(torch.full((1, 5, 2), float("nan")), 2)


def test_embed_inputs_respect_a_declared_image_shape_and_warn_on_range(learner):
    learner.image_shape = (1, 4, 16)  # what a checkpoint may record
    with pytest.raises(UmetaError, match=r"trained on images of shape \(1, 4, 16\)"):
        embed_inputs(learner, torch.rand(3, 1, 8, 8))
    del learner.image_shape
    with pytest.warns(UserWarning, match=r"outside \[0, 1\]"):
        embed_inputs(learner, 255 * torch.rand(3, 1, 8, 8))


# ----------------------------------------------------------------------------- embed

def test_fit_pca_matches_sklearn():
    x = np.random.default_rng(0).normal(size=(50, 6)) * np.arange(1, 7)
    ours = fit_pca(torch.tensor(x), 3)
    ref = SkPCA(3).fit(x)
    np.testing.assert_allclose(ours.explained_variance.numpy(), ref.explained_variance_)
    np.testing.assert_allclose(ours.explained_variance_ratio.numpy(),
                               ref.explained_variance_ratio_)
    signs = np.sign((ours.components.numpy() * ref.components_).sum(1))
    np.testing.assert_allclose(ours.components.numpy(), signs[:, None] * ref.components_,
                               atol=1e-10)
    np.testing.assert_allclose(ours.transform(torch.tensor(x)).numpy(),
                               signs * ref.transform(x), atol=1e-10)
    with pytest.raises(UmetaError, match="d=7"):
        fit_pca(torch.tensor(x), 7)


def test_full_rank_pca_embedding_is_a_perfect_embedding():
    x = np.random.default_rng(1).normal(size=(40, 3))
    points = embed_dataset(None, x, d=3).points  # a rotation: every distance is kept
    quality = embedding_quality(x, points, k=5)
    assert quality == pytest.approx({"trustworthiness": 1.0, "continuity": 1.0,
                                     "knn_preservation": 1.0, "spearman": 1.0, "pearson": 1.0})


def test_embed_with_a_learner_and_quality_report(learner):
    images, _ = image_blobs(per_class=20)
    result = embed_dataset(learner, images, d=2)
    assert result.points.shape == (60, 2)
    feats = learner.embed(images)
    torch.testing.assert_close(result.pca.transform(feats), result.points)
    quality = embedding_quality(images, result.points, k=5)
    assert quality["trustworthiness"] == pytest.approx(M.trustworthiness(images, result.points, 5))
    assert quality["spearman"] == pytest.approx(
        M.distance_correlation(images, result.points, "spearman"))
    assert 0.5 < quality["trustworthiness"] <= 1.0
    sub = embedding_quality(images, result.points, k=5, max_points=30)
    assert sub != quality and set(sub) == set(quality)
    with pytest.raises(UmetaError, match="at least 2"):
        embed_dataset(learner, images[:1])


# ----------------------------------------------------------------------------- anomaly

def test_kth_neighbour_distance_matches_loop(monkeypatch):
    monkeypatch.setattr("umeta.numeric.distances.QUERY_CHUNK", 7)
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    ref[5] = ref[4]  # an exact duplicate still counts as a neighbour
    q = torch.randn(15, 3, generator=gen, dtype=torch.float64)
    for k in (1, 3):
        expected = [np.sort(np.linalg.norm(ref.numpy() - qi.numpy(), axis=1))[k - 1] for qi in q]
        np.testing.assert_allclose(kth_neighbour_distance(q, ref, k).numpy(), expected)
        loo = [np.sort(np.delete(np.linalg.norm(ref.numpy() - ref[i].numpy(), axis=1), i))[k - 1]
               for i in range(20)]
        np.testing.assert_allclose(kth_neighbour_distance(ref, ref, k, exclude_self=True).numpy(),
                                   loo)
    assert float(kth_neighbour_distance(ref, ref, 1, exclude_self=True)[4]) == 0.0
    with pytest.raises(UmetaError, match="n_neighbors=20"):
        kth_neighbour_distance(ref, ref, 20, exclude_self=True)


def test_prototype_scores_are_distances_to_the_normal_mean():
    normal = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])  # mean (1, 1)
    x = torch.tensor([[1.0, 1.0], [4.0, 5.0]])
    scores = anomaly_scores(None, x, normal, method="prototype")
    torch.testing.assert_close(scores, torch.tensor([0.0, 5.0]))
    two = fit_normal(torch.cat([normal, normal + 100]), "prototype", n_prototypes=2)
    assert sorted(two.reference[:, 0].tolist()) == pytest.approx([1.0, 101.0])


def test_anomaly_scores_with_a_learner_rank_anomalies_first(learner):
    images, labels = image_blobs(n_classes=2, per_class=12, seed=1)
    normal, rest = images[labels == 0], images[labels == 1][:3]
    x = torch.cat([normal[6:], rest])  # 6 normal, 3 anomalous
    y = torch.tensor([0] * 6 + [1] * 3)
    for method in ("knn", "prototype"):
        scores = anomaly_scores(learner, x, normal[:6], method=method, n_neighbors=2)
        assert M.auroc(y, scores) == 1.0
    # no normal examples: k-NN distance within the data itself (anomalies are the sparse ones)
    scores = anomaly_scores(learner, x, None, n_neighbors=3)
    assert M.auroc(y, scores) == 1.0


def test_anomaly_input_errors(learner):
    x = torch.rand(5, 1, 8, 8)
    with pytest.raises(UmetaError, match="needs normal examples"):
        anomaly_scores(learner, x, None, method="prototype")
    with pytest.raises(UmetaError, match="unknown method 'lof'"):
        anomaly_scores(learner, x, x, method="lof")
    with pytest.raises(UmetaError, match="at least 2"):
        anomaly_scores(learner, x[:1], None)
    with pytest.raises(UmetaError, match="NaN or inf"):
        anomaly_scores(learner, x, torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(UmetaError, match="features of shape"):
        anomaly_scores(None, torch.rand(5, 3), torch.rand(5, 4))
