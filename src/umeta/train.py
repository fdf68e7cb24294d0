"""The meta-training loop: tasks -> learner -> Adam, with validation, checkpoints and resume."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from umeta.checkpoint import (model_state, optimizer_state, read_checkpoint, rng_states,
                              save_checkpoint)
from umeta.config import TrainConfig
from umeta.cuda_graph import CapturedStep, capturable_adam, tensor_learning_rates
from umeta.data.imageset import ImageSet
from umeta.data.sources import load_part
from umeta.distributed import World, distributed_session
from umeta.errors import UmetaError
from umeta.evaluate import episode_accuracies
from umeta.learners import LEARNERS, Learner, MetaLoss
from umeta.metrics import mean_ci95
from umeta.models.backbones import build_backbone
from umeta.tasks.sampler import EpisodeSampler

#: Learners that vmap over tasks and so need BatchNorm without running statistics.
VMAPPED_LEARNERS = frozenset({"maml"})
#: Parts a supervised run may train on (label-free runs always use train + val images).
TRAIN_PARTS = ("train", "trainval")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UmetaError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UmetaError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def is_label_free(cfg: TrainConfig) -> bool:
    return cfg.tasks.builder != "labelled"


def build_learner(cfg: TrainConfig, image_shape: tuple[int, ...]) -> Learner:
    """The learner of ``cfg`` over a fresh backbone for images of ``image_shape`` (C, H, W)."""
    factory = LEARNERS.get(cfg.learner.name)
    try:
        backbone = build_backbone(cfg.model.backbone, image_shape, hidden=cfg.model.hidden,
                                  running_stats=cfg.learner.name not in VMAPPED_LEARNERS,
                                  **cfg.model.options)
    except TypeError as err:
        raise UmetaError(f"bad model.options for {cfg.model.backbone!r}: {err}") from None
    try:
        learner = factory(backbone=backbone, n_way=cfg.tasks.n_way, **cfg.learner.options)
    except TypeError as err:
        raise UmetaError(f"bad learner.options for {cfg.learner.name!r}: {err}") from None
    learner.image_shape = tuple(image_shape)
    learner.config = cfg
    return learner


def build_task_source(cfg: TrainConfig, data: ImageSet, device: torch.device):
    """Labelled episodes, or a label-free builder that is handed the images only."""
    t = cfg.tasks
    if t.builder == "labelled":
        extra = sorted(set(t.options) - {"augment"})
        if extra:
            raise UmetaError(f"tasks.options {extra} are for label-free builders; labelled "
                             f"episodes take only augment (a table of umeta.tasks.Augment fields)")
        return EpisodeSampler(data, t.n_way, t.k_shot, t.q_query, seed=cfg.run.seed,
                              augment=t.options.get("augment"))
    from umeta.tasks.builders import build_task_source as build_label_free

    if (t.builder == "psco") != (cfg.learner.name == "psco"):
        raise UmetaError(f"tasks.builder {t.builder!r} and learner {cfg.learner.name!r} do not go "
                         f"together: psco tasks need the psco learner and vice versa")
    options = dict(t.options)
    if t.builder == "cactus":
        options["embeddings"] = encoder_embeddings(options.pop("encoder", None), data, device)
    return build_label_free(t.builder, data.unlabeled(), n_way=t.n_way, k_shot=t.k_shot,
                            q_query=t.q_query, seed=cfg.run.seed, **options)


def encoder_embeddings(encoder: str | None, data: ImageSet, device: torch.device) -> torch.Tensor:
    """CACTUs' input: features (N, D) of the training images from a label-free checkpoint."""
    if not encoder:
        raise UmetaError("the cactus builder clusters embeddings from an unsupervised encoder: "
                         "train one label-free first (e.g. --tasks psco --learner psco) and pass "
                         "--set tasks.options.encoder=RUN_DIR/checkpoints/last.safetensors")
    from umeta.checkpoint import load_learner

    learner = load_learner(encoder, device)
    if is_label_free(learner.config) is False:
        raise UmetaError(f"encoder {encoder!r} was trained with labels; CACTUs must stay label-free: "
                         f"use a checkpoint of a label-free run")
    return learner.embed(data.float_images())


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    o = cfg.optim
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(o.steps, 1))
    if o.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_every, gamma=0.5)
    if o.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise UmetaError(f"unknown optim.schedule {o.schedule!r}; choose cosine, step or constant")


