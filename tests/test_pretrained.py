import numpy as np

import umeta.pretrained
from umeta.data import make_glyphs
from umeta.estimators import MetaClusterer


def test_builtin_model_is_made_once_and_used_by_the_estimators(tmp_path, monkeypatch):
    monkeypatch.setenv("UMETA_CACHE", str(tmp_path))
    monkeypatch.setattr(umeta.pretrained, "BUILTIN_STEPS", 3)
    path = umeta.pretrained.builtin_checkpoint()
    assert path.is_file() and not list((tmp_path / "models").glob(".*tmp*"))
    stamp = path.stat().st_mtime_ns
    images = make_glyphs(3, samples_per_class=6, first_class=5000).float_images().numpy()
    labels = MetaClusterer("builtin", n_clusters=3, device="cpu").fit_predict(images)
    assert labels.shape == (18,) and set(np.unique(labels)) <= {0, 1, 2}
    assert path.stat().st_mtime_ns == stamp  # reused, not retrained
