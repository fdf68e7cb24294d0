"""Progress: plain lines (no carriage returns) when stderr is not a terminal, and bars for the
slow set-up and adaptation work (CACTUs' partitions, feature extraction, fine-tuning)."""

from __future__ import annotations

import io

import torch

from umeta.adapt.finetune import finetune
from umeta.learners import ProtoNet
from umeta.models import build_backbone
from umeta.progress import progress_bar
from umeta.tasks.cactus import CACTUs


def test_a_bar_in_a_log_is_plain_lines_at_most_every_interval():
    log = io.StringIO()
    with progress_bar(1000, desc="work", stream=log) as bar:
        for _ in range(1000):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("work:   0%") and lines[-1].startswith("work: 100%")
    assert len(lines) <= 3  # the start, the end: 1000 quick updates are not 1000 lines


def test_a_disabled_bar_writes_nothing():
    log = io.StringIO()
    with progress_bar(10, desc="quiet", enabled=False, stream=log) as bar:
        bar.update(10)
    assert log.getvalue() == ""


def learner() -> ProtoNet:
    torch.manual_seed(0)
    model = ProtoNet(build_backbone("conv4", image_shape=(1, 16, 16), hidden=4))
    model.image_shape = (1, 16, 16)
    return model


def test_cactus_partitions_feature_extraction_and_fine_tuning_show_progress(capsys):
    images = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8)
    CACTUs(images, 2, 1, 1, embeddings=torch.randn(40, 3), num_partitions=3, num_clusters=4,
           progress=True)
    model = learner()
    model.embed(images.float() / 255, batch_size=16, progress=True)
    finetune(model, images, steps=2, n_way=4, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    for line in ("cactus partitions: 100%", "features: 100%", "fine-tune: 100%"):
        assert any(l.startswith(line) for l in err.splitlines()), (line, err)
    CACTUs(images, 2, 1, 1, embeddings=torch.randn(40, 3), num_partitions=3, num_clusters=4)
    model.embed(images.float() / 255)
    assert capsys.readouterr().err == ""  # off by default
