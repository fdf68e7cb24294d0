"""B1: meta-train on Omniglot (Vinyals split) and evaluate N-way K-shot accuracy +- 95% CI.

Usage (one GPU):
    python benchmarks/b1_fewshot.py --config configs/b1_protonet.toml \
        --out benchmarks/results/b1_protonet.json

Trains with `umeta.train.train` from the config (plus --set overrides), evaluates the returned
learner with `umeta.evaluate.evaluate_fewshot` on the test split, and writes one results file
with training and evaluation wall time.
"""

from __future__ import annotations

import argparse
import itertools
import time

from entry import run_main
from targets import annotate

from umeta.build import is_label_free, load_learner, resolve_device
from umeta.config import assemble_config
from umeta.data.sources import load_part
from umeta.evaluate import evaluate_fewshot, parse_settings, set_transductive_steps
from umeta.learners.psco import EVAL_HEADS, PsCo
from umeta.results import write_results
from umeta.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--settings", default="5w1s,5w5s,20w1s,20w5s")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--method", help="method name in the results (default: from the config)")
    parser.add_argument("--transductive-steps", default="0",
                        help="comma-separated soft k-means steps with the unlabeled queries at "
                             "test time (prototype learners); each value gets its own rows")
    parser.add_argument("--checkpoint", help="evaluate this checkpoint instead of training "
                                             "(--set then overrides its own config, e.g. "
                                             "data.split to test on)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in run.run_dir (one stopped by run.time_limit_s: "
                             "call again with --resume until it has trained optim.steps)")
    parser.add_argument("--eval-heads", default=None,
                        help="PsCo only: comma-separated evaluation features to compare, of "
                             + ", ".join(EVAL_HEADS) + " (default: the config's eval_head)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cfg = assemble_config(args.config, sets=args.set)
    device = resolve_device(cfg.run.device)

    start = time.perf_counter()
    total_train_s = None
    if args.checkpoint:
        learner, steps, history = load_learner(args.checkpoint, device), None, []
        cfg = learner.config
        for item in args.set:  # e.g. evaluate on another split than the one trained on
            key, _, value = item.partition("=")
            cfg.override(key.strip(), value.strip())
    else:
        result = train(cfg, progress=False, resume=args.resume)
        if not result.finished:
            print(f"stopped at run.time_limit_s after step {result.steps} of {cfg.optim.steps} "
                  f"in {cfg.run.run_dir}; call again with --resume to continue")
            return
        learner, steps, history = result.learner, result.steps, result.history
        total_train_s = round(result.total_train_s, 2)
    train_wall = time.perf_counter() - start
    label_free = is_label_free(cfg)
    method = args.method or (f"{cfg.tasks.builder}-{cfg.learner.name}" if label_free
                             else cfg.learner.name)
    eval_start = time.perf_counter()
    rows = []
    # Both test protocols: the split files' test classes with their rotations (1692 classes for
    # Omniglot/Vinyals, as Snell et al. evaluate), and the unrotated characters alone (423).
    transductive = [int(v) for v in args.transductive_steps.split(",")]
    for steps_t in transductive:  # refuse a bad value before any evaluation
        set_transductive_steps(learner, steps_t)
    heads = args.eval_heads.split(",") if args.eval_heads else [None]
    if heads != [None] and not isinstance(learner, PsCo):
        raise SystemExit(f"--eval-heads is for psco, not {cfg.learner.name}")
    if not set(heads) <= {None, *EVAL_HEADS}:
        raise SystemExit(f"--eval-heads takes {', '.join(EVAL_HEADS)}; got {args.eval_heads}")
    for rotations in (True, False):
        test = load_part(cfg.data, "test", rotations=rotations).to(device)
        for head, steps_t in itertools.product(heads, transductive):
            extra = {}
            if head is not None:
                learner.eval_head = extra["eval_head"] = head
            set_transductive_steps(learner, steps_t)
            for row in evaluate_fewshot(learner, test, parse_settings(args.settings),
                                        n_tasks=args.episodes, seed=cfg.run.seed + 12345,
                                        method=method,
                                        training="label-free" if label_free else "supervised"):
                row.update(test_rotations=rotations, test_classes=test.num_classes, **extra)
                rows.append(row)
    eval_wall = time.perf_counter() - eval_start
    rows = annotate({"benchmark": "B1", "results": rows})["results"]
    doc = write_results(
        args.out, "B1", rows, device=device, wall_s=train_wall + eval_wall, seed=cfg.run.seed,
        dataset=cfg.data.dataset, split=cfg.data.split, rotations=cfg.data.rotations,
        train_wall_s=round(train_wall, 2), eval_wall_s=round(eval_wall, 2), steps=steps,
        total_train_s=total_train_s,
        config=cfg.to_dict(), checkpoint=args.checkpoint,
        train_tasks_per_s=next((r["tasks_per_s"] for r in reversed(history)
                                if "tasks_per_s" in r), None),
    )
    print(f"{method}: trained {steps} steps in {train_wall:.1f} s (device {doc['device']})")
    for row in rows:
        head = f", {row['eval_head']}" if "eval_head" in row else ""
        print(f"  {row['setting']:<6} {row['mean']:6.2f} +- {row['ci95']:.2f}  "
              f"({row['test_classes']} test classes, transductive steps "
              f"{row['transductive_steps']}{head})")


if __name__ == "__main__":
    run_main(main)
