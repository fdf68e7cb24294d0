"""A user's own table, read for clustering and anomaly detection: CSV, TSV, npz or Parquet.

:func:`read_user_table` returns a :class:`~umeta.data.tables.Table`:

* **Formats**: ``.csv`` (delimiter sniffed among ``,`` ``;`` tab ``|``), ``.tsv``, ``.txt``
  (either), each optionally ``.gz``; ``.npz`` with ``X`` (N, D) and optionally ``y``;
  ``.parquet`` / ``.pq`` (needs pyarrow, an optional dependency).
* **Header**: detected unless ``header`` says. The first row is a header when one of its cells
  is text while the rest of that column is numbers, or when all its cells are text and none of
  them occurs again in its column. Without a header, columns are named ``column 0``,
  ``column 1``, ...
* **Label column**: ``label_column`` (a name) is left out of the features; its values become
  ``y`` (class codes, in sorted order; an npz's ``y`` is its label column). A feature column named like a label (``target``,
  ``label``, ``class``, ``y``, plurals, any case) raises :class:`LabelLikeColumnWarning`.
* **Values**: numbers as they are (scaling is the model's job). Empty cells and ``NA``, ``N/A``,
  ``NaN``, ``null``, ``None``, ``?`` are missing: NaN, kept unless ``missing="error"``. Text
  columns with at most :data:`MAX_CATEGORIES` distinct values (and at most half as many as
  there are rows) become **category codes** ``0 .. K-1`` (sorted categories, listed in
  ``Table.categories``; ``Table.categorical`` flags them); they are not one-hot encoded, so a
  column stays a column and the model decides how to embed it. Booleans are codes 0/1.
* **Refused**, each with one :class:`~umeta.errors.UmetaError` line: no rows; one row (nothing
  to group or compare); no feature column; more than :data:`MAX_COLUMNS` feature columns;
  every feature column constant; an infinite value; a free-text column (too many distinct
  values to be categories); a mostly numeric column with a stray text cell; rows of unequal
  length. One feature column is allowed: grouping or screening a single measurement (amounts,
  durations) is well defined.

:func:`check_n_clusters` is the check for ``n_clusters`` against the rows of a table.
"""

from __future__ import annotations

import csv
import gzip
import io
import numbers
import re
import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from umeta.data.tables import Table
from umeta.errors import UmetaError

__all__ = ["read_user_table", "check_n_clusters", "LabelLikeColumnWarning", "MAX_COLUMNS",
           "MAX_CATEGORIES", "USER_TABLE_EXTENSIONS"]

MAX_COLUMNS = 2048
"""Most feature columns read. Every table of the public benchmark collections has fewer
(ADBench's InternetAds is the widest, 1555); the model's cost grows with rows x columns, so a
wider table should be reduced first (PCA, or a selection of columns)."""
MAX_CATEGORIES = 50
"""Most distinct values of a text column read as categories; more is free text."""
USER_TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".npz",
                         ".parquet", ".pq")
_MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
_LABEL_LIKE = {"target", "targets", "label", "labels", "class", "classes", "y"}


class LabelLikeColumnWarning(UserWarning):
    """A column named like labels (target, label, class, y) is read as a feature."""


