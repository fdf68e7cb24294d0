"""The real tables a table model meta-trains on, with every excluded table and its near-copies
left out (leave-data-set-out).

:func:`load_table_collection` reads every table of the chosen collections (pmlb and
clustering-data-v1 by default; the classes are the clusters a task asks for, used only at
meta-training time) and drops each table that **is, or near-copies, an excluded one**:
:func:`umeta.data.table_copies.find_near_copies` (same source name, same values in any row
and column order, or most rows shared up to per-column affine maps). Excluded entries are
table keys (``pmlb/iris``, ``adbench-classical/14_glass``, ``clustering-data-v1/fcps/atom``)
patterns over the keys (``adbench-classical/*``, ``pmlb/*iris*``), or paths of a user's own
tables (CSV, TSV, npz, Parquet: `umeta.data.table_input.read_user_table`), so that
anyone can train a model that has never seen their table, or anything like it.

Comparing every candidate with every excluded table takes minutes (the row test of near-copy
detection); the outcome is kept in the cache folder (``$UMETA_CACHE`` or ``~/.cache/umeta``,
``table-exclusions/``) as an *exclusion record*: the names and content hashes of the tables
compared and the near-copies found. A later run takes a pair's outcome from a record only
when both tables have the same name and content there, and compares the rest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from umeta.data.omniglot import default_cache_dir
from umeta.data.table_copies import content_hash, find_near_copies
from umeta.data.table_input import read_user_table
from umeta.data.tables import COLLECTIONS, Table, data_root, list_tables, load_table
from umeta.errors import UmetaError
from umeta.files import atomic_write
from umeta.progress import progress_bar

__all__ = ["TableCollection", "TRAINING_COLLECTIONS", "MAX_TABLE_ROWS", "RECORD_FORMAT",
           "load_table_collection", "near_copies_of", "read_excluded", "expand_exclusions"]

TRAINING_COLLECTIONS = ("pmlb", "clustering-data-v1")
MAX_TABLE_ROWS = 20_000
"""Rows kept of a table (a seeded sample of a longer one): tasks use far fewer."""
RECORD_FORMAT = "umeta-table-exclusion-1"


@dataclass
class TableCollection:
    """Labelled real tables to draw meta-training tasks from.

    Attributes
    ----------
    tables : list of Table
        The tables kept (``y``: classes, -1 for rows without one).
    excluded : dict of str to list of dict
        Each dropped table's key and the evidence (:meth:`NearCopy.as_dict`).
    exclude : tuple of str
        The exclusion list asked for.
    name : str
    device : torch.device
        Where tasks drawn from the collection go.
    """

    tables: list[Table]
    excluded: dict[str, list[dict]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    name: str = "tables"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    #: Tables have no image shape (the run records it as empty).
    image_shape: tuple[int, ...] = ()

    @property
    def training_tables(self) -> list[str]:
        """Keys of the tables kept, sorted."""
        return sorted(t.name for t in self.tables)

    def to(self, device: torch.device | str) -> "TableCollection":
        """The same collection, its tasks sent to ``device``."""
        return replace(self, device=torch.device(device))

    def record(self) -> dict:
        """What a checkpoint records of the collection (JSON-able)."""
        return {"training_tables": self.training_tables, "exclude": list(self.exclude),
                "excluded_tables": sorted(self.excluded)}


def _present(collection: str, root) -> bool:
    """Whether the data folder holds ``collection``."""
    try:
        list_tables(collection, root)
    except UmetaError:
        return False
    return True


def expand_exclusions(entries: Sequence[str], root=None) -> list[str]:
    """Exclusion entries with patterns expanded: an entry holding ``*``, ``?`` or ``[`` is a
    shell-style pattern over the keys of every collection, matched without regard to case
    (``adbench-classical/*``, ``pmlb/*iris*``); other entries are kept as they are.

    Raises
    ------
    UmetaError
        For a pattern that matches no table.

    Examples
    --------
    >>> expand_exclusions(["pmlb/iris", "my_table.csv"])  # no pattern: nothing to look up
    ['pmlb/iris', 'my_table.csv']
    """
    out: list[str] = []
    keys = None
    for entry in entries:
        entry = str(entry)
        if not any(c in entry for c in "*?["):
            out.append(entry)
            continue
        if keys is None:
            keys = [k for c in COLLECTIONS if _present(c, root) for k in list_tables(c, root)]
        found = [k for k in keys if fnmatch.fnmatchcase(k.lower(), entry.lower())]
        if not found:
            raise UmetaError(f"data.exclude pattern {entry!r} matches no table; patterns run over "
                             f"keys like 'pmlb/iris' or 'adbench-classical/14_glass'")
        out += [k for k in found if k not in out]
    return list(dict.fromkeys(out))


def read_excluded(entries: Sequence[str], root=None) -> list[Table]:
    """The tables an exclusion list names: collection keys, patterns over them
    (:func:`expand_exclusions`), or paths of a user's tables.

    Raises
    ------
    UmetaError
        For an entry that is neither a readable key, a pattern that matches, nor a readable
        table file.
    """
    tables = []
    for entry in expand_exclusions(entries, root):
        collection = entry.partition("/")[0]
        if collection in COLLECTIONS:
            tables.append(load_table(entry, root))
        elif Path(entry).is_file():
            table = read_user_table(entry)
            tables.append(replace(table, name=str(Path(entry).resolve())))
        else:
            raise UmetaError(f"data.exclude entry {entry!r} is neither a table key (like "
                             f"'pmlb/iris': collection/name), a pattern over them, nor an "
                             f"existing table file")
    return tables


def _subsample(table: Table, max_rows: int, seed: int) -> Table:
    if len(table.x) <= max_rows:
        return table
    rows = np.sort(np.random.default_rng(seed).choice(len(table.x), max_rows, replace=False))
    return replace(table, x=table.x[rows].copy(),
                   y=None if table.y is None else table.y[rows].copy())


def _records(folder: Path | None) -> list[dict]:
    """The readable exclusion records in ``folder``."""
    if folder is None or not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a damaged record is ignored (its pairs are compared again)
        if isinstance(doc, dict) and doc.get("format") == RECORD_FORMAT:
            records.append(doc)
    return records


def _write_record(path: Path, candidates: list[Table], excluded: list[Table],
                  hashes: dict[str, str], dropped: dict[str, list[dict]]) -> None:
    """Write the exclusion record of every pair ``candidates`` x ``excluded`` (best effort:
    without it, a later run compares again)."""
    names = {c.name for c in candidates}
    doc = {"format": RECORD_FORMAT, "candidates": {c.name: hashes[c.name] for c in candidates},
           "excluded": {e.name: hashes[e.name] for e in excluded},
           "dropped": [hit for key, hits in sorted(dropped.items()) if key in names
                       for hit in hits]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            json.dump(doc, handle, indent=1, sort_keys=True)
    except OSError:
        pass


def near_copies_of(candidates: Sequence[Table], excluded: Sequence[Table], *,
                   folder: Path | None = None, records: Sequence[dict] = (),
                   progress: bool = False) -> dict[str, list[dict]]:
    """Candidate key -> evidence (`NearCopy.as_dict`, ``a`` the candidate, ``b`` the excluded
    table), for the candidates that are or near-copy an excluded table
    (:func:`umeta.data.table_copies.find_near_copies`).

    An exclusion record (JSON in ``folder``, or given in ``records``) holds the outcome of every pair of its
    ``candidates`` x ``excluded`` tables, each named with its content hash; a pair is taken
    from a record only when both tables have the same name and content there. The other
    pairs are compared, and a record of the pairs known so far is written every ten
    candidates (an interrupted run loses little).
    """
    if not excluded or not candidates:
        return {}
    hashes = {t.name: content_hash(t) for t in [*candidates, *excluded]}
    known: set[tuple[str, str]] = set()
    dropped: dict[str, list[dict]] = {}
    for record in [*_records(folder), *records]:
        cands = [c.name for c in candidates if record["candidates"].get(c.name) == hashes[c.name]]
        excls = [e.name for e in excluded if record["excluded"].get(e.name) == hashes[e.name]]
        known.update((c, e) for c in cands for e in excls)
        for hit in record["dropped"]:
            if hit["a"] in cands and hit["b"] in excls:
                dropped.setdefault(hit["a"], []).append(hit)
    todo = [c for c in candidates if any((c.name, e.name) not in known for e in excluded)]
    pending = {c.name for c in todo}
    done = [c for c in candidates if c.name not in pending]
    digest = hashlib.sha256(json.dumps([sorted(hashes.items())]).encode()).hexdigest()
    bar = progress_bar(len(todo), desc="near-copy check", unit="table", enabled=progress)
    for i, table in enumerate(todo, 1):
        others = [e for e in excluded if (table.name, e.name) not in known]
        for hit in find_near_copies([table], others):
            dropped.setdefault(hit.a, []).append(hit.as_dict())
        done.append(table)
        bar.update(1)
        if folder is not None and (i % 10 == 0 or i == len(todo)):  # kept as it goes
            _write_record(folder / f"{digest[:24]}.json", done, excluded, hashes, dropped)
    bar.close()
    return dropped


def load_table_collection(exclude: Sequence[str] = (), *,
                          collections: Sequence[str] = TRAINING_COLLECTIONS, root=None,
                          max_rows: int = MAX_TABLE_ROWS, seed: int = 0,
                          cache: str | Path | None = "default",
                          progress: bool = False) -> TableCollection:
    """Every table of ``collections`` except the excluded ones and their near-copies.

    Parameters
    ----------
    exclude : sequence of str
        Table keys or table files (:func:`read_excluded`).
    collections : sequence of str
        Of :data:`umeta.data.tables.COLLECTIONS`.
    root : str or Path, optional
        The shared data folder (default ``$UMETA_SHARED_DATA``).
    max_rows : int
        Rows kept of a longer table (seeded sample).
    seed : int
    cache : path, "default" or None
        Folder of exclusion records ("default": ``<cache folder>/table-exclusions``; None:
        always compare).
    progress : bool
        A progress bar over the near-copy check.

    Returns
    -------
    TableCollection

    Examples
    --------
    >>> load_table_collection(collections=["nope"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    umeta.errors.UmetaError: unknown table collection 'nope'; choose ...
    """
    for collection in collections:
        if collection not in COLLECTIONS:
            raise UmetaError(f"unknown table collection {collection!r}; choose among "
                             f"{', '.join(COLLECTIONS)}")
    root = data_root(root)
    exclude = tuple(str(e) for e in exclude)
    excluded = read_excluded(exclude, root)
    excluded_names = {t.name for t in excluded}
    candidates, dropped = [], {}
    for collection in collections:
        for key in list_tables(collection, root):
            if key in excluded_names:
                dropped[key] = [{"a": key, "b": key, "reasons": ["excluded"]}]
                continue
            table = load_table(key, root)
            if table.y is not None and table.n_classes >= 2:
                candidates.append(table)
    folder = None if cache is None else (default_cache_dir() / "table-exclusions"
                                         if cache == "default" else Path(cache))
    dropped.update(near_copies_of(candidates, excluded, folder=folder, progress=progress))
    kept = [_subsample(t, max_rows, seed) for t in candidates if t.name not in dropped]
    if not kept:
        raise UmetaError(f"no training table is left after excluding {len(exclude)} table(s) "
                         f"and their near-copies from {', '.join(collections)}")
    label = "+".join(collections) + (f" minus {len(exclude)} excluded" if exclude else "")
    return TableCollection(kept, dict(sorted(dropped.items())), exclude, label)
