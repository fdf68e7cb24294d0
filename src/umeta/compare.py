"""`umeta compare`: which meta-learner (or model, or embedding space) clusters my data best?

:func:`compare_models` meta-trains each named learner without labels on the data's own images
(the same budget, seed and backbone for all; `umeta.recipes.compare_config`, through the one
training loop `umeta.train.train`) and/or loads given checkpoints (``"builtin"``, a path, either
with ``@SPACE`` for another embedding space of `umeta.adapt.layers.in_space`, or ``"none"``: the
raw pixels), clusters the data in each candidate's space as `umeta cluster` would (its "auto"
step: spectral clustering in a model's space with 10 or more samples a cluster, k-means
otherwise; `umeta.adapt.selection.partition`) and scores each with a label-free criterion
(`umeta.adapt.selection`). The recommendation is the candidate the criterion ranks first, with
its margin over the runner-up and a bootstrap over the images for the uncertainty of both. Labels,
where given, are used for scoring only: each candidate's clustering accuracy, NMI and ARI.

:func:`compare_table_models` does the same for one table: the candidates are table models
(``"builtin"``, checkpoints trained on past tables with ``umeta train``) and ``"none"``, the raw
values (median-imputed, z-scored: `umeta.numeric.standardize_columns`); the held-out views hide
a share of the cells (`umeta.adapt.selection.masked_views`). A table model is meta-trained on
many past tables, not on the one table at hand, so nothing is trained here; asked for more
clusters than it trained on, it stands for its standardised values, as in `umeta cluster`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from umeta.adapt.cluster import search_range
from umeta.adapt.embed import embed_inputs, is_table_model, table_inputs
from umeta.adapt.layers import in_space, parse_space
from umeta.adapt.selection import (CRITERIA, CandidateFeatures, augmented_views,
                                   bootstrap_scores, check_criterion, masked_views,
                                   score_candidates)
from umeta.build import load_learner, resolve_device
from umeta.data.convert import convert_images
from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.files import atomic_write
from umeta.learners.base import Learner
from umeta.metrics import clustering_scores
from umeta.numeric.clustering import check_cluster_count, estimate_n_clusters
from umeta.numeric.columns import standardize_columns
from umeta.numeric.random import check_seed, seeded_subset
from umeta.params import Interval, Pair, check_params
from umeta.pretrained import BUILTIN, load_builtin
from umeta.recipes import COMPARE_TASKS, compare_config
from umeta.report import plot_comparison
from umeta.train import train

#: The learners `compare_models` can meta-train on the data (each with its label-free tasks).
LEARNER_CHOICES = tuple(COMPARE_TASKS)
#: A recommendation is called clear when its margin's interval excludes 0 and it is first in at
#: least this share of the resamples (B11 measures how often such recommendations are right).
CONFIDENT_SHARE = 0.8
#: The checkpoint name of the raw pixels or values (the classical baseline), as in
#: `umeta cluster`.
PIXELS = "none"
#: Side of the images the learners are trained on unless told.
IMAGE_SIZE = 28
#: The candidate name of the raw inputs, by kind of data.
RAW_NAMES = {"images": "pixels", "tables": "values"}
#: The criterion a table comparison ranks by unless told. Chosen on DEV tables
#: (benchmarks/results/b11_compare_tables_dev.json: 73 pmlb tables that are no B8 table, the
#: priors-only table model against the raw values): stability had the highest mean ARI of its
#: picks, 0.158 (retrieval 0.155, silhouette 0.146, consistency 0.135; consensus cannot tell
#: two candidates apart), though no criterion beat always taking the model there (0.158).
TABLE_CRITERION = "stability"
#: Limits of :func:`compare_models`' parameters.
COMPARE_LIMITS = {
    "budget_s": [Interval(float, 0, None, closed="neither")],
    "max_steps": [Interval(int, 1, None)],
    "n_clusters": [Interval(int, 2, None), None],
    "k_range": [Pair(Interval(int, 2, None))],
    "n_views": [Interval(int, 1, None)],
    "n_boot": [Interval(int, 0, None)],
    "max_samples": [Interval(int, 4, None)],
    "image_size": [Interval(int, 16, None)],  # Conv4 needs 16x16
}


@dataclass(frozen=True)
class Candidate:
    """One model to compare.

    Attributes
    ----------
    name : str
        Its name in the table (the learner, ``builtin``, ``pixels`` or the checkpoint's file
        stem, with ``@SPACE`` when not the model's own embedding).
    kind : {"trained", "checkpoint", "raw"}
    source : str
        The learner to train, or the checkpoint (a path or ``"builtin"``).
    space : str
        The embedding space (`umeta.adapt.layers.parse_space`).
    """

    name: str
    kind: str
    source: str
    space: str = "embedding"


def parse_candidates(learners: Sequence[str] = (),
                     checkpoints: Sequence[str | Path] = (),
                     data_kind: str = "images") -> list[Candidate]:
    """The candidates named by ``learners`` (of :data:`LEARNER_CHOICES`) and ``checkpoints``
    (paths, ``"builtin"`` or ``"none"``; ``"PATH@SPACE"`` embeds in another space) for data of
    ``data_kind`` (``"images"`` or ``"tables"``: no learners, no spaces).

    Raises
    ------
    UmetaError
        An unknown learner, a missing checkpoint, an unknown space, a name given twice, or
        fewer than two candidates.

    Examples
    --------
    >>> [c.name for c in parse_candidates(["protonet", "psco"], ["builtin@block2", "none"])]
    ['protonet', 'psco', 'builtin@block2', 'pixels']
    >>> [c.name for c in parse_candidates([], ["builtin", "none"], "tables")]
    ['builtin', 'values']
    """
    raw = RAW_NAMES[data_kind]
    if data_kind == "tables" and learners:
        raise UmetaError("a table model learns from many past tables, not from the one table "
                         "compared: give no learners (--learners '') and compare table "
                         "checkpoints ('builtin', files made by umeta train on your tables) "
                         "and 'none' (the raw values)")
    found: list[Candidate] = []
    for name in learners:
        if name not in LEARNER_CHOICES:
            raise UmetaError(f"unknown learner {name!r}; choose from: {', '.join(LEARNER_CHOICES)}")
        found.append(Candidate(name, "trained", name))
    for given in map(str, checkpoints):
        source, space = given, "embedding"
        head, sep, tail = given.rpartition("@")
        if sep and head and not Path(given).exists():
            if data_kind == "tables":
                raise UmetaError(f"{given!r}: a table model has one embedding space; give the "
                                 f"checkpoint without @{tail}")
            parse_space(tail)  # an unknown space is one clear error
            source, space = head, tail
        if source == PIXELS:
            if space != "embedding":
                raise UmetaError(f"{given!r}: the raw pixels have no embedding spaces; give "
                                 f"'{PIXELS}' alone")
            found.append(Candidate(raw, "raw", PIXELS))
            continue
        if source != BUILTIN and not Path(source).is_file():
            raise UmetaError(f"checkpoint {source!r} not found; give a .safetensors file, "
                             f"'{BUILTIN}' or '{PIXELS}' (the raw {raw})")
        name = BUILTIN if source == BUILTIN else Path(source).stem
        found.append(Candidate(name + ("" if space == "embedding" else f"@{space}"),
                               "checkpoint", source, space))
    names = [c.name for c in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UmetaError(f"candidate {twice[0]!r} is named twice; give each learner or "
                         f"checkpoint once (rename a checkpoint file to tell two apart)")
    if len(found) < 2:
        raise UmetaError(f"a comparison needs at least 2 candidates; got {len(found)} "
                         f"({', '.join(names) or 'none'}): add learners or checkpoints")
    return found


@dataclass
class CandidateResult:
    """What :func:`compare_models` found for one candidate.

    Attributes
    ----------
    name, kind, space : see `Candidate`
    description : str
        What the candidate is, in words.
    scores : dict of str to float
        Each label-free criterion computed (``CRITERIA``).
    ci95 : (float, float) or None
        Bootstrap 95% interval (:func:`basic_interval`) of the recommendation's criterion
        (None without resamples).
    first_share : float or None
        Share of the resamples in which this candidate ranks first.
    truth : dict of str to float or None
        With labels: ``clustering_accuracy`` (percent), ``nmi``, ``ari`` of its clustering.
    training : dict or None
        For a trained candidate: steps, seconds, and the checkpoint kept (or None).
    labels : ndarray of shape (n_scored,)
        Its clusters of the scored samples (`umeta.adapt.selection.partition`).
    """

    name: str
    kind: str
    space: str
    description: str
    scores: dict[str, float]
    ci95: tuple[float, float] | None = None
    first_share: float | None = None
    truth: dict[str, float] | None = None
    training: dict[str, Any] | None = None
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int), repr=False)


@dataclass
class Comparison:
    """The result of :func:`compare_models`.

    Attributes
    ----------
    candidates : list of CandidateResult
        In the order given.
    criterion : str
        The label-free criterion the recommendation ranks by.
    recommended, runner_up : str
        The first and second candidates by the criterion.
    margin : float
        Their difference in the criterion.
    margin_ci95 : (float, float) or None
        Its bootstrap 95% interval (:func:`basic_interval`; None with ``n_boot=0``).
    n_boot : int
        Resamples of the images.
    n_clusters : int
        k of every clustering.
    k_estimates : dict of str to int or None
        Each candidate's silhouette estimate of k when it was not given (k is their median).
    n_images, n_scored : int
        Images (or rows) given, and scored (a seeded subsample of at most ``max_samples``).
    labelled_best : str or None
        The candidate of highest clustering accuracy, with labels.
    notes : list of str
        What was done to the data on the way (conversions, subsamples).
    budget_s : float
        Training budget of each trained candidate.
    seed : int
    unit : str
        What the data's samples are: ``"images"`` or ``"rows"`` (of a table).
    """

    candidates: list[CandidateResult]
    criterion: str
    recommended: str
    runner_up: str
    margin: float
    margin_ci95: tuple[float, float] | None
    n_boot: int
    n_clusters: int
    k_estimates: dict[str, int] | None
    n_images: int
    n_scored: int
    labelled_best: str | None
    notes: list[str]
    budget_s: float
    seed: int
    unit: str = "images"

    def result(self, name: str) -> CandidateResult:
        """The candidate called ``name``."""
        for cand in self.candidates:
            if cand.name == name:
                return cand
        raise UmetaError(f"no candidate {name!r}; candidates: "
                         f"{', '.join(c.name for c in self.candidates)}")

    def verdict(self) -> list[str]:
        """The recommendation, its evidence and its uncertainty, in sentences."""
        best, crit = self.result(self.recommended), self.criterion
        lines = [f"recommended: {best.name} ({best.description}): the highest {crit} "
                 f"{best.scores[crit]:.3f} of {len(self.candidates)} candidates"]
        gap = f"{self.margin:+.3f}"
        if self.margin_ci95 is None:
            lines.append(f"ahead of {self.runner_up} by {gap} (no resamples: uncertainty not "
                         f"measured)")
        else:
            low, high = self.margin_ci95
            share = (f"first in {best.first_share:.0%} of {self.n_boot} resamples of the "
                     f"{self.unit}")
            if low > 0 and best.first_share >= CONFIDENT_SHARE:
                lines.append(f"ahead of {self.runner_up} by {gap} [{low:+.3f}, {high:+.3f}] "
                             f"(95% bootstrap interval); {share}")
            else:
                lines.append(f"not a clear winner: ahead of {self.runner_up} by {gap} "
                             f"[{low:+.3f}, {high:+.3f}] (95% bootstrap interval), {share}; "
                             f"treat them as a near-tie (more {self.unit} narrow it)")
        if self.labelled_best is not None:
            truth = {c.name: c.truth["clustering_accuracy"] for c in self.candidates}
            top = self.labelled_best
            if top == best.name:
                lines.append(f"the labels agree: {top} has the highest clustering accuracy "
                             f"({truth[top]:.1f}%)")
            else:
                lines.append(f"the labels disagree: {top} has the highest clustering accuracy "
                             f"({truth[top]:.1f}%), {best.name} {truth[best.name]:.1f}% "
                             f"({truth[best.name] - truth[top]:+.1f} points)")
        return lines

    def table(self) -> str:
        """The candidates side by side, the recommended one marked with ``*``."""
        crits = [c for c in CRITERIA if c in self.candidates[0].scores]
        width = max(len(c.name) for c in self.candidates) + 2
        wide = 27  # the recommendation's criterion with its interval

        def cell(cand: CandidateResult, crit: str) -> str:
            if crit == self.criterion and cand.ci95 is not None:
                low, high = cand.ci95
                return f"{cand.scores[crit]:.3f} [{low:.3f}, {high:.3f}]".rjust(wide)
            return f"{cand.scores[crit]:>12.3f}"

        heads = [(f"{c} [95% CI]".rjust(wide) if c == self.criterion and self.n_boot
                  else f"{c:>12}") for c in crits]
        labelled = self.candidates[0].truth is not None
        lines = [f"{'candidate':<{width}}" + "".join(heads)
                 + (f"{'accuracy %':>12}{'NMI':>8}{'ARI':>8}" if labelled else "")]
        for cand in self.candidates:
            mark = "*" if cand.name == self.recommended else " "
            row = f"{mark}{cand.name:<{width - 1}}" + "".join(cell(cand, c) for c in crits)
            if labelled:
                t = cand.truth
                row += f"{t['clustering_accuracy']:>12.2f}{t['nmi']:>8.3f}{t['ari']:>8.3f}"
            lines.append(row)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-image clusters)."""
        def rounded(d):
            return None if d is None else {k: round(float(v), 4) for k, v in d.items()}

        return {
            "criterion": self.criterion, "recommended": self.recommended,
            "runner_up": self.runner_up, "margin": round(self.margin, 4),
            "margin_ci95": None if self.margin_ci95 is None else [round(v, 4) for v in
                                                                  self.margin_ci95],
            "n_boot": self.n_boot, "verdict": self.verdict(), "labelled_best": self.labelled_best,
            "n_clusters": self.n_clusters, "k_estimates": self.k_estimates,
            "n_images": self.n_images, "n_scored": self.n_scored, "budget_s": self.budget_s,
            "seed": self.seed, "unit": self.unit, "notes": self.notes,
            "candidates": [{
                "name": c.name, "kind": c.kind, "space": c.space, "description": c.description,
                "scores": rounded(c.scores),
                "ci95": None if c.ci95 is None else [round(v, 4) for v in c.ci95],
                "first_share": c.first_share, "truth": rounded(c.truth), "training": c.training,
            } for c in self.candidates],
        }

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically."""
        path = Path(path)
        with atomic_write(path) as handle:
            handle.write(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path: str | Path) -> Path:
        """A bar chart of the criterion (with its intervals) and, with labels, the accuracy."""
        cands = self.candidates
        ci = [c.ci95 if c.ci95 is not None else (c.scores[self.criterion],) * 2 for c in cands]
        truth = ([c.truth["clustering_accuracy"] for c in cands]
                 if cands[0].truth is not None else None)
        return plot_comparison([c.name for c in cands],
                               np.array([c.scores[self.criterion] for c in cands]),
                               np.array(ci), truth, self.criterion,
                               [c.name for c in cands].index(self.recommended), path,
                               f"umeta compare: {len(cands)} candidates, {self.n_scored} "
                               f"{self.unit}, "
                               f"k = {self.n_clusters}")


def basic_interval(point: np.ndarray, boot: np.ndarray) -> np.ndarray:
    """95% basic (reverse-percentile) bootstrap intervals, (C, 2), of estimates ``point`` (C,)
    from resampled estimates ``boot`` (B, C): ``2 * point - q97.5 .. 2 * point - q2.5``. Unlike
    the plain percentiles it corrects the resamples' bias (repeated images make clusters
    look more consistent than the images are).

    Examples
    --------
    >>> basic_interval(np.array([1.0]), np.array([[1.5], [1.5], [1.5]])).tolist()
    [[0.5, 0.5]]
    """
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return np.stack([2 * point - high, 2 * point - low], axis=-1)


def _as_images(images: Tensor | np.ndarray) -> Tensor:
    """Images (N, C, H, W) float in [0, 1] from (N, H, W) or (N, C, H, W), uint8 or float."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise UmetaError(f"umeta compare takes images (N, H, W) or (N, C, H, W) with C = 1 or "
                         f"3; got shape {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if not bool(torch.isfinite(x).all()):
        raise UmetaError("the images contain NaN or inf values; remove or repair them")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise UmetaError(f"image values must lie in [0, 1] (or be uint8); got "
                         f"{float(x.min()):.3g} .. {float(x.max()):.3g}")
    return x


