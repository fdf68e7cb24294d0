"""`umeta compare`: the label-free criteria against references, compare_models, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import adjusted_rand_score, silhouette_score

from conftest import REPO_ROOT
from test_cli import assert_user_error, checkpoint, umeta  # noqa: F401 (a fixture)
from umeta.adapt.cluster import cluster_dataset
from umeta.adapt.selection import (CandidateFeatures, augmented_views, bootstrap_scores,
                                   consistency, partition, retrieval, score_candidates,
                                   stability)
from umeta.compare import (CandidateResult, Comparison, basic_interval, compare_models,
                           compare_table_models, parse_candidates)
from umeta.data import make_glyphs
from umeta.errors import UmetaError
from umeta.numeric import standardize_columns
from umeta.params import ParamError


def blobs(n_per: int = 10, k: int = 3, d: int = 4, spread: float = 0.05, seed: int = 0):
    """k well-separated Gaussian blobs (n_per each) in d dimensions, and their labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = 10 * torch.eye(k, d)
    x = centres.repeat_interleave(n_per, 0) + spread * torch.randn(k * n_per, d, generator=gen)
    return x, np.repeat(np.arange(k), n_per)


def square_images(n: int = 30, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """n 16x16 images of three classes: a bright 3x3 square in one of three places."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 16, 16)
    for i in range(n):
        r = 1 + 5 * (i % 3)
        x[i, 0, r:r + 3, r:r + 3] = 0.6 + 0.4 * torch.rand(3, 3, generator=gen)
    return x, np.arange(n) % 3


# ----------------------------------------------------------------------------- criteria

def test_consistency_is_the_mean_ari_of_each_views_nearest_centre_assignment():
    feats = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    labels = np.array([0, 0, 1, 1])
    centers = torch.tensor([[0.05], [5.05]])
    same = feats[None]
    moved = torch.tensor([[[0.0], [4.9], [5.0], [5.1]]])  # image 1's view lands in cluster 1
    assert consistency(feats, same, labels, centers) == pytest.approx(1.0)
    expected = adjusted_rand_score(labels, [0, 1, 1, 1])
    assert consistency(feats, moved, labels, centers) == pytest.approx(expected)
    both = torch.cat([same, moved])
    assert consistency(feats, both, labels, centers) == pytest.approx((1 + expected) / 2)


def test_consistency_after_spectral_assigns_each_view_its_nearest_images_cluster():
    feats = torch.tensor([[0.0], [1.0], [2.0], [9.0], [10.0]])
    labels = np.array([0, 0, 1, 1, 1])  # a partition no centre would draw
    centers = torch.tensor([[0.5], [7.0]])
    views = torch.tensor([[[0.1], [1.2], [2.6], [9.0], [10.0]]])
    # nearest images: 0, 1, 2, 3, 4 -> the labels themselves; nearest centres would move 2
    assert consistency(feats, views, labels, centers, "spectral") == pytest.approx(1.0)
    assert consistency(feats, views, labels, centers) == pytest.approx(
        adjusted_rand_score(labels, [0, 0, 0, 1, 1]))


def test_a_learned_candidate_is_partitioned_by_the_auto_step_of_umeta_cluster():
    from sklearn.datasets import make_circles

    x, y = make_circles(200, noise=0.03, factor=0.4, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    learned = CandidateFeatures(x, x[None], learned=True)
    labels, centers, algorithm = partition(learned, x, 2, seed=1)
    assert algorithm == "spectral" and adjusted_rand_score(y, labels) == 1.0
    expected = cluster_dataset(None, x, 2, seed=1, algorithm="spectral")
    assert np.array_equal(labels, expected.labels.numpy())
    torch.testing.assert_close(centers, expected.centers)
    raw = partition(CandidateFeatures(x, x[None]), x, 2, seed=1)
    assert raw[2] == "kmeans" and np.array_equal(raw[0], cluster_dataset(None, x, 2, seed=1)
                                                 .labels.numpy())
    assert partition(learned, x[:39], 4, seed=1)[2] == "kmeans"  # under 10 a cluster
    scores, parts = score_candidates({"model": learned}, 2, criteria=("silhouette",), seed=1)
    assert np.array_equal(parts["model"], labels)


def test_retrieval_counts_views_whose_nearest_image_is_their_own():
    feats = torch.tensor([[0.0], [1.0], [2.0]])
    views = torch.tensor([[[0.1], [1.9], [1.1]]])  # nearest: 0 (own), 2, 1
    assert retrieval(feats, views) == pytest.approx(1 / 3)
    # a resample with image 0 twice: a view of it finding either copy is a hit
    twice = torch.tensor([[0.0], [0.0], [2.0]])
    assert retrieval(twice, torch.tensor([[[0.0], [0.1], [2.0]]]),
                     torch.tensor([0, 0, 2])) == pytest.approx(1.0)


def test_stability_is_one_for_separated_blobs_and_lower_for_noise():
    x, _ = blobs(20, 3)
    assert stability(x, 3, seed=0) == pytest.approx(1.0)
    noise = torch.randn(60, 8, generator=torch.Generator().manual_seed(1))
    assert stability(noise, 6, seed=0) < 0.8
    assert stability(x[:5], 3) == 0.0  # halves smaller than k


def test_scores_use_the_clustering_of_cluster_dataset_and_references():
    x, truth = blobs(10, 3)
    gen = torch.Generator().manual_seed(2)
    noise = torch.randn(30, 4, generator=gen)
    jitter = 0.5 * torch.randn(2, 30, 4, generator=gen)  # views: the points moved a little
    cands = {"blobs": CandidateFeatures(x, x[None] + jitter),
             "noise": CandidateFeatures(noise, noise[None] + jitter)}
    scores, parts = score_candidates(cands, 3, seed=3)
    for name, cand in cands.items():
        expected = cluster_dataset(None, cand.feats, 3, seed=3).labels.numpy()
        assert np.array_equal(parts[name], expected)
        assert scores[name]["silhouette"] == pytest.approx(
            silhouette_score(cand.feats.numpy(), parts[name]), abs=1e-5)
    assert adjusted_rand_score(truth, parts["blobs"]) == 1.0
    consensus = adjusted_rand_score(parts["blobs"], parts["noise"])
    assert scores["blobs"]["consensus"] == pytest.approx(consensus)
    assert scores["noise"]["consensus"] == pytest.approx(consensus)
    for crit in ("consistency", "stability", "silhouette"):  # retrieval: instances, not blobs
        assert scores["blobs"][crit] > scores["noise"][crit], crit
    with pytest.raises(UmetaError, match="unknown criterion 'accuracy'"):
        score_candidates(cands, 3, criteria=("accuracy",))


def test_bootstrap_is_seeded_and_shaped_resamples_by_candidates():
    x, _ = blobs(10, 3)
    cands = {"a": CandidateFeatures(x, x[None]), "b": CandidateFeatures(-x, -x[None])}
    first = bootstrap_scores(cands, 3, "consistency", 4, seed=5)
    assert first.shape == (4, 2)
    assert np.array_equal(first, bootstrap_scores(cands, 3, "consistency", 4, seed=5))


def test_basic_interval_reflects_the_resample_quantiles_about_the_estimate():
    boot = np.random.default_rng(0).normal(2.0, 1.0, size=(1000, 2))
    point = np.array([1.0, 3.0])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    assert np.allclose(basic_interval(point, boot), np.stack([2 * point - high,
                                                              2 * point - low], 1))


def test_augmented_views_are_seeded_and_change_the_images():
    x, _ = square_images()
    views = augmented_views(x, 2, seed=1)
    assert views.shape == (2, *x.shape)
    assert torch.equal(views, augmented_views(x, 2, seed=1))
    assert not torch.equal(views[0], x) and not torch.equal(views[0], views[1])


# ----------------------------------------------------------------------------- candidates

def test_parse_candidates_names_spaces_and_errors(tmp_path):
    ckpt = tmp_path / "mine.safetensors"
    ckpt.write_bytes(b"")
    found = parse_candidates(["psco"], [str(ckpt), f"{ckpt}@block2", "none", "builtin"])
    assert [(c.name, c.kind, c.space) for c in found] == [
        ("psco", "trained", "embedding"), ("mine", "checkpoint", "embedding"),
        ("mine@block2", "checkpoint", "block2"), ("pixels", "raw", "embedding"),
        ("builtin", "checkpoint", "embedding")]
    for learners, checkpoints, message in [
            (["protonets"], ["none"], "unknown learner 'protonets'; choose from: protonet, "
                                      "maml, psco"),
            (["psco"], [], "at least 2 candidates; got 1 (psco)"),
            ([], [], "at least 2 candidates; got 0"),
            (["psco", "psco"], [], "'psco' is named twice"),
            (["psco"], ["missing.safetensors"], "checkpoint 'missing.safetensors' not found"),
            (["psco"], ["none@block2"], "the raw pixels have no embedding spaces"),
            (["psco"], ["builtin@layer9"], "unknown embedding space 'layer9'")]:
        with pytest.raises(UmetaError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_candidates(learners, checkpoints)


def test_compare_models_ranks_by_the_criterion_and_never_reads_the_labels(checkpoint):
    glyphs = make_glyphs(4, samples_per_class=8, first_class=1000)
    images, y = glyphs.images, glyphs.labels.numpy()
    common = dict(learners=(), checkpoints=[checkpoint, f"{checkpoint}@block1",
                                            "none"], n_clusters=4, n_boot=6, device="cpu")
    result = compare_models(images, labels=y, **common)
    names = [c.name for c in result.candidates]
    assert names == ["best", "best@block1", "pixels"]
    crit = [result.result(n).scores["consistency"] for n in names]
    order = np.argsort(crit)[::-1]
    assert result.recommended == names[order[0]] and result.runner_up == names[order[1]]
    assert result.margin == pytest.approx(crit[order[0]] - crit[order[1]])
    assert sum(c.first_share for c in result.candidates) == pytest.approx(1.0)
    truth = {c.name: c.truth["clustering_accuracy"] for c in result.candidates}
    assert result.labelled_best == max(truth, key=truth.get)
    # the labels are for scoring only: shuffled labels change no criterion and no choice
    shuffled = compare_models(images, labels=np.random.default_rng(0).permutation(y), **common)
    assert shuffled.recommended == result.recommended
    for a, b in zip(result.candidates, shuffled.candidates):
        assert a.scores == b.scores and a.ci95 == b.ci95
    unlabelled = compare_models(images, **common)
    assert unlabelled.labelled_best is None and unlabelled.candidates[0].truth is None
    assert "consistency [95% CI]" in result.table() and "accuracy %" in result.table()
    assert "accuracy %" not in unlabelled.table()


def test_compare_models_trains_each_learner_without_labels_on_the_images(tmp_path):
    glyphs = make_glyphs(4, samples_per_class=10, first_class=1000)
    result = compare_models(glyphs.images, learners=("protonet", "maml", "psco"),
                            checkpoints=["none"], n_clusters=4, budget_s=60, max_steps=2,
                            n_boot=0, device="cpu", run_dir=tmp_path / "runs",
                            source="glyph test images")
    for name in ("protonet", "maml", "psco"):
        cand = result.result(name)
        assert cand.training["steps"] == 2 and "meta-trained without labels" in cand.description
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        assert config["data"]["dataset"] == "glyph test images"
        assert config["tasks"]["builder"] == ("psco" if name == "psco" else "umtra")
        assert (tmp_path / "runs" / name / "checkpoints" / "last.safetensors").is_file()
    assert result.margin_ci95 is None and "uncertainty not measured" in result.verdict()[1]
    again = compare_models(glyphs.images, learners=("protonet",), checkpoints=["none"],
                           n_clusters=4, budget_s=60, max_steps=2, n_boot=0, device="cpu")
    own = [c for c in again.result("protonet").scores if c != "consensus"]  # not the others'
    assert all(again.result("protonet").scores[c] == result.result("protonet").scores[c]
               for c in own)  # max_steps makes a run repeatable
    assert again.result("protonet").training["run_dir"] is None  # a temporary folder


def test_the_number_of_clusters_is_the_median_estimate_when_not_given():
    x, _ = square_images(30)
    result = compare_models(x, learners=(), checkpoints=["none", "builtin"], n_boot=0,
                            device="cpu", k_range=(2, 5))
    assert set(result.k_estimates) == {"pixels", "builtin"}
    assert result.n_clusters == int(np.median(list(result.k_estimates.values())))


def _comparison(share: float, low: float, accuracies=(80.0, 70.0)) -> Comparison:
    cands = [CandidateResult(name, "checkpoint", "embedding", name, {"consistency": score},
                             (score - 0.1, score + 0.1), first, {"clustering_accuracy": acc,
                                                                 "nmi": 0.5, "ari": 0.5})
             for name, score, first, acc in zip(("a", "b"), (0.9, 0.8), (share, 1 - share),
                                                accuracies)]
    best = max(cands, key=lambda c: c.truth["clustering_accuracy"]).name
    return Comparison(cands, "consistency", "a", "b", 0.1, (low, 0.2), 20, 2, None, 10, 10,
                      best, [], 1.0, 0)


def test_the_verdict_calls_a_winner_clear_only_with_a_positive_interval_and_a_stable_first():
    clear = _comparison(share=0.9, low=0.05).verdict()
    assert clear[1].startswith("ahead of b by +0.100 [+0.050, +0.200]")
    assert "first in 90% of 20 resamples" in clear[1] and "the labels agree" in clear[2]
    for share, low in ((0.6, 0.05), (0.9, -0.01)):
        assert _comparison(share, low).verdict()[1].startswith("not a clear winner")
    disagree = _comparison(0.9, 0.05, accuracies=(60.0, 70.0)).verdict()[2]
    assert disagree == ("the labels disagree: b has the highest clustering accuracy (70.0%), a "
                        "60.0% (-10.0 points)")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"budget_s": 0}, ParamError, "budget_s=0 must be a number > 0"),
    ({"n_clusters": 40}, UmetaError, "n_clusters"),
    ({"labels": [0, 1]}, UmetaError, "labels must be one per image: got 2"),
    ({"criterion": "accuracy"}, UmetaError, "unknown criterion 'accuracy'"),
    ({"n_boot": -1}, ParamError, "n_boot=-1 must be an integer >= 0"),
])
def test_compare_models_bad_arguments(kwargs, error, message):
    x, _ = square_images(30)
    args = {"learners": (), "checkpoints": ["none", "builtin"], "n_boot": 0, "device": "cpu",
            **kwargs}
    with pytest.raises(error, match=message):
        compare_models(x, **args)


def test_compare_models_refuses_vectors_and_nan():
    with pytest.raises(UmetaError, match="takes images"):
        compare_models(np.zeros((10, 5)), learners=(), checkpoints=["none", "builtin"])
    x, _ = square_images(30)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(UmetaError, match="NaN"):
        compare_models(x, learners=(), checkpoints=["none", "builtin"])


# ----------------------------------------------------------------------------- tables

def table_blobs(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Three blobs of 40 rows in 5 columns of different scales, some values missing."""
    x, y = blobs(40, 3, 5, spread=1.0, seed=seed)
    x = x.numpy() * np.array([1.0, 100.0, 0.01, 1.0, 5.0], dtype=np.float32)
    x[::7, 3] = np.nan  # a column of noise
    return x, y


def test_compare_table_models_ranks_by_stability_and_never_reads_the_labels():
    x, y = table_blobs()
    common = {"checkpoints": ["builtin", "none"], "n_clusters": 3, "n_boot": 5, "device": "cpu"}
    result = compare_table_models(x, labels=y, **common)
    assert [c.name for c in result.candidates] == ["builtin", "values"]
    assert result.criterion == "stability" and result.unit == "rows" and result.budget_s == 0
    assert result.result("builtin").description.startswith(
        "built-in table model: table_encoder, meta-trained on past tables")
    assert result.result("values").description.startswith("raw values (missing ones median")
    assert result.result("values").truth["clustering_accuracy"] == 100.0
    # the raw candidate is k-means on the imputed, z-scored columns, scored as selection does
    raw = standardize_columns(x).float()
    assert result.result("values").scores["stability"] == pytest.approx(stability(raw, 3, 0))
    shuffled = compare_table_models(x, labels=np.random.default_rng(0).permutation(y), **common)
    assert shuffled.recommended == result.recommended
    for a, b in zip(result.candidates, shuffled.candidates):
        assert a.scores == b.scores and a.ci95 == b.ci95
    unlabelled = compare_table_models(x, **common)
    assert unlabelled.labelled_best is None and unlabelled.candidates[0].truth is None
    assert "resamples of the rows" in result.verdict()[1]


def test_beyond_its_trained_clusters_a_table_model_stands_for_its_standardised_values():
    x = table_blobs()[0][:, [0, 1, 2, 4]]  # no missing value: both z-scores are the same
    result = compare_table_models(x, checkpoints=["builtin", "none"], n_clusters=12,
                                  criteria=("stability", "silhouette"), n_boot=0, device="cpu")
    model, raw = result.result("builtin"), result.result("values")
    assert model.description.endswith("as umeta cluster does beyond the 10 clusters it trained on")
    # the values against the model's context (the whole of a short table) are the raw candidate's
    assert model.scores == pytest.approx(raw.scores, abs=1e-4)
    assert np.array_equal(model.labels, raw.labels)
    within = compare_table_models(x, checkpoints=["builtin", "none"], n_clusters=3, n_boot=0,
                                  criteria=("stability",), device="cpu")
    assert "standardised values" not in within.result("builtin").description


def test_compare_table_models_subsamples_long_tables_and_estimates_k():
    x, _ = table_blobs()
    result = compare_table_models(x, max_samples=60, n_boot=0, device="cpu", k_range=(2, 5))
    assert result.n_images == 120 and result.n_scored == 60
    assert result.notes == ["scored on a seeded subsample of 60 of the 120 rows"]
    assert set(result.k_estimates) == {"builtin", "values"}
    assert len(result.candidates[0].labels) == 60


def test_compare_table_models_bad_arguments(checkpoint):
    x, y = table_blobs()
    with pytest.raises(UmetaError, match="learns from many past tables"):
        parse_candidates(["protonet"], ["none"], "tables")
    with pytest.raises(UmetaError, match="one embedding space"):
        compare_table_models(x, checkpoints=["builtin@block2", "none"])
    with pytest.raises(UmetaError, match="is an image model; comparing tables needs table"):
        compare_table_models(x, checkpoints=[str(checkpoint), "none"], device="cpu")
    with pytest.raises(UmetaError, match="labels must be one per row: got 2"):
        compare_table_models(x, labels=[0, 1], device="cpu")
    with pytest.raises(UmetaError, match="the table has 3 row"):
        compare_table_models(x[:3], device="cpu")


def test_compare_cli_on_a_table(tmp_path):
    x, y = table_blobs()
    table = tmp_path / "rows.csv"
    lines = ["a,b,c,d,e,kind"] + [",".join("" if np.isnan(v) else f"{v:.4f}" for v in row)
                                  + f",k{label}" for row, label in zip(x, y)]
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cmp.json"
    proc = umeta("compare", str(table), "--label-column", "kind", "--n-clusters", "3",
                 "--resamples", "3", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "2 candidates on 120 rows" in proc.stdout and "feature columns" in proc.stdout
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["candidates"]] == ["builtin", "values"]
    assert doc["criterion"] == "stability" and doc["unit"] == "rows"
    assert doc["candidates"][1]["truth"]["clustering_accuracy"] == 100.0
    assert out.with_suffix(".png").stat().st_size > 1000
    base = ["compare", str(table), "--device", "cpu", "--out", str(tmp_path / "b.json")]
    assert_user_error(umeta(*base, "--learners", "protonet"), "learns from many past tables")
    assert_user_error(umeta(*base, "--invert"), "--invert / --no-invert is for images")
    assert_user_error(umeta(*base, "--image-size", "32"), "--image-size is for images")


# ----------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def square_folder(tmp_path_factory):
    """The square images as PNGs in three class subfolders."""
    root = tmp_path_factory.mktemp("squares")
    x, y = square_images(30)
    for i, (img, label) in enumerate(zip(x, y)):
        (root / f"c{label}").mkdir(exist_ok=True)
        Image.fromarray((img[0].numpy() * 255).astype(np.uint8)).save(root / f"c{label}" /
                                                                       f"{i:02d}.png")
    return root


def test_compare_cli_writes_json_and_plot_and_refuses_to_overwrite(square_folder, tmp_path):
    out = tmp_path / "cmp.json"
    args = ["compare", str(square_folder), "--learners", "protonet", "--checkpoints",
            "none,builtin", "--max-steps", "2", "--n-clusters", "3", "--resamples", "4",
            "--device", "cpu", "--no-progress", "--out", str(out)]
    proc = umeta(*args)
    assert proc.returncode == 0, proc.stderr
    assert "recommended:" in proc.stdout and "accuracy %" in proc.stdout
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["candidates"]] == ["protonet", "pixels", "builtin"]
    assert doc["criterion"] == "consistency" and doc["n_clusters"] == 3
    assert doc["candidates"][1]["truth"]["clustering_accuracy"] == 100.0  # pixels: exact
    assert out.with_suffix(".png").stat().st_size > 1000
    assert_user_error(umeta(*args), "exists; pass --force")
    out.unlink()
    assert_user_error(umeta(*args), "the plot")  # the plot beside it is checked too
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["a", "b", "c"] * 10) + "\n")
    proc = umeta(*args, "--force", "--labels", str(labels), "--learners", "")
    assert proc.returncode == 0, proc.stderr
    assert [c["name"] for c in json.loads(out.read_text())["candidates"]] == ["pixels",
                                                                              "builtin"]


