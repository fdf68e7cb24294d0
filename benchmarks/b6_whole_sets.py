"""B6 on whole sets: each xdomain set clustered the way `umeta cluster` clusters a folder.

B6 scores few-shot tasks (5 or 10 classes x 10 images). A user's folder is larger: here each set
of ``../shared/data/xdomain`` is subsampled (``--images`` images, seeded, ``--subsamples``
draws) and clustered into all its classes by `MetaClusterer` with its defaults, for each
``--checkpoint`` in ``--space`` (default the built-in model's space), and by k-means on the
pixels; metric ``clustering_accuracy`` (Hungarian), mean over the draws with a t-interval, the
per-draw values in the rows. The sets are evaluated only: a checkpoint that may have been
meta-trained on one of them is refused (`b6_xdomain.check_training_data`, by name and sha256).

    python benchmarks/b6_whole_sets.py --checkpoint builtin --checkpoint other.safetensors \\
        --out results/b6_whole_sets.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import b6_xdomain as b6
from entry import run_main

from umeta.adapt.layers import in_space
from umeta.build import is_label_free
from umeta.errors import UmetaError
from umeta.estimators import MetaClusterer
from umeta.metrics import clustering_accuracy, mean_ci95
from umeta.pretrained import SHIPPED
from umeta.results import result_row, write_results


def load_models(checkpoints: list[str], space: str, manifest: dict[str, str]) -> dict:
    """``--checkpoint`` value -> (learner in ``space`` on the CPU, "label-free" or "supervised"),
    each refused if it may have been meta-trained on a B6 set."""
    models = {}
    for given in checkpoints:
        learner = b6.load_checked_model(given, manifest)[0]
        training = "label-free" if is_label_free(learner.config) else "supervised"
        models[given] = (in_space(learner, space), training)
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[])
    parser.add_argument("--space", default=SHIPPED["images"].space)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--subsamples", type=int, default=4)
    parser.add_argument("--data-dir", help="the xdomain folder (default ../shared/data/xdomain)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not args.checkpoint:
        raise UmetaError("name at least one --checkpoint (a file or 'builtin')")
    if args.images < 2 or args.subsamples < 1:
        raise UmetaError(f"--images must be at least 2 and --subsamples at least 1; got "
                         f"{args.images} and {args.subsamples}")
    start = time.perf_counter()
    data_dir = Path(args.data_dir) if args.data_dir else b6.default_data_dir()
    models = load_models(args.checkpoint, args.space, b6.read_manifest(data_dir))
    data = b6.load_xdomain(data_dir)
    methods = {**{given: learner for given, (learner, _) in models.items()}, "kmeans-pixels": None}
    rows = []
    for name, imageset in data.items():
        images, labels = imageset.images[:, 0].numpy(), imageset.labels.numpy()
        k, drawn = len(np.unique(labels)), min(args.images, len(images))
        scores: dict[str, list[float]] = {}
        for draw in range(args.subsamples):
            idx = np.random.default_rng(draw).choice(len(images), drawn, replace=False)
            truth = torch.as_tensor(labels[idx])
            for method, learner in methods.items():
                pred = MetaClusterer(learner, n_clusters=k, random_state=draw, device="cpu",
                                     progress=False).fit_predict(images[idx])
                scores.setdefault(method, []).append(
                    100 * clustering_accuracy(truth, torch.as_tensor(pred)))
        for method, values in scores.items():
            mean, ci = mean_ci95(np.array(values))
            training = "none" if method == "kmeans-pixels" else models[method][1]
            rows.append(result_row(method, training, f"{name} {k}x~{drawn // k}",
                                   "clustering_accuracy", mean, ci, len(values), dataset=name,
                                   space=None if method == "kmeans-pixels" else args.space,
                                   per_draw=[round(v, 2) for v in values]))
            print(f"{name:<15} {method[-40:]:<40} {mean:6.2f} +- {ci:.2f}", flush=True)
    write_results(args.out, "B6-whole-sets", rows, device="cpu",
                  wall_s=time.perf_counter() - start, seed=0, images=args.images,
                  subsamples=args.subsamples, space=args.space)


if __name__ == "__main__":
    run_main(main)