def _encode_labels(labels, n: int, unit: str = "images") -> np.ndarray | None:
    if labels is None:
        return None
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise UmetaError(f"labels must be one per {unit[:-1]}: got {y.shape[0] if y.ndim else 0} "
                         f"label(s) of shape {y.shape} for {n} {unit}")
    return np.unique(y, return_inverse=True)[1]


def _criteria(criterion: str, criteria: Sequence[str]) -> tuple[str, ...]:
    """``criteria`` checked, with ``criterion`` (the one ranked by) first when missing."""
    for name in (criterion, *criteria):
        check_criterion(name)
    return tuple(criteria) if criterion in criteria else (criterion, *criteria)


def _scored_rows(n: int, max_samples: int, seed: int, unit: str,
                 notes: list[str]) -> Tensor:
    """Sorted indices (M,) of the samples scored: all ``n``, or a seeded subsample of
    ``max_samples`` (said in ``notes``)."""
    if n <= max_samples:
        return torch.arange(n)
    notes.append(f"scored on a seeded subsample of {max_samples} of the {n} {unit}")
    return seeded_subset(torch.arange(n), max_samples, seed)


def _describe(learner: Learner | None, cand: Candidate, data_kind: str = "images") -> str:
    if cand.kind == "raw":
        return ("raw pixels, the classical baseline" if data_kind == "images" else
                "raw values (missing ones median-imputed, columns z-scored), the classical "
                "baseline")
    cfg = learner.config
    where = (f"built-in {data_kind[:-1]} model" if cand.source == BUILTIN
             else f"checkpoint {cand.source}")
    if data_kind == "tables":
        return (f"{where}: {cfg.model.backbone}, meta-trained on past tables (data.dataset "
                f"{cfg.data.dataset!r})")
    what = (f"{cfg.learner.name} on {cfg.model.backbone}-{cfg.model.hidden}, "
            f"{cfg.tasks.builder} tasks")
    space = "" if cand.space == "embedding" else f", space {cand.space}"
    return f"{where}: {what} on {cfg.data.dataset}{space}"


