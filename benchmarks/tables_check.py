"""Check of a trained table model: speed on large tables, and held-out synthetic tables.

``--algorithm`` is `MetaClusterer`'s clustering step throughout (default "auto": spectral for a
table model).

* speed: seconds and rows/s of ``MetaClusterer(k=5).fit`` and ``MetaAnomalyDetector.fit`` on
  seeded tables of 10,000 x 50 and 100,000 x 50 (five Gaussian blobs), on ``--device``;
* synthetic: ``--tables`` tables of the prior (`umeta.data.table_priors`) from a seed that no
  training run uses, each a fresh shape (rows 200 .. 2000, columns 2 .. 40, a third of them
  with outliers): ARI of the model (its clustering step on its embedding, k given) against
  KMeans and GaussianMixture, and AUROC of its outlier score against IsolationForest and k-NN, on the
  same tables (``table_baselines``, standardised columns);
* shapes (``--shapes``): low-dimensional tables from scikit-learn's generators, not from the
  prior (Gaussian blobs of 3 .. 30 centres, some of unequal spreads, some sheared; two moons;
  two rings), 300 .. 3000 rows, 2 or 3 columns: a DEV set of the geometric kind of table
  (clustering-data-v1 in B8) on which a model can be checked without touching B8: ARI against
  KMeans, GaussianMixture and Spectral.

    python benchmarks/tables_check.py --checkpoint model.safetensors --device cuda \\
        --out results.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from entry import run_main
import table_baselines
from umeta.build import load_learner, resolve_device
from umeta.data.table_priors import sample_prior_tables
from umeta.estimators import MetaAnomalyDetector, MetaClusterer
from umeta.metrics import ari, auroc, mean_ci95
from umeta.results import result_row, write_results

SPEED_SHAPES = ((10_000, 50), (100_000, 50))
CHECK_SEED = 987_654_321


def speed_rows(learner, device: torch.device, seed: int, algorithm: str = "auto") -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed)
    for n, d in SPEED_SHAPES:
        centers = rng.normal(scale=4.0, size=(5, d))
        x = (centers[rng.integers(0, 5, n)] + rng.normal(size=(n, d))).astype(np.float32)
        for verb, call in (("cluster", lambda: MetaClusterer(learner, 5,
                                                             algorithm=algorithm).fit(x)),
                           ("score", lambda: MetaAnomalyDetector(learner).fit(x))):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            rows.append(result_row("umeta-tables", "meta-trained", f"{verb} {n}x{d}",
                                   "rows_per_s", n / wall, 0.0, 1, wall_s=round(wall, 3)))
            print(f"{verb} {n}x{d}: {wall:.2f} s", flush=True)
    return rows


def synthetic_rows(learner, n_tables: int, seed: int, algorithm: str = "auto") -> list[dict]:
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    values: dict[str, dict[str, list[float]]] = {"ari": {}, "auroc": {}}
    for _ in range(n_tables):
        n, d = int(rng.integers(200, 2001)), int(rng.integers(2, 41))
        table = sample_prior_tables(1, n, d, gen, outlier_share=1 / 3)
        x, y, out = table.x[0].numpy(), table.y[0].numpy(), table.outlier[0].numpy()
        k = int(table.n_clusters[0])
        labels = {"umeta": MetaClusterer(learner, k, algorithm=algorithm).fit(x).labels_}
        for name in ("kmeans", "gmm"):
            labels[name] = table_baselines.cluster_labels(name, x, k, seed)[0]
        for name, lab in labels.items():
            values["ari"].setdefault(name, []).append(ari(y[~out], lab[~out]))
        if out.any():
            scores = {"umeta": -MetaAnomalyDetector(learner).fit(x).training_scores_}
            for name in ("iforest", "knn"):
                scores[name] = table_baselines.anomaly_scores(name, x, seed)[0]
            for name, s in scores.items():
                values["auroc"].setdefault(name, []).append(auroc(out.astype(int), s))
    rows = []
    for metric, by in values.items():
        for name, v in by.items():
            rows.append(result_row(name, "meta-trained" if name == "umeta" else "none",
                                   "held-out synthetic tables", metric, *mean_ci95(np.array(v)),
                                   len(v)))
            print(f"synthetic {metric} {name}: {np.mean(v):.3f} over {len(v)} tables")
    return rows


def shape_table(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
    """One seeded table of scikit-learn's generators: (family, x (N, D), y (N,))."""
    from sklearn.datasets import make_blobs, make_circles, make_moons

    n = int(rng.integers(300, 3001))
    seed = int(rng.integers(2**31))
    family = rng.choice(["blobs", "many-blobs", "sheared", "unequal", "moons", "rings"])
    if family == "moons":
        x, y = make_moons(n, noise=rng.uniform(0.03, 0.12), random_state=seed)
    elif family == "rings":
        x, y = make_circles(n, noise=rng.uniform(0.02, 0.08), factor=rng.uniform(0.3, 0.6),
                            random_state=seed)
    else:
        k = int(rng.integers(12, 31) if family == "many-blobs" else rng.integers(3, 11))
        d = int(rng.choice([2, 3]))
        box = 10.0 * k ** (1 / d)
        spread = rng.uniform(0.5, 2.5, k) if family == "unequal" else rng.uniform(0.5, 1.2)
        x, y = make_blobs(n, d, centers=k, cluster_std=spread, center_box=(-box, box),
                          random_state=seed)
        if family == "sheared":
            x = x @ rng.normal(size=(d, d))
    scale = rng.uniform(0.1, 100.0, x.shape[1])
    return str(family), (x * scale).astype(np.float32), y.astype(np.int64)


