"""B8 harness: baselines, summaries against hand computation, leave-data-set-out, a full run."""

from __future__ import annotations

import gzip
import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy import stats
from sklearn.metrics import adjusted_rand_score

from conftest import REPO_ROOT
from umeta.data.tables import NOISE, Table
from umeta.errors import UmetaError
from umeta.metrics import auroc

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import b8_tables  # noqa: E402
import table_baselines  # noqa: E402


def blobs(n: int = 200, k: int = 3, d: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return (rng.normal(scale=0.3, size=(n, d)) + 10.0 * np.eye(k, d)[y]).astype(np.float32), y


def table(x, y, name, target="classes") -> Table:
    d = x.shape[1]
    return Table(np.asarray(x, np.float32), np.asarray(y, np.int64),
                 tuple(f"x{j}" for j in range(d)), np.zeros(d, bool), name, name, target)


# ----------------------------------------------------------------------------- baselines

@pytest.mark.parametrize("name", list(table_baselines.CLUSTERING))
def test_clustering_baselines_find_separated_blobs(name):
    x, y = blobs()
    labels, _ = table_baselines.cluster_labels(name, x, 3, seed=0)
    assert adjusted_rand_score(y, labels) > 0.95


def test_subsampled_baseline_labels_every_row_from_its_nearest_fitted_row(monkeypatch):
    monkeypatch.setitem(table_baselines.FIT_ROWS, "ward", 60)
    x, y = blobs(300)
    labels, note = table_baselines.cluster_labels("ward", x, 3, seed=0)
    assert note == "fit on 60 rows" and labels.shape == (300,)
    assert adjusted_rand_score(y, labels) > 0.95


def test_standardise_imputes_medians_and_keeps_constant_columns_finite():
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [np.nan, 5.0, 4.0]])
    z = table_baselines.standardise(x)
    ref = np.array([[1.0, 5.0, 3.0], [3.0, 5.0, 2.0], [2.0, 5.0, 4.0]])
    np.testing.assert_allclose(z[:, [0, 2]], stats.zscore(ref[:, [0, 2]]))
    np.testing.assert_array_equal(z[:, 1], 0.0)


@pytest.mark.parametrize("name", list(table_baselines.ANOMALY))
def test_anomaly_baselines_rank_far_outliers_first(name):
    if name in ("ecod", "copod"):
        pytest.importorskip("pyod", reason="ECOD and COPOD are in the optional 'bench' extra")
    rng = np.random.default_rng(0)
    far = rng.normal(size=(10, 4))
    far *= 8.0 / np.linalg.norm(far, axis=1, keepdims=True)  # scattered, 8 units out
    x = np.concatenate([rng.normal(size=(200, 4)), far])
    scores, _ = table_baselines.anomaly_scores(name, x, seed=0)
    assert auroc(np.repeat([0, 1], [200, 10]), scores) > 0.95


@pytest.mark.parametrize("cap", [None, 40])
def test_knn_scores_equal_a_loop(monkeypatch, cap):
    monkeypatch.setitem(table_baselines.FIT_ROWS, "knn", cap)
    x = np.random.default_rng(1).normal(size=(100, 3))
    scores, _ = table_baselines.anomaly_scores("knn", x, seed=0)
    z = table_baselines.standardise(x)
    fitted = np.arange(100) if cap is None else table_baselines.fit_rows(100, cap, 0)
    for i in range(100):
        others = [j for j in fitted if j != i]
        assert scores[i] == pytest.approx(np.sort(np.linalg.norm(z[others] - z[i], axis=1))[4])


# ----------------------------------------------------------------------------- summaries

def test_summarise_matches_hand_computation():
    a = {"t1": 0.9, "t2": 0.5, "t3": 0.2, "t4": 0.6}
    b = {"t1": 0.7, "t2": 0.6, "t3": 0.1, "t4": 0.4}
    u = {"t1": 1.0, "t2": 0.8, "t3": 0.3, "t4": 0.5}
    values = {t: {"a": {"ari": a[t]}, "b": {"ari": b[t]}, "u": {"ari": u[t]}} for t in a}
    values["t5"] = {"a": {"ari": 0.0}, "b": {"ari": 0.0}}  # u may not report t5
    training = {"a": "none", "b": "none", "u": "meta-trained"}
    rows = {(r["method"], r["metric"]): r for r in
            b8_tables.summarise(values, ["ari"], ["a", "b"], "u", training, "all")}
    assert rows[("a", "ari")]["mean"] == pytest.approx(np.mean(list(a.values())), abs=1e-4)
    assert rows[("a", "ari")]["n_tasks"] == 4
    # ranks per table (1 = best): u 1,1,1,2; a 2,3,2,1; b 3,2,3,3
    assert rows[("u", "mean_rank_ari")]["mean"] == pytest.approx(1.25)
    assert rows[("a", "mean_rank_ari")]["mean"] == pytest.approx(2.0)
    gain = rows[("u", "ari_gain_vs_best_baseline")]
    assert gain["vs"] == "a" and gain["mean"] == pytest.approx(0.1, abs=1e-4)
    p = stats.wilcoxon(list(u.values()), list(a.values())).pvalue
    assert rows[("u", "wilcoxon_p_ari")]["mean"] == pytest.approx(p, abs=1e-4)
    alone = {(r["method"], r["metric"]): r for r in
             b8_tables.summarise(values, ["ari"], ["a", "b"], None, training, "all")}
    assert alone[("a", "ari_gain_vs_runner_up")]["vs"] == "b"
    assert alone[("a", "ari")]["n_tasks"] == 5


