"""Explaining a clustering: confidence against hand-computed margins, prototypes, typical and
ambiguous members, and the estimator's attributes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from umeta.adapt import (assignment_confidence, cluster_dataset, explain_clusters,
                         prototype_indices, ranked_members)
from umeta.errors import UmetaError
from umeta.estimators import MetaClusterer


def test_confidence_is_the_hand_computed_relative_margin():
    centers = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    feats = torch.tensor([[1.0, 0.0],   # own 1, others 3 and sqrt(10): (3 - 1) / 3
                          [2.0, 0.0],   # on the boundary of clusters 0 and 1: 0
                          [0.0, 3.0],   # at its centre: 1
                          [3.0, 0.0]])  # labelled 0 but nearer centre 1: (1 - 3) / 3
    labels = torch.tensor([0, 0, 2, 0])
    got = assignment_confidence(feats, labels, centers)
    expected = torch.tensor([2 / 3, 0.0, 1.0, -2 / 3])
    torch.testing.assert_close(got, expected)


def test_confidence_matches_a_loop_over_samples():
    gen = torch.Generator().manual_seed(0)
    feats, centers = torch.randn(40, 5, generator=gen), torch.randn(4, 5, generator=gen)
    labels = torch.randint(4, (40,), generator=gen)
    expected = []
    for x, a in zip(feats, labels):
        d = [math.dist(x.tolist(), c.tolist()) for c in centers]
        own, other = d[a], min(v for j, v in enumerate(d) if j != a)
        expected.append((other - own) / max(other, own))
    torch.testing.assert_close(assignment_confidence(feats, labels, centers),
                               torch.tensor(expected))


def test_one_cluster_and_coincident_points_have_confidence_one():
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert assignment_confidence(feats, torch.tensor([0, 0]), feats[:1]).tolist() == [1.0, 1.0]
    same = torch.zeros(1, 2)
    assert assignment_confidence(same, torch.tensor([0]), torch.zeros(2, 2)).tolist() == [1.0]


def test_prototypes_are_members_nearest_their_centre_and_empty_clusters_have_none():
    feats = torch.tensor([[0.0], [0.9], [1.2], [5.0], [6.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    centers = torch.tensor([[1.0], [5.4], [1.1]])  # cluster 2 has no members
    assert prototype_indices(feats, labels, centers).tolist() == [1, 3, -1]


def test_ranked_members_hand_case_and_padding():
    confidence = [0.9, 0.1, 0.5, 0.7, 0.3, 0.8]
    labels = [0, 0, 0, 1, 1, 0]
    typical, ambiguous = ranked_members(confidence, labels, 3, 2)
    assert typical.tolist() == [[0, 5], [3, 4], [-1, -1]]
    assert ambiguous.tolist() == [[1, 2], [4, 3], [-1, -1]]


@pytest.mark.parametrize("call, fragment", [
    (lambda: ranked_members([0.5], [0], 1, 0), "n_examples=0"),
    (lambda: ranked_members([0.5, 0.2], [0], 1, 1), "two arrays"),
    (lambda: assignment_confidence(torch.zeros(3, 2), torch.tensor([0, 1]), torch.zeros(2, 2)),
     "one entry per sample"),
    (lambda: assignment_confidence(torch.zeros(2, 2), torch.tensor([0, 5]), torch.zeros(2, 2)),
     "index the 2 centers"),
    (lambda: prototype_indices(torch.zeros(2, 3), torch.tensor([0, 0]), torch.zeros(2, 2)),
     "must share D"),
    (lambda: explain_clusters(np.zeros(3), [0, 0, 0], [[0.0]]), "(N, D)"),
])
def test_bad_input_is_one_clear_error(call, fragment):
    with pytest.raises(UmetaError, match=None) as err:
        call()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_explain_clusters_agrees_with_the_estimator():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, size=(15, 3)) for c in (0.0, 3.0, 6.0)])
    model = MetaClusterer(n_clusters=3).fit(x)
    out = explain_clusters(x, model.labels_, model.cluster_centers_, n_examples=4)
    np.testing.assert_allclose(out.confidence, model.confidence_)
    assert out.prototypes.tolist() == model.prototype_indices_.tolist()
    assert all(model.labels_[p] == c for c, p in enumerate(model.prototype_indices_))
    typical, ambiguous = ranked_members(model.confidence_, model.labels_, 3, 4)
    assert np.array_equal(typical, out.typical) and np.array_equal(ambiguous, out.ambiguous)
    for c in range(3):  # typical members are more confident than ambiguous ones
        assert model.confidence_[out.typical[c]].min() > model.confidence_[out.ambiguous[c]].max()


def test_cluster_dataset_returns_the_clustered_features_normalised():
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(1)) * 5
    result = cluster_dataset(None, x, 2, normalize=True)
    torch.testing.assert_close(result.features.norm(dim=1), torch.ones(20))
    torch.testing.assert_close(result.features, torch.nn.functional.normalize(x, dim=1))
