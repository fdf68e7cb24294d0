"""Cluster-then-fine-tune and intermediate-layer embeddings."""

from __future__ import annotations

import pytest
import torch

from umeta.adapt.adabn import adabn
from umeta.adapt.layers import LayerEmbedding, block_outputs
from umeta.adapt.selftrain import (
    _balanced_draw,
    checked_selftrain,
    pixel_agreement_gain,
    pseudo_labels,
    selftrain,
    selftrain_task_features,
)
from umeta.config import TrainConfig
from umeta.errors import UmetaError
from umeta.metrics import ari
from umeta.tasks.augment import Augment
from umeta.build import build_learner


def _learner(name: str = "protonet"):
    cfg = TrainConfig()
    cfg.model.hidden = 8
    cfg.learner.name = name
    if name == "psco":
        cfg.tasks.builder = "psco"
        cfg.learner.options = {"proj_dim": 8, "hidden_dim": 16, "queue_size": 32}
    torch.manual_seed(0)
    return build_learner(cfg, (1, 16, 16)).eval()


def _two_groups(n: int = 12) -> torch.Tensor:
    """n images: the first half bright on the left, the second on the right."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 16, 16, generator=gen) * 0.2
    x[: n // 2, :, :, :8] += 0.8
    x[n // 2:, :, :, 8:] += 0.8
    return x.clamp(0, 1)


def test_balanced_draw_takes_each_cluster_members_only():
    labels = torch.tensor([2, 0, 0, 1, 2, 2, 1])
    idx = _balanced_draw(labels, 3, 50, torch.Generator().manual_seed(0))
    assert idx.shape == (3, 50)
    for c in range(3):
        assert set(idx[c].tolist()) == set((labels == c).nonzero().squeeze(1).tolist())


def test_selftrain_copies_changes_weights_lowers_the_loss_and_is_seeded():
    learner = _learner()
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    x = _two_groups()
    out = selftrain(learner, x, 2, steps=30, lr=1e-2, shots=3, views=Augment(shift=1), seed=0)
    assert all(torch.equal(v, before[k]) for k, v in learner.state_dict().items())
    assert not out.learner.training
    assert not torch.equal(out.learner.backbone.features[0].weight,
                           learner.backbone.features[0].weight)
    # BatchNorm statistics are not touched: only the weights change
    assert torch.equal(out.learner.backbone.features[1].running_mean,
                       learner.backbone.features[1].running_mean)
    assert sum(out.losses[-5:]) < sum(out.losses[:5])
    assert sorted(torch.bincount(out.labels).tolist()) == [6, 6]  # the two groups
    again = selftrain(learner, x, 2, steps=30, lr=1e-2, shots=3, views=Augment(shift=1), seed=0)
    assert again.losses == out.losses
    zero = selftrain(learner, x, 2, steps=0)
    assert torch.equal(zero.learner.embed(x), learner.embed(x)) and zero.losses == []


def test_selftrain_runs_psco_and_per_task_features_match_a_loop():
    learner = _learner("psco")
    tasks = torch.stack([_two_groups(), _two_groups().flip(-1)])
    feats = selftrain_task_features(learner, tasks, 2, steps=2, lr=1e-3, seed=5)
    assert feats.shape == (2, 12, 8)
    for t in range(2):
        ref = selftrain(learner, tasks[t], 2, steps=2, lr=1e-3, seed=5 + t).learner.embed(tasks[t])
        assert torch.allclose(feats[t], ref, atol=1e-6)


def test_selftrain_errors():
    learner = _learner()
    with pytest.raises(UmetaError, match="pseudo-classes"):
        selftrain(learner, _two_groups(4), 5)
    with pytest.raises(UmetaError):
        selftrain(learner, _two_groups(), 1)
    with pytest.raises(UmetaError):
        selftrain(learner, _two_groups(), 2, lr=0.0)
    with pytest.raises(UmetaError):
        selftrain_task_features(learner, _two_groups(), 2)


def test_pseudo_labels_find_obvious_groups():
    labels = pseudo_labels(_learner(), _two_groups(), 2, seed=0)
    assert len(set(labels[:6].tolist())) == 1 and len(set(labels[6:].tolist())) == 1
    assert labels[0] != labels[-1]


def test_layer_embedding_is_the_blocks_output():
    learner = _learner()
    x = _two_groups()
    assert block_outputs(learner) == [f"backbone.features.{i}" for i in (3, 7, 11, 15)]
    with torch.no_grad():
        expected = learner.backbone.features[:8](x).flatten(1)
    wrapped = LayerEmbedding(learner, 2)
    assert torch.allclose(wrapped.embed(x), expected)
    assert torch.allclose(LayerEmbedding(learner, -1).embed(x), learner.embed(x))
    assert torch.allclose(LayerEmbedding(learner, "backbone.features.7").embed(x), expected)
    assert wrapped.image_shape == learner.image_shape and wrapped.config is learner.config
    # AdaBN through the wrapper re-estimates the first two blocks only
    tuned = adabn(wrapped, x).learner
    assert not torch.equal(tuned.backbone.features[1].running_mean,
                           learner.backbone.features[1].running_mean)
    assert torch.equal(tuned.backbone.features[9].running_mean,
                       learner.backbone.features[9].running_mean)


def test_resnet12_blocks_are_its_residual_blocks():
    cfg = TrainConfig()
    cfg.model.backbone, cfg.model.hidden = "resnet12", 4
    torch.manual_seed(0)
    learner = build_learner(cfg, (1, 16, 16)).eval()
    assert block_outputs(learner) == [f"backbone.features.{i}" for i in range(4)]
    x = _two_groups()
    with torch.no_grad():
        expected = learner.backbone.features[:2](x).flatten(1)
    assert torch.allclose(LayerEmbedding(learner, 2).embed(x), expected)


def test_layer_embedding_errors():
    learner = _learner()
    with pytest.raises(UmetaError, match="blocks 1 .. 4"):
        LayerEmbedding(learner, 5)
    with pytest.raises(UmetaError, match="no module"):
        LayerEmbedding(learner, "backbone.nowhere")
    psco = _learner("psco")
    off_path = LayerEmbedding(psco, "momentum_backbone.features.3")
    with pytest.raises(UmetaError, match="not on the path"):
        off_path.embed(_two_groups())


def test_pixel_agreement_prefers_the_partition_the_pixels_support():
    x = _two_groups()
    truth = torch.arange(12) // 6
    mixed = torch.arange(12) % 2
    assert pixel_agreement_gain(x, mixed, truth, 2) == pytest.approx(1.0 - ari(
        truth.numpy(), mixed.numpy()))
    assert pixel_agreement_gain(x, truth, mixed, 2) < 0
    assert pixel_agreement_gain(x, truth, 1 - truth, 2) == pytest.approx(0.0)


def test_checked_selftrain_keeps_the_copy_only_when_the_check_is_positive():
    learner = _learner()
    x = _two_groups()
    for lr in (1e-2, 1.0):
        out = checked_selftrain(learner, x, 2, steps=10, lr=lr, seed=0)
        tuned = selftrain(learner, x, 2, steps=10, lr=lr, seed=0).learner
        before = pseudo_labels(learner, x, 2, 0)
        after = pseudo_labels(tuned, x, 2, 0)
        assert out.agreement_gain == pytest.approx(pixel_agreement_gain(x, before, after, 2))
        assert out.kept == (out.agreement_gain > 0)
        reference = tuned if out.kept else learner
        assert torch.allclose(out.learner.embed(x), reference.embed(x))
        assert torch.equal(out.labels, after if out.kept else before)


def test_joint_embedding_joins_normalised_parts_in_one_pass():
    import torch.nn.functional as F

    from umeta.adapt.layers import JointEmbedding, in_space, parse_space

    learner = _learner()
    x = _two_groups()
    assert parse_space("embedding") == ["embedding"]
    assert parse_space("block2+embedding+block3") == [2, "embedding", 3]
    for bad in ("layer2", "block0", "embedding+embedding", "block2+", "", "blockx"):
        with pytest.raises(UmetaError, match="unknown embedding space"):
            parse_space(bad)
    assert in_space(learner, "embedding") is learner
    assert isinstance(in_space(learner, "block2"), LayerEmbedding)
    joint = in_space(learner, "embedding+block2+block3")
    assert isinstance(joint, JointEmbedding)
    assert joint.layer == "embedding+backbone.features.7+backbone.features.11"
    with torch.no_grad():
        expected = torch.cat([F.normalize(learner.embed(x), dim=-1),
                              F.normalize(LayerEmbedding(learner, 2).embed(x), dim=-1),
                              F.normalize(LayerEmbedding(learner, 3).embed(x), dim=-1)], 1)
    assert torch.allclose(joint.embed(x), expected, atol=1e-6)
    # cosine similarities of the parts add up
    sims = joint.embed(x) @ joint.embed(x).T
    assert torch.allclose(sims.diagonal(), torch.full((len(x),), 3.0), atol=1e-5)
    with pytest.raises(UmetaError, match="at least two"):
        JointEmbedding(learner, ["embedding"])
