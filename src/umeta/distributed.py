"""Multi-process meta-training with ``torch.distributed`` (``torchrun --nproc_per_node N``).

Under ``torchrun`` (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set, ``WORLD_SIZE > 1``)
:func:`distributed_session` starts the process group (NCCL on CUDA, gloo on CPU) and puts each
rank on its own device (``cuda:LOCAL_RANK``); otherwise it yields a one-process `World` whose
methods do nothing, so a single-process run behaves as if this module did not exist.

How a step is shared (data parallel, every rank holds the whole model):

* ``optim.meta_batch`` is the global number of tasks per step; each rank samples
  ``meta_batch / world_size`` of them (:meth:`World.local_batch`) from its own task source,
  whose generator is seeded from ``run.seed`` and the rank (:func:`rank_seed`; rank 0 keeps
  ``run.seed`` itself).
* After ``backward`` the gradients of the trainable parameters are averaged over ranks with
  bucketed all-reduces (:meth:`World.average_gradients`). Every rank's loss is a mean over the
  same number of tasks, so the average is the gradient of the mean loss over all ranks' tasks:
  the step equals a one-process step over the union of the ranks' meta-batches (exactly, up to
  floating-point summation order), and the replicas stay identical. Explicit all-reduces rather
  than ``DistributedDataParallel`` because the learners call ``functional_call`` and ``vmap``
  on their own parameter dicts and PsCo updates buffers itself.
* BatchNorm normalises with the statistics of each rank's own batch and each rank keeps its own
  running statistics, as in ``DistributedDataParallel`` without ``SyncBatchNorm``; rank 0's are
  checkpointed and used for validation. (MAML normalises per task and has no running
  statistics, so it is unaffected.)
* PsCo all-gathers the momentum keys of every rank (:func:`all_gather_rows`): the Sinkhorn
  assignment of keys to the queue runs over the global batch, and every rank enqueues all the
  keys in rank order, so every rank holds the same queue and a step equals a one-process step
  over the union of the batches (apart from BatchNorm statistics in its MLP heads, per rank).
* Rank 0 alone writes the run directory (config, metrics, progress bar, checkpoints) and
  validates; the others wait at the next collective. Logged loss and accuracy are averages
  over ranks. Checkpoints hold every rank's generator states (:meth:`World.gather_rng_states`,
  rank ``r > 0`` under ``rank{r}.``) and the world size, so ``--resume`` with the same number
  of processes restores every rank's tasks exactly. All ranks read the checkpoint, so the run
  directory must be on a file system they share (one node, as with ``--nproc_per_node``).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from umeta.errors import UmetaError

#: Launcher variables that ``torchrun`` sets for every process.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

#: Gradients are all-reduced in flat buckets of at most this many bytes.
BUCKET_BYTES = 32 * 2**20

_RANK_KEY = re.compile(r"^rank\d+\.")


def rank_seed(seed: int, rank: int) -> int:
    """The task-sampling seed of ``rank``: ``seed`` itself for rank 0, else a derived 63-bit seed.

    Derived seeds come from `numpy.random.SeedSequence` with the rank as spawn key, so they are
    distinct for distinct ranks and unrelated to ``seed + 1`` and other nearby run seeds.
    """
    if rank == 0:
        return int(seed)
    words = np.random.SeedSequence(int(seed) % 2**64, spawn_key=(int(rank),)).generate_state(
        2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seed_task_source(source: Any, seed: int) -> None:
    """Re-seed a task source's ``generator`` (every umeta source has one) with ``seed``.

    Raises
    ------
    UmetaError
        If ``source`` has no ``torch.Generator`` attribute named ``generator``.
    """
    generator = getattr(source, "generator", None)
    if not isinstance(generator, torch.Generator):
        raise UmetaError(f"task source {type(source).__name__} has no torch.Generator attribute "
                         f"'generator', so each process cannot draw its own tasks; give it one")
    generator.manual_seed(int(seed))


def is_active() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """True unless this process is a ``torchrun`` rank other than 0 (for printing in the CLI)."""
    if is_active():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def all_gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """Every rank's ``x`` stacked in rank order, and the first row of this rank's part.

    Parameters
    ----------
    x : Tensor of shape (B, ...)
        The same shape on every rank. Not differentiable (use it under ``torch.no_grad``).

    Returns
    -------
    Tensor of shape (world_size * B, ...), and ``rank * B``. Outside a process group of more
    than one rank: ``x`` itself and 0.
    """
    if not is_active():
        return x, 0
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts), dist.get_rank() * len(x)


def _buckets(tensors: Sequence[Tensor], max_bytes: int) -> Iterator[list[Tensor]]:
    """Consecutive runs of tensors of one dtype and device, each at most ``max_bytes`` (or one)."""
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if bucket and (t.dtype != bucket[0].dtype or t.device != bucket[0].device
                       or size + nbytes > max_bytes):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
    if bucket:
        yield bucket


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1).

    Attributes
    ----------
    rank, size, local_rank : int
    device : torch.device
        Where this rank trains: ``cuda:local_rank`` on GPUs.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        """More than one process: collectives run."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, which writes the run directory, logs and validates."""
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where tensors for collectives live: this rank's GPU, else the CPU (gloo)."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def local_batch(self, meta_batch: int) -> int:
        """Tasks this rank samples per step: ``meta_batch / size``.

        Raises
        ------
        UmetaError
            If ``meta_batch`` is not a multiple of the number of processes.
        """
        if meta_batch % self.size:
            raise UmetaError(f"optim.meta_batch={meta_batch} (tasks per step over all processes) "
                             f"does not split evenly over {self.size} processes; use a multiple "
                             f"of {self.size}")
        return meta_batch // self.size

    def seed_tasks(self, source: Any, seed: int) -> None:
        """Give ranks other than 0 their own task stream (:func:`rank_seed`); rank 0 keeps its."""
        if self.rank:
            seed_task_source(source, rank_seed(seed, self.rank))

    @torch.no_grad()
    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if not self.enabled:
            return
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t, src=0)

    @torch.no_grad()
    def average_gradients(self, params: Sequence[Tensor], bucket_bytes: int = BUCKET_BYTES) -> None:
        """Replace the ``.grad`` of ``params`` by its mean over ranks (parameters without one are
        skipped; every rank runs the same graph, so the same ones have none everywhere).

        The gradients are copied into flat buckets of at most ``bucket_bytes``, all-reduced
        asynchronously (the buckets' transfers overlap), divided by the world size and copied
        back.
        """
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        pending = []
        for bucket in _buckets(grads, bucket_bytes):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            pending.append((dist.all_reduce(flat, async_op=True), flat, bucket))
        for work, flat, bucket in pending:
            work.wait()
            flat.div_(self.size)
            for g, piece in zip(bucket, flat.split([g.numel() for g in bucket])):
                g.copy_(piece.view_as(g))

    def mean(self, x: Tensor) -> Tensor:
        """The mean of ``x`` over ranks (a new tensor; ``x`` itself on one process)."""
        if not self.enabled:
            return x
        total = x.detach().clone()
        dist.all_reduce(total)
        return total / self.size

    def agree(self, ok: bool) -> bool:
        """Whether every rank says ``ok`` (a collective call; ``ok`` itself on one process)."""
        if not self.enabled:
            return ok
        return bool(self.mean(torch.tensor([float(ok)], device=self.comm_device)).item() == 1.0)

    def gather_rng_states(self, states: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every rank's generator states, for rank 0 to checkpoint (a collective call).

        Parameters
        ----------
        states : dict of str to Tensor (uint8)
            This rank's named generator states; the same names and sizes on every rank.

        Returns
        -------
        On rank 0: ``states`` and, for every rank ``r > 0``, its states under ``rank{r}.<name>``.
        On other ranks: an empty dict. On one process: ``states``.
        """
        if not self.enabled:
            return dict(states)
        out = dict(states) if self.is_main else {}
        for name in sorted(states):
            mine = states[name].to(self.comm_device)
            parts = [torch.empty_like(mine) for _ in range(self.size)]
            dist.all_gather(parts, mine)
            if self.is_main:
                out.update({f"rank{r}.{name}": parts[r].cpu() for r in range(1, self.size)})
        return out

    def own_rng_states(self, stored: dict[str, Tensor],
                       progress: dict[str, Any]) -> dict[str, Tensor]:
        """This rank's generator states from a checkpoint that :meth:`gather_rng_states` fed.

        Raises
        ------
        UmetaError
            If the checkpoint was written by a different number of processes.
        """
        saved = int(progress.get("world_size", 1))
        if saved != self.size:
            raise UmetaError(f"the checkpoint was written by a run of {saved} process(es) but "
                             f"this run has {self.size}; resume with the same number "
                             f"(torchrun --nproc_per_node {saved}, or no torchrun for 1)")
        if self.is_main:
            return {k: v for k, v in stored.items() if not _RANK_KEY.match(k)}
        prefix = f"rank{self.rank}."
        return {k[len(prefix):]: v for k, v in stored.items() if k.startswith(prefix)}

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the others (e.g. a download into a cache)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()


def _launch_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from ``torchrun``'s variables, or None when absent."""
    present = [name for name in LAUNCH_VARIABLES if name in os.environ]
    if not present:
        return None
    if len(present) != len(LAUNCH_VARIABLES):
        missing = sorted(set(LAUNCH_VARIABLES) - set(present))
        raise UmetaError(f"environment variable(s) {', '.join(missing)} missing beside "
                         f"{', '.join(present)}; launch with torchrun, or unset them")
    try:
        rank, size, local = (int(os.environ[name]) for name in LAUNCH_VARIABLES)
    except ValueError:
        raise UmetaError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers; got "
                         f"{[os.environ[n] for n in LAUNCH_VARIABLES]}") from None
    return rank, size, local


