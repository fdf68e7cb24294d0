"""Check of a trained table model: speed on large tables, and held-out synthetic tables.

* speed: seconds and rows/s of ``MetaClusterer(k=5).fit`` and ``MetaAnomalyDetector.fit`` on
  seeded tables of 10,000 x 50 and 100,000 x 50 (five Gaussian blobs), on ``--device``;
* synthetic: ``--tables`` tables of the prior (`umeta.data.table_priors`) from a seed that no
  training run uses, each a fresh shape (rows 200 .. 2000, columns 2 .. 40, a third of them
  with outliers): ARI of the model (k-means on its embedding, k given) against KMeans and
  GaussianMixture, and AUROC of its outlier score against IsolationForest and k-NN, on the
  same tables (``table_baselines``, standardised columns).

    python benchmarks/tables_check.py --checkpoint model.safetensors --device cuda \\
        --out results.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import table_baselines
from umeta.build import load_learner, resolve_device
from umeta.data.table_priors import sample_prior_tables
from umeta.estimators import MetaAnomalyDetector, MetaClusterer
from umeta.metrics import ari, auroc, mean_ci95
from umeta.results import result_row, write_results

SPEED_SHAPES = ((10_000, 50), (100_000, 50))
CHECK_SEED = 987_654_321


def speed_rows(learner, device: torch.device, seed: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed)
    for n, d in SPEED_SHAPES:
        centers = rng.normal(scale=4.0, size=(5, d))
        x = (centers[rng.integers(0, 5, n)] + rng.normal(size=(n, d))).astype(np.float32)
        for verb, call in (("cluster", lambda: MetaClusterer(learner, 5).fit(x)),
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


def synthetic_rows(learner, n_tables: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    values: dict[str, dict[str, list[float]]] = {"ari": {}, "auroc": {}}
    for _ in range(n_tables):
        n, d = int(rng.integers(200, 2001)), int(rng.integers(2, 41))
        table = sample_prior_tables(1, n, d, gen, outlier_share=1 / 3)
        x, y, out = table.x[0].numpy(), table.y[0].numpy(), table.outlier[0].numpy()
        k = int(table.n_clusters[0])
        labels = {"umeta": MetaClusterer(learner, k).fit(x).labels_}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tables", type=int, default=40, help="synthetic tables (0: none)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch (B8 runs its methods with 1)")
    parser.add_argument("--note", help="what the checkpoint is, for the record")
    parser.add_argument("--seed", type=int, default=CHECK_SEED)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    device = resolve_device(args.device)
    learner = load_learner(args.checkpoint, device)
    rows = [] if args.no_speed else speed_rows(learner, device, args.seed)
    if args.tables:
        rows += synthetic_rows(learner, args.tables, args.seed)
    write_results(args.out, "tables-check", rows, device=device,
                  wall_s=time.perf_counter() - start, seed=args.seed,
                  checkpoint=args.checkpoint, threads=torch.get_num_threads(),
                  **({"note": args.note} if args.note else {}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
