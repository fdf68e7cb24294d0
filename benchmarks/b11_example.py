"""B11 example: one `umeta compare` run as a user makes it, for the README's table and figure.

A seeded subsample of one xdomain set (default quickdraw6, 600 images) is the user's data:
ProtoNets, MAML and PsCo are meta-trained without labels on its images for ``--budget-s`` seconds
each, and compared with the built-in model (its own space and block 2) and the raw pixels; the
set's labels score the candidates (never the criterion). Writes the rows (criterion with its
bootstrap interval, clustering accuracy) with provenance, the printed table and verdict, and the
plot (``--plot``).

    nice -n 10 python benchmarks/b11_example.py --out benchmarks/results/b11_example.json \
        --plot docs/compare_quickdraw6.png
"""

from __future__ import annotations

import argparse
import time

import torch

import b6_xdomain as b6
from b11_compare import subsample
from entry import run_main

from umeta.compare import LEARNER_CHOICES, compare_models
from umeta.results import result_row, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="quickdraw6", help="the xdomain set")
    parser.add_argument("--size", type=int, default=600, help="images (seeded subsample)")
    parser.add_argument("--budget-s", type=float, default=20.0)
    parser.add_argument("--resamples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--plot", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = b6.load_xdomain(b6.default_data_dir(), [args.set])[args.set]
    index = subsample(len(data), args.size, args.seed)
    result = compare_models(data.float_images(index), learners=LEARNER_CHOICES,
                            checkpoints=["builtin", "builtin@block2", "none"],
                            n_clusters=data.num_classes, labels=data.labels[index].numpy(),
                            budget_s=args.budget_s, n_boot=args.resamples, seed=args.seed,
                            device="cpu", source=f"xdomain/{args.set}")
    rows = []
    for cand in result.candidates:
        low, high = cand.ci95
        training = "none" if cand.kind == "raw" else "label-free"
        rows.append(result_row(cand.name, training, f"{args.set}/{len(index)}",
                               result.criterion, cand.scores[result.criterion],
                               (high - low) / 2, result.n_boot, ci_low=round(low, 4),
                               ci_high=round(high, 4), ci_method="basic bootstrap",
                               first_share=cand.first_share))
        rows.append(result_row(cand.name, training, f"{args.set}/{len(index)}",
                               "clustering_accuracy", cand.truth["clustering_accuracy"], 0.0, 1,
                               ci_method="one clustering: no interval", trained=cand.training))
    result.plot(args.plot)
    print(result.table())
    print("\n".join(result.verdict()))
    write_results(args.out, "B11", rows, device="cpu", wall_s=time.perf_counter() - start,
                  seed=args.seed, dataset=f"xdomain/{args.set}", budget_s=args.budget_s,
                  table=result.table().splitlines(), verdict=result.verdict(),
                  comparison=result.to_dict(), plot=args.plot)


if __name__ == "__main__":
    run_main(main)
