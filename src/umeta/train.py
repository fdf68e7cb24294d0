"""The meta-training loop: tasks -> learner -> Adam, with validation, checkpoints and resume.

Read it top-down: :func:`train` checks the config and opens the (possibly distributed) session;
:class:`Training` builds what the config describes (`umeta.build`), restores a checkpoint, takes
steps, logs a window of steps, validates and writes checkpoints; :func:`_run` is the loop that
calls those pieces in order.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from umeta.build import (build_learner, build_task_source, check_options, check_pairing,
                         is_label_free, resolve_device)
from umeta.checkpoint import (model_state, optimizer_state, read_checkpoint, rng_states,
                              save_checkpoint)
from umeta.config import TrainConfig
from umeta.cuda_graph import CapturedStep, capturable_adam, tensor_learning_rates
from umeta.data.imageset import ImageSet
from umeta.data.sources import has_part, load_part, resolve_part
from umeta.distributed import World, distributed_session
from umeta.errors import UmetaError
from umeta.evaluate import episode_accuracies
from umeta.files import FileLocked, atomic_write, file_lock
from umeta.learners import LEARNERS, MetaLoss
from umeta.memory import available_bytes, format_bytes, peak_bytes
from umeta.metrics import mean_ci95
from umeta.numeric.random import check_seed
from umeta.params import ParamError, literal
from umeta.progress import progress_bar
from umeta.tasks.sampler import EpisodeSampler

#: The roles a supervised run may train on (label-free runs always use train + val images).
TRAIN_ROLES = ("train", "trainval")
#: Config keys that a resumed run may change: its length and time limit, where it runs, how often
#: it logs and checkpoints, and where its data and run directory are found. Any other change
#: (what is trained, and how the step runs: the optimizer state of a CUDA-graph step is kept in
#: another form) is refused.
RESUMABLE_KEYS = ("optim.steps", "run.time_limit_s", "run.device", "run.log_every",
                  "run.checkpoint_every", "run.run_dir", "data.data_dir", "data.download")
#: Smallest value of each whole-number setting (checked before anything is built).
MINIMA = {"optim.steps": 1, "optim.meta_batch": 1, "optim.step_every": 1, "model.hidden": 1,
          "data.image_size": 1, "tasks.k_shot": 1, "tasks.q_query": 1, "run.val_every": 0,
          "run.val_tasks": 1, "run.checkpoint_every": 1, "run.log_every": 1}


@dataclass
class TrainResult:
    """What `train` returns."""

    learner: Any
    run_dir: Path
    steps: int
    best_val_accuracy: float | None
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    #: False when ``run.time_limit_s`` stopped the run before ``optim.steps``
    finished: bool = True
    #: seconds of training over this call and the calls it resumed
    total_train_s: float = 0.0
    #: the step this call started from (0, or the checkpoint's step when it resumed)
    start_step: int = 0

    @property
    def steps_this_call(self) -> int:
        """Steps this call trained."""
        return self.steps - self.start_step


class RunDir:
    """A run directory: resolved config, metrics (JSONL) and checkpoints."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.metrics = self.path / "metrics.jsonl"
        self.last = self.path / "checkpoints" / "last.safetensors"
        self.best = self.path / "checkpoints" / "best.safetensors"

    def log(self, record: dict[str, Any]) -> None:
        with self.metrics.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def trim_metrics(self, step: int) -> None:
        """Drop the records after ``step`` (logged after the checkpoint a resumed run starts
        from, so that they are not logged twice) and any half-written last line."""
        if not self.metrics.exists():
            return
        kept = []
        for line in self.metrics.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short when the run was killed
            if record.get("step", 0) <= step:
                kept.append(line + "\n")
        with atomic_write(self.metrics) as handle:
            handle.write("".join(kept))

    @contextlib.contextmanager
    def locked(self):
        """Hold the directory's lock (created with it) for the block: a second `train` on the
        same directory is refused while this one runs. The operating system releases the lock
        when the process ends, however it ends."""
        if self.path.exists() and not self.path.is_dir():
            raise UmetaError(f"--run-dir {str(self.path)!r} is a file, not a folder; choose "
                             f"another --run-dir")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UmetaError(f"cannot create --run-dir {str(self.path)!r} ({err.strerror}); "
                             f"choose another --run-dir") from None
        try:
            with file_lock(self.path / ".lock"):
                yield
        except FileLocked as err:
            raise UmetaError(f"run directory {str(self.path)!r} is in use by another umeta train "
                             f"(pid {err.holder}); wait for it to end or choose another "
                             f"--run-dir") from None


