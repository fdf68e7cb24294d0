"""B6: cross-domain few-shot clustering of images from domains other than Omniglot.

Sets: ``../shared/data/xdomain/*.npz`` (its README names them with their sha256; every file is
checked against it). A task: N classes x M images of one set, shuffled; settings 5x10 and 10x10
(a set with fewer than N classes has no N-way rows; the file lists what was skipped); the same
seeded tasks for every method. Methods in one run: umeta (each ``--checkpoint``, in each variant
of ``--standardize`` x ``--adapt`` x ``--refine`` x ``--algorithm``: k-means or spectral
clustering of the embedding), and k-means++ (n_init=10) on pixels, on
PCA(50) of the pixels and spectral clustering on pixels. Rows per set and setting
(clustering_accuracy, nmi, ari; umeta rows also their paired gain over k-means on pixels), and
per umeta variant the summary rows ``min_gain_vs_kmeans_pixels`` and
``mean_gain_vs_kmeans_pixels`` (points of clustering accuracy over all sets and settings; the
mean's CI from the cells' CIs, the minimum's by a bootstrap over each cell's tasks).

A checkpoint is refused unless its config names a data set umeta knows (not one of these sets)
and no file its config points to has the sha256 of one of them.

    python benchmarks/b6_xdomain.py --checkpoint builtin --standardize none,ink \
        --adapt none,adabn --out benchmarks/results/b6_xdomain_builtin_cpu.json

For other scripts (e.g. a GPU ablation driver), :func:`evaluate_learner` scores a learner in a
few calls and can reuse the baselines' per-task scores (:func:`baseline_scores`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor
from joblib import Parallel, delayed

from b2_clustering import baseline_labels, task_labels
from entry import run_main

from umeta.adapt.adabn import adabn, adabn_task_features
from umeta.adapt.cluster import ALGORITHMS
from umeta.adapt.selftrain import checked_selftrain, selftrain
from umeta.adapt.layers import in_space, parse_space
from umeta.build import is_label_free, load_learner, resolve_device
from umeta.checkpoint import read_checkpoint
from umeta.data.imageset import ImageSet
from umeta.data.sources import DATASETS
from umeta.data.standardize import standardize_ink
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.learners.psco import EMBED_HEADS, PsCo
from umeta.metrics import clustering_scores, mean_ci95
from umeta.numeric.clustering import REFINEMENTS
from umeta.results import result_row, write_results
from umeta.tasks.clustering import ClusteringTasks, sample_clustering_tasks

METRICS = ("clustering_accuracy", "nmi", "ari")
SETTINGS = ((5, 10), (10, 10))
BASELINES = ("kmeans-pixels", "kmeans-pca50", "spectral-pixels")
REFERENCE = "kmeans-pixels"
ADAPTATIONS = ("none", "adabn", "selftrain", "adabn+selftrain", "adabn+checked-selftrain")
SCOPES = ("task", "set")
STANDARDIZATIONS = ("none", "ink")
BOOTSTRAP = 2000
REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """``$UMETA_SHARED_DATA/xdomain``, else ``../shared/data/xdomain`` beside the repository."""
    shared = os.environ.get("UMETA_SHARED_DATA")
    return Path(shared) / "xdomain" if shared else REPO_ROOT.parent / "shared" / "data" / "xdomain"


# ----------------------------------------------------------------------------- data

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(data_dir: Path) -> dict[str, str]:
    """Set name -> sha256, from the table rows of ``data_dir/README.md`` (`` `name` | ... |
    `<64 hex>` ``)."""
    readme = Path(data_dir) / "README.md"
    if not readme.is_file():
        raise UmetaError(f"{readme} not found; point --data-dir at the xdomain folder (it lists "
                         f"the sets and their sha256)")
    manifest = {}
    for line in readme.read_text().splitlines():
        name = re.match(r"\|\s*`([A-Za-z0-9_]+)`\s*\|", line)
        digest = re.search(r"`([0-9a-f]{64})`\s*\|\s*$", line)
        if name and digest:
            manifest[name[1]] = digest[1]
    if not manifest:
        raise UmetaError(f"{readme} lists no set with a sha256; is this the xdomain folder?")
    return manifest


def load_xdomain(data_dir: Path, names: Iterable[str] | None = None) -> dict[str, ImageSet]:
    """The sets of the manifest (or ``names`` of them) as `ImageSet`s, each file checked by
    sha256 against the README."""
    manifest = read_manifest(data_dir)
    names = list(manifest) if names is None else list(names)
    unknown = [n for n in names if n not in manifest]
    if unknown:
        raise UmetaError(f"unknown xdomain set {unknown[0]!r}; the README lists "
                         f"{', '.join(manifest)}")
    sets = {}
    for name in names:
        path = Path(data_dir) / f"{name}.npz"
        if not path.is_file():
            raise UmetaError(f"{path} not found; the xdomain README lists it")
        digest = sha256_of(path)
        if digest != manifest[name]:
            raise UmetaError(f"{path} has sha256 {digest[:12]}..., not the README's "
                             f"{manifest[name][:12]}...; restore the listed file")
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"]
        classes = [str(c) for c in range(int(labels.max()) + 1)]
        sets[name] = ImageSet(torch.from_numpy(images)[:, None], torch.from_numpy(labels),
                              classes, None, f"xdomain/{name}")
    return sets


# ----------------------------------------------------------------------------- leakage check

def _config_paths(value: Any) -> list[Path]:
    """Every string in a (nested) config that names an existing file or folder."""
    if isinstance(value, Mapping):
        return [p for v in value.values() for p in _config_paths(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _config_paths(v)]
    if isinstance(value, str) and value and len(value) < 4096:
        path = Path(value).expanduser()
        try:
            return [path] if path.exists() else []
        except OSError:
            return []
    return []


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".npz", ".zip",
                                                                               ".npy", ".gz"))


def check_training_data(config: Mapping, progress: Mapping, manifest: Mapping[str, str],
                        what: str = "the checkpoint") -> str:
    """Refuse a model that may have been meta-trained on one of the B6 sets.

    Parameters
    ----------
    config : the checkpoint's config (dict); ``config["data"]["dataset"]`` must be one of
        `umeta.data.sources.DATASETS` and name none of the sets.
    progress : the checkpoint's progress (dict); its ``data`` (the training set's name), if
        any, must name none of the sets.
    manifest : set name -> sha256 (`read_manifest`)

    Returns
    -------
    str : the training data set's name.

    Raises
    ------
    UmetaError
        If the data set is unnamed or unknown, named like a B6 set, or any file or folder that
        the config names holds a file with a B6 set's sha256.
    """
    dataset = (config.get("data") or {}).get("dataset")
    if not dataset:
        raise UmetaError(f"{what}'s config names no data set (data.dataset); B6 cannot check "
                         f"that the model never saw its sets")
    names = [str(dataset), str(progress.get("data") or "")]
    for set_name in manifest:
        if any(set_name.lower() in n.lower() for n in names):
            raise UmetaError(f"{what} was trained on {names} which names the B6 set "
                             f"{set_name!r}; B6 never reports a set a model trained on")
    if dataset not in DATASETS:
        raise UmetaError(f"{what} was trained on data set {dataset!r}, which B6 cannot vouch "
                         f"for; it knows {', '.join(DATASETS.names())}")
    digests = {v: k for k, v in manifest.items()}
    for root in _config_paths(config):
        for file in _data_files(root):
            found = digests.get(sha256_of(file))
            if found:
                raise UmetaError(f"{what}'s config names {file}, which is the B6 set "
                                 f"{found!r} (same sha256); B6 never reports a set a model "
                                 f"trained on")
    return str(dataset)


def load_checked_model(given: str, manifest: Mapping[str, str],
                       device: torch.device | str = "cpu") -> tuple[Learner, str]:
    """A ``--checkpoint`` value (a file or "builtin") -> (its learner on ``device``, the data
    set it was meta-trained on), refused first by :func:`check_training_data` if it may have
    seen a B6 set."""
    from umeta.pretrained import BUILTIN, builtin_checkpoint

    path = builtin_checkpoint() if given == BUILTIN else Path(given)
    _, meta = read_checkpoint(path)
    trained_on = check_training_data(meta["config"], meta.get("progress") or {}, manifest,
                                     f"checkpoint {given!r}")
    return load_learner(path, device), trained_on


# ----------------------------------------------------------------------------- tasks


def setting_name(n: int, m: int) -> str:
    return f"{n}x{m}"


def draw_tasks(sets: Mapping[str, ImageSet], settings: Iterable[tuple[int, int]], n_tasks: int,
               seed: int) -> tuple[dict[tuple[str, str], ClusteringTasks], list[dict]]:
    """Seeded tasks of every set and setting, and the (set, setting) pairs skipped because the
    set has fewer classes than the setting's N (or fewer images per class than M).

    Each (set, setting) draws from its own generator, seeded from ``seed``, the set's name and
    the setting, so a subset of sets or settings gets the same tasks as the full run.
    """
    tasks, skipped = {}, []
    for name, data in sets.items():
        counts = data.class_counts()
        for n, m in settings:
            setting = setting_name(n, m)
            if data.num_classes < n or int(counts.min()) < m:
                skipped.append({"set": name, "setting": setting, "why": (
                    f"{data.num_classes} classes of at least {int(counts.min())} images")})
                continue
            cell_seed = seed * 1_000_003 + zlib.crc32(f"{name}/{setting}".encode())
            tasks[name, setting] = sample_clustering_tasks(data, n, m, n_tasks, seed=cell_seed)
    return tasks, skipped


def task_scores(truth: np.ndarray, labels: np.ndarray) -> list[dict]:
    return [clustering_scores(t, p) for t, p in zip(truth, labels)]


def baseline_scores(tasks: Mapping[tuple[str, str], ClusteringTasks],
                    methods: Iterable[str] = BASELINES, *, seed: int = 0,
                    jobs: int = -1) -> dict[tuple[str, str, str], list[dict]]:
    """Per-task scores of the classical methods on each cell's raw pixels:
    ``{(set, setting, method): [scores of task 0, ...]}``."""
    out = {}
    for (name, setting), cell in tasks.items():
        pixels = cell.images.flatten(2).cpu().numpy()
        for method in methods:
            labels = Parallel(n_jobs=jobs)(
                delayed(baseline_labels)(method, x, cell.n_way, seed) for x in pixels)
            out[name, setting, method] = task_scores(cell.labels, labels)
    return out


# ----------------------------------------------------------------------------- umeta

@dataclass(frozen=True)
class Variant:
    """How umeta clusters a task: input standardisation, test-time adaptation, refinement.

    Attributes
    ----------
    space : str
        "embedding" (the learner's own), "blockN": the output of the backbone's N-th block
        (`umeta.adapt.layers.LayerEmbedding`), or "embedding+blockN": both, normalised and
        joined (`umeta.adapt.layers.JointEmbedding`).
    standardize : {"none", "ink"}
        "ink": `umeta.data.standardize.standardize_ink` (contrast stretch, ink-box framing).
    adapt : {"none", "adabn", "selftrain", "adabn+selftrain", "adabn+checked-selftrain"}
        "adabn": BatchNorm statistics of the images (`umeta.adapt.adabn`); "selftrain":
        cluster-then-fine-tune (`umeta.adapt.selftrain`); both: AdaBN first; "checked": the
        self-trained copy only where `checked_selftrain`'s label-free check says it helped.
    scope : {"task", "set"}
        What the adaptation sees: each task's own images, or all images of the task's set
        (unlabeled; self-training then makes as many pseudo-classes as the set has classes,
        as a user gives ``--n-clusters``).
    refine : {"none", "soft", "balanced"}
    normalize : bool
        L2-normalise the features before clustering (as ``MetaClusterer(normalize=True)``).
    algorithm : {"kmeans", "spectral"}
        The clustering step (as ``MetaClusterer(algorithm=...)``): batched k-means++, or each
        task's spectral clustering on its 10-nearest-neighbour graph.
    selftrain_steps, selftrain_lr : int, float
        Self-training's optimizer steps and Adam learning rate.
    """

    space: str = "embedding"
    standardize: str = "none"
    adapt: str = "none"
    scope: str = "task"
    refine: str = "none"
    normalize: bool = True
    selftrain_steps: int = 20
    selftrain_lr: float = 1e-4
    algorithm: str = "kmeans"

    def __post_init__(self) -> None:
        for field, value, valid in (("standardize", self.standardize, STANDARDIZATIONS),
                                    ("adapt", self.adapt, ADAPTATIONS),
                                    ("scope", self.scope, SCOPES),
                                    ("refine", self.refine, REFINEMENTS),
                                    ("algorithm", self.algorithm, ALGORITHMS)):
            if value not in valid:
                raise UmetaError(f"unknown {field} {value!r}; choose one of: {', '.join(valid)}")
        if self.algorithm == "spectral" and self.refine != "none":
            raise UmetaError("refinement is of k-means prototypes: use --refine none with "
                             "--algorithm spectral")
        parse_space(self.space)

    def learner_in_space(self, learner: Learner) -> Learner:
        """``learner``, or its wrapper whose embedding is block N's output."""
        return in_space(learner, self.space)

    @property
    def suffix(self) -> str:
        parts = ["" if self.space == "embedding" else f"@{self.space}",
                 f"+{self.standardize}" if self.standardize != "none" else ""]
        if self.adapt != "none":
            parts.append(f"+{self.adapt}" + ("" if self.scope == "task" else "@set"))
            if "selftrain" in self.adapt:
                parts.append(f"{self.selftrain_steps}@lr{self.selftrain_lr:g}")
        parts.append(f"+{self.refine}" if self.refine != "none" else "")
        parts.append(f"+{self.algorithm}" if self.algorithm != "kmeans" else "")
        return "".join(parts) + ("" if self.normalize else "+raw")


def embedding_space(learner: Learner, variant: Variant) -> str:
    if variant.space != "embedding":
        return f"{variant.space} ({variant.learner_in_space(learner).layer})"
    return f"psco-{learner.embed_head}" if isinstance(learner, PsCo) else "backbone"


def model_description(learner: Learner) -> str:
    cfg = learner.config
    return (f"{cfg.learner.name} on {cfg.model.backbone}-{cfg.model.hidden}, "
            f"{cfg.tasks.builder} tasks on {cfg.data.dataset}, {cfg.optim.steps} steps")


def _standardized(images: Tensor, variant: Variant) -> Tensor:
    if variant.standardize == "ink":
        return standardize_ink(images.flatten(0, -4)).view(images.shape)
    return images


def adapted_learner(learner: Learner, images: Tensor, n_clusters: int, variant: Variant,
                    seed: int) -> Learner:
    """``learner`` adapted to ``images`` (N, C, H, W), already standardised, by ``variant``."""
    if variant.adapt.startswith("adabn"):
        learner = adabn(learner, images)
    options = {"steps": variant.selftrain_steps, "lr": variant.selftrain_lr, "seed": seed}
    if variant.adapt.endswith("checked-selftrain"):
        return checked_selftrain(learner, images, n_clusters, **options).learner
    if variant.adapt.endswith("selftrain"):
        return selftrain(learner, images, n_clusters, **options).learner
    return learner


def umeta_features(learner: Learner, images: Tensor, n_way: int, variant: Variant,
                   seed: int = 0) -> Tensor:
    """Features (T, M, D) of tasks' images (T, M, C, H, W) under ``variant``, each task adapted
    on its own images with ``n_way`` pseudo-classes (scope "task"; for scope "set" pass the
    learner `adapted_learner` made and a variant without adaptation)."""
    t, m = images.shape[:2]
    images = _standardized(images, variant)
    if variant.adapt == "none":
        return learner.embed(images.flatten(0, 1)).view(t, m, -1)
    if variant.adapt == "adabn":
        return adabn_task_features(learner, images)
    return torch.stack([adapted_learner(learner, task, n_way, variant, seed + i).embed(task)
                        for i, task in enumerate(images)])


def umeta_scores(learner: Learner, tasks: Mapping[tuple[str, str], ClusteringTasks],
                 variant: Variant, *, seed: int = 0,
                 sets: Mapping[str, ImageSet] | None = None) -> dict[tuple[str, str], list[dict]]:
    """Per-task scores of umeta in ``variant`` for every cell; scope "set" adapts once per set
    on all of its images (``sets``), with as many pseudo-classes as the set has classes."""
    device = next(learner.parameters()).device
    learner = variant.learner_in_space(learner)
    by_set = variant.scope == "set" and variant.adapt != "none"
    if by_set and sets is None:
        raise UmetaError("scope 'set' adapts on the whole set: pass sets=")
    adapted: dict[str, Learner] = {}
    out = {}
    for (name, setting), cell in tasks.items():
        model, how = learner, variant
        if by_set:
            if name not in adapted:
                collection = _standardized(sets[name].float_images().to(device), variant)
                adapted[name] = adapted_learner(learner, collection, sets[name].num_classes,
                                                variant, seed)
            model, how = adapted[name], replace(variant, adapt="none")
        feats = umeta_features(model, cell.images.to(device), cell.n_way, how, seed)
        labels = task_labels(feats, cell.n_way, variant.refine, variant.algorithm, seed,
                             normalize=variant.normalize)
        out[name, setting] = task_scores(cell.labels, labels)
    return out


# ----------------------------------------------------------------------------- rows

def _values(scores: list[dict], metric: str) -> np.ndarray:
    return np.array([s[metric] for s in scores]) * (100.0 if metric == "clustering_accuracy"
                                                    else 1.0)


def metric_rows(method: str, training: str, setting: str, scores: list[dict],
                reference: list[dict] | None = None, **extra) -> list[dict]:
    """One row per metric; with ``reference`` also the paired gain over it
    (``gain_vs_kmeans_pixels`` +- ``gain_ci95``, in points for clustering accuracy)."""
    rows = []
    for metric in METRICS:
        mean, ci = mean_ci95(_values(scores, metric))
        gain = {}
        if reference is not None:
            g, g_ci = mean_ci95(_values(scores, metric) - _values(reference, metric))
            gain = {"gain_vs_kmeans_pixels": round(g, 4), "gain_ci95": round(g_ci, 4)}
        rows.append(result_row(method, training, setting, metric, mean, ci, len(scores),
                               **extra, **gain))
    return rows


def gain_summary(umeta: Mapping[tuple[str, str], list[dict]],
                 reference: Mapping[tuple[str, str], list[dict]], seed: int = 0) -> dict:
    """Min and mean over cells of umeta's paired accuracy gain over the reference (points).

    The mean's 95% CI combines the cells' t-intervals (independent cells, equal weights); the
    minimum's is the 2.5 / 97.5 percentile of the minimum over ``BOOTSTRAP`` resamples of each
    cell's tasks.
    """
    cells = sorted(umeta)
    gains = {c: _values(umeta[c], "clustering_accuracy")
             - _values(reference[c], "clustering_accuracy") for c in cells}
    stats = {c: mean_ci95(g) for c, g in gains.items()}
    means = np.array([stats[c][0] for c in cells])
    mean_ci = float(np.sqrt(sum(stats[c][1] ** 2 for c in cells)) / len(cells))
    rng = np.random.default_rng(seed)
    boot = np.stack([gains[c][rng.integers(0, len(gains[c]), (BOOTSTRAP, len(gains[c])))]
                     .mean(1) for c in cells])  # (cells, B)
    low, high = np.percentile(boot.min(0), [2.5, 97.5])
    worst = cells[int(means.argmin())]
    return {"min": float(means.min()), "min_low": float(low), "min_high": float(high),
            "min_cell": f"{worst[0]}/{worst[1]}", "mean": float(means.mean()),
            "mean_ci95": mean_ci, "cells": len(cells),
            "per_cell": {f"{c[0]}/{c[1]}": round(stats[c][0], 4) for c in cells}}


def summary_rows(method: str, training: str, summary: dict, **extra) -> list[dict]:
    n = summary["cells"]
    half = (summary["min_high"] - summary["min_low"]) / 2
    return [
        result_row(method, training, "all", "min_gain_vs_kmeans_pixels", summary["min"], half,
                   n, ci_low=round(summary["min_low"], 4), ci_high=round(summary["min_high"], 4),
                   ci_method=f"bootstrap over each cell's tasks ({BOOTSTRAP} resamples)",
                   argmin=summary["min_cell"], unit="points", cells=n, **extra),
        result_row(method, training, "all", "mean_gain_vs_kmeans_pixels", summary["mean"],
                   summary["mean_ci95"], n, ci_method="the cells' t-intervals combined",
                   unit="points", cells=n, per_cell=summary["per_cell"], **extra),
    ]


def evaluate_learner(learner: Learner, *, data_dir: str | Path | None = None,
                     settings: Iterable[tuple[int, int]] = SETTINGS, n_tasks: int = 200,
                     seed: int = 0, variants: Iterable[Variant] = (Variant(),),
                     baselines: Mapping | None = None, jobs: int = -1,
                     name: str = "umeta") -> dict:
    """B6 of one learner in a few calls (for ablation drivers).

    Parameters
    ----------
    learner : Learner
        Meta-trained, on the device to evaluate on; checked with :func:`check_training_data`
        against its ``learner.config`` (no progress record).
    data_dir : the xdomain folder (default :func:`default_data_dir`).
    settings, n_tasks, seed : the tasks (the same as the script's for the same values).
    variants : the umeta variants to score.
    baselines : per-task scores from an earlier :func:`baseline_scores` on the same tasks;
        None computes k-means on pixels (the reference) only.
    jobs : processes for the baselines.
    name : method name prefix of the umeta rows.

    Returns
    -------
    dict with ``rows`` (result rows), ``summary`` ({variant suffix: :func:`gain_summary`}),
    ``baselines`` (the per-task scores used, to pass to the next call) and ``skipped``.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    manifest = read_manifest(data_dir)
    check_training_data(learner.config.to_dict(), {}, manifest)
    sets = load_xdomain(data_dir)
    tasks, skipped = draw_tasks(sets, list(settings), n_tasks, seed)
    if baselines is None:
        baselines = baseline_scores(tasks, (REFERENCE,), seed=seed, jobs=jobs)
    training = "label-free" if is_label_free(learner.config) else "supervised"
    rows, summary = [], {}
    for variant in variants:
        scores = umeta_scores(learner, tasks, variant, seed=seed, sets=sets)
        method = name + variant.suffix
        for (set_name, setting), s in scores.items():
            rows += metric_rows(method, training, setting, s,
                                baselines[set_name, setting, REFERENCE], dataset=set_name)
        summary[variant.suffix] = gain_summary(
            scores, {k: baselines[k[0], k[1], REFERENCE] for k in scores}, seed)
        rows += summary_rows(method, training, summary[variant.suffix])
    return {"rows": rows, "summary": summary, "baselines": baselines, "skipped": skipped}


# ----------------------------------------------------------------------------- script

def _split(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="a meta-trained checkpoint (repeatable); 'builtin' is the built-in "
                             "label-free glyph model (umeta.pretrained)")
    parser.add_argument("--data-dir", help="the xdomain folder (default ../shared/data/xdomain)")
    parser.add_argument("--sets", help="comma-separated subset of the README's sets")
    parser.add_argument("--settings", default="5x10,10x10", help="N x M settings")
    parser.add_argument("--tasks", type=int, default=200, help="tasks per set and setting")
    parser.add_argument("--space", default="embedding",
                        help="umeta feature-space variants, comma-separated: embedding (the "
                             "learner's own), blockN (the backbone's N-th block, flattened)")
    parser.add_argument("--standardize", default="none",
                        help="umeta input variants, comma-separated: "
                             + ", ".join(STANDARDIZATIONS))
    parser.add_argument("--adapt", default="none",
                        help=f"umeta test-time adaptation variants: {', '.join(ADAPTATIONS)}")
    parser.add_argument("--scope", default="task",
                        help=f"what the adaptation sees, variants: {', '.join(SCOPES)}")
    parser.add_argument("--selftrain-steps", type=int, default=20)
    parser.add_argument("--selftrain-lr", type=float, default=1e-4)
    parser.add_argument("--refine", default="none",
                        help=f"umeta refinement variants: {', '.join(REFINEMENTS)}")
    parser.add_argument("--algorithm", default="kmeans",
                        help=f"umeta clustering steps: {', '.join(ALGORITHMS)}")
    parser.add_argument("--embed-head", choices=EMBED_HEADS,
                        help="for PsCo checkpoints: the space to embed in")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baselines", action="store_true",
                        help="k-means on pixels only (the reference of the gains)")
    parser.add_argument("--jobs", type=int, default=-1, help="processes for the baselines")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    device = resolve_device(args.device)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    manifest = read_manifest(data_dir)
    # every checkpoint is checked before any work is done
    models = []
    for given in args.checkpoint:
        learner, trained_on = load_checked_model(given, manifest, device)
        if args.embed_head and isinstance(learner, PsCo):
            learner.embed_head = args.embed_head
        models.append((given, learner, trained_on))
    settings = [tuple(int(v) for v in s.lower().split("x")) for s in _split(args.settings)]
    sets = load_xdomain(data_dir, _split(args.sets) if args.sets else None)
    tasks, skipped = draw_tasks(sets, settings, args.tasks, args.seed)
    methods = (REFERENCE,) if args.no_baselines else BASELINES
    t0 = time.perf_counter()
    baselines = baseline_scores(tasks, methods, seed=args.seed, jobs=args.jobs)
    baseline_wall = time.perf_counter() - t0
    rows = []
    for (set_name, setting), _ in tasks.items():
        for method in methods:
            rows += metric_rows(method, "none", setting, baselines[set_name, setting, method],
                                dataset=set_name)
    variants = list(dict.fromkeys(
        Variant(sp, s, a, sc if a != "none" else "task", r,
                selftrain_steps=args.selftrain_steps, selftrain_lr=args.selftrain_lr,
                algorithm=al)
        for sp in _split(args.space) for s in _split(args.standardize) for a in _split(args.adapt)
        for sc in _split(args.scope) for r in _split(args.refine) for al in _split(args.algorithm)))
    reference = {k: baselines[k[0], k[1], REFERENCE] for k in tasks}
    for given, learner, trained_on in models:
        training = "label-free" if is_label_free(learner.config) else "supervised"
        for variant in variants:
            t0 = time.perf_counter()
            scores = umeta_scores(learner, tasks, variant, seed=args.seed, sets=sets)
            info = {"checkpoint": given, "model": model_description(learner),
                    "trained_on": trained_on, "space": embedding_space(learner, variant),
                    "normalisation": "l2" if variant.normalize else "none",
                    "standardize": variant.standardize, "adapt": variant.adapt,
                    "adapt_scope": variant.scope if variant.adapt != "none" else None,
                    "refinement": variant.refine, "algorithm": variant.algorithm,
                    "wall_s": round(time.perf_counter() - t0, 2)}
            if "selftrain" in variant.adapt:
                info.update(selftrain_steps=variant.selftrain_steps,
                            selftrain_lr=variant.selftrain_lr)
            method = f"umeta-{learner.config.tasks.builder}-{learner.config.learner.name}" \
                     + variant.suffix
            for (set_name, setting), s in scores.items():
                rows += metric_rows(method, training, setting, s, reference[set_name, setting],
                                    dataset=set_name, **info)
            summary = gain_summary(scores, reference, args.seed)
            rows += summary_rows(method, training, summary, **info)
            print(f"{method:<40} min gain {summary['min']:+6.2f} [{summary['min_low']:+.2f}, "
                  f"{summary['min_high']:+.2f}] ({summary['min_cell']})   mean gain "
                  f"{summary['mean']:+6.2f} +- {summary['mean_ci95']:.2f}", flush=True)
    for row in rows:
        if row["metric"] == "clustering_accuracy":
            gain = (f"  gain {row['gain_vs_kmeans_pixels']:+6.2f} +- {row['gain_ci95']:.2f}"
                    if "gain_vs_kmeans_pixels" in row else "")
            print(f"{row['dataset']:<15} {row['setting']:<6} {row['method']:<40} "
                  f"{row['mean']:6.2f} +- {row['ci95']:.2f}{gain}")
    write_results(args.out, "B6", rows, device=device, wall_s=time.perf_counter() - start,
                  seed=args.seed, dataset="xdomain", sets=manifest if args.sets is None else
                  {n: manifest[n] for n in sets}, tasks_per_cell=args.tasks,
                  settings=[setting_name(*s) for s in settings], skipped=skipped,
                  baseline_wall_s=round(baseline_wall, 2))


if __name__ == "__main__":
    run_main(main)
