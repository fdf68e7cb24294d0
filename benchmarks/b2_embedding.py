"""B2-embedding: 2-D embeddings of unseen Omniglot characters, made without labels.

A task: N test characters x M images each, shuffled. Each method maps the task's images to 2-D:
umeta's MetaEmbedder (meta-learned features, then PCA to 2-D) for each checkpoint, and PCA(2) and
t-SNE(2) of the pixels (scikit-learn). Scores per task, with the pixels as the input space (as
`umeta.adapt.embed.embedding_quality` does): trustworthiness, continuity, k-NN preservation
(fractions in [0, 1]) and the Spearman and Pearson correlations of pairwise distances; and, since
meta-learned embeddings are meant to show the classes, the leave-one-out k-NN classification
accuracy of the 2-D points and the clustering accuracy (Hungarian) of k-means with k = N on them
(both in percent; the labels only score). Mean +- 95% CI over the tasks. One large set repeated
over seeds is ``--settings 50x20 --tasks 20`` (1000 images per task).

    python benchmarks/b2_embedding.py --checkpoint runs/b1_psco/checkpoints/last.safetensors \
        --checkpoint runs/b1_protonet_1shot/checkpoints/best.safetensors \
        --out benchmarks/results/b2_embedding.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import Tensor

from b2_anomaly import describe, print_table, summarise
from common import add_common_arguments, test_data_and_learners
from entry import run_main

from umeta.numeric.clustering import kmeans
from umeta.adapt.embed import embedding_quality
from umeta.estimators import MetaEmbedder
from umeta.metrics import clustering_accuracy
from umeta.results import write_results
from umeta.tasks.clustering import sample_clustering_tasks

BASELINES = ("pca-pixels", "tsne-pixels")
#: embedding_quality's keys -> metric names in the results
QUALITY = {"trustworthiness": "trustworthiness", "continuity": "continuity",
           "knn_preservation": "knn_preservation", "spearman": "distance_spearman",
           "pearson": "distance_pearson"}
PRINTED = ("trustworthiness", "continuity", "knn_accuracy", "clustering_accuracy")


def baseline_points(name: str, x: np.ndarray, seed: int) -> np.ndarray:
    """2-D points (M, 2) of one task's pixels x (M, D) by a classical method."""
    if name == "pca-pixels":
        return PCA(2, random_state=seed).fit_transform(x)
    if name == "tsne-pixels":
        return TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca",
                    random_state=seed).fit_transform(x)
    raise ValueError(name)


def knn_accuracy(points: Tensor, labels: Tensor, k: int) -> Tensor:
    """Leave-one-out k-NN classification accuracy of each task.

    Each point gets the majority label of its ``k`` nearest other points, ties going to the
    smallest label (as scikit-learn's ``KNeighborsClassifier`` breaks them).

    Parameters
    ----------
    points : Tensor of shape (T, M, d)
    labels : Tensor of shape (T, M), int64 in ``0 .. C - 1``
    k : int
        ``1 <= k < M``.

    Returns
    -------
    Tensor of shape (T,), fractions in [0, 1]
    """
    d = torch.cdist(points, points)
    d.diagonal(dim1=1, dim2=2).fill_(torch.inf)
    nearest = d.topk(k, dim=2, largest=False).indices  # (T, M, k)
    neighbour_labels = labels.gather(1, nearest.flatten(1)).view_as(nearest)
    votes = F.one_hot(neighbour_labels, int(labels.max()) + 1).sum(2)  # (T, M, C)
    return (votes.argmax(-1) == labels).float().mean(1)


def class_structure(points: Tensor, labels: Tensor, n_classes: int, knn_k: int,
                    seed: int) -> dict[str, list[float]]:
    """Per-task k-NN accuracy and k-means clustering accuracy (percent) of points (T, M, d)."""
    knn = 100.0 * knn_accuracy(points, labels, knn_k).cpu().numpy()
    found = kmeans(points, n_classes, n_init=10, seed=seed).labels.cpu().numpy()
    truth = labels.cpu().numpy()
    return {"knn_accuracy": knn.tolist(),
            "clustering_accuracy": [100.0 * clustering_accuracy(t, p)
                                    for t, p in zip(truth, found)]}


def quality_scores(pixels: np.ndarray, points: np.ndarray, k: int, seed: int,
                   jobs: int) -> dict[str, list[float]]:
    """Per-task `embedding_quality` of points (T, M, 2) against pixels (T, M, D)."""
    # max_nbytes=None: no read-only memory maps, which torch.as_tensor warns about
    per_task = Parallel(n_jobs=jobs, max_nbytes=None)(
        delayed(embedding_quality)(x, p, k, seed=seed) for x, p in zip(pixels, points))
    return {name: [q[key] for q in per_task] for key, name in QUALITY.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="10x20,20x20", help="N x M settings")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--quality-k", type=int, default=10,
                        help="neighbourhood size of trustworthiness, continuity, k-NN preservation")
    parser.add_argument("--knn-k", type=int, default=5, help="neighbours of the k-NN classifier")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                        help="L2-normalise the meta-learned features before PCA")
    add_common_arguments(parser, "processes for the baselines and the quality scores")
    args = parser.parse_args()
    start = time.perf_counter()
    device, data_cfg, data, learners = test_data_and_learners(args)
    rows = []
    for setting in args.settings.split(","):
        n, m = (int(v) for v in setting.lower().split("x"))
        tasks = sample_clustering_tasks(data, n, m, args.tasks, seed=args.seed + 100 * n + m)
        labels = tasks.ways
        images = tasks.images  # (T, N*M, C, H, W)
        pixels = images.flatten(2).cpu().numpy()
        methods = []  # (method, training, points (T, N*M, 2), extra fields)
        for path, learner in zip(args.checkpoint, learners):
            t0 = time.perf_counter()
            points = np.stack([MetaEmbedder(learner, 2, normalize=args.normalize).fit_transform(x)
                               for x in images])
            wall = time.perf_counter() - t0
            method, training = describe(learner)
            methods.append((method, training, points, {"checkpoint": path,
                                                       "normalize": args.normalize,
                                                       "wall_s": round(wall, 2)}))
        if not args.no_baselines:
            for name in BASELINES:
                t0 = time.perf_counter()
                points = np.stack(Parallel(n_jobs=args.jobs)(
                    delayed(baseline_points)(name, x, args.seed) for x in pixels))
                wall = time.perf_counter() - t0
                methods.append((name, "none", points, {"wall_s": round(wall, 2)}))
        for method, training, points, extra in methods:
            values = quality_scores(pixels, points, args.quality_k, args.seed, args.jobs)
            values.update(class_structure(torch.as_tensor(points, dtype=torch.float32,
                                                          device=device),
                                          labels, n, args.knn_k, args.seed))
            rows += summarise(method, training, setting, values, quality_k=args.quality_k,
                              knn_k=args.knn_k, **extra)
        print_table(rows, setting, PRINTED)
    write_results(args.out, "B2-embedding", rows, device=device,
                  wall_s=time.perf_counter() - start, seed=args.seed, dataset=args.dataset,
                  split=data_cfg.split if args.dataset == "omniglot" else None, part="test",
                  test_classes=data.num_classes)


if __name__ == "__main__":
    run_main(main)
