"""How robust a meta-learned model is: few-shot and clustering accuracy under image corruptions
and under a small PGD attack, beside pixel baselines on the same tasks.

The model answers few-shot tasks with its own rule (``learner.predict(learner.adapt(support))``)
and clusters in its L2-normalised embedding (k-means++, 10 restarts); the baselines are a
nearest class-mean prototype on pixels and the same k-means on pixels. Every condition uses the
same seeded tasks:

- **corruptions** (`umeta.tasks.corruptions`, severities 1 .. 5; 0 is clean) damage every image
  of a task, support and queries alike, each image with its own seeded draw;
- **PGD** (:func:`pgd_attack`, L-inf radius ``eps`` in pixel values, ``steps`` signed-gradient
  steps of ``2.5 eps / steps`` from a random start) perturbs the few-shot queries (the support
  stays clean) and every image of a clustering task. The objective ``margin`` pushes each input
  across the nearest other prototype: for few-shot the class prototypes of the clean support and
  the true class; for clustering the centres of the method's own clean clustering and each
  sample's clean cluster (label-free), after which the attacked task is clustered afresh. The
  objective ``embedding`` pushes each embedding away from its clean one. Each method is attacked
  through its own gradients (white box).

The mean corruption error (:func:`mean_corruption_error`) is ImageNet-C's: per corruption the
model's errors summed over severities divided by the pixel baseline's, averaged over the
corruptions, with a 95% bootstrap interval over the tasks (all cells share the tasks).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.learners.protonet import class_prototypes
from umeta.metrics import clustering_accuracy, mean_ci95
from umeta.numeric.clustering import cluster_tasks
from umeta.numeric.distances import squared_distances
from umeta.numeric.random import check_seed, seeded_generator
from umeta.params import Interval, OneOf, check_params
from umeta.progress import progress_bar
from umeta.report import plot_robustness
from umeta.results import result_row, write_results
from umeta.tasks.clustering import sample_clustering_tasks
from umeta.tasks.corruptions import CORRUPTIONS, SEVERITIES, check_corruption, corrupt
from umeta.tasks.sampler import EpisodeSampler

#: PGD radii of the default attack curve (pixel values in [0, 1]: 2, 4, 8 and 16 / 255).
DEFAULT_EPS = (2 / 255, 4 / 255, 8 / 255, 16 / 255)
ATTACKS = ("margin", "embedding")
TASKS = ("fewshot", "clustering")
MODEL, PIXELS = "model", "pixels"
BOOTSTRAP = 2000
#: Limits of :func:`robustness_curves`' parameters.
ROBUSTNESS_LIMITS = {
    "n_tasks": [Interval(int, 2, None)],
    "attack_tasks": [Interval(int, 0, None)],
    "attack_steps": [Interval(int, 1, None)],
    "attack": [OneOf(*ATTACKS)],
    "n_way": [Interval(int, 2, None)],
    "k_shot": [Interval(int, 1, None)],
    "q_query": [Interval(int, 1, None)],
    "per_class": [Interval(int, 1, None)],
    "batch_tasks": [Interval(int, 1, None)],
}


# ----------------------------------------------------------------------------- PGD

def pgd_attack(x: Tensor, objective: Callable[[Tensor], Tensor], *, eps: float, steps: int,
               generator: torch.Generator, step_size: float | None = None) -> Tensor:
    """Projected gradient ascent of ``objective`` within an L-inf ball around ``x``.

    Parameters
    ----------
    x : Tensor of shape (B, ...), values in [0, 1]
    objective : maps inputs like ``x`` to per-sample losses (B,) (or any shape) to increase
    eps : float
        Radius: every value moves by at most ``eps``, and stays in [0, 1].
    steps : int
        Signed-gradient steps, from a uniform random start in the ball.
    generator : torch.Generator on ``x.device``
    step_size : float, optional
        Default ``2.5 * eps / steps`` (Madry et al. 2018).

    Returns
    -------
    Tensor like ``x``, detached.

    Examples
    --------
    >>> import torch
    >>> x = torch.full((1, 4), 0.5)
    >>> adv = pgd_attack(x, lambda z: z.sum(1), eps=0.1, steps=5,
    ...                  generator=torch.Generator().manual_seed(0))
    >>> [round(v, 3) for v in adv[0].tolist()]
    [0.6, 0.6, 0.6, 0.6]
    """
    if not eps > 0 or steps < 1:
        raise UmetaError(f"PGD needs eps > 0 and steps >= 1; got eps={eps}, steps={steps}")
    step = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    start = (2 * torch.rand(x.shape, device=x.device, generator=generator, dtype=x.dtype) - 1)
    adv = (x + eps * start).clamp(0.0, 1.0)
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(adv).sum(), adv)
        adv = adv.detach() + step * grad.sign()
        adv = torch.minimum(torch.maximum(adv, x - eps), x + eps).clamp(0.0, 1.0)
    return adv.detach()


def prototype_margin(scores: Tensor, reference: Tensor) -> Tensor:
    """How far each sample is across to the best other prototype: ``max_{j != a} s_j - s_a``.

    Parameters
    ----------
    scores : Tensor of shape (..., P)
        Higher means nearer (logits, minus squared distances).
    reference : Tensor of shape (...), int64
        The prototype ``a`` each sample belongs to.

    Returns
    -------
    Tensor of shape (...): positive once the sample is nearer another prototype.
    """
    own = scores.gather(-1, reference[..., None]).squeeze(-1)
    other = scores.scatter(-1, reference[..., None], -torch.inf).amax(-1)
    return other - own


# ----------------------------------------------------------------------------- methods

class PixelMethod:
    """The baselines: nearest class-mean prototype and k-means on raw pixels."""

    def features(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> pixels (B, C*H*W)."""
        return x.flatten(1)

    def fewshot(self, support_x: Tensor, support_y: Tensor,
                n_way: int) -> Callable[[Tensor], Tensor]:
        """Query images (T, Q, C, H, W) -> logits (T, Q, n_way): minus squared pixel distances
        to the class means of the support (T, S, C, H, W)."""
        prototypes = class_prototypes(support_x.flatten(2), support_y, n_way)
        return lambda query_x: -squared_distances(query_x.flatten(2), prototypes)