def _load(cand: Candidate, device: torch.device, data_kind: str = "images") -> Learner:
    """The candidate's model; on a table, it must be a table model (and an image model on
    images)."""
    if cand.source == BUILTIN:  # "builtin" is the model as shipped, "builtin@SPACE" in SPACE
        return load_builtin(data_kind, device, None if cand.space == "embedding" else cand.space)
    learner = in_space(load_learner(cand.source, device), cand.space)
    if is_table_model(learner) != (data_kind == "tables"):
        model = "a table model" if is_table_model(learner) else "an image model"
        raise UmetaError(f"checkpoint {cand.source!r} is {model}; comparing {data_kind} needs "
                         f"{data_kind[:-1]} models")
    return learner


def _train(cand: Candidate, images: Tensor, source: str, budget_s: float, max_steps: int,
           seed: int, device: torch.device, run_dir: Path,
           progress: bool) -> tuple[Learner, dict]:
    """Meta-train ``cand``'s learner without labels on ``images`` (N, C, H, W) in [0, 1]."""
    data = ImageSet((images * 255).round().to(torch.uint8).cpu(),
                    torch.full((len(images),), -1, dtype=torch.long), [], None, source)
    cfg = compare_config(cand.source, source, len(images), budget_s, seed, device.type,
                         run_dir / cand.name, max_steps)
    result = train(cfg, progress=progress, train_data=data)
    return result.learner, {"steps": result.steps, "train_s": round(result.wall_s, 2),
                            "tasks": cfg.tasks.builder, "run_dir": str(result.run_dir)}


