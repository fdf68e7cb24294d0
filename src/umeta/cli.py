"""The `umeta` command line: run, train, eval, cluster, embed, detect.

User mistakes become one line on stderr and exit status 2, never a traceback. Outputs are
written atomically and never over an existing file unless --force is given (never over the
input data at all).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Callable

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


def _names(registry: str) -> Callable[[], list[str]]:
    """The registered names of ``registry``, read when the help is shown (imports torch)."""
    def names() -> list[str]:
        if registry == "dataset":
            from umeta.data.sources import DATASETS

            return [n for n in DATASETS.names() if n != "folder"] + ["the path of an image folder"]
        if registry == "backbone":
            from umeta.models.backbones import BACKBONES as found
        elif registry == "learner":
            from umeta.learners import LEARNERS as found
        else:
            from umeta.tasks.builders import TASK_BUILDERS as found
        return found.names()

    return names


#: Train flags whose values are registered names, listed in the help.
TRAIN_CHOICES = {"dataset": _names("dataset"), "backbone": _names("backbone"),
                 "learner": _names("learner"), "tasks": _names("task builder")}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, as every other mistake."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Help that shows every option's default, and the registered names an option takes."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        names = getattr(action, "names", None)
        if names is not None:
            text += f" (one of: {', '.join(names())})"
        quiet = any(action.default is q for q in (None, False, argparse.SUPPRESS))
        if "%(default)" not in text and action.option_strings and not quiet:
            text += " (default: %(default)s)"
        return text


def _command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description, formatter_class=_Help)


def _add_train_parser(sub) -> None:
    p = _command(sub, "train", "meta-train a learner (labelled or label-free tasks)",
                 "Meta-train a learner. Settings come from --config (TOML/JSON), then the flags "
                 "below, then --set section.key=value. With --resume the run's own settings are "
                 "the start instead, and only --steps, --device, --data-dir and the run "
                 "section's time_limit_s, log_every and checkpoint_every may change.")
    from umeta.config import TrainConfig

    defaults = TrainConfig()
    p.add_argument("--config", help="TOML or JSON config file (sections data, model, learner, "
                                    "tasks, optim, run)")
    for flag, (key, kind) in TRAIN_FLAGS.items():
        section, name = key.split(".")
        default = getattr(getattr(defaults, section), name)
        help_text = f"sets {key}" + ("" if default is None else f" (default: {default})")
        if flag == "dataset":
            help_text += ("; the path of a folder trains on your own images (loose: all of "
                          "them; in class subfolders: a seeded split of the classes)")
        action = p.add_argument("--" + flag.replace("_", "-"), type=kind, help=help_text)
        if flag in TRAIN_CHOICES:
            action.names = TRAIN_CHOICES[flag]
    p.add_argument("--rotations", action=argparse.BooleanOptionalAction, default=None,
                   help="add 90/180/270-degree rotations as classes (Omniglot, supervised)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set learner.options.inner_steps=5")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eval_parser(sub) -> None:
    p = _command(sub, "eval", "few-shot accuracy +- 95%% CI on the test split",
                 "Few-shot accuracy of a checkpoint: for each N-way K-shot setting, the mean "
                 "query accuracy over --episodes test episodes with its 95% confidence "
                 "interval, on the test classes of the checkpoint's data set (or of --dataset).")
    p.add_argument("--checkpoint", required=True,
                   help="a .safetensors checkpoint from umeta train, or 'builtin' (the built-in "
                        "label-free image model)")
    p.add_argument("--settings", default="5w1s,5w5s,20w1s,20w5s",
                   help="comma-separated N-way K-shot settings")
    p.add_argument("--episodes", type=int, default=2000, help="test episodes per setting")
    p.add_argument("--q-query", type=int, default=15, help="queries per class")
    p.add_argument("--dataset", help="evaluate on this dataset instead of the checkpoint's")
    p.add_argument("--data-dir", help="folder holding the data")
    p.add_argument("--part", default="test", help="data part to evaluate on")
    p.add_argument("--rotations", action="store_true",
                   help="add the rotated test classes (Omniglot Vinyals test split as Snell et al.)")
    p.add_argument("--transductive-steps", type=int, default=0,
                   help="prototype learners: refine the prototypes with each episode's unlabeled "
                        "queries for this many soft k-means steps (0: inductive)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0,
                   help="episode seed (benchmarks/b1_fewshot.py uses run.seed + 12345)")
    p.add_argument("--out", help="write the results JSON (BENCHMARKS.md format) here")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_run_parser(sub) -> None:
    p = _command(sub, "run", "the main job: label-free meta-training on seen classes, then "
                             "clustering of unseen classes vs k-means on pixels",
                 "Meta-train without labels on seen classes, cluster unseen classes and compare "
                 "with k-means on pixels on the same tasks; write a report folder (report.json "
                 "and figures).")
    p.add_argument("--dataset", default="glyphs", choices=["glyphs", "omniglot"],
                   help="glyphs is built in (offline)")
    p.add_argument("--data-dir", help="folder holding the data (Omniglot)")
    p.add_argument("--out", default="umeta-report", help="report folder (new or empty)")
    p.add_argument("--steps", type=int, default=800, help="meta-training steps")
    p.add_argument("--tasks", type=int, default=200, help="clustering tasks to score")
    p.add_argument("--n-way", type=int, default=5, help="classes per clustering task")
    p.add_argument("--per-class", type=int, default=20, help="images per class in a task")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of training and of the tasks")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_adapt_parsers(sub) -> None:
    def common(p, out_default: str) -> None:
        p.add_argument("data", help="a folder of images (class subfolders optional), an .npz "
                                    "with X (and optional y) or a CSV/TSV table")
        p.add_argument("--checkpoint",
                       help="a meta-trained checkpoint, 'builtin' (the built-in model of the "
                            "data's kind; the default where there is one) or 'none' (the raw "
                            "features: the classical baseline)")
        p.add_argument("--out", default=out_default, help="output .csv or .npz")
        p.add_argument("--force", action="store_true",
                       help="overwrite an existing --out (never the input data)")
        p.add_argument("--label-column", help="CSV column holding labels (used for scoring only)")
        p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                       help="images: invert them (--invert) or not (--no-invert); default: "
                            "detected from their background (the models take light ink on a "
                            "dark background)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
        p.add_argument("--seed", type=int, default=0, help="seed of k-means and fine-tuning")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = _command(sub, "cluster", "cluster a new unlabeled data set",
                 "Cluster a new data set in the meta-learned feature space (k-means++, then "
                 "optional refinement); write one cluster per sample.")
    common(p, "clusters.csv")
    p.add_argument("--n-clusters", type=int,
                   help="number of clusters; without it, estimated: the k of --k-range whose "
                        "k-means has the best silhouette")
    p.add_argument("--k-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                   help="the candidates when the number of clusters is estimated (default: 2 10)")
    p.add_argument("--refine", default="none", choices=["none", "soft", "balanced"],
                   help="prototype refinement after k-means")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="first fine-tune the model on the data's own images for this many "
                        "label-free steps (0: off; needs --checkpoint)")
    p.add_argument("--finetune-lr", type=float, default=1e-4,
                   help="learning rate of that fine-tuning")
    p = _command(sub, "embed", "embed a data set in d dimensions (2 for plots)",
                 "Embed a data set: meta-learned features, then PCA to --dim dimensions.")
    common(p, "embedding.csv")
    p.add_argument("--dim", type=int, default=2, help="output dimensions")
    p = _command(sub, "detect", "anomaly scores (higher = more anomalous)",
                 "Score each sample's distance to normal data in the meta-learned feature space "
                 "and flag the most distant ones.")
    common(p, "scores.csv")
    p.add_argument("--normal", help="data known to be normal (same formats); without it each "
                                    "sample is scored against the rest of the data")
    p.add_argument("--method", default="knn", choices=["knn", "prototype"],
                   help="distance to the nearest normal sample, or to the normal prototype")
    p.add_argument("--contamination", type=float, default=0.1,
                   help="expected fraction of anomalies, sets the flag threshold")
    p.add_argument("--anomaly-class",
                   help="with labelled data: the class (folder or label) that is anomalous, "
                        "for the AUROC; default: the class named anomaly, abnormal, outlier, "
                        "defect, ... (or the other of a class named normal, good, ...)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="umeta", description=__doc__.splitlines()[0], formatter_class=_Help)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)
    _add_train_parser(sub)
    _add_eval_parser(sub)
    _add_adapt_parsers(sub)
    _add_export_parser(sub)
    return parser


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="write the inference-only model of a checkpoint",
                       description="Write the weights a checkpoint embeds and predicts with "
                                   "(float16 by default; no optimizer, generator or training-only "
                                   "state such as PsCo's momentum network and queue): what "
                                   "ships as a built-in model. umeta eval, cluster, embed and "
                                   "detect read it like any checkpoint.", formatter_class=_Help)
    p.add_argument("checkpoint", help="a .safetensors checkpoint from umeta train")
    p.add_argument("--out", required=True, help="the exported .safetensors file")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")


def _version() -> str:
    from umeta import __version__

    return f"umeta {__version__}"


# ---------------------------------------------------------------------------- outputs


def check_out(path: str, *, suffixes: tuple[str, ...] = (), inputs: tuple = (),
              force: bool = False) -> Path:
    """``--out`` as a path, checked before any work: its suffix, never one of the ``inputs``,
    and not an existing file unless ``force``."""
    out = Path(path)
    if suffixes and out.suffix not in suffixes:
        raise UmetaError(f"--out {path!r} must end in {' or '.join(suffixes)}")
    if out.is_dir():
        raise UmetaError(f"--out {path!r} is a folder; name a file")
    for source in inputs:
        if source is not None and out.exists() and out.samefile(source):
            raise UmetaError(f"--out {path!r} is the input data; write the output to another "
                             f"file (--force never overwrites the input)")
    if out.exists() and not force:
        raise UmetaError(f"--out {path!r} exists; pass --force to overwrite it or choose "
                         f"another --out")
    folder = next((p for p in out.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UmetaError(f"--out {path!r}: {str(folder)!r} is a file, not a folder; choose "
                         f"another --out")
    return out


def _write(out: Path, write: Callable) -> None:
    """Create ``out``'s folder and write it atomically with ``write(handle)``."""
    from umeta.files import atomic_write

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out, "wb" if out.suffix == ".npz" else "w",
                          **({} if out.suffix == ".npz" else {"newline": ""})) as handle:
            write(handle)
    except OSError as err:
        raise UmetaError(f"cannot write --out {str(out)!r} ({err.strerror or err}); choose "
                         f"another --out") from None