@pytest.mark.parametrize("extra, fragment", [
    (["--learners", "protonet,mamll"], "unknown learner 'mamll'; choose from: protonet, maml, "
                                       "psco"),
    (["--budget-s", "0"], "--budget-s 0.0 must be a number > 0"),
    (["--learners", "psco", "--checkpoints", ""], "at least 2 candidates; got 1"),
    (["--checkpoints", "none@block2"], "the raw pixels have no embedding spaces"),
    (["--resamples", "-2"], "--resamples -2 must be an integer >= 0"),
    (["--n-clusters", "1"], "--n-clusters 1 must be"),
    (["--out", "cmp.csv"], "must end in .json"),
])
def test_compare_cli_bad_input_is_one_line(square_folder, tmp_path, extra, fragment):
    args = ["compare", str(square_folder), "--checkpoints", "none", "--learners", "protonet",
            "--max-steps", "1", "--device", "cpu", "--out", str(tmp_path / "c.json")]
    assert_user_error(umeta(*args, *extra), fragment)


def test_compare_cli_bad_data_and_labels(square_folder, tmp_path):
    base = ["--checkpoints", "none,builtin", "--learners", "", "--device", "cpu"]
    assert_user_error(umeta("compare", str(tmp_path / "missing"), *base,
                            "--out", str(tmp_path / "a.json")), "does not exist")
    labels = tmp_path / "short.txt"
    labels.write_text("a\nb\n")
    assert_user_error(umeta("compare", str(square_folder), *base, "--labels", str(labels),
                            "--out", str(tmp_path / "b.json")), "has 2 labels but")
    assert_user_error(umeta("compare", str(square_folder), *base, "--label-column", "y",
                            "--out", str(tmp_path / "b.json")), "--label-column is for tables")
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n3,4\n5,6\n")
    assert_user_error(umeta("compare", str(table), *base, "--out", str(tmp_path / "c.json")),
                      "the table has 3 row(s)")


