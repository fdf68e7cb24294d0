"""B6 on whole sets (benchmarks/b6_whole_sets.py): subprocess runs on a tiny fake xdomain folder
(its README with sha256, as `b6_xdomain.load_xdomain` reads it) and a tiny checkpoint; the rows
against an independent recomputation on the same seeded draws; one-line errors (exit 2)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy import stats
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from conftest import REPO_ROOT, tiny_protonet_checkpoint
from umeta.adapt.layers import in_space
from umeta.build import load_learner
from umeta.checkpoint import read_checkpoint
from umeta.estimators import MetaClusterer

SCRIPT = REPO_ROOT / "benchmarks" / "b6_whole_sets.py"
SPACE = "embedding+block2"  # not the default space: the rows must say it and use it
PIXELS = "kmeans-pixels"

# alpha: 5 pixel clusters (templates + small noise) of 12 images; 2 images of each carry the next
# class's label, so k-means on pixels finds the templates and its accuracy depends on the draw.
ALPHA_CLASSES, ALPHA_PER_CLASS, ALPHA_FLIPPED = 5, 12, 2
# beta: pure noise, 4 labels x 12 images: every method's clustering is arbitrary, so its rows
# pin down exactly which images, k, seed and space were used.
BETA_CLASSES, BETA_PER_CLASS = 4, 12


def _fake_xdomain(folder) -> dict[str, np.ndarray]:
    """alpha.npz, beta.npz and a README that lists their sha256; returns alpha's template ids."""
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (ALPHA_CLASSES, 28, 28))
    template_of = np.repeat(np.arange(ALPHA_CLASSES), ALPHA_PER_CLASS)
    alpha = np.clip(templates[template_of] + rng.normal(0, 10, (len(template_of), 28, 28)),
                    0, 255).astype(np.uint8)
    alpha_labels = template_of.copy()
    for c in range(ALPHA_CLASSES):
        alpha_labels[c * ALPHA_PER_CLASS:c * ALPHA_PER_CLASS + ALPHA_FLIPPED] = (
            (c + 1) % ALPHA_CLASSES)
    beta = rng.integers(0, 256, (BETA_CLASSES * BETA_PER_CLASS, 28, 28)).astype(np.uint8)
    beta_labels = np.repeat(np.arange(BETA_CLASSES), BETA_PER_CLASS)
    lines = ["| name | source | sha256 of npz |", "|---|---|---|"]
    for name, images, labels in (("alpha", alpha, alpha_labels), ("beta", beta, beta_labels)):
        path = folder / f"{name}.npz"
        np.savez_compressed(path, images=images, labels=labels.astype(np.int64))
        lines.append(f"| `{name}` | made up | `{hashlib.sha256(path.read_bytes()).hexdigest()}` |")
    (folder / "README.md").write_text("\n".join(lines) + "\n")
    return {"alpha": template_of}