def read_run_config(run_dir: str | Path) -> TrainConfig | None:
    """The config a run directory's run was started (or last resumed) with; None if it holds
    no run. `umeta train --resume` starts from it, so that only the flags given change."""
    path = RunDir(run_dir).config
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise UmetaError(f"{str(path)} does not parse ({err}); resume from a run directory "
                         f"that umeta train wrote") from None


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    o = cfg.optim
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(o.steps, 1))
    if o.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_every, gamma=0.5)
    if o.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise UmetaError(f"unknown optim.schedule {o.schedule!r}; choose cosine, step or constant")


def stretch_cosine(scheduler: torch.optim.lr_scheduler.CosineAnnealingLR, steps: int) -> None:
    """Stretch a restored cosine schedule to end at ``steps`` (a resumed run may be extended),
    and set each learning rate to the stretched cosine's value at the step reached: the
    scheduler updates rates by ratios, so a schedule that had ended at 0 would otherwise stay
    at 0 for the rest of the run."""
    steps = max(int(steps), 1)
    if scheduler.T_max == steps:
        return
    scheduler.T_max = steps
    share = (1 + math.cos(math.pi * min(scheduler.last_epoch, steps) / steps)) / 2
    rates = [scheduler.eta_min + (base - scheduler.eta_min) * share for base in scheduler.base_lrs]
    for group, rate in zip(scheduler.optimizer.param_groups, rates):
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(rate)
        else:
            group["lr"] = rate
    scheduler._last_lr = rates


def training_part(cfg: TrainConfig) -> str:
    """The data part the run trains on: train + val images for label-free runs, else
    ``data.train_part`` (a role, or the split's own name for it, e.g. ``background``)."""
    return "trainval" if is_label_free(cfg) else cfg.data.train_part


