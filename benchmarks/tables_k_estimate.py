"""How well a table model estimates the number of clusters on B8's clustering tables.

``umeta cluster FILE`` without ``--n-clusters`` (and ``MetaClusterer(n_clusters=None)``) picks
k in a range (default 2 .. 10) by the best silhouette of k-means in the model's embedding. This
script measures that estimate against each table's number of reference classes on every
clustering table of B8 (`b8_tables.clustering_keys`; a seeded sample of at most ``--max-rows``
rows), and in the same run the same rule on the raw values (median-imputed and standardised,
as B8's baselines see them). Tables that the model's training tables contain or near-copy
(`b8_tables.excluded_tables`) are left out and listed. Rows: ``k_exact``, ``k_within_1`` and
``k_abs_error`` (means with 95% CI) over the tables whose k is inside the searched range, and
over all tables.

    python benchmarks/tables_k_estimate.py --checkpoint builtin \\
        --copies-record benchmarks/results/tables_exclusion_b8.json \\
        --out benchmarks/results/tables_k_estimate_builtin.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from b8_tables import DEFAULT_DATA, clustering_keys, excluded_tables
from entry import run_main
from table_baselines import standardise
from umeta.build import load_learner
from umeta.checkpoint import read_checkpoint
from umeta.data.tables import load_table
from umeta.estimators import MetaClusterer
from umeta.metrics import mean_ci95
from umeta.pretrained import BUILTIN, builtin_checkpoint
from umeta.results import result_row, write_results

K_RANGE = (2, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=BUILTIN)
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--copies-record", action="append", default=[],
                        help="exclusion records that spare near-copy comparisons")
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    path = builtin_checkpoint("tables") if args.checkpoint == BUILTIN else args.checkpoint
    training = read_checkpoint(path)[1]["progress"]["training_tables"]
    learner = load_learner(path)
    keys = clustering_keys(args.data_dir)
    records = [json.load(open(p)) for p in args.copies_record]
    left_out = excluded_tables(training, keys, args.data_dir, records)
    truth, estimates = {}, {"umeta": {}, "raw": {}}
    rng = np.random.default_rng(args.seed)
    for key in keys:
        if key in left_out:
            continue
        table = load_table(key, args.data_dir)
        rows = np.arange(len(table.x))
        if len(rows) > args.max_rows:
            rows = np.sort(rng.choice(len(rows), args.max_rows, replace=False))
        x = np.asarray(table.x[rows])
        truth[key] = table.n_classes
        estimates["umeta"][key] = MetaClusterer(learner, k_range=K_RANGE,
                                                random_state=args.seed).fit(x).n_clusters_
        estimates["raw"][key] = MetaClusterer(None, k_range=K_RANGE,
                                              random_state=args.seed).fit(standardise(x)).n_clusters_
        print(f"{key:<45} k {truth[key]:>3}  umeta {estimates['umeta'][key]:>3}  raw "
              f"{estimates['raw'][key]:>3}", flush=True)
    results = []
    for method, by in estimates.items():
        training_kind = "meta-trained" if method == "umeta" else "none"
        for scope, chosen in (("k in 2..10", [k for k in by if K_RANGE[0] <= truth[k] <= K_RANGE[1]]),
                              ("all tables", list(by))):
            error = np.array([by[k] - truth[k] for k in chosen])
            setting = f"number of clusters estimated: B8 clustering, {scope}"
            for metric, values in (("k_exact", error == 0), ("k_within_1", np.abs(error) <= 1),
                                   ("k_abs_error", np.abs(error))):
                results.append(result_row(method if method == "raw" else "umeta-tables",
                                          training_kind, setting, metric,
                                          *mean_ci95(values.astype(float)), len(error)))
    write_results(args.out, "B8-k", results, device="cpu", wall_s=time.perf_counter() - start,
                  seed=args.seed, checkpoint=str(args.checkpoint), k_range=list(K_RANGE),
                  max_rows=args.max_rows, rule="best silhouette of k-means (MetaClusterer "
                  "n_clusters=None); raw: on the median-imputed, standardised values",
                  left_out=left_out, truth=truth, estimates=estimates)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
