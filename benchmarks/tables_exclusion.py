"""The exclusion record of a table model's training set: which real tables it may train on.

Runs `umeta.data.table_sets.load_table_collection` with an exclusion list (default: every B8
table, ``tables_dev.b8_exclude``) and writes the exclusion record it makes (every compared
pair's tables by name and content hash, and the near-copies found) to ``--out``, with the
training tables kept. A training run finds the record in its cache folder
(``$UMETA_CACHE/table-exclusions/``; ``benchmarks/gpu_tables.sh`` copies it there) and then
skips the minutes of near-copy comparisons for every pair whose tables are unchanged.

    nice -n 10 python benchmarks/tables_exclusion.py \\
        --out benchmarks/results/tables_exclusion_b8.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from entry import run_main
from tables_dev import DEFAULT_DATA, b8_exclude
from umeta.data.table_sets import TRAINING_COLLECTIONS, load_table_collection
from umeta.results import command_line, git_commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--exclude", help="comma-separated keys or patterns (default: all B8)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    exclude = args.exclude.split(",") if args.exclude else b8_exclude(args.data_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(args.out)
        if out.is_file():  # reuse what an earlier run compared
            shutil.copy(out, Path(folder) / "previous.json")
        collection = load_table_collection(exclude, collections=TRAINING_COLLECTIONS,
                                           root=args.data_dir, cache=folder, progress=True)
        made = [p for p in Path(folder).glob("*.json") if p.name != "previous.json"]
        record = json.loads((made[0] if made else Path(folder) / "previous.json").read_text())
    record.update(what="exclusion record of a table model's training set "
                       "(umeta.data.table_sets)", command=command_line(), commit=git_commit(),
                  wall_s=round(time.perf_counter() - start, 1), exclude=exclude,
                  training_tables=collection.training_tables,
                  excluded_tables=sorted(collection.excluded))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{len(collection.training_tables)} training tables, {len(collection.excluded)} "
          f"excluded; wrote {out}")


if __name__ == "__main__":
    run_main(main)
