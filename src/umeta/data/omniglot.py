"""Omniglot as an :class:`ImageSet`: readers, area resizing, rotations, cache and download.

Sources, for each official archive ``images_background`` / ``images_evaluation``:

- the compact npz (``images`` bool of shape (characters, 20, 105, 105), True = white background);
- the official zip (``<top>/<Alphabet>/characterNN/XXXX_YY.png``, 105x105 PNG), or its extracted
  folder.

:func:`load_omniglot` finds a source (npz first, then folder, then zip) in ``data_dir`` (else
``$UMETA_DATA``, else the cache folder), or downloads the official zip into the cache folder
(``cache_dir``, else ``$UMETA_CACHE``, else ``~/.cache/umeta``) and checks its sha256. The ink
maps are shrunk to ``image_size`` by exact area averaging (a vectorised antialiasing filter) and
the uint8 result is cached per image size, so later loads read one small file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import safetensors
import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import save_file
from torch import Tensor

from umeta.data.download import download_file
from umeta.data.imageset import ImageSet
from umeta.data.splits import (
    SOURCE_FILES,
    check_split,
    source_class_names,
    split_class_names,
    split_sources,
)
from umeta.errors import UmetaError

#: Where the official zips are downloaded from (override: ``base_url=`` or ``$UMETA_OMNIGLOT_URL``).
OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python"

#: sha256 of the official zips, as published in tensorflow/datasets
#: (``tensorflow_datasets/url_checksums/omniglot.txt``; sizes 9464212 and 6462886 bytes).
OMNIGLOT_SHA256 = {
    "images_background": "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640",
    "images_evaluation": "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee",
}

_ROTATION_SUFFIXES = ("", "/rot090", "/rot180", "/rot270")
_PNG_NAME = re.compile(r"(\d+)_(\d+)\.png", re.IGNORECASE)
_CACHE_FORMAT = "umeta-omniglot-1"


def default_cache_dir() -> Path:
    """Where umeta writes downloads and processed arrays: ``$UMETA_CACHE`` or ``~/.cache/umeta``."""
    return Path(os.environ.get("UMETA_CACHE") or Path.home() / ".cache" / "umeta").expanduser()


# --------------------------------------------------------------------------------------------
# Readers: each returns ink maps, bool (characters, drawings, H, W) with True = ink, and names.


def read_omniglot_npz(path: str | os.PathLike) -> tuple[Tensor, list[str]]:
    """Read a compact Omniglot npz (``images`` bool, True = white background).

    The rows are named from the character-id order of the official archives, so the array must
    hold all 964 (background) or 659 (evaluation) characters.

    Returns
    -------
    ink : Tensor of shape (characters, drawings, H, W), dtype bool
        True where there is ink.
    class_names : list of str
        ``"Alphabet/characterNN"`` of each row.
    """
    path = Path(path)
    try:
        with np.load(path) as arrays:
            background = arrays["images"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise UmetaError(
            f"cannot read the Omniglot npz {path} ({type(err).__name__}: {err}); replace it with "
            f"a good copy or remove it"
        ) from None
    if background.dtype != np.bool_ or background.ndim != 4:
        raise UmetaError(
            f"{path}: 'images' must be bool of shape (characters, 20, 105, 105); got "
            f"{background.dtype} {background.shape}"
        )
    by_rows = {sum(n for _, n in alphabets): source for source, alphabets in SOURCE_FILES.items()}
    if background.shape[0] not in by_rows:
        raise UmetaError(
            f"{path} has {background.shape[0]} characters; an Omniglot npz holds all "
            f"{' or '.join(map(str, by_rows))} characters of an official archive"
        )
    np.logical_not(background, out=background)
    return torch.from_numpy(background), source_class_names(by_rows[background.shape[0]])


def read_omniglot_archive(path: str | os.PathLike) -> tuple[Tensor, list[str]]:
    """Read the official layout from a zip or an extracted folder.

    Files ``.../<Alphabet>/<character>/XXXX_YY.png`` (``XXXX`` the character id, ``YY`` the
    drawer). Characters come in character-id order, drawings in drawer order.

    Returns
    -------
    ink : Tensor of shape (characters, drawings, H, W), dtype bool
        True where there is ink (black pixels).
    class_names : list of str
        ``"Alphabet/character"`` of each character.
    """
    path = Path(path)
    if path.is_dir():
        files = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        return _read_png_tree(path, files, lambda name: (path / name).read_bytes())
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_png_tree(path, archive.namelist(), archive.read)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise UmetaError(
            f"cannot read the Omniglot zip {path} ({type(err).__name__}: {err}); delete it to "
            f"download it again, or replace it with a good copy"
        ) from None


def _read_png_tree(
    source: Path, files: list[str], read: Callable[[str], bytes]
) -> tuple[Tensor, list[str]]:
    classes: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    for name in files:
        parts = name.split("/")
        if not name.lower().endswith(".png") or parts[0] == "__MACOSX" or parts[-1][:2] == "._":
            continue
        match = _PNG_NAME.fullmatch(parts[-1])
        if len(parts) < 3 or match is None:
            raise UmetaError(
                f"{source}: {name!r} does not follow the Omniglot layout "
                f"<Alphabet>/characterNN/XXXX_YY.png"
            )
        classes[parts[-3], parts[-2]].append((int(match[1]), int(match[2]), name))
    if not classes:
        raise UmetaError(
            f"{source} holds no Omniglot PNGs (<Alphabet>/characterNN/XXXX_YY.png); give the "
            f"official images_background.zip / images_evaluation.zip or their folders"
        )
    keys = sorted(classes, key=lambda k: (min(classes[k])[0], k))
    counts = sorted({len(classes[k]) for k in keys})
    if len(counts) != 1:
        raise UmetaError(
            f"{source}: characters have different numbers of drawings {counts}; every "
            f"character needs the same number (20 in Omniglot)"
        )
    ink: np.ndarray | None = None
    for i, key in enumerate(keys):
        for j, (_, _, name) in enumerate(sorted(classes[key])):
            try:
                with Image.open(io.BytesIO(read(name))) as image:
                    pixels = np.asarray(image.convert("L")) < 128
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise UmetaError(
                    f"{source}: cannot decode {name!r} ({err}); replace the file with a good copy"
                ) from None
            if ink is None:
                ink = np.empty((len(keys), counts[0]) + pixels.shape, dtype=bool)
            if pixels.shape != ink.shape[2:]:
                raise UmetaError(
                    f"{source}: {name!r} is {pixels.shape}, not {ink.shape[2:]} like the others"
                )
            ink[i, j] = pixels
    return torch.from_numpy(ink), [f"{a}/{c}" for a, c in keys]


def read_omniglot(path: str | os.PathLike) -> tuple[Tensor, list[str]]:
    """Read an Omniglot ``.npz``, ``.zip`` or extracted folder.

    See :func:`read_omniglot_npz` and :func:`read_omniglot_archive` for what is returned.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return read_omniglot_npz(path)
    if path.is_dir() or path.suffix.lower() == ".zip":
        return read_omniglot_archive(path)
    raise UmetaError(f"{path} is not an Omniglot .npz, .zip or folder")


