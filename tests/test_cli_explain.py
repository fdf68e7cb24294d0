"""Subprocess tests of `umeta explain`, `umeta robustness` and the confidence column of
`umeta cluster`, with their one-line errors (exit status 2)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from test_cli import assert_user_error, umeta

from umeta.data import make_glyphs


@pytest.fixture(scope="module")
def glyph_npz(tmp_path_factory):
    """4 glyph classes x 8 images (28x28 uint8, ink 255) with labels."""
    glyphs = make_glyphs(4, samples_per_class=8, image_size=28, first_class=3000)
    path = tmp_path_factory.mktemp("npz") / "glyphs.npz"
    np.savez(path, X=glyphs.images.numpy(), y=glyphs.labels.numpy())
    return path


@pytest.fixture(scope="module")
def blobs_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.5, (20, 5)) for c in (0.0, 4.0, 8.0)])
    path = tmp_path_factory.mktemp("blobs") / "blobs.npz"
    np.savez(path, X=x)
    return path


def read_rows(path):
    return list(csv.DictReader(path.open(newline="")))


@pytest.mark.parametrize("data", ["glyph_npz", "blobs_npz"])
def test_explain_writes_the_csv_and_the_figure(data, request, tmp_path):
    out, figure = tmp_path / "explain.csv", tmp_path / "explain.png"
    proc = umeta("explain", str(request.getfixturevalue(data)), "--n-clusters", "3",
                 "--checkpoint", "none", "--examples", "2", "--out", str(out), "--figure",
                 str(figure), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert list(rows[0]) == ["id", "cluster", "confidence", "prototype", "typical", "ambiguous"]
    assert sum(int(r["prototype"]) for r in rows) == 3
    for c in range(3):
        members = [r for r in rows if int(r["cluster"]) == c]
        ranks = sorted(int(r["typical"]) for r in members if int(r["typical"]))
        assert ranks == [1, 2]
        first = next(r for r in members if int(r["typical"]) == 1)
        assert float(first["confidence"]) == max(float(r["confidence"]) for r in members)
        worst = next(r for r in members if int(r["ambiguous"]) == 1)
        assert float(worst["confidence"]) == min(float(r["confidence"]) for r in members)
    assert all(-1 <= float(r["confidence"]) <= 1 for r in rows)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert proc.stdout.count("prototype") == 3 and f"wrote {out}" in proc.stdout


def test_cluster_writes_the_same_confidence_as_explain(blobs_npz, tmp_path):
    args = [str(blobs_npz), "--n-clusters", "3", "--checkpoint", "none"]
    assert umeta("cluster", *args, "--out", str(tmp_path / "c.csv")).returncode == 0
    assert umeta("explain", *args, "--out", str(tmp_path / "e.csv"), "--figure",
                 str(tmp_path / "e.png")).returncode == 0
    clustered, explained = read_rows(tmp_path / "c.csv"), read_rows(tmp_path / "e.csv")
    assert [(r["cluster"], r["confidence"]) for r in clustered] == \
        [(r["cluster"], r["confidence"]) for r in explained]


@pytest.mark.parametrize("args, fragment", [
    (["--examples", "0"], "--examples 0 must be an integer >= 1"),
    (["--figure", "x.jpg"], "--figure 'x.jpg' must end in .png"),
    (["--n-clusters", "0"], "--n-clusters 0"),
])
def test_explain_bad_input_is_one_line(args, fragment, blobs_npz, tmp_path):
    assert_user_error(umeta("explain", str(blobs_npz), "--checkpoint", "none", "--out",
                            str(tmp_path / "e.csv"), *args, cwd=tmp_path), fragment)


def test_explain_missing_data_is_one_line(tmp_path):
    assert_user_error(umeta("explain", str(tmp_path / "missing.npz"), "--out",
                            str(tmp_path / "e.csv"), "--figure", str(tmp_path / "e.png")),
                      "missing.npz")


def test_robustness_on_glyphs_with_the_builtin_model(tmp_path):
    out, figure = tmp_path / "r.json", tmp_path / "r.png"
    proc = umeta("robustness", "--dataset", "glyphs", "--tasks", "3", "--attack-tasks", "2",
                 "--corruptions", "blur,shift", "--severities", "1,5", "--eps", "8",
                 "--attack-steps", "2", "--n-way", "3", "--q-query", "3", "--per-class", "3",
                 "--device", "cpu", "--out", str(out), "--figure", str(figure), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "robustness" and doc["dataset"] == "glyphs"
    assert doc["settings"]["eps"] == [8 / 255] and doc["settings"]["attack_steps"] == 2
    metrics = {r["metric"] for r in doc["results"]}
    assert metrics == {"accuracy", "clustering_accuracy", "ce", "mce"}
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert "mCE of umeta relative to pixels" in proc.stdout


def test_robustness_converts_a_folder_of_dark_ink_to_the_models_polarity(tmp_path):
    from PIL import Image

    glyphs = make_glyphs(10, samples_per_class=6, image_size=28, first_class=3100)
    for i, (image, label) in enumerate(zip(glyphs.images.numpy(), glyphs.labels.numpy())):
        folder = tmp_path / "scans" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - image[0]).save(folder / f"{i}.png")  # dark ink on white paper
    proc = umeta("robustness", "--dataset", str(tmp_path / "scans"), "--tasks", "2",
                 "--attack-tasks", "0", "--corruptions", "blur", "--severities", "1",
                 "--n-way", "2", "--q-query", "2", "--per-class", "3", "--device", "cpu",
                 "--out", str(tmp_path / "r.json"), "--figure", str(tmp_path / "r.png"),
                 "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "inverted (light background detected" in proc.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--severities", "0"], "the clean cell (0) is always run"),
    (["--severities", "one"], "--severities takes comma-separated integers"),
    (["--eps", "x"], "--eps takes comma-separated numbers"),
    (["--eps", "300"], "PGD radii must be in (0, 1]"),
    (["--corruptions", "fog"], "unknown corruption 'fog'"),
    (["--tasks", "1"], "--tasks 1 must be an integer >= 2"),
    (["--attack", "fgsm"], "unknown --attack 'fgsm'"),
    (["--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
    (["--out", "r.txt"], "--out 'r.txt' must end in .json"),
    (["--checkpoint", "missing.safetensors"], "not found"),
])
def test_robustness_bad_input_is_one_line(args, fragment, tmp_path):
    base = ["--dataset", "glyphs", "--tasks", "2", "--device", "cpu"]
    assert_user_error(umeta("robustness", *base, *args, cwd=tmp_path), fragment)


@pytest.mark.realdata
def test_the_readme_explain_figure_script(shared_data, tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT

    figure = tmp_path / "explain.png"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "explain_figure.py"),
                           "--data-dir", str(shared_data / "omniglot"), "--figure", str(figure)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert figure.read_bytes()[:4] == b"\x89PNG" and proc.stdout.count("prototype") == 6
