"""Readers for a user's own data: image folders, ``.npz`` arrays and CSV/TSV tables.

:func:`load_user_data` dispatches on the path:

* a folder of images (PNG, JPEG, BMP, GIF, TIFF, WebP; read with Pillow). Each image's class is
  the folder that holds it, relative to the root (``cats/x.png`` -> ``"cats"``,
  ``Alphabet/character01/y.png`` -> ``"Alphabet/character01"``); images directly in the root
  make the data unlabeled (a folder may not mix both). Colour rule: the set is grayscale
  (1 channel) when every pixel of every image has R = G = B, else every image is converted to
  RGB (3 channels). 16-bit grayscale is scaled by 65535, everything else by 255. All images
  must share one size unless ``image_size`` asks to resize them.
* an ``.npz`` with ``X`` of shape (N, D) (vectors), (N, H, W) or (N, C, H, W) / (N, H, W, C)
  with C in {1, 3} (images), and optionally ``y`` of length N.
* a table: ``.csv`` / ``.tsv`` / ``.txt`` (optionally ``.gz``) or Parquet, read by
  `umeta.data.table_input.read_user_table` (header detected, categorical columns as codes,
  missing values as NaN, a warning for a feature column named like labels); every column is a
  feature except ``label_column``.

Every problem a user can fix raises :class:`~umeta.errors.UmetaError` with one line that names
the bad file, value or position and the fix.
"""

from __future__ import annotations

import numbers
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from umeta.data.imageset import ImageSet
from umeta.data.table_input import USER_TABLE_EXTENSIONS, read_user_table
from umeta.data.tables import Table
from umeta.errors import UmetaError
from umeta.params import ParamError, literal

__all__ = [
    "UserData", "as_user_data", "load_user_data", "read_image", "read_image_folder", "read_npz",
    "IMAGE_EXTENSIONS", "TABLE_EXTENSIONS",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TABLE_EXTENSIONS = tuple(e for e in USER_TABLE_EXTENSIONS if e != ".npz")  # npz: read_npz
_GRAY8_MODES = {"1", "L", "LA", "La"}
_GRAY16_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}  # read as 16-bit gray

ImageSize = int | tuple[int, int] | None


@dataclass
class UserData:
    """A user's data set, as float tensors.

    Attributes
    ----------
    x : Tensor of shape (N, C, H, W) for images (values in [0, 1]) or (N, D) for vectors, float32
    y : Tensor of shape (N,), int64, or None
        Class index of each sample into :attr:`class_names`; None when the data is unlabeled.
    class_names : list of str or None
        Name of each class (folder name, or the label value as text); None when unlabeled.
    ids : list of str
        One identifier per sample, for reports: the file path relative to the folder for
        images, ``"row i"`` (0-based) for arrays and tables.
    kind : {"images", "vectors"}
    source : str
        The path the data was read from.
    columns : list of str or None
        For a table: the names of the feature columns of ``x`` (the label column left out).
    """

    x: Tensor
    y: Tensor | None
    class_names: list[str] | None
    ids: list[str]
    kind: Literal["images", "vectors"]
    source: str
    columns: list[str] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def as_imageset(self) -> ImageSet:
        """The images as an :class:`ImageSet` (uint8, ink/brightness 255 = 1.0).

        Unlabeled data gets labels ``-1`` and no class names.

        Raises
        ------
        UmetaError
            If the data are vectors, not images.
        """
        if self.kind != "images":
            raise UmetaError(
                f"{self.source} holds vectors of shape {tuple(self.x.shape[1:])}, not images; "
                f"use a vector model (e.g. backbone 'mlp') or give images (N, C, H, W)"
            )
        images = (self.x * 255).round_().clamp_(0, 255).to(torch.uint8)
        if self.y is None:
            labels, names = torch.full((len(self),), -1, dtype=torch.long), []
        else:
            labels, names = self.y, list(self.class_names or [])
        return ImageSet(images, labels, names, None, self.source)


