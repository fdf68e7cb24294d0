"""Benchmark tables: the `Table` type and readers for the three public table collections.

Collections (folders under the shared data root, see ``../shared/data/README.md``):

* ``pmlb``: ``tabular/pmlb/datasets/<name>/<name>.tsv.gz``, a header row, tab-separated numbers;
  the first column named ``target`` holds the class labels (a later column of the same name is
  a feature, renamed ``target.1`` as pmlb's own reader does). Feature types come from the
  folder's ``metadata.yaml``: ``categorical``, ``nominal`` and ``binary`` columns are categorical.
* ``clustering-data-v1``: Gagolewski's suite, batteries fcps, graves, wut and sipu:
  ``<battery>/<name>.data.gz`` (whitespace-separated points, no header) and
  ``<battery>/<name>.labels0.gz`` (the reference partition, one integer a line; 0 = noise).
* ``adbench-classical``: ``anomaly/adbench-classical/<name>.npz`` with ``X`` and ``y``
  (1 = anomaly).

A table is named by its key, ``"<collection>/<name>"``: ``pmlb/iris``,
``clustering-data-v1/fcps/atom``, ``adbench-classical/14_glass``.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

from umeta.errors import UmetaError

__all__ = ["Table", "COLLECTIONS", "CLUSTERING_BATTERIES", "data_root", "list_tables",
           "load_table", "table_path", "read_pmlb", "read_clustering_data", "read_adbench"]

COLLECTIONS = ("pmlb", "clustering-data-v1", "adbench-classical")
CLUSTERING_BATTERIES = ("fcps", "graves", "wut", "sipu")
_FOLDERS = {"pmlb": "tabular/pmlb/datasets", "clustering-data-v1": "tabular/clustering-data-v1",
            "adbench-classical": "anomaly/adbench-classical"}
_CATEGORICAL_TYPES = {"categorical", "nominal", "binary"}
NOISE = -1  # the label of rows without a reference class (clustering-data-v1's label 0)


@dataclass(frozen=True)
class Table:
    """One table of a benchmark collection. Its arrays are read-only (tables are cached).

    Attributes
    ----------
    x : ndarray of shape (N, D), float32
        Features; NaN marks a missing value.
    y : ndarray of shape (N,), int64, or None
        ``target="classes"``: class index ``0 .. K-1``, ``NOISE`` (-1) for rows without a
        reference class (excluded from scoring). ``target="anomaly"``: 1 = anomaly, 0 = inlier.
    columns : tuple of str, length D
    categorical : ndarray of shape (D,), bool
        True for columns whose values are category codes (no order, no distance).
    name : str
        The key ``"<collection>/<name>"``.
    source : str
        The file the features were read from.
    target : {"classes", "anomaly"} or None
        What ``y`` holds.
    categories : dict of str to tuple of str
        For categorical columns read from text: the category of each code
        (``categories[column][code]``); empty for tables stored as numbers.
    classes : tuple of str
        For a user's table read with a label column: the label of each class index of ``y``
        (as text); empty otherwise.
    """

    x: np.ndarray
    y: np.ndarray | None
    columns: tuple[str, ...]
    categorical: np.ndarray
    name: str
    source: str
    target: Literal["classes", "anomaly"] | None = None
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n, d = self.x.shape
        if len(self.columns) != d or self.categorical.shape != (d,):
            raise ValueError(f"{self.name}: {d} feature columns but {len(self.columns)} names "
                             f"and {self.categorical.shape} categorical flags")
        if self.y is not None and self.y.shape != (n,):
            raise ValueError(f"{self.name}: {n} rows but labels of shape {self.y.shape}")
        for array in (self.x, self.y, self.categorical):
            if array is not None:
                array.setflags(write=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        """Distinct reference classes (labels >= 0); 0 without labels."""
        if self.y is None:
            return 0
        return int(np.unique(self.y[self.y >= 0]).size)


def data_root(root: str | Path | None = None) -> Path:
    """The shared data folder: ``root``, else ``$UMETA_SHARED_DATA``.

    Raises
    ------
    UmetaError
        When neither is given or the folder does not exist.
    """
    if root is None:
        root = os.environ.get("UMETA_SHARED_DATA")
        if root is None:
            raise UmetaError("no data folder given; pass root=... (the folder holding tabular/ "
                             "and anomaly/) or set UMETA_SHARED_DATA")
    path = Path(root)
    if not path.is_dir():
        raise UmetaError(f"data folder {str(path)!r} does not exist; give the folder that holds "
                         f"tabular/ and anomaly/")
    return path


def _check_collection(collection: str) -> None:
    if collection not in COLLECTIONS:
        raise UmetaError(f"unknown table collection {collection!r}; choose one of {COLLECTIONS}")


def list_tables(collection: str, root: str | Path | None = None) -> list[str]:
    """Keys of every readable table of ``collection``, sorted.

    pmlb folders without their ``.tsv.gz`` and clustering-data-v1 entries without their
    ``.data.gz`` or ``.labels0.gz`` (e.g. ``sipu/worms_64`` in the shared copy) are left out.

    Returns
    -------
    list of str
        Keys ``"<collection>/<name>"`` for :func:`load_table`.
    """
    _check_collection(collection)
    folder = data_root(root) / _FOLDERS[collection]
    if not folder.is_dir():
        raise UmetaError(f"collection {collection!r} not found at {str(folder)!r}")
    if collection == "pmlb":
        names = [d.name for d in folder.iterdir() if (d / f"{d.name}.tsv.gz").is_file()]
    elif collection == "clustering-data-v1":
        names = [f"{battery}/{f.name[:-len('.labels0.gz')]}"
                 for battery in CLUSTERING_BATTERIES
                 for f in (folder / battery).glob("*.labels0.gz")
                 if (folder / battery / f.name.replace(".labels0.gz", ".data.gz")).is_file()]
    else:
        names = [f.stem for f in folder.glob("*.npz")]
    return sorted(f"{collection}/{name}" for name in names)


def table_path(key: str, root: str | Path | None = None) -> Path:
    """The feature file of table ``key`` (``.tsv.gz``, ``.data.gz`` or ``.npz``)."""
    collection, _, name = key.partition("/")
    _check_collection(collection)
    folder = data_root(root) / _FOLDERS[collection]
    if collection == "pmlb":
        path = folder / name / f"{name}.tsv.gz"
    elif collection == "clustering-data-v1":
        path = folder / f"{name}.data.gz"
    else:
        path = folder / f"{name}.npz"
    if not name or not path.is_file():
        raise UmetaError(f"table {key!r} not found (no {str(path)!r}); see list_tables"
                         f"({collection!r}) for the names")
    return path


def load_table(key: str, root: str | Path | None = None) -> Table:
    """Read table ``key`` (see :func:`list_tables`); the last 32 tables read stay cached.

    Returns
    -------
    Table
    """
    return _load_cached(key, str(data_root(root).resolve()))


@functools.lru_cache(maxsize=32)
def _load_cached(key: str, root: str) -> Table:
    path = table_path(key, root)
    collection = key.partition("/")[0]
    if collection == "pmlb":
        return read_pmlb(path, key)
    if collection == "clustering-data-v1":
        return read_clustering_data(path, key)
    return read_adbench(path, key)


# ----------------------------------------------------------------------------- pmlb

def _metadata_types(path: Path) -> dict[str, str]:
    """``{feature name: type}`` from the ``features:`` list of a pmlb ``metadata.yaml``."""
    if not path.is_file():
        return {}
    types: dict[str, str] = {}
    name, inside = None, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            inside = line.startswith("features:")
            continue
        if not inside:
            continue
        if m := re.match(r"^\s*-\s*name:\s*(.*?)\s*$", line):
            name = m.group(1).strip("'\"")
        elif (m := re.match(r"^\s+type:\s*(\S+)", line)) and name is not None:
            types.setdefault(name, m.group(1))
    return types


def read_pmlb(path: str | Path, name: str | None = None) -> Table:
    """Read one pmlb ``<name>.tsv.gz`` (with its ``metadata.yaml`` beside it).

    Parameters
    ----------
    path : str or Path
    name : str, optional
        The table's key; default ``"pmlb/<file stem>"``.

    Returns
    -------
    Table
        ``target="classes"``; the class indices follow the sorted target values.
    """
    path = Path(path)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        body = handle.read().splitlines()
    try:
        values = np.loadtxt(body, delimiter="\t", dtype=np.float64, ndmin=2)
    except ValueError:  # missing values, written "NA" (penguins)
        values = np.loadtxt(body, delimiter="\t", dtype=np.float64, ndmin=2,
                            converters=lambda text: np.nan if text == "NA" else float(text))
    if "target" not in header:
        raise UmetaError(f"{str(path)!r} has no 'target' column; it is not a pmlb table")
    label = header.index("target")
    columns, seen = [], {}
    for j, col in enumerate(header):  # repeated names get ".1", ".2", ... as in pandas
        repeat, seen[col] = seen.get(col, 0), seen.get(col, 0) + 1
        if j != label:
            columns.append(f"{col}.{repeat}" if repeat else col)
    types = _metadata_types(path.parent / "metadata.yaml")
    _, y = np.unique(values[:, label], return_inverse=True)
    return Table(np.delete(values, label, axis=1).astype(np.float32), y.astype(np.int64),
                 tuple(columns), np.array([types.get(c) in _CATEGORICAL_TYPES for c in columns]),
                 name or f"pmlb/{path.name.removesuffix('.tsv.gz')}", str(path), "classes")


# ----------------------------------------------------------------------------- clustering

def read_clustering_data(path: str | Path, name: str | None = None) -> Table:
    """Read one clustering-data-v1 ``<name>.data.gz`` and its ``<name>.labels0.gz``.

    Returns
    -------
    Table
        ``target="classes"``: reference label ``l >= 1`` becomes class ``l - 1`` (classes
        renumbered to ``0 .. K-1`` in order), label 0 (noise) becomes ``NOISE``.
    """
    path = Path(path)
    stem = path.name.removesuffix(".data.gz")
    x = np.loadtxt(path, dtype=np.float64, ndmin=2)
    labels = np.loadtxt(path.with_name(f"{stem}.labels0.gz"), dtype=np.int64, ndmin=1)
    if labels.shape != (len(x),):
        raise UmetaError(f"{str(path)!r}: {len(x)} points but {labels.size} labels")
    y = np.full(len(x), NOISE, dtype=np.int64)
    _, y[labels > 0] = np.unique(labels[labels > 0], return_inverse=True)
    d = x.shape[1]
    return Table(x.astype(np.float32), y, tuple(f"x{j}" for j in range(d)), np.zeros(d, bool),
                 name or f"clustering-data-v1/{path.parent.name}/{stem}", str(path), "classes")


# ----------------------------------------------------------------------------- adbench

def read_adbench(path: str | Path, name: str | None = None) -> Table:
    """Read one ADBench ``.npz`` (``X`` of shape (N, D), ``y`` with 1 = anomaly).

    Returns
    -------
    Table
        ``target="anomaly"``.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        x, y = np.asarray(data["X"], dtype=np.float32), np.asarray(data["y"]).astype(np.int64)
    if x.ndim != 2 or y.shape != (len(x),) or not np.isin(y, (0, 1)).all():
        raise UmetaError(f"{str(path)!r}: expected X (N, D) and y (N,) in {{0, 1}}")
    d = x.shape[1]
    return Table(x, y, tuple(f"x{j}" for j in range(d)), np.zeros(d, bool),
                 name or f"adbench-classical/{path.stem}", str(path), "anomaly")
