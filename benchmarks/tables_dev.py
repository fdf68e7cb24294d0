"""DEV-table check of a table model: clustering and anomaly detection on held-out DEV tables.

DEV tables are the pmlb tables held out of nothing (their names hold no word of
``b8_tables.RESERVED``); they are split into ``FOLDS`` folds by the hash of their source name
(`umeta.data.table_copies.source_name`), so that copies of one source share a fold. A model
for fold F is trained with ``--print-exclude F``'s list excluded: every B8 table (all of
clustering-data-v1 and adbench-classical, every RESERVED pmlb table: :func:`b8_exclude`) and
fold F. This script
then scores it on fold F's tables, against classical baselines on the same rows:

* clustering: each table (a seeded sample of at most ``--max-rows`` rows), k = its classes
  (2 .. 20); ARI of the model (k-means on its embedding) and of KMeans, GaussianMixture and
  Spectral (``table_baselines``); and how well the model's estimate of k (the best silhouette
  of k-means on its embedding, k in 2 .. 10, as ``umeta cluster`` without ``--n-clusters``)
  finds the number of classes;
* anomaly: each table whose smallest class can be 1 .. 5 % of the rows (ADBench's recipe for
  classification sets): the other classes' rows (at most ``--max-rows``) plus a seeded sample of
  the smallest class; AUROC of the model's outlier score and of IsolationForest, k-NN and LOF.

With the baselines, a ``consensus`` row: the model's and the baselines' partitions, the one that
agrees most with the others (:func:`medoid_partition`), and their outlier scores averaged as
ranks (:func:`rank_average`): label-free ensembles, to see whether one helps.

    umeta train --config configs/tables_cpu_dev.toml \\
        --set data.exclude=$(python benchmarks/tables_dev.py --print-exclude 0)
    python benchmarks/tables_dev.py --checkpoint runs/tables_cpu_dev/checkpoints/last.safetensors \\
        --fold 0 --out benchmarks/results/tables_dev_cpu.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from entry import run_main
import table_baselines
from b8_tables import RESERVED
from umeta.build import load_learner
from umeta.data.table_copies import source_name
from umeta.data.tables import list_tables, load_table
from umeta.errors import UmetaError
from umeta.estimators import MetaAnomalyDetector, MetaClusterer
from umeta.metrics import ari, auroc, mean_ci95
from umeta.results import result_row, write_results

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDS = 3
CLUSTERING_BASELINES = ("kmeans", "gmm", "spectral")
ANOMALY_BASELINES = ("iforest", "knn", "lof")


def b8_exclude(root) -> list[str]:
    """The exclusion every table model of this project trains under, as patterns: all of
    clustering-data-v1 and adbench-classical, and every pmlb table whose name holds a word of
    ``RESERVED`` (B8's pmlb tables are among them)."""
    names = [k.split("/", 1)[1].lower() for k in list_tables("pmlb", root)]
    return ["clustering-data-v1/*", "adbench-classical/*",
            *(f"pmlb/*{w}*" for w in RESERVED if any(w in name for name in names))]


def dev_tables(root) -> list[str]:
    """Keys of the DEV tables (module docstring)."""
    return [k for k in list_tables("pmlb", root)
            if not any(w in k.split("/", 1)[1].lower() for w in RESERVED)]


def fold_of(key: str) -> int:
    """The fold of a table: the hash of its source name, modulo :data:`FOLDS`."""
    return int(hashlib.sha256(source_name(key).encode()).hexdigest(), 16) % FOLDS


def fold_exclude(fold: int, root) -> list[str]:
    """What a model scored on ``fold`` must not see: :func:`b8_exclude` and the fold's tables."""
    return b8_exclude(root) + [k for k in dev_tables(root) if fold_of(k) == fold]


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size, replace=False)) if n > size else np.arange(n)


def anomaly_task(table, max_rows: int, seed: int):
    """(x, y) with the smallest class as 1 .. 5 % anomalies, or None when it cannot be."""
    classes, counts = np.unique(table.y[table.y >= 0], return_counts=True)
    small = classes[np.argmin(counts)]
    inliers = np.flatnonzero((table.y >= 0) & (table.y != small))
    inliers = inliers[_sample(len(inliers), max_rows, seed)]
    n_out = min(int(counts.min()), int(0.05 * len(inliers) / 0.95))
    if n_out < max(3, int(0.01 * len(inliers))):
        return None
    outliers = np.flatnonzero(table.y == small)[_sample(int(counts.min()), n_out, seed + 1)]
    rows = np.concatenate([inliers, outliers])
    return table.x[rows], np.r_[np.zeros(len(inliers), int), np.ones(n_out, int)]


def medoid_partition(labels: dict[str, np.ndarray]) -> str:
    """The method whose partition agrees most with the others' (mean ARI): a label-free
    consensus choice among candidate clusterings."""
    names = list(labels)
    agreement = {a: np.mean([ari(labels[a], labels[b]) for b in names if b != a]) for a in names}
    return max(names, key=agreement.__getitem__)


