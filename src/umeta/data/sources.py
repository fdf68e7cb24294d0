"""Named data sets and their parts, as `ImageSet`s, behind a registry.

A run asks for a part by its role: ``train``, ``val``, ``test`` or ``trainval`` (train + val,
what label-free runs and final supervised runs train on). Each data set maps the roles to its
own parts; a split's own part names (Omniglot's ``background`` / ``evaluation``) work too.
Omniglot's ``background-evaluation`` split (Lake et al.: train on the 30 background alphabets,
test on the 20 evaluation alphabets) has no validation part. Mixtures of Omniglot with the
procedural prior (``omniglot+procedural:F``, `umeta.data.mixed`) take Omniglot's parts.

Tables are data sets too: ``tables`` (the real tables of ``data.collections`` less
``data.exclude`` and their near-copies, `umeta.data.table_sets`; the table task builder adds
synthetic tables) and ``table-priors`` (synthetic tables only, offline). Every table is a task,
so their one part is ``train`` (= ``trainval``); they have no ``val`` or ``test`` part.

A user's own image folder is a data set too: ``data.dataset`` is then its path (``umeta train
--dataset my_images/``), read by `umeta.data.user.read_image_folder` with every image resized to
``data.image_size`` squared. A folder of loose images (no labels) is one part: ``train`` and
``trainval`` are all its images and it has no ``val`` or ``test`` part (label-free training;
nothing to score against). A folder with one subfolder per class is split by class, seeded and
the same on every call: `FOLDER_TEST_SHARE` of the classes are ``test``, `FOLDER_VAL_SHARE` are
``val``, the rest ``train`` (at least one class each), so a run trains on ``trainval`` and
``umeta eval --dataset`` scores classes it never saw.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import torch

from umeta.config import DataConfig
from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.registry import Registry

ROLES = ("train", "val", "test", "trainval")

#: Class ranges of the built-in glyph data: disjoint, so val and test classes are never seen.
GLYPH_PARTS: dict[str, tuple[int, int]] = {
    "train": (0, 800), "val": (800, 900), "test": (900, 1100), "trainval": (0, 900),
}

#: Seeds and sizes of the parts of the procedural colour textures (`umeta.data.textures`):
#: different seeds, so that no part's images recur in another.
TEXTURE_PARTS: dict[str, tuple[int, int]] = {"train": (1, 4000), "val": (2, 500),
                                             "test": (3, 1000)}

#: The Omniglot part each role reads in each split (None: the split has no such part).
OMNIGLOT_ROLES: dict[str, dict[str, str | None]] = {
    "vinyals": {role: role for role in ROLES},
    "background-evaluation": {"train": "background", "trainval": "background", "val": None,
                              "test": "evaluation"},
}

#: Shares of a labelled image folder's classes that are held out as its val and test parts.
FOLDER_VAL_SHARE, FOLDER_TEST_SHARE = 0.1, 0.2
#: Seed of the class split of a labelled image folder.
FOLDER_SPLIT_SEED = 0
#: The roles of an image folder without class subfolders.
UNLABELED_FOLDER_ROLES = {"train": "all", "trainval": "all", "val": None, "test": None}

#: Table data sets: every table is a task, so there is one part, to train on.
TABLE_DATASETS = ("tables", "table-priors")
TABLE_ROLES = {"train": "train", "trainval": "train", "val": None, "test": None}

#: loader(cfg, part, rotations) -> ImageSet (TableCollection for tables), for a part name the
#: data set has
DATASETS: Registry[Callable[[DataConfig, str, bool], ImageSet]] = Registry("dataset")


def dataset_key(cfg: DataConfig) -> str:
    """The name in `DATASETS` of the loader of ``cfg.dataset``: the name itself, the shared
    loader of mixtures ``omniglot+procedural:F``, or "folder" for the path of an existing folder."""
    from umeta.data.mixed import is_mixture, parse_mixture

    if is_mixture(cfg.dataset) and not Path(cfg.dataset).expanduser().is_dir():
        base, _ = parse_mixture(cfg.dataset)  # an unknown mixture is one clear error here
        return "procedural" if base is None else f"{base}+procedural"
    if cfg.dataset in DATASETS and cfg.dataset != "folder":
        return cfg.dataset
    if Path(cfg.dataset).expanduser().is_dir():
        return "folder"
    names = ", ".join(n for n in DATASETS.names() if n != "folder")
    raise UmetaError(f"unknown dataset {cfg.dataset!r}; choose one of: {names}, or the path of "
                     f"a folder of images")


def _parts(cfg: DataConfig) -> dict[str, str | None]:
    """Role or part name -> the data set's part name (None where it has none)."""
    key = dataset_key(cfg)
    if key in ("omniglot", "omniglot+procedural"):
        if cfg.split not in OMNIGLOT_ROLES:
            raise UmetaError(f"unknown Omniglot split {cfg.split!r}; use one of "
                             f"{list(OMNIGLOT_ROLES)}")
        roles = OMNIGLOT_ROLES[cfg.split]
        return {**roles, **{p: p for p in roles.values() if p is not None}}
    if key == "folder" and not _read_folder(_folder(cfg), cfg.image_size).class_names:
        return {**UNLABELED_FOLDER_ROLES, "all": "all"}
    if key in TABLE_DATASETS:
        return dict(TABLE_ROLES)
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
        parts = ", ".join(p for p, n in _parts(cfg).items() if n)
        if dataset_key(cfg) == "folder":
            raise UmetaError(f"the image folder {cfg.dataset!r} has no {part!r} part: without "
                             f"class subfolders it is training images only (parts: {parts})")
        raise UmetaError(f"the {cfg.split!r} split of {cfg.dataset!r} has no {part!r} part; "
                         f"parts: {parts}")
    return DATASETS.get(dataset_key(cfg))(cfg, name,
                                          cfg.rotations if rotations is None else rotations)


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