@dataclass
class TrainResult:
    """What `train` returns."""

    learner: Learner
    run_dir: Path
    steps: int
    best_val_accuracy: float | None
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    #: False when ``run.time_limit_s`` stopped the run before ``optim.steps``
    finished: bool = True
    #: seconds of training over this call and the calls it resumed
    total_train_s: float = 0.0


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


def _validate(cfg: TrainConfig) -> None:
    o, r, t = cfg.optim, cfg.run, cfg.tasks
    for name, value in (("optim.steps", o.steps), ("optim.meta_batch", o.meta_batch)):
        if value < 1:
            raise UmetaError(f"{name} must be at least 1; got {value}")
    if not (o.lr > 0 and math.isfinite(o.lr)):
        raise UmetaError(f"optim.lr must be a positive number; got {o.lr}")
    if not (r.time_limit_s >= 0 and math.isfinite(r.time_limit_s)):
        raise UmetaError(f"run.time_limit_s must be 0 (no limit) or a positive number of "
                         f"seconds; got {r.time_limit_s}")
    if r.amp not in ("none", "bf16"):
        raise UmetaError(f"unknown run.amp {r.amp!r}; choose none or bf16")
    if t.n_way < 2:
        raise UmetaError(f"tasks.n_way must be at least 2; got {t.n_way}")
    if cfg.data.train_part not in TRAIN_PARTS:
        raise UmetaError(f"unknown data.train_part {cfg.data.train_part!r}; choose "
                         f"{' or '.join(TRAIN_PARTS)}")
    if r.compile and cfg.learner.name == "maml":
        # measured with torch 2.13: the compiled vmapped inner loop gives other losses and
        # meta-gradients than the eager one (which the tests check against a hand unroll)
        raise UmetaError("run.compile computes wrong MAML meta-gradients (torch.compile of the "
                         "vmapped inner loop); set run.compile=false, or run.cuda_graph=true "
                         "on a GPU for speed")
    if r.cuda_graph:
        if r.compile:
            raise UmetaError("run.cuda_graph and run.compile do not go together; choose one")
        if resolve_device(r.device).type != "cuda":  # before the run directory is written
            raise UmetaError("run.cuda_graph needs a CUDA device; set run.cuda_graph=false on CPU")


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          train_data: ImageSet | None = None, val_data: ImageSet | None = None) -> TrainResult:
    """Meta-train the learner that ``cfg`` describes and return it (best checkpoint if validated).

    Parameters
    ----------
    cfg : TrainConfig
    resume : continue from ``run_dir/checkpoints/last.safetensors`` (same config, same tasks).
    progress : show a tqdm progress bar.
    train_data, val_data : use these image sets instead of loading ``cfg.data``.

    Under ``torchrun`` the processes share each step's meta-batch and rank 0 writes the run
    directory (see `umeta.distributed`); other ranks return their last weights.
    """
    _validate(cfg)
    with distributed_session(resolve_device(cfg.run.device)) as world:
        return _train(cfg, world, resume=resume, progress=progress, train_data=train_data,
                      val_data=val_data)


