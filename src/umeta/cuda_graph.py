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
float32 rounding for ProtoNets, for first- and second-order MAML and for PsCo, whose step also
moves its momentum network and queue in place (tests/test_cuda_graph.py). The measured speed-ups
are in docs/benchmarks.md (B3 and the PsCo schedules).
With cuDNN's default TF32 convolutions the two may pick other algorithms and round differently, which Adam then
amplifies over steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Generic, Iterable, TypeVar

import torch
from torch import Tensor

from umeta.errors import UmetaError

Batch = TypeVar("Batch")  # a dataclass of tensors and numbers: an `Episode`, a `ViewBatch`
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


def _fields(batch: Any) -> dict[str, Any]:
    return {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}


def _static_copy(batch: Batch) -> Batch:
    """``batch`` with every tensor field cloned (the graph's input buffers)."""
    return dataclasses.replace(batch, **{name: value.clone() for name, value in
                                         _fields(batch).items() if isinstance(value, Tensor)})


class CapturedStep(Generic[Batch, Out]):
    """Call ``step(batch)`` like the eager step it wraps; from the ``WARMUP_STEPS + 1``-th call
    on, the call copies ``batch`` into static buffers and replays the recorded graph.

    Parameters
    ----------
    step : callable
        One whole training step on a batch (an `Episode`, or PsCo's `ViewBatch`: a dataclass
        of tensors and numbers), returning tensors (e.g. its `MetaLoss`); it zeroes the
        gradients with ``set_to_none=True`` itself, before its backward pass.
    device : torch.device
        A CUDA device.

    Notes
    -----
    Every call is a real training step, warm-up and capture included (the capturing call
    replays the graph it has just recorded). All batches must have the shapes (and the numbers,
    such as ``n_way``) of the first.
    """

    def __init__(self, step: Callable[[Batch], Out], device: torch.device) -> None:
        if device.type != "cuda":
            raise UmetaError("run.cuda_graph needs a CUDA device; set run.cuda_graph=false on CPU")
        self.step, self.device = step, device
        self.warmup_stream = torch.cuda.Stream(device)  # eager steps before capture run here
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_batch: Batch | None = None
        self.static_out: Out | None = None

    def _copy_in(self, batch: Batch) -> None:
        """Copy ``batch``'s tensors into the static buffers, after checking it fits them."""
        static, new = _fields(self.static_batch), _fields(batch)
        for name, value in new.items():
            old = static[name]
            if isinstance(value, Tensor):
                if value.shape != old.shape:
                    raise UmetaError(f"a CUDA-graph step needs batches of one shape; {name} "
                                     f"changed from {tuple(old.shape)} to {tuple(value.shape)}")
            elif value != old:
                raise UmetaError(f"a CUDA-graph step needs batches of one kind; {name} changed "
                                 f"from {old} to {value}")
        for name, value in new.items():  # only once all fit: no half-copied batch
            if isinstance(value, Tensor):
                static[name].copy_(value)

    def __call__(self, batch: Batch) -> Out:
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
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.static_out = self.step(self.static_batch)
        except RuntimeError as err:  # e.g. the step reads a GPU value on the host
            raise UmetaError(f"this training step cannot be recorded as a CUDA graph "
                             f"({str(err).splitlines()[0]}); set run.cuda_graph=false") from err
        self.graph = graph
        self.graph.replay()  # capture records without running: this call's step runs now
        return self.static_out


__all__ = ["CapturedStep", "WARMUP_STEPS", "capturable_adam", "tensor_learning_rates"]