def check_config(cfg: TrainConfig, *, data_given: bool = False) -> None:
    """Raise `UmetaError` for a config that cannot train, before anything is written.

    ``data_given``: the training images are handed to `train` (``train_data``), so
    ``data.dataset`` only names where they came from and is not a data set to load."""
    o, r, t = cfg.optim, cfg.run, cfg.tasks
    for name, low in MINIMA.items():
        section, key = name.split(".")
        value = getattr(getattr(cfg, section), key)
        if value < low:
            raise ParamError(name, value, f"{{setting}} must be at least {low}")
    check_seed(r.seed, "run.seed")
    if not (o.lr > 0 and math.isfinite(o.lr)):
        raise UmetaError(f"optim.lr must be a positive number; got {o.lr}")
    if not (r.time_limit_s >= 0 and math.isfinite(r.time_limit_s)):
        raise UmetaError(f"run.time_limit_s must be 0 (no limit) or a positive number of "
                         f"seconds; got {r.time_limit_s}")
    if r.amp not in ("none", "bf16"):
        raise UmetaError(f"unknown run.amp {r.amp!r}; choose none or bf16")
    if t.n_way < 2:
        raise UmetaError(f"tasks.n_way must be at least 2; got {t.n_way}")
    allowed = list(TRAIN_ROLES) + ([] if data_given else [
        p for p in (resolve_part(cfg.data, r) for r in TRAIN_ROLES)
        if p is not None and p not in TRAIN_ROLES])
    if cfg.data.train_part not in allowed:
        raise UmetaError(f"unknown data.train_part {cfg.data.train_part!r}; choose "
                         f"{' or '.join(allowed)}")
    learner_cls = LEARNERS.get(cfg.learner.name)
    check_pairing(cfg)
    check_options(cfg)
    if r.compile and learner_cls.compile_refusal:
        raise UmetaError(learner_cls.compile_refusal)
    if r.cuda_graph:
        if r.compile:
            raise UmetaError("run.cuda_graph and run.compile do not go together; choose one")
        if not learner_cls.graphable:
            raise UmetaError(f"learner {cfg.learner.name!r} cannot be recorded as a CUDA graph; "
                             f"set run.cuda_graph=false")
        if resolve_device(r.device).type != "cuda":  # before the run directory is written
            raise UmetaError("run.cuda_graph needs a CUDA device; set run.cuda_graph=false on CPU")


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          train_data: ImageSet | None = None, val_data: ImageSet | None = None) -> TrainResult:
    """Meta-train the learner that ``cfg`` describes and return it (best checkpoint if validated).

    Parameters
    ----------
    cfg : TrainConfig
    resume : continue from ``run_dir/checkpoints/last.safetensors``. ``cfg`` must equal the
        run's config except for `RESUMABLE_KEYS` (a longer ``optim.steps``, a new time
        limit, ...); any other difference raises `ParamError` naming the first changed key.
    progress : show a progress bar (plain lines every 30 s when stderr is not a terminal).
    train_data, val_data : use these image sets instead of loading ``cfg.data``.

    The run directory is locked while the run lasts: a second `train` on it raises
    `UmetaError`. Under ``torchrun`` the processes share each step's meta-batch and rank 0
    writes the run directory (see `umeta.distributed`); other ranks return their last weights.
    """
    check_config(cfg, data_given=train_data is not None)
    with distributed_session(resolve_device(cfg.run.device)) as world, \
            contextlib.ExitStack() as lock:
        run = RunDir(cfg.run.run_dir)
        refusal = None
        if world.is_main:  # rank 0 owns the run directory
            try:
                lock.enter_context(run.locked())
            except UmetaError as err:
                refusal = err
        if not world.agree(refusal is None):
            raise refusal or UmetaError(f"rank 0 could not open --run-dir {str(run.path)!r}")
        checkpoint = None
        if resume:
            cfg, checkpoint = _resumed_config(cfg, run)
        elif run.metrics.exists():
            raise UmetaError(f"run directory {str(run.path)!r} already holds a run; pass --resume "
                             f"to continue it or choose another --run-dir")
        training = Training(cfg, world, run, train_data, val_data, progress=progress)
        if checkpoint is not None:
            training.restore(checkpoint)
        if world.is_main:
            run.trim_metrics(training.step)
            with atomic_write(run.config) as handle:
                handle.write(json.dumps(cfg.to_dict(), indent=2) + "\n")
        world.broadcast_module(training.learner)
        return _run(training, progress)


def _flat(cfg: TrainConfig) -> dict[str, Any]:
    """``{"section.key": value}`` of a config (``options`` tables as one value)."""
    plain = json.loads(json.dumps(cfg.to_dict(), default=float))  # tuples as lists, as saved
    return {f"{section}.{key}": value for section, values in plain.items()
            for key, value in values.items()}


def _resumed_config(cfg: TrainConfig, run: RunDir) -> tuple[TrainConfig, tuple]:
    """The saved config of the run to resume with the `RESUMABLE_KEYS` of ``cfg``, and its
    last checkpoint; a change to any other key raises `ParamError`."""
    if not run.last.is_file():
        raise UmetaError(f"--resume: no checkpoint at {run.last}; start the run without --resume")
    checkpoint = read_checkpoint(run.last)
    saved = TrainConfig.from_dict(checkpoint[1]["config"])
    old, new = _flat(saved), _flat(cfg)
    changed = [k for k in new if k not in RESUMABLE_KEYS and new[k] != old[k]]
    if changed:
        key = changed[0]
        more = f" (and {len(changed) - 1} more setting(s))" if len(changed) > 1 else ""
        raise ParamError(key, new[key], f"--resume continues the run in {literal(str(run.path))} "
                         f"with its own settings, but this call sets {{setting}}{more} where the "
                         f"run has {literal(old[key])}; drop it, or start a new run in another "
                         f"--run-dir")
    for key in RESUMABLE_KEYS:
        section, name = key.split(".")
        setattr(getattr(saved, section), name, getattr(getattr(cfg, section), name))
    return saved, checkpoint


