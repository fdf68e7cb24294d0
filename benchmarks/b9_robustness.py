"""B9: robustness on Omniglot's evaluation alphabets, against pixel baselines.

The built-in label-free image model (PsCo on Conv4, meta-trained without labels on Omniglot's 30
background alphabets plus procedural images: it never saw the 20 evaluation alphabets) is scored
on 5-way 1-shot episodes (15 queries per class) and on 5 x 10 clustering tasks of the evaluation
alphabets (split ``background-evaluation``, part ``evaluation``, 659 characters): clean, under
five corruptions at five severities (`umeta.tasks.corruptions`, every image of a task), and
under PGD (`umeta.robustness`: L-inf radii 2, 4, 8, 16 / 255, 10 steps, the margin objective;
the first ``--attack-tasks`` tasks). A nearest class-mean prototype on pixels (few-shot) and
k-means++ on pixels (clustering, 10 restarts, the same algorithm as the model's) run on the same
tasks. Rows: every cell's accuracy +- 95% CI, each corruption's error relative to pixels (CE)
and their mean (mCE), ImageNet-C style, with bootstrap CIs over the tasks.

    nice -n 10 python benchmarks/b9_robustness.py --out benchmarks/results/b9_robustness.json \
        --figure docs/robustness.png
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from entry import run_main

from umeta.build import resolve_device
from umeta.data.sources import load_part
from umeta.pretrained import SHIPPED, load_builtin
from umeta.robustness import DEFAULT_EPS, robustness_curves, summary_lines, write_robustness
from umeta.tasks.corruptions import CORRUPTIONS, SEVERITIES

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "umeta-builtin-images"


def default_data_dir() -> Path:
    """``$UMETA_SHARED_DATA/omniglot``, else ``../shared/data/omniglot`` beside the repository."""
    shared = os.environ.get("UMETA_SHARED_DATA")
    return (Path(shared) if shared else REPO_ROOT.parent / "shared" / "data") / "omniglot"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--tasks", type=int, default=300, help="tasks of each kind per cell")
    parser.add_argument("--attack-tasks", type=int, default=100, help="tasks attacked by PGD")
    parser.add_argument("--attack-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--figure", help="PNG of the curves")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    device = resolve_device(args.device)
    learner = load_builtin("images", device)
    cfg = learner.config.data
    cfg.dataset, cfg.split, cfg.data_dir = "omniglot", "background-evaluation", args.data_dir
    data = load_part(cfg, "test", rotations=False)  # the 20 evaluation alphabets
    curves = robustness_curves(learner, data, corruptions=tuple(CORRUPTIONS),
                               severities=SEVERITIES, eps=DEFAULT_EPS, attack="margin",
                               attack_steps=args.attack_steps, n_tasks=args.tasks,
                               attack_tasks=args.attack_tasks, n_way=5, k_shot=1, q_query=15,
                               per_class=10, seed=args.seed, progress=True)
    write_robustness(curves, args.out, args.figure, model_name=MODEL_NAME, training="label-free",
                     benchmark="B9", device=device, wall_s=time.perf_counter() - start,
                     dataset="omniglot", split="background-evaluation", part="evaluation",
                     test_classes=data.num_classes, checkpoint=SHIPPED["images"].file,
                     model_trained_on="Omniglot background alphabets + procedural images, "
                                      "no labels")
    print("\n".join(summary_lines(curves, MODEL_NAME)))


if __name__ == "__main__":
    run_main(main)