class LearnerMethod:
    """A meta-trained learner: its own few-shot rule, and its L2-normalised embedding."""

    def __init__(self, learner: Learner) -> None:
        self.learner = learner

    def features(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> unit-length embeddings (B, D)."""
        return F.normalize(self.learner.embedding(x), dim=-1)

    def fewshot(self, support_x: Tensor, support_y: Tensor,
                n_way: int) -> Callable[[Tensor], Tensor]:
        """Query images (T, Q, C, H, W) -> the learner's logits (T, Q, n_way) after adapting
        to the support (inductively)."""
        with torch.no_grad():
            state = self.learner.adapt(support_x, support_y, n_way)
        return lambda query_x: self.learner.predict(state, query_x)


# ----------------------------------------------------------------------------- results

def _cell_generator(seed: int, device: torch.device, *key) -> torch.Generator:
    """A generator of its own for each (task kind, condition, level) cell, so that a cell's draws
    do not depend on which other cells ran."""
    return seeded_generator((seed + zlib.crc32(repr(key).encode())) % 2**63, device)


def mean_corruption_error(model: np.ndarray, pixels: np.ndarray, *, seed: int = 0,
                          n_boot: int = BOOTSTRAP) -> tuple[np.ndarray, np.ndarray, float, float]:
    """ImageNet-C's corruption errors of a model relative to the pixel baseline.

    Parameters
    ----------
    model, pixels : ndarray of shape (n_corruptions, n_severities, n_tasks)
        Per-task error rates (percent), the same tasks in every cell.

    Returns
    -------
    (ce, ce_ci95, mce, mce_ci95)
        Per-corruption CE (n_corruptions,), ``100 * sum_s E_model / sum_s E_pixels`` in
        percent, their mean (the mCE), and the half-widths of their 95% bootstrap intervals
        over the tasks.

    Examples
    --------
    >>> import numpy as np
    >>> ce, _, mce, _ = mean_corruption_error(np.full((2, 5, 3), 10.0), np.full((2, 5, 3), 40.0))
    >>> ce.tolist(), mce
    ([25.0, 25.0], 25.0)
    """
    if model.shape != pixels.shape or model.ndim != 3:
        raise UmetaError(f"model and pixel errors must be (corruptions, severities, tasks) "
                         f"arrays of one shape; got {model.shape} and {pixels.shape}")

    def ce_of(m: np.ndarray, p: np.ndarray) -> np.ndarray:
        return 100.0 * m.sum(1) / np.maximum(p.sum(1), 1e-12)

    ce = ce_of(model.mean(-1), pixels.mean(-1))
    rng = np.random.default_rng(seed)
    draws = rng.integers(model.shape[-1], size=(n_boot, model.shape[-1]))
    boot = ce_of(model[..., draws].mean(-1), pixels[..., draws].mean(-1))  # (C, n_boot)
    low, high = np.percentile(np.concatenate([boot, boot.mean(0, keepdims=True)]), [2.5, 97.5],
                              axis=1)
    half = (high - low) / 2
    return ce, half[:-1], float(ce.mean()), float(half[-1])


@dataclass
class RobustnessCurves:
    """Per-task accuracies (percent) of every cell of :func:`robustness_curves`.

    Attributes
    ----------
    scores : dict
        ``(method, task, condition, level) -> ndarray (n_tasks,)``: method ``"model"`` or
        ``"pixels"``, task ``"fewshot"`` or ``"clustering"``, condition ``"clean"`` (level 0),
        a corruption (level = severity) or ``"pgd"`` (level = eps).
    settings : dict
        What was run: ``fewshot`` (``"5w1s"``), ``clustering`` (``"5x10"``), ``q_query``,
        ``corruptions``, ``severities``, ``eps``, ``attack``, ``attack_steps``, ``seed``.
    """

    scores: dict[tuple[str, str, str, float], np.ndarray] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def curve(self, method: str, task: str, condition: str) -> tuple[list, list, list]:
        """(levels, means, ci95s) of one curve, starting at the clean cell (level 0; for
        ``"pgd"`` the clean scores of the attacked tasks)."""
        pgd = condition == "pgd"
        levels = list(self.settings["eps"] if pgd else self.settings["severities"])
        curve = [self.scores[(method, task, condition, lv)] for lv in levels]
        clean = self.scores[(method, task, "clean", 0)]
        stats = [mean_ci95(v) for v in [clean[:len(curve[0])] if pgd and curve else clean] + curve]
        return [0] + levels, [m for m, _ in stats], [c for _, c in stats]

    def panels(self, model_name: str) -> dict[str, dict[str, tuple]]:
        """Every curve, for `umeta.report.plot_robustness`: condition -> {label: curve}."""
        s = self.settings
        labels = {(MODEL, "fewshot"): f"{s['fewshot']} few-shot, {model_name}",
                  (PIXELS, "fewshot"): f"{s['fewshot']} few-shot, nearest prototype on pixels",
                  (MODEL, "clustering"): f"{s['clustering']} clustering, {model_name}",
                  (PIXELS, "clustering"): f"{s['clustering']} clustering, k-means on pixels"}
        conditions = s["corruptions"] + (["pgd"] if s["eps"] else [])
        return {c: {label: self.curve(method, task, c) for (method, task), label in labels.items()}
                for c in conditions}

    def errors(self, method: str, task: str) -> np.ndarray:
        """Per-task errors (percent), (corruptions, severities, tasks)."""
        return np.stack([np.stack([100.0 - self.scores[(method, task, c, s)]
                                   for s in self.settings["severities"]])
                         for c in self.settings["corruptions"]])

    def rows(self, model_name: str, model_training: str) -> list[dict]:
        """Result rows (BENCHMARKS.md format): every cell's accuracy, then per task the model's
        CE per corruption (metric ``ce``) and its mCE (metric ``mce``), both relative to pixels."""
        s = self.settings
        names = {(MODEL, "fewshot"): model_name, (MODEL, "clustering"): model_name,
                 (PIXELS, "fewshot"): "nearest-prototype-pixels",
                 (PIXELS, "clustering"): "kmeans-pixels"}
        rows = []
        for (method, task, condition, level), values in self.scores.items():
            mean, ci = mean_ci95(values)
            extra = ({"corruption": "pgd", "eps": round(float(level), 6), "attack": s["attack"],
                      "attack_steps": s["attack_steps"]} if condition == "pgd"
                     else {"corruption": condition, "severity": int(level)})
            rows.append(result_row(names[method, task],
                                   model_training if method == MODEL else "none", s[task],
                                   "accuracy" if task == "fewshot" else "clustering_accuracy",
                                   mean, ci, len(values), **extra))
        if not s["corruptions"]:
            return rows
        for task in TASKS:
            ce, ce_ci, mce, ci = mean_corruption_error(self.errors(MODEL, task),
                                                       self.errors(PIXELS, task), seed=s["seed"])
            n = len(self.scores[(MODEL, task, "clean", 0)])
            rows += [result_row(model_name, model_training, s[task], "ce", value, half, n,
                                corruption=c, reference="pixels", severities=len(s["severities"]))
                     for c, value, half in zip(s["corruptions"], ce, ce_ci)]
            rows.append(result_row(model_name, model_training, s[task], "mce", mce, ci, n,
                                   reference="pixels", corruptions=len(s["corruptions"]),
                                   severities=len(s["severities"])))
        return rows


# ----------------------------------------------------------------------------- evaluation

def _fewshot_cell(method, support_x, support_y, query_x, query_y, n_way: int,
                  attack: Callable | None) -> np.ndarray:
    """Per-task query accuracy (percent) of one chunk; ``attack(method, logits_of, query_x,
    query_y)`` returns attacked queries."""
    logits_of = method.fewshot(support_x, support_y, n_way)
    if attack is not None:
        query_x = attack(method, logits_of, query_x, query_y)
    with torch.no_grad():
        hits = logits_of(query_x).argmax(-1) == query_y
    return 100.0 * hits.float().mean(1).cpu().numpy()


def _clusters(method, x: Tensor, n_way: int, seed: int):
    """k-means++ (10 restarts) of each task (T, M, C, H, W) in the method's features."""
    with torch.no_grad():
        feats = method.features(x.flatten(0, 1)).view(*x.shape[:2], -1)
    return feats, cluster_tasks(feats, n_way, n_init=10, seed=seed)


def _clustering_cell(method, x: Tensor, truth: np.ndarray, n_way: int, seed: int,
                     attack: Callable | None) -> np.ndarray:
    """Per-task clustering accuracy (percent) of one chunk of tasks (T, M, C, H, W)."""
    if attack is not None:
        x = attack(method, x, n_way, seed)
    labels = _clusters(method, x, n_way, seed)[1].labels.cpu().numpy()
    return np.array([100.0 * clustering_accuracy(t, p) for t, p in zip(truth, labels)])


def _flat_corrupt(x: Tensor, name: str, severity: int, gen: torch.Generator) -> Tensor:
    """:func:`corrupt` of images with leading axes (T, M, C, H, W)."""
    return corrupt(x.flatten(0, 1), name, severity, gen).view(x.shape)


def robustness_curves(learner: Learner, data: ImageSet, *,
                      corruptions: tuple[str, ...] = tuple(CORRUPTIONS),
                      severities: tuple[int, ...] = SEVERITIES,
                      eps: tuple[float, ...] = DEFAULT_EPS, attack: str = "margin",
                      attack_steps: int = 10, n_tasks: int = 300, attack_tasks: int = 100,
                      n_way: int = 5, k_shot: int = 1, q_query: int = 15, per_class: int = 10,
                      seed: int = 0, batch_tasks: int = 25,
                      progress: bool = False) -> RobustnessCurves:
    """Few-shot and clustering accuracy of ``learner`` and of the pixel baselines, clean, under
    each corruption and severity, and under PGD at each ``eps``, on the same seeded tasks.

    Parameters
    ----------
    learner : Learner
        Evaluated in eval mode on its device (``data`` is moved there).
    data : ImageSet
        Classes the learner never trained on (e.g. Omniglot's evaluation alphabets).
    corruptions : tuple of str
        Keys of `umeta.tasks.corruptions.CORRUPTIONS`.
    severities : tuple of int
        In 1 .. 5.
    eps : tuple of float
        PGD radii in (0, 1]; empty for no attack.
    attack : {"margin", "embedding"}
        The PGD objective (see the module's docstring).
    attack_steps : int
    n_tasks : int
        Tasks of each kind per cell.
    attack_tasks : int
        The first this many tasks are attacked (PGD costs ``2 * attack_steps`` passes).
    n_way, k_shot, q_query : int
        Few-shot episodes: ``n_way``-way ``k_shot``-shot with ``q_query`` queries per class.
    per_class : int
        Clustering tasks: ``n_way`` classes x ``per_class`` images, shuffled.
    seed : int
    batch_tasks : int
        Tasks per forward pass.
    progress : bool

    Returns
    -------
    RobustnessCurves
    """
    check_params({"n_tasks": n_tasks, "attack_tasks": attack_tasks, "attack_steps": attack_steps,
                  "attack": attack, "n_way": n_way, "k_shot": k_shot, "q_query": q_query,
                  "per_class": per_class, "batch_tasks": batch_tasks}, ROBUSTNESS_LIMITS)
    check_seed(seed)
    for name in corruptions:
        for severity in severities:
            check_corruption(name, severity)
            if severity == 0:
                raise UmetaError("severities are 1 .. 5; the clean cell (0) is always run")
    if len(set(severities)) != len(severities) or len(set(corruptions)) != len(corruptions):
        raise UmetaError("list each corruption and severity once")
    if any(not 0 < e <= 1 for e in eps):
        raise UmetaError(f"PGD radii must be in (0, 1] (pixel values); got {list(eps)}")
    attack_tasks = min(attack_tasks, n_tasks) if eps else 0
    eps = tuple(eps) if attack_tasks else ()
    device = next(iter(learner.parameters())).device
    data = data.to(device)
    sampler = EpisodeSampler(data, n_way, k_shot, q_query, seed=seed)
    support_idx, query_idx = sampler.sample_indices(n_tasks)
    support_y = torch.arange(n_way, device=device).repeat_interleave(k_shot).expand(n_tasks, -1)
    query_y = torch.arange(n_way, device=device).repeat_interleave(q_query).expand(n_tasks, -1)
    tasks = sample_clustering_tasks(data, n_way, per_class, n_tasks, seed=seed + 1)
    methods = {MODEL: LearnerMethod(learner), PIXELS: PixelMethod()}
    settings = {"fewshot": f"{n_way}w{k_shot}s", "clustering": f"{n_way}x{per_class}",
                "q_query": q_query, "corruptions": list(corruptions),
                "severities": list(severities), "eps": [float(e) for e in eps],
                "attack": attack, "attack_steps": attack_steps, "seed": seed}
    cells = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
    chunks = range(0, n_tasks, batch_tasks)
    attack_chunks = range(0, attack_tasks, batch_tasks)
    bar = progress_bar(2 * (len(cells) * len(chunks) + len(eps) * len(attack_chunks)),
                       desc="robustness", unit="chunk", enabled=progress)
    result = RobustnessCurves(settings=settings)
    was_training = learner.training
    learner.eval()
    try:
        for condition, level in cells:
            gens = {task: _cell_generator(seed, device, task, condition, level) for task in TASKS}
            parts: dict[tuple[str, str], list[np.ndarray]] = {}
            for start in chunks:
                stop = min(start + batch_tasks, n_tasks)
                sx = data.float_images(support_idx[start:stop])
                qx = data.float_images(query_idx[start:stop])
                cx = tasks.images[start:stop]
                if condition != "clean":
                    sx, qx, cx = (_flat_corrupt(v, condition, level, g) for v, g in
                                  ((sx, gens["fewshot"]), (qx, gens["fewshot"]),
                                   (cx, gens["clustering"])))
                for key, method in methods.items():
                    parts.setdefault((key, "fewshot"), []).append(_fewshot_cell(
                        method, sx, support_y[start:stop], qx, query_y[start:stop], n_way, None))
                    parts.setdefault((key, "clustering"), []).append(_clustering_cell(
                        method, cx, tasks.labels[start:stop], n_way, seed, None))
                    bar.update(1)
            for (key, task), values in parts.items():
                result.scores[(key, task, condition, level)] = np.concatenate(values)
        for radius in eps:
            _attack_cell(result, methods, data, support_idx, support_y, query_idx, query_y, tasks,
                         attack_chunks, attack_tasks, batch_tasks, n_way, float(radius), attack,
                         attack_steps, seed, bar)
    finally:
        bar.close()
        learner.train(was_training)
    return result


def _attack_cell(result, methods, data, support_idx, support_y, query_idx, query_y, tasks,
                 chunks, attack_tasks, batch_tasks, n_way, eps, objective, steps, seed, bar):
    """The PGD cells at radius ``eps`` of both tasks and both methods."""
    def attack_queries(method, logits_of, query_x, labels):
        if objective == "margin":
            def loss(q):
                return prototype_margin(logits_of(q), labels)
        else:
            clean = method.features(query_x.flatten(0, 1)).detach().view(*query_x.shape[:2], -1)

            def loss(q):
                return (method.features(q.flatten(0, 1)).view_as(clean) - clean).pow(2).sum(-1)
        return pgd_attack(query_x, loss, eps=eps, steps=steps, generator=gens["fewshot"])

    def attack_tasks_images(method, x, k, task_seed):
        feats, clean = _clusters(method, x, k, task_seed)

        def loss(v):
            z = method.features(v.flatten(0, 1)).view_as(feats)
            if objective == "margin":
                return prototype_margin(-squared_distances(z, clean.centers), clean.labels)
            return (z - feats).pow(2).sum(-1)
        return pgd_attack(x, loss, eps=eps, steps=steps, generator=gens["clustering"])

    gens = {task: _cell_generator(seed, data.device, task, "pgd", eps) for task in TASKS}
    parts: dict[tuple[str, str], list[np.ndarray]] = {}
    for start in chunks:
        stop = min(start + batch_tasks, attack_tasks)
        sx = data.float_images(support_idx[start:stop])
        qx = data.float_images(query_idx[start:stop])
        for key, method in methods.items():
            parts.setdefault((key, "fewshot"), []).append(_fewshot_cell(
                method, sx, support_y[start:stop], qx, query_y[start:stop], n_way,
                attack_queries))
            parts.setdefault((key, "clustering"), []).append(_clustering_cell(
                method, tasks.images[start:stop], tasks.labels[start:stop], n_way, seed,
                attack_tasks_images))
            bar.update(1)
    for (key, task), values in parts.items():
        result.scores[(key, task, "pgd", eps)] = np.concatenate(values)


# ----------------------------------------------------------------------------- reporting

def summary_lines(curves: RobustnessCurves, model_name: str) -> list[str]:
    """A printable table: per condition, each method's accuracy (averaged over the severities or
    radii), then the model's mCE per task."""
    s = curves.settings
    head = (f"{'condition':<16} {s['fewshot'] + ' ' + model_name:>22} {'pixels':>8}   "
            f"{s['clustering'] + ' ' + model_name:>22} {'pixels':>8}")
    lines = [head]
    for condition in ["clean"] + s["corruptions"] + (["pgd"] if s["eps"] else []):
        cells = [float(curves.scores[(method, task, "clean", 0)].mean()) if condition == "clean"
                 else float(np.mean(curves.curve(method, task, condition)[1][1:]))
                 for task in TASKS for method in (MODEL, PIXELS)]
        label = condition if condition != "pgd" else f"pgd ({s['attack']}, {s['attack_steps']} st)"
        lines.append(f"{label:<16} {cells[0]:>22.2f} {cells[1]:>8.2f}   {cells[2]:>22.2f} "
                     f"{cells[3]:>8.2f}")
    if s["corruptions"]:
        for task in TASKS:
            _, _, mce, ci = mean_corruption_error(curves.errors(MODEL, task),
                                                  curves.errors(PIXELS, task), seed=s["seed"])
            lines.append(f"mCE of {model_name} relative to pixels, {s[task]} {task}: "
                         f"{mce:.1f}% +- {ci:.1f} (below 100%: fewer errors under corruption)")
    return lines


def write_robustness(curves: RobustnessCurves, out: str | Path, figure: str | Path | None, *,
                     model_name: str, training: str, benchmark: str, device: torch.device | str,
                     wall_s: float, **extra) -> dict:
    """Write the results file (BENCHMARKS.md format: every cell, CE and mCE rows, the settings)
    and, unless ``figure`` is None, the curves as a PNG; returns the results document."""
    doc = write_results(out, benchmark, curves.rows(model_name, training), device=device,
                        wall_s=wall_s, seed=curves.settings["seed"],
                        settings={k: v for k, v in curves.settings.items() if k != "seed"},
                        **extra)
    if figure is not None:
        s = curves.settings
        plot_robustness(curves.panels(model_name), figure,
                        f"{model_name}: accuracy under corruptions and PGD ({s['attack']} "
                        f"objective, {s['attack_steps']} steps); mean +- 95% CI")
    return doc
