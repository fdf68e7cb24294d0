"""The `umeta` command line: run, train, eval, cluster, embed, detect.

User mistakes become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from umeta.errors import UmetaError

#: Flags of `umeta train` that set a config key directly: flag -> (dotted key, type).
TRAIN_FLAGS: dict[str, tuple[str, type]] = {
    "dataset": ("data.dataset", str),
    "data_dir": ("data.data_dir", str),
    "split": ("data.split", str),
    "backbone": ("model.backbone", str),
    "learner": ("learner.name", str),
    "tasks": ("tasks.builder", str),
    "n_way": ("tasks.n_way", int),
    "k_shot": ("tasks.k_shot", int),
    "q_query": ("tasks.q_query", int),
    "steps": ("optim.steps", int),
    "meta_batch": ("optim.meta_batch", int),
    "lr": ("optim.lr", float),
    "run_dir": ("run.run_dir", str),
    "device": ("run.device", str),
    "seed": ("run.seed", int),
}


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="meta-train a learner (labelled or label-free tasks)",
                       description="Meta-train a learner. Settings come from --config (TOML/JSON), "
                                   "then the flags below, then --set section.key=value.")
    p.add_argument("--config", help="TOML or JSON config file (sections data, model, learner, "
                                    "tasks, optim, run)")
    for flag, (key, kind) in TRAIN_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), type=kind, help=f"sets {key}")
    p.add_argument("--rotations", action=argparse.BooleanOptionalAction, default=None,
                   help="add 90/180/270-degree rotations as classes (Omniglot, supervised)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set learner.options.inner_steps=5")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="few-shot accuracy +- 95%% CI on the test split")
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint from umeta train")
    p.add_argument("--settings", default="5w1s,5w5s,20w1s,20w5s",
                   help="comma-separated N-way K-shot settings (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=2000, help="test episodes per setting")
    p.add_argument("--q-query", type=int, default=15, help="queries per class")
    p.add_argument("--dataset", help="evaluate on this dataset instead of the checkpoint's")
    p.add_argument("--data-dir", help="folder holding the data")
    p.add_argument("--part", default="test", help="data part to evaluate on (default: test)")
    p.add_argument("--rotations", action="store_true",
                   help="add the rotated test classes (Omniglot Vinyals test split as Snell et al.)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results JSON (BENCHMARKS.md format) here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umeta", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(sub)
    _add_eval_parser(sub)
    return parser


def _version() -> str:
    from umeta import __version__

    return f"umeta {__version__}"


def train_config_from_args(args: argparse.Namespace):
    from umeta.config import assemble_config

    values = {key: getattr(args, flag) for flag, (key, _) in TRAIN_FLAGS.items()}
    values["data.rotations"] = args.rotations
    return assemble_config(args.config, values, args.set)


def cmd_train(args: argparse.Namespace) -> int:
    from umeta.train import train

    cfg = train_config_from_args(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    best = (f", best val accuracy {result.best_val_accuracy:.2f}%"
            if result.best_val_accuracy is not None else "")
    print(f"trained {result.steps} steps in {result.wall_s:.0f} s{best}; checkpoints in "
          f"{result.run_dir / 'checkpoints'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from umeta.checkpoint import load_learner
    from umeta.data.sources import load_part
    from umeta.evaluate import evaluate_fewshot, parse_settings
    from umeta.results import write_results
    from umeta.train import is_label_free, resolve_device

    if args.episodes < 1:
        raise UmetaError(f"--episodes must be at least 1; got {args.episodes}")
    device = resolve_device(args.device)
    settings = parse_settings(args.settings)
    learner = load_learner(args.checkpoint, device)
    cfg = learner.config
    if args.dataset:
        cfg.data.dataset = args.dataset
    if args.data_dir:
        cfg.data.data_dir = args.data_dir
    data = load_part(cfg.data, args.part, rotations=args.rotations).to(device)
    start = time.perf_counter()
    training = "label-free" if is_label_free(cfg) else "supervised"
    method = cfg.learner.name if not is_label_free(cfg) else f"{cfg.tasks.builder}-{cfg.learner.name}"
    rows = evaluate_fewshot(learner, data, settings, n_tasks=args.episodes, q_query=args.q_query,
                            seed=args.seed, method=method, training=training)
    wall = time.perf_counter() - start
    print(f"{'setting':<8} {'accuracy %':>12} {'95% CI':>8}  ({data.name}, {args.episodes} episodes)")
    for row in rows:
        print(f"{row['setting']:<8} {row['mean']:>12.2f} {row['ci95']:>8.2f}")
    if args.out:
        write_results(args.out, "B1", rows, device=device, wall_s=wall, seed=args.seed,
                      dataset=cfg.data.dataset, split=cfg.data.split, part=args.part,
                      checkpoint=str(args.checkpoint), train_rotations=cfg.data.rotations,
                      test_rotations=args.rotations, test_classes=data.num_classes)
        print(f"wrote {args.out}")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UmetaError as err:
        print(f"umeta {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"umeta {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