def load_user_data(
    path: str | Path, label_column: str | None = None, image_size: ImageSize = None
) -> UserData:
    """Read a folder of images, an ``.npz`` or a CSV/TSV table (see the module docstring).

    Parameters
    ----------
    path : str or Path
    label_column : str, optional
        For tables: the column that holds the class labels (all other columns are features).
    image_size : int or (int, int), optional
        For images: resize every image to ``(H, W)`` (an int means square); without it, all
        images must already share one size.

    Returns
    -------
    UserData

    Raises
    ------
    UmetaError
        For a missing path, an unknown extension, empty or single-sample data, NaN/inf values,
        unreadable or mixed-size images, an npz without ``X``, or labels of the wrong length.
    """
    p = Path(path)
    if not p.exists():
        raise UmetaError(f"data path {str(p)!r} does not exist; check the path")
    name = p.name.lower()
    if label_column is not None and not name.endswith(TABLE_EXTENSIONS):
        raise ParamError(
            "label_column", label_column,
            f"{{setting}} applies to CSV/TSV tables only, not {literal(str(p))}; drop it "
            f"(folders label by subfolder, npz files by their 'y' array)"
        )
    if image_size is not None and name.endswith(TABLE_EXTENSIONS):
        raise ParamError("image_size", image_size, f"{{param}} applies to images, not to the "
                                                   f"table {literal(str(p))}; drop it")
    if p.is_dir():
        return read_image_folder(p, image_size)
    if name.endswith(".npz"):
        return read_npz(p, image_size)
    if name.endswith(TABLE_EXTENSIONS):
        return as_user_data(read_user_table(p, label_column=label_column))
    raise UmetaError(
        f"cannot read {str(p)!r}: unknown file type; give a folder of images, an .npz with X "
        f"(and y), or a table ({', '.join(TABLE_EXTENSIONS)})"
    )


def data_kind(path: str | Path) -> Literal["images", "vectors"]:
    """What :func:`load_user_data` will read at ``path``: a folder, or an npz whose ``X`` has
    3 or 4 axes, holds images; anything else vectors (a table's rows)."""
    p = Path(path)
    if p.is_dir():
        return "images"
    if p.name.lower().endswith(".npz") and p.is_file():
        try:
            with np.load(p, allow_pickle=False) as npz:
                if "X" in npz.files and npz["X"].ndim in (3, 4):
                    return "images"
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            pass  # load_user_data says what is wrong with the file
    return "vectors"


def image_folder_sizes(folder: str | Path) -> set[tuple[int, int]]:
    """The distinct (height, width) of the images under ``folder`` (headers only: fast)."""
    sizes = set()
    for f in Path(folder).rglob("*"):
        if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS):
            try:
                with Image.open(f) as img:
                    sizes.add((img.size[1], img.size[0]))
            except (UnidentifiedImageError, OSError):
                continue  # read_image_folder names the file that cannot be read
    return sizes


# --------------------------------------------------------------------------- images


def _check_image_size(image_size: ImageSize) -> tuple[int, int] | None:
    """``image_size`` as ``(H, W)``, validated."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size)):
        raise UmetaError(
            f"image_size must be a positive int or a pair (H, W) of them; got {image_size!r}"
        )
    return int(size[0]), int(size[1])


def _read_image(file: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One image as float32 (H, W) or (H, W, 3) in [0, 1], resized to ``size`` if given."""
    try:
        with Image.open(file) as img:
            img.load()
            if img.mode in _GRAY16_MODES:
                img, scale = img.convert("F"), 65535.0
            else:
                img, scale = img.convert("L" if img.mode in _GRAY8_MODES else "RGB"), 255.0
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / scale
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UmetaError(
            f"cannot read image {str(file)!r} ({type(err).__name__}: {err}); replace or remove it"
        ) from None
    return np.clip(arr, 0.0, 1.0)


def read_image(file: str | Path) -> np.ndarray:
    """One image file (any format Pillow reads) as float32 (H, W) grey or (H, W, 3) RGB in
    [0, 1]; `UmetaError` with one line if it is missing or not an image."""
    file = Path(file)
    if not file.is_file():
        raise UmetaError(f"image {str(file)!r} not found" + ("; it is a folder, give image files"
                                                           if file.is_dir() else ""))
    return _read_image(file, None)