def write_table(out: Path, ids: list[str], columns: dict) -> None:
    """Write ids and named array columns ({name: array of N rows}) to a CSV (ids quoted only
    where CSV needs it) or an NPZ."""
    import numpy as np

    def write(handle) -> None:
        if out.suffix == ".npz":
            np.savez(handle, ids=np.array(ids), **columns)
            return
        names = list(columns)
        arrays = [np.asarray(columns[n]).reshape(len(ids), -1) for n in names]
        rows = csv.writer(handle, lineterminator="\n")
        rows.writerow(["id"] + [f"{n}{j}" if a.shape[1] > 1 else n
                                for n, a in zip(names, arrays) for j in range(a.shape[1])])
        for i, sample in enumerate(ids):
            rows.writerow([sample] + [v for a in arrays for v in a[i].tolist()])

    _write(out, write)


# ---------------------------------------------------------------------------- commands


def train_config_from_args(args: argparse.Namespace):
    """The config of this call: the flags over --config over the defaults, or, with --resume,
    over the run's own config (so that only what the flags change differs from the run)."""
    from umeta.config import assemble_config

    values = {key: getattr(args, flag) for flag, (key, _) in TRAIN_FLAGS.items()}
    values["data.rotations"] = args.rotations
    cfg = assemble_config(args.config, values, args.set)
    if not args.resume:
        return cfg
    from umeta.train import read_run_config

    return assemble_config(args.config, values, args.set, base=read_run_config(cfg.run.run_dir))