def read_user_table(path: str | Path, *, label_column: str | None = None,
                    header: bool | None = None,
                    missing: Literal["keep", "error"] = "keep") -> Table:
    r"""Read a user's table (see the module docstring for the rules).

    Parameters
    ----------
    path : str or Path
    label_column : str, optional
        Name of a column to leave out of the features; its values become ``y``. For a
        headerless text table, name it ``"column J"``.
    header : bool, optional
        Whether a text table's first row holds the column names; detected when None.
    missing : {"keep", "error"}
        ``"keep"``: missing values are NaN in ``x``. ``"error"``: a missing value is refused,
        naming the first one (for methods that take no missing values).

    Returns
    -------
    Table
        ``x`` float32 (N, D), ``columns``, ``categorical`` and ``categories``, ``y`` (class
        codes of the label column, else None) and ``classes`` (their labels), ``name`` the
        file name, ``source`` the path.

    Raises
    ------
    UmetaError
        See the module docstring.

    Examples
    --------
    >>> import tempfile
    >>> shop = Path(tempfile.mkdtemp()) / "shop.csv"
    >>> _ = shop.write_text("price,colour,segment\n3.5,red,a\n,blue,b\n2,red,a\n")
    >>> t = read_user_table(shop, label_column="segment")
    >>> t.columns, t.categorical.tolist(), t.classes, t.y.tolist()
    (('price', 'colour'), [False, True], ('a', 'b'), [0, 1, 0])
    >>> float(t.x[1, 0])  # the missing price
    nan
    """
    p = Path(path)
    what = repr(str(p))
    if not p.is_file():
        raise UmetaError(f"table {what} does not exist; check the path")
    suffix = p.name.lower()
    if suffix.endswith(".npz"):
        names, columns = _npz_columns(p, what)
    elif suffix.endswith((".parquet", ".pq")):
        names, columns = _parquet_columns(p, what)
    elif suffix.endswith(USER_TABLE_EXTENSIONS):
        names, columns = _text_columns(p, what, header)
    else:
        raise UmetaError(f"cannot read {what}: unknown file type; give a table as "
                         f"{', '.join(USER_TABLE_EXTENSIONS)}")
    names = _unique_names(names)
    if label_column is None and suffix.endswith(".npz") and "y" in names:
        label_column = "y"  # an npz's labels are its y
    if label_column is not None and label_column not in names:
        raise UmetaError(f"label_column {label_column!r} is not a column of {what}; its columns "
                         f"are {names[:20]}{' ...' if len(names) > 20 else ''}")
    n_rows = len(columns[0]) if columns else 0
    if n_rows == 0:
        raise UmetaError(f"{what} has no data rows; give a table with at least 2 rows")
    if n_rows == 1:
        raise UmetaError(f"{what} has only one data row; clustering and anomaly scores need at "
                         f"least 2 rows")
    y, classes = None, ()
    if label_column is not None:
        j = names.index(label_column)
        y, classes = _label_codes(columns.pop(j))
        names.pop(j)
    if not names:
        raise UmetaError(f"{what} has no feature columns besides the label; add feature columns")
    if len(names) > MAX_COLUMNS:
        raise UmetaError(f"{what} has {len(names)} feature columns; umeta reads at most "
                         f"{MAX_COLUMNS}: reduce them first (e.g. PCA to 256 components, or "
                         f"select columns)")
    for name in names:
        if re.sub(r"[^a-z]", "", name.lower()) in _LABEL_LIKE:
            warnings.warn(f"{what}: column {name!r} looks like labels but is read as a feature; "
                          f"pass label_column={name!r} to leave it out", LabelLikeColumnWarning,
                          stacklevel=2)
    x = np.empty((n_rows, len(names)), dtype=np.float32)
    categorical = np.zeros(len(names), dtype=bool)
    categories: dict[str, tuple[str, ...]] = {}
    for j, (name, col) in enumerate(zip(names, columns)):
        values, cats = _feature_values(col, name, what)
        x[:, j] = values
        if cats is not None:
            categorical[j] = True
            categories[name] = cats
    _check_values(x, names, what, missing)
    return Table(x, y, tuple(names), categorical, p.name, str(p),
                 "classes" if y is not None else None, categories, classes)


def check_n_clusters(n_clusters, n_rows: int, what: str = "the data") -> int:
    """``n_clusters`` as an int, checked against the rows to cluster.

    Raises
    ------
    UmetaError
        Unless ``n_clusters`` is an integer with ``1 <= n_clusters <= n_rows``.
    """
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, numbers.Integral):
        raise UmetaError(f"n_clusters must be a whole number; got {n_clusters!r}")
    if not 1 <= n_clusters <= n_rows:
        raise UmetaError(f"n_clusters={n_clusters} but {what} has {n_rows} rows; choose "
                         f"n_clusters between 1 and {n_rows}")
    return int(n_clusters)


