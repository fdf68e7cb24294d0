"""User tables: formats, header detection, label and categorical columns, and bad input."""

from __future__ import annotations

import gzip
import sys
import warnings

import numpy as np
import pytest

from umeta.data.table_input import (MAX_COLUMNS, LabelLikeColumnWarning, check_n_clusters,
                                    read_user_table)
from umeta.errors import UmetaError

ROWS = [[1.5, 2.0, 0.25], [3.0, -1.0, 0.5], [0.0, 4.5, 0.75], [2.5, 2.5, 1.0]]


def write(path, text: str):
    path.write_text(text)
    return path


def csv_text(rows, header=None, sep=","):
    lines = [sep.join(header)] if header else []
    lines += [sep.join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def test_csv_with_and_without_header_give_the_same_values(tmp_path):
    with_header = read_user_table(write(tmp_path / "a.csv", csv_text(ROWS, ["u", "v", "w"])))
    without = read_user_table(write(tmp_path / "b.csv", csv_text(ROWS)))
    np.testing.assert_array_equal(with_header.x, np.array(ROWS, np.float32))
    np.testing.assert_array_equal(without.x, with_header.x)
    assert with_header.columns == ("u", "v", "w")
    assert without.columns == ("column 0", "column 1", "column 2")
    assert with_header.y is None and not with_header.categorical.any()
    forced = read_user_table(tmp_path / "b.csv", header=True)  # the first row taken as names
    assert forced.x.shape == (3, 3) and forced.columns == ("1.5", "2.0", "0.25")


def test_tsv_gz_semicolon_csv_and_txt(tmp_path):
    gz = tmp_path / "t.tsv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(csv_text(ROWS, ["u", "v", "w"], sep="\t"))
    semicolon = write(tmp_path / "s.csv", csv_text(ROWS, ["u", "v", "w"], sep=";"))
    txt = write(tmp_path / "t.txt", csv_text(ROWS, ["u", "v", "w"], sep="\t"))
    for path in (gz, semicolon, txt):
        np.testing.assert_array_equal(read_user_table(path).x, np.array(ROWS, np.float32))


def test_label_column_is_left_out_and_coded(tmp_path):
    rows = [row + [lab] for row, lab in zip(ROWS, ["b", "a", "b", "c"])]
    table = read_user_table(write(tmp_path / "l.csv", csv_text(rows, ["u", "v", "w", "kind"])),
                            label_column="kind")
    assert table.columns == ("u", "v", "w") and table.x.shape == (4, 3)
    np.testing.assert_array_equal(table.y, [1, 0, 1, 2])
    numeric = read_user_table(write(tmp_path / "n.csv", csv_text(
        [row + [lab] for row, lab in zip(ROWS, [10, 9, 10, 2])], ["u", "v", "w", "target"])),
        label_column="target")
    np.testing.assert_array_equal(numeric.y, [2, 1, 2, 0])  # sorted as numbers: 2 < 9 < 10
    with pytest.raises(UmetaError, match="'kind2' is not a column"):
        read_user_table(tmp_path / "l.csv", label_column="kind2")


def test_label_like_feature_column_warns_with_the_caller_as_origin(tmp_path):
    path = write(tmp_path / "w.csv", csv_text(ROWS, ["u", "v", "Class"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_user_table(path)
    assert [w.category for w in caught] == [LabelLikeColumnWarning]
    assert caught[0].filename == __file__ and "label_column='Class'" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_user_table(path, label_column="Class")  # no warning once it is the label


def test_text_columns_become_category_codes_and_missing_values_nan(tmp_path):
    text = "size,colour,weight\nS,red,1.5\nM,,2\nS,blue,NA\nL,red,?\nM,blue,3\nS,red,1\n"
    table = read_user_table(write(tmp_path / "c.csv", text))
    assert table.categorical.tolist() == [True, True, False]
    assert table.categories == {"size": ("L", "M", "S"), "colour": ("blue", "red")}
    np.testing.assert_array_equal(table.x[:, 0], [2, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(table.x[:, 1], [1, np.nan, 0, 1, 0, 1])
    np.testing.assert_array_equal(table.x[:, 2], [1.5, 2, np.nan, np.nan, 3, 1])
    with pytest.raises(UmetaError, match=r"3 missing values \(first: column 'colour' data row 2"):
        read_user_table(tmp_path / "c.csv", missing="error")


def test_header_rule_for_all_text_tables(tmp_path):
    named = read_user_table(write(tmp_path / "h.csv", "a,b\nx,y\ny,x\nx,x\ny,y\n"))
    assert named.columns == ("a", "b") and named.x.shape == (4, 2)
    unnamed = read_user_table(write(tmp_path / "n.csv", "x,y\ny,x\nx,x\ny,y\n"))
    assert unnamed.columns == ("column 0", "column 1") and unnamed.x.shape == (4, 2)


def test_npz_uses_its_y_as_labels(tmp_path):
    x = np.array(ROWS)
    np.savez(tmp_path / "d.npz", X=x, y=np.array([3, 1, 3, 1]))
    table = read_user_table(tmp_path / "d.npz")
    np.testing.assert_array_equal(table.x, x.astype(np.float32))
    np.testing.assert_array_equal(table.y, [1, 0, 1, 0])
    np.savez(tmp_path / "bad.npz", X=np.zeros((2, 3, 4)))
    with pytest.raises(UmetaError, match=r"X has shape \(2, 3, 4\)"):
        read_user_table(tmp_path / "bad.npz")


def test_parquet_round_trip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"u": [1.0, 2.0, None, 4.0], "kind": ["a", "b", "a", None],
                      "flag": [True, False, True, True]})
    pq.write_table(table, tmp_path / "t.parquet")
    read = read_user_table(tmp_path / "t.parquet")
    assert read.columns == ("u", "kind", "flag")
    np.testing.assert_array_equal(read.x, [[1, 0, 1], [2, 1, 0], [np.nan, 0, 1], [4, np.nan, 1]])
    assert read.categorical.tolist() == [False, True, True]


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UmetaError, match="needs pyarrow: pip install pyarrow"):
        read_user_table(tmp_path / "t.parquet")


@pytest.mark.parametrize("text, match", [
    ("", "is empty"),
    ("a,b\n", "no data rows"),
    ("a,b\n1,2\n", "only one data row"),
    ("a,b\n1,2\n3,4\n", None),  # two rows are enough
    ("a\n1\n2\n3\n", None),  # one column is allowed
    ("a,b\n1,2\n1,2\n1,2\n", "every feature column is constant"),
    ("a,b\n1,2\ninf,3\n4,5\n", r"column 'a' data row 2 is inf"),
    ("a,b\n1,2\n3\n", "line 3 has 1 fields but line 1 has 2"),
    ("a,b\n1,x\n2,3\n4,5\n5,6\n6,7\n7,8\n8,9\n9,1\n1,2\n2,3\n",
     r"column 'b' is numbers except data row 1: 'x'"),
    ("a,b\n" + "".join(f"{i},note number {i}\n" for i in range(60)), "free text"),
    ("a,b\n1,\n2,\n3,\n", "column 'b' is empty"),
])
def test_bad_tables_raise_one_line(tmp_path, text, match):
    path = write(tmp_path / "bad.csv", text)
    if match is None:
        assert read_user_table(path).x.shape[0] >= 2
        return
    with pytest.raises(UmetaError, match=match) as err:
        read_user_table(path)
    assert "\n" not in str(err.value)


def test_too_many_columns_and_missing_or_unknown_files(tmp_path):
    np.savez(tmp_path / "wide.npz", X=np.random.default_rng(0).normal(size=(3, 10_000)))
    with pytest.raises(UmetaError, match=f"10000 feature columns; umeta reads at most "
                                         f"{MAX_COLUMNS}"):
        read_user_table(tmp_path / "wide.npz")
    with pytest.raises(UmetaError, match="does not exist"):
        read_user_table(tmp_path / "nope.csv")
    with pytest.raises(UmetaError, match="unknown file type"):
        read_user_table(write(tmp_path / "t.json", "{}"))


def test_check_n_clusters():
    assert check_n_clusters(3, 10) == 3 and check_n_clusters(np.int64(10), 10) == 10
    with pytest.raises(UmetaError, match="n_clusters=11 but the data has 10 rows"):
        check_n_clusters(11, 10)
    with pytest.raises(UmetaError, match="n_clusters=0"):
        check_n_clusters(0, 10)
    for bad in (2.5, True, "3"):
        with pytest.raises(UmetaError, match="whole number"):
            check_n_clusters(bad, 10)
