"""The `umeta` command line: run, train, eval, cluster, explain, embed, detect, export,
compare, segment, robustness.

User mistakes become one line on stderr and exit status 2, never a traceback. Outputs are
written atomically and never over an existing file unless --force is given (never over the
input data at all).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import warnings
from functools import partial
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
    """argparse whose usage errors are one line, as every other mistake, and which takes no
    abbreviated option (``umeta eval --set ...`` would otherwise be read as ``--settings``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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
                 "optional refinement; with a model and at least 10 samples a cluster, spectral "
                 "clustering on the embedding's neighbour graph); write one cluster per sample "
                 "and its confidence (the relative margin between its cluster's centre and the "
                 "nearest other: 1 at the centre, 0 on a boundary).")
    common(p, "clusters.csv")
    _cluster_arguments(p)
    p = _command(sub, "explain", "cluster a data set and show why: prototypes, typical and "
                                 "ambiguous members, confidence",
                 "Cluster as umeta cluster does, then show each cluster's prototype (its "
                 "member nearest the centre), most typical (highest confidence) and most "
                 "ambiguous (lowest confidence) members: a PNG grid of images, or for vectors a "
                 "scatter of the input's first two principal components; the CSV adds the "
                 "columns prototype (1 or 0), typical and ambiguous (rank, 0 if not).")
    common(p, "explain.csv")
    _cluster_arguments(p)
    p.add_argument("--figure", default="explain.png", help="the PNG figure")
    p.add_argument("--examples", type=int, default=5,
                   help="typical and ambiguous members shown per cluster")
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