class Training:
    """Everything one training run holds: data, learner, task source, optimizer, schedule,
    validation episodes, counters; and the pieces of the loop that act on them."""

    def __init__(self, cfg: TrainConfig, world: World, run: RunDir,
                 train_data: ImageSet | None, val_data: ImageSet | None, *,
                 progress: bool = False) -> None:
        self.cfg, self.world, self.run = cfg, world, run
        device = self.device = world.device
        self.local_batch = world.local_batch(cfg.optim.meta_batch)
        torch.manual_seed(cfg.run.seed)
        part = training_part(cfg)
        if train_data is None:
            with world.main_first():  # one download into the shared cache
                train_data = load_part(cfg.data, part)
        self.train_data = train_data.to(device)
        self.validate_every = cfg.run.val_every
        if (is_label_free(cfg) or part == "trainval" or not has_part(cfg.data, "val")) \
                and self.validate_every:
            # label-free: validating by labels would leak them into model selection; trainval:
            # the val classes are trained on; some splits (background-evaluation) have none
            self.validate_every = 0
        if not world.is_main:
            self.validate_every = 0  # rank 0 validates
        self.image_shape = self.train_data.image_shape
        #: what checkpoints record of the training data beyond its name (tables: the exact list
        #: of real tables trained on, for leave-data-set-out checks)
        self.data_record = train_data.record() if hasattr(train_data, "record") else {}
        learner = build_learner(cfg, self.image_shape).to(device)
        if cfg.run.channels_last:
            learner = learner.to(memory_format=torch.channels_last)
        self.learner = learner
        self.source = build_task_source(cfg, self.train_data, device,
                                        progress=progress and world.is_main)
        world.seed_tasks(self.source, cfg.run.seed)
        if self.validate_every and val_data is None:
            val_data = load_part(cfg.data, "val", rotations=False)
        if self.validate_every and val_data.num_classes < cfg.tasks.n_way:
            raise UmetaError(f"validation draws tasks.n_way={cfg.tasks.n_way} classes, but "
                             f"{val_data.name} has {val_data.num_classes}; set run.val_every=0 "
                             f"(no validation) or a smaller --n-way")
        self.trainable = learner.trainable_parameters()
        if cfg.run.cuda_graph and world.size > 1:
            raise UmetaError("run.cuda_graph is for one process; set run.cuda_graph=false under "
                             "torchrun")
        if cfg.run.cuda_graph:
            self.optimizer = capturable_adam(self.trainable, cfg.optim.lr, cfg.optim.weight_decay,
                                             device)
        else:
            self.optimizer = torch.optim.Adam(self.trainable, lr=cfg.optim.lr,
                                              weight_decay=cfg.optim.weight_decay,
                                              fused=device.type == "cuda")
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.step, self.best, self.history, self.trained_before = 0, None, [], 0.0
        self.start_step = 0
        self.val_sampler = None
        if self.validate_every:
            self.val_sampler = EpisodeSampler(val_data.to(device), cfg.tasks.n_way,
                                              cfg.tasks.k_shot, cfg.tasks.q_query,
                                              seed=cfg.run.seed + 1)
            self.val_state = self.val_sampler.state_dict()
        self.autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                         if cfg.run.amp == "bf16" else contextlib.nullcontext())
        self.meta_loss = (torch.compile(learner.meta_loss) if cfg.run.compile
                          else learner.meta_loss)
        self.step_fn = (CapturedStep(self.train_step, device) if cfg.run.cuda_graph
                        else self.train_step)
        self.check_memory()
        self.start_time = time.perf_counter()

    # ---- restore / checkpoint -----------------------------------------------------------------

    def restore(self, checkpoint: tuple) -> None:
        """Continue from a checkpoint: weights, optimizer, schedule, generators, counters."""
        tensors, meta = checkpoint
        cfg, device = self.cfg, self.device
        self.learner.load_state_dict(model_state({k: v.to(device) for k, v in tensors.items()}))
        self.optimizer.load_state_dict(optimizer_state(tensors, meta))
        if cfg.run.cuda_graph:
            tensor_learning_rates(self.optimizer, device)
        self.scheduler.load_state_dict(meta["scheduler"])
        if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            stretch_cosine(self.scheduler, cfg.optim.steps)  # the run may have been extended
        rngs = self.world.own_rng_states(rng_states(tensors), meta["progress"])
        self.source.load_state_dict({k[7:]: v for k, v in rngs.items() if k.startswith("source.")})
        torch.set_rng_state(rngs["torch"])
        self.step = self.start_step = meta["progress"]["step"]
        self.best = meta["progress"].get("best_val_accuracy")
        self.trained_before = meta["progress"].get("train_s", 0.0)

    def check_memory(self) -> None:
        """Refuse a meta-batch whose training step cannot fit in this device's free memory.

        The peak memory of one training step on 1 and on 2 tasks is measured on a copy of the
        learner (`umeta.memory.PeakMemory`; the generators are put back, so that training is
        unchanged) and extrapolated linearly to the local meta-batch."""
        free = available_bytes(self.device)
        if free is None:
            return
        rng = torch.get_rng_state()
        source_state = self.source.state_dict()
        try:
            peaks = [peak_bytes(lambda n=n: self._probe_step(n)) for n in (1, 2)]
        finally:
            self.source.load_state_dict(source_state)
            torch.set_rng_state(rng)
        per_task = max(peaks[1] - peaks[0], 0)
        need = peaks[0] + (self.local_batch - 1) * per_task
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            free = available_bytes(self.device)
        if need <= free:
            return
        fits = (1 + (free - peaks[0]) // per_task) * self.world.size if per_task else 0
        advice = (f"set {{param}} to {fits} or less" if fits >= self.world.size else
                  "a smaller model or images, or a device with more memory")
        raise ParamError("optim.meta_batch", self.cfg.optim.meta_batch,
                         f"{{setting}} needs about {format_bytes(need)} for one training step "
                         f"({format_bytes(per_task)} per task, measured), more than the "
                         f"{format_bytes(free)} free on {self.device.type}; {advice}")

    def _probe_step(self, num_tasks: int) -> None:
        """One training step's forward and backward on ``num_tasks`` tasks, on a copy of the
        learner (the real one is untouched)."""
        learner = copy.deepcopy(self.learner)
        with self.autocast:
            loss = learner.meta_loss(self.source.sample(num_tasks)).loss
        loss.backward()

    def rng_now(self) -> dict[str, torch.Tensor]:
        """This process's generator states: the global one and the task source's."""
        rng = {"torch": torch.get_rng_state()}
        rng.update({f"source.{k}": v for k, v in self.source.state_dict().items()})
        return rng

    def save(self, path: Path, rng: dict[str, torch.Tensor]) -> None:
        save_checkpoint(path, model=self.learner, config=self.cfg.to_dict(),
                        optimizer=self.optimizer, scheduler=self.scheduler, rng=rng,
                        progress={"step": self.step, "best_val_accuracy": self.best,
                                  "train_s": self.trained_before + self.elapsed(),
                                  "image_shape": list(self.image_shape),
                                  "data": self.train_data.name, "world_size": self.world.size,
                                  **self.data_record})

    def checkpoint(self) -> None:
        """Write ``last.safetensors`` with every rank's generator states (to resume exactly)."""
        rng = self.world.gather_rng_states(self.rng_now())
        if self.world.is_main:
            self.save(self.run.last, rng)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    # ---- one step, a log window, validation ----------------------------------------------------

    def train_step(self, batch: Any) -> MetaLoss:
        """Forward, backward, gradient all-reduce and clipping, optimizer step (graphable)."""
        with self.autocast:
            out = self.meta_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.world.average_gradients(self.trainable)
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optim.grad_clip)
        self.optimizer.step()
        # detached: no autograd graph outlives its step (one kept alive into a CUDA-graph
        # capture makes autograd warn about its gradient-accumulation nodes' stream)
        return MetaLoss(out.loss.detach(), out.accuracy.detach())

    def log_window(self, sums: torch.Tensor, window_steps: int, window_s: float) -> dict:
        """Log the mean loss and accuracy of the last ``window_steps`` steps (one host sync)
        and return the record."""
        loss, acc = self.world.mean(sums / window_steps).tolist()
        if not math.isfinite(loss):
            raise UmetaError(f"training diverged at step {self.step} (loss {loss}); lower optim.lr "
                             f"or set optim.grad_clip")
        record = {"step": self.step, "loss": loss, "accuracy": acc,
                  "tasks_per_s": window_steps * self.cfg.optim.meta_batch / window_s,
                  "lr": float(self.scheduler.get_last_lr()[0])}
        if self.world.is_main:
            self.run.log(record)
        self.history.append(record)
        return record

    def validate(self) -> None:
        """Accuracy on the same validation episodes every time; keep the best weights."""
        self.val_sampler.load_state_dict(self.val_state)
        accs = episode_accuracies(self.learner, self.val_sampler, self.cfg.run.val_tasks)
        mean, ci = mean_ci95(accs.numpy() * 100)
        record = {"step": self.step, "val_accuracy": mean, "val_ci95": ci}
        self.run.log(record)
        self.history.append(record)
        if self.best is None or mean > self.best:
            self.best = mean
            self.save(self.run.best, self.rng_now())

    def finish(self) -> TrainResult:
        """The result: the best validated weights, else the last ones (saved as best)."""
        if self.world.is_main and (not self.run.best.exists() or self.val_sampler is None):
            self.save(self.run.best, self.rng_now())  # label-free or unvalidated: the last weights
        elif self.val_sampler is not None:
            tensors, _ = read_checkpoint(self.run.best, self.device)
            self.learner.load_state_dict(model_state(tensors))
        self.learner.eval()
        wall = self.elapsed()
        return TrainResult(self.learner, self.run.path, self.step, self.best, wall, self.history,
                           finished=self.step >= self.cfg.optim.steps,
                           total_train_s=self.trained_before + wall, start_step=self.start_step)


