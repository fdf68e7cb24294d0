"""benchmarks/table_ensemble.py: an ensemble of table models behind the estimators."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from umeta.errors import UmetaError
from umeta.estimators import MetaAnomalyDetector, MetaClusterer
from umeta.pretrained import load_builtin

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import table_ensemble  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return load_builtin("tables", torch.device("cpu"))


def test_an_ensemble_of_one_model_twice_is_that_model(model):
    """Two copies of one model: embeddings side by side (the width doubles, each half the
    model's scaled by its mean row norm), the same logits, so the same clusters and scores."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(5, 1, (60, 4))]).astype(np.float32)
    twice = table_ensemble.TableEnsemble([model, model])
    z, logit, _ = model.encode_table(torch.from_numpy(x))
    z2, logit2, contexts = twice.encode_table(torch.from_numpy(x))
    half = z / z.norm(dim=-1).mean()
    assert torch.allclose(z2, torch.cat([half, half], -1)) and torch.allclose(logit2, logit)
    new = torch.from_numpy(rng.normal(0, 1, (5, 4)).astype(np.float32))
    z_new, logit_new = model.encode_rows(new, model.encode_table(torch.from_numpy(x))[2])
    rows, row_logit = twice.encode_rows(new, contexts)  # new rows: the table's own scale
    assert torch.allclose(rows, torch.cat([z_new, z_new], -1) / z.norm(dim=-1).mean())
    assert torch.allclose(row_logit, logit_new)
    one = MetaClusterer(model, 2, random_state=0).fit(x).labels_
    both = MetaClusterer(twice, 2, random_state=0).fit(x).labels_
    assert np.array_equal(one, both)
    assert np.allclose(MetaAnomalyDetector(model, random_state=0).fit(x).training_scores_,
                       MetaAnomalyDetector(twice, random_state=0).fit(x).training_scores_)


def test_an_ensemble_needs_two_table_models(model):
    with pytest.raises(UmetaError, match="at least two table models"):
        table_ensemble.TableEnsemble([model])
    with pytest.raises(UmetaError, match="at least two table models"):
        table_ensemble.TableEnsemble([model, torch.nn.Linear(2, 2)])


def test_b8_factory_leaves_out_every_members_tables():
    method = table_ensemble.load("builtin,builtin")
    assert method.training.startswith("ensemble of 2") and len(method.training_tables) == 106
