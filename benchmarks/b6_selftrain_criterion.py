"""Does cluster-then-fine-tune help on a new collection, and can that be told without labels?

On B6's tasks (`b6_xdomain.draw_tasks`, the same seeds), each task is clustered by umeta after
AdaBN on its images ("base") and after AdaBN then self-training on them ("selftrain",
`umeta.adapt.selftrain`). Per task three label-free criteria compare the self-trained partition
with the base one; a positive value says "keep the self-trained one":

- ``pixel_agreement``: ARI with k-means of the task's pixels, self-trained minus base (another
  view of the same images, with errors of its own; `umeta.adapt.selftrain.pixel_agreement_gain`,
  the check `checked_selftrain` uses);
- ``base_silhouette``: silhouette of the partition in the base features (L2-normalised),
  self-trained minus base (a fixed yardstick: the adapted space is not asked to judge itself);
- ``pixel_silhouette``: the same in pixel space.

Rows per set and setting: accuracy of base, self-trained and each gated choice (the paired gain
over base with its CI), and each criterion's Spearman correlation with the true per-task gain.
Tune on one set, judge on the others (``--sets``).

    python benchmarks/b6_selftrain_criterion.py --checkpoint builtin --sets quickdraw6 \
        --settings 5x10 --tasks 60 --out b6_selftrain_criterion_quickdraw6.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import b6_xdomain as b6
from entry import run_main

from umeta.adapt.adabn import adabn
from umeta.adapt.selftrain import pixel_agreement_gain, pseudo_labels, selftrain
from umeta.build import load_learner, resolve_device
from umeta.checkpoint import read_checkpoint
from umeta.metrics import clustering_accuracy, mean_ci95
from umeta.numeric.clustering import silhouette_scores
from umeta.results import result_row, write_results

CRITERIA = ("pixel_agreement", "base_silhouette", "pixel_silhouette")


def task_record(learner, images: torch.Tensor, truth: np.ndarray, k: int, seed: int,
                steps: int, lr: float) -> dict:
    """Accuracies (percent) of base and self-trained clustering of one task, and the criteria."""
    base_model = adabn(learner, images)
    tuned = selftrain(base_model, images, k, steps=steps, lr=lr, seed=seed).learner
    base_feats = torch.nn.functional.normalize(base_model.embed(images), dim=-1)
    base = pseudo_labels(base_model, images, k, seed)
    tuned_labels = pseudo_labels(tuned, images, k, seed)
    pixels = images.flatten(1)

    def sil(x, labels):
        return float(silhouette_scores(x[None], labels[None], k)[0])

    b, s = base.cpu().numpy(), tuned_labels.cpu().numpy()
    return {
        "base": 100 * clustering_accuracy(truth, b),
        "selftrain": 100 * clustering_accuracy(truth, s),
        "pixel_agreement": pixel_agreement_gain(images, base, tuned_labels, k, seed),
        "base_silhouette": sil(base_feats, tuned_labels) - sil(base_feats, base),
        "pixel_silhouette": sil(pixels, tuned_labels) - sil(pixels, base),
    }


def cell_rows(records: list[dict], set_name: str, setting: str, **info) -> list[dict]:
    base = np.array([r["base"] for r in records])
    tuned = np.array([r["selftrain"] for r in records])
    true_gain = tuned - base
    rows = []
    choices = {"base": base, "selftrain": tuned}
    for c in CRITERIA:
        keep = np.array([r[c] > 0 for r in records])
        choices[f"gated-{c}"] = np.where(keep, tuned, base)
    for name, acc in choices.items():
        mean, ci = mean_ci95(acc)
        g, g_ci = mean_ci95(acc - base)
        rows.append(result_row(name, "label-free", setting, "clustering_accuracy", mean, ci,
                               len(acc), dataset=set_name, gain_vs_base=round(g, 4),
                               gain_ci95=round(g_ci, 4), **info))
    for c in CRITERIA:
        values = np.array([r[c] for r in records])
        rho = stats.spearmanr(values, true_gain).statistic if values.std() > 0 else 0.0
        rows.append(result_row(c, "label-free", setting, "spearman_with_true_gain", float(rho),
                               0.0, len(values), dataset=set_name, **info))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--sets", required=True, help="comma-separated xdomain sets")
    parser.add_argument("--settings", default="5x10,10x10")
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    device = resolve_device(args.device)
    from umeta.pretrained import BUILTIN, builtin_checkpoint

    data_dir = Path(args.data_dir) if args.data_dir else b6.default_data_dir()
    path = builtin_checkpoint() if args.checkpoint == BUILTIN else Path(args.checkpoint)
    _, meta = read_checkpoint(path)
    b6.check_training_data(meta["config"], meta.get("progress") or {}, b6.read_manifest(data_dir))
    learner = load_learner(path, device)
    settings = [tuple(int(v) for v in s.split("x")) for s in args.settings.split(",")]
    sets = b6.load_xdomain(data_dir, args.sets.split(","))
    tasks, skipped = b6.draw_tasks(sets, settings, args.tasks, args.seed)
    info = {"checkpoint": args.checkpoint, "selftrain_steps": args.steps, "selftrain_lr": args.lr,
            "space": b6.embedding_space(learner, b6.Variant()), "adapt_base": "adabn (task)"}
    rows = []
    for (set_name, setting), cell in tasks.items():
        records = [task_record(learner, x.to(device), truth, cell.n_way, args.seed + i,
                               args.steps, args.lr)
                   for i, (x, truth) in enumerate(zip(cell.images, cell.labels))]
        new = cell_rows(records, set_name, setting, **info)
        rows += new
        for r in new:
            extra = (f" gain {r['gain_vs_base']:+.2f} +- {r['gain_ci95']:.2f}"
                     if "gain_vs_base" in r else "")
            print(f"{set_name:<15} {setting:<6} {r['method']:<26} {r['metric']:<24} "
                  f"{r['mean']:7.3f}{extra}", flush=True)
    write_results(args.out, "B6-selftrain-criterion", rows, device=device,
                  wall_s=time.perf_counter() - start, seed=args.seed, dataset="xdomain",
                  sets=args.sets.split(","), tasks_per_cell=args.tasks, skipped=skipped)


if __name__ == "__main__":
    run_main(main)
