"""Spectral clustering on the embedding's neighbour graph (`umeta.numeric.spectral`) and its use
as ``algorithm="spectral"`` in `cluster_dataset` and `MetaClusterer`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import SpectralClustering
from sklearn.datasets import make_circles, make_moons

from umeta import metrics as M
from umeta.adapt import cluster_dataset
from umeta.estimators import MetaClusterer
from umeta.numeric import spectral
from umeta.params import ParamError


def rings(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    x, y = make_circles(n, noise=0.03, factor=0.4, random_state=seed)
    return torch.as_tensor(x, dtype=torch.float32), y


def test_nearest_point_labels_match_a_loop(monkeypatch):
    monkeypatch.setattr(spectral, "QUERY_CHUNK", 7)  # several blocks
    gen = torch.Generator().manual_seed(0)
    feats, points = torch.randn(30, 3, generator=gen), torch.randn(12, 3, generator=gen)
    labels = torch.arange(12) % 4
    expected = [int(labels[(points - f).norm(dim=1).argmin()]) for f in feats]
    assert spectral.nearest_point_labels(feats, points, labels).tolist() == expected


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_spectral_clustering_equals_sklearn_and_separates_rings():
    x, y = rings()
    labels = spectral.spectral_clustering(x, 2, seed=3)
    reference = SpectralClustering(2, affinity="nearest_neighbors", n_neighbors=10,
                                   random_state=3).fit_predict(x.double().numpy())
    assert labels.dtype == torch.int64
    assert labels.tolist() == reference.tolist()
    assert M.ari(y, labels.numpy()) == 1.0


def test_spectral_clustering_of_a_sample_gives_the_rest_their_nearest_fitted_label(monkeypatch):
    monkeypatch.setattr(spectral, "SPECTRAL_FIT_ROWS", 150)
    x, y = rings(600)
    labels = spectral.spectral_clustering(x, 2, seed=1)
    assert M.ari(y, labels.numpy()) > 0.95
    # the fitted sample is the seeded permutation's first 150 points; every other point carries
    # the label of its nearest fitted point
    fitted = torch.randperm(600, generator=torch.Generator().manual_seed(1))[:150].sort().values
    rest = torch.ones(600, dtype=torch.bool)
    rest[fitted] = False
    nearest = ((x[rest][:, None] - x[fitted][None]).square().sum(-1)).argmin(1)
    assert labels[rest].tolist() == labels[fitted][nearest].tolist()
    assert labels.tolist() == spectral.spectral_clustering(x, 2, seed=1).tolist()  # seeded


def test_spectral_clustering_needs_two_points_more_than_clusters():
    x = torch.randn(6, 2)
    assert len(spectral.spectral_clustering(x, 4)) == 6
    with pytest.raises(ParamError, match="at most 4 clusters of 6 samples"):
        spectral.spectral_clustering(x, 5)


def test_cluster_dataset_spectral_centres_are_cluster_means():
    x, y = make_moons(300, noise=0.05, random_state=0)
    result = cluster_dataset(None, x.astype(np.float32), 2, algorithm="spectral")
    feats, labels = result.features, result.labels
    assert M.ari(y, labels.numpy()) > 0.9
    assert M.ari(y, cluster_dataset(None, x.astype(np.float32), 2).labels.numpy()) < 0.6
    for c in range(2):
        torch.testing.assert_close(result.centers[c], feats[labels == c].mean(0))
    inertia = sum(float((feats[labels == c] - result.centers[c]).square().sum()) for c in range(2))
    assert float(result.inertia) == pytest.approx(inertia, rel=1e-5)
    assert result.n_iter == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"algorithm": "dbscan"}, "unknown algorithm 'dbscan'"),
    ({"algorithm": "spectral", "refine": "soft"}, "with algorithm 'spectral' set refine"),
])
def test_cluster_dataset_rejects_bad_algorithm_settings(kwargs, match):
    with pytest.raises(ParamError, match=match):
        cluster_dataset(None, np.random.default_rng(0).normal(size=(20, 2)), 2, **kwargs)


def test_meta_clusterer_spectral_predicts_the_nearest_fitted_points_label():
    x, y = rings(300)
    model = MetaClusterer(n_clusters=2, algorithm="spectral").fit(x.numpy())
    assert M.ari(y, model.labels_) == 1.0
    assert model.fit_embedding_.shape == (300, 2)
    assert model.predict(x.numpy()).tolist() == model.labels_.tolist()
    # a new point just off the inner ring takes the inner ring's label, although k-means's
    # centres (both near the origin) would not say so
    inner = model.labels_[np.argmin(np.linalg.norm(x.numpy(), axis=1))]
    assert model.predict(np.array([[0.0, 0.42]], dtype=np.float32)).tolist() == [inner]
    assert MetaClusterer(n_clusters=2).fit(x.numpy()).fit_embedding_ is None
