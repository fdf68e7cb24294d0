"""The classical baselines of B8 and their settings: clustering labels and anomaly scores.

Every baseline sees the table standardised (:func:`standardise`: missing values set to the
column median, then each column to mean 0 and standard deviation 1; constant columns to 0;
category codes are treated as numbers, as pmlb stores them). A method whose cost grows with
the square of the rows fits a seeded subsample of at most ``FIT_ROWS[name]`` rows when the
table is larger, and every row is then answered from the fitted rows: for clustering, each row
takes the label of its nearest fitted row; for LOF and k-NN, every row is scored against the
fitted rows (a fitted row without itself).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import HDBSCAN, AgglomerativeClustering, Birch, KMeans, SpectralClustering
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

from umeta.numeric.columns import standardize_columns

CLUSTERING = {
    "kmeans": "sklearn KMeans(k, init='k-means++', n_init=10)",
    "gmm": "sklearn GaussianMixture(k, covariance_type='full', n_init=3); reg_covar 1e-6, "
           "raised to 1e-3 where a covariance is singular",
    "ward": "sklearn AgglomerativeClustering(k, linkage='ward')",
    "spectral": "sklearn SpectralClustering(k, affinity='nearest_neighbors', n_neighbors=10, "
                "assign_labels='kmeans')",
    "hdbscan": "sklearn HDBSCAN(min_cluster_size=5) (k not used; its noise rows form one more "
               "cluster)",
    "birch": "sklearn Birch(n_clusters=k, threshold=0.5, branching_factor=50)",
}
ANOMALY = {
    "iforest": "sklearn IsolationForest(n_estimators=100, max_samples=256); score = "
               "-score_samples",
    "lof": "sklearn LocalOutlierFactor(n_neighbors=20); score = -negative_outlier_factor_",
    "knn": "distance to the 5th nearest other row (sklearn NearestNeighbors)",
    "ecod": "pyod ECOD()",
    "copod": "pyod COPOD()",
}
FIT_ROWS = {"ward": 20_000, "spectral": 5_000, "lof": 20_000, "knn": 20_000}
"""Most rows a method fits; larger tables are subsampled (module docstring)."""


def standardise(x: np.ndarray) -> np.ndarray:
    """Median-impute, then z-score each column (constant columns become 0):
    `umeta.numeric.columns.standardize_columns` as an (N, D) float64 array."""
    return standardize_columns(x).numpy()


def fit_rows(n_rows: int, cap: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded subsample of ``cap`` rows, or None when all rows fit."""
    if cap is None or n_rows <= cap:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, cap, replace=False))


def _cluster(name: str, z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, str]:
    if name == "kmeans":
        return KMeans(k, init="k-means++", n_init=10, random_state=seed).fit_predict(z), ""
    if name == "gmm":
        try:
            model = GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed)
            return model.fit_predict(z), ""
        except ValueError:  # "ill-defined empirical covariance"
            model = GaussianMixture(k, covariance_type="full", n_init=3, reg_covar=1e-3,
                                    random_state=seed)
            return model.fit_predict(z), "reg_covar=1e-3"
    if name == "ward":
        return AgglomerativeClustering(k, linkage="ward").fit_predict(z), ""
    if name == "spectral":
        model = SpectralClustering(k, affinity="nearest_neighbors",
                                   n_neighbors=min(10, len(z) - 1), assign_labels="kmeans",
                                   random_state=seed)
        return model.fit_predict(z), ""
    if name == "hdbscan":
        return HDBSCAN(min_cluster_size=5, copy=True).fit_predict(z), ""
    if name == "birch":
        return Birch(n_clusters=k, threshold=0.5, branching_factor=50).fit_predict(z), ""
    raise ValueError(f"unknown clustering baseline {name!r}")


def cluster_labels(name: str, x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, str]:
    """Labels (N,) of baseline ``name`` (a key of :data:`CLUSTERING`) and a note (what was
    changed, or ``""``).

    Parameters
    ----------
    x : ndarray of shape (N, D)
        The table as read (NaN = missing); standardised here.
    k : int
        Clusters asked for.
    """
    z = standardise(x)
    rows = fit_rows(len(z), FIT_ROWS.get(name), seed)
    if rows is None:
        return _cluster(name, z, k, seed)
    labels, note = _cluster(name, z[rows], k, seed)
    nearest = NearestNeighbors(n_neighbors=1).fit(z[rows]).kneighbors(z, return_distance=False)
    return labels[nearest[:, 0]], " ".join(filter(None, [note, f"fit on {len(rows)} rows"]))


def anomaly_scores(name: str, x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Scores (N,) of baseline ``name`` (a key of :data:`ANOMALY`), higher = more anomalous,
    fitted on all rows without labels, and a note."""
    z = standardise(x)
    if name == "iforest":
        return -IsolationForest(n_estimators=100, random_state=seed).fit(z).score_samples(z), ""
    if name in ("ecod", "copod"):
        try:
            from pyod.models.copod import COPOD
            from pyod.models.ecod import ECOD
        except ModuleNotFoundError:
            raise SystemExit("ECOD and COPOD need PyOD: pip install -e '.[bench]'") from None
        return (ECOD() if name == "ecod" else COPOD()).fit(z).decision_scores_, ""
    rows = fit_rows(len(z), FIT_ROWS[name], seed)
    fitted = z if rows is None else z[rows]
    note = "" if rows is None else f"fit on {len(rows)} rows"
    if name == "lof":
        if rows is None:
            lof = LocalOutlierFactor(n_neighbors=min(20, len(z) - 1)).fit(z)
            return -lof.negative_outlier_factor_, note
        lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(fitted)
        scores = -lof.score_samples(z)
        scores[rows] = -lof.negative_outlier_factor_
        return scores, note
    if name == "knn":
        k = min(5, len(fitted) - 1)
        index = NearestNeighbors(n_neighbors=k + 1).fit(fitted)
        if rows is None:
            return index.kneighbors(z)[0][:, k], note
        scores = index.kneighbors(z, n_neighbors=k)[0][:, k - 1]
        scores[rows] = index.kneighbors(fitted)[0][:, k]
        return scores, note
    raise ValueError(f"unknown anomaly baseline {name!r}")
