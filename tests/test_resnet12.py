import pytest
import torch

from umeta.build import build_learner
from umeta.config import TrainConfig
from umeta.errors import UmetaError
from umeta.models import BACKBONES, ResNet12, build_backbone
from umeta.models.backbones import has_running_stats
from umeta.tasks.umtra import ViewSampler


def expected_parameters(widths, in_channels=1):
    """Per block: three 3x3 convs and a 1x1 shortcut (no biases), four BatchNorms (2 each)."""
    total, c = 0, in_channels
    for w in widths:
        total += 9 * c * w + 2 * 9 * w * w + c * w + 4 * 2 * w
        c = w
    return total


def test_registered_with_the_usual_widths_and_parameter_count():
    assert "resnet12" in BACKBONES
    net = build_backbone("resnet12", (1, 28, 28))
    widths = [b.body[0].out_channels for b in net.features]
    assert widths == [64, 160, 320, 640] and net.out_dim == 640
    assert sum(p.numel() for p in net.parameters()) == expected_parameters(widths)
    narrow = build_backbone("resnet12", (1, 28, 28), hidden=32)
    assert [b.body[0].out_channels for b in narrow.features] == [32, 80, 160, 320]
    custom = build_backbone("resnet12", (1, 28, 28), widths=[8, 16, 24, 32])
    assert custom.out_dim == 32


@pytest.mark.parametrize("ceil_mode, pool, size, out_dim", [
    (True, "avg", 28, 40), (True, "flatten", 28, 40 * 2 * 2), (False, "flatten", 28, 40),
    (False, "avg", 32, 40), (True, "flatten", 84, 40 * 6 * 6),
])
def test_output_shapes(ceil_mode, pool, size, out_dim):
    net = ResNet12(1, (8, 16, 24, 40), size, ceil_mode=ceil_mode, pool=pool)
    out = net(torch.randn(3, 1, size, size))
    assert out.shape == (3, out_dim) and net.out_dim == out_dim


def test_residual_block_matches_its_definition():
    net = ResNet12(1, (4, 6, 8, 10), 16, ceil_mode=True).eval()
    block = net.features[0]
    x = torch.randn(2, 1, 16, 16)
    y = block.body(x) + block.shortcut(x)
    ref = torch.nn.functional.max_pool2d(torch.nn.functional.leaky_relu(y, 0.1), 2)
    torch.testing.assert_close(block(x), ref)


def test_running_stats_switch_and_errors():
    assert has_running_stats(build_backbone("resnet12", (1, 28, 28), hidden=8))
    off = build_backbone("resnet12", (1, 28, 28), hidden=8, running_stats=False)
    assert not has_running_stats(off) and not any("running" in n for n, _ in off.named_buffers())
    with pytest.raises(UmetaError, match="square"):
        build_backbone("resnet12", (1, 28, 20))
    with pytest.raises(UmetaError, match="at least 16x16"):
        build_backbone("resnet12", (1, 8, 8), ceil_mode=False)
    with pytest.raises(UmetaError, match="four positive widths"):
        build_backbone("resnet12", (1, 28, 28), widths=[8, 16])
    with pytest.raises(UmetaError, match="pool"):
        build_backbone("resnet12", (1, 28, 28), pool="max")


def test_a_psco_step_trains_through_it():
    cfg = TrainConfig()
    cfg.model.backbone, cfg.model.hidden = "resnet12", 4
    cfg.learner.name, cfg.tasks.builder, cfg.tasks.n_way = "psco", "psco", 8
    cfg.learner.options = {"queue_size": 32, "hidden_dim": 16, "proj_dim": 8}
    learner = build_learner(cfg, (1, 28, 28))
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    out = learner.meta_loss(ViewSampler(images, 8, seed=0).sample(1))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for p in learner.backbone.parameters())
