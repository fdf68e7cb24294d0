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


#: A stand-in for `umeta.train.train` that takes 2 s and records that it ran.
FAKE_TRAINING = """
import os, sys, time
from pathlib import Path
import umeta.pretrained, umeta.train

def fake_train(cfg, progress=False):
    (Path(sys.argv[1]) / f"trained-{os.getpid()}").touch()
    checkpoints = Path(cfg.run.run_dir) / "checkpoints"
    checkpoints.mkdir(parents=True)
    time.sleep(2)
    (checkpoints / "last.safetensors").write_text("weights")

umeta.train.train = fake_train
print(umeta.pretrained.builtin_checkpoint())
"""


def test_two_first_uses_at_once_make_the_model_once(tmp_path):
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    stale = cache / "models" / f".builtin-glyphs-{umeta.pretrained.BUILTIN_STEPS}.tmp99999"
    stale.mkdir(parents=True)  # left by a first use that was killed
    env = {**os.environ, "UMETA_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", FAKE_TRAINING, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].strip().endswith("last.safetensors")
    assert len(list(tmp_path.glob("trained-*"))) == 1  # the second waited, then reused it
    assert not list((cache / "models").glob(".*tmp*"))
