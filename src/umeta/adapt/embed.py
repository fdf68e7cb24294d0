"""Embedding new data with a meta-trained model: validated inputs, embeddings, PCA to ``d``
dimensions, and how well an embedding keeps the inputs' neighbourhoods.

:func:`model_inputs` is the one place where raw inputs are validated and shaped for a model, and
:func:`embed_inputs` the one entry point from raw inputs to the learner's embedding; clustering,
anomaly scoring and the estimators all use them. Everything runs on the device of the model (or
of the data when there is no model).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from umeta import metrics
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.numeric.pca import PCA, fit_pca
from umeta.numeric.random import seeded_generator
from umeta.params import Interval, check_params

#: Limits of the embedding parameters (checked by :func:`embed_dataset` and `MetaEmbedder`).
EMBED_LIMITS = {
    "n_components": [Interval(int, 1, None)],
    "normalize": [bool],
    "batch_size": [Interval(int, 1, None)],
    "progress": [bool],
}


class ShapeError(UmetaError):
    """Inputs whose per-sample shape does not fit the model's images; ``expected`` is the
    model's (C, H, W) and ``got`` the inputs' shape."""

    def __init__(self, message: str, expected: tuple[int, ...] | None,
                 got: tuple[int, ...]) -> None:
        self.expected, self.got = expected, got
        super().__init__(message)


def model_device(learner: Learner, fallback: torch.device) -> torch.device:
    """The device of the learner's parameters (``fallback`` when it has none)."""
    param = next(iter(learner.parameters()), None)
    return fallback if param is None else param.device


def as_images(x: Tensor, shape: tuple[int, ...] | None) -> Tensor:
    """``x`` (N, ...) as images (N, C, H, W) of ``shape``: rows of C*H*W values and (N, H, W)
    for one channel are reshaped; None takes (N, C, H, W) as they are.

    Raises
    ------
    ShapeError
        If ``x`` cannot be images of ``shape``.
    """
    if shape is None:
        if x.dim() != 4:
            raise ShapeError(f"the model takes images of shape (N, C, H, W); got shape "
                             f"{tuple(x.shape)}: reshape the data (e.g. add a channel axis)",
                             None, tuple(x.shape))
        return x
    shape = tuple(int(s) for s in shape)
    sample = tuple(x.shape[1:])
    if sample == shape or (x.dim() == 2 and x.shape[1] == math.prod(shape)) or (
            x.dim() == 3 and shape[0] == 1 and sample == shape[1:]):
        return x.reshape(len(x), *shape)
    c, h, w = shape
    raise ShapeError(f"X of shape {tuple(x.shape)} does not fit the model, which was trained on "
                     f"images of shape {shape}: give (N, {c}, {h}, {w}) images or rows of "
                     f"{c * h * w} values", shape, tuple(x.shape))


def is_table_model(learner) -> bool:
    """Whether ``learner`` reads whole tables (N, D) (the table learner) rather than images."""
    return getattr(learner, "input_kind", "images") == "tables"