def test_compare_help_has_a_description_and_defaults():
    text = umeta("compare", "--help").stdout
    assert not text.split("\n\n")[1].startswith(("options:", "positional"))
    flat = " ".join(text.split())
    assert "training seconds of each learner (default: 60.0)" in flat
    assert "(default: consistency; stability on a table)" in flat


# ----------------------------------------------------------------------------- B11

@pytest.fixture(scope="module")
def b11():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import b11_compare

    return b11_compare


def test_b11_wilson_interval_matches_hand_values(b11):
    low, high = b11.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = b11.wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)
    assert b11.wilson_interval(0, 0) == (0.0, 0.0)


def test_b11_case_outcome_against_hand_counts(b11):
    out = b11.case_outcome(np.array([0.1, 0.9, 0.5]), np.array([50.0, 60.0, 70.0]))
    assert not out["hit"] and out["regret"] == 10.0 and out["random_hit"] == pytest.approx(1 / 3)
    assert out["spearman"] == pytest.approx(0.5) and out["kendall"] == pytest.approx(1 / 3)
    tie = b11.case_outcome(np.array([0.1, 0.9, 0.5]), np.array([70.0, 70.0, 50.0]))
    assert tie["hit"] and tie["regret"] == 0.0 and tie["random_hit"] == pytest.approx(2 / 3)
    flat = b11.case_outcome(np.array([0.1, 0.2]), np.array([50.0, 50.0]))
    assert np.isnan(flat["spearman"]) and flat["hit"]


