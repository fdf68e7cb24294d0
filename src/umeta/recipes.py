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