def table_inputs(x: Tensor | np.ndarray, *, min_samples: int = 2) -> Tensor:
    """Validate one table for a table model: (N, D) numbers, NaN for missing values.

    Returns
    -------
    Tensor of shape (N, D), float32

    Raises
    ------
    UmetaError
        Not 2-D, fewer than ``min_samples`` (at least 2) rows, fewer than 2 or more than
        `umeta.data.table_input.MAX_COLUMNS` columns, an infinite value, or every column
        constant.

    Examples
    --------
    >>> import numpy as np
    >>> table_inputs(np.array([[1.0, np.nan], [2.0, 3.0]])).shape
    torch.Size([2, 2])
    >>> table_inputs(np.ones((5, 3)))
    Traceback (most recent call last):
    ...
    umeta.errors.UmetaError: every column of the table is constant, so all rows are alike; give columns that vary
    """
    from umeta.data.table_input import MAX_COLUMNS

    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch cannot share a read-only array (e.g. a cached benchmark table)
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise UmetaError(f"a table model takes one table of shape (rows, columns); got shape "
                         f"{tuple(x.shape)}")
    n, d = x.shape
    if n < max(min_samples, 2):
        raise UmetaError(f"the table has {n} row(s); clustering and outlier scores need at least "
                         f"{max(min_samples, 2)} rows")
    if d < 2:
        raise UmetaError(f"the table has {d} column(s); the table model needs at least 2 columns "
                         f"(for one column, use --checkpoint none / learner=None: k-means or "
                         f"k-NN on the values)")
    if d > MAX_COLUMNS:
        raise UmetaError(f"the table has {d} columns; the table model reads at most "
                         f"{MAX_COLUMNS}: reduce them first (e.g. PCA to 256 components)")
    x = x.float()
    if torch.isinf(x).any():
        i, j = (int(v) for v in torch.nonzero(torch.isinf(x))[0])
        raise UmetaError(f"the table holds an infinite value (row {i}, column {j}); replace it "
                         f"with a number or NaN (missing)")
    lo = torch.where(torch.isnan(x), torch.full_like(x, math.inf), x).min(0).values
    hi = torch.where(torch.isnan(x), torch.full_like(x, -math.inf), x).max(0).values
    if not (hi > lo).any():
        raise UmetaError("every column of the table is constant, so all rows are alike; give "
                         "columns that vary")
    return x


def model_inputs(learner: Learner | None, x: Tensor | np.ndarray, *,
                 input_shape: tuple[int, ...] | None = None, min_samples: int = 1) -> Tensor:
    """Validate ``x`` and shape it for ``learner``.

    Parameters
    ----------
    learner : Learner or None
        A meta-trained learner, or None to use ``x`` itself (flattened). A table model
        (:func:`is_table_model`) takes one table (N, D) with NaN for missing values
        (:func:`table_inputs`).
    x : Tensor or ndarray of shape (N, ...)
        With an image learner: images, float in [0, 1] or uint8 (divided by 255), of the learner's
        ``image_shape`` (or ``input_shape``) as (N, C, H, W), (N, H, W) for one channel, or rows
        (N, C*H*W). Without a learner: any array, flattened to (N, D).
    input_shape : (C, H, W), optional
        The learner's image shape when it does not record one.
    min_samples : int
        Fewest samples the caller can work with.

    Returns
    -------
    Tensor of shape (N, C, H, W) on the model's device, float32; without a model (N, D) on the
    data's device, float32 (float64 for float64 inputs).

    Raises
    ------
    UmetaError
        Too few samples, NaN or inf values, or a shape that does not fit the model
        (:class:`ShapeError`).
    """
    if is_table_model(learner):
        return table_inputs(x, min_samples=min_samples).to(model_device(learner, torch.device("cpu")))
    x = torch.as_tensor(x)
    if x.dim() == 0 or len(x) < min_samples or x[0].numel() == 0:
        n = 0 if x.dim() == 0 else len(x)
        raise UmetaError(f"got {n} sample(s) of shape {tuple(x.shape[1:])}; "
                         f"this needs at least {min_samples} non-empty sample(s)")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.dtype != torch.float64 or learner is not None:
        x = x.float()
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise UmetaError(f"the input contains {bad} NaN or inf value(s); remove or impute them")
    if learner is None:
        return x.reshape(len(x), -1)
    x = as_images(x, input_shape or getattr(learner, "image_shape", None))
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        warnings.warn("image values lie outside [0, 1]; the model expects pixels scaled to [0, 1]",
                      UserWarning, stacklevel=3)
    return x.to(model_device(learner, x.device))