@DATASETS.register("textures")
def _textures(cfg: DataConfig, part: str, rotations: bool) -> ImageSet:
    """Procedural colour textures (unlabeled), what segmentation tasks are cut from."""
    from umeta.data.textures import make_textures

    if rotations:
        raise UmetaError("data.rotations is for Omniglot; set data.rotations=false for textures")
    if part == "trainval":
        sets = [_textures(cfg, p, False) for p in ("train", "val")]
        return ImageSet(torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets]),
                        [], None, "textures-trainval")
    seed, count = TEXTURE_PARTS[part]
    return make_textures(count, image_size=cfg.image_size, seed=seed, name=f"textures-{part}")


def _folder(cfg: DataConfig) -> Path:
    return Path(cfg.dataset).expanduser().resolve()


@functools.lru_cache(maxsize=2)
def _read_folder(folder: Path, image_size: int) -> ImageSet:
    """Every image of ``folder`` at ``image_size`` squared (read once per process)."""
    from umeta.data.user import read_image_folder

    return read_image_folder(folder, image_size).as_imageset()


def folder_class_split(class_names: list[str]) -> dict[str, list[str]]:
    """The seeded class split of a labelled image folder: part -> its class names (sorted)."""
    n = len(class_names)
    n_test = max(1, round(FOLDER_TEST_SHARE * n))
    n_val = max(1, round(FOLDER_VAL_SHARE * n))
    if n - n_test - n_val < 1:
        raise UmetaError(f"an image folder with classes is split into train, val and test "
                         f"classes, which needs at least 3 class subfolders; it has {n} (put the "
                         f"images loose in the folder to train on all of them without labels)")
    generator = torch.Generator().manual_seed(FOLDER_SPLIT_SEED)
    order = [sorted(class_names)[i] for i in torch.randperm(n, generator=generator).tolist()]
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test),
            "trainval": sorted(train + val)}


@DATASETS.register("folder")
def _user_folder(cfg: DataConfig, part: str, rotations: bool) -> ImageSet:
    if rotations:
        raise UmetaError("data.rotations is for Omniglot; set data.rotations=false for an "
                         "image folder")
    folder = _folder(cfg)
    images = _read_folder(folder, cfg.image_size)
    name = f"{folder.name}/{part}"
    if part == "all":
        return ImageSet(images.images, images.labels, [], None, name)
    return images.select_classes(folder_class_split(images.class_names)[part], name)


@DATASETS.register("tables")
@DATASETS.register("table-priors")
def _tables(cfg: DataConfig, part: str, rotations: bool):
    """The real tables of ``cfg.collections`` less ``cfg.exclude`` and their near-copies
    ("tables"), or none ("table-priors": synthetic tables only), as a `TableCollection`."""
    from umeta.data.table_sets import TableCollection, load_table_collection

    if rotations:
        raise UmetaError("data.rotations is for Omniglot; set data.rotations=false for tables")
    if cfg.dataset == "table-priors":
        if cfg.exclude:
            raise UmetaError("data.exclude leaves real tables out, but data.dataset "
                             "'table-priors' reads none; use data.dataset 'tables'")
        return TableCollection([], name="table-priors")
    return load_table_collection(cfg.exclude, collections=cfg.collections, root=cfg.data_dir,
                                 progress=True)