def train_summary(result, total: int) -> str:
    """What this call of `umeta train` did, in one line."""
    best = (f", best val accuracy {result.best_val_accuracy:.2f}%"
            if result.best_val_accuracy is not None else "")
    where = f"checkpoints in {result.run_dir / 'checkpoints'}"
    if result.start_step and not result.steps_this_call:
        return (f"nothing to train: the run is at step {result.steps} and --steps is {total}; "
                f"pass a larger --steps to extend it ({where})")
    if result.start_step:
        return (f"resumed at step {result.start_step}: trained {result.steps_this_call} steps "
                f"(now at step {result.steps} of {total}) in {result.wall_s:.0f} s{best}; {where}")
    return f"trained {result.steps} steps in {result.wall_s:.0f} s{best}; {where}"


def cmd_train(args: argparse.Namespace) -> int:
    from umeta.distributed import is_main_process
    from umeta.train import train

    cfg = train_config_from_args(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    if not is_main_process():
        return 0  # under torchrun only rank 0 reports
    total = result.learner.config.optim.steps
    print(train_summary(result, total))
    if not result.finished:
        print(f"stopped at run.time_limit_s before step {total}; continue with "
              f"--resume --run-dir {result.run_dir}")
    return 0


def _checkpoint(name: str) -> str | Path:
    """The checkpoint's path; 'builtin' is the built-in image model."""
    from umeta.pretrained import BUILTIN, builtin_checkpoint

    return builtin_checkpoint("images") if name == BUILTIN else name


def cmd_eval(args: argparse.Namespace) -> int:
    import time

    from umeta.build import is_label_free, load_learner, resolve_device
    from umeta.data.sources import load_part
    from umeta.evaluate import evaluate_fewshot, parse_settings, set_transductive_steps
    from umeta.results import write_results

    out = check_out(args.out, force=args.force) if args.out else None
    if args.episodes < 1:
        raise UmetaError(f"--episodes must be at least 1; got {args.episodes}")
    device = resolve_device(args.device)
    settings = parse_settings(args.settings)
    checkpoint = _checkpoint(args.checkpoint)
    learner = load_learner(checkpoint, device)
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
                            seed=args.seed, method=method, training=training,
                            progress=not args.no_progress)
    wall = time.perf_counter() - start
    rule = f", {args.transductive_steps} transductive steps" if args.transductive_steps else ""
    print(f"{'setting':<8} {'accuracy %':>12} {'95% CI':>8}  ({data.name}, {args.episodes} "
          f"episodes{rule})")
    for row in rows:
        print(f"{row['setting']:<8} {row['mean']:>12.2f} {row['ci95']:>8.2f}")
    if out is not None:
        try:
            write_results(out, "B1", rows, device=device, wall_s=wall, seed=args.seed,
                          dataset=cfg.data.dataset, split=cfg.data.split, part=args.part,
                          checkpoint=str(checkpoint), train_rotations=cfg.data.rotations,
                          test_rotations=args.rotations, test_classes=data.num_classes)
        except OSError as err:
            raise UmetaError(f"cannot write --out {str(out)!r} ({err.strerror or err}); choose "
                             f"another --out") from None
        print(f"wrote {out}")
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