def _add_compare_parser(sub) -> None:
    from umeta.adapt.selection import CRITERIA
    from umeta.compare import IMAGE_SIZE, TABLE_CRITERION
    from umeta.recipes import COMPARE_TASKS

    p = _command(sub, "compare", "which meta-learner (or model) clusters my data best?",
                 "Meta-train each learner without labels on the data's own images (the same "
                 "budget, seed and backbone) and/or load checkpoints, cluster the data in each "
                 "candidate's space, rank them by a label-free criterion and recommend one, with "
                 "a bootstrap over the images for its uncertainty. On a table (CSV, TSV, "
                 "Parquet, npz with X (N, D)) the candidates are table models and the raw "
                 "values (default: builtin,none); nothing is trained. Labels (class "
                 "subfolders, an npz's y, --label-column or --labels) are used for scoring "
                 "only. Writes --out (JSON) and a plot beside it (same name, .png).")
    p.add_argument("data", help="a folder of images (class subfolders optional), an .npz "
                                "with images X (and optional y), or a table")
    p.add_argument("--learners",
                   help=f"comma-separated learners to meta-train on the images ('' for none: "
                        f"compare checkpoints only; default: {','.join(COMPARE_TASKS)}; none "
                        f"on a table)")
    p.add_argument("--checkpoints",
                   help="comma-separated checkpoints to compare too: .safetensors files, "
                        "'builtin' (the built-in model of the data's kind), 'none' (the raw "
                        "pixels or values); NAME@SPACE embeds images in another space, e.g. "
                        "builtin@block2 (default on a table: builtin,none)")
    p.add_argument("--budget-s", type=float, default=60.0,
                   help="training seconds of each learner")
    p.add_argument("--max-steps", type=int, default=1_000_000,
                   help="stop a learner at this many steps if its budget lasts that long (for "
                        "repeatable runs: a budget alone buys more steps on a faster machine)")
    p.add_argument("--n-clusters", type=int,
                   help="k of every clustering; without it, the median of the candidates' "
                        "silhouette estimates over --k-range")
    p.add_argument("--k-range", type=int, nargs=2, metavar=("LOW", "HIGH"), default=(2, 10),
                   help="the candidates when the number of clusters is estimated")
    p.add_argument("--labels", help="a text file with one label per line, in the data's order "
                                    "(for scoring only; overrides the data's own labels)")
    p.add_argument("--criterion", choices=CRITERIA,
                   help=f"the label-free criterion the recommendation ranks by (default: "
                        f"{CRITERIA[0]}; {TABLE_CRITERION} on a table)")
    p.add_argument("--label-column", help="a table's column holding labels (for scoring only)")
    p.add_argument("--resamples", type=int, default=50,
                   help="bootstrap resamples of the images for the uncertainty (0: none)")
    p.add_argument("--views", type=int, default=2,
                   help="augmented views of every image (consistency, retrieval)")
    p.add_argument("--max-samples", type=int, default=2000,
                   help="score on a seeded subsample of at most this many images (or rows)")
    p.add_argument("--image-size", type=int,
                   help=f"side of the images the learners train on (and of a folder of mixed "
                        f"sizes; default {IMAGE_SIZE})")
    p.add_argument("--run-dir", help="keep the trained learners' runs (checkpoints) in "
                                     "RUN_DIR/<learner>; default: a temporary folder, removed")
    p.add_argument("--out", default="compare.json", help="the comparison's JSON file")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing --out and its plot (never the input data)")
    p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                   help="invert the images (--invert) or not (--no-invert); default: detected "
                        "from their background")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the training, the views, k-means and the resamples")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_segment_parser(sub) -> None:
    p = _command(sub, "segment", "segment images without labels (label map + overlay PNGs)",
                 "Segment each image without labels: k-means++ of its pixels in the dense "
                 "embedding of a meta-learned segmentation model (the built-in one by default), "
                 "or of their colours (--checkpoint none). Writes NAME_segments.png (a palette "
                 "PNG whose pixel values are the segment numbers) and NAME_overlay.png into "
                 "--out.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, ...; RGB or grey, any size)")
    p.add_argument("--n-segments", type=int,
                   help="segments per image; without it, estimated per image: the k of "
                        "--k-range whose k-means has the best silhouette")
    p.add_argument("--k-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                   help="the candidates when the number of segments is estimated (default: 2 8)")
    p.add_argument("--checkpoint",
                   help="a segmentation checkpoint (umeta train --config "
                        "configs/segment_mosaic.toml), 'builtin' (the default: the built-in "
                        "segmentation model) or 'none' (k-means of the pixels' colours)")
    p.add_argument("--out", default="segments", help="output folder (created if needed)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--max-side", type=int, default=256,
                   help="larger images are shrunk to this longest side to be segmented, and the "
                        "labels enlarged back (said per image)")
    p.add_argument("--position-weight", type=float, default=0.0,
                   help="weight of each pixel's position in its features (0: none)")
    p.add_argument("--no-snap-edges", dest="snap_edges", action="store_false",
                   help="keep the model's segment edges as they are (by default the pixels on "
                        "an edge move to the neighbouring segment whose nearby colour they "
                        "match)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of k-means")


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    """The clustering flags of `umeta cluster` and `umeta explain`."""
    p.add_argument("--n-clusters", type=int,
                   help="number of clusters; without it, estimated: the k of --k-range whose "
                        "k-means has the best silhouette")
    p.add_argument("--k-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                   help="the candidates when the number of clusters is estimated (default: 2 10)")
    p.add_argument("--refine", default="none", choices=["none", "soft", "balanced"],
                   help="prototype refinement after k-means")
    p.add_argument("--algorithm", default="auto", choices=["auto", "kmeans", "spectral"],
                   help="the clustering step: k-means++, or spectral clustering on the "
                        "10-nearest-neighbour graph of the embedding (follows curved clusters); "
                        "auto: spectral with a model where there are at least 10 samples a "
                        "cluster and no --refine, k-means otherwise")
    p.add_argument("--finetune-steps", type=int, default=0,
                   help="first fine-tune the model on the data's own images for this many "
                        "label-free steps (0: off; needs --checkpoint)")
    p.add_argument("--finetune-lr", type=float, default=1e-4,
                   help="learning rate of that fine-tuning")


def _corruption_names() -> list[str]:
    """The corruptions, read when the help is shown (imports torch)."""
    from umeta.tasks.corruptions import CORRUPTIONS

    return list(CORRUPTIONS)


def _add_robustness_parser(sub) -> None:
    p = _command(sub, "robustness", "few-shot and clustering accuracy under corruptions and a "
                                    "PGD attack, against pixel baselines",
                 "Score a checkpoint on unseen classes, clean, under image corruptions (five "
                 "severities each, ImageNet-C style: every image of a task is corrupted) and "
                 "under a small PGD attack (L-inf radius eps: the few-shot queries, with a clean "
                 "support, and every image of a clustering task), beside a nearest-prototype "
                 "classifier and k-means on pixels on the same tasks. Writes a results JSON "
                 "(every cell +- 95% CI, the corruption errors CE and their mean mCE relative "
                 "to pixels) and a PNG of the curves.")
    p.add_argument("--checkpoint", default="builtin",
                   help="a checkpoint from umeta train, or 'builtin' (the built-in image model)")
    p.add_argument("--dataset", help="omniglot, glyphs or an image folder with class "
                                     "subfolders (default: the checkpoint's own data set)")
    p.add_argument("--data-dir", help="folder holding the data (Omniglot)")
    p.add_argument("--split", help="data split (default: the checkpoint's; the built-in model "
                                   "trained on Omniglot's background alphabets, so its test "
                                   "part is the evaluation alphabets)")
    p.add_argument("--part", default="test", help="data part to score on")
    p.add_argument("--tasks", type=int, default=300, help="tasks of each kind per cell")
    p.add_argument("--attack-tasks", type=int, default=100,
                   help="tasks attacked with PGD (the first of --tasks; 0: no attack)")
    p.add_argument("--corruptions", default="all",
                   help="comma-separated corruptions, all, or none").names = _corruption_names
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, in 1 .. 5")
    p.add_argument("--eps", help="comma-separated PGD radii in units of 1/255 of the pixel "
                                 "range, or none (default: umeta.robustness.DEFAULT_EPS, "
                                 "2,4,8,16)")
    p.add_argument("--attack", default="margin",
                   help="PGD objective: margin (push inputs across the nearest other "
                        "prototype) or embedding (push their embeddings away from the clean "
                        "ones)")
    p.add_argument("--attack-steps", type=int, default=10, help="PGD steps")
    p.add_argument("--n-way", type=int, default=5, help="classes per task")
    p.add_argument("--k-shot", type=int, default=1, help="few-shot support images per class")
    p.add_argument("--q-query", type=int, default=15, help="few-shot queries per class")
    p.add_argument("--per-class", type=int, default=10, help="clustering images per class")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the tasks, corruptions, attack")
    p.add_argument("--out", default="robustness.json", help="results JSON")
    p.add_argument("--figure", default="robustness.png", help="PNG of the curves")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="umeta", description=__doc__.splitlines()[0], formatter_class=_Help)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)
    _add_train_parser(sub)
    _add_eval_parser(sub)
    _add_adapt_parsers(sub)
    _add_export_parser(sub)
    _add_compare_parser(sub)
    _add_segment_parser(sub)
    _add_robustness_parser(sub)
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
              force: bool = False, flag: str = "--out") -> Path:
    """``--out`` (or the output ``flag``) as a path, checked before any work: its suffix, never
    one of the ``inputs``, and not an existing file unless ``force``."""
    out = Path(path)
    if suffixes and out.suffix not in suffixes:
        raise UmetaError(f"{flag} {path!r} must end in {' or '.join(suffixes)}")
    if out.is_dir():
        raise UmetaError(f"{flag} {path!r} is a folder; name a file")
    for source in inputs:
        if source is not None and out.exists() and out.samefile(source):
            raise UmetaError(f"{flag} {path!r} is the input data; write the output to another "
                             f"file (--force never overwrites the input)")
    if out.exists() and not force:
        raise UmetaError(f"{flag} {path!r} exists; pass --force to overwrite it or choose "
                         f"another {flag}")
    folder = next((p for p in out.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UmetaError(f"{flag} {path!r}: {str(folder)!r} is a file, not a folder; choose "
                         f"another {flag}")
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
    if not learner.classifies:
        raise UmetaError(f"{args.checkpoint} is a {learner.config.learner.name} model: it has no "
                         f"few-shot classification rule to evaluate (umeta segment uses it)")
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
    _note(args, f"used the built-in {model_kind} model (umeta/weights/"
                f"{SHIPPED[model_kind].file}; --checkpoint none uses the raw features)")
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
        _note(args, conversion.note)
    elif args.invert:
        x = 1.0 - x
    return data, x, learner


def _table_inputs(path: str, args: argparse.Namespace, label_column: str | None, learner,
                  kind: str):
    """(data, table (N, D) with NaN for missing values, learner) of a table for a table model
    (`umeta.data.table_input.read_user_table`: header detected, categories as codes)."""
    from umeta.data.table_input import read_user_table
    from umeta.data.user import as_user_data

    if kind == "images":
        raise UmetaError(f"{path!r} holds images, but the model reads tables; give a table (CSV, "
                         f"TSV, npz with X (N, D), Parquet) or an image model's --checkpoint")
    if args.invert is not None:
        raise UmetaError("--invert / --no-invert are for images; the data are a table")
    data = as_user_data(read_user_table(path, label_column=label_column))
    return data, data.x, learner


def _columns(data) -> str:
    """For a table, the line that names its feature columns (the label column left out)."""
    if not data.columns:
        return ""
    more = f" and {len(data.columns) - 12} more" if len(data.columns) > 12 else ""
    return f"\nfeature columns of {data.source}: {', '.join(data.columns[:12])}{more}"


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
    from umeta.numeric import standardize_columns

    x = x.flatten(1)
    return standardize_columns(x) if table else x


def _adapt_out(args: argparse.Namespace, *inputs) -> Path:
    return check_out(args.out, suffixes=(".csv", ".npz"), inputs=(args.data, *inputs),
                     force=args.force)


def _fit_clusters(args: argparse.Namespace):
    """(data, x, fitted MetaClusterer) of `umeta cluster` / `umeta explain`, with the lines that
    say what was done."""
    from umeta.estimators import MetaClusterer

    if args.k_range is not None and args.n_clusters is not None:
        raise UmetaError("--k-range is the search range of the estimated number of clusters; "
                         "drop it or --n-clusters")
    data, x, learner = _inputs(args.data, args, args.label_column)
    extra = {} if args.k_range is None else {"k_range": tuple(args.k_range)}
    model = MetaClusterer(learner, args.n_clusters, refine=args.refine,
                          algorithm=args.algorithm, normalize=_normalize(learner),
                          finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr,
                          random_state=args.seed,
                          progress=not args.no_progress, **extra).fit(x)
    space = ("raw features" if learner is None else
             f"standardised values: the table model trained on at most "
             f"{model.learner_.trained_clusters} clusters" if model.space_ == "values" else
             "meta-learned features" if not args.finetune_steps else
             f"meta-learned features after {args.finetune_steps} label-free fine-tuning steps "
             f"on this data")
    print(f"clustered {len(x)} samples of {data.source} into {model.n_clusters_} clusters "
          f"({model.algorithm_.replace('kmeans', 'k-means')} on {space}){_columns(data)}")
    if model.k_range_ is not None:
        low, high = model.k_range_
        note = (f"; {high} is the top of the range: the data may hold more clusters, so widen "
                f"--k-range" if model.n_clusters_ == high else "")
        print(f"the number of clusters was estimated: {model.n_clusters_} had the best "
              f"silhouette of k = {low}..{high} (--n-clusters K sets it, --k-range LOW HIGH "
              f"searches elsewhere){note}")
    _report_scores(data, model.labels_)
    return data, x, model


def cmd_cluster(args: argparse.Namespace) -> int:
    out = _adapt_out(args)
    data, _, model = _fit_clusters(args)
    write_table(out, data.ids, {"cluster": model.labels_, "confidence": model.confidence_})
    print(f"wrote {out} (columns: cluster, confidence)")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from umeta.adapt.explain import EXPLAIN_LIMITS, ranked_members
    from umeta.params import check_params

    out = _adapt_out(args)
    figure = check_out(args.figure, suffixes=(".png",), inputs=(args.data,), force=args.force,
                       flag="--figure")
    check_params({"n_examples": args.examples}, EXPLAIN_LIMITS)
    data, x, model = _fit_clusters(args)
    k = model.n_clusters_
    typical, ambiguous = ranked_members(model.confidence_, model.labels_, k, args.examples)
    columns = {"cluster": model.labels_, "confidence": model.confidence_}
    columns["prototype"] = np.zeros(len(x), dtype=int)
    columns["prototype"][model.prototype_indices_[model.prototype_indices_ >= 0]] = 1
    for name, ranked in (("typical", typical), ("ambiguous", ambiguous)):
        columns[name] = np.zeros(len(x), dtype=int)
        for row in ranked:
            shown = row[row >= 0]
            columns[name][shown] = np.arange(1, len(shown) + 1)
    write_table(out, data.ids, columns)
    title = f"{k} clusters of {len(x)} samples of {Path(data.source).name}"
    _write_figure(figure, data, x, model, typical, ambiguous, title)
    for c in range(min(k, 20)):
        members = model.labels_ == c
        proto = model.prototype_indices_[c]
        doubtful = ", ".join(f"{data.ids[i]} ({model.confidence_[i]:.2f})"
                             for i in ambiguous[c][ambiguous[c] >= 0][:3])
        values = ("" if data.kind == "images" or proto < 0 else " = " + " ".join(
            f"{v:.4g}" for v in data.x[proto][:8].tolist()) + (" ..." if data.x.shape[1] > 8
                                                                else ""))
        print(f"cluster {c + 1}: {int(members.sum())} samples, mean confidence "
              f"{model.confidence_[members].mean():.2f}; prototype "
              f"{data.ids[proto] if proto >= 0 else '-'}{values}; most ambiguous {doubtful}")
    if k > 20:
        print(f"... {k - 20} more clusters in {out}")
    print(f"wrote {out} and {figure}")
    return 0


def _write_figure(figure: Path, data, x, model, typical, ambiguous, title: str) -> None:
    """The explanation figure: a grid of the images, or a scatter of the vectors' first two
    principal components."""
    import numpy as np
    import torch

    from umeta.numeric.pca import fit_pca
    from umeta.report import plot_explanation_grid, plot_explanation_scatter

    try:
        if data.kind == "images":
            plot_explanation_grid(data.x.numpy(), model.labels_, model.confidence_,
                                  model.prototype_indices_, typical, ambiguous, figure, title)
        else:
            feats = torch.as_tensor(x, dtype=torch.float64).flatten(1)
            points = fit_pca(feats, min(2, *feats.shape)).transform(feats).numpy()
            if points.shape[1] == 1:
                points = np.c_[points, np.zeros(len(points))]
            plot_explanation_scatter(points, model.labels_, model.confidence_,
                                     model.prototype_indices_, ambiguous, figure, title)
    except OSError as err:
        raise UmetaError(f"cannot write --figure {str(figure)!r} ({err.strerror or err}); "
                         f"choose another --figure") from None


def cmd_robustness(args: argparse.Namespace) -> int:
    import time

    import torch

    from umeta.build import is_label_free, load_learner, resolve_device
    from umeta.data.convert import convert_images
    from umeta.data.imageset import ImageSet
    from umeta.data.sources import dataset_key, load_part
    from umeta.robustness import DEFAULT_EPS, robustness_curves, summary_lines, write_robustness
    from umeta.tasks.corruptions import CORRUPTIONS

    out = check_out(args.out, suffixes=(".json",), force=args.force)
    figure = check_out(args.figure, suffixes=(".png",), force=args.force, flag="--figure")
    corruptions = (tuple(CORRUPTIONS) if args.corruptions == "all" else () if
                   args.corruptions == "none" else tuple(args.corruptions.split(",")))
    severities = _numbers(args.severities, int, "--severities")
    eps = (DEFAULT_EPS if args.eps is None else () if args.eps == "none"
           else tuple(v / 255 for v in _numbers(args.eps, float, "--eps")))
    device = resolve_device(args.device)
    checkpoint = _checkpoint(args.checkpoint)
    learner = load_learner(checkpoint, device)
    cfg = learner.config.data
    if args.dataset:
        cfg.dataset = args.dataset
    if args.split:
        cfg.split = args.split
    if args.data_dir or not (cfg.data_dir and Path(cfg.data_dir).is_dir()):
        cfg.data_dir = args.data_dir  # the checkpoint's folder is where it was trained
    data = load_part(cfg, args.part, rotations=False)
    if dataset_key(cfg) == "folder":  # a user's images: in the model's polarity, as cluster does
        conversion = convert_images(data.images, learner.image_shape)
        data = ImageSet((conversion.images * 255).round().to(torch.uint8), data.labels,
                        data.class_names, data.groups, data.name)
        _note(args, conversion.note)
    start = time.perf_counter()
    curves = robustness_curves(learner, data, corruptions=corruptions, severities=severities,
                               eps=eps, attack=args.attack, attack_steps=args.attack_steps,
                               n_tasks=args.tasks, attack_tasks=args.attack_tasks,
                               n_way=args.n_way, k_shot=args.k_shot, q_query=args.q_query,
                               per_class=args.per_class, seed=args.seed,
                               progress=not args.no_progress)
    name = "umeta-" + ("builtin" if args.checkpoint == "builtin" else Path(checkpoint).stem)
    training = "label-free" if is_label_free(learner.config) else "supervised"
    write_robustness(curves, out, figure, model_name=name, training=training,
                     benchmark="robustness", device=device, wall_s=time.perf_counter() - start,
                     dataset=cfg.dataset, split=cfg.split, part=args.part,
                     checkpoint=str(checkpoint), test_classes=data.num_classes)
    print(f"{data.name}: {data.num_classes} classes; accuracy % (mean over severities / radii)")
    print("\n".join(summary_lines(curves, "umeta")))
    print(f"wrote {out} and {figure}")
    return 0


def _numbers(text: str, kind: type, flag: str) -> tuple:
    """Comma-separated numbers of ``kind`` (int or float) given to ``flag``."""
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise UmetaError(f"{flag} takes comma-separated {'integers' if kind is int else 'numbers'}"
                         f", e.g. 1,3,5; got {text!r}") from None


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
    print(f"embedded {len(x)} samples of {data.source} in {args.dim} dimensions; wrote {out}"
          f"{_columns(data)}")
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
          f"(higher score = more anomalous); wrote {out}{_columns(data)}")
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
    from umeta.pretrained import sha256_of

    out = check_out(args.out, suffixes=(".safetensors",), inputs=(args.checkpoint,),
                    force=args.force)
    meta = export_learner(args.checkpoint, out, half=not args.float32)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB, {meta['dtype']}; file sha256 "
          f"{sha256_of(out)})")
    return 0


