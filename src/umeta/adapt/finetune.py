"""Unsupervised fine-tuning on a new data set's own images before clustering or embedding it.

MAML-style test-time adaptation without labels: a copy of the meta-trained learner takes a few
gradient steps of the label-free objective on pseudo-episodes made from the new images alone.
The episodes come from the project's UMTRA builder (`umeta.tasks.umtra.UMTRA`: ``n_way`` random
images of the new data are the classes, augmented copies the queries) and the loss is the
learner's own :meth:`~umeta.learners.base.Learner.meta_loss`, so nothing here re-implements a
task builder, an augmentation or a loss. Labels never reach this module: its functions take
images only.

BatchNorm: the copy is fine-tuned in eval mode. The objective is then computed with exactly the
function that embeds the data afterwards (:meth:`Learner.embed` runs in eval mode), and the
running statistics that meta-training estimated from many images are neither used as batch
statistics nor overwritten by a handful of small pseudo-episodes; only the weights change.
Normalisation layers without running statistics (MAML's backbones) normalise every batch by its
own statistics in either mode.

It stays off by default: on the built-in glyph model it did not help (docs/adaptation.md has
the measurement and a likely reason).
"""

from __future__ import annotations

import copy
import math
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from umeta.adapt.embed import as_images, model_device
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.params import ParamError
from umeta.progress import progress_bar
from umeta.tasks.augment import Augment
from umeta.tasks.umtra import UMTRA

OPTIMIZERS = ("adam", "sgd")
#: Most fine-tuning steps: far past any use (a few to a few hundred steps are meant; 5 to 20
#: were measured), so that a mistyped count is an error instead of a run of days.
MAX_STEPS = 100_000
#: Pseudo-classes per episode when the learner does not say what it was meta-trained with.
DEFAULT_N_WAY = 20


def check_finetune_args(steps: int, lr: float, optimizer: str = "adam") -> None:
    """Raise `ParamError` (about ``steps`` or ``lr``) unless ``steps`` is a whole number in
    [0, `MAX_STEPS`] and ``lr`` > 0 (and finite); `UmetaError` unless ``optimizer`` is one of
    `OPTIMIZERS`."""
    if (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
            or not 0 <= steps <= MAX_STEPS):
        raise ParamError("steps", steps, f"fine-tuning steps must be a whole number >= 0 and at "
                                         f"most {MAX_STEPS} (0 turns it off); got {{setting}}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not (
            math.isfinite(lr) and lr > 0):
        raise ParamError("lr", lr, "the fine-tuning learning rate must be a number > 0, e.g. "
                                   "1e-4; got {setting}")
    if optimizer not in OPTIMIZERS:
        raise UmetaError(f"unknown fine-tuning optimizer {optimizer!r}; choose one of: "
                         f"{', '.join(OPTIMIZERS)}")


def _as_uint8(images: Tensor | np.ndarray, device: torch.device) -> Tensor:
    """The images as uint8 on ``device``; float images in [0, 1] are scaled by 255 and rounded
    (exact for images that were uint8, e.g. `ImageSet.float_images`)."""
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        return x.to(device)
    if not x.is_floating_point():
        raise UmetaError(f"fine-tuning takes uint8 images or float images in [0, 1]; got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise UmetaError("the images contain NaN or inf; remove or impute them")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise UmetaError(f"fine-tuning takes float images in [0, 1]; got values in "
                         f"[{float(x.min()):g}, {float(x.max()):g}]: scale the pixels first")
    return x.to(device).mul(255.0).round_().to(torch.uint8)


def _default_n_way(learner: Learner, n_images: int) -> int:
    """The ``n_way`` the learner was meta-trained with (else `DEFAULT_N_WAY`), at most
    ``n_images``."""
    tasks = getattr(getattr(learner, "config", None), "tasks", None)
    return min(int(getattr(tasks, "n_way", DEFAULT_N_WAY)), n_images)