def read_image_folder(folder: str | Path, image_size: ImageSize = None) -> UserData:
    """Read every image under ``folder``; classes are the folders holding them (if any).

    Parameters
    ----------
    folder : str or Path
    image_size : int or (int, int), optional
        Resize every image to ``(H, W)``.

    Returns
    -------
    UserData
        ``kind="images"``, ``x`` of shape (N, C, H, W) with C = 1 (all gray) or 3, files in
        sorted order; ``y`` and ``class_names`` (sorted folder names) when labelled.
    """
    root = Path(folder)
    size = _check_image_size(image_size)
    files = sorted(
        f for f in root.rglob("*")
        if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS)
        and not any(part.startswith(".") for part in f.relative_to(root).parts)
    )
    if not files:
        raise UmetaError(
            f"no images found in folder {str(root)!r}; put image files "
            f"({', '.join(IMAGE_EXTENSIONS)}) in it, or in one subfolder per class"
        )
    parents = [f.parent.relative_to(root).as_posix() for f in files]
    loose = [f for f, d in zip(files, parents) if d == "."]
    if loose and len(loose) < len(files):
        inside = next(f for f, d in zip(files, parents) if d != ".")
        raise UmetaError(
            f"{str(root)!r} mixes loose images (e.g. {loose[0].name!r}) with images in class "
            f"subfolders (e.g. {inside.relative_to(root).as_posix()!r}); put every image in a "
            f"class subfolder, or none of them"
        )
    _check_count(len(files), f"folder {str(root)!r}")
    arrays = [_read_image(f, size) for f in files]
    shapes = [a.shape[:2] for a in arrays]
    if len(set(shapes)) > 1:
        first = shapes[0]
        other = next(i for i, s in enumerate(shapes) if s != first)
        raise ParamError(
            "image_size", None,
            f"images differ in size: {literal(str(files[0]))} is {first[1]}x{first[0]} but "
            f"{literal(str(files[other]))} is {shapes[other][1]}x{shapes[other][0]} (width x "
            f"height); pass {{param}} to resize them all"
        )
    colour = any(a.ndim == 3 and not (np.array_equal(a[..., 0], a[..., 1])
                                      and np.array_equal(a[..., 1], a[..., 2])) for a in arrays)
    if colour:
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        x = torch.from_numpy(np.stack([a[..., 0] if a.ndim == 3 else a for a in arrays]))
        x = x.unsqueeze(1)
    ids = [f.relative_to(root).as_posix() for f in files]
    if loose:
        return UserData(x, None, None, ids, "images", str(root))
    class_names = sorted(set(parents))
    index = {n: i for i, n in enumerate(class_names)}
    y = torch.tensor([index[d] for d in parents], dtype=torch.long)
    return UserData(x, y, class_names, ids, "images", str(root))


# --------------------------------------------------------------------------- arrays


def _check_count(n: int, what: str) -> None:
    if n == 0:
        raise UmetaError(f"{what} holds no samples; give at least 2")
    if n == 1:
        raise UmetaError(
            f"{what} holds a single sample; give at least 2 to cluster, embed or score"
        )


def _check_finite(x: np.ndarray, what: str) -> None:
    """Raise naming the position of the first NaN or inf in ``x`` of shape (N, ...)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    pos = tuple(int(i) for i in np.argwhere(bad)[0])
    if len(pos) == 2:
        where = f"row {pos[0]}, column {pos[1]}"
    else:
        where = f"sample {pos[0]}, position {list(pos[1:])}"
    raise UmetaError(
        f"{what} has a non-finite value ({x[pos]}) at {where}; fill in or drop such entries"
    )


def _encode_labels(labels: np.ndarray, n: int, what: str) -> tuple[Tensor, list[str]]:
    """Labels of any type as ``(y int64 (n,), sorted class names)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise UmetaError(
            f"{what} has {n} samples but its labels have shape {labels.shape}; give one label "
            f"per sample, shape ({n},)"
        )
    if labels.dtype.kind == "f":
        _check_finite(labels[:, None], f"{what} labels")
    values, inverse = np.unique(labels, return_inverse=True)
    names = [str(v.item()) if hasattr(v, "item") else str(v) for v in values]
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64)), names


def _images_to_unit(x: np.ndarray, what: str) -> np.ndarray:
    """Image values as float32 in [0, 1]: uint8 / 255, uint16 / 65535, bool and [0, 1] floats
    as they are, other integers / 255 when they fit in 0 .. 255."""
    kind = x.dtype.kind
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255
    if x.dtype == np.uint16:
        return x.astype(np.float32) / 65535
    if kind == "b":
        return x.astype(np.float32)
    if kind in "iu":
        if x.min() >= 0 and x.max() <= 255:
            return x.astype(np.float32) / 255
        raise UmetaError(
            f"{what}: integer image values span {x.min()} .. {x.max()}; give uint8 (0 .. 255), "
            f"uint16, or floats in [0, 1]"
        )
    if kind != "f":
        raise UmetaError(f"{what}: X has dtype {x.dtype}; give numbers (uint8 or float)")
    _check_finite(x, what)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise UmetaError(
            f"{what}: float image values span [{lo:g}, {hi:g}], outside [0, 1]; rescale them "
            f"to [0, 1], or give them as vectors of shape (N, D)"
        )
    return x.astype(np.float32)


