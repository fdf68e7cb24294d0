"""Subprocess smoke tests of every CLI command, and of its one-line errors (exit status 2)."""

from __future__ import annotations

import json
import os
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


def glyph_folder(root, num_classes: int, image_size: int, first_class: int):
    """``num_classes`` glyph classes x 6 PNGs in class subfolders of ``root``."""
    glyphs = make_glyphs(num_classes, samples_per_class=6, image_size=image_size,
                         first_class=first_class)
    for i, (img, label) in enumerate(zip(glyphs.images, glyphs.labels)):
        folder = root / glyphs.class_names[int(label)]
        folder.mkdir(exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 unseen glyph classes x 6 PNGs of 32x32 (the checkpoint takes 28x28) in class subfolders."""
    return glyph_folder(tmp_path_factory.mktemp("imgs"), 3, 32, 2000)


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
                 "--transductive-steps", "3", "--force")  # over the first results
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
    assert "resumed at step 6: trained 2 steps (now at step 8 of 8)" in proc.stdout
    assert_user_error(umeta("train", "--run-dir", str(run_dir), "--steps", "9", "--resume",
                            "--lr", "0.01", "--device", "cpu"),
                      "but this call sets --lr 0.01 where the run has 0.001; drop it")
    proc = umeta("train", "--run-dir", str(run_dir), "--steps", "8", "--resume", "--device", "cpu")
    assert "nothing to train: the run is at step 8 and --steps is 8" in proc.stdout
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()
             if "loss" in json.loads(line)]
    assert len(steps) == len(set(steps))


def test_cluster_embed_detect_on_an_image_folder(checkpoint, image_folder, tmp_path):
    out = tmp_path / "clusters.csv"
    proc = umeta("cluster", str(image_folder), "--n-clusters", "3", "--checkpoint",
                 str(checkpoint), "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "id,cluster,confidence" and len(lines) == 19
    assert "clustering accuracy" in proc.stdout
    out = tmp_path / "emb.npz"
    proc = umeta("embed", str(image_folder), "--checkpoint", str(checkpoint),
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
                 str(checkpoint), "--finetune-steps", "2", "--finetune-lr", "1e-3",
                 "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "after 2 label-free fine-tuning steps" in proc.stdout
    assert len(out.read_text().splitlines()) == 19
    assert_user_error(umeta("cluster", str(image_folder), "--finetune-steps", "2",
                            "--checkpoint", "none", "--out", str(out), "--force"),
                      "--finetune-steps fine-tunes a meta-trained model")


@pytest.mark.parametrize("args, fragment", [
    (["train", "--backbone", "resnet99", "--steps", "1"], "unknown backbone 'resnet99'"),
    (["train", "--learner", "mamlx", "--steps", "1"], "unknown learner 'mamlx'"),
    (["train", "--tasks", "umtraa", "--steps", "1"],
     "unknown task builder 'umtraa'; choose one of: cactus, labelled, mosaic, psco, tables, umtra"),
    (["train", "--n-way", "5000", "--steps", "1"], "n_way=5000 is larger than"),
    (["train", "--k-shot", "15", "--steps", "1"], "k_shot + q_query"),
    (["train", "--set", "optim.lrr=1"], "unknown key optim.lrr"),
    (["train", "--config", "missing.toml"], "config file 'missing.toml' not found"),
    (["eval", "--checkpoint", "missing.safetensors"], "not found"),
    # no abbreviations: eval has no --set, and "--set" must not be read as its "--settings"
    (["eval", "--checkpoint", "missing.safetensors", "--set", "data.download=false"],
     "unrecognized arguments: --set data.download=false"),
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
    assert_user_error(umeta("cluster", str(nan), "--n-clusters", "2", "--checkpoint", "none"),
                      "NaN or inf value(s); remove or impute")
    vectors = tmp_path / "v.csv"
    vectors.write_text("a,b\n1,2\n3,4\n4,5\n")
    assert_user_error(umeta("cluster", str(vectors), "--n-clusters", "9"), "--n-clusters 9")
    assert_user_error(umeta("cluster", str(vectors), "--checkpoint", str(checkpoint),
                            "--n-clusters", "2"), "give images (a folder or an npz of images)")
    assert_user_error(umeta("embed", str(tmp_path / "nothing.npz")), "nothing.npz")


def test_label_like_column_is_named_in_one_line_and_the_columns_used_are_printed(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,target\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    args = ("cluster", str(table), "--n-clusters", "2", "--checkpoint", "none",
            "--out", str(tmp_path / "o.csv"))
    proc = umeta(*args)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warning == [f"umeta cluster: warning: {str(table)!r}: column 'target' looks like "
                       f"labels but is read as a feature; pass --label-column target to leave "
                       f"it out"]
    assert f"feature columns of {table}: a, b, target\n" in proc.stdout
    proc = umeta(*args, "--label-column", "target", "--force")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert f"feature columns of {table}: a, b\n" in proc.stdout


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


# ---------------------------------------------------------------------------- issue 17


@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory):
    """60 rows of 4 features in two far-apart blobs."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (30, 4)), rng.normal(8, 1, (30, 4))]
    path = tmp_path_factory.mktemp("csv") / "blobs.csv"
    path.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in x) + "\n")
    return path


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """12 glyph classes x 6 PNGs (20x20) in class subfolders: a fast data set to train on."""
    return glyph_folder(tmp_path_factory.mktemp("classes"), 12, 20, 4000)