def read_labels(path: str, n: int, data: str) -> list[str]:
    """One label per line of the text file ``path`` (blank lines at the end ignored); there
    must be ``n``, one per sample of ``data``."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UmetaError(f"cannot read --labels {path!r} ({getattr(err, 'strerror', None) or err}"
                         f"); give a text file with one label per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = [line.strip() for line in lines]
    if len(labels) != n:
        raise UmetaError(f"--labels {path!r} has {len(labels)} labels but {data} holds {n} "
                         f"images; give one label per image, in the data's order")
    if any(not label for label in labels):
        raise UmetaError(f"--labels {path!r} has an empty line {labels.index('') + 1}; give one "
                         f"label per line")
    return labels


def cmd_compare(args: argparse.Namespace) -> int:
    from umeta.adapt.selection import CRITERIA
    from umeta.compare import (IMAGE_SIZE, TABLE_CRITERION, compare_models,
                               compare_table_models, parse_candidates)
    from umeta.data.user import data_kind, image_folder_sizes, load_user_data
    from umeta.recipes import COMPARE_TASKS

    out = check_out(args.out, suffixes=(".json",), inputs=(args.data, args.labels),
                    force=args.force)
    plot = out.with_suffix(".png")
    if plot.exists() and not args.force:
        raise UmetaError(f"the plot {str(plot)!r} (beside --out) exists; pass --force to "
                         f"overwrite it or choose another --out")
    if not Path(args.data).exists():
        raise UmetaError(f"data path {args.data!r} does not exist; check the path")
    kind = "images" if data_kind(args.data) == "images" else "tables"
    def names(given: str | None, default: str) -> list[str]:
        return [n.strip() for n in (default if given is None else given).split(",") if n.strip()]

    learners = names(args.learners, ",".join(COMPARE_TASKS) if kind == "images" else "")
    checkpoints = names(args.checkpoints, "builtin,none" if kind == "tables" else "")
    parse_candidates(learners, checkpoints, kind)  # bad names before the data is read
    if kind == "tables":
        for flag, given in (("--invert / --no-invert", args.invert is not None),
                            ("--image-size", args.image_size is not None)):
            if given:
                raise UmetaError(f"{flag} is for images; {args.data!r} is a table")
        data, table, _ = _table_inputs(args.data, args, args.label_column, None, "vectors")
    else:
        if args.label_column is not None:
            raise UmetaError("--label-column is for tables; images take their labels from "
                             "class subfolders, an npz's y or --labels")
        image_size = args.image_size or IMAGE_SIZE
        mixed = Path(args.data).is_dir() and len(image_folder_sizes(args.data)) > 1
        data = load_user_data(args.data, image_size=image_size if mixed else None)
    labels = None if data.y is None else data.y.numpy()
    if args.labels:
        labels = read_labels(args.labels, len(data.x), data.source)
    common = dict(checkpoints=checkpoints, n_clusters=args.n_clusters, labels=labels,
                  criterion=args.criterion or (TABLE_CRITERION if kind == "tables" else
                                               CRITERIA[0]),
                  n_views=args.views, n_boot=args.resamples, max_samples=args.max_samples,
                  k_range=tuple(args.k_range), seed=args.seed, device=args.device)
    if kind == "tables":
        result = compare_table_models(table, **common)
    else:
        result = compare_models(
            data.x, learners=learners, budget_s=args.budget_s, max_steps=args.max_steps,
            image_size=image_size, invert=args.invert, source=str(args.data),
            run_dir=args.run_dir, progress=not args.no_progress, **common)
    for note in result.notes:
        print(note, file=sys.stderr)
    k = (f"k = {result.n_clusters}" if result.k_estimates is None else
         f"k = {result.n_clusters}, the median of the candidates' silhouette estimates "
         f"({', '.join(f'{n} {v}' for n, v in result.k_estimates.items())}; --n-clusters sets it)")
    print(f"{len(result.candidates)} candidates on {result.n_scored} {result.unit} of "
          f"{data.source}, {k}; label-free criterion: {result.criterion}{_columns(data)}")
    print(result.table())
    print("\n".join(result.verdict()))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        result.write_json(out)
        result.plot(plot)
    except OSError as err:
        raise UmetaError(f"cannot write --out {str(out)!r} ({err.strerror or err}); choose "
                         f"another --out") from None
    print(f"wrote {out} and {plot}")


def segment_outputs(images: list[str], out: str, force: bool) -> list[tuple[Path, Path]]:
    """The (label map, overlay) paths of each image in the folder ``out``, checked before any
    work: the folder is not a file, two images do not share a name, and no output exists
    (unless ``force``) or is an input."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UmetaError(f"--out {out!r} is a file; name a folder for the outputs")
    stems: dict[str, str] = {}
    paths = []
    for image in images:
        stem = Path(image).stem
        if stem in stems:
            raise UmetaError(f"{stems[stem]!r} and {image!r} would both write {stem}_segments.png; "
                             f"rename one or segment them into different --out folders")
        stems[stem] = image
        pair = (folder / f"{stem}_segments.png", folder / f"{stem}_overlay.png")
        for path in pair:
            if any(path.exists() and path.samefile(i) for i in images if Path(i).exists()):
                raise UmetaError(f"{str(path)!r} is one of the input images; choose another "
                                 f"--out (--force never overwrites an input)")
            if path.exists() and not force:
                raise UmetaError(f"{str(path)!r} exists; pass --force to overwrite it or choose "
                                 f"another --out")
        paths.append(pair)
    return paths


