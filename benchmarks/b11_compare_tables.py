"""B11, tables: does `umeta compare`'s label-free criterion pick, on a table it never saw, the
candidate whose clusters the labels say are best?

Each *case* is one of B8's clustering tables (`b8_tables.clustering_keys`: every table of
clustering-data-v1 and B8's pmlb tables) with k given (its number of classes), and two or more
candidates: a table model (``--checkpoint``, default the built-in one) and the raw values
(``none``: median-imputed, z-scored columns). :func:`umeta.compare.compare_table_models` clusters
the table in each candidate's space as `umeta cluster` does (a model's by its "auto" step,
spectral clustering with 10 or more rows a cluster, or on its standardised values beyond the
clusters it trained on; the raw values by k-means) and scores each with every label-free
criterion; the labels give each candidate's ARI (B8's metric), NMI and clustering accuracy. Per
criterion and group (collection; k up to 10 or above): the **hit rate** (the criterion's first
has the highest ARI; ties count as hits, Wilson 95% interval), the **regret** (ARI points, x100,
lost against the best candidate), Spearman / Kendall, and the **ARI of the pick** (what a user who
follows the recommendation gets) against always taking one candidate (MetaOD's global best) and
the oracle. Leave-data-set-out as B8: no model may have trained on an evaluated table or a
near-copy of it (checked by name and content hash from the checkpoint's training tables, with
``--copies-record``); such tables are left out and listed.

``--dev`` runs the DEV tables instead (`tables_dev.dev_tables`: pmlb tables held out of nothing,
with B8's size rule: 2 .. 10 classes, 150 .. 5,000 rows, at most 100 columns), with a model that
never saw a real table (``benchmarks/results/tables_cpu_model.safetensors``, priors only): the
run that chose `umeta.compare.TABLE_CRITERION`.

    UMETA_CACHE=... python benchmarks/b11_compare_tables.py \\
        --copies-record benchmarks/results/tables_exclusion_b8.json \\
        --out benchmarks/results/b11_compare_tables.json
    python benchmarks/b11_compare_tables.py --dev \\
        --checkpoint benchmarks/results/tables_cpu_model.safetensors \\
        --out benchmarks/results/b11_compare_tables_dev.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import b8_tables as b8
from b11_compare import fixed_choice_rows, selection_rows
from entry import run_main
from tables_dev import dev_tables

from umeta.adapt.selection import CRITERIA
from umeta.compare import PIXELS, RAW_NAMES, TABLE_CRITERION, compare_table_models
from umeta.data.table_sets import load_table
from umeta.metrics import mean_ci95
from umeta.pretrained import BUILTIN, builtin_checkpoint
from umeta.results import result_row, write_results

def dev_keys(root) -> list[str]:
    """The DEV tables of B8's size (module docstring)."""
    return [key for key in dev_tables(root) if b8.b8_sized(load_table(key, root))]


def run_case(key: str, root, checkpoints: list[str], seed: int, n_boot: int) -> dict:
    """One table: compare_table_models with k given; the per-candidate record (ARI x 100 as
    ``ari_points``, the number the selection rows judge)."""
    start = time.perf_counter()
    table = load_table(key, root)
    y = np.asarray(table.y)
    k = int(len(np.unique(y)))
    result = compare_table_models(np.asarray(table.x, dtype=np.float32), checkpoints=checkpoints,
                                  n_clusters=k, labels=y, n_boot=n_boot, seed=seed,
                                  device="cpu")
    cands = result.candidates
    record = {
        "case": key, "group": key.split("/")[0], "k": k, "rows": result.n_images,
        "rows_scored": result.n_scored, "candidates": [c.name for c in cands],
        "ari_points": [round(100 * c.truth["ari"], 3) for c in cands],
        "accuracy": [round(c.truth["clustering_accuracy"], 3) for c in cands],
        "nmi": [round(c.truth["nmi"], 5) for c in cands],
        "scores": {crit: [round(c.scores[crit], 5) for c in cands] for crit in CRITERIA},
        "recommended": result.recommended,
        "first_share": result.result(result.recommended).first_share,
        "wall_s": round(time.perf_counter() - start, 2)}
    best = cands[int(np.argmax(record["ari_points"]))].name
    aris = ", ".join(f"{n} {a / 100:.3f}" for n, a in zip(record["candidates"],
                                                         record["ari_points"]))
    print(f"{key:<42} k={k:<3} best {best:<8} {TABLE_CRITERION} picks {result.recommended:<8}"
          f" ARI {aris} ({record['wall_s']:.0f} s)", flush=True)
    return record