def shape_rows(learner, n_tables: int, seed: int, algorithm: str = "auto") -> list[dict]:
    rng = np.random.default_rng(seed)
    values: dict[str, dict[str, list[float]]] = {}
    for _ in range(n_tables):
        family, x, y = shape_table(rng)
        k = len(np.unique(y))
        labels = {"umeta": MetaClusterer(learner, k, algorithm=algorithm).fit(x).labels_}
        for name in ("kmeans", "gmm", "spectral"):
            labels[name] = table_baselines.cluster_labels(name, x, k, seed)[0]
        for setting in ("shapes: all", f"shapes: {family}"):
            for name, lab in labels.items():
                values.setdefault(setting, {}).setdefault(name, []).append(ari(y, lab))
    rows = []
    for setting, by in sorted(values.items()):
        for name, v in by.items():
            rows.append(result_row(name, "meta-trained" if name == "umeta" else "none",
                                   setting, "ari", *mean_ci95(np.array(v)), len(v)))
        print(setting, " ".join(f"{name} {np.mean(v):.3f}" for name, v in by.items()),
              f"({len(v)} tables)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tables", type=int, default=40, help="synthetic tables (0: none)")
    parser.add_argument("--shapes", type=int, default=0,
                        help="tables of scikit-learn's generators (0: none)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch (B8 runs its methods with 1)")
    parser.add_argument("--algorithm", default="auto", choices=["auto", "kmeans", "spectral"],
                        help="MetaClusterer's clustering step (auto: spectral for a table model)")
    parser.add_argument("--note", help="what the checkpoint is, for the record")
    parser.add_argument("--seed", type=int, default=CHECK_SEED)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    device = resolve_device(args.device)
    learner = load_learner(args.checkpoint, device)
    rows = [] if args.no_speed else speed_rows(learner, device, args.seed, args.algorithm)
    if args.tables:
        rows += synthetic_rows(learner, args.tables, args.seed, args.algorithm)
    if args.shapes:
        rows += shape_rows(learner, args.shapes, args.seed, args.algorithm)
    write_results(args.out, "tables-check", rows, device=device,
                  wall_s=time.perf_counter() - start, seed=args.seed,
                  checkpoint=args.checkpoint, threads=torch.get_num_threads(),
                  algorithm=args.algorithm,
                  **({"note": args.note} if args.note else {}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
