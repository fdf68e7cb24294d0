"""AdaBN (Li et al. 2016): BatchNorm statistics re-estimated on new, unlabeled images.

A meta-trained model normalises every layer with the running mean and variance of its training
images. On images from another domain those statistics are off; AdaBN replaces them with the
statistics of the new images, layer by layer, and changes no weight. :func:`adabn` does it for
one collection (a copy of the learner; each layer's mean is the exact mean over all the images,
its variance the size-weighted mean of the batches' variances); :func:`adabn_task_features`
does it for each clustering task on its own images and returns the features. Only the BatchNorm layers that the embedding passes through are
re-estimated; others (e.g. PsCo's momentum branch) keep theirs.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from umeta.adapt.embed import as_images, model_device
from umeta.errors import UmetaError
from umeta.learners.base import Learner

_BatchNorm = nn.modules.batchnorm._BatchNorm


def _as_float(images: Tensor, device: torch.device) -> Tensor:
    x = torch.as_tensor(images).to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _norm_layers(learner: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers with running statistics; raises `UmetaError` if there are none."""
    layers = [m for m in learner.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers:
        raise UmetaError(f"AdaBN needs BatchNorm layers with running statistics; "
                         f"{type(learner).__name__} has none (e.g. MAML normalises each batch "
                         f"by itself already)")
    return layers


@torch.no_grad()
def _reestimate(learner: Learner, layers: list[_BatchNorm], saved: list[dict], x: Tensor,
                batch_size: int) -> None:
    """Set ``layers`` (of ``learner``) to the statistics of ``x`` under ``learner.embedding``;
    layers the embedding does not reach get ``saved`` back."""
    visited: set[int] = set()
    hooks = [m.register_forward_pre_hook(lambda mod, _: visited.add(id(mod))) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.train()
    try:
        seen = 0
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size]
            seen += len(batch)
            for m in layers:  # weight each batch by its size: the running mean is exact
                m.momentum = len(batch) / seen
            learner.embedding(batch)
    finally:
        for h in hooks:
            h.remove()
        for m, state in zip(layers, saved):
            m.eval()
            m.momentum = state["momentum"]
            if id(m) not in visited:
                m.load_state_dict(state["buffers"])


def _snapshot(layers: list[_BatchNorm]) -> list[dict]:
    return [{"momentum": m.momentum, "buffers": copy.deepcopy(m.state_dict())} for m in layers]


def adabn(learner: Learner, images: Tensor, *, batch_size: int = 256) -> Learner:
    """A copy of ``learner`` whose BatchNorm statistics are those of ``images``.

    Parameters
    ----------
    learner : Learner
        Its BatchNorm layers must keep running statistics (ProtoNets, PsCo; not MAML's).
    images : Tensor of shape (N, C, H, W)
        uint8, or float in [0, 1]; N >= 2.
    batch_size : int
        Images per forward pass. Each layer's new mean is the mean over all images; its
        variance the size-weighted mean of the batches' (unbiased) variances; while they are
        gathered each layer normalises a batch by that batch's statistics, so larger batches
        are closer to the statistics of the whole set.

    Returns
    -------
    Learner
        The copy, in eval mode, on the learner's device; the caller's learner is unchanged.
    """
    _norm_layers(learner)
    x = as_images(_as_float(images, model_device(learner, torch.device("cpu"))),
                  learner.image_shape)
    if len(x) < 2:
        raise UmetaError(f"AdaBN needs at least 2 images to estimate statistics; got {len(x)}")
    tuned = copy.deepcopy(learner).eval()
    tuned_layers = _norm_layers(tuned)
    _reestimate(tuned, tuned_layers, _snapshot(tuned_layers), x, batch_size)
    return tuned


def adabn_task_features(learner: Learner, images: Tensor, batch_size: int = 1024) -> Tensor:
    """Each task's features under the learner with BatchNorm statistics of that task's images.

    Parameters
    ----------
    learner : Learner
    images : Tensor of shape (T, M, C, H, W)
        uint8 or float in [0, 1]; each task's statistics come from its M images (one batch).
    batch_size : int
        Images per forward pass when embedding.

    Returns
    -------
    Tensor of shape (T, M, D), on the learner's device
    """
    if images.dim() != 5 or images.shape[1] < 2:
        raise UmetaError(f"adabn_task_features takes tasks of at least 2 images (T, M, C, H, W); "
                         f"got shape {tuple(images.shape)}")
    tuned = copy.deepcopy(learner).eval()
    layers = _norm_layers(tuned)
    saved = _snapshot(layers)
    device = model_device(learner, images.device)
    as_images(images[0], learner.image_shape)
    out = []
    for task in images:
        x = _as_float(task, device)
        _reestimate(tuned, layers, saved, x, len(x))
        out.append(tuned.embed(x, batch_size=batch_size))
    return torch.stack(out)
