"""B2-anomaly: one-class anomaly detection on unseen Omniglot characters from K normal images.

A task: K images of one test character are the known-normal ("fit") set; the test set is the
other M - K images of that character (normal) and as many images drawn at random from the images
of A other test characters (anomalies); M is the number of images per character (20 for
Omniglot). Every method scores the test set from the fit set alone. Scores: AUROC and average
precision (both in percent) per task, mean +- 95% CI over the tasks. umeta scores in the feature
space of each meta-trained checkpoint with `umeta.adapt.anomaly.anomaly_scores` (distance to the
n-th nearest normal image, "knn", and to the mean of the normal features, "prototype"; for K = 1
the two coincide); the baselines (Isolation Forest, LOF with novelty=True for K >= 2, and the
k-NN distance, all on pixels, scikit-learn) run on the same tasks in the same run.

    python benchmarks/b2_anomaly.py --checkpoint runs/b1_psco/checkpoints/last.safetensors \
        --checkpoint runs/b1_protonet_1shot/checkpoints/best.safetensors \
        --out benchmarks/results/b2_anomaly.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from torch import Tensor

from common import add_common_arguments, test_data_and_learners
from entry import run_main

from umeta.adapt.anomaly import METHODS, anomaly_scores
from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.metrics import auroc, average_precision, mean_ci95
from umeta.results import result_row, write_results
from umeta.tasks.sampler import EpisodeSampler
from umeta.build import is_label_free

BASELINES = ("isolation-forest-pixels", "lof-pixels", "knn-pixels")


def describe(learner: Learner) -> tuple[str, str]:
    """Method name (``umeta-<builder>-<learner>``, as B2 clustering names it) and training kind."""
    cfg = learner.config
    return (f"umeta-{cfg.tasks.builder}-{cfg.learner.name}",
            "label-free" if is_label_free(cfg) else "supervised")


def summarise(method: str, training: str, setting: str, values: dict[str, list[float]],
              **extra) -> list[dict]:
    """One result row per metric: mean +- 95% CI over the per-task ``values[metric]``."""
    rows = []
    for metric, per_task in values.items():
        mean, ci = mean_ci95(per_task)
        rows.append(result_row(method, training, setting, metric, mean, ci, len(per_task), **extra))
    return rows


def print_table(rows: list[dict], setting: str, metrics: tuple[str, ...]) -> None:
    """Print one line per method of ``setting``: mean +- 95% CI of each metric."""
    table: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        if row["setting"] == setting:
            table.setdefault((row["method"], row.get("checkpoint")), {})[row["metric"]] = row
    print(f"{'setting':<8}{'method':<36}" + "".join(f"{m:>20}" for m in metrics))
    for (method, _), by_metric in table.items():
        cells = [f"{by_metric[m]['mean']:.4g} +- {by_metric[m]['ci95']:.2g}" for m in metrics]
        print(f"{setting:<8}{method:<36}" + "".join(f"{c:>20}" for c in cells))


def sample_anomaly_tasks(data: ImageSet, n_tasks: int, k_shot: int, anomaly_classes: int,
                         seed: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """Index tensors of one-class anomaly tasks, drawn on the data's device.

    Parameters
    ----------
    data : ImageSet
        Labelled images; every class contributes its first ``M`` (fewest images of any class)
        images in a random order.
    n_tasks, k_shot, anomaly_classes : int
        ``1 <= k_shot < M``; anomalies come from ``anomaly_classes >= 1`` other classes.
    seed : int

    Returns
    -------
    fit : Tensor of shape (T, K), int64
        The known-normal images of each task.
    test : Tensor of shape (T, 2 * (M - K)), int64
        The other ``M - K`` images of the normal class, then ``M - K`` anomalies.
    is_anomaly : ndarray of shape (2 * (M - K),), int64
        1 for the anomalies, the same for every task.
    """
    counts = data.class_counts()
    per_class = int(counts[counts > 0].min())
    if not 1 <= k_shot < per_class:
        raise UmetaError(f"K={k_shot} must be between 1 and {per_class - 1}: the classes have "
                         f"{per_class} images and the normal class needs some left to test")
    if anomaly_classes < 1:
        raise UmetaError(f"--anomaly-classes={anomaly_classes} must be at least 1")
    sampler = EpisodeSampler(data, 1 + anomaly_classes, per_class, 0, seed=seed)
    idx, _ = sampler.sample_indices(n_tasks)  # (T, (1 + A) * M), class-major, shuffled within
    normal, others = idx[:, :per_class], idx[:, per_class:]
    n_test = per_class - k_shot
    keys = torch.rand(others.shape, device=others.device, generator=sampler.generator)
    anomalies = others.gather(1, keys.argsort(1)[:, :n_test])
    test = torch.cat([normal[:, k_shot:], anomalies], 1)
    return normal[:, :k_shot], test, np.repeat([0, 1], n_test)


def umeta_scores(fit_feats: Tensor, test_feats: Tensor, method: str, *, n_neighbors: int,
                 normalize: bool, seed: int) -> np.ndarray:
    """`anomaly_scores` of each task's test features (T, Q, D) given its normal ones (T, K, D).

    Returns
    -------
    ndarray of shape (T, Q)
    """
    scores = [anomaly_scores(None, test, fit, method=method, n_neighbors=n_neighbors,
                             normalize=normalize, seed=seed)
              for fit, test in zip(fit_feats, test_feats)]
    return torch.stack(scores).cpu().numpy()


def baseline_scores(name: str, fit: np.ndarray, test: np.ndarray, n_neighbors: int,
                    seed: int) -> np.ndarray:
    """Anomaly scores (Q,) of one task's test pixels (Q, D) from its normal pixels (K, D),
    higher = more anomalous."""
    if name == "isolation-forest-pixels":
        return -IsolationForest(random_state=seed).fit(fit).score_samples(test)
    if name == "lof-pixels":
        lof = LocalOutlierFactor(n_neighbors=min(20, len(fit) - 1), novelty=True).fit(fit)
        return -lof.score_samples(test)
    if name == "knn-pixels":
        return NearestNeighbors(n_neighbors=n_neighbors).fit(fit).kneighbors(test)[0][:, -1]
    raise ValueError(name)


def ranking_scores(is_anomaly: np.ndarray, scores) -> dict[str, list[float]]:
    """Per-task AUROC and average precision in percent, for scores (T, Q)."""
    return {"auroc": [100.0 * auroc(is_anomaly, s) for s in scores],
            "average_precision": [100.0 * average_precision(is_anomaly, s) for s in scores]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", default="1,5,10", help="K: known-normal images per task")
    parser.add_argument("--anomaly-classes", type=int, default=5,
                        help="other characters the anomalies of a task come from")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--n-neighbors", type=int, default=1,
                        help="k-NN variants score the distance to this nearest normal image "
                             "(at most K)")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                        help="L2-normalise the meta-learned features")
    add_common_arguments(parser, "processes for the baselines")
    args = parser.parse_args()
    start = time.perf_counter()
    device, data_cfg, data, learners = test_data_and_learners(args)
    rows, sizes = [], {}
    for k_shot in (int(v) for v in args.shots.split(",")):
        setting = f"K={k_shot}"
        n_neighbors = min(args.n_neighbors, k_shot)
        fit_idx, test_idx, is_anomaly = sample_anomaly_tasks(
            data, args.tasks, k_shot, args.anomaly_classes, seed=args.seed + 1000 * k_shot)
        sizes[setting] = {"normal_test": int(len(is_anomaly) - is_anomaly.sum()),
                           "anomalies": int(is_anomaly.sum())}
        images = data.float_images(torch.cat([fit_idx, test_idx], 1))  # (T, K + Q, C, H, W)
        for path, learner in zip(args.checkpoint, learners):
            t0 = time.perf_counter()
            feats = learner.embed(images.flatten(0, 1)).view(args.tasks, images.shape[1], -1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            embed_wall = time.perf_counter() - t0
            method, training = describe(learner)
            for variant in METHODS:
                t0 = time.perf_counter()
                scores = umeta_scores(feats[:, :k_shot], feats[:, k_shot:], variant,
                                      n_neighbors=n_neighbors, normalize=args.normalize,
                                      seed=args.seed)
                wall = embed_wall + time.perf_counter() - t0
                rows += summarise(f"{method}-{variant}", training, setting,
                                  ranking_scores(is_anomaly, scores), checkpoint=path,
                                  normalize=args.normalize,
                                  n_neighbors=n_neighbors if variant == "knn" else None,
                                  wall_s=round(wall, 2))
        if not args.no_baselines:
            pixels = images.flatten(2).cpu().numpy()
            for name in BASELINES:
                if name == "lof-pixels" and k_shot < 2:
                    print(f"{setting}: {name} skipped (LOF needs K >= 2)")
                    continue
                t0 = time.perf_counter()
                scores = Parallel(n_jobs=args.jobs)(
                    delayed(baseline_scores)(name, x[:k_shot], x[k_shot:], n_neighbors, args.seed)
                    for x in pixels)
                wall = time.perf_counter() - t0
                rows += summarise(name, "none", setting, ranking_scores(is_anomaly, scores),
                                  n_neighbors=n_neighbors if name == "knn-pixels" else None,
                                  wall_s=round(wall, 2))
        print_table(rows, setting, ("auroc", "average_precision"))
    write_results(args.out, "B2-anomaly", rows, device=device, wall_s=time.perf_counter() - start,
                  seed=args.seed, dataset=args.dataset,
                  split=data_cfg.split if args.dataset == "omniglot" else None, part="test",
                  test_classes=data.num_classes, anomaly_classes=args.anomaly_classes,
                  test_set_sizes=sizes)


if __name__ == "__main__":
    run_main(main)