def _model(args: argparse.Namespace, kind: str):
    """The learner for data of ``kind`` ("images" or "vectors") on --device: --checkpoint, the
    built-in model of that kind (the default, where one ships), or None (raw features)."""
    from umeta.build import load_learner, resolve_device
    from umeta.pretrained import BUILTIN, SHIPPED, load_builtin

    device = resolve_device(args.device)
    if args.checkpoint == "none":
        return None
    if args.checkpoint not in (None, BUILTIN):
        return load_learner(args.checkpoint, device)
    model_kind = "images" if kind == "images" else "tables"
    if model_kind not in SHIPPED:
        if args.checkpoint == BUILTIN:
            raise UmetaError(f"umeta has no built-in model for {model_kind} yet; pass a "
                             f"checkpoint, or --checkpoint none for the raw features")
        return None
    print(f"using the built-in {model_kind} model (umeta/weights/{SHIPPED[model_kind].file}; "
          f"--checkpoint none clusters the raw features)", file=sys.stderr)
    return load_builtin(model_kind, device)


def _inputs(path: str, args: argparse.Namespace, label_column: str | None = None,
            learner=None, kind: str | None = None):
    """(data, inputs, learner): the user's data at ``path`` (on the CPU), its inputs for the
    model (images converted to its input: grayscale, size, polarity, with a note on stderr)
    and the model (``learner``, else chosen by :func:`_model`)."""
    from umeta.adapt.embed import is_table_model
    from umeta.data.convert import convert_images
    from umeta.data.user import data_kind, image_folder_sizes, load_user_data

    kind = kind or data_kind(path)
    if learner is None:
        learner = _model(args, kind)
    if is_table_model(learner):
        return _table_inputs(path, args, label_column, learner, kind)
    size = None
    if learner is not None and kind == "images" and Path(path).is_dir() \
            and len(image_folder_sizes(path)) > 1:
        size = tuple(learner.image_shape[1:])  # mixed sizes: read at the model's size
    data = load_user_data(path, label_column=label_column, image_size=size)
    x = data.x
    if data.kind != "images":
        if args.invert is not None:
            raise UmetaError("--invert / --no-invert are for images; the data are vectors")
    elif learner is not None:
        conversion = convert_images(x, learner.image_shape, invert=args.invert)
        x = conversion.images
        print(conversion.note, file=sys.stderr)
    elif args.invert:
        x = 1.0 - x
    return data, x, learner