# --------------------------------------------------------------------------------------------
# Processing: area resize and rotations.


def area_weights(in_size: int, out_size: int) -> Tensor:
    """Exact area-averaging matrix: ``W @ x @ W.T`` resizes (in, in) to (out, out).

    Entry (i, j) is the length of the overlap of input pixel ``[j, j+1)`` with output pixel ``i``
    mapped to ``[i * r, (i+1) * r)``, ``r = in_size / out_size``, divided by ``r``; rows sum to 1.

    Returns
    -------
    Tensor of shape (out_size, in_size), float32
    """
    scale = in_size / out_size
    lo = torch.arange(out_size, dtype=torch.float64)[:, None] * scale
    j = torch.arange(in_size, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(lo + scale, j + 1) - torch.maximum(lo, j)).clamp_min(0)
    return (overlap / scale).float()


def resize_ink(ink: Tensor, size: int, chunk: int = 4096) -> Tensor:
    """Shrink (or enlarge) ink maps by exact area averaging, to uint8 with ink = 255.

    Parameters
    ----------
    ink : Tensor of shape (..., H, W), bool or float in [0, 1]
        Square images (H == W); 1 / True = ink.
    size : int
        Output side S.
    chunk : int
        Images converted to float at a time (bounds the memory).

    Returns
    -------
    Tensor of shape (..., S, S), dtype uint8
        ``round(255 * area mean of the ink)``.
    """
    height, width = ink.shape[-2:]
    if height != width:
        raise UmetaError(f"Omniglot images must be square; got {height}x{width}")
    weights = area_weights(height, size).to(ink.device)
    flat = ink.reshape(-1, height, width)
    out = torch.empty((flat.shape[0], size, size), dtype=torch.uint8, device=ink.device)
    for start in range(0, flat.shape[0], chunk):
        x = flat[start:start + chunk].float()
        y = weights @ x @ weights.T
        out[start:start + chunk] = y.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out.reshape(*ink.shape[:-2], size, size)