def finetune(learner: Learner, images: Tensor | np.ndarray, *, steps: int = 10,
             lr: float = 1e-4, optimizer: str = "adam", n_way: int | None = None,
             k_shot: int = 1, q_query: int = 2, meta_batch: int = 2,
             query_augment: Augment | Mapping | None = None, seed: int = 0,
             progress: bool = False) -> Learner:
    """A copy of ``learner`` fine-tuned without labels on the images of one new data set.

    Each step draws ``meta_batch`` UMTRA pseudo-episodes from ``images`` (``n_way`` distinct
    images as classes; ``k_shot`` support and ``q_query`` augmented query copies of each) and
    takes one optimizer step on ``learner.meta_loss`` of them. The caller's learner is never
    changed. Same arguments and seed, same result.

    Parameters
    ----------
    learner : Learner
        A meta-trained learner whose ``meta_loss`` takes an `Episode` (ProtoNets, PsCo, MAML).
    images : Tensor or ndarray of shape (N, C, H, W)
        The new data's unlabeled images: uint8, or float in [0, 1] (quantised to uint8 for the
        task builder, which is exact for images that came from uint8).
    steps : int
        Gradient steps; 0 returns an unchanged copy.
    lr : float
        Step size (> 0). Small values (about 1e-5 to 1e-4 for Adam) keep the copy close to the
        meta-trained model.
    optimizer : {"adam", "sgd"}
        A fresh optimizer for the copy (plain SGD without momentum for "sgd").
    n_way : int or None
        Pseudo-classes per episode, ``2 <= n_way <= N``; None takes the ``n_way`` the learner
        was meta-trained with (``learner.config.tasks.n_way``, else 20), at most N.
    k_shot, q_query : int
        Support and query copies per pseudo-class (UMTRA's defaults: the image itself as the
        support, queries augmented).
    meta_batch : int
        Pseudo-episodes per step (2: a 20-way step sees 40 of the new images).
    query_augment : Augment or mapping, optional
        Makes the queries; default UMTRA's (`umeta.tasks.augment.UMTRA_OMNIGLOT`).
    seed : int
        Seeds the episode generator (on the learner's device).
    progress : bool
        Show a bar of the steps done.

    Returns
    -------
    Learner
        The fine-tuned copy, on the learner's device, in the learner's train/eval mode.

    Raises
    ------
    UmetaError
        For steps < 0, lr <= 0, an unknown optimizer, fewer than 2 images (or than ``n_way``),
        images that do not fit the learner, or a step that makes the weights non-finite.
    """
    *_, (_, tuned) = finetune_path(learner, images, (steps,), lr=lr, optimizer=optimizer,
                                   n_way=n_way, k_shot=k_shot, q_query=q_query,
                                   meta_batch=meta_batch, query_augment=query_augment, seed=seed,
                                   progress=progress)
    return tuned


def finetune_path(learner: Learner, images: Tensor | np.ndarray, steps: Sequence[int], *,
                  lr: float = 1e-4, optimizer: str = "adam", n_way: int | None = None,
                  k_shot: int = 1, q_query: int = 2, meta_batch: int = 2,
                  query_augment: Augment | Mapping | None = None, seed: int = 0,
                  progress: bool = False) -> Iterator[tuple[int, Learner]]:
    """The fine-tuned copy after each of several step counts, from one fine-tuning run.

    Yields ``(n, copy)`` for each ``n`` of ``sorted(set(steps))``; the copy after ``n`` steps
    equals ``finetune(learner, images, steps=n, ...)`` with the same other arguments (a run of
    ``n`` steps is the first ``n`` steps of a longer one), at the cost of the longest run only.
    The copy yielded is the one being trained: use it (or copy it) before asking for the next.
    The other arguments are those of :func:`finetune`, which this validates the same way.
    """
    steps = sorted(set(steps))
    if not steps:
        raise UmetaError("finetune_path needs at least one step count")
    for n in steps:
        check_finetune_args(n, lr, optimizer)
    if not isinstance(learner, Learner):
        raise UmetaError(f"fine-tuning needs a meta-trained Learner; got {type(learner).__name__}")
    if int(meta_batch) != meta_batch or meta_batch < 1:
        raise UmetaError(f"meta_batch must be a whole number >= 1; got {meta_batch}")
    device = model_device(learner, torch.device("cpu"))
    x = as_images(_as_uint8(images, device), learner.image_shape)
    if len(x) < 2:
        raise UmetaError(f"fine-tuning needs at least 2 images to form a pseudo-task (each image "
                         f"is a pseudo-class); got {len(x)}")
    n_way = _default_n_way(learner, len(x)) if n_way is None else n_way
    if n_way < 2:
        raise UmetaError(f"fine-tuning needs n_way >= 2 pseudo-classes per task; got {n_way}")
    return _run(learner, UMTRA(x, n_way, k_shot, q_query, seed=seed, query_augment=query_augment),
                steps, lr, optimizer, meta_batch, progress)


