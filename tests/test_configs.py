"""The shipped configs load, and the headline configs are the ones their results were run with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from umeta.config import TrainConfig, assemble_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
#: config -> the results file the README quotes for it
HEADLINES = {
    "b1_protonet_final.toml": "b1_protonet_1shot_trainval_shift2.json",
    "b1_psco.toml": "b1_psco_105000.json",
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads(path):
    cfg = assemble_config(str(path))
    assert cfg.optim.steps > 0 and cfg.data.dataset


@pytest.mark.parametrize("name, results", HEADLINES.items())
def test_headline_config_is_the_recorded_one(name, results):
    """All but the run section (run dir, device options) equal the config in the results file;
    keys added to the config since the run was recorded hold their defaults."""
    shipped = assemble_config(str(ROOT / "configs" / name)).to_dict()
    recorded = json.loads((ROOT / "benchmarks" / "results" / results).read_text())["config"]
    defaults = TrainConfig().to_dict()
    assert shipped.keys() == recorded.keys()
    for section in shipped:
        if section != "run":
            later = {k: defaults[section][k] for k in shipped[section].keys() - recorded[section]}
            assert shipped[section] == {**recorded[section], **later}, section
    assert shipped["run"]["seed"] == recorded["run"]["seed"]
