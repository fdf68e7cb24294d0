"""AdaBN: BatchNorm statistics re-estimated on new images, against hand computations."""

from __future__ import annotations

import pytest
import torch

from umeta.adapt.adabn import adabn, adabn_task_features
from umeta.config import TrainConfig
from umeta.errors import UmetaError
from umeta.build import build_learner


def _learner(name: str = "protonet"):
    cfg = TrainConfig()
    cfg.model.hidden = 8
    cfg.learner.name = name
    if name == "psco":
        cfg.tasks.builder = "psco"
        cfg.learner.options = {"proj_dim": 8, "hidden_dim": 16, "queue_size": 32}
    torch.manual_seed(0)
    learner = build_learner(cfg, (1, 16, 16))
    # give the running statistics values unlike any batch's
    for m in learner.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.running_mean.fill_(3.0)
            m.running_var.fill_(5.0)
    return learner.eval()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_first_layer_statistics_are_those_of_the_new_images_and_the_original_is_kept():
    learner = _learner()
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    x = _images(40)
    tuned = adabn(learner, x, batch_size=7)  # uneven batches: exact average over them
    conv, norm = learner.backbone.features[0], tuned.backbone.features[1]
    with torch.no_grad():
        h = conv(x)
    assert torch.allclose(norm.running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(norm.running_var, _weighted_var(h, 7), atol=1e-4)
    for k, v in learner.state_dict().items():
        assert torch.equal(v, before[k])
    assert not tuned.training and all(torch.equal(a, b) for a, b in zip(
        tuned.parameters(), learner.parameters()))


def _weighted_var(h: torch.Tensor, batch: int) -> torch.Tensor:
    """The size-weighted mean over batches of each batch's unbiased variance."""
    parts = [h[i:i + batch] for i in range(0, len(h), batch)]
    return sum(len(p) * p.var((0, 2, 3), unbiased=True) for p in parts) / len(h)


def test_task_features_equal_one_adabn_per_task():
    learner = _learner()
    tasks = torch.stack([_images(12, 1), _images(12, 2) * 0.5])
    feats = adabn_task_features(learner, tasks)
    for t in range(2):
        reference = adabn(learner, tasks[t], batch_size=12).embed(tasks[t])
        assert torch.allclose(feats[t], reference, atol=1e-5)
    assert not torch.allclose(feats[0], learner.embed(tasks[0]), atol=1e-3)


def test_layers_the_embedding_does_not_reach_keep_their_statistics():
    learner = _learner("psco")
    tuned = adabn(learner, _images(20))
    momentum = [m for m in tuned.momentum_backbone.modules()
                if isinstance(m, torch.nn.BatchNorm2d)]
    assert momentum and all(float(m.running_mean.mean()) == 3.0 for m in momentum)
    online = [m for m in tuned.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(m.running_mean.mean()) != 3.0 for m in online)
    assert all(m.momentum == 0.1 for m in tuned.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


def test_uint8_images_are_scaled():
    learner = _learner()
    x = _images(10)
    q = (x * 255).round() / 255
    a = adabn(learner, (q * 255).round().to(torch.uint8)).embed(q)
    b = adabn(learner, q).embed(q)
    assert torch.allclose(a, b, atol=1e-5)


def test_errors():
    learner = _learner()
    with pytest.raises(UmetaError, match="at least 2"):
        adabn(learner, _images(1))
    with pytest.raises(UmetaError):
        adabn(learner, torch.rand(4, 1, 20, 20))
    cfg = TrainConfig()
    cfg.model.hidden, cfg.learner.name = 8, "maml"
    maml = build_learner(cfg, (1, 16, 16))
    with pytest.raises(UmetaError, match="running statistics"):
        adabn(maml, _images(4))
    with pytest.raises(UmetaError):
        adabn_task_features(learner, _images(4))
