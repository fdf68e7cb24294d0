"""scikit-learn estimators: the library's own checks, baselines against scikit-learn, learners.

Skipped or expected-to-fail scikit-learn checks, and why:

- ``MetaAnomalyDetector(method="knn")``: ``check_outliers_train`` and
  ``check_outliers_fit_predict`` expect ``predict`` on the training samples to flag about
  ``contamination`` of them. With k-NN scoring each training sample is its own nearest normal
  neighbour (distance 0 for ``n_neighbors=1``), so none is flagged; the threshold ``offset_`` is
  set on leave-one-out training scores instead, which is what matters for new data. The same
  checks pass with ``method="prototype"``, which is checked too.
- ``check_array_api_input`` is skipped by scikit-learn itself unless SCIPY_ARRAY_API is set, and
  checks that need pandas are skipped by scikit-learn when pandas is not installed.
- With a learner the checks cannot run: they feed arrays of 1 to 10 features, which do not fit a
  model trained on fixed-size images. The contract is tested by hand below instead (fit returns
  self, fitted attributes, NotFittedError, clone, pickle, fit leaves the model unchanged,
  feature-count checks on predict).
"""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

from umeta import UmetaError
from umeta import metrics as M
from umeta.adapt import cluster_dataset, embed_dataset
from umeta.estimators import MetaAnomalyDetector, MetaClusterer, MetaEmbedder
from umeta.learners import ProtoNet
from umeta.models import build_backbone


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, MetaAnomalyDetector) and estimator.method == "knn":
        reason = "k-NN scores each training sample against itself (see the module docstring)"
        return {"check_outliers_train": reason, "check_outliers_fit_predict": reason}
    return {}


@parametrize_with_checks(
    [MetaClusterer(n_init=2), MetaEmbedder(), MetaAnomalyDetector(method="prototype"),
     MetaAnomalyDetector(method="knn")],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_checks_without_a_learner(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------- baselines

def test_clusterer_without_a_learner_matches_kmeans():
    x, y = make_blobs(150, centers=4, n_features=3, cluster_std=1.5, random_state=0)
    est = MetaClusterer(n_clusters=4, random_state=0).fit(x)
    ref = KMeans(4, n_init=10, random_state=0).fit(x)
    assert est.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    assert M.ari(ref.labels_, est.labels_) == 1.0
    np.testing.assert_array_equal(est.predict(x), est.labels_)
    assert est.cluster_centers_.shape == (4, 3) and est.n_iter_ >= 1


def test_clusterer_estimates_the_number_of_clusters():
    x, _ = make_blobs(90, centers=3, n_features=2, cluster_std=0.3, center_box=(-8, 8),
                      random_state=4)
    est = MetaClusterer(n_clusters=None, k_range=(2, 6)).fit(x)
    assert est.n_clusters_ == 3 and est.cluster_centers_.shape == (3, 2)


def test_embedder_without_a_learner_matches_pca():
    x = np.random.default_rng(0).normal(size=(60, 5)) * np.arange(1, 6)
    ours = MetaEmbedder(n_components=2).fit(x)
    ref = PCA(2).fit(x)
    signs = np.sign((ours.components_ * ref.components_).sum(1))
    np.testing.assert_allclose(ours.transform(x), signs * ref.transform(x), atol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
    with pytest.raises(UmetaError, match="n_components=9"):
        MetaEmbedder(n_components=9).fit(x)


def test_anomaly_detector_without_a_learner_matches_nearest_neighbors():
    rng = np.random.default_rng(0)
    normal, x = rng.normal(size=(40, 3)), rng.normal(size=(10, 3)) * 3
    est = MetaAnomalyDetector(n_neighbors=3, contamination=0.1).fit(normal)
    dist = NearestNeighbors(n_neighbors=3).fit(normal).kneighbors(x)[0][:, -1]
    np.testing.assert_allclose(est.score_samples(x), -dist)
    # offset_: the 10th percentile of leave-one-out training scores
    loo = NearestNeighbors(n_neighbors=4).fit(normal).kneighbors(normal)[0][:, -1]
    assert est.offset_ == pytest.approx(np.percentile(-loo, 10))
    np.testing.assert_array_equal(est.predict(x), np.where(-dist < est.offset_, -1, 1))
    with pytest.raises(UmetaError, match="contamination=0.7"):
        MetaAnomalyDetector(contamination=0.7).fit(normal)
    with pytest.raises(UmetaError, match="n_neighbors=40"):
        MetaAnomalyDetector(n_neighbors=40).fit(normal)


# ----------------------------------------------------------------------------- with a learner

@pytest.fixture
def learner() -> ProtoNet:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ProtoNet(build_backbone("mlp", (1, 8, 8), hidden=64))


@pytest.fixture
def blobs():
    """Images (30, 1, 8, 8) in [0, 1], 3 classes of a random pattern plus noise."""
    gen = torch.Generator().manual_seed(0)
    patterns = torch.rand(3, 1, 8, 8, generator=gen)
    labels = torch.arange(3).repeat_interleave(10)
    images = (patterns[labels] + 0.05 * torch.randn(30, 1, 8, 8, generator=gen)).clamp(0, 1)
    return images.numpy(), labels.numpy()


def test_clusterer_with_a_learner(learner, blobs):
    images, labels = blobs
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    est = MetaClusterer(learner, n_clusters=3)
    assert est.fit(images) is est
    assert M.clustering_accuracy(labels, est.labels_) == 1.0
    assert est.cluster_centers_.shape == (3, learner.backbone.out_dim)
    assert est.input_shape_ == (1, 8, 8) and est.n_features_in_ == 64
    np.testing.assert_array_equal(est.predict(images), est.labels_)
    np.testing.assert_array_equal(est.fit_predict(images), est.labels_)
    # the same result from the adapt function, and from every input layout
    ref = cluster_dataset(learner, torch.as_tensor(images), 3, seed=est._seed(),
                          algorithm=est.algorithm_)
    np.testing.assert_array_equal(ref.labels.numpy(), est.labels_)
    for layout in (images.reshape(30, 64), images.reshape(30, 8, 8)):
        np.testing.assert_array_equal(est.predict(layout), est.labels_)
    np.testing.assert_array_equal(
        est.predict((images * 255).round().astype(np.uint8)), est.labels_)
    # fitting leaves the model as it was
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())
    assert learner.training


def test_learner_estimators_follow_the_sklearn_contract(learner, blobs):
    images, _ = blobs
    for est in (MetaClusterer(learner, n_clusters=3), MetaEmbedder(learner),
                MetaAnomalyDetector(learner)):
        with pytest.raises(NotFittedError):
            (est.predict if hasattr(est, "predict") else est.transform)(images)
        fitted = clone(est).fit(images)
        method = "predict" if isinstance(est, MetaClusterer) else (
            "transform" if isinstance(est, MetaEmbedder) else "score_samples")
        out = getattr(fitted, method)(images)
        np.testing.assert_allclose(getattr(pickle.loads(pickle.dumps(fitted)), method)(images),
                                   out)
        with pytest.raises(ValueError, match=r"shape \(30, 10\) does not fit"):
            getattr(fitted, method)(images.reshape(30, 64)[:, :10])


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5, 1, 7, 7)), r"does not fit the model, which was trained on images of shape "
                             r"\(1, 8, 8\)"),
    (np.zeros((5, 3, 8, 8)), r"does not fit the model"),
    (np.full((5, 64), np.nan), "NaN"),
    (np.zeros((1, 64)), "1 sample"),
])
def test_learner_estimators_reject_bad_inputs(learner, bad, match):
    with pytest.raises(ValueError, match=match):
        MetaClusterer(learner, n_clusters=1, input_shape=(1, 8, 8)).fit(bad)


