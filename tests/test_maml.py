"""MAML: the vmapped learner against a per-task autograd loop and a hand-written unroll."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from umeta.data import ImageSet
from umeta.errors import UmetaError
from umeta.learners.base import LEARNERS
from umeta.learners.maml import MAML
from umeta.models import MLP, build_backbone
from umeta.tasks import Episode, EpisodeSampler

N_WAY = 5


def random_episode(tasks: int, shape: tuple[int, ...], k_shot: int = 1, q_query: int = 2,
                   seed: int = 0, dtype=torch.float64) -> Episode:
    gen = torch.Generator().manual_seed(seed)
    ways = torch.arange(N_WAY)
    return Episode(
        torch.rand(tasks, N_WAY * k_shot, *shape, generator=gen, dtype=dtype),
        ways.repeat_interleave(k_shot).expand(tasks, -1),
        torch.rand(tasks, N_WAY * q_query, *shape, generator=gen, dtype=dtype),
        ways.repeat_interleave(q_query).expand(tasks, -1),
        N_WAY,
    )


class ConvInstanceNorm(nn.Module):
    """conv3x3 -> InstanceNorm -> ReLU -> global average pool, for 1x8x8 images."""

    out_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.norm = nn.InstanceNorm2d(6, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x))).mean((2, 3))


def make_learner(kind: str, seed: int = 0, **kwargs) -> tuple[MAML, tuple[int, ...]]:
    """conv4 (BatchNorm), mlp (LayerNorm) or instancenorm backbones, in float64."""
    torch.manual_seed(seed)
    if kind == "conv4":
        shape = (1, 16, 16)
        backbone = build_backbone("conv4", shape, hidden=8, running_stats=False)
    elif kind == "mlp":
        shape = (1, 4, 4)
        backbone = MLP(16, (12, 10), norm=True)
    else:
        shape = (1, 8, 8)
        backbone = ConvInstanceNorm()
    return MAML(backbone, N_WAY, **kwargs).double(), shape


def loop_reference(learner: MAML, episode: Episode, steps: int) -> torch.Tensor:
    """Per-task query losses (T,) by a plain Python loop with ``torch.autograd.grad``."""
    params, lrs = learner.meta_params(), learner.step_sizes()
    losses = []
    for t in range(episode.num_tasks):
        sx, sy = episode.support_x[t], episode.support_y[t]
        fast = {n: params[n] for n in learner.adapted_names}
        support_feats = learner.encode(params, sx)
        for _ in range(steps):
            full = {**params, **fast}
            feats = support_feats if learner.anil else learner.encode(full, sx)
            loss = F.cross_entropy(learner.head_logits(full, feats), sy)
            grads = torch.autograd.grad(loss, list(fast.values()),
                                        create_graph=not learner.first_order)
            fast = {n: fast[n] - lrs[n] * g for n, g in zip(fast, grads)}
        full = {**params, **fast}
        logits = learner.head_logits(full, learner.encode(full, episode.query_x[t]))
        losses.append(F.cross_entropy(logits, episode.query_y[t]))
    return torch.stack(losses)


def meta_grads(learner: MAML, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    names, params = zip(*learner.named_parameters())
    return dict(zip(names, torch.autograd.grad(loss, params)))


VARIANTS = [
    pytest.param(dict(), id="second-order"),
    pytest.param(dict(first_order=True), id="first-order"),
    pytest.param(dict(anil=True), id="anil"),
    pytest.param(dict(anil=True, first_order=True), id="anil-first-order"),
    pytest.param(dict(learn_inner_lr=True), id="learned-lr"),
    pytest.param(dict(learn_inner_lr=True, first_order=True), id="learned-lr-first-order"),
]


@pytest.mark.parametrize("kind", ["conv4", "mlp", "instancenorm"])
@pytest.mark.parametrize("options", VARIANTS)
def test_vmap_equals_per_task_loop(kind, options):
    learner, shape = make_learner(kind, inner_steps=2, inner_lr=0.3, **options)
    episode = random_episode(3, shape)
    logits = learner(episode)
    vmapped = torch.stack([F.cross_entropy(logits[t], episode.query_y[t]) for t in range(3)])
    looped = loop_reference(learner, episode, steps=2)
    torch.testing.assert_close(vmapped, looped, rtol=1e-9, atol=1e-10)
    got, want = meta_grads(learner, vmapped.mean()), meta_grads(learner, looped.mean())
    for name in want:  # (conv biases before a norm layer get an exactly-zero gradient)
        assert name.endswith("bias") or want[name].abs().sum() > 0, name
        torch.testing.assert_close(got[name], want[name], rtol=1e-8, atol=1e-10, msg=name)


def test_eval_mode_uses_eval_inner_steps_and_chunking_changes_nothing():
    learner, shape = make_learner("conv4", inner_steps=1, eval_inner_steps=3, inner_lr=0.3)
    episode = random_episode(4, shape)
    learner.eval()
    logits = learner(episode)
    looped = loop_reference(learner, episode, steps=3)
    vmapped = torch.stack([F.cross_entropy(logits[t], episode.query_y[t]) for t in range(4)])
    torch.testing.assert_close(vmapped, looped, rtol=1e-9, atol=1e-10)
    assert not torch.allclose(looped, loop_reference(learner, episode, steps=1))
    learner.chunk_size = 3
    torch.testing.assert_close(learner(episode), logits, rtol=1e-12, atol=1e-12)


def test_adapt_then_predict_equals_forward():
    learner, shape = make_learner("mlp", inner_steps=2, inner_lr=0.3)
    episode = random_episode(3, shape)
    state = learner.adapt(episode.support_x, episode.support_y, N_WAY)
    assert set(state) == set(learner.meta_params())
    assert all(v.shape[0] == 3 for v in state.values())
    torch.testing.assert_close(learner.predict(state, episode.query_x), learner(episode))


# ---- a tiny model unrolled by hand ------------------------------------------------------------

def hand_unroll(w1, b1, w2, b2, lr, episode, first_order, anil, steps=2):
    """Mean query loss of a 1-hidden-layer ReLU net after ``steps`` inner steps, written out."""

    def hidden(w1, b1, x):
        return F.relu(x.flatten(1) @ w1.T + b1)

    total = 0.0
    for t in range(episode.num_tasks):
        sx, sy = episode.support_x[t], episode.support_y[t]
        fw1, fb1, fw2, fb2 = w1, b1, w2, b2
        for _ in range(steps):
            loss = F.cross_entropy(hidden(fw1, fb1, sx) @ fw2.T + fb2, sy)
            if anil:
                gw2, gb2 = torch.autograd.grad(loss, (fw2, fb2), create_graph=True)
                if first_order:
                    gw2, gb2 = gw2.detach(), gb2.detach()
                fw2, fb2 = fw2 - lr[0] * gw2, fb2 - lr[1] * gb2
            else:
                g = torch.autograd.grad(loss, (fw1, fb1, fw2, fb2), create_graph=True)
                if first_order:
                    g = [x.detach() for x in g]
                fw1, fb1 = fw1 - lr[0] * g[0], fb1 - lr[1] * g[1]
                fw2, fb2 = fw2 - lr[2] * g[2], fb2 - lr[3] * g[3]
        logits = hidden(fw1, fb1, episode.query_x[t]) @ fw2.T + fb2
        total = total + F.cross_entropy(logits, episode.query_y[t])
    return total / episode.num_tasks


@pytest.mark.parametrize("anil", [False, True], ids=["maml", "anil"])
@pytest.mark.parametrize("learn_inner_lr", [False, True], ids=["fixed-lr", "learned-lr"])
def test_hand_unroll_two_steps(anil, learn_inner_lr):
    results = {}
    for first_order in (False, True):
        torch.manual_seed(0)
        learner = MAML(MLP(16, (6,)), N_WAY, inner_steps=2, inner_lr=0.5, anil=anil,
                       first_order=first_order, learn_inner_lr=learn_inner_lr).double()
        episode = random_episode(3, (1, 4, 4), k_shot=2, q_query=3, seed=1)
        layer, head = learner.backbone.net[1], learner.head
        lrs = learner.inner_lrs if learn_inner_lr else [0.5] * 4
        assert learner.adapted_names == (["head.weight", "head.bias"] if anil else
                                         ["backbone.net.1.weight", "backbone.net.1.bias",
                                          "head.weight", "head.bias"])
        want = hand_unroll(layer.weight, layer.bias, head.weight, head.bias, lrs, episode,
                           first_order, anil)
        got = learner.meta_loss(episode).loss
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        got_g, want_g = meta_grads(learner, got), meta_grads(learner, want)
        for name in want_g:
            torch.testing.assert_close(got_g[name], want_g[name], rtol=1e-8, atol=1e-11, msg=name)
        results[first_order] = got_g
    # second- and first-order meta-gradients really differ (otherwise the test above is moot)
    for name in ("head.weight", "backbone.net.1.weight"):
        diff = (results[False][name] - results[True][name]).abs().max()
        assert diff > 1e-3 * results[False][name].abs().max(), name


# ---- behaviour --------------------------------------------------------------------------------

@pytest.mark.parametrize("first_order", [False, True])
def test_learned_inner_lr_gets_a_gradient(first_order):
    learner, shape = make_learner("conv4", inner_steps=2, learn_inner_lr=True,
                                  first_order=first_order)
    assert learner.inner_lrs.shape == (len(learner.adapted_names),)
    torch.testing.assert_close(learner.inner_lrs.detach(),
                               torch.full_like(learner.inner_lrs, 0.4))
    learner.meta_loss(random_episode(2, shape)).loss.backward()
    assert learner.inner_lrs.grad is not None and (learner.inner_lrs.grad != 0).all()


def test_anil_adapts_the_head_only():
    learner, shape = make_learner("conv4", inner_steps=3, inner_lr=0.5, anil=True)
    episode = random_episode(3, shape)
    state = learner.adapt(episode.support_x, episode.support_y, N_WAY)
    assert set(state) == {"head.weight", "head.bias"}
    assert not torch.allclose(state["head.weight"][0], learner.head.weight)
    for t in range(3):  # queries go through the un-adapted backbone module itself
        feats = learner.backbone(episode.query_x[t])
        want = feats @ state["head.weight"][t].T + state["head.bias"][t]
        torch.testing.assert_close(learner.predict(state, episode.query_x)[t], want)


def test_backbone_with_running_stats_is_refused():
    backbone = build_backbone("conv4", (1, 16, 16), hidden=8)
    with pytest.raises(UmetaError, match="running_stats=False"):
        MAML(backbone, N_WAY)


def test_bad_arguments_and_wrong_n_way_are_refused():
    backbone = MLP(16, (8,))
    with pytest.raises(UmetaError, match="inner_steps"):
        MAML(backbone, N_WAY, inner_steps=0)
    with pytest.raises(UmetaError, match="chunk_size"):
        MAML(backbone, N_WAY, chunk_size=0)
    learner = MAML(backbone, 3).double()
    with pytest.raises(UmetaError, match="n_way=5"):
        learner(random_episode(2, (1, 4, 4)))


def test_registered_as_maml():
    learner = LEARNERS.build("maml", backbone=MLP(16, (8,)), n_way=4, inner_steps=2)
    assert isinstance(learner, MAML) and learner.head.out_features == 4


def test_works_under_no_grad():
    learner, shape = make_learner("conv4", inner_steps=3, inner_lr=0.5)
    episode = random_episode(3, shape)
    with torch.no_grad():
        logits = learner(episode)
        state = learner.adapt(episode.support_x, episode.support_y, N_WAY)
    assert not logits.requires_grad
    torch.testing.assert_close(logits, learner(episode).detach())
    # the inner loop did run: the adapted weights fit the support set better
    params = learner.meta_params()
    fast = {**params, **{n: v[0] for n, v in state.items()}}
    sx, sy = episode.support_x[0], episode.support_y[0]
    with torch.no_grad():
        before, after = (F.cross_entropy(learner.head_logits(p, learner.encode(p, sx)), sy)
                         for p in (params, fast))
    assert after < before - 0.1


def prototype_images(classes: int, per_class: int, seed: int) -> ImageSet:
    """Each class: a random 1x4x4 pattern plus pixel noise, as uint8 images."""
    gen = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, 1, 1, 4, 4, generator=gen) * 255
    noise = torch.randn(classes, per_class, 1, 4, 4, generator=gen) * 30
    images = (protos + noise).clamp(0, 255).to(torch.uint8).flatten(0, 1)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return ImageSet(images, labels, [f"c{i}" for i in range(classes)], name="prototypes")


@pytest.mark.parametrize("options", [dict(), dict(first_order=True), dict(anil=True)],
                         ids=["second-order", "first-order", "anil"])
def test_meta_training_improves_query_accuracy(options):
    torch.manual_seed(0)
    learner = MAML(MLP(16, (32,)), N_WAY, inner_steps=2, inner_lr=0.5, **options)
    train = EpisodeSampler(prototype_images(40, 10, seed=0), N_WAY, 1, 5, seed=0)
    test = EpisodeSampler(prototype_images(20, 10, seed=1), N_WAY, 1, 5, seed=1).sample(200)

    def accuracy() -> float:
        with torch.no_grad():
            return float(learner.meta_loss(test).accuracy)

    before = accuracy()
    optimizer = torch.optim.Adam(learner.parameters(), lr=3e-3)
    for _ in range(50):
        optimizer.zero_grad()
        learner.meta_loss(train.sample(8)).loss.backward()
        optimizer.step()
    assert accuracy() > before + 0.15