def test_run_task_scores_skips_and_survives_a_failing_method():
    x, y = blobs(90)
    y = y.copy()
    y[:5] = NOISE
    t = table(x, y, "c/one")
    calls = []

    def perfect(tab):
        calls.append(tab.name)
        return np.where(tab.y < 0, 7, tab.y), ""

    def broken(tab):
        raise RuntimeError("out of memory")

    values, rows = b8_tables.run_task(
        "clustering", [t, table(x, y, "c/two")], {"perfect": perfect, "broken": broken},
        {"perfect": "none", "broken": "meta-trained"}, {"perfect": {"c/two"}}, log=lambda s: 0)
    assert calls == ["c/one"] and "perfect" not in values["c/two"]
    assert values["c/one"]["perfect"] == {"ari": 1.0, "nmi": 1.0, "clustering_accuracy": 100.0}
    assert values["c/one"]["broken"]["ari"] == 0.0
    note = next(r["note"] for r in rows if r["method"] == "broken")
    assert note.startswith("failed (RuntimeError: out of memory)")


# ----------------------------------------------------------------------------- leave-out

def write_pmlb(root, name, x, y):
    folder = root / "tabular/pmlb/datasets" / name
    folder.mkdir(parents=True)
    lines = ["\t".join([f"f{j}" for j in range(x.shape[1])] + ["target"])]
    lines += ["\t".join([*(f"{v:.6g}" for v in row), str(lab)]) for row, lab in zip(x, y)]
    with gzip.open(folder / f"{name}.tsv.gz", "wt") as handle:
        handle.write("\n".join(lines) + "\n")


@pytest.fixture
def root(tmp_path):
    """pmlb: heart_x (B8), iris_copy (a near-copy of heart_x, dropped by the rule), tiny_iris
    (too few rows), dev_table (not reserved); clustering-data-v1: wut/blobs; adbench: 1_pts."""
    x, y = blobs(240, k=4, d=5, seed=1)
    write_pmlb(tmp_path, "heart_x", x, y)
    write_pmlb(tmp_path, "iris_copy", x[::-1] * 3.0 + 1.0, y[::-1])
    write_pmlb(tmp_path, "tiny_iris", *blobs(60, seed=2))
    write_pmlb(tmp_path, "dev_table", *blobs(200, seed=3))
    wut = tmp_path / "tabular/clustering-data-v1/wut"
    wut.mkdir(parents=True)
    for battery in ("fcps", "graves", "sipu"):
        (wut.parent / battery).mkdir()
    bx, by = blobs(150, seed=4)
    with gzip.open(wut / "blobs.data.gz", "wt") as f:
        f.write("\n".join(f"{a} {b}" for a, b in bx) + "\n")
    with gzip.open(wut / "blobs.labels0.gz", "wt") as f:
        f.write("\n".join(str(v + 1) for v in by) + "\n")
    ad = tmp_path / "anomaly/adbench-classical"
    ad.mkdir(parents=True)
    rng = np.random.default_rng(5)
    np.savez(ad / "1_pts.npz", X=np.concatenate([rng.normal(size=(150, 3)),
                                                 rng.normal(size=(8, 3)) + 6]),
             y=np.repeat([0, 1], [150, 8]))
    return tmp_path


def test_pmlb_rule_keeps_reserved_tables_in_range_without_near_copies(root):
    assert b8_tables.b8_pmlb_tables(root) == ["pmlb/heart_x"]


def test_excluded_tables_by_name_and_by_content(root):
    found = b8_tables.excluded_tables(["synthetic:mixtures", "pmlb/iris_copy", "pmlb/dev_table"],
                                      ["pmlb/heart_x", "clustering-data-v1/wut/blobs"], root)
    assert list(found) == ["pmlb/heart_x"]
    assert found["pmlb/heart_x"][0]["a"] == "pmlb/iris_copy"
    assert "rows" in found["pmlb/heart_x"][0]["reasons"]
    with pytest.raises(UmetaError, match="'pmlb/unknown' cannot be checked"):
        b8_tables.excluded_tables(["pmlb/unknown"], ["pmlb/heart_x"], root)