def _run(learner: Learner, source: UMTRA, steps: list[int], lr: float, optimizer: str,
         meta_batch: int, progress: bool) -> Iterator[tuple[int, Learner]]:
    """The training loop of :func:`finetune_path`, after its checks (which run eagerly)."""
    tuned = copy.deepcopy(learner)
    params = [p for p in tuned.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr))
    done = 0
    bar = progress_bar(steps[-1], desc="fine-tune", unit="step", enabled=progress)
    for n in steps:
        tuned.eval()  # BatchNorm keeps its meta-trained running statistics (module docstring)
        with torch.enable_grad():
            for _ in range(n - done):
                loss = tuned.meta_loss(source.sample(meta_batch)).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
        done = n
        if n == steps[-1]:
            bar.close()
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise UmetaError(f"fine-tuning diverged (non-finite weights after {n} steps at "
                             f"lr={lr:g}); lower the learning rate")
        yield n, tuned.train(learner.training)


def finetuned_embeddings(learner: Learner, images: Tensor, steps: Sequence[int], *,
                       lr: float = 1e-4, seed: int = 0, batch_size: int = 1024,
                       **options) -> dict[int, Tensor]:
    """Embeddings of every task's images under copies of ``learner`` fine-tuned on that task.

    Tasks are fine-tuned one after another in a Python loop (each needs its own weights and
    optimizer state; vectorising that over tasks with ``torch.func`` is not done). Task ``t``
    uses seed ``seed + t``, and one run per task (:func:`finetune_path`) gives the embeddings
    after every step count in ``steps``. 0 steps is the learner itself, embedding all tasks in
    one pass.

    Parameters
    ----------
    learner : Learner
    images : Tensor of shape (T, M, C, H, W)
        Each task's unlabeled images, float in [0, 1] or uint8.
    steps : sequence of int
        Step counts (>= 0) to report embeddings after.
    lr : see :func:`finetune`
    seed : int
    batch_size : int
        Images per forward pass when embedding.
    **options
        More arguments of :func:`finetune` (optimizer, n_way, k_shot, q_query, meta_batch,
        query_augment).

    Returns
    -------
    dict mapping each step count to a Tensor of shape (T, M, D), on the learner's device
    """
    if images.dim() != 5:
        raise UmetaError(f"finetuned_embeddings takes tasks of images (T, M, C, H, W); got shape "
                         f"{tuple(images.shape)}")
    for n in steps:
        check_finetune_args(n, lr, options.get("optimizer", "adam"))
    t, m = images.shape[:2]
    x = images.to(model_device(learner, images.device))
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    out = {}
    if 0 in steps:
        out[0] = learner.embed(x.flatten(0, 1), batch_size=batch_size).view(t, m, -1)
    tuned_steps = sorted({n for n in steps if n > 0})
    if tuned_steps:
        per_task: dict[int, list[Tensor]] = {n: [] for n in tuned_steps}
        for i in range(t):
            for n, tuned in finetune_path(learner, x[i], tuned_steps, lr=lr, seed=seed + i,
                                          **options):
                per_task[n].append(tuned.embed(x[i], batch_size=batch_size))
        out.update({n: torch.stack(feats) for n, feats in per_task.items()})
    return out
