"""Exact principal component analysis on tensors (SVD of the centred data)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from umeta.params import ParamError


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
        raise ParamError("d", d, f"cannot project {n} samples of {dim} features to {{setting}} "
                                 f"dimensions; choose 1 <= {{param}} <= {min(n, dim)}")
    mean = feats.mean(0)
    _, s, vh = torch.linalg.svd(feats - mean, full_matrices=False)
    comps = vh[:d]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    var = s.pow(2) / max(n - 1, 1)
    total = var.sum()
    ratio = var[:d] / total if total > 0 else torch.zeros_like(var[:d])
    return PCA(mean, comps, var[:d], ratio)
