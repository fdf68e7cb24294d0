"""B6 (cross-domain clustering) and B7 (one-shot runs): their helpers on tiny fake data, and
the real files behind a skip."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT
from umeta.config import TrainConfig
from umeta.data.omniglot import resize_ink
from umeta.errors import UmetaError
from umeta.build import build_learner
from umeta.train import train

BENCHMARKS = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import b6_xdomain as b6  # noqa: E402
import b7_one_shot as b7  # noqa: E402


def _tiny_learner(image_size: int = 28):
    cfg = TrainConfig()
    cfg.model.hidden = 8
    torch.manual_seed(0)
    return build_learner(cfg, (1, image_size, image_size)).eval()


# ----------------------------------------------------------------------------- B6

def _fake_xdomain(folder, sets: dict[str, int], per_class: int = 12) -> dict[str, str]:
    """npz sets of random 28x28 uint8 class templates plus noise, and a README with sha256."""
    rng = np.random.default_rng(0)
    lines = ["| name | source | sha256 of npz |", "|---|---|---|"]
    digests = {}
    for name, classes in sets.items():
        templates = rng.integers(0, 256, (classes, 28, 28))
        images = np.concatenate([np.clip(t + rng.normal(0, 20, (per_class, 28, 28)), 0, 255)
                                 for t in templates]).astype(np.uint8)
        labels = np.repeat(np.arange(classes), per_class).astype(np.int64)
        path = folder / f"{name}.npz"
        np.savez_compressed(path, images=images, labels=labels)
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"| `{name}` | made up | `{digests[name]}` |")
    (folder / "README.md").write_text("\n".join(lines) + "\n")
    return digests


@pytest.fixture
def xdomain(tmp_path):
    folder = tmp_path / "xdomain"
    folder.mkdir()
    return folder, _fake_xdomain(folder, {"alpha": 10, "beta": 6})


def test_manifest_and_sha256_check(xdomain):
    folder, digests = xdomain
    assert b6.read_manifest(folder) == digests
    sets = b6.load_xdomain(folder)
    assert sets["alpha"].images.shape == (120, 1, 28, 28) and sets["beta"].num_classes == 6
    np.savez_compressed(folder / "beta.npz", images=np.zeros((2, 28, 28), np.uint8),
                        labels=np.zeros(2, np.int64))
    with pytest.raises(UmetaError, match="sha256"):
        b6.load_xdomain(folder)
    with pytest.raises(UmetaError, match="unknown xdomain set"):
        b6.load_xdomain(folder, ["gamma"])


def test_training_data_check_refuses_the_sets(xdomain, tmp_path):
    folder, digests = xdomain
    cfg = TrainConfig().to_dict()
    assert b6.check_training_data(cfg, {}, digests) == "glyphs"
    assert b6.check_training_data({"data": {"dataset": "omniglot"}},
                                  {"data": "omniglot/vinyals/trainval"}, digests) == "omniglot"
    with pytest.raises(UmetaError, match="names no data set"):
        b6.check_training_data({"data": {}}, {}, digests)
    with pytest.raises(UmetaError, match="'alpha'"):
        b6.check_training_data({"data": {"dataset": "glyphs"}}, {"data": "glyphs+Alpha"}, digests)
    with pytest.raises(UmetaError, match="cannot vouch"):
        b6.check_training_data({"data": {"dataset": "mystery"}}, {}, digests)
    copy = tmp_path / "renamed" / "innocent.npz"  # a renamed copy is caught by its content
    copy.parent.mkdir()
    copy.write_bytes((folder / "beta.npz").read_bytes())
    with pytest.raises(UmetaError, match="'beta'"):
        b6.check_training_data({"data": {"dataset": "omniglot", "data_dir": str(copy.parent)}},
                               {}, digests)
    with pytest.raises(UmetaError, match="'beta'"):
        b6.check_training_data({"data": {"dataset": "glyphs"},
                                "tasks": {"options": {"extra": [str(copy)]}}}, {}, digests)


def test_tasks_are_seeded_per_cell_and_small_sets_are_skipped(xdomain):
    folder, _ = xdomain
    sets = b6.load_xdomain(folder)
    tasks, skipped = b6.draw_tasks(sets, [(5, 4), (10, 4)], 3, seed=1)
    assert set(tasks) == {("alpha", "5x4"), ("alpha", "10x4"), ("beta", "5x4")}
    assert skipped == [{"set": "beta", "setting": "10x4", "why": "6 classes of at least 12 images"}]
    alone, _ = b6.draw_tasks({"alpha": sets["alpha"]}, [(10, 4)], 3, seed=1)
    assert torch.equal(alone["alpha", "10x4"].index, tasks["alpha", "10x4"].index)
    cell = tasks["beta", "5x4"]
    assert cell.images.shape == (3, 20, 1, 28, 28)
    assert all(len(set(row)) == 5 for row in cell.labels)


def test_gain_summary_by_hand():
    def scores(accs):
        return [{"clustering_accuracy": a, "nmi": 0.0, "ari": 0.0} for a in accs]

    umeta = {("a", "5x10"): scores([0.6, 0.8]), ("b", "5x10"): scores([0.5, 0.5, 0.8])}
    ref = {("a", "5x10"): scores([0.5, 0.5]), ("b", "5x10"): scores([0.6, 0.6, 0.6])}
    summary = b6.gain_summary(umeta, ref)
    # gains: a = [10, 30] points (mean 20), b = [-10, -10, 20] (mean 0)
    assert summary["mean"] == pytest.approx(10.0) and summary["min"] == pytest.approx(0.0)
    assert summary["min_cell"] == "b/5x10" and summary["cells"] == 2
    ci_a, ci_b = b6.mean_ci95([10, 30])[1], b6.mean_ci95([-10, -10, 20])[1]
    assert summary["mean_ci95"] == pytest.approx(np.hypot(ci_a, ci_b) / 2)
    assert summary["min_low"] <= summary["min"] <= summary["min_high"]
    rows = b6.summary_rows("umeta", "label-free", summary)
    assert [r["metric"] for r in rows] == [
        "min_gain_vs_kmeans_pixels", "mean_gain_vs_kmeans_pixels"]


def test_variants_validate_and_name_themselves():
    assert b6.Variant().suffix == ""
    assert b6.Variant("block2", "ink", "adabn", "set").suffix == "@block2+ink+adabn@set"
    assert b6.Variant(adapt="selftrain", selftrain_steps=5).suffix == "+selftrain5@lr0.0001"
    assert b6.Variant(adapt="adabn+checked-selftrain", selftrain_lr=3e-3).suffix == (
        "+adabn+checked-selftrain20@lr0.003")
    for bad in ({"space": "layer2"}, {"adapt": "magic"}, {"scope": "world"}, {"refine": "x"}):
        with pytest.raises(UmetaError):
            b6.Variant(**bad)


def test_evaluate_learner_scores_every_cell_against_kmeans(xdomain):
    folder, _ = xdomain
    learner = _tiny_learner()
    variants = (b6.Variant(), b6.Variant("block2", adapt="adabn"),
                b6.Variant(adapt="adabn", scope="set"),
                b6.Variant(adapt="adabn+checked-selftrain", selftrain_steps=2))
    out = b6.evaluate_learner(learner, data_dir=folder, settings=[(5, 4)], n_tasks=3,
                              variants=variants, jobs=1)
    assert set(out["summary"]) == {"", "@block2+adabn", "+adabn@set",
                                   "+adabn+checked-selftrain2@lr0.0001"}
    acc = [r for r in out["rows"] if r["metric"] == "clustering_accuracy"]
    assert {(r["dataset"], r["method"]) for r in acc} == {
        (s, "umeta" + v.suffix) for s in ("alpha", "beta") for v in variants}
    kmeans = out["baselines"]["alpha", "5x4", "kmeans-pixels"]
    row = next(r for r in acc if r["dataset"] == "alpha" and r["method"] == "umeta")
    assert row["gain_vs_kmeans_pixels"] == pytest.approx(
        row["mean"] - 100 * np.mean([s["clustering_accuracy"] for s in kmeans]), abs=1e-3)
    again = b6.evaluate_learner(learner, data_dir=folder, settings=[(5, 4)], n_tasks=3,
                                baselines=out["baselines"], jobs=1)
    assert again["summary"][""] == out["summary"][""]


def test_b6_script_runs_and_refuses_a_model_trained_on_a_set(xdomain, tmp_path):
    folder, _ = xdomain
    cfg = TrainConfig()
    cfg.model.hidden, cfg.tasks.q_query = 8, 2
    cfg.optim.steps, cfg.optim.meta_batch = 2, 2
    cfg.run.run_dir, cfg.run.device, cfg.run.val_every = str(tmp_path / "run"), "cpu", 0
    from umeta.data.glyphs import make_glyphs

    train(cfg, train_data=make_glyphs(10, first_class=0), progress=False)
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.safetensors")
    out = tmp_path / "b6.json"
    cmd = [sys.executable, str(BENCHMARKS / "b6_xdomain.py"), "--checkpoint", ckpt,
           "--data-dir", str(folder), "--settings", "5x4", "--tasks", "2", "--jobs", "1",
           "--device", "cpu", "--adapt", "none,adabn", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "B6" and set(doc["sets"]) == {"alpha", "beta"}
    methods = {r["method"] for r in doc["results"]}
    assert methods == {*b6.BASELINES, "umeta-labelled-protonet", "umeta-labelled-protonet+adabn"}
    summary = [r for r in doc["results"] if r["setting"] == "all"]
    assert len(summary) == 4 and all(r["training"] == "supervised" for r in summary)
    # the same checkpoint, its config pointing at a copy of a B6 set: refused before any work
    bad = tmp_path / "leak"
    bad.mkdir()
    (bad / "x.npz").write_bytes((folder / "alpha.npz").read_bytes())
    leak_cfg = tmp_path / "leak_run"
    cfg.run.run_dir, cfg.data.data_dir = str(leak_cfg), str(bad)
    train(cfg, train_data=make_glyphs(10, first_class=0), progress=False)
    cmd[3] = str(leak_cfg / "checkpoints" / "last.safetensors")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "'alpha'" in proc.stderr


def test_real_xdomain_files_match_their_readme(shared_data):
    folder = shared_data / "xdomain"
    if not folder.is_dir():
        pytest.skip("no xdomain folder")
    sets = b6.load_xdomain(folder)
    assert set(sets) == {"sklearn_digits", "notmnist", "fashion_mnist", "quickdraw6"}
    assert all(s.image_shape == (1, 28, 28) for s in sets.values())


# ----------------------------------------------------------------------------- B7

def _png(ink: np.ndarray) -> bytes:
    """A mode-1 PNG, dark ink on white, as in the official runs."""
    buf = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _fake_runs(path, n_runs: int = 2, k: int = 3, size: int = 35) -> list[np.ndarray]:
    """Runs whose test image i is a copy of training image perm[i]; returns the inks."""
    rng = np.random.default_rng(0)
    inks = []
    with zipfile.ZipFile(path, "w") as z:
        for r in range(1, n_runs + 1):
            train_ink = rng.random((k, size, size)) < 0.2
            inks.append(train_ink)
            perm = rng.permutation(k)
            lines = []
            for c in range(k):
                z.writestr(f"run{r:02d}/training/class{c + 1:02d}.png", _png(train_ink[c]))
                z.writestr(f"run{r:02d}/test/item{c + 1:02d}.png", _png(train_ink[perm[c]]))
                lines.append(f"run{r:02d}/test/item{c + 1:02d}.png "
                             f"run{r:02d}/training/class{perm[c] + 1:02d}.png")
            z.writestr(f"run{r:02d}/class_labels.txt", "\n".join(lines) + "\n")
    return inks


def test_runs_are_read_as_omniglot_is(tmp_path):
    path = tmp_path / "runs.zip"
    inks = _fake_runs(path)
    runs = b7.read_runs(path, image_size=7)
    assert [r.name for r in runs] == ["run01", "run02"]
    for run, ink in zip(runs, inks):
        assert torch.equal(run.training[:, 0], resize_ink(torch.from_numpy(ink), 7))
        for q, label in zip(run.test, run.test_labels):
            assert torch.equal(q, run.training[label])


def test_copies_are_classified_without_error(tmp_path):
    path = tmp_path / "runs.zip"
    _fake_runs(path, k=4)
    runs = b7.read_runs(path, image_size=28)
    learner = _tiny_learner()
    for rule in b7.RULES:
        assert b7.error_rates(learner, runs, rule).tolist() == [0.0, 0.0]
    with pytest.raises(UmetaError):
        b7.error_rates(learner, runs, "guess")


def test_bad_zips_raise(tmp_path):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(UmetaError, match="class_labels"):
        b7.read_runs(empty)
    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as z:
        z.writestr("run01/class_labels.txt", "run01/test/item01.png run01/training/class09.png\n")
        z.writestr("run01/training/class01.png", _png(np.zeros((5, 5), bool)))
    with pytest.raises(UmetaError, match="class09"):
        b7.read_runs(wrong)


def test_only_background_only_models_are_b7_models():
    ok = {"data": {"dataset": "omniglot", "split": "background-evaluation"},
          "tasks": {"builder": "umtra"}}
    assert b7.check_background_only(ok, {"data": b7.BACKGROUND}) is None
    mixed = {"data": {"dataset": "omniglot+procedural", "split": "background-evaluation"}}
    assert b7.check_background_only(mixed, {"data": b7.BACKGROUND + "+procedural:0.5"}) is None
    assert b7.check_background_only({"data": {"dataset": "omniglot+mnist",
                                              "split": "background-evaluation"}}, {})
    assert b7.check_background_only(ok, {}) is None
    assert "'glyphs'" in b7.check_background_only({"data": {"dataset": "glyphs"}}, {})
    assert "vinyals" in b7.check_background_only(
        {"data": {"dataset": "omniglot", "split": "vinyals"}}, {})
    assert b7.check_background_only(ok, {"data": "omniglot/background-evaluation/evaluation"})
    supervised = {"data": {"dataset": "omniglot", "split": "background-evaluation",
                           "train_part": "trainval"}, "tasks": {"builder": "labelled"}}
    assert b7.check_background_only(supervised, {}) is not None
    supervised["data"]["train_part"] = "train"
    assert b7.check_background_only(supervised, {}) is None


def test_anchor_rows_cite_their_sources():
    rows = b7.anchor_rows()
    assert {r["method"]: r["mean"] for r in rows} == {
        "people": 4.5, "bayesian-program-learning": 3.3, "lake-convnet": 13.5,
        "siamese-koch2015": 8.0}
    assert all(r["source"] and r["published"] for r in rows)


def test_official_runs_are_evaluation_drawings_with_consistent_labels(shared_data):
    path = shared_data / "omniglot" / "one_shot_runs.zip"
    if not path.is_file():
        pytest.skip("no one_shot_runs.zip")
    from umeta.data.omniglot import load_omniglot

    runs = b7.read_runs(path, image_size=28)
    assert len(runs) == 20 and all(len(r.training) == 20 and len(r.test) == 20 for r in runs)
    evaluation = load_omniglot("evaluation", split="background-evaluation",
                               data_dir=shared_data, download=False, progress=False)
    flat = evaluation.images.flatten(1).int()

    def character(image):
        match = ((flat - image.flatten().int()).abs().sum(1) == 0).nonzero().squeeze(1)
        return set(evaluation.labels[match].tolist())

    for run in runs[:2]:
        for q, label in zip(run.test, run.test_labels):
            assert character(q) & character(run.training[label])


def test_background_dev_runs_are_within_one_alphabet_with_two_drawers(shared_data):
    """B7's DEV runs: 20 characters of one background alphabet, the training images from one
    drawer and the test images from another, labels pointing at the right character."""
    import b7_dev_background as dev
    from umeta.data.omniglot import read_omniglot_npz

    npz = shared_data / "omniglot" / "images_background.npz"
    ink, names = read_omniglot_npz(npz)
    runs = dev.background_runs(npz, 3, 28, seed=0)
    assert len(runs) == 3 and len({r.name for r in runs}) == 3
    small = resize_ink(ink, 28)
    for run in runs:
        assert run.training.shape == run.test.shape == (dev.WAYS, 1, 28, 28)
        assert sorted(run.test_labels.tolist()) == list(range(dev.WAYS))
        rows = [int(np.flatnonzero((small == run.training[i, 0]).all(-1).all(-1).any(1))[0])
                for i in range(dev.WAYS)]
        assert len({names[r].split("/")[0] for r in rows}) == 1  # one alphabet
        for q, label in enumerate(run.test_labels.tolist()):
            drawings = (small[rows[label]] == run.test[q, 0]).all(-1).all(-1)
            assert drawings.any()  # the test image is a drawing of its labelled character
            assert not torch.equal(run.test[q], run.training[label])  # another drawer's


def test_mirror_similarity_against_pixels_and_a_mirror_invariant_embedding():
    """B7 DEV's cosine rows: in pixel space they are the hand-computed cosines; an embedding that
    adds each image to its mirror image puts every image on its mirror (cosine 1)."""
    import b7_dev_background as dev
    from b7_one_shot import OneShotRun

    class Pixels(torch.nn.Module):
        image_shape = (1, 6, 6)

        def __init__(self, symmetric: bool) -> None:
            super().__init__()
            self.symmetric = symmetric
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def embed(self, x):
            return (x + x.flip(-1) if self.symmetric else x).flatten(1)

    gen = torch.Generator().manual_seed(0)
    training = (torch.rand(3, 1, 6, 6, generator=gen) * 255).to(torch.uint8)
    test = (torch.rand(3, 1, 6, 6, generator=gen) * 255).to(torch.uint8)
    run = OneShotRun("r", training, test, torch.tensor([2, 0, 1]))  # test j is class labels[j]
    cos = lambda a, b: torch.nn.functional.cosine_similarity(  # noqa: E731
        a.float().flatten(), b.float().flatten(), dim=0).item()
    got = dev.mirror_similarity(Pixels(False), [run])
    assert got["mirror"][0] == pytest.approx(np.mean([cos(t, t.flip(-1)) for t in training]))
    same = [cos(training[c], test[j]) for j, c in enumerate([2, 0, 1])]
    assert got["same character"][0] == pytest.approx(np.mean(same))
    other = [cos(training[c], test[j]) for j in range(3) for c in range(3) if c != [2, 0, 1][j]]
    assert got["same alphabet"][0] == pytest.approx(np.mean(other))
    assert dev.mirror_similarity(Pixels(True), [run])["mirror"][0] == pytest.approx(1.0)
