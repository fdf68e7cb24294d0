"""The cross-domain ablation runner and its minimal B6-style scorer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from conftest import REPO_ROOT
from umeta.data.procedural import make_procedural
from umeta.mainjob import score_tasks

BENCHMARKS = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import xdomain_ablation  # noqa: E402
from xdomain_score import XDomainScorer, load_xdomain  # noqa: E402


class PixelLearner(torch.nn.Module):
    """Embeds images as their flattened pixels: umeta's clustering then is k-means on pixels."""

    def embed(self, x):
        return x.flatten(1)


def write_set(folder, name, classes, first_class):
    data = make_procedural(classes, 12, first_class=first_class)
    np.savez_compressed(folder / f"{name}.npz", images=data.images[:, 0].numpy(),
                        labels=data.labels.numpy())
    return data


def test_load_xdomain_and_a_clear_error(tmp_path):
    data = write_set(tmp_path, "shapes", 6, 0)
    loaded = load_xdomain(tmp_path, "shapes")
    assert torch.equal(loaded.images, data.images) and torch.equal(loaded.labels, data.labels)
    assert loaded.image_shape == (1, 28, 28) and loaded.num_classes == 6
    with pytest.raises(Exception, match="no cross-domain set"):
        load_xdomain(tmp_path, "missing")


def test_scorer_baseline_is_sklearn_kmeans_and_gain_is_paired():
    data = make_procedural(8, 12, first_class=50)
    scorer = XDomainScorer({"a": data}, n_way=3, per_class=5, num_tasks=6, seed=1)
    tasks = scorer.tasks["a"]
    ref = np.stack([KMeans(3, init="k-means++", n_init=10, random_state=1)
                    .fit_predict(x) for x in tasks.images.flatten(2).numpy()])
    np.testing.assert_allclose(scorer.pixels["a"],
                               score_tasks(tasks.labels, ref)["clustering_accuracy"])
    out = scorer.score(PixelLearner())
    assert out["a"]["kmeans-pixels"]["mean"] == pytest.approx(scorer.pixels["a"].mean(), abs=1e-3)
    gain = out["a"]["umeta"]["mean"] - out["a"]["kmeans-pixels"]["mean"]
    assert out["a"]["gain"]["mean"] == pytest.approx(gain, abs=1e-3)
    assert out["summary"]["min_gain"] == out["summary"]["mean_gain"] == out["a"]["gain"]["mean"]


def test_summary_rows_cover_the_cross_domain_sets_only():
    def entry(u, p):
        return {"umeta": {"mean": u, "ci95": 1.0}, "kmeans-pixels": {"mean": p, "ci95": 1.0},
                "gain": {"mean": u - p, "ci95": 2.0}}

    scores = {"x": entry(60.0, 70.0), "y": entry(80.0, 60.0), "omniglot-evaluation": entry(90, 50)}
    rows = xdomain_ablation.result_rows("cfg", scores, list(scores), "5x10", 200)
    summary = {r["metric"]: r for r in rows if r["metric"].endswith("_vs_kmeans_pixels")}
    assert summary["min_gain_vs_kmeans_pixels"]["mean"] == -10.0
    assert summary["mean_gain_vs_kmeans_pixels"]["mean"] == 5.0
    assert summary["mean_gain_vs_kmeans_pixels"]["ci95"] == pytest.approx(8 ** 0.5 / 2, abs=1e-4)  # rounded to 4 places
    assert summary["min_gain_vs_kmeans_pixels"]["dataset"] == "x,y"
    assert len(rows) == 3 * 3 + 2


def test_the_runner_trains_scores_and_rescores(tmp_path):
    write_set(tmp_path, "shapes", 6, 1000)
    config = tmp_path / "tiny_glyphs.toml"
    config.write_text("""
[data]
dataset = "glyphs"
[model]
hidden = 8
[learner]
name = "psco"
options = {queue_size = 64, hidden_dim = 32, proj_dim = 16}
[tasks]
builder = "psco"
n_way = 16
q_query = 1
[tasks.options.augment]
stroke = [0.0, 1.0]
blur = [0.0, 1.0]
[optim]
steps = 2
meta_batch = 1
[run]
log_every = 1
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "src")}
    common = ["--config", str(config), "--part", "train", "--sets", "shapes", "--tasks", "4",
              "--xdomain-dir", str(tmp_path), "--device", "cpu", "--run-root",
              str(tmp_path / "runs"), "--no-progress"]
    for extra, out in (([], tmp_path / "a.json"), (["--score-only"], tmp_path / "b.json")):
        proc = subprocess.run([sys.executable, str(BENCHMARKS / "xdomain_ablation.py"), *common,
                               *extra, "--out", str(out)], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    trained, rescored = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert trained["runs"]["tiny_glyphs"]["steps"] == 2
    assert trained["runs"]["tiny_glyphs"]["config"]["tasks"]["options"]["augment"]["stroke"] == [
        0.0, 1.0]
    assert [r["metric"] for r in trained["results"]] == [
        "clustering_accuracy", "clustering_accuracy", "gain_vs_kmeans_pixels",
        "min_gain_vs_kmeans_pixels", "mean_gain_vs_kmeans_pixels"]
    assert [r["mean"] for r in trained["results"]] == [r["mean"] for r in rescored["results"]]
