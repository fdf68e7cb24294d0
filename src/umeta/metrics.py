"""Evaluation metrics as pure functions."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (Student t) over ``values``.

    Parameters
    ----------
    values : array-like of shape (n,)

    Returns
    -------
    (mean, ci95) : tuple of float; ci95 is 0.0 for a single value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = float(v.mean())
    if v.size == 1:
        return mean, 0.0
    sem = float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, float(stats.t.ppf(0.975, v.size - 1) * sem)
