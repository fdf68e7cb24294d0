"""Built-in training recipes: configs that the main job and the built-in model train with.

A recipe is a function returning a `TrainConfig`; it builds nothing, so that the modules that
train (`umeta.mainjob`, `umeta.pretrained`) share it without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from umeta.config import TrainConfig


def main_job_config(dataset: str, steps: int, seed: int, device: str, run_dir: Path,
                    data_dir: str | None) -> TrainConfig:
    """Label-free UMTRA-style meta-training of ProtoNets, sized to run in minutes on a CPU."""
    cfg = TrainConfig()
    cfg.data.dataset, cfg.data.data_dir = dataset, data_dir
    cfg.model.hidden = 32
    cfg.learner.name = "protonet"
    cfg.tasks.builder, cfg.tasks.n_way, cfg.tasks.k_shot, cfg.tasks.q_query = "umtra", 20, 1, 2
    cfg.optim.steps, cfg.optim.meta_batch, cfg.optim.lr = steps, 4, 2e-3
    cfg.run.run_dir, cfg.run.seed, cfg.run.device = str(run_dir), seed, device
    cfg.run.log_every = max(1, steps // 40)
    cfg.run.checkpoint_every = max(1, steps // 4)
    cfg.run.channels_last = True  # faster on CPUs and GPUs alike for Conv4
    return cfg


#: The learners `umeta compare` meta-trains on a user's images, each with its label-free tasks.
COMPARE_TASKS = {"protonet": "umtra", "maml": "umtra", "psco": "psco"}


def compare_config(learner: str, source: str, n_images: int, budget_s: float, seed: int,
                   device: str, run_dir: Path, max_steps: int = 1_000_000) -> TrainConfig:
    """Label-free meta-training of ``learner`` on a user's own ``n_images`` images (read from
    ``source``, handed to `umeta.train.train` as ``train_data``) for ``budget_s`` seconds
    (`umeta compare`): the same Conv4-32 backbone, seed, learning rate and
    budget for every learner, each on its own label-free tasks (:data:`COMPARE_TASKS`: UMTRA
    for ProtoNets and MAML, PsCo's views for PsCo); constant learning rate, since the number of
    steps a budget buys is not known in advance."""
    cfg = TrainConfig()
    cfg.data.dataset = source
    cfg.model.hidden = 32
    cfg.learner.name = learner
    cfg.tasks.builder = COMPARE_TASKS[learner]
    if learner == "psco":
        batch = max(2, min(64, n_images // 2))  # the memory check samples two batches
        cfg.tasks.n_way, cfg.tasks.k_shot, cfg.tasks.q_query = batch, 1, 1
        cfg.learner.options = {"queue_size": 1024, "hidden_dim": 256, "proj_dim": 64}
        cfg.optim.meta_batch = 1
    else:
        cfg.tasks.n_way = max(2, min(20 if learner == "protonet" else 5, n_images))
        cfg.tasks.k_shot, cfg.tasks.q_query = 1, 2
        cfg.optim.meta_batch = 4
    cfg.optim.lr, cfg.optim.schedule, cfg.optim.steps = 2e-3, "constant", max_steps
    cfg.run.run_dir, cfg.run.seed, cfg.run.device = str(run_dir), seed, device
    cfg.run.time_limit_s, cfg.run.val_every = float(budget_s), 0
    cfg.run.log_every, cfg.run.checkpoint_every = 20, max_steps
    return cfg