def cmd_segment(args: argparse.Namespace) -> int:
    from PIL import Image

    from umeta.adapt.segment import SEGMENT_LIMITS
    from umeta.build import load_learner, resolve_device
    from umeta.data.user import read_image
    from umeta.label_maps import label_map_picture, overlay, save_png
    from umeta.pretrained import BUILTIN, SHIPPED, load_builtin
    from umeta.params import check_params
    from umeta.segmenter import MetaSegmenter

    if args.k_range is not None and args.n_segments is not None:
        raise UmetaError("--k-range is the search range of the estimated number of segments; "
                         "drop it or --n-segments")
    check_params({"n_segments": args.n_segments, "k_range": args.k_range or (2, 8),
                  "max_side": args.max_side, "position_weight": args.position_weight},
                 SEGMENT_LIMITS)
    outputs = segment_outputs(args.images, args.out, args.force)
    pictures = [read_image(image) for image in args.images]  # every input readable first
    device = resolve_device(args.device)
    if args.checkpoint == "none":
        learner, space = None, "pixel colours"
    elif args.checkpoint in (None, BUILTIN):
        learner = load_builtin("segmentation", device)
        space = f"the built-in segmentation model (umeta/weights/{SHIPPED['segmentation'].file})"
    else:
        learner, space = load_learner(args.checkpoint, device), f"checkpoint {args.checkpoint}"
    extra = {} if args.k_range is None else {"k_range": tuple(args.k_range)}
    model = MetaSegmenter(learner, args.n_segments, position_weight=args.position_weight,
                          max_side=args.max_side, snap_edges=args.snap_edges, device=device,
                          random_state=args.seed, **extra)
    print(f"segmenting {len(pictures)} image(s) by k-means++ in the space of {space}")
    for image, picture, (label_path, overlay_path) in zip(args.images, pictures, outputs):
        model.fit(picture)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        save_png(label_map_picture(model.labels_), label_path)
        save_png(Image.fromarray(overlay(picture, model.labels_)), overlay_path)
        height, width = picture.shape[:2]
        how = ("given" if args.n_segments is not None else
               f"estimated: the best silhouette of k = {model.k_range_[0]}..{model.k_range_[1]}")
        shrunk = ("" if model.work_shape_ == (height, width) else
                  f"; {width}x{height} segmented at {model.work_shape_[1]}x{model.work_shape_[0]} "
                  f"(--max-side {args.max_side}), labels enlarged back")
        print(f"{image}: {model.n_segments_} segments ({how}){shrunk} -> {label_path}, "
              f"{overlay_path}")
    return 0