def compare_models(images: Tensor | np.ndarray, *, learners: Sequence[str] = LEARNER_CHOICES,
                   checkpoints: Sequence[str | Path] = (), n_clusters: int | None = None,
                   labels=None, budget_s: float = 60.0, max_steps: int = 1_000_000,
                   criterion: str = CRITERIA[0],
                   criteria: Sequence[str] = CRITERIA, n_views: int = 2, n_boot: int = 50,
                   max_samples: int = 2000, image_size: int = IMAGE_SIZE,
                   k_range: tuple[int, int] = (2, 10), invert: bool | None = None,
                   seed: int = 0, device: str = "auto", run_dir: str | Path | None = None,
                   source: str = "images", progress: bool = False) -> Comparison:
    """Compare meta-learners, models and embedding spaces on one unlabeled image set.

    Parameters
    ----------
    images : Tensor or ndarray of shape (N, H, W) or (N, C, H, W), C in {1, 3}
        uint8, or float in [0, 1]; any polarity (converted to light ink on a dark background,
        detected unless ``invert`` says).
    learners : names of :data:`LEARNER_CHOICES`
        Meta-trained without labels on ``images`` for ``budget_s`` seconds each (same seed).
    checkpoints : paths, ``"builtin"`` or ``"none"`` (the raw pixels); ``"X@SPACE"`` embeds in
        another space of `umeta.adapt.layers.in_space` (e.g. ``"builtin@block2"``).
    n_clusters : int or None
        k of every clustering; None: the median of the candidates' silhouette estimates over
        ``k_range`` (`umeta.numeric.estimate_n_clusters`).
    labels : array-like of shape (N,), optional
        For scoring only (clustering accuracy, NMI, ARI); never used by the criterion.
    budget_s : float
        Training seconds of each learner (> 0).
    max_steps : int
        Steps after which a learner stops before its budget runs out (a budget alone buys a
        number of steps that depends on the machine; this makes a run repeatable).
    criterion : one of `umeta.adapt.selection.CRITERIA`
        What the recommendation ranks by (``criteria`` must hold it).
    criteria : the label-free criteria to compute and show.
    n_views : int
        Augmented views of every image for ``consistency`` and ``retrieval``.
    n_boot : int
        Resamples of the images for the uncertainty (0: none).
    max_samples : int
        The images are scored on a seeded subsample of at most this many (all are trained on).
    image_size : int
        Side of the images the learners are trained on (their channels are the data's).
    k_range : (int, int)
    invert : bool or None
    seed : int
        Of the training, the views, the clusterings and the resamples.
    device : "auto", "cpu", "cuda" or "cuda:N"
    run_dir : str or Path, optional
        Keep each trained learner's run (checkpoints) in ``run_dir/<learner>``; None trains in a
        temporary folder that is removed.
    source : str
        Where the images came from (recorded in the trained checkpoints' configs).
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> import torch
    >>> from umeta.compare import compare_models
    >>> gen = torch.Generator().manual_seed(0)
    >>> blobs = torch.zeros(30, 1, 16, 16)
    >>> for i in range(30):                   # three classes: a square in one of three places
    ...     r = 1 + 5 * (i % 3)
    ...     blobs[i, 0, r:r + 3, r:r + 3] = 0.6 + 0.4 * torch.rand(3, 3, generator=gen)
    >>> result = compare_models(blobs, learners=["protonet"], checkpoints=["none"],
    ...                         n_clusters=3, labels=torch.arange(30) % 3, max_steps=5,
    ...                         image_size=16, n_boot=5, device="cpu")
    >>> [c.name for c in result.candidates], result.criterion
    (['protonet', 'pixels'], 'consistency')
    >>> result.result("pixels").truth["clustering_accuracy"]
    100.0
    """
    check_params({"budget_s": budget_s, "max_steps": max_steps, "n_clusters": n_clusters,
                  "k_range": tuple(k_range), "n_views": n_views, "n_boot": n_boot,
                  "max_samples": max_samples, "image_size": image_size}, COMPARE_LIMITS)
    check_seed(seed)
    criteria = _criteria(criterion, criteria)
    cands = parse_candidates(learners, checkpoints)
    x = _as_images(images)
    y = _encode_labels(labels, len(x))
    if n_clusters is not None:
        check_cluster_count(n_clusters, len(x))
    dev = resolve_device(device)
    base = convert_images(x, tuple(x.shape[1:]), invert=invert)  # light ink on dark
    notes = [f"images {'inverted' if base.inverted else 'not inverted'} to light ink on a dark "
             f"background (border median {base.background:.2f}"
             f"{'' if invert is None else ', as asked'})"]
    scored = _scored_rows(len(x), max_samples, seed, "images", notes)
    views = augmented_views(base.images[scored], n_views, seed)  # (R, M, C, H, W)
    train_shape = (x.shape[1], image_size, image_size)
    train_images = None
    features: dict[str, CandidateFeatures] = {}
    described: dict[str, tuple[str, dict | None]] = {}
    with contextlib.ExitStack() as stack:
        runs = Path(run_dir) if run_dir is not None else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="umeta-compare-")))
        for cand in cands:
            start = time.perf_counter()
            training = None
            if cand.kind == "raw":
                learner, shape = None, tuple(x.shape[1:])
            elif cand.kind == "trained":
                if train_images is None:
                    train_images = convert_images(base.images, train_shape, invert=False).images
                learner, training = _train(cand, train_images, source, budget_s, max_steps,
                                           seed, dev, runs, progress)
                shape = train_shape
                if run_dir is None:
                    training["run_dir"] = None  # removed with the temporary folder
            else:
                learner = _load(cand, dev)
                shape = tuple(learner.image_shape)

            def embed(batch: Tensor) -> Tensor:
                if batch.shape[1:] != shape:
                    batch = convert_images(batch, shape, invert=False).images
                return embed_inputs(learner, batch.to(dev), normalize=learner is not None,
                                    progress=progress).cpu()

            features[cand.name] = CandidateFeatures(
                embed(base.images[scored]), torch.stack([embed(v) for v in views]),
                learned=learner is not None)
            what = _describe(learner, cand) if cand.kind != "trained" else (
                f"{cand.source} meta-trained without labels on these images "
                f"({training['tasks']} tasks, {training['steps']} steps in "
                f"{training['train_s']:.0f} s)")
            if training is not None:
                training["total_s"] = round(time.perf_counter() - start, 2)
            described[cand.name] = (what, training)
    return _rank(cands, features, described, y, scored, len(x), n_clusters, k_range,
                 criterion, criteria, n_boot, seed, notes, float(budget_s), "images")