def test_image_shape_is_inferred_or_asked_for(learner):
    with pytest.raises(UmetaError, match="input_shape"):
        MetaEmbedder(learner).fit(np.zeros((5, 63)))
    assert MetaEmbedder(learner).fit(np.random.default_rng(0).random((5, 8, 8))).input_shape_ == (
        1, 8, 8)


def test_embedder_and_detector_with_a_learner(learner, blobs):
    images, labels = blobs
    est = MetaEmbedder(learner, n_components=2).fit(images)
    ref = embed_dataset(learner, torch.as_tensor(images), d=2).points.numpy()
    np.testing.assert_allclose(est.transform(images), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.fit_transform(images), ref, rtol=1e-5, atol=1e-5)

    normal, test = images[labels == 0][:6], np.concatenate([images[labels == 0][6:],
                                                            images[labels == 1][:3]])
    y = np.r_[np.zeros(4), np.ones(3)]
    for method in ("knn", "prototype"):
        det = MetaAnomalyDetector(learner, method=method, n_neighbors=2).fit(normal)
        assert M.auroc(y, -det.score_samples(test)) == 1.0
        np.testing.assert_array_equal(det.predict(test)[4:], -1)


def test_checkpoint_path_is_loaded_lazily(learner, blobs, monkeypatch, tmp_path):
    calls = []

    def load_learner(path, device):
        calls.append((path, device))
        return learner

    fake = types.ModuleType("umeta.build")
    fake.load_learner = load_learner
    monkeypatch.setitem(sys.modules, "umeta.build", fake)
    path = tmp_path / "model"
    est = MetaEmbedder(str(path), device="cpu").fit(blobs[0])
    assert calls == [(str(path), torch.device("cpu"))]
    assert est.learner_ is learner
    est.transform(blobs[0])
    assert len(calls) == 1  # loaded once, in fit


def test_the_clusterer_estimates_k_by_default_as_the_cli_does():
    from umeta.cli import build_parser

    cli = build_parser().parse_args(["cluster", "data.csv"])
    assert MetaClusterer().n_clusters is None and cli.n_clusters is None
    x, _ = make_blobs(8, centers=2, n_features=2, cluster_std=0.1, random_state=0)
    est = MetaClusterer().fit(x)  # 8 samples: the default range 2..10 is searched up to 7
    assert est.k_range_ == (2, 7) and est.n_clusters_ == 2
    assert MetaClusterer(n_clusters=2).fit(x).k_range_ is None


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_a_seed_outside_numpys_range_is_a_parameter_error(seed):
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(UmetaError, match=r"random_state=.* must be an integer in \[0, 4294967295\]"):
        MetaClusterer(n_clusters=2, random_state=seed).fit(x)


def test_auto_clusters_images_spectrally_with_ten_images_a_cluster(learner, blobs):
    images, labels = blobs
    model = MetaClusterer(learner, 3).fit(images)  # 30 images, 3 clusters
    assert model.algorithm_ == "spectral" and model.fit_embedding_.shape[0] == 30
    assert M.ari(labels, model.labels_) == 1.0
    assert model.predict(images).tolist() == model.labels_.tolist()
    assert MetaClusterer(learner, 4).fit(images).algorithm_ == "kmeans"  # 7.5 a cluster
    assert MetaClusterer(learner, 3, refine="soft").fit(images).algorithm_ == "kmeans"
    assert MetaClusterer(learner, 3, algorithm="kmeans").fit(images).fit_embedding_ is None