def _table_inputs(path: str, args: argparse.Namespace, label_column: str | None, learner,
                  kind: str):
    """(data, table (N, D) with NaN for missing values, learner) of a table for a table model
    (`umeta.data.table_input.read_user_table`: header detected, categories as codes)."""
    from umeta.data.table_input import as_user_data, read_user_table

    if kind == "images":
        raise UmetaError(f"{path!r} holds images, but the model reads tables; give a table (CSV, "
                         f"TSV, npz with X (N, D), Parquet) or an image model's --checkpoint")
    if args.invert is not None:
        raise UmetaError("--invert / --no-invert are for images; the data are a table")
    data = as_user_data(read_user_table(path, label_column=label_column))
    return data, data.x, learner


def _report_scores(data, labels) -> None:
    if data.y is None:
        return
    from umeta.metrics import clustering_scores

    s = clustering_scores(data.y.numpy(), labels)
    print(f"against the labels in {data.source}: clustering accuracy "
          f"{100 * s['clustering_accuracy']:.2f}%, NMI {s['nmi']:.3f}, ARI {s['ari']:.3f}")


def _normalize(learner) -> bool:
    """Whether the verbs L2-normalise the model's embeddings: yes for image models (their
    embeddings are compared by angle), no for a table model and for raw features."""
    from umeta.adapt.embed import is_table_model

    return learner is not None and not is_table_model(learner)