def _rank_device(device: torch.device, local_rank: int, size: int) -> torch.device:
    """``cuda:local_rank`` for a CUDA run, ``device`` otherwise."""
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise UmetaError(f"--device {device} pins one GPU, but each of the {size} processes "
                         f"trains on its own (cuda:LOCAL_RANK); pass --device cuda")
    if local_rank >= torch.cuda.device_count():
        raise UmetaError(f"LOCAL_RANK={local_rank} but PyTorch sees {torch.cuda.device_count()} "
                         f"GPU(s); use --nproc_per_node <= the number of GPUs")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@contextmanager
def distributed_session(device: torch.device) -> Iterator[World]:
    """The `World` of this process; starts (and at the end stops) the process group if needed.

    Parameters
    ----------
    device : torch.device
        The resolved ``run.device`` (``cpu`` or ``cuda`` without an index for several ranks).

    Yields
    ------
    World
        One process (rank 0 of 1, on ``device``) unless ``torchrun`` started several, or a
        process group of several ranks is already initialised (it is used and left running).
        NCCL backs CUDA runs and gloo CPU runs. On a normal exit every rank waits for the
        others (rank 0 may still be validating or writing checkpoints).
    """
    if is_active():
        rank, size = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        world = World(rank, size, local, _rank_device(device, local, size))
        yield world
        world.barrier()
        return
    env = _launch_env()
    if env is None or env[1] == 1:
        yield World(device=device)
        return
    rank, size, local = env
    rank_device = _rank_device(device, local, size)
    dist.init_process_group("nccl" if rank_device.type == "cuda" else "gloo")
    try:
        world = World(rank, size, local, rank_device)
        yield world
        world.barrier()
    finally:
        dist.destroy_process_group()


__all__ = ["World", "all_gather_rows", "distributed_session", "is_active", "is_main_process",
           "rank_seed", "seed_task_source"]