# ----------------------------------------------------------------------------- formats

def _text_columns(p: Path, what: str, header: bool | None) -> tuple[list[str], list]:
    """Column names and the columns (lists of str) of a delimited text file."""
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rt", newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise UmetaError(f"cannot read {what} as text ({type(err).__name__}: {err}); save it as "
                         f"UTF-8 CSV") from None
    stem = p.name.lower().removesuffix(".gz")
    if stem.endswith(".tsv"):
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = [(line, row) for line, row in
                enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1)
                if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise UmetaError(f"cannot parse {what} ({err}); save it as plain CSV") from None
    if not rows:
        raise UmetaError(f"{what} is empty; give a table with at least 2 rows")
    width = len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise UmetaError(f"{what}: line {line} has {len(row)} fields but line "
                             f"{rows[0][0]} has {width}; fix that line (delimiter "
                             f"{delimiter!r})")
    cells = [[cell.strip() for cell in row] for _, row in rows]
    if header is None:
        header = _looks_like_header(cells)
    names = cells[0] if header else [f"column {j}" for j in range(width)]
    body = cells[1:] if header else cells
    names = [n or f"column {j}" for j, n in enumerate(names)]
    return names, [list(col) for col in zip(*body)] if body else [[] for _ in names]


def _looks_like_header(cells: list[list[str]]) -> bool:
    """The header rule of the module docstring."""
    first, body = cells[0], cells[1:]
    if not body:
        return not all(_is_number(c) or c.lower() in _MISSING for c in first)
    text_first = [not _is_number(c) and c.lower() not in _MISSING for c in first]
    for j, is_text in enumerate(text_first):
        column = [row[j] for row in body if row[j].lower() not in _MISSING]
        if is_text and column and all(_is_number(c) for c in column):
            return True
    if all(text_first):
        return all(first[j] not in {row[j] for row in body} for j in range(len(first)))
    return False


def _npz_columns(p: Path, what: str) -> tuple[list[str], list]:
    try:
        with np.load(p, allow_pickle=False) as data:
            if "X" not in data:
                raise UmetaError(f"{what} has no array 'X'; store the table as X (N, D) and "
                                 f"optionally labels y (N,)")
            x, y = data["X"], data["y"] if "y" in data else None
    except (OSError, ValueError) as err:
        raise UmetaError(f"cannot read {what} as npz ({err}); save it with numpy.savez") from None
    if x.ndim != 2:
        raise UmetaError(f"{what}: X has shape {x.shape}; a table is X of shape (N, D)")
    if y is not None and y.shape != (len(x),):
        raise UmetaError(f"{what}: y has shape {y.shape} but X has {len(x)} rows; give one "
                         f"label per row")
    names = [f"x{j}" for j in range(x.shape[1])]
    columns = list(x.T)
    if y is not None:
        names.append("y")
        columns.append(y)
    return names, columns


