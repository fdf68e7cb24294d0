"""Named data sets and their parts (train / val / test / trainval), as `ImageSet`s."""

from __future__ import annotations

from umeta.config import DataConfig
from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError

DATASETS = ("glyphs", "omniglot")
PARTS = ("train", "val", "test", "trainval")

#: Class ranges of the built-in glyph data: disjoint, so val and test classes are never seen.
GLYPH_PARTS: dict[str, tuple[int, int]] = {
    "train": (0, 800), "val": (800, 900), "test": (900, 1100), "trainval": (0, 900),
}


def load_part(cfg: DataConfig, part: str, *, rotations: bool | None = None) -> ImageSet:
    """The ``part`` of the data set that ``cfg`` names.

    Parameters
    ----------
    cfg : DataConfig
    part : "train", "val", "test" or "trainval"
    rotations : override ``cfg.rotations`` (evaluation never adds rotated classes).
    """
    from umeta.data.mixed import is_mixture, load_mixture

    if is_mixture(cfg.dataset):  # the procedural prior, alone or beside Omniglot
        return load_mixture(cfg, part, rotations)
    if part not in PARTS:
        raise UmetaError(f"unknown data part {part!r}; choose one of: {', '.join(PARTS)}")
    rotate = cfg.rotations if rotations is None else rotations
    if cfg.dataset == "glyphs":
        from umeta.data.glyphs import make_glyphs

        if rotate:
            raise UmetaError("data.rotations is for Omniglot; the glyph data varies its own "
                             "orientation: set data.rotations=false")
        first, stop = GLYPH_PARTS[part]
        return make_glyphs(stop - first, image_size=cfg.image_size, first_class=first,
                           name=f"glyphs-{part}")
    if cfg.dataset == "omniglot":
        from umeta.data.omniglot import load_omniglot

        return load_omniglot(part, split=cfg.split, image_size=cfg.image_size, rotations=rotate,
                             data_dir=cfg.data_dir, download=cfg.download)
    raise UmetaError(f"unknown dataset {cfg.dataset!r}; choose one of: {', '.join(DATASETS)}, "
                     f"procedural, omniglot+procedural[:F]")