def read_npz(file: str | Path, image_size: ImageSize = None) -> UserData:
    """Read ``X`` (vectors or images) and optional ``y`` from an ``.npz``.

    Parameters
    ----------
    file : str or Path
    image_size : int or (int, int), optional
        Resize images (bilinear, antialiased) to ``(H, W)``; not allowed for vectors.

    Returns
    -------
    UserData
        ``kind="vectors"`` with ``x`` (N, D) for a 2-D ``X``; ``kind="images"`` with ``x``
        (N, C, H, W) in [0, 1] for (N, H, W), (N, C, H, W) or (N, H, W, C), C in {1, 3}.
    """
    file = Path(file)
    size = _check_image_size(image_size)
    what = f"{str(file)!r}"
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.keys() if key in ("X", "y")}
            keys = list(npz.keys())
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise UmetaError(
            f"cannot read {what} as an npz ({err}); re-save it with np.savez"
        ) from None
    except ValueError as err:  # object arrays need pickle, which we refuse
        raise UmetaError(f"cannot read {what}: {err}; save plain numeric arrays") from None
    if "X" not in arrays:
        raise UmetaError(
            f"{what} has no array 'X' (it has {keys or 'no arrays'}); save the data as X (and "
            f"labels as y), e.g. np.savez(path, X=X, y=y)"
        )
    x, y = arrays["X"], arrays.get("y")
    if x.ndim == 0 or x.shape[0] < 2:
        _check_count(0 if x.ndim == 0 else x.shape[0], what)
    if x.ndim == 2:
        if size is not None:
            raise ParamError("image_size", size, f"{literal(str(file))} holds vectors (N, D); "
                                                 f"{{param}} applies to images only")
        if x.dtype.kind not in "biuf" or x.shape[1] == 0:
            raise UmetaError(
                f"{what}: X has dtype {x.dtype} and shape {x.shape}; give numbers, at least "
                f"one feature per sample"
            )
        x = x.astype(np.float32)
        _check_finite(x, what)
        tensor, kind = torch.from_numpy(x), "vectors"
    elif x.ndim in (3, 4):
        if x.ndim == 3:
            x = x[:, None]
        elif x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            x = np.moveaxis(x, 3, 1)
        if x.shape[1] not in (1, 3):
            raise UmetaError(
                f"{what}: X has shape {x.shape}; images need 1 or 3 channels, as (N, C, H, W) "
                f"or (N, H, W, C)"
            )
        tensor, kind = torch.from_numpy(np.ascontiguousarray(_images_to_unit(x, what))), "images"
        if size is not None and tuple(tensor.shape[2:]) != size:
            tensor = F.interpolate(tensor, size=size, mode="bilinear", antialias=True,
                                   align_corners=False).clamp_(0, 1)
    else:
        raise UmetaError(
            f"{what}: X has shape {x.shape}; give vectors (N, D) or images (N, H, W) / "
            f"(N, C, H, W)"
        )
    n = tensor.shape[0]
    labels, names = _encode_labels(y, n, what) if y is not None else (None, None)
    ids = [f"row {i}" for i in range(n)]
    return UserData(tensor, labels, names, ids, kind, str(file))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- tables


def as_user_data(table: Table) -> UserData:
    """A user's table as the `UserData` the command line writes results for: ``x`` (N, D)
    float32 with NaN for missing values, ``y`` and ``class_names`` from the label column, ids
    ``"row i"`` (0-based).

    Examples
    --------
    >>> import numpy as np
    >>> from umeta.data.tables import Table
    >>> t = Table(np.zeros((2, 1), np.float32), np.array([0, 1]), ("a",), np.zeros(1, bool),
    ...           "t.csv", "t.csv", "classes", {}, ("no", "yes"))
    >>> d = as_user_data(t)
    >>> d.ids, d.class_names, d.kind
    (['row 0', 'row 1'], ['no', 'yes'], 'vectors')
    """
    y = None if table.y is None else torch.tensor(table.y)
    names = list(table.classes) if table.y is not None and table.classes else None
    return UserData(torch.as_tensor(np.array(table.x, dtype=np.float32)), y, names,
                    [f"row {i}" for i in range(len(table.x))], "vectors", table.source,
                    list(table.columns))