def _parquet_columns(p: Path, what: str) -> tuple[list[str], list]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UmetaError(f"reading Parquet ({what}) needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(p)
    except Exception as err:  # pyarrow raises its own error types for bad files
        raise UmetaError(f"cannot read {what} as Parquet ({type(err).__name__}: "
                         f"{str(err)[:120]})") from None
    return [str(n) for n in table.column_names], [c.to_numpy(zero_copy_only=False)
                                                  for c in table.columns]


# ----------------------------------------------------------------------------- values

def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unique_names(names: Sequence[str]) -> list[str]:
    """Repeated column names get ``.1``, ``.2``, ... (as pandas does)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(f"{name}.{count}" if count else name)
    return out


def _as_text(col) -> np.ndarray | None:
    """A column of cells as str (None marks missing), or None when it is numeric already."""
    arr = np.asarray(col)
    if arr.dtype.kind in "iufb":
        return None
    return np.array([None if v is None or (isinstance(v, float) and np.isnan(v))
                     or str(v).strip().lower() in _MISSING else str(v).strip() for v in arr],
                    dtype=object)


def _label_codes(col) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class codes of a label column (sorted values, numerically when they are numbers;
    missing labels are -1) and the label of each code, as text."""
    arr = np.asarray(col)
    text = _as_text(arr)
    if text is None:
        values = arr.astype(np.float64)
        known = np.isfinite(values)
    else:
        known = np.array([t is not None for t in text], dtype=bool)
        values = text
        if known.any() and all(_is_number(t) for t in text[known]):
            values = np.array([np.nan if t is None else float(t) for t in text])
    codes = np.full(len(arr), -1, dtype=np.int64)
    labels: tuple[str, ...] = ()
    if known.any():
        unique, codes[known] = np.unique(values[known], return_inverse=True)
        labels = tuple(_label_text(v) for v in unique)
    return codes, labels


def _label_text(value) -> str:
    """A label as text: whole numbers without a decimal point."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _feature_values(col, name: str, what: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """``(values (N,) float64 with NaN for missing, categories or None)`` of one column."""
    arr = np.asarray(col)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64), None
    if arr.dtype.kind == "b":
        return arr.astype(np.float64), ("False", "True")
    if arr.dtype.kind == "U":
        try:
            return arr.astype(np.float64), None  # all numbers: the fast path
        except ValueError:
            pass
    text = _as_text(arr)
    present = [t for t in text if t is not None]
    numeric = [_is_number(t) for t in present]
    n_rows = len(text)
    if present and sum(numeric) >= 0.9 * len(present) and not all(numeric):
        bad = next(i for i, t in enumerate(text) if t is not None and not _is_number(t))
        raise UmetaError(f"{what}: column {name!r} is numbers except data row {bad + 1}: "
                         f"{text[bad]!r}; fix that cell or leave it empty (missing)")
    if present and all(numeric):
        return np.array([np.nan if t is None else float(t) for t in text]), None
    categories = sorted(set(present))
    if len(categories) > min(MAX_CATEGORIES, max(2, n_rows // 2)):
        raise UmetaError(f"{what}: column {name!r} holds free text ({len(categories)} distinct "
                         f"values in {n_rows} rows; categories are at most "
                         f"{min(MAX_CATEGORIES, max(2, n_rows // 2))}); drop it or turn it into "
                         f"numbers")
    code = {c: float(i) for i, c in enumerate(categories)}
    return np.array([np.nan if t is None else code[t] for t in text]), tuple(categories)


def _check_values(x: np.ndarray, names: list[str], what: str, missing: str) -> None:
    """Refuse inf, all-constant features, and (with ``missing="error"``) missing values."""
    inf = np.isinf(x)
    if inf.any():
        i, j = np.argwhere(inf)[0]
        raise UmetaError(f"{what}: column {names[j]!r} data row {i + 1} is {x[i, j]}; replace it "
                         f"with a finite number or leave the cell empty (missing)")
    nan = np.isnan(x)
    if missing == "error" and nan.any():
        i, j = np.argwhere(nan)[0]
        raise UmetaError(f"{what} has {int(nan.sum())} missing values (first: column "
                         f"{names[j]!r} data row {i + 1}); fill them in or drop those rows")
    if nan.all(0).any():
        j = int(np.argmax(nan.all(0)))
        raise UmetaError(f"{what}: column {names[j]!r} is empty (every value missing); drop it")
    lo, hi = np.nanmin(x, 0), np.nanmax(x, 0)
    if (lo == hi).all():
        raise UmetaError(f"{what}: every feature column is constant, so all rows are alike; "
                         f"give columns that vary")
