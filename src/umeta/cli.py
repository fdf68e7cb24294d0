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
    p.add_argument("--transductive-steps", type=int, default=0,
                   help="prototype learners: refine the prototypes with each episode's unlabeled "
                        "queries for this many soft k-means steps (default 0: inductive)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0,
                   help="episode seed (benchmarks/b1_fewshot.py uses run.seed + 12345)")
    p.add_argument("--out", help="write the results JSON (BENCHMARKS.md format) here")


def _add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="the main job: label-free meta-training on seen classes, "
                                   "then clustering of unseen classes vs k-means on pixels",
                       description="Meta-train without labels on seen classes, cluster unseen "
                                   "classes and compare with k-means on pixels on the same tasks; "
                                   "write a report folder (report.json and figures).")
    p.add_argument("--dataset", default="glyphs",
                   help="glyphs (built in, offline; default) or omniglot")
    p.add_argument("--data-dir", help="folder holding the data (Omniglot)")
    p.add_argument("--out", default="umeta-report", help="report folder (default: %(default)s)")
    p.add_argument("--steps", type=int, default=800, help="meta-training steps")
    p.add_argument("--tasks", type=int, default=200, help="clustering tasks to score")
    p.add_argument("--n-way", type=int, default=5, help="classes per clustering task")
    p.add_argument("--per-class", type=int, default=20, help="images per class in a task")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def _add_adapt_parsers(sub) -> None:
    def common(p, out_default: str) -> None:
        p.add_argument("data", help="a folder of images (class subfolders optional), an .npz "
                                    "with X (and optional y) or a CSV/TSV table")
        p.add_argument("--checkpoint", help="a meta-trained checkpoint, or 'builtin' for a small "
                                            "label-free model made on first use; without one the "
                                            "raw features are used (the classical baseline)")
        p.add_argument("--out", default=out_default, help="output .csv or .npz "
                                                          "(default: %(default)s)")
        p.add_argument("--label-column", help="CSV column holding labels (used for scoring only)")
        p.add_argument("--resize", action="store_true",
                       help="resize images to the checkpoint's input size")
        p.add_argument("--invert", action="store_true",
                       help="invert images (dark ink on light paper -> light ink, as Omniglot)")
        p.add_argument("--device", default="auto")
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("cluster", help="cluster a new unlabeled data set")
    common(p, "clusters.csv")
    p.add_argument("--n-clusters", type=int, help="number of clusters (default: estimate)")
    p.add_argument("--refine", default="none", choices=["none", "soft", "balanced"],
                   help="prototype refinement after k-means")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="first fine-tune the model on the data's own images for this many "
                        "label-free steps (default: 0, off; needs --checkpoint)")
    p.add_argument("--finetune-lr", type=float, default=1e-4,
                   help="learning rate of that fine-tuning (default: %(default)s)")
    p = sub.add_parser("embed", help="embed a data set in d dimensions (2 for plots)")
    common(p, "embedding.csv")
    p.add_argument("--dim", type=int, default=2, help="output dimensions")
    p = sub.add_parser("detect", help="anomaly scores (higher = more anomalous)")
    common(p, "scores.csv")
    p.add_argument("--normal", help="data known to be normal (same formats); without it each "
                                    "sample is scored against the rest of the data")
    p.add_argument("--method", default="knn", choices=["knn", "prototype"])
    p.add_argument("--contamination", type=float, default=0.1,
                   help="expected fraction of anomalies, sets the flag threshold")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umeta", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)
    _add_train_parser(sub)
    _add_eval_parser(sub)
    _add_adapt_parsers(sub)
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
    from umeta.distributed import is_main_process
    from umeta.train import train

    cfg = train_config_from_args(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    if not is_main_process():
        return 0  # under torchrun only rank 0 reports
    best = (f", best val accuracy {result.best_val_accuracy:.2f}%"
            if result.best_val_accuracy is not None else "")
    print(f"trained {result.steps} steps in {result.wall_s:.0f} s{best}; checkpoints in "
          f"{result.run_dir / 'checkpoints'}")
    if not result.finished:
        print(f"stopped at run.time_limit_s before step {cfg.optim.steps}; continue with "
              f"--resume --run-dir {result.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from umeta.build import is_label_free, load_learner, resolve_device
    from umeta.data.sources import load_part
    from umeta.evaluate import evaluate_fewshot, parse_settings, set_transductive_steps
    from umeta.results import write_results

    if args.episodes < 1:
        raise UmetaError(f"--episodes must be at least 1; got {args.episodes}")
    device = resolve_device(args.device)
    settings = parse_settings(args.settings)
    learner = load_learner(args.checkpoint, device)
    set_transductive_steps(learner, args.transductive_steps)
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
    rule = f", {args.transductive_steps} transductive steps" if args.transductive_steps else ""
    print(f"{'setting':<8} {'accuracy %':>12} {'95% CI':>8}  ({data.name}, {args.episodes} "
          f"episodes{rule})")
    for row in rows:
        print(f"{row['setting']:<8} {row['mean']:>12.2f} {row['ci95']:>8.2f}")
    if args.out:
        write_results(args.out, "B1", rows, device=device, wall_s=wall, seed=args.seed,
                      dataset=cfg.data.dataset, split=cfg.data.split, part=args.part,
                      checkpoint=str(args.checkpoint), train_rotations=cfg.data.rotations,
                      test_rotations=args.rotations, test_classes=data.num_classes)
        print(f"wrote {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from umeta.mainjob import format_table, run_main_job

    print(f"umeta run: label-free meta-training on the seen classes of {args.dataset!r}, then "
          f"clustering of unseen classes", flush=True)
    report = run_main_job(dataset=args.dataset, out=args.out, steps=args.steps,
                          num_tasks=args.tasks, n_way=args.n_way, per_class=args.per_class,
                          seed=args.seed, device=args.device, data_dir=args.data_dir,
                          progress=not args.no_progress)
    print(f"data: {report['data']}")
    print(format_table(report))
    print(f"report: {Path(args.out) / 'report.json'} and figures "
          f"{', '.join(report['figures'].values())} ({report['wall_s']:.0f} s on {report['device']})")
    return 0


def _user_inputs(args: argparse.Namespace):
    """The user's data (on the CPU) and the learner (or None); the estimators validate the
    data against the learner."""
    from umeta.build import load_learner, resolve_device
    from umeta.data.user import load_user_data

    device = resolve_device(args.device)
    learner = None
    size = None
    if args.checkpoint:
        from umeta.pretrained import BUILTIN, builtin_checkpoint

        path = args.checkpoint
        if path == BUILTIN:
            print("using the built-in label-free glyph model (trained and cached on first use)",
                  file=sys.stderr)
            path = builtin_checkpoint(progress=True)
        learner = load_learner(path, device)
        size = tuple(learner.image_shape[1:]) if args.resize else None
    data = load_user_data(args.data, label_column=args.label_column, image_size=size)
    x = data.x
    if args.invert:
        if data.kind != "images":
            raise UmetaError("--invert is for images; the data are vectors")
        x = 1.0 - x
    return data, x, learner


def _write_table(path: str, ids: list[str], columns: dict) -> None:
    """Write ids and named array columns ({name: array of N rows}) to CSV or NPZ atomically."""
    import os

    import numpy as np

    out = Path(path)
    if out.suffix not in (".csv", ".npz"):
        raise UmetaError(f"--out {path!r} must end in .csv or .npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".npz":
        with open(tmp, "wb") as handle:
            np.savez(handle, ids=np.array(ids), **columns)
    else:
        names = list(columns)
        arrays = [np.asarray(columns[n]).reshape(len(ids), -1) for n in names]
        header = ["id"] + [f"{n}{j}" if a.shape[1] > 1 else n
                           for n, a in zip(names, arrays) for j in range(a.shape[1])]
        with open(tmp, "w") as handle:
            handle.write(",".join(header) + "\n")
            for i, sample in enumerate(ids):
                cells = [str(v) for a in arrays for v in a[i]]
                handle.write(",".join([json.dumps(sample)] + cells) + "\n")
    os.replace(tmp, out)


def _report_scores(data, labels) -> None:
    if data.y is None:
        return
    from umeta.metrics import clustering_scores

    s = clustering_scores(data.y.numpy(), labels)
    print(f"against the labels in {data.source}: clustering accuracy "
          f"{100 * s['clustering_accuracy']:.2f}%, NMI {s['nmi']:.3f}, ARI {s['ari']:.3f}")


def cmd_cluster(args: argparse.Namespace) -> int:
    from umeta.estimators import MetaClusterer

    data, x, learner = _user_inputs(args)
    model = MetaClusterer(learner, args.n_clusters, refine=args.refine, normalize=learner is not None,
                          finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr,
                          random_state=args.seed).fit(x)
    _write_table(args.out, data.ids, {"cluster": model.labels_})
    space = ("raw features" if learner is None else "meta-learned features" if not
             args.finetune_steps else f"meta-learned features after {args.finetune_steps} "
                                      f"label-free fine-tuning steps on this data")
    print(f"clustered {len(x)} samples of {data.source} into {model.n_clusters_} clusters "
          f"({space}); wrote {args.out}")
    _report_scores(data, model.labels_)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from umeta.adapt.embed import embedding_quality
    from umeta.estimators import MetaEmbedder

    data, x, learner = _user_inputs(args)
    points = MetaEmbedder(learner, args.dim, normalize=learner is not None).fit_transform(x)
    _write_table(args.out, data.ids, {"e": points})
    quality = embedding_quality(x.flatten(1), points, k=max(1, min(10, (len(x) - 1) // 2)))
    print(f"embedded {len(x)} samples of {data.source} in {args.dim} dimensions; wrote {args.out}")
    print("quality against the input: " + ", ".join(f"{k} {v:.3f}" for k, v in quality.items()))
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from umeta.estimators import MetaAnomalyDetector

    data, x, learner = _user_inputs(args)
    detector = MetaAnomalyDetector(learner, args.method, contamination=args.contamination,
                                   normalize=learner is not None, random_state=args.seed)
    if args.normal:
        normal_args = argparse.Namespace(**{**vars(args), "data": args.normal, "label_column": None})
        _, normal, _ = _user_inputs(normal_args)
        scores = -detector.fit(normal).score_samples(x)
        flags = detector.predict(x) == -1
    else:  # each sample against the rest of the data
        scores = -detector.fit(x).training_scores_
        flags = -scores < detector.offset_
    _write_table(args.out, data.ids, {"score": scores, "anomaly": flags.astype(int)})
    print(f"scored {len(x)} samples of {data.source}: {int(flags.sum())} flagged as anomalies "
          f"(higher score = more anomalous); wrote {args.out}")
    if data.y is not None and len(set(data.y.tolist())) == 2:
        from umeta.metrics import auroc

        print(f"AUROC against the labels (class index 1 = anomaly): "
              f"{auroc(data.y.numpy(), scores):.3f}")
    return 0


COMMANDS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "cluster": cmd_cluster,
            "embed": cmd_embed, "detect": cmd_detect}


#: The flag of each estimator / tool parameter, for error messages.
FLAGS = {"n_clusters": "--n-clusters", "n_components": "--dim", "contamination": "--contamination",
         "refine": "--refine", "finetune_steps": "--finetune-steps", "finetune_lr": "--finetune-lr",
         "method": "--method"}


def _message(err: UmetaError) -> str:
    """The error's line, naming command-line flags where it names a parameter that has one."""
    from umeta.adapt.embed import ShapeError
    from umeta.params import ParamError

    if isinstance(err, ParamError) and err.param in FLAGS:
        flag = FLAGS[err.param]
        return err.render(flag, f"{flag} {err.value}")
    if isinstance(err, ShapeError) and err.expected is not None:
        return (f"{err}; pass --resize (and convert colour images to grayscale) or use a "
                f"matching checkpoint")
    return str(err)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UmetaError as err:
        print(f"umeta {args.command}: error: {_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"umeta {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
