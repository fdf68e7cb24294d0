"""B2: few-shot clustering of unseen Omniglot characters (no labels at meta-test).

A task: N test characters x M images each, shuffled; each method returns N clusters. Scores:
clustering accuracy (Hungarian), NMI, ARI, mean +- 95% CI over the tasks. umeta's meta-trained
models and the classical baselines (k-means++ with n_init=10 on pixels and on PCA(50), spectral
clustering and Ward agglomerative on pixels) run on the same tasks in the same run.
``--finetune-steps 0,S`` adds rows of umeta after S label-free fine-tuning steps on each task's
own images (method suffix ``+ftS``; ``+ftS@lrL`` when several ``--finetune-lr`` are given), with
the paired per-task gain over no fine-tuning (``gain_vs_no_finetune`` +- ``gain_ci95``).
``--algorithm kmeans,spectral`` adds rows of umeta with each task clustered by spectral
clustering on its embedding's 10-nearest-neighbour graph (suffix ``+spectral``, refinement
"none" only) beside k-means.

    python benchmarks/b2_clustering.py --checkpoint runs/b1_psco/checkpoints/last.safetensors \
        --checkpoint runs/b1_protonet_1shot/checkpoints/best.safetensors \
        --out benchmarks/results/b2_clustering.json
    python benchmarks/b2_clustering.py --dataset glyphs --checkpoint builtin --settings 5x20 \
        --tasks 100 --no-baselines --finetune-steps 0,10 --out b2_finetune.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.decomposition import PCA

from common import add_common_arguments, test_data_and_learners
from entry import run_main
from targets import annotate

from umeta.adapt.finetune import finetuned_embeddings
from umeta.build import is_label_free
from umeta.metrics import clustering_scores, mean_ci95
from umeta.numeric.clustering import cluster_tasks
from umeta.numeric.spectral import spectral_clustering
from umeta.results import result_row, write_results
from umeta.tasks.clustering import sample_clustering_tasks

METRICS = ("clustering_accuracy", "nmi", "ari")


def baseline_labels(name: str, x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster one task's pixels x (M, D) into k clusters with a classical method."""
    if name == "kmeans-pixels":
        return KMeans(k, init="k-means++", n_init=10, random_state=seed).fit_predict(x)
    if name == "kmeans-pca50":
        z = PCA(min(50, len(x) - 1, x.shape[1]), random_state=seed).fit_transform(x)
        return KMeans(k, init="k-means++", n_init=10, random_state=seed).fit_predict(z)
    if name == "spectral-pixels":
        return SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=min(10, len(x) - 1),
                                  assign_labels="cluster_qr", random_state=seed).fit_predict(x)
    if name == "ward-pixels":
        return AgglomerativeClustering(k, linkage="ward").fit_predict(x)
    raise ValueError(name)


BASELINES = ("kmeans-pixels", "kmeans-pca50", "spectral-pixels", "ward-pixels")


def summarise(method: str, training: str, setting: str, scores: list[dict],
              reference: list[dict] | None = None, **extra) -> list[dict]:
    """One row per metric; with ``reference`` (per-task scores of another method on the same
    tasks) also the paired gain over it, ``gain_vs_no_finetune`` +- ``gain_ci95``."""
    def values(per_task: list[dict], metric: str) -> np.ndarray:
        return np.array([s[metric] for s in per_task]) * (
            100.0 if metric == "clustering_accuracy" else 1.0)

    rows = []
    for metric in METRICS:
        mean, ci = mean_ci95(values(scores, metric))
        gain = {}
        if reference is not None:
            g, g_ci = mean_ci95(values(scores, metric) - values(reference, metric))
            gain = {"gain_vs_no_finetune": round(g, 4), "gain_ci95": round(g_ci, 4)}
        rows.append(result_row(method, training, setting, metric, mean, ci, len(scores),
                               **extra, **gain))
    return rows


def finetune_variants(steps: str, lrs: str) -> list[tuple[int, float, str]]:
    """(steps, lr, method suffix) for ``--finetune-steps`` x ``--finetune-lr``; 0 steps once."""
    step_list = [int(v) for v in steps.split(",")]
    lr_list = [float(v) for v in lrs.split(",")]
    variants = [(0, lr_list[0], "")] if 0 in step_list else []
    for n in (n for n in step_list if n != 0):
        variants += [(n, lr, f"+ft{n}" + (f"@lr{lr:g}" if len(lr_list) > 1 else ""))
                     for lr in lr_list]
    return variants


def steps_of(refine: str, algorithm: str) -> list[tuple[str, str]]:
    """The (refinement, algorithm) variants of ``--refine`` x ``--algorithm`` (comma-separated);
    spectral clustering has no prototypes to refine, so it pairs with "none" only."""
    return [(r, a) for r in refine.split(",") for a in algorithm.split(",")
            if a == "kmeans" or r == "none"]


