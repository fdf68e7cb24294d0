import numpy as np
import pytest
import torch

from umeta.errors import UmetaError
from umeta.evaluate import set_transductive_steps
from umeta.learners.maml import MAML
from umeta.learners.protonet import (ProtoNet, class_prototypes, negative_squared_distances,
                                     squared_distances, transductive_prototypes)
from umeta.models import build_backbone
from umeta.tasks import EpisodeSampler


def test_prototypes_and_distances_match_a_numpy_loop():
    gen = torch.Generator().manual_seed(0)
    feats, query = torch.randn(3, 6, 4, generator=gen), torch.randn(3, 5, 4, generator=gen)
    labels = torch.tensor([[0, 1, 2, 0, 1, 2]] * 3)
    protos = class_prototypes(feats, labels, 3)
    dists = squared_distances(query, protos)
    for t in range(3):
        for c in range(3):
            ref = feats[t].numpy()[labels[t].numpy() == c].mean(0)
            np.testing.assert_allclose(protos[t, c].numpy(), ref, rtol=1e-6)
            for q in range(5):
                np.testing.assert_allclose(dists[t, q, c].item(),
                                           ((query[t, q].numpy() - ref) ** 2).sum(), rtol=1e-5)


def test_transductive_refinement_matches_a_loop():
    gen = torch.Generator().manual_seed(1)
    support, query = torch.randn(2, 4, 3, generator=gen), torch.randn(2, 6, 3, generator=gen)
    labels = torch.tensor([[0, 0, 1, 1]] * 2)
    got = transductive_prototypes(support, labels, query, 2, negative_squared_distances, 2, 2.0)
    assert torch.allclose(transductive_prototypes(support, labels, query, 2,
                                                  negative_squared_distances, 0, 2.0),
                          class_prototypes(support, labels, 2))
    for t in range(2):
        s, q, y = support[t].double().numpy(), query[t].double().numpy(), labels[t].numpy()
        protos = np.stack([s[y == c].mean(0) for c in range(2)])
        for _ in range(2):
            logits = -((q[:, None] - protos[None]) ** 2).sum(-1) / 2.0
            w = np.exp(logits - logits.max(1, keepdims=True))
            w /= w.sum(1, keepdims=True)
            protos = np.stack([(s[y == c].sum(0) + (w[:, c:c + 1] * q).sum(0))
                               / ((y == c).sum() + w[:, c].sum()) for c in range(2)])
        np.testing.assert_allclose(got[t].numpy(), protos, rtol=1e-4, atol=1e-5)


def test_transductive_steps_apply_only_at_evaluation(tiny_images):
    torch.manual_seed(0)
    learner = ProtoNet(build_backbone("conv4", (1, 16, 16), hidden=8), transductive_steps=3)
    episode = EpisodeSampler(tiny_images, 5, 1, 3, seed=0).sample(2)
    inductive = ProtoNet(learner.backbone)
    learner.train(), inductive.train()
    assert torch.equal(learner(episode), inductive(episode))
    learner.eval(), inductive.eval()
    assert not torch.allclose(learner(episode), inductive(episode))


def test_set_transductive_steps_on_prototype_learners_only():
    backbone = build_backbone("conv4", (1, 16, 16), hidden=8)
    protonet = ProtoNet(backbone)
    set_transductive_steps(protonet, 4)
    assert protonet.transductive_steps == 4
    maml = MAML(build_backbone("conv4", (1, 16, 16), hidden=8, running_stats=False), n_way=5)
    set_transductive_steps(maml, 0)  # the inductive rule is every learner's
    with pytest.raises(UmetaError, match="MAML has no transductive evaluation"):
        set_transductive_steps(maml, 2)
    with pytest.raises(UmetaError, match="must be 0 or more"):
        set_transductive_steps(protonet, -1)


def test_forward_is_predict_after_adapt_for_every_learner(tiny_images):
    """forward = predict(adapt(support, labels, n_way, queries), queries), transductive or not;
    adapt without the queries is the inductive rule."""
    from umeta.learners.psco import PsCo

    torch.manual_seed(0)
    episode = EpisodeSampler(tiny_images, 5, 1, 3, seed=0).sample(2)
    learners = [
        ProtoNet(build_backbone("conv4", (1, 16, 16), hidden=8), transductive_steps=3),
        PsCo(build_backbone("conv4", (1, 16, 16), hidden=8), proj_dim=8, hidden_dim=16,
             queue_size=32, transductive_steps=3),
        MAML(build_backbone("conv4", (1, 16, 16), hidden=8, running_stats=False), n_way=5),
    ]
    for learner in learners:
        for training in (True, False):
            learner.train(training)
            with torch.no_grad():
                state = learner.adapt(episode.support_x, episode.support_y, 5, episode.query_x)
                torch.testing.assert_close(learner(episode), learner.predict(state, episode.query_x))
                inductive = learner.predict(learner.adapt(episode.support_x, episode.support_y, 5),
                                            episode.query_x.clone())
                if hasattr(learner, "transductive_steps") and not training:
                    assert not torch.allclose(inductive, learner(episode)), type(learner).__name__
                    learner.transductive_steps = 0
                    torch.testing.assert_close(inductive, learner(episode))
                    learner.transductive_steps = 3
