"""Label-free fine-tuning on a new data set's own images (`umeta.adapt.finetune`)."""

from __future__ import annotations

import inspect
import types

import numpy as np
import pytest
import torch

from umeta import UmetaError
from umeta.adapt import finetune, finetuned_embeddings
from umeta.adapt.finetune import finetune_path
from umeta.estimators import MetaClusterer
from umeta.learners import ProtoNet
from umeta.models import build_backbone
from umeta.tasks.umtra import UMTRA


@pytest.fixture
def learner() -> ProtoNet:
    """An untrained ProtoNet over a 4-filter Conv4 (BatchNorm with running statistics)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = ProtoNet(build_backbone("conv4", (1, 16, 16), hidden=4))
    net.image_shape = (1, 16, 16)
    with torch.no_grad():  # running statistics that differ from a fresh module's
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1, generator=torch.Generator().manual_seed(1))
    return net


@pytest.fixture
def images(tiny_images) -> torch.Tensor:
    return tiny_images.images[:24]  # uint8 (24, 1, 16, 16)


FAST = {"n_way": 4, "meta_batch": 2}  # small pseudo-episodes keep the tests quick


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_zero_steps_returns_an_identical_copy(learner, images):
    tuned = finetune(learner, images, steps=0)
    assert tuned is not learner
    assert_same(state(tuned), state(learner))
    with torch.no_grad():
        next(tuned.parameters()).add_(1.0)
    assert not torch.equal(next(tuned.parameters()), next(learner.parameters()))


def test_steps_change_the_weights_of_a_copy_only(learner, images):
    before = state(learner)
    learner.train()
    tuned = finetune(learner, images, steps=3, lr=1e-2, **FAST)
    assert_same(state(learner), before)  # the caller's learner, buffers included, is untouched
    assert learner.training and tuned.training  # the caller's mode, on both
    params = dict(tuned.named_parameters())
    assert all(not torch.equal(params[k], before[k]) for k in params)
    # BatchNorm was in eval mode: its meta-trained running statistics are kept as they were
    for name, buf in tuned.named_buffers():
        assert torch.equal(buf, before[name]), name


def test_one_sgd_step_equals_a_hand_computed_step(learner, images):
    lr = 0.05
    tuned = finetune(learner, images, steps=1, lr=lr, optimizer="sgd", n_way=6, meta_batch=2,
                     seed=3)
    episode = UMTRA(images, 6, 1, 2, seed=3).sample(2)  # the same pseudo-episodes
    learner.eval()
    names, params = zip(*learner.named_parameters())
    grads = torch.autograd.grad(learner.meta_loss(episode).loss, params)
    for name, p, g in zip(names, params, grads):
        torch.testing.assert_close(dict(tuned.named_parameters())[name], p - lr * g)


def test_same_seed_same_result_other_seed_other_result(learner, images):
    a, b = (state(finetune(learner, images, steps=2, lr=1e-2, seed=5, **FAST)) for _ in range(2))
    assert_same(a, b)
    c = state(finetune(learner, images, steps=2, lr=1e-2, seed=6, **FAST))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_float_images_in_unit_range_equal_their_uint8_source(learner, images):
    a = state(finetune(learner, images, steps=2, lr=1e-2, **FAST))
    b = state(finetune(learner, images.float() / 255.0, steps=2, lr=1e-2, **FAST))
    assert_same(a, b)


def test_default_n_way_is_the_training_one_capped_by_the_number_of_images(learner, images,
                                                                          monkeypatch):
    seen, sample = [], UMTRA.sample

    def recording_sample(self, num_tasks):
        seen.append(self.n_way)
        return sample(self, num_tasks)

    monkeypatch.setattr(UMTRA, "sample", recording_sample)
    finetune(learner, images, steps=1, meta_batch=1)  # no config: 20
    finetune(learner, images[:5], steps=1, meta_batch=1)  # only 5 images: 5
    learner.config = types.SimpleNamespace(tasks=types.SimpleNamespace(n_way=3))
    finetune(learner, images, steps=1, meta_batch=1)  # meta-trained 3-way: 3
    assert seen == [20, 5, 3]


def test_a_path_of_step_counts_equals_separate_runs(learner, images):
    path = {n: state(tuned) for n, tuned in finetune_path(learner, images, [3, 0, 1], lr=1e-2,
                                                          **FAST)}
    assert list(path) == [0, 1, 3]
    for n, got in path.items():
        assert_same(got, state(finetune(learner, images, steps=n, lr=1e-2, **FAST)))


def test_finetuned_embeddings_equal_a_loop_over_tasks(learner, images):
    tasks = images.view(2, 12, 1, 16, 16)
    got = finetuned_embeddings(learner, tasks, [0, 2], lr=1e-2, seed=7, **FAST)
    assert sorted(got) == [0, 2] and got[2].shape == (2, 12, learner.backbone.out_dim)
    for t in range(2):
        ref = finetune(learner, tasks[t], steps=2, lr=1e-2, seed=7 + t, **FAST).embed(
            tasks[t].float() / 255.0)
        torch.testing.assert_close(got[2][t], ref)
    torch.testing.assert_close(got[0], learner.embed(images.float() / 255.0).view(2, 12, -1))


def test_the_objective_never_sees_labels(learner, images):
    assert not {"y", "labels", "support_y"} & set(inspect.signature(finetune).parameters)
    x = images[:9].numpy()  # 9 pseudo-classes per episode by default
    y = np.arange(len(x)) % 3
    fits = [MetaClusterer(learner, 3, finetune_steps=2, finetune_lr=1e-2, n_init=2).fit(x, labels)
            for labels in (y, np.random.default_rng(0).permutation(y), None)]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.labels_, fits[0].labels_)
        assert_same(state(other.learner_), state(fits[0].learner_))


def test_the_clusterer_fine_tunes_a_copy_and_predicts_with_it(learner, images):
    before = state(learner)
    x = images[:9].numpy()
    model = MetaClusterer(learner, 3, finetune_steps=2, finetune_lr=1e-2, n_init=2).fit(x)
    assert_same(state(learner), before)
    assert model.learner_ is not learner
    assert any(not torch.equal(v, before[k]) for k, v in state(model.learner_).items())
    np.testing.assert_array_equal(model.predict(x), model.labels_)
    plain = MetaClusterer(learner, 3, n_init=2).fit(x)
    assert plain.learner_ is learner  # off by default: no copy, no change


@pytest.mark.parametrize("kwargs, fragment", [
    ({"steps": -1}, "steps must be a whole number >= 0"),
    ({"steps": 1.5}, "steps must be a whole number >= 0"),
    ({"lr": 0.0}, "learning rate must be a number > 0"),
    ({"lr": -1e-3}, "learning rate must be a number > 0"),
    ({"lr": float("nan")}, "learning rate must be a number > 0"),
    ({"optimizer": "rmsprop"}, "unknown fine-tuning optimizer 'rmsprop'"),
    ({"n_way": 1}, "n_way >= 2"),
    ({"n_way": 25}, "n_way=25 is larger than the 24 images"),
    ({"meta_batch": 0}, "meta_batch must be"),
])
def test_bad_arguments_raise(learner, images, kwargs, fragment):
    with pytest.raises(UmetaError, match=fragment):
        finetune(learner, images, **kwargs)


def test_bad_images_raise(learner, images):
    with pytest.raises(UmetaError, match="at least 2 images"):
        finetune(learner, images[:1])
    with pytest.raises(UmetaError, match="trained on images of shape"):
        finetune(learner, torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(UmetaError, match=r"float images in \[0, 1\]"):
        finetune(learner, images.float())
    with pytest.raises(UmetaError, match="NaN or inf"):
        finetune(learner, torch.full((4, 1, 16, 16), float("nan")))
    with pytest.raises(UmetaError, match="needs a meta-trained Learner"):
        finetune(torch.nn.Linear(2, 2), images)


def test_the_clusterer_checks_its_fine_tuning_arguments(learner, images):
    x = images.numpy().reshape(len(images), -1).astype(float)
    with pytest.raises(UmetaError, match="pass a learner"):
        MetaClusterer(None, 3, finetune_steps=2).fit(x)
    with pytest.raises(UmetaError, match="steps must be"):
        MetaClusterer(None, 3, finetune_steps=-1).fit(x)
    with pytest.raises(UmetaError, match="learning rate"):
        MetaClusterer(learner, 3, finetune_steps=1, finetune_lr=0).fit(images.numpy())


def test_a_step_count_far_past_any_use_is_refused_before_running(learner, images):
    with pytest.raises(UmetaError, match=r"at most 100000 .*; got steps=99999999999"):
        finetune(learner, images, steps=99999999999)
    with pytest.raises(UmetaError, match=r"got finetune_steps=99999999999"):
        MetaClusterer(learner, 3, finetune_steps=99999999999).fit(images.numpy())
