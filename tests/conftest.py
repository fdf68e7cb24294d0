"""Shared fixtures: tiny seeded data, and the path of the real data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from umeta.data import ImageSet

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository, or ``$UMETA_SHARED_DATA``."""
    return Path(os.environ.get("UMETA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; the test is skipped when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set UMETA_SHARED_DATA)")
    return path


@pytest.fixture
def tiny_images() -> ImageSet:
    """12 classes x 8 random 1x16x16 uint8 images, seeded."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 1, 16, 16), generator=gen, dtype=torch.uint8)
    labels = torch.arange(12).repeat_interleave(8)
    return ImageSet(images, labels, [f"c{i:02d}" for i in range(12)],
                    [f"g{i // 4}" for i in range(12)], "tiny")


def tiny_protonet_checkpoint(run_dir: Path) -> str:
    """Train a tiny ProtoNet (conv4, 8 filters) for 3 steps on 10 glyph classes in ``run_dir``
    (CPU); return the path of its best checkpoint."""
    from umeta.config import TrainConfig
    from umeta.data.glyphs import make_glyphs
    from umeta.train import train

    cfg = TrainConfig()
    cfg.model.hidden = 8
    cfg.tasks.q_query = 2
    cfg.optim.steps, cfg.optim.meta_batch = 3, 2
    cfg.run.run_dir, cfg.run.device, cfg.run.val_every = str(run_dir), "cpu", 0
    train(cfg, train_data=make_glyphs(10, first_class=0), progress=False)
    return str(Path(run_dir) / "checkpoints" / "best.safetensors")


def table_config(run_dir, steps: int = 5, meta_batch: int = 4, **task_options):
    """The config of a tiny table model (table encoder 8 / 16 wide) trained on the synthetic
    prior alone, on the CPU, in ``run_dir``."""
    from umeta.config import TrainConfig

    cfg = TrainConfig()
    cfg.data.dataset = "table-priors"
    cfg.model.backbone, cfg.model.hidden = "table_encoder", 8
    cfg.model.options = {"row_width": 16, "embed_dim": 8, "heads": 2, "row_points": 8}
    cfg.learner.name, cfg.tasks.builder = "table", "tables"
    cfg.tasks.options = {"real_share": 0.0, "min_rows": 64, "max_rows": 96, "max_columns": 5,
                         **task_options}
    cfg.optim.steps, cfg.optim.meta_batch = steps, meta_batch
    cfg.run.run_dir, cfg.run.device = str(run_dir), "cpu"
    return cfg
