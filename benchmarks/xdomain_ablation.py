"""Meta-train label-free models on Omniglot's background alphabets (and generated images) and
score each on image sets from other domains: the levers of issue 15, each with its ablation.

For every ``--config``: train (``optim.steps`` or ``--steps``; the images come from the config's
``data.dataset``: ``omniglot`` or a mixture of `umeta.data.mixed`, part ``--part``, labels never
read), then few-shot clustering of ``--tasks`` seeded tasks of ``--n-way`` classes x
``--per-class`` images on each of ``--sets``, umeta (k-means++ on L2-normalised embeddings)
against k-means on pixels on the same tasks (`xdomain_score.XDomainScorer`). Sets are the
``<name>.npz`` files of ``--xdomain-dir`` and two in-domain references: ``omniglot-evaluation``
(the 20 evaluation alphabets, never trained on) and ``procedural-test`` (generated classes of the
test range). One results file holds every config's rows. ``--score-only`` re-scores the
checkpoints of finished runs (``<run-root>/<config stem>/checkpoints/last.safetensors``) instead.

    PYTHONPATH=src python benchmarks/xdomain_ablation.py --config configs/xdomain_psco_baseline.toml \\
        --config configs/xdomain_psco_both.toml --out benchmarks/results/xdomain_ablation.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from entry import run_main
from xdomain_score import XDOMAIN_SETS, XDomainScorer, load_xdomain

from umeta.build import load_learner, resolve_device
from umeta.config import DataConfig, assemble_config
from umeta.data.mixed import load_mixture
from umeta.data.omniglot import load_omniglot
from umeta.data.sources import load_part
from umeta.results import result_row, write_results
from umeta.train import train

IN_DOMAIN = ("omniglot-evaluation", "procedural-test")


def evaluation_sets(names: list[str], xdomain_dir: str, data_dir: str | None,
                    device: torch.device):
    """The named evaluation sets (see the module docstring), on the CPU."""
    sets = {}
    for name in names:
        if name == "omniglot-evaluation":
            sets[name] = load_omniglot("evaluation", split="background-evaluation",
                                       data_dir=data_dir, download=False)
        elif name == "procedural-test":
            sets[name] = load_mixture(DataConfig(dataset="procedural"), "test", device=device)
        else:
            sets[name] = load_xdomain(xdomain_dir, name)
    return sets


def result_rows(label: str, scores: dict, names: list[str], setting: str,
                num_tasks: int) -> list[dict]:
    """Rows of one config: umeta and pixel k-means accuracy and the gain per set, then the
    minimum and mean gain over the cross-domain sets."""
    rows = []
    for name in names:
        s = scores[name]
        rows.append(result_row(f"{label}:umeta", "label-free", setting, "clustering_accuracy",
                               s["umeta"]["mean"], s["umeta"]["ci95"], num_tasks, dataset=name,
                               config=label))
        rows.append(result_row("kmeans-pixels", "none", setting, "clustering_accuracy",
                               s["kmeans-pixels"]["mean"], s["kmeans-pixels"]["ci95"], num_tasks,
                               dataset=name, config=label))
        rows.append(result_row(f"{label}:umeta", "label-free", setting, "gain_vs_kmeans_pixels",
                               s["gain"]["mean"], s["gain"]["ci95"], num_tasks, dataset=name,
                               config=label))
    xdomain = [n for n in names if n not in IN_DOMAIN]
    if xdomain:
        gains = [scores[n]["gain"] for n in xdomain]
        worst = min(gains, key=lambda g: g["mean"])
        mean = sum(g["mean"] for g in gains) / len(gains)
        mean_ci = sum(g["ci95"] ** 2 for g in gains) ** 0.5 / len(gains)  # independent sets
        for metric, value, ci in (("min_gain_vs_kmeans_pixels", worst["mean"], worst["ci95"]),
                                  ("mean_gain_vs_kmeans_pixels", mean, mean_ci)):
            rows.append(result_row(f"{label}:umeta", "label-free", setting, metric, value, ci,
                                   num_tasks, dataset=",".join(xdomain), config=label))
    return rows


def train_config(path: str, args: argparse.Namespace, device: torch.device):
    """Train one config as the arguments say; returns (learner, what the run was)."""
    cfg = assemble_config(path, sets=args.sets_)
    if args.steps:
        cfg.optim.steps = args.steps
    if args.data_dir:
        cfg.data.data_dir = args.data_dir
    cfg.run.device = args.device
    cfg.run.run_dir = str(Path(args.run_root) / Path(path).stem)
    data = load_part(cfg.data, args.part)
    result = train(cfg, progress=not args.no_progress, train_data=data)
    last = [h for h in result.history if "tasks_per_s" in h]
    return result.learner, {
        "config": cfg.to_dict(), "steps": result.steps, "train_wall_s": round(result.wall_s, 2),
        "train_images": len(data), "train_data": data.name,
        "final_loss": last[-1]["loss"] if last else None,
        "final_pseudo_task_accuracy": last[-1]["accuracy"] if last else None,
        "steps_per_s": last[-1]["tasks_per_s"] / cfg.optim.meta_batch if last else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True,
                        help="a training config (repeatable); its file stem names its rows")
    parser.add_argument("--set", action="append", default=[], dest="sets_",
                        help="KEY=VALUE override for every config (repeatable)")
    parser.add_argument("--steps", type=int, help="override optim.steps")
    parser.add_argument("--part", default="background",
                        help="the Omniglot part to train on (default: background, with "
                             "data.split=background-evaluation)")
    parser.add_argument("--sets", default=",".join(XDOMAIN_SETS + IN_DOMAIN),
                        help="comma-separated evaluation sets")
    parser.add_argument("--xdomain-dir",
                        default=os.environ.get("UMETA_XDOMAIN", "../shared/data/xdomain"))
    parser.add_argument("--data-dir", default=os.environ.get("UMETA_DATA"))
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--run-root", default="runs/xdomain")
    parser.add_argument("--score-only", action="store_true",
                        help="score the checkpoints of runs already in --run-root")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    start = time.perf_counter()
    device = resolve_device(args.device)
    names = [s for s in args.sets.split(",") if s]
    scorer = XDomainScorer(evaluation_sets(names, args.xdomain_dir, args.data_dir, device),
                           args.n_way, args.per_class, args.tasks, args.seed, device)
    rows, runs = [], {}
    for path in args.config:
        label = Path(path).stem
        if args.score_only:
            checkpoint = Path(args.run_root) / label / "checkpoints" / "last.safetensors"
            learner = load_learner(checkpoint, device)
            runs[label] = {"checkpoint": str(checkpoint), "config": learner.config.to_dict()}
        else:
            learner, runs[label] = train_config(path, args, device)
        rows += result_rows(label, scorer.score(learner), names, scorer.setting, args.tasks)
        # after every config, so that a run cut short keeps the configs it finished
        write_results(args.out, "B6-xdomain-ablation", rows, device=device,
                      wall_s=time.perf_counter() - start, seed=args.seed,
                      scorer="xdomain_score.XDomainScorer: k-means++ (10 restarts) on "
                             "L2-normalised embeddings vs sklearn KMeans (n_init=10) on pixels, "
                             "same tasks", sets=names, part=args.part, runs=runs)


if __name__ == "__main__":
    run_main(main)