@pytest.fixture(scope="module")
def xdomain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xdomain")
    return folder, _fake_xdomain(folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny ProtoNet (conv4, 8 filters) meta-trained for 3 steps on 10 glyph classes."""
    return tiny_protonet_checkpoint(tmp_path_factory.mktemp("run"))


def run_script(out, *args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread, as in `_one_thread`
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def results(out, *args: str) -> dict:
    proc = run_script(out, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory, xdomain, checkpoint):
    """3 draws of 40 images of each set (alpha holds 60, beta 48), the checkpoint in SPACE."""
    folder, _ = xdomain
    out = tmp_path_factory.mktemp("out") / "whole.json"
    args = ("--checkpoint", checkpoint, "--space", SPACE, "--images", "40", "--subsamples", "3",
            "--data-dir", str(folder))
    return results(out, *args), args


def load(folder, name):
    with np.load(folder / f"{name}.npz") as npz:
        return npz["images"], npz["labels"]


def draw(n: int, images: int, index: int) -> np.ndarray:
    """The script's draw ``index``: ``images`` distinct images (at most all n), seeded by index."""
    return np.random.default_rng(index).choice(n, min(images, n), replace=False)


def hungarian_percent(truth, pred) -> float:
    """Accuracy (%) under the best one-to-one matching of clusters to classes."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    counts = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(counts, (t, p), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return 100 * counts[rows, cols].sum() / len(truth)


def sklearn_kmeans_percent(images, labels, k) -> float:
    pred = KMeans(k, n_init=10, random_state=0).fit_predict(
        images.reshape(len(images), -1).astype(np.float64))
    return hungarian_percent(labels, pred)


def t_half_width(values) -> float:
    """Half-width of the 95% Student-t interval of the mean."""
    v = np.asarray(values, dtype=np.float64)
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


@contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rows_of(doc, dataset):
    return {r["method"]: r for r in doc["results"] if r["dataset"] == dataset}


# ----------------------------------------------------------------------------- results file

def test_results_file_has_a_row_per_set_and_method(run, checkpoint):
    doc, _ = run
    assert doc["benchmark"] == "B6-whole-sets"
    assert doc["command"].startswith("b6_whole_sets.py --checkpoint ")
    assert doc["commit"] and doc["device"] and doc["wall_s"] > 0 and doc["seed"] == 0
    assert (doc["images"], doc["subsamples"], doc["space"]) == (40, 3, SPACE)
    assert [(r["dataset"], r["method"]) for r in doc["results"]] == [
        (s, m) for s in ("alpha", "beta") for m in (checkpoint, PIXELS)]
    for row in doc["results"]:
        k = ALPHA_CLASSES if row["dataset"] == "alpha" else BETA_CLASSES
        assert row["metric"] == "clustering_accuracy"
        assert row["setting"] == f"{row['dataset']} {k}x~{40 // k}"
        assert row["n_tasks"] == 3 and len(row["per_draw"]) == 3
        assert all(0.0 <= v <= 100.0 for v in row["per_draw"])
        assert 0.0 <= row["mean"] <= 100.0 and row["ci95"] >= 0.0
        assert row["mean"] == pytest.approx(np.mean(row["per_draw"]), abs=0.01)
        assert row["ci95"] == pytest.approx(t_half_width(row["per_draw"]), abs=0.05)
        if row["method"] == PIXELS:
            assert row["training"] == "none" and row["space"] is None
        else:  # the checkpoint is a labelled ProtoNet
            assert row["training"] == "supervised" and row["space"] == SPACE


def test_kmeans_on_pixels_equals_sklearn_kmeans_and_hungarian_on_the_seeded_draws(run, xdomain):
    doc, _ = run
    folder, template_of = xdomain
    images, labels = load(folder, "alpha")
    expected = []
    for index in range(3):
        idx = draw(len(images), 40, index)
        assert len(set(idx.tolist())) == 40
        # every template is drawn, so k-means's best partition is the templates, for any method
        assert len(np.unique(template_of["alpha"][idx])) == ALPHA_CLASSES
        score = sklearn_kmeans_percent(images[idx], labels[idx], ALPHA_CLASSES)
        assert score == pytest.approx(hungarian_percent(labels[idx], template_of["alpha"][idx]))
        expected.append(round(score, 2))
    assert len(set(expected)) > 1  # the draws differ, and so do their scores
    row = rows_of(doc, "alpha")[PIXELS]
    assert row["per_draw"] == pytest.approx(expected, abs=1e-9)
    assert row["mean"] == pytest.approx(np.mean(expected), abs=1e-3)
    assert row["ci95"] == pytest.approx(t_half_width(expected), abs=1e-3)


def test_every_row_clusters_its_draws_into_all_the_sets_classes(run, xdomain, checkpoint):
    """Recomputed on noise, where any slip (other images, k, seed or space) changes the score."""
    doc, _ = run
    folder, _ = xdomain
    learner = in_space(load_learner(checkpoint, "cpu"), SPACE)
    for name in ("alpha", "beta"):
        images, labels = load(folder, name)
        k = len(np.unique(labels))
        expected = {checkpoint: [], PIXELS: []}
        with _one_thread():
            for index in range(3):
                idx = draw(len(images), 40, index)
                for method, model in ((checkpoint, learner), (PIXELS, None)):
                    pred = MetaClusterer(model, n_clusters=k, random_state=index, device="cpu"
                                         ).fit_predict(images[idx])
                    assert len(np.unique(pred)) <= k
                    expected[method].append(round(hungarian_percent(labels[idx], pred), 2))
        rows = rows_of(doc, name)
        for method, values in expected.items():
            assert rows[method]["per_draw"] == pytest.approx(values, abs=1e-9), (name, method)


def test_draw_i_is_the_same_whatever_the_number_of_draws(run, tmp_path):
    doc, args = run
    again = results(tmp_path / "two.json", *args[:-4], "--subsamples", "2", *args[-2:])
    assert again["subsamples"] == 2
    assert len(again["results"]) == len(doc["results"])
    for first, second in zip(doc["results"], again["results"]):
        assert (second["dataset"], second["method"]) == (first["dataset"], first["method"])
        assert second["n_tasks"] == 2 and second["per_draw"] == first["per_draw"][:2]


def test_more_images_than_a_set_holds_clusters_the_whole_set(xdomain, checkpoint, tmp_path):
    folder, template_of = xdomain
    doc = results(tmp_path / "all.json", "--checkpoint", checkpoint, "--images", "1000",
                  "--subsamples", "2", "--space", "embedding", "--data-dir", str(folder))
    images, labels = load(folder, "alpha")
    whole = round(sklearn_kmeans_percent(images, labels, ALPHA_CLASSES), 2)
    assert whole == pytest.approx(100 * (1 - ALPHA_FLIPPED / ALPHA_PER_CLASS), abs=0.01)
    row = rows_of(doc, "alpha")[PIXELS]
    assert row["n_tasks"] == 2 and row["per_draw"] == pytest.approx([whole, whole], abs=1e-9)
    assert row["ci95"] == 0.0
    # the setting says how many images a class had on average: those drawn, not those asked for
    assert row["setting"] == f"alpha {ALPHA_CLASSES}x~{60 // ALPHA_CLASSES}"
    assert rows_of(doc, "beta")[checkpoint]["space"] == "embedding"


# ----------------------------------------------------------------------------- user errors

def _tampered(folder, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(folder, copy)
    np.savez_compressed(copy / "beta.npz", images=np.zeros((4, 28, 28), np.uint8),
                        labels=np.arange(4))
    return copy


def _trained_on_beta(checkpoint, folder, tmp_path) -> str:
    """A copy of the checkpoint whose config says it was meta-trained on a folder that holds
    beta.npz under another name."""
    seen = tmp_path / "seen"
    seen.mkdir()
    shutil.copy(folder / "beta.npz", seen / "innocent.npz")
    tensors, meta = read_checkpoint(checkpoint)
    meta["config"]["data"].update(dataset="omniglot", data_dir=str(seen))
    path = tmp_path / "leaky.safetensors"
    save_file(tensors, str(path), metadata={"umeta": json.dumps(meta)})
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("no checkpoint", "name at least one --checkpoint"),
    ("missing checkpoint", "checkpoint 'missing.safetensors' not found"),
    ("unknown space", "unknown embedding space 'layer9'"),
    ("missing folder", "README.md not found"),
    ("changed set", "beta.npz has sha256"),
    ("trained on a set", "'beta'"),
    ("one image", "--images must be at least 2"),
    ("no draws", "--subsamples at least 1"),
])
def test_a_user_error_ends_in_one_line_with_status_2(xdomain, checkpoint, tmp_path, case,
                                                     message):
    folder, _ = xdomain
    data = ["--data-dir", str(folder)]
    args = {"no checkpoint": data,
            "missing checkpoint": ["--checkpoint", "missing.safetensors", *data],
            "unknown space": ["--checkpoint", checkpoint, "--space", "layer9", *data],
            "missing folder": ["--checkpoint", checkpoint, "--data-dir", str(tmp_path / "no")],
            "changed set": ["--checkpoint", checkpoint, "--data-dir",
                            str(_tampered(folder, tmp_path))],
            "trained on a set": ["--checkpoint", _trained_on_beta(checkpoint, folder, tmp_path),
                                 *data],
            "one image": ["--checkpoint", checkpoint, "--images", "1", *data],
            "no draws": ["--checkpoint", checkpoint, "--subsamples", "0", *data]}[case]
    proc = run_script(tmp_path / "out.json", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("b6_whole_sets.py: error: "), proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.json").exists()


# ----------------------------------------------------------------------------- real sets

@pytest.mark.realdata
def test_real_sets_each_give_rows_with_all_their_classes(shared_data, checkpoint, tmp_path):
    """The default --data-dir (``$UMETA_SHARED_DATA/xdomain`` or ../shared/data/xdomain)."""
    if not (shared_data / "xdomain").is_dir():
        pytest.skip("no xdomain folder")
    doc = results(tmp_path / "real.json", "--checkpoint", checkpoint, "--images", "60",
                  "--subsamples", "2", "--space", "embedding")
    classes = {"sklearn_digits": 10, "notmnist": 10, "fashion_mnist": 10, "quickdraw6": 6}
    assert {r["dataset"] for r in doc["results"]} == set(classes)
    assert len(doc["results"]) == 2 * len(classes)
    for row in doc["results"]:
        k = classes[row["dataset"]]
        assert row["setting"] == f"{row['dataset']} {k}x~{60 // k}" and row["n_tasks"] == 2
        # k clusters of k classes: the best matching holds at least 1/k of the images
        assert all(100 / k - 0.01 <= v <= 100.0 for v in row["per_draw"])
