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


def write_folder(root, num_classes: int, per_class: int = 4, labelled: bool = True):
    """Glyph PNGs (20x20) in one subfolder per class, or all loose in ``root``."""
    from PIL import Image

    from umeta.data import make_glyphs

    glyphs = make_glyphs(num_classes, samples_per_class=per_class, image_size=20, first_class=3000)
    for i, (img, label) in enumerate(zip(glyphs.images, glyphs.labels)):
        folder = root / glyphs.class_names[int(label)] if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(folder / f"{i:03d}.png")
    return root


def test_a_labelled_image_folder_is_split_by_class_with_a_seed(tmp_path):
    cfg = DataConfig(dataset=str(write_folder(tmp_path / "mine", 10)), image_size=16)
    parts = {role: load_part(cfg, role) for role in ("train", "val", "test", "trainval")}
    assert [parts[r].num_classes for r in ("train", "val", "test", "trainval")] == [7, 1, 2, 8]
    names = {r: set(p.class_names) for r, p in parts.items()}
    assert not names["train"] & names["val"] and not names["trainval"] & names["test"]
    assert names["trainval"] == names["train"] | names["val"]
    assert len(parts["trainval"]) == 32 and parts["trainval"].image_shape == (1, 16, 16)
    again = load_part(DataConfig(dataset=str(tmp_path / "mine"), image_size=20), "test")
    assert again.class_names == parts["test"].class_names  # the same split on every call


def test_an_unlabeled_image_folder_is_all_training_images(tmp_path):
    cfg = DataConfig(dataset=str(write_folder(tmp_path / "loose", 5, labelled=False)))
    everything = load_part(cfg, "trainval")
    assert len(everything) == 20 and everything.num_classes == 0
    assert (everything.labels == -1).all()
    assert not has_part(cfg, "val") and not has_part(cfg, "test")
    with pytest.raises(UmetaError, match="has no 'test' part"):
        load_part(cfg, "test")


def test_folder_errors(tmp_path):
    with pytest.raises(UmetaError, match="needs at least 3 class subfolders; it has 2"):
        load_part(DataConfig(dataset=str(write_folder(tmp_path / "two", 2))), "train")
    with pytest.raises(UmetaError, match="or the path of a folder of images"):
        load_part(DataConfig(dataset=str(tmp_path / "missing")), "train")
