"""Episodic evaluation: N-way K-shot accuracy over many test episodes, mean +- 95% CI."""

from __future__ import annotations

import torch
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.metrics import mean_ci95
from umeta.numeric.random import check_seed
from umeta.progress import progress_bar
from umeta.results import result_row
from umeta.tasks.sampler import EpisodeSampler

DEFAULT_SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (20, 1), (20, 5))


def episode_accuracies(learner: Learner, sampler: EpisodeSampler, n_tasks: int,
                       batch_size: int = 100, bar=None) -> Tensor:
    """Query accuracy of each of ``n_tasks`` sampled episodes, shape (n_tasks,), on the CPU;
    ``bar`` (a `umeta.progress.progress_bar`) is advanced by the episodes done."""
    was_training = learner.training
    learner.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, n_tasks, batch_size):
                episode = sampler.sample(min(batch_size, n_tasks - start))
                logits = learner(episode)
                out.append((logits.argmax(-1) == episode.query_y).float().mean(1))
                if bar is not None:
                    bar.update(len(logits))
    finally:
        learner.train(was_training)
    return torch.cat(out).cpu()


def parse_settings(text: str) -> list[tuple[int, int]]:
    """``"5w1s,20w5s"`` -> ``[(5, 1), (20, 5)]``."""
    settings = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            way, shot = item.rstrip("s").split("w")
            settings.append((int(way), int(shot)))
        except ValueError:
            raise UmetaError(f"bad setting {item!r}: write N-way K-shot as e.g. 5w1s") from None
    return settings


def supported_ways(learner: Learner) -> int | None:
    """The one n_way a learner with a fixed-size head supports (MAML), or None for any."""
    return getattr(learner, "n_way", None)


def set_transductive_steps(learner: Learner, steps: int) -> None:
    """Refine prototypes with each episode's unlabeled queries for ``steps`` soft k-means steps.

    0 is the inductive rule. Only prototype learners (ProtoNets, PsCo) have the transductive
    rule; asking another learner for steps > 0 raises `UmetaError`.
    """
    if steps < 0:
        raise UmetaError(f"transductive steps must be 0 or more; got {steps}")
    if not hasattr(learner, "transductive_steps"):
        if steps:
            raise UmetaError(f"{type(learner).__name__} has no transductive evaluation; "
                             f"use transductive steps 0 (prototype learners only)")
        return
    learner.transductive_steps = int(steps)


def evaluate_fewshot(learner: Learner, data: ImageSet, settings=DEFAULT_SETTINGS, *,
                     n_tasks: int = 2000, q_query: int = 15, seed: int = 0, batch_size: int = 100,
                     method: str = "umeta", training: str = "supervised",
                     progress: bool = False) -> list[dict]:
    """Accuracy (percent) +- 95% CI over ``n_tasks`` episodes for each (N, K) in ``settings``.

    Settings a fixed-head learner cannot do (a 5-way MAML asked for 20-way) raise `UmetaError`.
    Returns rows in the results format of BENCHMARKS.md; each records the learner's
    ``transductive_steps`` (0, the inductive rule, for learners without one). ``progress``
    shows one bar over all settings' episodes, with its ETA.
    """
    check_seed(seed)
    fixed = supported_ways(learner)
    for n_way, _ in settings:
        if fixed is not None and n_way != fixed:
            raise UmetaError(f"this learner was meta-trained {fixed}-way and cannot run {n_way}-way "
                             f"episodes; evaluate with --settings {fixed}w1s,{fixed}w5s")
    rows = []
    bar = progress_bar(len(settings) * n_tasks, desc="eval", unit="episode", enabled=progress)
    for n_way, k_shot in settings:
        bar.set_postfix(setting=f"{n_way}w{k_shot}s")
        sampler = EpisodeSampler(data, n_way, k_shot, q_query, seed=seed + 1000 * n_way + k_shot)
        acc = episode_accuracies(learner, sampler, n_tasks, batch_size, bar)
        mean, ci = mean_ci95(acc.numpy() * 100.0)
        rows.append(result_row(method, training, f"{n_way}w{k_shot}s", "accuracy", mean, ci, n_tasks,
                               q_query=q_query,
                               transductive_steps=getattr(learner, "transductive_steps", 0)))
    bar.close()
    return rows
