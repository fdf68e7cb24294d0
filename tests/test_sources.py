"""Data parts by role: each split maps train / val / test / trainval to its own parts."""

from __future__ import annotations

import pytest

from umeta.config import DataConfig
from umeta.data.sources import has_part, load_part, resolve_part
from umeta.errors import UmetaError


def test_roles_map_to_each_splits_parts():
    vinyals = DataConfig(dataset="omniglot", split="vinyals")
    assert [resolve_part(vinyals, r) for r in ("train", "val", "test", "trainval")] == [
        "train", "val", "test", "trainval"]
    lake = DataConfig(dataset="omniglot", split="background-evaluation")
    assert [resolve_part(lake, r) for r in ("train", "val", "test", "trainval")] == [
        "background", None, "evaluation", "background"]
    assert resolve_part(lake, "evaluation") == "evaluation" and not has_part(lake, "val")
    assert has_part(DataConfig(), "val")


@pytest.mark.parametrize("cfg, part, match", [
    (DataConfig(dataset="omniglot", split="background-evaluation"), "val",
     "has no 'val' part; parts: train, trainval, test, background, evaluation"),
    (DataConfig(dataset="omniglot", split="lake"), "train", "unknown Omniglot split 'lake'"),
    (DataConfig(dataset="mnist"), "train", "unknown dataset 'mnist'; choose one of: glyphs, "
                                           "omniglot"),
    (DataConfig(), "background", "unknown data part 'background' of 'glyphs'"),
])
def test_part_errors_name_the_valid_choices(cfg, part, match):
    with pytest.raises(UmetaError, match=match):
        load_part(cfg, part)


def test_glyph_parts_are_disjoint_classes():
    train = load_part(DataConfig(image_size=16), "train")
    test = load_part(DataConfig(image_size=16), "test")
    assert train.num_classes == 800 and test.num_classes == 200
    assert not set(train.class_names) & set(test.class_names)
