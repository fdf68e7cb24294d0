"""Embedding new data with a meta-trained model: validated features, PCA to ``d`` dims, quality.

:func:`features` is the one entry point from raw inputs to meta-learned features; clustering and
anomaly scoring use it too. Everything runs on the device of the model (or of the data when
there is no model).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from umeta import metrics
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.tasks.sampler import seeded_generator


def model_device(learner: Learner, fallback: torch.device) -> torch.device:
    """The device of the learner's parameters (``fallback`` when it has none)."""
    param = next(iter(learner.parameters()), None)
    return fallback if param is None else param.device


def features(learner: Learner | None, x: Tensor | np.ndarray, *, normalize: bool = False,
             batch_size: int = 1024, min_samples: int = 1) -> Tensor:
    """Validate ``x`` and map it to features.

    Parameters
    ----------
    learner : Learner or None
        A meta-trained learner, or None to use ``x`` itself (flattened) as the features.
    x : Tensor or ndarray
        With a learner: images of shape (N, C, H, W), float in [0, 1] or uint8 (divided by 255).
        Without: any array of shape (N, ...), flattened to (N, D).
    normalize : bool
        L2-normalise each feature vector.
    batch_size : int
        Images per forward pass.
    min_samples : int
        Fewest samples the caller can work with.

    Returns
    -------
    Tensor of shape (N, D), on the model's device (the data's device without a model); float32,
    or float64 for float64 inputs without a model.

    Raises
    ------
    UmetaError
        Too few samples, NaN or inf values, or images that do not fit the model.
    """
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
        feats = x.reshape(len(x), -1)
    else:
        feats = _learner_features(learner, x, batch_size)
    return F.normalize(feats, dim=-1) if normalize else feats


def check_image_shape(learner: Learner, x: Tensor) -> None:
    """Raise `UmetaError` unless ``x`` is (N, C, H, W) with the learner's ``image_shape``."""
    if x.dim() != 4:
        raise UmetaError(f"the model takes images of shape (N, C, H, W); got shape "
                         f"{tuple(x.shape)}: reshape the data (e.g. add a channel axis)")
    expected = getattr(learner, "image_shape", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise UmetaError(f"the model was trained on images of shape {tuple(expected)}; got "
                         f"{tuple(x.shape[1:])}: resize the data to {tuple(expected)}")


def _learner_features(learner: Learner, x: Tensor, batch_size: int) -> Tensor:
    check_image_shape(learner, x)
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        warnings.warn("image values lie outside [0, 1]; the model expects pixels scaled to [0, 1]",
                      UserWarning, stacklevel=3)
    x = x.to(model_device(learner, x.device))
    try:
        return learner.embed(x, batch_size=batch_size)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise UmetaError(f"images of shape {tuple(x.shape[1:])} do not fit the model ({first}); "
                         "give images of the shape it was trained on") from None


@dataclass
class PCA:
    """A fitted principal component projection.

    Attributes
    ----------
    mean : Tensor of shape (D,)
    components : Tensor of shape (d, D)
        Orthonormal rows, each signed so that its largest-magnitude entry is positive.
    explained_variance : Tensor of shape (d,)
    explained_variance_ratio : Tensor of shape (d,)
    """

    mean: Tensor
    components: Tensor
    explained_variance: Tensor
    explained_variance_ratio: Tensor

    def transform(self, feats: Tensor) -> Tensor:
        """Project features (N, D) -> (N, d)."""
        return (feats - self.mean) @ self.components.T


def fit_pca(feats: Tensor, d: int) -> PCA:
    """Exact PCA (SVD of the centred data) of ``feats`` (N, D) to ``d`` components."""
    n, dim = feats.shape
    if not 1 <= d <= min(n, dim):
        raise UmetaError(f"cannot project {n} samples of {dim} features to d={d} dimensions; "
                         f"choose 1 <= d <= {min(n, dim)}")
    mean = feats.mean(0)
    _, s, vh = torch.linalg.svd(feats - mean, full_matrices=False)
    comps = vh[:d]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    var = s.pow(2) / max(n - 1, 1)
    total = var.sum()
    ratio = var[:d] / total if total > 0 else torch.zeros_like(var[:d])
    return PCA(mean, comps, var[:d], ratio)


@dataclass
class Embedding:
    """Low-dimensional points and the projection that made them.

    Attributes
    ----------
    points : Tensor of shape (N, d)
    pca : PCA
        Maps further features of the same model to the same space.
    """

    points: Tensor
    pca: PCA


def embed_dataset(learner: Learner | None, x: Tensor | np.ndarray, d: int = 2, *,
                  normalize: bool = False, batch_size: int = 1024) -> Embedding:
    """Meta-learned features of ``x`` followed by PCA to ``d`` dimensions.

    Parameters
    ----------
    learner : Learner or None
        None runs PCA on the inputs themselves.
    x : Tensor or ndarray of shape (N, C, H, W) (or (N, ...) without a learner)
    d : int
        Output dimensions (2 for plots), ``d <= min(N, D)``.
    normalize : bool
        L2-normalise the features before PCA.
    batch_size : int

    Returns
    -------
    Embedding with points of shape (N, d)
    """
    feats = features(learner, x, normalize=normalize, batch_size=batch_size, min_samples=2)
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