def compare_table_models(table: Tensor | np.ndarray, *,
                         checkpoints: Sequence[str | Path] = (BUILTIN, PIXELS),
                         n_clusters: int | None = None, labels=None,
                         criterion: str = TABLE_CRITERION, criteria: Sequence[str] = CRITERIA,
                         n_views: int = 2, n_boot: int = 50, max_samples: int = 2000,
                         k_range: tuple[int, int] = (2, 10), seed: int = 0,
                         device: str = "auto") -> Comparison:
    """Compare table models (and the raw values) on one table, without labels.

    Parameters
    ----------
    table : Tensor or ndarray of shape (N, D)
        Numbers, NaN for missing values, any scale (`umeta.adapt.table_inputs` checks it).
    checkpoints : table model files, ``"builtin"`` (the built-in table model) or ``"none"``
        (the raw values, median-imputed and z-scored).
    n_clusters, labels, criterion, criteria, n_boot, k_range, seed, device :
        As in :func:`compare_models`; ``criterion`` defaults to :data:`TABLE_CRITERION`.
    n_views : int
        Views of the table with a share of its cells hidden (`umeta.adapt.selection.masked_views`),
        for ``consistency`` and ``retrieval``; each model reads each view as a new table.
    max_samples : int
        Rows scored (a seeded subsample of a longer table; every model reads the whole table).

    Returns
    -------
    Comparison
        With ``unit == "rows"`` and ``budget_s == 0`` (nothing is trained).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(6, 1, (40, 3))])
    >>> result = compare_table_models(x, checkpoints=["none", "builtin"], n_clusters=2,
    ...                               n_boot=0, device="cpu")
    >>> [c.name for c in result.candidates], result.criterion
    (['values', 'builtin'], 'stability')
    """
    check_params({"n_clusters": n_clusters, "k_range": tuple(k_range), "n_views": n_views,
                  "n_boot": n_boot, "max_samples": max_samples}, COMPARE_LIMITS)
    check_seed(seed)
    criteria = _criteria(criterion, criteria)
    cands = parse_candidates((), checkpoints, "tables")
    x = table_inputs(table, min_samples=4)
    y = _encode_labels(labels, len(x), "rows")
    if n_clusters is not None:
        check_cluster_count(n_clusters, len(x))
    dev = resolve_device(device)
    notes: list[str] = []
    scored = _scored_rows(len(x), max_samples, seed, "rows", notes)
    views = masked_views(x, n_views, seed)  # (R, N, D)
    features: dict[str, CandidateFeatures] = {}
    described: dict[str, tuple[str, dict | None]] = {}
    for cand in cands:
        learner = None if cand.kind == "raw" else _load(cand, dev, "tables")
        # beyond the clusters it trained on, a model's table is clustered on its values, as
        # `umeta cluster` clusters it (MetaClusterer.space_)
        values = learner is not None and learner.clusters_on_values(n_clusters)

        def embed(t: Tensor) -> Tensor:
            if learner is None:
                return standardize_columns(t).float()[scored]
            t = t.to(dev)
            z, _, context = learner.encode_table(t, seed=seed)
            return (learner.standard_values(t, context).float() if values else z).cpu()[scored]

        features[cand.name] = CandidateFeatures(embed(x), torch.stack([embed(v) for v in views]),
                                                learned=learner is not None and not values)
        what = _describe(learner, cand, "tables")
        if values:
            what += (f"; on its standardised values, as umeta cluster does beyond the "
                     f"{learner.trained_clusters} clusters it trained on")
        described[cand.name] = (what, None)
    return _rank(cands, features, described, y, scored, len(x), n_clusters, k_range,
                 criterion, criteria, n_boot, seed, notes, 0.0, "rows")