class TimeLimit:
    """When this call has trained for ``run.time_limit_s`` seconds.

    One process reads the host's clock after every step, which needs no synchronisation with
    the device, and stops at the first step past the limit. Several processes must stop at
    the same step, so they compare their mean clock at agreed steps only: the next check is
    half-way to where the last one predicted the limit (at least one step on), so that there
    are few checks while much time is left and a check every step just before the limit.
    """

    def __init__(self, t: Training) -> None:
        self.t = t
        self.limit = t.cfg.run.time_limit_s
        self.next_check = t.step + 1
        self.last = (t.step, 0.0)  # (step, elapsed seconds) at the last check

    def passed(self) -> bool:
        """Whether to stop after the step just taken (every rank gets the same answer)."""
        t = self.t
        if not self.limit:
            return False
        if not t.world.enabled:
            return t.elapsed() >= self.limit
        if t.step < self.next_check:
            return False
        elapsed = t.world.mean(torch.tensor([t.elapsed()], dtype=torch.float64,
                                            device=t.world.comm_device)).item()
        left = self.limit - elapsed
        if left <= 0:
            return True
        rate = (t.step - self.last[0]) / max(elapsed - self.last[1], 1e-9)  # steps per second
        self.next_check = t.step + max(1, int(0.5 * left * rate))
        self.last = (t.step, elapsed)
        return False