def embed_inputs(learner: Learner | None, x: Tensor | np.ndarray, *, normalize: bool = False,
                 batch_size: int = 1024, min_samples: int = 1,
                 input_shape: tuple[int, ...] | None = None, progress: bool = False) -> Tensor:
    """Validate ``x`` (:func:`model_inputs`) and map it to the learner's embedding.

    Parameters
    ----------
    learner, x, input_shape, min_samples : see :func:`model_inputs`
    normalize : bool
        L2-normalise each embedding vector.
    batch_size : int
        Images per forward pass.
    progress : bool
        Show a bar of the images embedded.

    Returns
    -------
    Tensor of shape (N, D) (the inputs themselves, flattened, without a learner).
    """
    x = model_inputs(learner, x, input_shape=input_shape, min_samples=min_samples)
    if learner is None:
        feats = x
    else:
        try:
            feats = learner.embed(x, batch_size=batch_size, progress=progress)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise UmetaError(f"images of shape {tuple(x.shape[1:])} do not fit the model "
                             f"({first}); give images of the shape it was trained on") from None
    return F.normalize(feats, dim=-1) if normalize else feats


@dataclass
class Embedding:
    """Low-dimensional points and the projection that made them.

    Attributes
    ----------
    points : Tensor of shape (N, d)
    pca : PCA
        Maps further embeddings of the same model to the same space.
    """

    points: Tensor
    pca: PCA


def embed_dataset(learner: Learner | None, x: Tensor | np.ndarray, d: int = 2, *,
                  normalize: bool = False, batch_size: int = 1024,
                  input_shape: tuple[int, ...] | None = None,
                  progress: bool = False) -> Embedding:
    """The learner's embedding of ``x`` followed by PCA to ``d`` dimensions.

    Parameters
    ----------
    learner : Learner or None
        None runs PCA on the inputs themselves.
    x : Tensor or ndarray of shape (N, C, H, W) (or (N, ...) without a learner)
    d : int
        Output dimensions (2 for plots), ``d <= min(N, D)``.
    normalize : bool
        L2-normalise the embedding before PCA.
    batch_size : int
    input_shape : see :func:`model_inputs`
    progress : bool
        Show a bar of the images embedded.

    Returns
    -------
    Embedding with points of shape (N, d)
    """
    check_params({"n_components": d, "normalize": normalize, "batch_size": batch_size},
                 EMBED_LIMITS)
    feats = embed_inputs(learner, x, normalize=normalize, batch_size=batch_size, min_samples=2,
                         input_shape=input_shape, progress=progress)
    pca = fit_pca(feats, d)
    return Embedding(pca.transform(feats), pca)


def embedding_quality(x: Tensor | np.ndarray, points: Tensor | np.ndarray, k: int = 10, *,
                      max_points: int = 2000, seed: int = 0) -> dict[str, float]:
    """How well ``points`` keep the neighbourhoods and distances of the inputs ``x``.

    Parameters
    ----------
    x : Tensor or ndarray of shape (N, ...)
        The inputs (e.g. pixels), flattened.
    points : Tensor or ndarray of shape (N, d)
    k : int
        Neighbourhood size, ``k < min(N, max_points) / 2``.
    max_points : int
        Larger sets are scored on a seeded random subset of this many points.
    seed : int

    Returns
    -------
    dict with ``trustworthiness``, ``continuity``, ``knn_preservation`` (in [0, 1]) and
    ``spearman``, ``pearson`` (correlations of pairwise distances, in [-1, 1]).
    """
    x = torch.as_tensor(x).reshape(len(x), -1)
    points = torch.as_tensor(points).to(x.device)
    if len(points) != len(x):
        raise UmetaError(f"embedding_quality: {len(x)} inputs but {len(points)} points; "
                         "give one point per input")
    if len(x) > max_points:
        keep = torch.randperm(len(x), generator=seeded_generator(seed, "cpu"))[:max_points]
        x, points = x[keep.to(x.device)], points[keep.to(x.device)]
    return {
        "trustworthiness": metrics.trustworthiness(x, points, k),
        "continuity": metrics.continuity(x, points, k),
        "knn_preservation": metrics.knn_preservation(x, points, k),
        "spearman": metrics.distance_correlation(x, points, "spearman"),
        "pearson": metrics.distance_correlation(x, points, "pearson"),
    }
