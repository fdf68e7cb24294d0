"""The main job, `umeta run`: meta-train without labels on seen classes, then cluster unseen
classes and compare with k-means on pixels on the same tasks; write a report directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from umeta.adapt.embed import embed_dataset, embedding_quality
from umeta.build import resolve_device
from umeta.data.sources import load_part
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.metrics import clustering_scores, matched_confusion, mean_ci95
from umeta.numeric.clustering import cluster_tasks
from umeta.numeric.random import check_seed
from umeta.recipes import main_job_config
from umeta.report import plot_cluster_grid, plot_confusion, plot_embedding, plot_learning_curve
from umeta.results import result_row, write_results
from umeta.tasks.clustering import ClusteringTasks, sample_clustering_tasks
from umeta.train import train

METRICS = ("clustering_accuracy", "nmi", "ari")


def umeta_clusters(learner: Learner, tasks: ClusteringTasks, seed: int) -> np.ndarray:
    """Cluster every task in the meta-learned space: k-means++ (10 restarts) on normalised
    features, all tasks batched. Returns labels (T, M)."""
    t, m = tasks.images.shape[:2]
    feats = learner.embed(tasks.images.flatten(0, 1)).view(t, m, -1)
    return cluster_tasks(feats, tasks.n_way, normalize=True, seed=seed).labels.cpu().numpy()


def pixel_kmeans_clusters(tasks: ClusteringTasks, seed: int) -> np.ndarray:
    """The baseline: scikit-learn k-means (k-means++, n_init=10) on each task's raw pixels."""
    pixels = tasks.images.flatten(2).cpu().numpy()
    return np.stack([KMeans(tasks.n_way, init="k-means++", n_init=10, random_state=seed)
                     .fit_predict(x) for x in pixels])


