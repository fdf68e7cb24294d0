"""Benchmark scripts: the B2 scripts' helpers against references, subprocess smoke runs on
glyphs, and one-line errors (exit 2) for input the user can fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from conftest import REPO_ROOT, tiny_protonet_checkpoint
from umeta.metrics import auroc

BENCHMARKS = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import b2_anomaly  # noqa: E402
import b2_clustering  # noqa: E402
import b2_embedding  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny ProtoNet (conv4, 8 filters) meta-trained for 3 steps on 10 glyph classes."""
    return tiny_protonet_checkpoint(tmp_path_factory.mktemp("run"))


def run_script(name: str, out, *args: str) -> dict:
    """Run a benchmark script on glyphs (CPU, one process) and return its results file."""
    cmd = [sys.executable, str(BENCHMARKS / name), "--dataset", "glyphs", "--device", "cpu",
           "--jobs", "1", "--out", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # t-SNE's OpenMP threads crawl on a busy CPU
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for key in ("benchmark", "command", "commit", "device", "wall_s", "results"):
        assert key in doc
    assert doc["command"].startswith(name) and doc["wall_s"] > 0 and doc["dataset"] == "glyphs"
    for row in doc["results"]:
        assert {"method", "training", "setting", "metric", "mean", "ci95", "n_tasks"} <= set(row)
        assert np.isfinite(row["mean"]) and row["ci95"] >= 0
    return doc


def by_metric(doc: dict, metric: str) -> list[dict]:
    return [r for r in doc["results"] if r["metric"] == metric]


# ----------------------------------------------------------------------------- helpers

def test_knn_accuracy_equals_scikit_learn_leave_one_out():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(3, 30, 2, generator=gen)
    labels = torch.randint(0, 4, (3, 30), generator=gen)
    for k in (1, 4):  # k = 4 has vote ties: both break them towards the smallest label
        ours = b2_embedding.knn_accuracy(points, labels, k)
        for t in range(3):
            x, y = points[t].numpy(), labels[t].numpy()
            hits = [KNeighborsClassifier(k).fit(np.delete(x, i, 0), np.delete(y, i))
                    .predict(x[i:i + 1])[0] == y[i] for i in range(30)]
            assert ours[t].item() == pytest.approx(np.mean(hits))


def test_anomaly_tasks_hold_one_normal_class_and_other_classes_as_anomalies(tiny_images):
    fit, test, is_anomaly = b2_anomaly.sample_anomaly_tasks(tiny_images, 50, 3, 2, seed=1)
    assert fit.shape == (50, 3) and test.shape == (50, 10)
    np.testing.assert_array_equal(is_anomaly, [0] * 5 + [1] * 5)
    labels = tiny_images.labels
    for f, q in zip(fit, test):
        normal = labels[f[0]]
        assert (labels[f] == normal).all() and (labels[q[:5]] == normal).all()
        assert (labels[q[5:]] != normal).all() and len(set(labels[q[5:]].tolist())) <= 2
        assert len(set(f.tolist()) | set(q.tolist())) == 13  # no image twice
    again, _, _ = b2_anomaly.sample_anomaly_tasks(tiny_images, 50, 3, 2, seed=1)
    assert torch.equal(fit, again)
    with pytest.raises(b2_anomaly.UmetaError, match="K=8"):
        b2_anomaly.sample_anomaly_tasks(tiny_images, 5, 8, 2, seed=1)


def test_umeta_scores_equal_distances_to_the_nearest_normal_and_to_the_mean():
    gen = torch.Generator().manual_seed(0)
    fit, test = torch.randn(4, 5, 3, generator=gen), torch.randn(4, 7, 3, generator=gen)
    knn = b2_anomaly.umeta_scores(fit, test, "knn", n_neighbors=1, normalize=False, seed=0)
    proto = b2_anomaly.umeta_scores(fit, test, "prototype", n_neighbors=1, normalize=False, seed=0)
    np.testing.assert_allclose(knn, torch.cdist(test, fit).min(-1).values, rtol=1e-5)
    np.testing.assert_allclose(proto, (test - fit.mean(1, keepdim=True)).norm(dim=-1), rtol=1e-5)


@pytest.mark.parametrize("name", b2_anomaly.BASELINES)
def test_baselines_rank_far_outliers_first(name):
    rng = np.random.default_rng(0)
    fit = rng.normal(size=(10, 5))
    test = np.concatenate([rng.normal(size=(10, 5)), rng.normal(size=(10, 5)) + 6.0])
    scores = b2_anomaly.baseline_scores(name, fit, test, n_neighbors=1, seed=0)
    assert auroc(np.repeat([0, 1], 10), scores) > 0.95


# ----------------------------------------------------------------------------- smoke runs

def test_b2_clustering_script(tmp_path, checkpoint):
    doc = run_script("b2_clustering.py", tmp_path / "c.json", "--checkpoint", checkpoint,
                     "--settings", "5x5", "--tasks", "3")
    assert doc["benchmark"] == "B2"
    rows = by_metric(doc, "clustering_accuracy")
    assert {r["method"] for r in rows} == {"umeta-labelled-protonet", *b2_clustering.BASELINES}
    assert all(20.0 <= r["mean"] <= 100.0 and r["n_tasks"] == 3 for r in rows)  # >= 1 of 5 right
    assert all(0.0 <= r["mean"] <= 1.0 for r in by_metric(doc, "nmi"))


def test_b2_clustering_script_with_fine_tuning(tmp_path, checkpoint):
    doc = run_script("b2_clustering.py", tmp_path / "c.json", "--checkpoint", checkpoint,
                     "--settings", "5x4", "--tasks", "2", "--no-baselines",
                     "--finetune-steps", "0,1", "--finetune-lr", "1e-3,1e-2")
    rows = by_metric(doc, "clustering_accuracy")
    base = "umeta-labelled-protonet"
    assert [r["method"] for r in rows] == [base, f"{base}+ft1@lr0.001", f"{base}+ft1@lr0.01"]
    assert "gain_vs_no_finetune" not in rows[0]
    for row, lr in zip(rows[1:], (1e-3, 1e-2)):
        assert row["finetune_steps"] == 1 and row["finetune_lr"] == lr
        assert row["gain_vs_no_finetune"] == pytest.approx(row["mean"] - rows[0]["mean"],
                                                           abs=1e-3)


def test_finetune_variants():
    assert b2_clustering.finetune_variants("0,5", "1e-4") == [(0, 1e-4, ""), (5, 1e-4, "+ft5")]
    assert b2_clustering.finetune_variants("3", "1e-4,1e-3") == [
        (3, 1e-4, "+ft3@lr0.0001"), (3, 1e-3, "+ft3@lr0.001")]


def test_b2_anomaly_script(tmp_path, checkpoint):
    doc = run_script("b2_anomaly.py", tmp_path / "a.json", "--checkpoint", checkpoint,
                     "--shots", "1,3", "--tasks", "4", "--anomaly-classes", "2")
    assert doc["benchmark"] == "B2-anomaly"
    assert doc["test_set_sizes"]["K=3"] == {"normal_test": 17, "anomalies": 17}
    rows = by_metric(doc, "auroc")
    methods = {s: {r["method"] for r in rows if r["setting"] == s} for s in ("K=1", "K=3")}
    umeta = {"umeta-labelled-protonet-knn", "umeta-labelled-protonet-prototype"}
    assert methods["K=3"] == umeta | set(b2_anomaly.BASELINES)
    assert methods["K=1"] == methods["K=3"] - {"lof-pixels"}  # LOF needs two normal images
    ranked = rows + by_metric(doc, "average_precision")
    assert len(ranked) == 2 * len(rows)
    assert all(0.0 <= r["mean"] <= 100.0 and r["n_tasks"] == 4 for r in ranked)
    k1 = {r["method"]: r["mean"] for r in rows if r["setting"] == "K=1"}
    assert k1["umeta-labelled-protonet-knn"] == k1["umeta-labelled-protonet-prototype"]


def test_b2_embedding_script(tmp_path, checkpoint):
    doc = run_script("b2_embedding.py", tmp_path / "e.json", "--checkpoint", checkpoint,
                     "--settings", "3x10", "--tasks", "3", "--quality-k", "3", "--knn-k", "3")
    assert doc["benchmark"] == "B2-embedding"
    methods = {"umeta-labelled-protonet", *b2_embedding.BASELINES}
    for metric in ("trustworthiness", "continuity", "knn_preservation", "distance_spearman",
                   "knn_accuracy", "clustering_accuracy"):
        rows = by_metric(doc, metric)
        assert {r["method"] for r in rows} == methods and all(r["n_tasks"] == 3 for r in rows)
        low, high = {"distance_spearman": (-1, 1), "knn_accuracy": (0, 100),
                     "clustering_accuracy": (100 / 3, 100)}.get(metric, (0, 1))
        assert all(low <= r["mean"] <= high for r in rows), metric


@pytest.mark.parametrize("script, args", [
    ("b7_one_shot.py", ["--checkpoint", "builtin", "--allow-invalid", "--runs", "missing.zip",
                        "--device", "cpu"]),
    ("b2_clustering.py", ["--dataset", "no-such-set", "--no-baselines", "--device", "cpu"]),
    ("b8_tables.py", ["--method", "no_such_module:load"]),
    ("b8_tables.py", ["--method", "umeta.table_method:load", "--method-option", "bogus=1"]),
])
def test_a_script_ends_a_user_error_in_one_line_with_status_2(tmp_path, script, args):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args,
                           "--out", str(tmp_path / "out.json")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.json").exists()
