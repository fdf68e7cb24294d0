"""Near-copy detection: names, content hash, fingerprint invariances and the shared-row test."""

from __future__ import annotations

import numpy as np
import pytest

from umeta.data.table_copies import (compare_tables, content_hash, find_near_copies,
                                     fingerprint, match_columns, source_name)
from umeta.data.tables import Table, load_table


def make_table(x, name, y=None) -> Table:
    x = np.asarray(x, dtype=np.float32)
    d = x.shape[1]
    return Table(x, y, tuple(f"c{j}" for j in range(d)), np.zeros(d, bool), name, name)


def mixture(seed: int, n: int = 600, d: int = 6) -> np.ndarray:
    """Three skewed, correlated clusters with columns of different scales."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(3, d))
    x = centers[rng.integers(0, 3, n)] + rng.gamma(2.0, size=(n, d)) @ rng.normal(size=(d, d))
    return x * rng.uniform(0.1, 100, d)


def disguise(x: np.ndarray, seed: int, keep: float = 1.0) -> np.ndarray:
    """Rows shuffled (and subsampled to ``keep``), columns shuffled, each column rescaled by a
    random positive factor and shifted."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(x))[:int(round(keep * len(x)))]
    cols = rng.permutation(x.shape[1])
    return x[rows][:, cols] * rng.uniform(0.01, 1000, x.shape[1]) + rng.normal(0, 50,
                                                                            x.shape[1])


@pytest.mark.parametrize("key, source", [
    ("adbench-classical/14_glass", "glass"), ("pmlb/glass", "glass"),
    ("pmlb/breast_cancer_wisconsin", "breast_cancer_wisconsin_diagnostic"),
    ("adbench-classical/43_WDBC", "breast_cancer_wisconsin_diagnostic"),
    ("pmlb/wdbc", "breast_cancer_wisconsin_diagnostic"),
    ("adbench-classical/4_breastw", "breast_cancer_wisconsin_original"),
    ("adbench-classical/22_magic.gamma", "magic"),
    ("pmlb/1595_poker", "poker"),
    ("clustering-data-v1/graves/ring", "graves_ring"), ("pmlb/ring", "ring"),
    ("pmlb/vowel", "vowel"), ("adbench-classical/40_vowels", "vowels"),
])
def test_source_names(key, source):
    assert source_name(key) == source


def test_content_hash_ignores_row_and_column_order_only():
    x = mixture(0)
    rng = np.random.default_rng(1)
    shuffled = x[rng.permutation(len(x))][:, rng.permutation(x.shape[1])]
    assert content_hash(make_table(x, "a")) == content_hash(make_table(shuffled, "b"))
    assert content_hash(make_table(x, "a")) != content_hash(make_table(x * 2, "b"))


def test_fingerprint_signatures_are_invariant():
    x = mixture(0, n=4000)
    fx = fingerprint(make_table(x, "a"))
    fy = fingerprint(make_table(disguise(x, seed=3, keep=0.6), "b"))
    pairs, dist = match_columns(fx, fy)
    assert len(pairs) == x.shape[1] and dist.max() < 0.1
    exact = fingerprint(make_table(disguise(x, seed=4), "c"))  # no subsampling: equal
    _, dist = match_columns(fx, exact, col_tol=1e-3)
    assert len(dist) == x.shape[1] and dist.max() < 1e-4


@pytest.mark.parametrize("keep", [1.0, 0.7, 0.5])
def test_disguised_copies_share_rows(keep):
    x = mixture(0)
    a, b = make_table(x, "x/original"), make_table(disguise(x, seed=5, keep=keep), "y/copy")
    hit = compare_tables(a, b)
    assert hit is not None and "rows" in hit.reasons and hit.shared_rows > 0.9
    assert hit.chance_rows < 0.05 and "name" not in hit.reasons


def test_copy_with_a_dropped_column_and_rounded_values():
    x = mixture(2)
    copy = np.round(disguise(x, seed=6, keep=0.8)[:, 1:], 1)
    hit = compare_tables(make_table(x, "a"), make_table(copy, "b"))
    assert hit is not None and "rows" in hit.reasons


def test_unrelated_tables_are_not_copies():
    a, b = make_table(mixture(0), "a"), make_table(mixture(1), "b")
    assert compare_tables(a, b) is None
    # same generator and marginals, different rows: not a copy either
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    hit = compare_tables(make_table(u, "u"), make_table(v, "v"))
    assert hit is None


def test_few_value_patterns_are_no_evidence():
    """Binary columns: any large table holds the 8 patterns of 3 binary columns."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2, (300, 3))
    large = rng.integers(0, 2, (20000, 3))
    assert compare_tables(make_table(small, "s"), make_table(large, "l")) is None


def test_common_chance_twins_are_no_evidence():
    """Two independent samples of a narrow diagonal, rounded to 0.1: most rows have a twin,
    but so do half of them against the shuffled table."""
    def diagonal(n, seed):
        rng = np.random.default_rng(seed)
        t = rng.uniform(0, 10, n)
        return np.round(np.stack([t, t + rng.normal(scale=0.3, size=n)], 1), 1)

    a, b = make_table(diagonal(300, 0), "a"), make_table(diagonal(8000, 10), "b")
    assert compare_tables(a, b) is None


def test_find_near_copies_reports_name_hash_and_rows():
    x = mixture(0)
    train = [make_table(x, "pmlb/wdbc"), make_table(mixture(1), "pmlb/other")]
    evaluation = [make_table(disguise(x, 8, keep=0.7), "adbench-classical/43_WDBC"),
                  make_table(x, "pmlb/exact"), make_table(mixture(2), "pmlb/new")]
    found = {(h.a, h.b): set(h.reasons) for h in find_near_copies(train, evaluation)}
    assert found == {("pmlb/wdbc", "adbench-classical/43_WDBC"): {"name", "rows"},
                     ("pmlb/wdbc", "pmlb/exact"): {"hash", "rows"}}


@pytest.mark.realdata
@pytest.mark.slow
def test_real_near_copies(shared_data):
    def table(key):
        return load_table(key, shared_data)

    for a, b in [("pmlb/wdbc", "adbench-classical/43_WDBC"),
                 ("pmlb/wine_recognition", "adbench-classical/45_wine"),
                 ("pmlb/satimage", "adbench-classical/19_landsat")]:
        hit = compare_tables(table(a), table(b))
        assert hit is not None and {"name", "rows"} <= set(hit.reasons)
    assert compare_tables(table("pmlb/iris"), table("pmlb/penguins")) is None
