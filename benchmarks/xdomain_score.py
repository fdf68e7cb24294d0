"""A minimal B6-style score: few-shot clustering of image sets from other domains, umeta against
k-means on pixels on the same tasks.

A task: ``n_way`` classes x ``per_class`` images of one set, shuffled (the B2 task sampler,
seeded). umeta embeds the images with the learner (its ``embed_head`` space), L2-normalises and
runs k-means++ (`umeta.mainjob.umeta_clusters`); the baseline is scikit-learn k-means
(k-means++, n_init=10) on the raw pixels. Scores are clustering accuracy in percent, mean and 95%
CI over tasks, and the paired per-task gain. The full B6 benchmark (`benchmarks/b6_xdomain.py`,
more settings and baselines, input conversion) replaces this where it exists; the ablation driver
uses this function so that it runs before B6 lands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.mainjob import pixel_kmeans_clusters, score_tasks, umeta_clusters
from umeta.metrics import mean_ci95
from umeta.tasks.clustering import sample_clustering_tasks

XDOMAIN_SETS = ("sklearn_digits", "notmnist", "fashion_mnist", "quickdraw6")


def load_xdomain(folder: str | Path, name: str) -> ImageSet:
    """``<folder>/<name>.npz`` (``images`` uint8 (N, 28, 28), ink high; ``labels``) as an
    `ImageSet` of shape (N, 1, 28, 28)."""
    path = Path(folder) / f"{name}.npz"
    if not path.is_file():
        raise UmetaError(f"no cross-domain set at {path}; point --xdomain-dir at the folder of "
                         f"<name>.npz files (../shared/data/xdomain)")
    with np.load(path) as z:
        images = torch.from_numpy(z["images"]).unsqueeze(1)
        labels = torch.from_numpy(z["labels"]).long()
    names = [f"{name}/{c}" for c in range(int(labels.max()) + 1)]
    return ImageSet(images, labels, names, None, name)


def _summary(values: np.ndarray) -> dict:
    mean, ci = mean_ci95(values)
    return {"mean": round(mean, 4), "ci95": round(ci, 4)}


class XDomainScorer:
    """Few-shot clustering of fixed seeded tasks, umeta vs k-means on pixels (computed once).

    Parameters
    ----------
    sets : dict of name -> ImageSet
    n_way, per_class, num_tasks, seed : int
        The tasks: the same for every learner scored.
    device : torch.device
    """

    def __init__(self, sets: dict[str, ImageSet], n_way: int = 5, per_class: int = 10,
                 num_tasks: int = 200, seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.setting = f"{n_way}x{per_class}"
        self.num_tasks, self.seed = num_tasks, seed
        self.tasks = {name: sample_clustering_tasks(data.to(device), n_way, per_class, num_tasks,
                                                    seed) for name, data in sets.items()}
        self.pixels = {name: score_tasks(t.labels, pixel_kmeans_clusters(t, seed))
                       ["clustering_accuracy"] for name, t in self.tasks.items()}

    def score(self, learner: Learner) -> dict[str, dict]:
        """Per set: umeta's and k-means-on-pixels' clustering accuracy (mean, ci95 over tasks)
        and the paired gain, plus ``min_gain`` / ``mean_gain`` over the sets (of the means)."""
        out: dict[str, dict] = {}
        for name, tasks in self.tasks.items():
            acc = score_tasks(tasks.labels, umeta_clusters(learner, tasks, self.seed))[
                "clustering_accuracy"]
            out[name] = {"umeta": _summary(acc), "kmeans-pixels": _summary(self.pixels[name]),
                         "gain": _summary(acc - self.pixels[name])}
        gains = [v["gain"]["mean"] for v in out.values()]
        out["summary"] = {"min_gain": round(min(gains), 4),
                          "mean_gain": round(float(np.mean(gains)), 4)}
        return out