def test_b11_selection_rows_and_the_global_best_baseline(b11):
    cases = [{"candidates": ["a", "b"], "accuracy": [60.0, 50.0],
              "scores": {c: [1.0, 0.0] for c in b11.CRITERIA}},
             {"candidates": ["a", "b"], "accuracy": [40.0, 50.0],
              "scores": {c: [1.0, 0.0] for c in b11.CRITERIA}}]
    rows = {r["metric"]: r for r in b11.selection_rows(cases, "consistency", "g")}
    assert rows["hit_rate"]["mean"] == 50.0 and rows["hit_rate"]["n_tasks"] == 2
    assert rows["regret_points"]["mean"] == 5.0
    assert rows["spearman"]["mean"] == 0.0  # +1 and -1
    fixed = {r["metric"]: r for r in b11.fixed_choice_rows(cases, "b", "g", "tune")}
    assert fixed["hit_rate"]["mean"] == 50.0 and fixed["regret_points"]["mean"] == 5.0


@pytest.mark.slow
@pytest.mark.realdata
def test_b11_runs_end_to_end_at_a_tiny_size(shared_data, tmp_path):
    out = tmp_path / "b11.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "b11_compare.py"), "--omniglot-dir",
         str(shared_data / "omniglot"), "--xdomain-dir", str(shared_data / "xdomain"),
         "--alphabets", "1", "--xdomain-tasks", "1", "--set-size", "40", "--library-scale",
         "0.003", "--own-sets", "1", "--own-alphabets", "1", "--own-budget-s", "1", "--n-boot",
         "2", "--out", str(out)], cwd=REPO_ROOT / "benchmarks", capture_output=True, text=True,
        timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    groups = {c["group"] for c in doc["cases"]}
    assert groups == {"omniglot-tasks", "xdomain-tasks", "xdomain-sets", "trained-on-data"}
    hit = [r for r in doc["results"] if r["metric"] == "hit_rate" and r["setting"] == "all"
           and r["method"] == "consistency" and "subset" not in r]
    assert len(hit) == 1 and hit[0]["n_tasks"] == len(doc["cases"])
