"""The built-in models ship as package data, sha256-checked at load."""

import numpy as np
import pytest

import umeta.pretrained
from umeta.data import make_glyphs
from umeta.errors import UmetaError
from umeta.estimators import MetaClusterer
from umeta.pretrained import SHIPPED, builtin_checkpoint, load_builtin, sha256_of


def test_every_shipped_model_is_in_the_package_with_its_sha256_and_results():
    root = umeta.pretrained.WEIGHTS.parents[2] / "benchmarks" / "results"
    for kind, model in SHIPPED.items():
        path = builtin_checkpoint(kind)
        assert sha256_of(path) == model.sha256
        assert path.stat().st_size <= 20 * 2**20
        for name in model.results:
            assert (root / name).is_file(), name


def test_a_corrupt_builtin_model_is_refused(tmp_path, monkeypatch):
    (tmp_path / SHIPPED["images"].file).write_bytes(b"not the shipped weights")
    monkeypatch.setattr(umeta.pretrained, "WEIGHTS", tmp_path)
    with pytest.raises(UmetaError, match="does not have its shipped sha256"):
        builtin_checkpoint("images")
    with pytest.raises(UmetaError, match="no built-in model for sound"):
        builtin_checkpoint("sound")


def test_the_estimators_use_the_builtin_image_model():
    learner = load_builtin("images")
    assert learner.image_shape == (1, 28, 28)
    images = make_glyphs(3, samples_per_class=6, first_class=5000).float_images().numpy()
    labels = MetaClusterer("builtin", n_clusters=3, device="cpu").fit_predict(images)
    assert labels.shape == (18,) and set(np.unique(labels)) <= {0, 1, 2}


def test_the_estimators_use_the_builtin_table_model_on_a_2d_array():
    from sklearn.datasets import make_blobs

    x, y = make_blobs(120, n_features=4, centers=3, cluster_std=0.5, random_state=0)
    x[5, 1] = np.nan  # a missing value is the model's to handle
    learner = load_builtin("tables")
    assert learner.image_shape == ()
    labels = MetaClusterer("builtin", n_clusters=3, device="cpu").fit_predict(x * 1000.0)
    from umeta.metrics import clustering_scores

    assert clustering_scores(y, labels)["ari"] > 0.9