def _comparable(x, table: bool):
    """The inputs as rows of numbers the embedding's quality is measured against: flattened;
    for a ``table`` (a table model's input), missing values set to their column's median and
    each column scaled to unit variance (its units are arbitrary)."""
    import torch

    x = x.flatten(1)
    if not table:
        return x
    x = x.double()
    x = torch.where(torch.isnan(x), torch.nanmedian(x, 0).values.nan_to_num(), x)
    std = x.std(0)
    return (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def _adapt_out(args: argparse.Namespace, *inputs) -> Path:
    return check_out(args.out, suffixes=(".csv", ".npz"), inputs=(args.data, *inputs),
                     force=args.force)


def cmd_cluster(args: argparse.Namespace) -> int:
    from umeta.estimators import MetaClusterer

    out = _adapt_out(args)
    if args.k_range is not None and args.n_clusters is not None:
        raise UmetaError("--k-range is the search range of the estimated number of clusters; "
                         "drop it or --n-clusters")
    data, x, learner = _inputs(args.data, args, args.label_column)
    extra = {} if args.k_range is None else {"k_range": tuple(args.k_range)}
    model = MetaClusterer(learner, args.n_clusters, refine=args.refine,
                          normalize=_normalize(learner), finetune_steps=args.finetune_steps,
                          finetune_lr=args.finetune_lr, random_state=args.seed,
                          progress=not args.no_progress, **extra).fit(x)
    write_table(out, data.ids, {"cluster": model.labels_})
    space = ("raw features" if learner is None else "meta-learned features" if not
             args.finetune_steps else f"meta-learned features after {args.finetune_steps} "
                                      f"label-free fine-tuning steps on this data")
    print(f"clustered {len(x)} samples of {data.source} into {model.n_clusters_} clusters "
          f"({space}); wrote {out}")
    if model.k_range_ is not None:
        low, high = model.k_range_
        note = (f"; {high} is the top of the range: the data may hold more clusters, so widen "
                f"--k-range" if model.n_clusters_ == high else "")
        print(f"the number of clusters was estimated: {model.n_clusters_} had the best "
              f"silhouette of k = {low}..{high} (--n-clusters K sets it, --k-range LOW HIGH "
              f"searches elsewhere){note}")
    _report_scores(data, model.labels_)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from umeta.adapt.embed import embedding_quality
    from umeta.estimators import MetaEmbedder

    out = _adapt_out(args)
    data, x, learner = _inputs(args.data, args, args.label_column)
    points = MetaEmbedder(learner, args.dim, normalize=_normalize(learner),
                          progress=not args.no_progress).fit_transform(x)
    write_table(out, data.ids, {"e": points})
    quality = embedding_quality(_comparable(x, not _normalize(learner) and learner is not None),
                                points, k=max(1, min(10, (len(x) - 1) // 2)))
    print(f"embedded {len(x)} samples of {data.source} in {args.dim} dimensions; wrote {out}")
    print("quality against the input: " + ", ".join(f"{k} {v:.3f}" for k, v in quality.items()))
    return 0


#: Class names (lower case) that say a class is the anomalous one, or the normal one.
ANOMALY_NAMES = {"anomaly", "anomalies", "anomalous", "abnormal", "outlier", "outliers",
                 "defect", "defects", "defective", "bad", "fault", "faulty", "broken", "novel"}
NORMAL_NAMES = {"normal", "good", "ok", "inlier", "inliers", "clean", "nominal", "regular"}


def anomaly_class(class_names: list[str], chosen: str | None) -> tuple[int, str] | None:
    """The index of the anomalous class among ``class_names`` and how it was chosen, or None
    when it is not known.

    ``chosen`` (--anomaly-class) names it. Otherwise, of two classes: the one with an anomaly
    name (or the other of one with a normal name; only a folder's last part counts), or the
    label 1 of 0/1 and -1 of -1/1 (scikit-learn's outlier label).
    """
    if chosen is not None:
        if chosen not in class_names:
            raise UmetaError(f"--anomaly-class {chosen!r} is not a class of the data; classes: "
                             f"{', '.join(class_names)}")
        return class_names.index(chosen), "as --anomaly-class says"
    if len(class_names) != 2:
        return None
    words = [name.rsplit("/", 1)[-1].lower() for name in class_names]
    named = [i for i, w in enumerate(words) if w in ANOMALY_NAMES]
    normal = [i for i, w in enumerate(words) if w in NORMAL_NAMES]
    if len(named) == 1 and not set(named) & set(normal):
        return named[0], "by its name"
    if len(normal) == 1 and not named:
        return 1 - normal[0], "the class not named normal"
    for pair, anomalous in ((("0", "1"), "1"), (("-1", "1"), "-1")):
        if sorted(class_names) == sorted(pair):
            return class_names.index(anomalous), f"label {anomalous} of {' / '.join(pair)}"
    return None


def cmd_detect(args: argparse.Namespace) -> int:
    from umeta.estimators import MetaAnomalyDetector

    out = _adapt_out(args, args.normal)
    data, x, learner = _inputs(args.data, args, args.label_column)
    if args.anomaly_class is not None and data.class_names is None:
        raise UmetaError(f"--anomaly-class names a class, but {data.source} has no labels")
    target = None if data.class_names is None else anomaly_class(data.class_names,
                                                                 args.anomaly_class)
    detector = MetaAnomalyDetector(learner, args.method, contamination=args.contamination,
                                   normalize=_normalize(learner), random_state=args.seed,
                                   progress=not args.no_progress)
    if args.normal:
        _, normal, _ = _inputs(args.normal, args, learner=learner)
        scores = -detector.fit(normal).score_samples(x)
        flags = detector.predict(x) == -1
    else:  # each sample against the rest of the data
        scores = -detector.fit(x).training_scores_
        flags = -scores < detector.offset_
    write_table(out, data.ids, {"score": scores, "anomaly": flags.astype(int)})
    print(f"scored {len(x)} samples of {data.source}: {int(flags.sum())} flagged as anomalies "
          f"(higher score = more anomalous); wrote {out}")
    if target is not None:
        from umeta.metrics import auroc

        index, why = target
        truth = (data.y.numpy() == index).astype(int)
        print(f"AUROC against the labels: {auroc(truth, scores):.3f} (anomalous class: "
              f"{data.class_names[index]!r}, {why}; --anomaly-class NAME chooses it)")
    elif data.class_names is not None:
        print(f"no AUROC: which of the classes {', '.join(data.class_names)} is anomalous is "
              f"not known; pass --anomaly-class NAME")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from umeta.build import export_learner

    out = check_out(args.out, suffixes=(".safetensors",), inputs=(args.checkpoint,),
                    force=args.force)
    meta = export_learner(args.checkpoint, out, half=not args.float32)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB, {meta['dtype']}, sha256 "
          f"{meta['sha256'][:12]}...)")
    return 0


COMMANDS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "cluster": cmd_cluster,
            "embed": cmd_embed, "detect": cmd_detect, "export": cmd_export}


#: The flag of each estimator / tool parameter and of each config key that has one, for
#: error messages (`umeta.params.ParamError` names the parameter; this names the flag).
FLAGS = {**{key: "--" + flag.replace("_", "-") for flag, (key, _) in TRAIN_FLAGS.items()},
         "n_clusters": "--n-clusters", "k_range": "--k-range", "n_components": "--dim",
         "contamination": "--contamination", "refine": "--refine",
         "finetune_steps": "--finetune-steps", "finetune_lr": "--finetune-lr",
         "method": "--method", "random_state": "--seed", "seed": "--seed",
         "label_column": "--label-column"}


def _message(err: UmetaError) -> str:
    """The error's line, naming command-line flags where it names a parameter that has one."""
    from umeta.adapt.embed import ShapeError
    from umeta.params import ParamError

    if isinstance(err, ParamError) and err.param in FLAGS:
        flag = FLAGS[err.param]
        value = (" ".join(map(str, err.value)) if isinstance(err.value, (list, tuple))
                 else err.value)
        return err.render(flag, f"{flag} {value}")
    if isinstance(err, ShapeError) and err.expected is not None:
        return f"{err}; give images (a folder or an npz of images), or --checkpoint none"
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