def test_training_tables_from_json_checkpoint_or_attribute(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(["pmlb/a"]))
    (tmp_path / "doc.json").write_text(json.dumps({"training_tables": ["pmlb/b"]}))
    meta = {"format": "umeta-checkpoint-1", "config": {"training_tables": ["pmlb/c"]}}
    save_file({"w": torch.zeros(1)}, str(tmp_path / "m.safetensors"),
              metadata={"umeta": json.dumps(meta)})
    save_file({"w": torch.zeros(1)}, str(tmp_path / "bare.safetensors"),
              metadata={"umeta": json.dumps({"config": {}})})
    read = b8_tables.read_training_tables
    assert read(str(tmp_path / "list.json"), None) == ["pmlb/a"]
    assert read(str(tmp_path / "doc.json"), None) == ["pmlb/b"]
    assert read(str(tmp_path / "m.safetensors"), None) == ["pmlb/c"]
    assert read(None, type("M", (), {"training_tables": ("pmlb/d",)})) == ["pmlb/d"]
    with pytest.raises(UmetaError, match="records no training_tables"):
        read(str(tmp_path / "bare.safetensors"), None)
    with pytest.raises(UmetaError, match="pass --training-tables"):
        read(None, object())


DUMMY = '''
import numpy as np

class Dummy:
    name = "dummy"
    training = "label-free"
    training_tables = ["synthetic:mixtures", "pmlb/iris_copy", "pmlb/dev_table"]

    def cluster(self, x, k):
        x = np.nan_to_num(x)
        ranks = np.argsort(np.argsort(x[:, 0]))
        return ranks * k // len(x)

    def score(self, x):
        x = np.nan_to_num(x)
        return np.abs(x - np.median(x, 0)).sum(1)

def make(scale="1"):
    return Dummy()
'''


def test_full_run_with_a_method_refuses_its_near_copies(root, tmp_path, monkeypatch):
    (tmp_path / "dummy_method.py").write_text(DUMMY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(b8_tables, "SPEED_SHAPES", ((500, 5),))
    out = tmp_path / "b8.json"
    b8_tables.main(["--data-dir", str(root), "--method", "dummy_method:make",
                    "--method-option", "scale=2", "--baselines", "kmeans,gmm,iforest,knn",
                    "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "B8" and doc["excluded"].keys() == {"pmlb/heart_x"}
    tables = set(doc["protocol"]["clustering"]["tables"] + doc["protocol"]["anomaly"]["tables"])
    assert not any(r["setting"] in tables for r in doc["results"])
    per_table = {(r["method"], r["setting"]) for r in doc["per_table"]}
    assert ("dummy", "pmlb/heart_x") not in per_table and ("kmeans", "pmlb/heart_x") in per_table
    assert ("dummy", "clustering-data-v1/wut/blobs") in per_table
    assert ("dummy", "adbench-classical/1_pts") in per_table
    metrics = {(r["method"], r["metric"], r["setting"]) for r in doc["results"]}
    assert ("dummy", "ari_gain_vs_best_baseline", "clustering: all tables") in metrics
    assert ("dummy", "auroc_gain_vs_best_baseline", "anomaly: all tables") in metrics
    assert ("dummy", "rows_per_s", "cluster 500x5") in metrics
    assert doc["protocol"]["clustering"]["tables"] == ["clustering-data-v1/wut/blobs",
                                                       "pmlb/heart_x"]
    assert {r["training"] for r in doc["results"] + doc["per_table"]
            if r["method"] == "dummy"} == {"label-free"}
    with pytest.raises(UmetaError, match="must look like package.module:factory"):
        b8_tables.main(["--data-dir", str(root), "--method", "dummy_method", "--out",
                        str(out)])


def test_full_run_with_the_table_model(root, tmp_path, monkeypatch):
    """The harness runs umeta.table_method:load (a tiny table model of the synthetic prior) on
    every table, and records its (empty) list of training tables."""
    from conftest import table_config
    from umeta.train import train

    cfg = table_config(tmp_path / "run", steps=3)
    checkpoint = train(cfg, progress=False).run_dir / "checkpoints" / "last.safetensors"
    monkeypatch.setattr(b8_tables, "SPEED_SHAPES", ((500, 5),))
    out = tmp_path / "b8.json"
    b8_tables.main(["--data-dir", str(root), "--method", "umeta.table_method:load",
                    "--method-option", f"checkpoint={checkpoint}", "--baselines",
                    "kmeans,iforest", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["training_tables"] == [] and doc["excluded"] == {}
    per_table = [r for r in doc["per_table"] if r["method"] == "umeta-tables"]
    assert {r["setting"] for r in per_table} == set(doc["protocol"]["clustering"]["tables"]
                                                   + doc["protocol"]["anomaly"]["tables"])
    assert not any("failed" in r.get("note", "") for r in per_table)
    assert ("umeta-tables", "rows_per_s", "score 500x5") in {
        (r["method"], r["metric"], r["setting"]) for r in doc["results"]}
