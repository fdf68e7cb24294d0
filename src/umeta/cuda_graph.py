"""A whole meta-training step recorded once as a CUDA graph and replayed for every later batch.

A Conv4 step on Omniglot-sized episodes is hundreds of small kernels (MAML's inner loop and its
second-order backward many more), so on a GPU the time goes to launching them from Python, not
to running them. A CUDA graph launches the recorded kernels in one call. The step function (the
forward pass, backward pass, gradient clipping and optimizer step) must then be free of host
synchronisation and keep every shape fixed; the batch is copied into static buffers before each
replay and the loss comes back in static tensors that the next replay overwrites.

The optimizer must be made for capture: ``capturable=True`` and a tensor learning rate (see
:func:`capturable_adam`), so that a learning-rate schedule, which fills that tensor in place
between replays, still takes effect.

A replay computes the same function as the eager step: with TF32 off, losses and weights agree to
float32 rounding for ProtoNets and for first- and second-order MAML (tests/test_cuda_graph.py,
run on an H200). With cuDNN's default TF32 convolutions the two may pick other algorithms and
round differently, which Adam then amplifies over steps.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterable, TypeVar

import torch
from torch import Tensor

from umeta.errors import UmetaError
from umeta.tasks.episode import Episode

Out = TypeVar("Out")  # what the step returns: tensors (a `MetaLoss`, a loss)

#: Eager steps before capture: the first ones create Adam's state and pick cuDNN kernels.
WARMUP_STEPS = 3


def capturable_adam(params: Iterable[Tensor], lr: float, weight_decay: float,
                    device: torch.device) -> torch.optim.Adam:
    """Fused Adam whose step can be captured: ``capturable=True`` and a 0-d tensor ``lr``."""
    return torch.optim.Adam(params, lr=torch.tensor(float(lr), device=device),
                            weight_decay=weight_decay, fused=True, capturable=True)


def tensor_learning_rates(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Make every param group's ``lr`` a 0-d tensor on ``device`` (after ``load_state_dict``,
    which restores them as numbers); a captured step reads the tensor, never a number."""
    for group in optimizer.param_groups:
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)


def _static_copy(episode: Episode) -> Episode:
    return Episode(episode.support_x.clone(), episode.support_y.contiguous().clone(),
                   episode.query_x.clone(), episode.query_y.contiguous().clone(), episode.n_way)


class CapturedStep(Generic[Out]):
    """Call ``step(batch)`` like the eager step it wraps; from the ``WARMUP_STEPS + 1``-th call
    on, the call copies ``batch`` into static buffers and replays the recorded graph.

    Parameters
    ----------
    step : callable
        One whole training step on an `Episode`, returning tensors (e.g. its `MetaLoss`); it
        zeroes the gradients with ``set_to_none=True`` itself, before its backward pass.
    device : torch.device
        A CUDA device.

    Notes
    -----
    Every call is a real training step, warm-up and capture included (the capturing call
    replays the graph it has just recorded). All batches must have the shapes of the first.
    """

    def __init__(self, step: Callable[[Episode], Out], device: torch.device) -> None:
        if device.type != "cuda":
            raise UmetaError("run.cuda_graph needs a CUDA device; set run.cuda_graph=false on CPU")
        self.step, self.device = step, device
        self.warmup_stream = torch.cuda.Stream(device)  # eager steps before capture run here
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_batch: Episode | None = None
        self.static_out: Out | None = None

    def _check_shapes(self, batch: Episode) -> None:
        static = self.static_batch
        for name in ("support_x", "support_y", "query_x", "query_y"):
            if getattr(batch, name).shape != getattr(static, name).shape:
                raise UmetaError(f"a CUDA-graph step needs batches of one shape; {name} changed "
                                 f"from {tuple(getattr(static, name).shape)} to "
                                 f"{tuple(getattr(batch, name).shape)}")

    def _copy_in(self, batch: Episode) -> None:
        self._check_shapes(batch)
        for name in ("support_x", "support_y", "query_x", "query_y"):
            getattr(self.static_batch, name).copy_(getattr(batch, name))

    def __call__(self, batch: Episode) -> Out:
        self.calls += 1
        if self.graph is not None:
            self._copy_in(batch)
            self.graph.replay()
            return self.static_out
        if self.calls <= WARMUP_STEPS:
            side = self.warmup_stream
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                out = self.step(batch)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return out
        self.static_batch = _static_copy(batch)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self.step(self.static_batch)
        self.graph.replay()  # capture records without running: this call's step runs now
        return self.static_out


__all__ = ["CapturedStep", "WARMUP_STEPS", "capturable_adam", "tensor_learning_rates"]
