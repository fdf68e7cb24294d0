"""Benchmark table readers: tiny files in each collection's layout, and the real collections."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from umeta.data.tables import (NOISE, Table, data_root, list_tables, load_table, read_adbench,
                               read_clustering_data, read_pmlb)
from umeta.errors import UmetaError


@pytest.fixture
def root(tmp_path):
    """A data folder with one table of each collection (and one incomplete entry each)."""
    pmlb = tmp_path / "tabular/pmlb/datasets"
    (pmlb / "tiny").mkdir(parents=True)
    (pmlb / "absent").mkdir()  # a folder without its .tsv.gz
    with gzip.open(pmlb / "tiny/tiny.tsv.gz", "wt") as f:
        f.write("a\ttarget\tb\ttarget\n1.5\t3\t0\t1\n2.0\t1\t1\t0\n-1\t3\t2\t1\n")
    (pmlb / "tiny/metadata.yaml").write_text(
        "dataset: tiny\ntarget:\n  type: categorical\nfeatures:\n  - name: a\n"
        "    type: continuous\n  - name: b\n    type: categorical\n  - name: target.1\n"
        "    type: binary\n")
    cdv = tmp_path / "tabular/clustering-data-v1/wut"
    cdv.mkdir(parents=True)
    for battery in ("fcps", "graves", "sipu"):
        (cdv.parent / battery).mkdir()
    with gzip.open(cdv / "pts.data.gz", "wt") as f:
        f.write("0.0 1.0\n2.5e+000 3.0\n4 5\n6 7\n")
    with gzip.open(cdv / "pts.labels0.gz", "wt") as f:
        f.write("2\n0\n5\n2\n")
    with gzip.open(cdv / "nodata.labels0.gz", "wt") as f:
        f.write("1\n")
    ad = tmp_path / "anomaly/adbench-classical"
    ad.mkdir(parents=True)
    np.savez(ad / "7_small.npz", X=np.arange(6, dtype=np.int16).reshape(3, 2), y=[0, 1, 0])
    return tmp_path


def test_list_tables_skips_incomplete_entries(root):
    assert list_tables("pmlb", root) == ["pmlb/tiny"]
    assert list_tables("clustering-data-v1", root) == ["clustering-data-v1/wut/pts"]
    assert list_tables("adbench-classical", root) == ["adbench-classical/7_small"]
    with pytest.raises(UmetaError, match="unknown table collection 'uci'"):
        list_tables("uci", root)


def test_pmlb_reader_target_repeated_names_and_categorical_types(root):
    t = load_table("pmlb/tiny", root)
    assert t.columns == ("a", "b", "target.1")  # the first 'target' holds the labels
    np.testing.assert_array_equal(t.x, [[1.5, 0, 1], [2.0, 1, 0], [-1, 2, 1]])
    np.testing.assert_array_equal(t.y, [1, 0, 1])  # sorted target values 1 < 3
    assert t.categorical.tolist() == [False, True, True]
    assert t.x.dtype == np.float32 and t.target == "classes" and t.n_classes == 2
    assert t is load_table("pmlb/tiny", root)  # cached
    with pytest.raises(ValueError):
        t.x[0, 0] = 5.0  # cached arrays are read-only


def test_clustering_reader_maps_noise_and_renumbers_classes(root):
    t = load_table("clustering-data-v1/wut/pts", root)
    np.testing.assert_array_equal(t.x, [[0, 1], [2.5, 3], [4, 5], [6, 7]])
    np.testing.assert_array_equal(t.y, [0, NOISE, 1, 0])
    assert t.n_classes == 2 and t.columns == ("x0", "x1")


def test_adbench_reader(root):
    t = load_table("adbench-classical/7_small", root)
    assert t.x.dtype == np.float32 and t.target == "anomaly"
    np.testing.assert_array_equal(t.y, [0, 1, 0])
    assert read_adbench(t.source).name == "adbench-classical/7_small"


def test_missing_tables_and_roots(root, tmp_path, monkeypatch):
    with pytest.raises(UmetaError, match="table 'pmlb/nope' not found"):
        load_table("pmlb/nope", root)
    with pytest.raises(UmetaError, match="does not exist"):
        data_root(tmp_path / "elsewhere")
    monkeypatch.delenv("UMETA_SHARED_DATA", raising=False)
    with pytest.raises(UmetaError, match="set UMETA_SHARED_DATA"):
        data_root()
    with pytest.raises(ValueError, match="3 feature columns but 2 names"):
        Table(np.zeros((2, 3), np.float32), None, ("a", "b"), np.zeros(3, bool), "t", "t")


@pytest.mark.realdata
def test_real_collections(shared_data):
    assert len(list_tables("pmlb", shared_data)) == 164
    assert len(list_tables("clustering-data-v1", shared_data)) == 60  # sipu/worms_64 has no data
    assert len(list_tables("adbench-classical", shared_data)) == 43
    iris = load_table("pmlb/iris", shared_data)
    assert iris.shape == (150, 4) and np.bincount(iris.y).tolist() == [50, 50, 50]
    noisy = read_clustering_data(
        shared_data / "tabular/clustering-data-v1/graves/ring_noisy.data.gz")
    assert noisy.shape == (1050, 2) and (noisy.y == NOISE).sum() == 43 and noisy.n_classes == 2
    penguins = read_pmlb(shared_data / "tabular/pmlb/datasets/penguins/penguins.tsv.gz")
    assert np.isnan(penguins.x).sum() == 19 and penguins.categorical.sum() == 2
    glass = load_table("adbench-classical/14_glass", shared_data)
    assert glass.shape == (214, 7) and glass.y.sum() == 9
