"""Named data sets and their parts, as `ImageSet`s, behind a registry.

A run asks for a part by its role: ``train``, ``val``, ``test`` or ``trainval`` (train + val,
what label-free runs and final supervised runs train on). Each data set maps the roles to its
own parts; a split's own part names (Omniglot's ``background`` / ``evaluation``) work too.
Omniglot's ``background-evaluation`` split (Lake et al.: train on the 30 background alphabets,
test on the 20 evaluation alphabets) has no validation part. Mixtures of Omniglot with the
procedural prior (``omniglot+procedural:F``, `umeta.data.mixed`) take Omniglot's parts.
"""

from __future__ import annotations

from typing import Callable

from umeta.config import DataConfig
from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.registry import Registry

ROLES = ("train", "val", "test", "trainval")

#: Class ranges of the built-in glyph data: disjoint, so val and test classes are never seen.
GLYPH_PARTS: dict[str, tuple[int, int]] = {
    "train": (0, 800), "val": (800, 900), "test": (900, 1100), "trainval": (0, 900),
}

#: The Omniglot part each role reads in each split (None: the split has no such part).
OMNIGLOT_ROLES: dict[str, dict[str, str | None]] = {
    "vinyals": {role: role for role in ROLES},
    "background-evaluation": {"train": "background", "trainval": "background", "val": None,
                              "test": "evaluation"},
}

#: loader(cfg, part, rotations) -> ImageSet, for a part name the data set has
DATASETS: Registry[Callable[[DataConfig, str, bool], ImageSet]] = Registry("dataset")


def _registered(dataset: str) -> str:
    """The registry name of ``dataset``: mixtures ``omniglot+procedural:F`` share one loader."""
    from umeta.data.mixed import is_mixture, parse_mixture

    if is_mixture(dataset):
        base, _ = parse_mixture(dataset)  # an unknown mixture is one clear error here
        return "procedural" if base is None else f"{base}+procedural"
    return dataset


def _parts(cfg: DataConfig) -> dict[str, str | None]:
    """Role or part name -> the data set's part name (None where it has none)."""
    if _registered(cfg.dataset) in ("omniglot", "omniglot+procedural"):
        if cfg.split not in OMNIGLOT_ROLES:
            raise UmetaError(f"unknown Omniglot split {cfg.split!r}; use one of "
                             f"{list(OMNIGLOT_ROLES)}")
        roles = OMNIGLOT_ROLES[cfg.split]
        return {**roles, **{p: p for p in roles.values() if p is not None}}
    DATASETS.get(_registered(cfg.dataset))  # an unknown name lists the valid ones
    return {role: role for role in ROLES}


def resolve_part(cfg: DataConfig, part: str) -> str | None:
    """The data set's own name for ``part`` (a role or a part name); None if it has none."""
    parts = _parts(cfg)
    if part not in parts:
        split = f" (split {cfg.split!r})" if "omniglot" in cfg.dataset else ""
        raise UmetaError(f"unknown data part {part!r} of {cfg.dataset!r}{split}; choose one of: "
                         f"{', '.join(parts)}")
    return parts[part]


def has_part(cfg: DataConfig, part: str) -> bool:
    """Whether the data set has ``part`` (e.g. ``val`` for validation)."""
    return resolve_part(cfg, part) is not None


def load_part(cfg: DataConfig, part: str, *, rotations: bool | None = None) -> ImageSet:
    """The ``part`` of the data set that ``cfg`` names.

    Parameters
    ----------
    cfg : DataConfig
    part : a role ("train", "val", "test", "trainval") or one of the split's part names
    rotations : override ``cfg.rotations`` (evaluation never adds rotated classes).
    """
    name = resolve_part(cfg, part)
    if name is None:
        raise UmetaError(f"the {cfg.split!r} split of {cfg.dataset!r} has no {part!r} part; "
                         f"parts: {', '.join(p for p, n in _parts(cfg).items() if n)}")
    loader = DATASETS.get(_registered(cfg.dataset))
    return loader(cfg, name, cfg.rotations if rotations is None else rotations)


@DATASETS.register("glyphs")
def _glyphs(cfg: DataConfig, part: str, rotations: bool) -> ImageSet:
    from umeta.data.glyphs import make_glyphs

    if rotations:
        raise UmetaError("data.rotations is for Omniglot; the glyph data varies its own "
                         "orientation: set data.rotations=false")
    first, stop = GLYPH_PARTS[part]
    return make_glyphs(stop - first, image_size=cfg.image_size, first_class=first,
                       name=f"glyphs-{part}")


@DATASETS.register("omniglot")
def _omniglot(cfg: DataConfig, part: str, rotations: bool) -> ImageSet:
    from umeta.data.omniglot import load_omniglot

    return load_omniglot(part, split=cfg.split, image_size=cfg.image_size, rotations=rotations,
                         data_dir=cfg.data_dir, download=cfg.download)


@DATASETS.register("procedural")
@DATASETS.register("omniglot+procedural")
def _mixture(cfg: DataConfig, part: str, rotations: bool) -> ImageSet:
    """The procedural prior alone, or Omniglot's part plus generated images
    (``omniglot+procedural:F``, `umeta.data.mixed`)."""
    from umeta.data.mixed import load_mixture

    return load_mixture(cfg, part, rotations)
