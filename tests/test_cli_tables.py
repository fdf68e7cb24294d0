"""`umeta cluster / detect / embed` on tables with a table model, and their one-line errors."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import table_config
from umeta.cli import main
from umeta.train import train


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """A tiny table model trained for a few steps on the synthetic prior."""
    cfg = table_config(tmp_path_factory.mktemp("tables") / "run")
    return str(train(cfg, progress=False).run_dir / "checkpoints" / "last.safetensors")


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def mixed_rows(n=80, seed=0):
    """Two groups: numbers (one missing), a category column, a label column."""
    rng = np.random.default_rng(seed)
    group = np.arange(n) % 2
    x = rng.normal(size=(n, 2)) + 5 * group[:, None]
    rows = [[f"{a:.3f}", "" if i == 3 else f"{b:.3f}", ["red", "blue"][g], ["no", "yes"][g]]
            for i, ((a, b), g) in enumerate(zip(x, group))]
    return rows


def run(*args):
    return subprocess.run([sys.executable, "-m", "umeta", *args], capture_output=True, text=True,
                          timeout=600)


def test_cluster_detect_embed_a_csv_with_categories_and_missing_values(table_model, tmp_path):
    data = write_csv(tmp_path / "t.csv", ["a", "b", "colour", "label"], mixed_rows())
    out = tmp_path / "c.csv"
    proc = run("cluster", str(data), "--n-clusters", "2", "--checkpoint", table_model,
               "--label-column", "label", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "clustered 80 samples" in proc.stdout and "ARI" in proc.stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "id,cluster,confidence" and len(lines) == 81 and lines[1].startswith("row 0,")
    proc = run("detect", str(data), "--checkpoint", table_model, "--label-column", "label",
               "--anomaly-class", "yes", "--out", str(tmp_path / "d.csv"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "AUROC against the labels" in proc.stdout
    assert (tmp_path / "d.csv").read_text().splitlines()[0] == "id,score,anomaly"
    proc = run("embed", str(data), "--checkpoint", table_model, "--label-column", "label",
               "--out", str(tmp_path / "e.csv"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "e.csv").read_text().splitlines()[0] == "id,e0,e1"


@pytest.mark.parametrize("kind", ["headerless.csv", "tab.tsv", "arrays.npz"])
def test_other_table_formats(table_model, tmp_path, kind, capsys):
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 4]
    path = tmp_path / kind
    if kind.endswith(".npz"):
        np.savez(path, X=x, y=np.repeat([0, 1], 30))
    else:
        write_csv(path, None if kind.startswith("headerless") else ["p", "q", "r"],
                  [[f"{v:.4f}" for v in row] for row in x],
                  "\t" if kind.endswith(".tsv") else ",")
    code = main(["cluster", str(path), "--n-clusters", "2", "--checkpoint", table_model,
                 "--out", str(tmp_path / "c.csv"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "clustered 60 samples" in capsys.readouterr().out


def bad_tables(tmp_path):
    numbers = [[f"{v:.3f}" for v in row] for row in np.random.default_rng(0).normal(size=(20, 3))]
    return {
        "empty": (write_csv(tmp_path / "empty.csv", ["a", "b"], []), "no data rows"),
        "one row": (write_csv(tmp_path / "one.csv", ["a", "b"], [["1", "2"]]),
                    "only one data row"),
        "one column": (write_csv(tmp_path / "col.csv", ["a"], [[r[0]] for r in numbers]),
                       "at least 2 columns"),
        "constant": (write_csv(tmp_path / "const.csv", ["a", "b"], [["1", "2"]] * 10),
                     "every feature column is constant"),
        "inf": (write_csv(tmp_path / "inf.csv", ["a", "b", "c"], numbers[:5] + [["1", "inf", "2"]]),
                "replace it with a finite number"),
        "text": (write_csv(tmp_path / "text.csv", ["a", "b", "note"],
                           [r[:2] + [f"free text {i}"] for i, r in enumerate(numbers)]),
                 "holds free text"),
        "wide": (write_csv(tmp_path / "wide.csv", [f"c{j}" for j in range(10_000)],
                           [["1"] * 10_000, ["2"] * 10_000]), "reads at most 2048"),
    }


@pytest.mark.parametrize("case", ["empty", "one row", "one column", "constant", "inf", "text",
                                  "wide"])
def test_bad_tables_are_one_line_and_status_2(table_model, tmp_path, capsys, case):
    path, fragment = bad_tables(tmp_path)[case]
    code = main(["cluster", str(path), "--n-clusters", "2", "--checkpoint", table_model,
                 "--out", str(tmp_path / "out.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert err[0].startswith("umeta cluster: error:")


def test_more_clusters_than_rows_is_one_line(table_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", ["a", "b", "colour", "label"], mixed_rows(10))
    code = main(["cluster", str(data), "--n-clusters", "50", "--checkpoint", table_model,
                 "--label-column", "label", "--out", str(tmp_path / "c.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--n-clusters" in err[0] and "10" in err[0], err


def test_more_clusters_than_the_model_trained_on_cluster_the_standardised_values(
        table_model, tmp_path, capsys):
    from umeta.build import load_learner
    from umeta.estimators import MetaClusterer
    from umeta.numeric import standardize_columns

    data = write_csv(tmp_path / "t.csv", ["a", "b", "colour", "label"], mixed_rows(120))
    args = ["cluster", str(data), "--checkpoint", table_model, "--label-column", "label",
            "--no-progress", "--force"]
    assert main([*args, "--n-clusters", "12", "--out", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    assert "(k-means on standardised values: the table model trained on at most 10 clusters)" \
        in out
    assert main([*args, "--n-clusters", "3", "--out", str(tmp_path / "c.csv")]) == 0
    assert "on meta-learned features" in capsys.readouterr().out
    # the values are each column's z-score against the context (the whole of a short table)
    learner = load_learner(table_model)
    x = np.random.default_rng(0).normal(3, 2, size=(150, 4)).astype(np.float32)
    model = MetaClusterer(learner, 12).fit(x)
    assert model.space_ == "values" and model.algorithm_ == "kmeans"
    values = learner.standard_values(torch.as_tensor(x), model.context_)
    torch.testing.assert_close(values.double(), standardize_columns(x), rtol=1e-4, atol=1e-4)
    assert model.cluster_centers_.shape == (12, 4)
    assert model.predict(x).tolist() == model.labels_.tolist()
    assert MetaClusterer(learner, 10).fit(x).space_ == "embedding"
    assert MetaClusterer(learner).fit(x).space_ == "embedding"  # k estimated in 2 .. 10


def test_a_table_model_refuses_images_and_image_flags(table_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", ["a", "b", "colour", "label"], mixed_rows())
    code = main(["cluster", str(data), "--n-clusters", "2", "--checkpoint", table_model,
                 "--invert", "--out", str(tmp_path / "c.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "for images" in err[0]
    (tmp_path / "imgs").mkdir()
    code = main(["cluster", str(tmp_path / "imgs"), "--checkpoint", table_model,
                 "--out", str(tmp_path / "c2.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "the model reads tables" in err[0]


def test_a_shipped_table_model_is_the_default_for_tables(table_model, tmp_path, monkeypatch,
                                                         capsys):
    """Once umeta.pretrained.SHIPPED has a 'tables' entry, tables use it with no flag."""
    import umeta.pretrained as pretrained
    from umeta.build import export_learner

    weights = tmp_path / "weights"
    export_learner(table_model, weights / "builtin-tables.safetensors")
    shipped = pretrained.ShippedModel("builtin-tables.safetensors",
                                      pretrained.sha256_of(weights / "builtin-tables.safetensors"),
                                      "test", ())
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    monkeypatch.setitem(pretrained.SHIPPED, "tables", shipped)
    data = write_csv(tmp_path / "t.csv", ["a", "b", "colour", "label"], mixed_rows())
    code = main(["cluster", str(data), "--n-clusters", "2", "--label-column", "label",
                 "--out", str(tmp_path / "c.csv"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "used the built-in tables model" in captured.err
    assert "(spectral on meta-learned features)" in captured.out
    numbers = write_csv(tmp_path / "n.csv", ["a", "b"], [r[:1] + ["1.5"] for r in mixed_rows()])
    code = main(["cluster", str(numbers), "--n-clusters", "2", "--checkpoint", "none",
                 "--out", str(tmp_path / "raw.csv"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "(k-means on raw features)" in captured.out
    assert "built-in" not in captured.err


def test_tables_are_clustered_spectrally_by_default(table_model, tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", ["a", "b", "colour", "label"], mixed_rows(60))
    args = ["cluster", str(data), "--checkpoint", table_model, "--n-clusters", "3",
            "--label-column", "label", "--no-progress", "--force", "--out", str(tmp_path / "c.csv")]
    assert main(args) == 0
    assert "(spectral on meta-learned features)" in capsys.readouterr().out
    assert main([*args, "--algorithm", "kmeans"]) == 0
    assert "(k-means on meta-learned features)" in capsys.readouterr().out
    assert main([*args, "--refine", "soft"]) == 0  # refinement is of k-means prototypes
    assert "(k-means on meta-learned features)" in capsys.readouterr().out
    code = main([*args, "--algorithm", "spectral", "--refine", "soft"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "set --refine to 'none'" in err[0], err


def test_auto_is_spectral_only_with_ten_samples_a_cluster(table_model):
    from umeta.estimators import MetaClusterer

    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    assert MetaClusterer(table_model, 4).fit(x).algorithm_ == "spectral"
    assert MetaClusterer(table_model, 5).fit(x).algorithm_ == "kmeans"  # 8 rows a cluster
    assert MetaClusterer(table_model, k_range=(2, 4)).fit(x).algorithm_ == "spectral"
    assert MetaClusterer(table_model).fit(x).algorithm_ == "kmeans"  # k_range's top is 10
    assert MetaClusterer(n_clusters=2).fit(x).algorithm_ == "kmeans"  # no learner: k-means++