def pick_rows(cases: list[dict], group: str) -> list[dict]:
    """Mean ARI (x100) a user gets by following each criterion, by always taking one
    candidate, and with an oracle; the default criterion's paired gain over each fixed
    choice."""
    rows = []
    ari = [np.array(c["ari_points"]) for c in cases]
    for criterion in CRITERIA:
        got = [a[int(np.argmax(c["scores"][criterion]))] for a, c in zip(ari, cases)]
        mean, ci = mean_ci95(got)
        rows.append(result_row(criterion, "label-free", group, "ari_points_of_pick", mean, ci,
                               len(cases), unit="ARI x 100"))
    picked = [a[int(np.argmax(c["scores"][TABLE_CRITERION]))] for a, c in zip(ari, cases)]
    for i, name in enumerate(cases[0]["candidates"]):
        mean, ci = mean_ci95([a[i] for a in ari])
        rows.append(result_row(f"always-{name}", "none", group, "ari_points_of_pick", mean, ci,
                               len(cases), unit="ARI x 100"))
        mean, ci = mean_ci95([p - a[i] for p, a in zip(picked, ari)])
        rows.append(result_row(TABLE_CRITERION, "label-free", group,
                               f"ari_points_gain_vs_always-{name}", mean, ci, len(cases),
                               unit="ARI x 100, paired over the tables"))
    mean, ci = mean_ci95([a.max() for a in ari])
    rows.append(result_row("oracle", "labels", group, "ari_points_of_pick", mean, ci,
                           len(cases), unit="ARI x 100"))
    return rows


def summary_rows(cases: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {"all": cases}
    for c in cases:
        groups.setdefault(c["group"], []).append(c)
        groups.setdefault("k<=10" if c["k"] <= 10 else "k>10", []).append(c)
    rows = []
    for group, chosen in groups.items():
        for criterion in CRITERIA:
            rows += selection_rows(chosen, criterion, group, metric="ari_points",
                                   unit="ARI points (x100) lost against the best candidate")
        for name in chosen[0]["candidates"]:
            rows += fixed_choice_rows(chosen, name, group, "every candidate reported",
                                      metric="ari_points")
        rows += pick_rows(chosen, group)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", b8.DEFAULT_DATA))
    parser.add_argument("--checkpoint", action="append",
                        help="a table model to compare (repeatable; default: the built-in one)")
    parser.add_argument("--copies-record", action="append", default=[],
                        help="an exclusion record (benchmarks/tables_exclusion.py)")
    parser.add_argument("--tables", help="comma-separated table keys (default: B8's clustering "
                                         "tables)")
    parser.add_argument("--dev", action="store_true", help="the DEV tables instead of B8's")
    parser.add_argument("--n-boot", type=int, default=0, help="bootstrap resamples per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    root = args.data_dir
    models = args.checkpoint or [BUILTIN]
    keys = dev_keys(root) if args.dev else b8.clustering_keys(root)
    if args.tables:
        keys = [k for k in keys if k in set(args.tables.split(","))]
    records = [json.loads(Path(p).read_text()) for p in args.copies_record]
    training = {}
    excluded: dict[str, list[str]] = {}
    for model in models:
        path = builtin_checkpoint("tables") if model == BUILTIN else Path(model)
        training[model] = b8.read_training_tables(str(path), None)
        for key, why in b8.excluded_tables(training[model], keys, root, records).items():
            excluded.setdefault(key, []).extend(f"{model}: {w['a']}" for w in why)
    for key, why in excluded.items():
        print(f"left out {key}: a model trained on a near-copy ({'; '.join(why)})")
    cases = [run_case(k, root, [*models, PIXELS], args.seed, args.n_boot)
             for k in keys if k not in excluded]
    rows = summary_rows(cases)
    for row in rows:
        if row["setting"] == "all" and (row["metric"] in ("hit_rate", "ari_points_of_pick")
                                        or row["metric"].startswith("ari_points_gain")):
            print(f"{row['setting']:<20} {row['method']:<20} {row['metric']:<20} "
                  f"{row['mean']:7.2f} +- {row['ci95']:.2f} (n={row['n_tasks']})")
    write_results(args.out, "B11-tables", rows, device="cpu", wall_s=time.perf_counter() - start,
                  seed=args.seed, dataset="DEV pmlb tables" if args.dev else
                  "B8's clustering tables (clustering-data-v1 + pmlb)",
                  models=models, default_criterion=TABLE_CRITERION, criteria=list(CRITERIA),
                  raw_candidate=RAW_NAMES["tables"], judged_by="ARI", left_out=excluded,
                  training_tables={m: len(t) for m, t in training.items()}, cases=cases)


if __name__ == "__main__":
    run_main(main)