def _run(t: Training, progress: bool) -> TrainResult:
    """The loop: steps, with a log window every ``log_every``, validation every ``val_every``
    and a checkpoint every ``checkpoint_every`` steps (and at the end, or out of time, when the
    unfinished log window is logged first)."""
    cfg = t.cfg
    total = cfg.optim.steps
    bar = progress_bar(total, initial=t.step, enabled=progress and t.world.is_main,
                       desc="meta-train", unit="step")
    sums = torch.zeros(2, device=t.device)
    window_start, window_steps = time.perf_counter(), 0
    t.start_time = time.perf_counter()
    time_limit = TimeLimit(t)
    t.learner.train()
    out_of_time = False
    while t.step < total:
        out = t.step_fn(t.source.sample(t.local_batch))
        t.scheduler.step()
        t.step += 1
        window_steps += 1
        sums += torch.stack([out.loss.float(), out.accuracy.float()])
        bar.update(1)
        out_of_time = t.step < total and time_limit.passed()
        if t.step % cfg.run.log_every == 0 or t.step == total or out_of_time:
            record = t.log_window(sums, window_steps, time.perf_counter() - window_start)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}",
                            tasks_s=f"{record['tasks_per_s']:.0f}", refresh=False)
            sums.zero_()
            window_start, window_steps = time.perf_counter(), 0
        if t.val_sampler is not None and (t.step % t.validate_every == 0 or t.step == total):
            t.validate()
            window_start = time.perf_counter()
        if t.step % cfg.run.checkpoint_every == 0 or t.step == total or out_of_time:
            t.checkpoint()
        if out_of_time:
            break
    bar.close()
    return t.finish()


__all__ = ["RESUMABLE_KEYS", "RunDir", "TimeLimit", "TrainResult", "Training", "check_config",
           "read_run_config", "train"]
