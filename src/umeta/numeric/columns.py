"""Table columns as the classical methods take them: missing values imputed, each column
z-scored. This is the "raw values" baseline that a table model is compared with
(`umeta compare` on a table, B8's scikit-learn baselines)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


def standardize_columns(x: Tensor | np.ndarray) -> Tensor:
    """Median-impute each column's missing values (NaN), then z-score it (a constant column
    becomes 0; a column with no value at all, 0).

    Parameters
    ----------
    x : Tensor or ndarray of shape (N, D)

    Returns
    -------
    Tensor of shape (N, D), float64

    Examples
    --------
    >>> import torch
    >>> standardize_columns(torch.tensor([[1.0, 5.0], [float("nan"), 5.0], [3.0, 5.0]])).tolist()
    [[-1.224744871391589, 0.0], [0.0, 0.0], [1.224744871391589, 0.0]]
    """
    z = np.array(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
    missing = np.isnan(z)
    if missing.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column with no value
            medians = np.nan_to_num(np.nanmedian(z, axis=0))
        z[missing] = np.take(medians, np.nonzero(missing)[1])
    std = z.std(0)
    return torch.from_numpy((z - z.mean(0)) / np.where(std > 0, std, 1.0))


__all__ = ["standardize_columns"]