def rank_average(scores: dict[str, np.ndarray]) -> np.ndarray:
    """The mean over methods of each row's score rank (a label-free ensemble of detectors)."""
    from scipy.stats import rankdata

    return np.mean([rankdata(s) / len(s) for s in scores.values()], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_SHARED_DATA", DEFAULT_DATA))
    parser.add_argument("--print-exclude", type=int, metavar="FOLD",
                        help="print the comma-separated exclusion list of FOLD and stop")
    parser.add_argument("--checkpoint")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--max-tables", type=int, default=0, help="first N tables only (0: all)")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    root = args.data_dir
    if args.print_exclude is not None:
        print(",".join(fold_exclude(args.print_exclude, root)))
        return
    if not args.checkpoint or not args.out:
        parser.error("--checkpoint and --out are needed (or --print-exclude FOLD)")
    start = time.perf_counter()
    torch.set_num_threads(1)
    learner = load_learner(args.checkpoint)
    trained = set(learner_record(args.checkpoint).get("training_tables", []))
    keys = [k for k in dev_tables(root) if fold_of(k) == args.fold]
    leaked = sorted(trained & set(keys))
    if leaked:
        raise UmetaError(f"the model trained on held-out tables {leaked[:5]}; train it with "
                         f"--print-exclude {args.fold}'s list")
    keys = keys[:args.max_tables] if args.max_tables else keys
    rows, values, estimated = [], {"clustering": {}, "anomaly": {}}, {}
    for key in keys:
        table = load_table(key, root)
        k = table.n_classes
        sample = _sample(len(table.x), args.max_rows, args.seed)
        x, y = table.x[sample], table.y[sample]
        if 2 <= k <= 20 and len(np.unique(y[y >= 0])) == k:
            got = {"umeta": MetaClusterer(learner, k, random_state=args.seed).fit(x).labels_}
            estimated[key] = MetaClusterer(learner, random_state=args.seed).fit(x).n_clusters_
            for name in CLUSTERING_BASELINES if args.baselines else ():
                got[name] = table_baselines.cluster_labels(name, x, k, args.seed)[0]
            if args.baselines:
                got["consensus"] = got[medoid_partition(got)]
            values["clustering"][key] = {m: ari(y[y >= 0], lab[y >= 0]) for m, lab in got.items()}
            print(key, "ARI", {m: round(v, 3) for m, v in values["clustering"][key].items()},
                  flush=True)
        task = anomaly_task(table, args.max_rows, args.seed)
        if task is not None:
            xa, ya = task
            got = {"umeta": -MetaAnomalyDetector(learner, random_state=args.seed).fit(xa)
                   .training_scores_}
            for name in ANOMALY_BASELINES if args.baselines else ():
                got[name] = table_baselines.anomaly_scores(name, xa, args.seed)[0]
            if args.baselines:
                got["consensus"] = rank_average(got)
            values["anomaly"][key] = {m: auroc(ya, s) for m, s in got.items()}
            print(key, "AUROC", {m: round(v, 3) for m, v in values["anomaly"][key].items()},
                  flush=True)
    per_table = []
    for task, metric in (("clustering", "ari"), ("anomaly", "auroc")):
        per = values[task]
        for key, by in per.items():
            per_table += [result_row(m, "meta-trained" if m == "umeta" else "none", key, metric,
                                     v, 0.0, 1) for m, v in by.items()]
        if not per:
            continue
        methods = list(next(iter(per.values())))
        for m in methods:
            scores = np.array([per[t][m] for t in per])
            rows.append(result_row(m, "meta-trained" if m == "umeta" else "none",
                                   f"{task}: DEV fold {args.fold}", metric, *mean_ci95(scores),
                                   len(scores)))
            if m != "umeta":
                diff = np.array([per[t]["umeta"] - per[t][m] for t in per])
                rows.append(result_row("umeta", "meta-trained", f"{task}: DEV fold {args.fold}",
                                       f"{metric}_gain_vs_{m}", *mean_ci95(diff), len(diff),
                                       wins=int((diff > 0).sum()), losses=int((diff < 0).sum())))
    if estimated:
        truth = {key: load_table(key, root).n_classes for key in estimated}
        error = np.array([estimated[key] - truth[key] for key in estimated])
        setting = f"number of clusters estimated: DEV fold {args.fold}"
        rows.append(result_row("umeta", "meta-trained", setting, "k_exact", *mean_ci95(
            (error == 0).astype(float)), len(error)))
        rows.append(result_row("umeta", "meta-trained", setting, "k_within_1", *mean_ci95(
            (np.abs(error) <= 1).astype(float)), len(error)))
        rows.append(result_row("umeta", "meta-trained", setting, "k_abs_error",
                               *mean_ci95(np.abs(error).astype(float)), len(error)))
    write_results(args.out, "tables-dev", rows, device="cpu",
                  wall_s=time.perf_counter() - start, seed=args.seed, checkpoint=args.checkpoint,
                  fold=args.fold, folds=FOLDS, tables=keys, max_rows=args.max_rows,
                  training_tables=sorted(trained), per_table=per_table,
                  estimated_k=estimated)
    print(f"wrote {args.out}")


def learner_record(checkpoint: str) -> dict:
    """The progress metadata of a checkpoint (its training tables)."""
    from umeta.checkpoint import read_checkpoint

    return read_checkpoint(checkpoint)[1].get("progress", {})


if __name__ == "__main__":
    run_main(main)
