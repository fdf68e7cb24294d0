"""Copies and near-copies among all tables of pmlb, clustering-data-v1 and adbench-classical.

Compares every unordered pair of tables with `umeta.data.table_copies.compare_tables` (by
name, by content hash, and by shared rows up to per-column affine maps) and writes the pairs
found, the groups they form (connected components) and, per table, every table it copies, so
that meta-training can exclude the near-copies of its evaluation tables.

    nice -n 10 python benchmarks/table_near_copies.py \
        --out benchmarks/results/table_near_copies.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from entry import run_main

from umeta.data.table_copies import compare_tables, fingerprint, source_name
from umeta.data.tables import COLLECTIONS, list_tables, load_table
from umeta.results import command_line, git_commit

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def copy_groups(keys: list[str], pairs: list[dict]) -> list[list[str]]:
    """Connected components (of two or more tables) of the copy graph, each sorted, largest
    first."""
    index = {k: i for i, k in enumerate(keys)}
    rows = [index[p["a"]] for p in pairs]
    cols = [index[p["b"]] for p in pairs]
    graph = coo_matrix(([1] * len(rows), (rows, cols)), shape=(len(keys), len(keys)))
    _, label = connected_components(graph, directed=False)
    groups: dict[int, list[str]] = {}
    for key, g in zip(keys, label):
        groups.setdefault(int(g), []).append(key)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--collections", default=",".join(COLLECTIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    keys = [k for c in args.collections.split(",") for k in list_tables(c, args.data_dir)]
    tables = {k: load_table(k, args.data_dir) for k in keys}
    prints = {k: fingerprint(t) for k, t in tables.items()}
    pairs = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            hit = compare_tables(tables[a], tables[b], prints[a], prints[b], seed=args.seed)
            if hit is not None:
                pairs.append(hit.as_dict())
                print(f"{a} ~ {b}: {', '.join(hit.reasons)}", flush=True)
        print(f"[{i + 1}/{len(keys)}] {a} done, {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
    copies: dict[str, list[str]] = {}
    for p in pairs:
        copies.setdefault(p["a"], []).append(p["b"])
        copies.setdefault(p["b"], []).append(p["a"])
    doc = {
        "what": "copies and near-copies among the shared tables (umeta.data.table_copies)",
        "command": command_line(), "commit": git_commit(),
        "wall_s": round(time.perf_counter() - start, 1), "seed": args.seed,
        "rule": "a pair is listed when its names normalise to one source (reason 'name'), its "
                "values are equal in some row and column order ('hash'), or at least half of "
                "the shorter table's rows have a twin in the other, 0.25 above the chance level "
                "of the other with its columns shuffled, which is at most 0.25, after one "
                "affine map per column "
                "('rows'; run when >= 75% of the narrower table's columns pair up by quantile "
                "signature)",
        "tables": len(keys),
        "source_names": {k: source_name(k) for k in keys},
        "groups": copy_groups(keys, pairs),
        "copies": {k: sorted(v) for k, v in sorted(copies.items())},
        "pairs": pairs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(pairs)} pairs in {len(doc['groups'])} groups among {len(keys)} tables; "
          f"{doc['wall_s']} s -> {args.out}")


if __name__ == "__main__":
    run_main(main)