COMMANDS = {"run": cmd_run, "train": cmd_train, "eval": cmd_eval, "cluster": cmd_cluster,
            "explain": cmd_explain, "embed": cmd_embed, "detect": cmd_detect,
            "export": cmd_export, "compare": cmd_compare, "segment": cmd_segment,
            "robustness": cmd_robustness}


#: The flag of each estimator / tool parameter and of each config key that has one, for
#: error messages (`umeta.params.ParamError` names the parameter; this names the flag).
FLAGS = {**{key: "--" + flag.replace("_", "-") for flag, (key, _) in TRAIN_FLAGS.items()},
         "n_clusters": "--n-clusters", "k_range": "--k-range", "n_components": "--dim",
         "contamination": "--contamination", "refine": "--refine", "algorithm": "--algorithm",
         "finetune_steps": "--finetune-steps", "finetune_lr": "--finetune-lr",
         "method": "--method", "random_state": "--seed", "seed": "--seed",
         "label_column": "--label-column",
         # compare
         "budget_s": "--budget-s", "n_boot": "--resamples", "max_steps": "--max-steps",
         "n_views": "--views", "max_samples": "--max-samples", "image_size": "--image-size",
         # segment
         "n_segments": "--n-segments", "position_weight": "--position-weight",
         "max_side": "--max-side",
         # explain, robustness
         "n_examples": "--examples", "n_tasks": "--tasks", "attack_tasks": "--attack-tasks",
         "attack_steps": "--attack-steps", "attack": "--attack", "n_way": "--n-way",
         "k_shot": "--k-shot", "q_query": "--q-query", "per_class": "--per-class"}


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


def _note(args: argparse.Namespace, text: str) -> None:
    """Keep a note for stderr (what was assumed or converted); `main` prints the notes once the
    command has succeeded, so that a mistake is still reported in one line."""
    args.notes.append(text)


def _keep_warning(args: argparse.Namespace, message, category, filename, lineno, file=None,
                  line=None) -> None:
    """A warning as a one-line note, naming command-line flags (:data:`FLAGS`) where it names a
    parameter as ``param='value'``."""
    text = re.sub(r"\b(\w+)='([^']*)'",
                  lambda m: f"{FLAGS[m[1]]} {m[2]}" if m[1] in FLAGS else m[0], str(message))
    _note(args, f"umeta {args.command}: warning: {text}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.notes = []
    try:
        with warnings.catch_warnings():
            warnings.showwarning = partial(_keep_warning, args)
            code = COMMANDS[args.command](args)
        for note in args.notes:
            print(note, file=sys.stderr)
        return code
    except UmetaError as err:
        print(f"umeta {args.command}: error: {_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"umeta {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