def _rank(cands: list[Candidate], features: dict[str, CandidateFeatures],
          described: dict[str, tuple[str, dict | None]], y: np.ndarray | None, scored: Tensor,
          n_given: int, n_clusters: int | None, k_range: tuple[int, int], criterion: str,
          criteria: Sequence[str], n_boot: int, seed: int, notes: list[str], budget_s: float,
          unit: str) -> Comparison:
    """Score every candidate's ``features`` of the ``scored`` samples by each criterion, rank
    them by ``criterion`` with a bootstrap over the samples, and assemble the `Comparison`
    (``y``, labels of all ``n_given`` samples or None, for scoring only)."""
    k_estimates = None
    if n_clusters is None:
        k_range = search_range(k_range, len(scored))
        k_estimates = {name: estimate_n_clusters(f.feats, k_range, seed=seed)
                       for name, f in features.items()}
        n_clusters = int(np.median(list(k_estimates.values())))
    scores, partitions = score_candidates(features, n_clusters, criteria=criteria, seed=seed)
    names = [c.name for c in cands]
    point = np.array([scores[n][criterion] for n in names])
    order = np.argsort(-point, kind="stable")
    best, runner = names[order[0]], names[order[1]]
    margin_ci = ci = share = None
    if n_boot:
        boot = bootstrap_scores(features, n_clusters, criterion, n_boot, seed=seed)
        ci = basic_interval(point, boot)
        share = np.bincount(boot.argmax(1), minlength=len(names)) / n_boot
        gap = point[order[0]] - point[order[1]]
        low, high = basic_interval(np.array([gap]), boot[:, order[:1]] - boot[:, order[1:2]])[0]
        margin_ci = (float(low), float(high))
    truth_y = None if y is None else y[scored.numpy()]
    results = []
    for i, cand in enumerate(cands):
        truth = None
        if truth_y is not None:
            truth = clustering_scores(truth_y, partitions[cand.name])
            truth["clustering_accuracy"] *= 100.0
        what, training = described[cand.name]
        results.append(CandidateResult(
            cand.name, cand.kind, cand.space, what, scores[cand.name],
            None if ci is None else (float(ci[i, 0]), float(ci[i, 1])),
            None if share is None else float(share[i]), truth, training,
            partitions[cand.name]))
    labelled_best = None
    if truth_y is not None:
        labelled_best = max(results, key=lambda r: r.truth["clustering_accuracy"]).name
    return Comparison(results, criterion, best, runner, float(point[order[0]] - point[order[1]]),
                      margin_ci, n_boot, n_clusters, k_estimates, n_given, len(scored),
                      labelled_best, notes, budget_s, seed, unit)


__all__ = ["COMPARE_LIMITS", "CONFIDENT_SHARE", "IMAGE_SIZE", "LEARNER_CHOICES", "PIXELS",
           "RAW_NAMES", "TABLE_CRITERION", "Candidate", "CandidateResult", "Comparison",
           "basic_interval", "compare_models", "compare_table_models", "parse_candidates"]