def task_labels(feats: torch.Tensor, n: int, refine: str, algorithm: str, seed: int,
                normalize: bool = True) -> np.ndarray:
    """Cluster labels (T, M) of each task's features (T, M, D), L2-normalised with
    ``normalize``, into ``n`` (batched k-means, or each task's spectral clustering)."""
    if algorithm == "spectral":
        feats = F.normalize(feats, dim=-1) if normalize else feats
        return torch.stack([spectral_clustering(f, n, seed=seed) for f in feats]).cpu().numpy()
    return cluster_tasks(feats, n, normalize=normalize, refine=refine,
                         seed=seed).labels.cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="5x5,5x20,20x5,20x20", help="N x M settings")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--refine", default="none",
                        help="umeta prototype refinement after k-means, comma-separated variants "
                             "(none, soft, balanced); each gets its own rows")
    parser.add_argument("--algorithm", default="kmeans",
                        help="umeta clustering steps, comma-separated variants (kmeans, "
                             "spectral; spectral only with refinement none); each gets rows")
    parser.add_argument("--finetune-steps", default="0",
                        help="label-free fine-tuning steps on each task's own images before "
                             "clustering, comma-separated variants (0 = none); each gets rows")
    parser.add_argument("--finetune-lr", default="1e-4",
                        help="Adam learning rates of the fine-tuning, comma-separated")
    add_common_arguments(parser, "processes for the baselines")
    args = parser.parse_args()
    variants = finetune_variants(args.finetune_steps, args.finetune_lr)
    start = time.perf_counter()
    device, _, data, learners = test_data_and_learners(args)
    rows = []
    for setting in args.settings.split(","):
        n, m = (int(v) for v in setting.lower().split("x"))
        tasks = sample_clustering_tasks(data, n, m, args.tasks, seed=args.seed + 100 * n + m)
        truth, images = tasks.labels, tasks.images  # images: (T, N*M, C, H, W)
        for path, learner in zip(args.checkpoint, learners):
            cfg = learner.config
            training = "label-free" if is_label_free(cfg) else "supervised"
            feats_of, run_wall = {}, {}  # (steps, lr) -> features; lr -> fine-tuning wall time
            for lr in dict.fromkeys(lr for _, lr, _ in variants):
                t0 = time.perf_counter()
                found = finetuned_embeddings(learner, images, [v for v, w, _ in variants if w == lr],
                                           lr=lr, seed=args.seed)
                feats_of.update({(v, lr): f for v, f in found.items()})
                run_wall[lr] = round(time.perf_counter() - t0, 2)
            unadapted = {}  # refine -> per-task scores without fine-tuning
            for steps, lr, suffix in variants:
                feats = feats_of[steps, lr]
                # one fine-tuning run per task and lr gives all its step counts: its wall time
                tuning = ({} if steps == 0 else {"finetune_steps": steps, "finetune_lr": lr,
                                                 "finetune_run_wall_s": run_wall[lr]})
                for refine, algorithm in steps_of(args.refine, args.algorithm):
                    t0 = time.perf_counter()
                    labels = task_labels(feats, n, refine, algorithm, args.seed)
                    wall = time.perf_counter() - t0
                    method = f"umeta-{cfg.tasks.builder}-{cfg.learner.name}" + (
                        "" if refine == "none" else f"+{refine}") + (
                        "" if algorithm == "kmeans" else f"+{algorithm}") + suffix
                    scores = [clustering_scores(t, p) for t, p in zip(truth, labels)]
                    if steps == 0:
                        unadapted[refine, algorithm] = scores
                    rows += summarise(method, training, setting, scores,
                                      None if steps == 0 else unadapted.get((refine, algorithm)),
                                      checkpoint=path, refine=refine, algorithm=algorithm,
                                      cluster_wall_s=round(wall, 3), **tuning)
        if not args.no_baselines:
            pixels = images.flatten(2).cpu().numpy()
            for name in BASELINES:
                t0 = time.perf_counter()
                labels = Parallel(n_jobs=args.jobs)(
                    delayed(baseline_labels)(name, x, n, args.seed) for x in pixels)
                wall = time.perf_counter() - t0
                scores = [clustering_scores(t, p) for t, p in zip(truth, labels)]
                rows += summarise(name, "none", setting, scores, wall_s=round(wall, 2))
        for row in rows:
            if row["setting"] == setting and row["metric"] == "clustering_accuracy":
                gain = (f"   gain {row['gain_vs_no_finetune']:+.2f} +- {row['gain_ci95']:.2f}"
                        if "gain_vs_no_finetune" in row else "")
                print(f"{setting:<6} {row['method']:<28} {row['mean']:6.2f} +- "
                      f"{row['ci95']:.2f}{gain}", flush=True)
    rows = annotate({"benchmark": "B2", "results": rows})["results"]
    write_results(args.out, "B2", rows, device=device, wall_s=time.perf_counter() - start,
                  seed=args.seed, dataset=args.dataset,
                  split="vinyals" if args.dataset == "omniglot" else None, part="test",
                  test_classes=data.num_classes)


if __name__ == "__main__":
    run_main(main)