def with_rotations(data: ImageSet) -> ImageSet:
    """Add the 90, 180 and 270 degree rotations of every class as new classes.

    Each class ``name`` becomes ``name``, ``name/rot090``, ``name/rot180``, ``name/rot270`` (in
    that order, same group); rotation is counter-clockwise (``torch.rot90``, like PIL's
    ``Image.rotate``).

    Parameters
    ----------
    data : ImageSet
        Labelled set of square images, N images of K classes.

    Returns
    -------
    ImageSet
        4N images of 4K classes, grouped by class.
    """
    if data.image_shape[1] != data.image_shape[2]:
        raise UmetaError(f"rotations need square images; {data.name!r} has {data.image_shape}")
    if bool((data.labels < 0).any()):
        raise UmetaError(f"{data.name!r} has unlabeled images; rotations make classes of labels")
    images = torch.cat([torch.rot90(data.images, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.cat([data.labels * 4 + k for k in range(4)])
    order = torch.argsort(labels, stable=True)
    names = [f"{n}{suffix}" for n in data.class_names for suffix in _ROTATION_SUFFIXES]
    groups = None if data.groups is None else [g for g in data.groups for _ in range(4)]
    return ImageSet(images[order], labels[order], names, groups, data.name)


# --------------------------------------------------------------------------------------------
# Finding, downloading and caching.


def _candidates(source: str, folders: list[Path]) -> list[Path]:
    """Where a source may lie, in order of preference."""
    found = []
    for folder in folders:
        for base in (folder, folder / "omniglot", folder / "omniglot-py"):
            found += [base / f"{source}.npz", base / source, base / f"{source}.zip"]
    return found


def _fingerprint(path: Path) -> str:
    """Identity of a source as the file system sees it (path, and each file's size and time)."""
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256(f"{_CACHE_FORMAT}|{path.resolve()}".encode())
    for f in files:
        stat = f.stat()
        digest.update(f"|{f.relative_to(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _read_cache(file: Path, fingerprint: str | None, size: int) -> tuple[Tensor, list[str]] | None:
    """The processed images and names in ``file``, if it is valid and made from ``fingerprint``'s
    source (``None``: from any source)."""
    try:
        with safetensors.safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            if fingerprint is not None and meta.get("fingerprint") != fingerprint:
                return None
            images, names = f.get_tensor("images"), json.loads(meta["class_names"])
    except (OSError, ValueError, KeyError, safetensors.SafetensorError):
        return None
    if images.dtype != torch.uint8 or images.shape[0] != len(names):
        return None
    if images.dim() != 4 or images.shape[2:] != (size, size):
        return None
    return images, names


def _write_cache(file: Path, images: Tensor, names: list[str], fingerprint: str) -> None:
    """Write atomically (temporary file in the same folder, then ``os.replace``)."""
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".part")
        os.close(fd)
        save_file({"images": images.contiguous()}, tmp,
                  metadata={"fingerprint": fingerprint, "class_names": json.dumps(names)})
        os.replace(tmp, file)
    except OSError as err:
        warnings.warn(
            f"could not cache processed Omniglot at {file} ({err}); pass a writable cache_dir "
            f"(or set $UMETA_CACHE) to make later loads fast",
            RuntimeWarning, stacklevel=4,
        )
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _locate(source: str, folders: list[Path], cache_dir: Path, download: bool,
            base_url: str | None, progress: bool) -> Path:
    for candidate in _candidates(source, folders):
        if candidate.exists():
            return candidate
    base = base_url or os.environ.get("UMETA_OMNIGLOT_URL") or OMNIGLOT_URL
    url = f"{base.rstrip('/')}/{source}.zip"
    where = ", ".join(dict.fromkeys(str(f) for f in folders))
    if download:
        try:
            return download_file(url, cache_dir / "omniglot" / f"{source}.zip",
                                 sha256=OMNIGLOT_SHA256[source], progress=progress)
        except UmetaError as err:
            why = f"downloading failed ({err})"
    else:
        why = "download=False"
    raise UmetaError(
        f"Omniglot {source} not found in {where} (looked for {source}.npz, {source}.zip or an "
        f"extracted {source}/ folder, also under omniglot/) and {why}; put the official zips or "
        f"the npz arrays in a folder and pass --data-dir DIR (data_dir=DIR) or set $UMETA_DATA=DIR"
    )


def _load_source(source: str, image_size: int, folders: list[Path], cache_dir: Path,
                 download: bool, base_url: str | None, progress: bool) -> ImageSet:
    cache_file = cache_dir / "omniglot" / "processed" / f"{source}_{image_size}px.safetensors"
    try:
        path = _locate(source, folders, cache_dir, False, base_url, progress)
    except UmetaError:
        # no local source: a processed copy alone will do; else download (if allowed)
        cached = _read_cache(cache_file, None, image_size)
        if cached is None:
            path = _locate(source, folders, cache_dir, download, base_url, progress)
            fingerprint = _fingerprint(path)
    else:
        fingerprint = _fingerprint(path)
        cached = _read_cache(cache_file, fingerprint, image_size)
    if cached is None:
        ink, names = read_omniglot(path)
        images = resize_ink(ink, image_size)
        _write_cache(cache_file, images, names, fingerprint)
    else:
        images, names = cached
    chars, drawings = images.shape[:2]
    return ImageSet(
        images.reshape(chars * drawings, 1, image_size, image_size),
        torch.arange(chars).repeat_interleave(drawings),
        names, [n.split("/")[0] for n in names], f"omniglot/{source}",
    )


def load_omniglot(
    part: str = "train",
    split: str = "vinyals",
    image_size: int = 28,
    rotations: bool = False,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    base_url: str | None = None,
    progress: bool = True,
) -> ImageSet:
    """Load a part of an Omniglot split as uint8 images with ink = 255.

    Parameters
    ----------
    part : str
        ``train``, ``val``, ``test``, ``trainval`` (split ``vinyals``) or ``background``,
        ``evaluation`` (split ``background-evaluation``).
    split : {"vinyals", "background-evaluation"}
        See :mod:`umeta.data.splits`.
    image_size : int
        Side S of the output images (105 is the original; 28 is the usual few-shot size).
    rotations : bool
        Add the 90/180/270 degree rotations as extra classes (see :func:`with_rotations`).
    data_dir : path, optional
        Folder holding ``images_{background,evaluation}`` as ``.npz``, ``.zip`` or extracted
        folders (directly or under ``omniglot/``); default ``$UMETA_DATA``, else the cache folder.
    cache_dir : path, optional
        Where downloads and processed arrays are written (and also searched); default
        ``$UMETA_CACHE``, else ``~/.cache/umeta``.
    download : bool
        Download the official zips (sha256-checked) when no copy is found.
    base_url : str, optional
        Where the zips are downloaded from; default ``$UMETA_OMNIGLOT_URL``, else
        :data:`OMNIGLOT_URL`.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    ImageSet
        Images (N, 1, S, S) uint8, 20 per class; classes ``"Alphabet/characterNN"`` (plus
        ``"/rotDDD"`` copies) in the split's published order; groups = alphabets.
    """
    check_split(split, part)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UmetaError(f"image_size must be a positive integer (e.g. 28); got {image_size!r}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    for given, name in ((data_dir, "--data-dir (data_dir)"),
                        (None if data_dir is not None else os.environ.get("UMETA_DATA"),
                         "$UMETA_DATA")):
        if given is not None and not Path(given).expanduser().is_dir():
            raise UmetaError(f"{name} {str(given)!r} is not a folder; pass the folder that "
                             f"holds Omniglot, or leave it out to use the cache {str(cache)!r}")
    data = data_dir if data_dir is not None else os.environ.get("UMETA_DATA") or cache
    folders = [Path(data).expanduser(), cache]
    sets = [_load_source(source, image_size, folders, cache, download, base_url, progress)
            for source in split_sources(split, part)]
    name = f"omniglot/{split}/{part}"
    if split == "vinyals":
        selected = ImageSet.concat(sets, name).select_classes(split_class_names(split, part), name)
    else:
        (only,) = sets
        selected = ImageSet(only.images, only.labels, only.class_names, only.groups, name)
    return with_rotations(selected) if rotations else selected