def test_out_is_never_overwritten_without_force_and_never_the_input(blobs_csv, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(blobs_csv.read_bytes())
    for force in ([], ["--force"]):
        assert_user_error(umeta("cluster", str(data), "--n-clusters", "2", "--out", str(data),
                                *force), "is the input data")
    assert data.read_bytes() == blobs_csv.read_bytes()
    out = tmp_path / "clusters.csv"
    out.write_text("a user's file\n")
    assert_user_error(umeta("cluster", str(data), "--n-clusters", "2", "--out", str(out)),
                      "exists; pass --force to overwrite it")
    assert out.read_text() == "a user's file\n"
    proc = umeta("cluster", str(data), "--n-clusters", "2", "--out", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("id,cluster,confidence\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clusters.csv", "data.csv"]  # no temp


def test_out_is_checked_before_the_work(tmp_path):
    assert_user_error(umeta("cluster", str(tmp_path / "missing.csv"), "--out", "o.txt"),
                      "--out 'o.txt' must end in .csv or .npz")
    (tmp_path / "afile").write_text("")
    assert_user_error(umeta("embed", str(tmp_path / "missing.csv"), "--out",
                            str(tmp_path / "afile" / "e.csv")), "is a file, not a folder")
    assert_user_error(umeta("run", "--out", str(tmp_path / "afile" / "report")),
                      "is a file, not a folder")


def test_csv_ids_are_plain_csv_not_json(tmp_path):
    import csv

    root = tmp_path / "imgs"
    names = ["plain", "with,comma", 'with"quote', "caf\u00e9"]
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(np.full((8, 8), 40 * i + 10 * j, np.uint8)).save(
                root / name / f"{j}.png")
    out = tmp_path / "clusters.csv"
    proc = umeta("cluster", str(root), "--n-clusters", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(out.open(encoding="utf-8", newline="")))
    assert [r[0] for r in rows[1:]] == sorted(f"{n}/{j}.png" for n in names for j in range(2))
    lines = out.read_text(encoding="utf-8").splitlines()
    starts = {line.rsplit(",", 2)[0] for line in lines[1:]}  # id, cluster, confidence
    assert {"caf\u00e9/0.png", "plain/0.png", '"with,comma/0.png"', '"with""quote/0.png"'} <= starts


@pytest.mark.parametrize("args, fragment", [
    (["train", "--seed", "-1"], "--seed -1 must be an integer in [0, 4294967295]"),
    (["train", "--seed", str(10**30)], f"--seed {10**30} must be an integer in [0, 4294967295]"),
    (["cluster", "DATA", "--seed", "-1"], "--seed -1 must be an integer in [0, 4294967295]"),
    (["detect", "DATA", "--seed", str(2**40)], "--seed 1099511627776 must be an integer"),
    (["train", "--set", "model.hidden=0"], "model.hidden=0 must be at least 1"),
    (["train", "--set", "run.log_every=0"], "run.log_every=0 must be at least 1"),
    (["cluster", "DATA", "--finetune-steps", "99999999999"],
     "at most 100000 (0 turns it off); got --finetune-steps 99999999999"),
    (["cluster", "DATA", "--k-range", "5", "3"], "--k-range 5 3 must be a pair (low, high)"),
    (["cluster", "DATA", "--k-range", "2", "4", "--n-clusters", "3"], "drop it or --n-clusters"),
    (["cluster", "DATA", "--invert"], "--invert / --no-invert are for images"),
    (["cluster"], "the following arguments are required: data"),
    (["train", "--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
])
def test_more_bad_input_is_one_line_and_status_2(args, fragment, blobs_csv, tmp_path):
    args = [str(blobs_csv) if a == "DATA" else a for a in args]
    extra = ["--run-dir", str(tmp_path / "r"), "--steps", "1"] if args[0] == "train" else \
        ["--out", str(tmp_path / "o.csv")] if len(args) > 1 else []
    assert_user_error(umeta(*args, *extra, cwd=tmp_path), fragment)


def test_a_run_dir_that_is_a_file_and_a_run_dir_in_use(tmp_path):
    from umeta.train import RunDir

    (tmp_path / "taken").write_text("")
    assert_user_error(umeta("train", "--run-dir", str(tmp_path / "taken")),
                      "--run-dir '" + str(tmp_path / "taken") + "' is a file, not a folder")
    with RunDir(tmp_path / "busy").locked():  # as a first `umeta train` holds it
        assert_user_error(umeta("train", "--run-dir", str(tmp_path / "busy"), "--steps", "1"),
                          f"is in use by another umeta train (pid {os.getpid()})")
    assert not (tmp_path / "busy" / "metrics.jsonl").exists()


def test_a_meta_batch_too_large_for_memory_is_refused(class_folder, tmp_path):
    assert_user_error(umeta("train", "--dataset", str(class_folder), "--meta-batch", "100000",
                            "--q-query", "2", "--set", "run.val_every=0", "--run-dir",
                            str(tmp_path / "r"), "--device", "cpu"),
                      "--meta-batch 100000 needs about")


def test_the_cluster_count_estimate_says_so(blobs_csv, tmp_path):
    proc = umeta("cluster", str(blobs_csv), "--out", str(tmp_path / "a.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "the number of clusters was estimated: 2 had the best silhouette of k = 2..10" in \
        proc.stdout
    proc = umeta("cluster", str(blobs_csv), "--k-range", "3", "4", "--out", str(tmp_path / "b.csv"))
    assert "of k = 3..4" in proc.stdout
    proc = umeta("cluster", str(blobs_csv), "--n-clusters", "2", "--out", str(tmp_path / "c.csv"))
    assert "estimated" not in proc.stdout


def test_the_top_of_the_range_is_flagged(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 20, (6, 3))
    x = np.concatenate([c + rng.normal(0, 0.3, (10, 3)) for c in centres])
    path = tmp_path / "six.npz"
    np.savez(path, X=x)
    proc = umeta("cluster", str(path), "--k-range", "2", "4", "--out", str(tmp_path / "o.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "4 had the best silhouette of k = 2..4" in proc.stdout
    assert "4 is the top of the range: the data may hold more clusters" in proc.stdout


def anomaly_npz(path, normal_name: str, anomaly_name: str):
    """30 normal vectors around 0 and 3 anomalies far away in different directions."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (30, 3)), 12 * np.eye(3)]
    y = np.array([normal_name] * 30 + [anomaly_name] * 3)
    np.savez(path, X=x, y=y)
    return path


def test_detect_auroc_takes_the_anomalous_class_by_name_not_by_sorted_order(tmp_path):
    data = anomaly_npz(tmp_path / "named.npz", "normal", "anomaly")  # sorted: anomaly first
    proc = umeta("detect", str(data), "--out", str(tmp_path / "a.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "AUROC against the labels: 1.000 (anomalous class: 'anomaly', by its name" in proc.stdout
    proc = umeta("detect", str(data), "--anomaly-class", "normal", "--out", str(tmp_path / "b.csv"))
    assert "AUROC against the labels: 0.000 (anomalous class: 'normal', as --anomaly-class" in \
        proc.stdout
    good = anomaly_npz(tmp_path / "good.npz", "good", "zzz")
    proc = umeta("detect", str(good), "--out", str(tmp_path / "c.csv"))
    assert "1.000 (anomalous class: 'zzz', the class not named normal" in proc.stdout
    unknown = anomaly_npz(tmp_path / "unknown.npz", "cats", "dogs")
    proc = umeta("detect", str(unknown), "--out", str(tmp_path / "d.csv"))
    assert "no AUROC: which of the classes cats, dogs is anomalous is not known" in proc.stdout
    assert_user_error(umeta("detect", str(unknown), "--anomaly-class", "cows", "--out",
                            str(tmp_path / "e.csv")), "--anomaly-class 'cows' is not a class")


def test_eval_takes_the_builtin_model_refuses_to_overwrite_and_shows_progress(tmp_path):
    out = tmp_path / "b1.json"
    out.write_text("{}")
    args = ["eval", "--checkpoint", "builtin", "--dataset", "glyphs", "--settings", "5w1s",
            "--episodes", "20", "--q-query", "3", "--device", "cpu", "--out", str(out)]
    assert_user_error(umeta(*args), "exists; pass --force to overwrite it")
    proc = umeta(*args, "--force")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["results"][0]["n_tasks"] == 20
    assert "\r" not in proc.stderr  # stderr is a pipe: plain progress lines
    assert any(line.startswith("eval: 100%") and "20/20" in line
               for line in proc.stderr.splitlines())


def test_image_folders_of_any_size_colour_and_polarity_are_converted(tmp_path):
    """RGB photos of mixed sizes, dark ink on white: the built-in model gets grayscale 28x28
    light-on-dark images, and the user is told what was done."""
    root = tmp_path / "photos"
    glyphs = make_glyphs(2, samples_per_class=4, image_size=40, first_class=3000)
    for i, (img, label) in enumerate(zip(glyphs.images, glyphs.labels)):
        folder = root / glyphs.class_names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        rgb = np.repeat(255 - img[0].numpy()[..., None], 3, axis=2)  # dark ink on white
        rgb[..., 0] = np.minimum(rgb[..., 0], 250)  # not exactly gray: a colour photo
        Image.fromarray(rgb).resize((40 + 8 * (i % 2), 40)).save(folder / f"{i}.png")
    proc = umeta("cluster", str(root), "--n-clusters", "2", "--out", str(tmp_path / "c.csv"),
                 "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "used the built-in images model" in proc.stderr
    assert "grayscale 28x28" in proc.stderr and "inverted (light background" in proc.stderr


def test_train_and_eval_on_your_own_image_folder(class_folder, tmp_path):
    run_dir = tmp_path / "run"
    proc = umeta("train", "--dataset", str(class_folder), "--tasks", "umtra", "--steps", "3",
                 "--meta-batch", "2", "--set", "model.hidden=8", "--run-dir", str(run_dir),
                 "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "meta-train: 100%" in proc.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["dataset"] == str(class_folder)
    proc = umeta("eval", "--checkpoint", str(run_dir / "checkpoints" / "last.safetensors"),
                 "--settings", "2w1s", "--episodes", "5", "--q-query", "2", "--device", "cpu",
                 "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"({class_folder.name}/test, 5 episodes)" in proc.stdout  # the held-out classes


def test_help_shows_defaults_and_choices_and_every_command_has_a_description():
    train = umeta("train", "--help").stdout
    assert "sets optim.lr (default: 0.001)" in train
    assert "(one of: maml, pixelproto, protonet, psco, table)" in " ".join(train.split())
    assert "(one of: cactus, labelled, mosaic, psco, tables, umtra)" in " ".join(train.split())
    cluster = " ".join(umeta("cluster", "--help").stdout.split())
    assert "--seed SEED seed of k-means and fine-tuning (default: 0)" in cluster
    assert "{none,soft,balanced}" in cluster
    for command in ("run", "train", "eval", "cluster", "explain", "embed", "detect",
                    "robustness"):
        text = umeta(command, "--help").stdout
        description = text.split("\n\n")[1]
        assert not description.startswith(("options:", "positional")), command