def score_tasks(truth: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Per-task clustering accuracy (percent), NMI and ARI."""
    scores = [clustering_scores(t, p) for t, p in zip(truth, predicted)]
    out = {k: np.array([s[k] for s in scores]) for k in METRICS}
    out["clustering_accuracy"] *= 100.0
    return out


def run_main_job(*, dataset: str = "glyphs", out: str | Path = "umeta-report", steps: int = 800,
                 num_tasks: int = 200, n_way: int = 5, per_class: int = 20, seed: int = 0,
                 device: str = "auto", data_dir: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Run the main job and write the report; returns the report dict (results format).

    Meta-trains label-free on the seen classes (``trainval`` part: images only), then draws
    ``num_tasks`` clustering tasks of ``n_way`` unseen (``test``) classes x ``per_class`` images
    and clusters each with umeta and with k-means on pixels.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UmetaError(f"--out {str(out)!r} is a file; the report needs a new or empty folder")
    if out.exists() and any(out.iterdir()):
        raise UmetaError(f"report folder {str(out)!r} is not empty; pass another --out or remove it")
    blocking = next((p for p in out.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UmetaError(f"--out {str(out)!r}: {str(blocking)!r} is a file, not a folder")
    if num_tasks < 2 or steps < 1:
        raise UmetaError(f"--tasks must be at least 2 and --steps at least 1; got {num_tasks}, {steps}")
    check_seed(seed)
    start = time.perf_counter()
    dev = resolve_device(device)
    cfg = main_job_config(dataset, steps, seed, device, out / "run", data_dir)
    seen = load_part(cfg.data, "trainval")
    unseen = load_part(cfg.data, "test").to(dev)
    result = train(cfg, progress=progress, train_data=seen)
    learner = result.learner

    tasks = sample_clustering_tasks(unseen, n_way, per_class, num_tasks, seed + 1)
    methods = {"umeta": umeta_clusters(learner, tasks, seed),
               "kmeans-pixels": pixel_kmeans_clusters(tasks, seed)}
    scores = {name: score_tasks(tasks.labels, labels) for name, labels in methods.items()}
    setting = f"{n_way}x{per_class}"
    rows = []
    for name, per_task in scores.items():
        for metric in METRICS:
            mean, ci = mean_ci95(per_task[metric])
            rows.append(result_row(name, "label-free" if name == "umeta" else "none", setting,
                                   metric, mean, ci, num_tasks))
    gain = scores["umeta"]["clustering_accuracy"] - scores["kmeans-pixels"]["clustering_accuracy"]
    gain_mean, gain_ci = mean_ci95(gain)

    # Figures: the learning curve, and the embedding, clusters and confusion matrix of one of
    # the scored tasks: the one of median umeta accuracy, as umeta clustered it.
    out.mkdir(parents=True, exist_ok=True)
    figures = {"learning_curve": plot_learning_curve(result.history, out / "learning_curve.png")}
    accuracy = scores["umeta"]["clustering_accuracy"]
    shown = int(np.argsort(accuracy, kind="stable")[num_tasks // 2])
    classes, truth = np.unique(tasks.labels[shown], return_inverse=True)
    names = [unseen.class_names[c] for c in classes]
    clusters = methods["umeta"][shown]
    about = (f"task {shown + 1} of {num_tasks}, the median one (accuracy {accuracy[shown]:.1f}%; "
             f"mean over the tasks {mean_ci95(accuracy)[0]:.1f}%)")
    embedding = embed_dataset(learner, tasks.images[shown], d=2, normalize=True)
    quality = embedding_quality(tasks.images[shown].flatten(1), embedding.points, k=5)
    figures["embedding"] = plot_embedding(embedding.points.cpu().numpy(), clusters, truth, names,
                                          out / "embedding.png", f"Embedding of {about}")
    figures["clusters"] = plot_cluster_grid(tasks.images[shown, :, 0].cpu().numpy(), clusters,
                                            truth, names, out / "clusters.png",
                                            f"umeta's clusters of {about}")
    figures["confusion"] = plot_confusion(matched_confusion(truth, clusters), names,
                                          out / "confusion.png", f"Classes vs clusters of {about}")
    wall = time.perf_counter() - start
    report = write_results(
        out / "report.json", "B4", rows, device=dev, wall_s=wall, seed=seed, dataset=dataset,
        data=f"seen: {seen.name} ({seen.num_classes} classes, {len(seen)} images, labels unused); "
             f"unseen: {unseen.name} ({unseen.num_classes} classes)",
        gain_vs_kmeans_pixels={"mean": round(gain_mean, 4), "ci95": round(gain_ci, 4)},
        train_steps=result.steps, train_wall_s=round(result.wall_s, 2),
        embedding_quality={k: round(v, 4) for k, v in quality.items()},
        figure_task={"index": shown, "clustering_accuracy": round(float(accuracy[shown]), 4),
                     "classes": names},
        figures={k: str(v.name) for k, v in figures.items()}, config=cfg.to_dict(),
    )
    return report


def format_table(report: dict[str, Any]) -> str:
    """The side-by-side table `umeta run` prints."""
    by = {(r["method"], r["metric"]): r for r in report["results"]}
    setting = report["results"][0]["setting"]
    n = report["results"][0]["n_tasks"]
    lines = [f"few-shot clustering of unseen classes: {n} tasks of {setting} (N-way x M per class)",
             f"{'method':<16}{'accuracy %':>16}{'NMI':>18}{'ARI':>18}"]
    for method in ("umeta", "kmeans-pixels"):
        cells = [f"{by[(method, m)]['mean']:.2f} +- {by[(method, m)]['ci95']:.2f}" if m ==
                 "clustering_accuracy" else
                 f"{by[(method, m)]['mean']:.3f} +- {by[(method, m)]['ci95']:.3f}" for m in METRICS]
        lines.append(f"{method:<16}{cells[0]:>16}{cells[1]:>18}{cells[2]:>18}")
    gain = report["gain_vs_kmeans_pixels"]
    lines.append(f"umeta - kmeans-pixels: {gain['mean']:+.2f} +- {gain['ci95']:.2f} points "
                 f"of clustering accuracy")
    return "\n".join(lines)


__all__ = ["format_table", "run_main_job", "sample_clustering_tasks"]