def _train(cfg: TrainConfig, world: World, *, resume: bool, progress: bool,
           train_data: ImageSet | None, val_data: ImageSet | None) -> TrainResult:
    run = RunDir(cfg.run.run_dir)
    device = world.device
    label_free = is_label_free(cfg)

    checkpoint = None
    if resume:
        if not run.last.is_file():
            raise UmetaError(f"--resume: no checkpoint at {run.last}; start the run without --resume")
        checkpoint = read_checkpoint(run.last)
        saved = TrainConfig.from_dict(checkpoint[1]["config"])
        saved.optim.steps = cfg.optim.steps  # a resumed run may be extended
        saved.run.time_limit_s = cfg.run.time_limit_s  # and given a new time limit
        cfg = saved
    elif run.metrics.exists():
        raise UmetaError(f"run directory {str(run.path)!r} already holds a run; pass --resume to "
                         f"continue it or choose another --run-dir")

    local_batch = world.local_batch(cfg.optim.meta_batch)
    torch.manual_seed(cfg.run.seed)
    part = "trainval" if label_free else cfg.data.train_part
    if train_data is None:
        with world.main_first():  # one download into the shared cache
            train_data = load_part(cfg.data, part)
    train_data = train_data.to(device)
    validate_every = cfg.run.val_every
    if (label_free or part == "trainval") and validate_every:
        # label-free: validating by labels would leak them into model selection;
        # trainval: the val classes are trained on, so there is nothing left to validate on
        validate_every = 0
    if not world.is_main:
        validate_every = 0  # rank 0 validates
    image_shape = train_data.image_shape
    learner = build_learner(cfg, image_shape).to(device)
    if cfg.run.channels_last:
        learner = learner.to(memory_format=torch.channels_last)
    source = build_task_source(cfg, train_data, device)
    world.seed_tasks(source, cfg.run.seed)
    if validate_every and val_data is None:
        val_data = load_part(cfg.data, "val", rotations=False)
    trainable = [p for p in learner.parameters() if p.requires_grad]  # not PsCo's momentum copy
    if cfg.run.cuda_graph and world.size > 1:
        raise UmetaError("run.cuda_graph is for one process; set run.cuda_graph=false under "
                         "torchrun")
    if cfg.run.cuda_graph:
        optimizer = capturable_adam(trainable, cfg.optim.lr, cfg.optim.weight_decay, device)
    else:
        optimizer = torch.optim.Adam(trainable, lr=cfg.optim.lr,
                                     weight_decay=cfg.optim.weight_decay,
                                     fused=device.type == "cuda")
    scheduler = make_scheduler(cfg, optimizer)
    step, best, history, trained_before = 0, None, [], 0.0
    if checkpoint is not None:
        tensors, meta = checkpoint
        learner.load_state_dict(model_state({k: v.to(device) for k, v in tensors.items()}))
        optimizer.load_state_dict(optimizer_state(tensors, meta))
        if cfg.run.cuda_graph:
            tensor_learning_rates(optimizer, device)
        scheduler.load_state_dict(meta["scheduler"])
        if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            scheduler.T_max = max(cfg.optim.steps, 1)  # the run may have been extended
        rngs = world.own_rng_states(rng_states(tensors), meta["progress"])
        source.load_state_dict({k[7:]: v for k, v in rngs.items() if k.startswith("source.")})
        torch.set_rng_state(rngs["torch"])
        step, best = meta["progress"]["step"], meta["progress"].get("best_val_accuracy")
        trained_before = meta["progress"].get("train_s", 0.0)
    elif world.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.config.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    world.broadcast_module(learner)

    def rng_now() -> dict[str, torch.Tensor]:
        rng = {"torch": torch.get_rng_state()}
        rng.update({f"source.{k}": v for k, v in source.state_dict().items()})
        return rng

    def save(path: Path, rng: dict[str, torch.Tensor]) -> None:
        save_checkpoint(path, model=learner, config=cfg.to_dict(), optimizer=optimizer,
                        scheduler=scheduler, rng=rng,
                        progress={"step": step, "best_val_accuracy": best,
                                  "train_s": trained_before + time.perf_counter() - start_time,
                                  "image_shape": list(image_shape), "data": train_data.name,
                                  "world_size": world.size})

    val_sampler = None
    if validate_every:
        val_sampler = EpisodeSampler(val_data.to(device), cfg.tasks.n_way, cfg.tasks.k_shot,
                                     cfg.tasks.q_query, seed=cfg.run.seed + 1)
        val_state = val_sampler.state_dict()

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.run.amp == "bf16"
                else contextlib.nullcontext())
    total = cfg.optim.steps
    bar = tqdm(total=total, initial=step, disable=not (progress and world.is_main),
               desc="meta-train", unit="step", dynamic_ncols=True)
    sums = torch.zeros(2, device=device)
    window_start, window_steps, start_time = time.perf_counter(), 0, time.perf_counter()
    meta_loss = torch.compile(learner.meta_loss) if cfg.run.compile else learner.meta_loss

    def train_step(batch):
        with autocast:
            out = meta_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        world.average_gradients(trainable)
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        optimizer.step()
        # detached: no autograd graph outlives its step (one kept alive into a CUDA-graph
        # capture makes autograd warn about its gradient-accumulation nodes' stream)
        return MetaLoss(out.loss.detach(), out.accuracy.detach())

    step_fn = CapturedStep(train_step, device) if cfg.run.cuda_graph else train_step
    learner.train()
    out_of_time = False
    while step < total:
        out = step_fn(source.sample(local_batch))
        scheduler.step()
        step += 1
        window_steps += 1
        sums += torch.stack([out.loss.float(), out.accuracy.float()])
        bar.update(1)

        if step % cfg.run.log_every == 0 or step == total:
            # one host sync per window; the ranks' mean training time decides the time limit
            trained = sums.new_tensor([time.perf_counter() - start_time])
            loss, acc, trained_s = world.mean(torch.cat([sums / window_steps, trained])).tolist()
            out_of_time = 0 < cfg.run.time_limit_s <= trained_s
            if not math.isfinite(loss):
                raise UmetaError(f"training diverged at step {step} (loss {loss}); lower optim.lr "
                                 f"or set optim.grad_clip")
            elapsed = time.perf_counter() - window_start
            record = {"step": step, "loss": loss, "accuracy": acc,
                      "tasks_per_s": window_steps * cfg.optim.meta_batch / elapsed,
                      "lr": float(scheduler.get_last_lr()[0])}
            if world.is_main:
                run.log(record)
            history.append(record)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}",
                            tasks_s=f"{record['tasks_per_s']:.0f}")
            sums.zero_()
            window_start, window_steps = time.perf_counter(), 0

        if val_sampler is not None and (step % validate_every == 0 or step == total):
            val_sampler.load_state_dict(val_state)  # the same validation episodes every time
            accs = episode_accuracies(learner, val_sampler, cfg.run.val_tasks)
            mean, ci = mean_ci95(accs.numpy() * 100)
            record = {"step": step, "val_accuracy": mean, "val_ci95": ci}
            run.log(record)
            history.append(record)
            if best is None or mean > best:
                best = mean
                save(run.best, rng_now())
            window_start = time.perf_counter()
        if step % cfg.run.checkpoint_every == 0 or step == total or out_of_time:
            rng = world.gather_rng_states(rng_now())  # every rank's, to resume exactly
            if world.is_main:
                save(run.last, rng)
        if out_of_time:
            break
    bar.close()
    if world.is_main and (not run.best.exists() or val_sampler is None):
        save(run.best, rng_now())  # label-free or unvalidated: the last weights are the result
    elif val_sampler is not None:
        tensors, _ = read_checkpoint(run.best, device)
        learner.load_state_dict(model_state(tensors))
    learner.eval()
    wall = time.perf_counter() - start_time
    return TrainResult(learner, run.path, step, best, wall, history, finished=step >= total,
                       total_train_s=trained_before + wall)


__all__ = ["TrainResult", "build_learner", "build_task_source", "resolve_device", "train",
           "is_label_free"]
