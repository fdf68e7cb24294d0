"""The table of a table model's training data: what a shipped table model learned from.

Reads a checkpoint's record of its real training tables (``training_tables``, kept by
`umeta.data.table_sets.TableCollection.record`) and its exclusion list, reads each table from
the data folder for its size and classes, and writes a Markdown table (``--out``, with the
checkpoint's synthetic-prior settings above it) and the same rows as JSON beside it.

    python benchmarks/tables_training_data.py src/umeta/weights/builtin-tables.safetensors \\
        --out benchmarks/results/builtin_tables_training_data.md
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from entry import run_main

from umeta.checkpoint import read_checkpoint
from umeta.data.tables import load_table
from umeta.pretrained import sha256_of
from umeta.results import command_line, git_commit

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--out", required=True, help="the Markdown file (JSON goes beside it)")
    args = parser.parse_args()
    _, meta = read_checkpoint(args.checkpoint)
    progress, config = meta["progress"], meta["config"]
    rows = []
    for key in progress["training_tables"]:
        table = load_table(key, args.data_dir)
        rows.append({"table": key, "rows": table.shape[0], "columns": table.shape[1],
                     "classes": table.n_classes,
                     "categorical_columns": int(table.categorical.sum())})
    options = config["tasks"]["options"]
    real_share = options.get("real_share", 0.0)
    out = Path(args.out)
    lines = [f"# Training data of `{Path(args.checkpoint).name}`", "",
             f"sha256 `{sha256_of(Path(args.checkpoint))}`; {config['optim']['steps']} steps "
             f"of {config['optim']['meta_batch']} tables; written by `{command_line()}` at commit "
             f"{git_commit()}.", "",
             f"- **Synthetic tables** of the prior `umeta.data.table_priors` (a share "
             f"{1 - real_share:g} of the tasks, unlimited, generated on the fly): tasks of "
             f"{options.get('min_rows')} .. {options.get('max_rows')} rows and "
             f"{options.get('min_columns')} .. {options.get('max_columns')} columns, clusters "
             f"and outliers (share {options.get('outlier_share')}) of known types.",
             f"- **Real tables** (a share {real_share:g} of the tasks, rows and columns "
             f"sub-sampled per task; their classes are the clusters, used at meta-training "
             f"only): the {len(rows)} below. Left out: the "
             f"{len(progress.get('excluded_tables', []))} tables that match "
             f"{', '.join(f'`{e}`' for e in progress['exclude'])} or are a near-copy of one "
             f"that does, by name or content (`umeta.data.table_sets.near_copies_of`).", "",
             "| table | rows | columns | categorical columns | classes |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['table']} | {r['rows']} | {r['columns']} | {r['categorical_columns']} | "
              f"{r['classes']} |" for r in rows]
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"checkpoint": Path(args.checkpoint).name, "command": command_line(),
         "commit": git_commit(), "exclude": progress["exclude"],
         "excluded_tables": progress.get("excluded_tables", []), "training_tables": rows},
        indent=1) + "\n")
    print(f"{len(rows)} real training tables; wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    run_main(main)
