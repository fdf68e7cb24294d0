"""Subprocess smoke tests of every CLI command, and of its one-line errors (exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from umeta.data import make_glyphs


def umeta(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "umeta", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def assert_user_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny ProtoNet meta-trained for a few steps on the built-in glyphs, through the CLI."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    proc = umeta("train", "--dataset", "glyphs", "--steps", "6", "--meta-batch", "2",
                 "--q-query", "3", "--run-dir", str(run_dir), "--device", "cpu", "--no-progress",
                 "--set", "model.hidden=8", "--set", "run.val_every=3", "--set", "run.val_tasks=10")
    assert proc.returncode == 0, proc.stderr
    assert "checkpoints in" in proc.stdout
    return run_dir / "checkpoints" / "best.safetensors"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 unseen glyph classes x 6 PNGs of 32x32 (the checkpoint takes 28x28) in class subfolders."""
    root = tmp_path_factory.mktemp("imgs")
    glyphs = make_glyphs(3, samples_per_class=6, image_size=32, first_class=2000)
    for i, (img, label) in enumerate(zip(glyphs.images, glyphs.labels)):
        folder = root / glyphs.class_names[int(label)]
        folder.mkdir(exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i:03d}.png")
    return root


def test_version():
    proc = umeta("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("umeta ")


def test_main_job_writes_a_report(tmp_path):
    out = tmp_path / "report"
    proc = umeta("run", "--steps", "8", "--tasks", "4", "--per-class", "8", "--out", str(out),
                 "--device", "cpu", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "kmeans-pixels" in proc.stdout and "umeta" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"] == "B4" and report["device"] and report["commit"]
    methods = {(r["method"], r["metric"]) for r in report["results"]}
    assert ("umeta", "clustering_accuracy") in methods
    assert ("kmeans-pixels", "clustering_accuracy") in methods
    for name in ("learning_curve", "embedding", "clusters", "confusion"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert_user_error(umeta("run", "--out", str(out), "--device", "cpu"), "is not empty")


def test_eval_writes_results(checkpoint, tmp_path):
    out = tmp_path / "b1.json"
    proc = umeta("eval", "--checkpoint", str(checkpoint), "--settings", "5w1s,20w1s",
                 "--episodes", "20", "--q-query", "3", "--device", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["results"]
    assert [r["setting"] for r in rows] == ["5w1s", "20w1s"]
    assert all(0 <= r["mean"] <= 100 and r["n_tasks"] == 20 for r in rows)
    assert all(r["transductive_steps"] == 0 for r in rows)
    proc = umeta("eval", "--checkpoint", str(checkpoint), "--settings", "5w1s,20w1s",
                 "--episodes", "20", "--q-query", "3", "--device", "cpu", "--out", str(out),
                 "--transductive-steps", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 transductive steps" in proc.stdout
    refined = json.loads(out.read_text())["results"]
    assert all(r["transductive_steps"] == 3 for r in refined)
    assert [r["mean"] for r in refined] != [r["mean"] for r in rows]  # the same episodes
    assert_user_error(umeta("eval", "--checkpoint", str(checkpoint), "--device", "cpu",
                            "--transductive-steps", "-1"), "transductive steps must be 0 or more")


def test_resume_through_the_cli(checkpoint):
    run_dir = checkpoint.parent.parent
    proc = umeta("train", "--run-dir", str(run_dir), "--steps", "8", "--resume", "--no-progress",
                 "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "trained 8 steps" in proc.stdout


def test_cluster_embed_detect_on_an_image_folder(checkpoint, image_folder, tmp_path):
    out = tmp_path / "clusters.csv"
    proc = umeta("cluster", str(image_folder), "--n-clusters", "3", "--checkpoint",
                 str(checkpoint), "--resize", "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "id,cluster" and len(lines) == 19
    assert "clustering accuracy" in proc.stdout
    out = tmp_path / "emb.npz"
    proc = umeta("embed", str(image_folder), "--checkpoint", str(checkpoint), "--resize",
                 "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert np.load(out)["e"].shape == (18, 2)
    out = tmp_path / "scores.csv"
    proc = umeta("detect", str(image_folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 19


def test_cluster_with_label_free_fine_tuning(checkpoint, image_folder, tmp_path):
    out = tmp_path / "clusters.csv"
    proc = umeta("cluster", str(image_folder), "--n-clusters", "3", "--checkpoint",
                 str(checkpoint), "--resize", "--finetune-steps", "2", "--finetune-lr", "1e-3",
                 "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "after 2 label-free fine-tuning steps" in proc.stdout
    assert len(out.read_text().splitlines()) == 19
    assert_user_error(umeta("cluster", str(image_folder), "--finetune-steps", "2", "--out",
                            str(out)), "--finetune-steps fine-tunes a meta-trained model")


@pytest.mark.parametrize("args, fragment", [
    (["train", "--backbone", "resnet99", "--steps", "1"], "unknown backbone 'resnet99'"),
    (["train", "--learner", "mamlx", "--steps", "1"], "unknown learner 'mamlx'"),
    (["train", "--tasks", "umtraa", "--steps", "1"], "unknown task builder 'umtraa'"),
    (["train", "--n-way", "5000", "--steps", "1"], "n_way=5000 is larger than"),
    (["train", "--k-shot", "15", "--steps", "1"], "k_shot + q_query"),
    (["train", "--set", "optim.lrr=1"], "unknown key optim.lrr"),
    (["train", "--config", "missing.toml"], "config file 'missing.toml' not found"),
    (["eval", "--checkpoint", "missing.safetensors"], "not found"),
    (["train", "--device", "cuda", "--steps", "1"], "no CUDA GPU"),
    (["train", "--learner", "maml", "--set", "run.compile=true", "--steps", "1"],
     "run.compile computes wrong MAML meta-gradients"),
    (["train", "--set", "run.time_limit_s=-1", "--steps", "1"], "run.time_limit_s must be 0"),
    (["train", "--learner", "maml", "--set", 'learner.options={"inner_stpes": 5}', "--steps", "1"],
     "learner 'maml' has no option 'inner_stpes'; its options are: anil, chunk_size"),
    (["train", "--set", "model.options.ceil_mod=true", "--steps", "1"],
     "backbone 'conv4' has no option 'ceil_mod'; its options are: ceil_mode"),
])
def test_bad_input_is_one_line_and_status_2(args, fragment, tmp_path):
    if args[:3] == ["train", "--device", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    assert_user_error(umeta(*args, "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
                      if args[0] == "train" else umeta(*args, cwd=tmp_path), fragment)


def test_bad_user_data_is_one_line(checkpoint, image_folder, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a checkpoint at all")
    assert_user_error(umeta("eval", "--checkpoint", str(corrupt)), "corrupt")
    nan = tmp_path / "nan.csv"
    nan.write_text("a,b\n1,2\n3,nan\n4,5\n")
    assert_user_error(umeta("cluster", str(nan), "--n-clusters", "2"), "non-finite value (nan)")
    vectors = tmp_path / "v.csv"
    vectors.write_text("a,b\n1,2\n3,4\n4,5\n")
    assert_user_error(umeta("cluster", str(vectors), "--n-clusters", "9"), "--n-clusters 9")
    assert_user_error(umeta("cluster", str(image_folder), "--checkpoint", str(checkpoint),
                            "--n-clusters", "3"), "pass --resize")
    assert_user_error(umeta("embed", str(tmp_path / "nothing.npz")), "nothing.npz")


@pytest.mark.realdata
def test_lake_background_evaluation_protocol_trains_and_evaluates(shared_data, tmp_path):
    """Train on the 30 background alphabets, evaluate on the 20 evaluation alphabets."""
    env_dir = ["--data-dir", str(shared_data / "omniglot")]
    run_dir = tmp_path / "run"
    proc = umeta("train", "--dataset", "omniglot", *env_dir, "--set",
                 "data.split=background-evaluation", "--steps", "2", "--meta-batch", "2",
                 "--q-query", "2", "--set", "model.hidden=8", "--run-dir", str(run_dir),
                 "--device", "cpu", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "b7.json"
    proc = umeta("eval", "--checkpoint", str(run_dir / "checkpoints" / "best.safetensors"),
                 "--settings", "5w1s", "--episodes", "4", "--q-query", "2", "--device", "cpu",
                 "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "omniglot/background-evaluation/evaluation" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["split"] == "background-evaluation" and doc["test_classes"] == 659
