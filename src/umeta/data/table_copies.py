"""Copies and near-copies among tables, for leave-data-set-out: by name and by content.

Three kinds of evidence, each a ``reason`` of a :class:`NearCopy`:

* ``"name"``: the two names normalise (:func:`source_name`) to the same source, directly or
  through :data:`SOURCE_ALIASES` (the same public data set published under other names, e.g.
  pmlb ``wdbc`` = pmlb ``breast_cancer_wisconsin`` = ADBench ``43_WDBC``).
* ``"hash"``: the same values, in any order of rows and columns (:func:`content_hash`).
* ``"rows"``: most rows of the shorter table occur in the other one, up to an affine map of
  each column and any order of rows and columns (subsets, row subsamples, rescaled, rounded or
  reordered copies, a column dropped or added). Found in two steps: a :class:`Fingerprint` of
  per-column quantile signatures, which do not change under row order, column order,
  per-column affine rescaling and moderate row subsampling, tells whether the columns of two
  tables pair up; then :func:`shared_rows` searches the column pairing and the affine maps
  that make rows coincide and counts the rows with an exact twin, against the count for the
  other table with its columns shuffled independently (the chance level of discrete data).

Limits: a copy that transforms its values other than affinely per column (pmlb's ``car`` is
one-hot coded in ``car_evaluation``), or keeps too few of their columns, is found by name only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from umeta.data.tables import COLLECTIONS, Table

__all__ = ["SOURCE_ALIASES", "Fingerprint", "NearCopy", "source_name", "content_hash",
           "fingerprint", "match_columns", "shared_rows", "compare_tables", "find_near_copies"]

# Public data sets published under several names across pmlb and ADBench (facts about the
# sources: UCI/Statlog/ODDS lineage). Keys are source ids; values are normalised names.
SOURCE_ALIASES: dict[str, tuple[str, ...]] = {
    "breast_cancer_wisconsin_diagnostic": ("wdbc", "breast_cancer_wisconsin"),
    "breast_cancer_wisconsin_original": ("breast", "breast_w", "breastw", "wbc"),
    "glass": ("glass", "glass2", "prnn_fglass"),
    "pima": ("pima", "diabetes"),
    "magic": ("magic", "magic_gamma"),
    "musk": ("musk", "clean1", "clean2"),
    "page_blocks": ("page_blocks", "pageblocks"),
    "landsat": ("satimage", "landsat", "satellite", "satimage_2"),
    "thyroid_garvan": ("ann_thyroid", "annthyroid", "thyroid", "allbp", "allhyper", "allhypo",
                       "allrep", "dis", "hypothyroid"),
    "waveform": ("waveform", "waveform_21", "waveform_40"),
    "wine": ("wine", "wine_recognition"),
    "cardiotocography": ("cardio", "cardiotocography"),
    "kddcup99": ("kddcup", "http", "smtp"),
    "heart_cleveland": ("heart_c", "cleve", "cleveland", "cleveland_nominal", "heart_statlog"),
    "heart_hungarian": ("heart_h", "hungarian"),
    "credit_approval": ("crx", "credit_a", "buggycrx", "australian"),
    "german_credit": ("german", "credit_g"),
    "horse_colic": ("colic", "horse_colic"),
    "house_votes": ("house_votes_84", "vote"),
    "mushroom": ("mushroom", "agaricus_lepiota"),
    "promoters": ("promoters", "molecular_biology_promoters"),
    "car_evaluation": ("car", "car_evaluation"),
    "auto_mpg": ("cars", "cars1"),
    "contraceptive": ("cmc", "contraceptive"),
    "solar_flare": ("flare", "solar_flare_1", "solar_flare_2"),
    "kr_vs_kp": ("chess", "kr_vs_kp"),
    "splice": ("dna", "splice"),
    "mfeat": ("mfeat_factors", "mfeat_fourier", "mfeat_karhunen", "mfeat_morphological",
              "mfeat_pixel", "mfeat_zernike"),
    "spect": ("spect", "spectf"),
    "hill_valley": ("hill_valley_with_noise", "hill_valley_without_noise"),
}
_ALIAS_OF = {name: source for source, names in SOURCE_ALIASES.items() for name in names}
_LEVELS = np.linspace(0.02, 0.98, 25)


def source_name(key: str) -> str:
    """The normalised source of a table key or name.

    Lower case; the collection prefix and ADBench's / OpenML's leading number dropped; runs of
    other characters than letters and digits become ``_``; then :data:`SOURCE_ALIASES`.
    clustering-data-v1 names keep their battery (``graves_ring``), so that its synthetic sets
    do not collide with unrelated tables of the same word (pmlb ``ring`` is Delve's ringnorm).

    Examples: ``adbench-classical/14_glass`` -> ``glass``; ``pmlb/breast_w`` and
    ``adbench-classical/4_breastw`` -> ``breast_cancer_wisconsin_original``.
    """
    collection, _, rest = key.partition("/")
    name = rest if collection in COLLECTIONS else key
    name = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    name = re.sub(r"^\d+_", "", name)
    return _ALIAS_OF.get(name, name)


def content_hash(table: Table) -> str:
    """sha256 of the feature values, invariant to the order of rows and of columns.

    Columns are put in the order of their sorted values' bytes, then rows sorted; NaN is one
    value. Exact copies only: rescaled or subsampled copies are :func:`shared_rows`' job.
    """
    x = np.where(np.isnan(table.x), np.float32(np.nan), table.x).astype(np.float32)
    keys = [np.sort(x[:, j]).tobytes() for j in range(x.shape[1])]
    x = x[:, sorted(range(x.shape[1]), key=keys.__getitem__)]
    x = x[np.lexsort(x.T[::-1])] if x.size else x
    digest = hashlib.sha256(f"{x.shape}".encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """Order-, scale- and subsample-invariant summary of a table.

    Attributes
    ----------
    name : str
    n_rows : int
    columns : ndarray of shape (C,), int64
        The non-constant columns of the table, which the signatures describe.
    signatures : ndarray of shape (C, L), float64
        Per column: ``arcsinh`` of the quantiles at levels 0.02 .. 0.98 of the values
        standardised by median and inter-quartile range (the standard deviation when that is
        0), turned so that the upper tail is the longer one.
    centers, scales : ndarray of shape (C,), float64
        The median and the (signed) scale used: value = center + scale * standardised value.
    resolutions : ndarray of shape (C,), float64
        The smallest gap between two distinct values of the column (its rounding step, for
        rounded data).
    hash : str
        :func:`content_hash`.
    """

    name: str
    n_rows: int
    columns: np.ndarray
    signatures: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    resolutions: np.ndarray
    hash: str


def fingerprint(table: Table) -> Fingerprint:
    """The :class:`Fingerprint` of a table (NaN values are left out per column)."""
    cols, sigs, centers, scales, steps = [], [], [], [], []
    for j in range(table.x.shape[1]):
        v = table.x[:, j].astype(np.float64)
        v = v[np.isfinite(v)]
        if v.size < 2 or v.min() == v.max():
            continue
        q10, q25, med, q75, q90 = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
        scale = q75 - q25 if q75 > q25 else v.std()
        if q90 + q10 - 2 * med < 0:
            scale = -scale
        z = np.sort((v - med) / scale)
        steps.append(np.diff(np.unique(v)).min())
        cols.append(j)
        sigs.append(np.arcsinh(np.quantile(z, _LEVELS)))
        centers.append(med)
        scales.append(scale)
    n_levels = _LEVELS.size
    return Fingerprint(table.name, table.x.shape[0], np.array(cols, dtype=np.int64),
                       np.array(sigs, dtype=np.float64).reshape(-1, n_levels),
                       np.array(centers, dtype=np.float64), np.array(scales, dtype=np.float64),
                       np.array(steps, dtype=np.float64), content_hash(table))


def match_columns(a: Fingerprint, b: Fingerprint, col_tol: float = 0.1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Pair the columns of two fingerprints one-to-one by signature (Hungarian matching).

    Returns
    -------
    pairs : ndarray of shape (P, 2), int64
        Indices into ``a.columns`` and ``b.columns`` of the pairs whose signatures differ by
        less than ``col_tol`` (mean absolute difference).
    distances : ndarray of shape (P,), float64
    """
    if not len(a.columns) or not len(b.columns):
        return np.zeros((0, 2), np.int64), np.zeros(0)
    cost = cdist(a.signatures, b.signatures, "cityblock") / _LEVELS.size
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] < col_tol
    return np.stack([rows[keep], cols[keep]], 1).astype(np.int64), cost[rows, cols][keep]


def _theil_sen(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
               n_pairs: int = 4000) -> tuple[float, float]:
    """Robust line ``b ~ slope * a + intercept`` (median of pairwise slopes)."""
    i, k = rng.integers(0, a.size, (2, n_pairs))
    da, db = a[i] - a[k], b[i] - b[k]
    ok = da != 0
    if not ok.any():
        return 1.0, float(np.median(b - a))
    slope = float(np.median(db[ok] / da[ok]))
    return slope, float(np.median(b - slope * a))


def _quantile_ranks(x: np.ndarray) -> np.ndarray:
    """Each column's values replaced by their mid-rank quantile in (0, 1) (ties averaged)."""
    from scipy.stats import rankdata

    return (rankdata(x, axis=0) - 0.5) / len(x)


def _fit_columns(qa: np.ndarray, xb: np.ndarray, scale_ratio: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column correspondence and affine maps from paired rows ``qa[i] <-> xb[i]`` (m, P).

    Columns are paired by the largest absolute correlation over the paired rows (Hungarian
    matching), then a Theil-Sen line is fitted per pair. A slope more than 10x away from the
    columns' robust scale ratio ``|scale_ratio[j, order[j]]|`` (P, P), which a copy's slope is
    near, is replaced by that ratio (signed as the correlation): nearest-neighbour refits on
    unrelated tables otherwise shrink slopes towards 0.

    Returns
    -------
    (order, slope, intercept) : ndarrays of shape (P,)
        Column ``j`` of ``qa`` maps to column ``order[j]`` of ``xb`` as
        ``slope[j] * value + intercept[j]``.
    """
    za = (qa - qa.mean(0)) / (qa.std(0) + 1e-12)
    zb = (xb - xb.mean(0)) / (xb.std(0) + 1e-12)
    corr = za.T @ zb
    rows, order = linear_sum_assignment(-np.abs(corr))
    order = order[np.argsort(rows)]
    slope, intercept = np.empty(len(order)), np.empty(len(order))
    for j, k in enumerate(order):
        slope[j], intercept[j] = _theil_sen(qa[:, j], xb[:, k], rng)
        ratio = abs(scale_ratio[j, k])
        if not 0.1 <= abs(slope[j]) / ratio <= 10:
            slope[j] = ratio if corr[j, k] >= 0 else -ratio
            intercept[j] = np.median(xb[:, k] - slope[j] * qa[:, j])
    return order, slope, intercept


def _pair_by_shared_values(qa: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair the columns of ``qa`` (m, Pa) and ``xb`` (n, Pb) by the share of ``qa``'s values
    found in ``xb``'s (Hungarian matching; min(Pa, Pb) pairs).

    A value is found when one of the other column's values is within 1e-6 of it (relative to
    ``max(1, |value|)``).

    Returns
    -------
    (cols_a, cols_b) : ndarrays of shape (min(Pa, Pb),), int64
    """
    values = [np.unique(col) for col in qa.T]
    owner = np.repeat(np.arange(len(values)), [len(v) for v in values])
    values = np.concatenate(values)
    counts = np.bincount(owner, minlength=qa.shape[1])
    shared = np.empty((qa.shape[1], xb.shape[1]))
    for k in range(xb.shape[1]):
        sorted_b = np.unique(xb[:, k])
        pos = np.searchsorted(sorted_b, values)
        gap = np.minimum(np.abs(sorted_b[np.minimum(pos, len(sorted_b) - 1)] - values),
                         np.abs(sorted_b[np.maximum(pos - 1, 0)] - values))
        found = gap <= 1e-6 * np.maximum(1.0, np.abs(values))
        shared[:, k] = np.bincount(owner, weights=found, minlength=qa.shape[1]) / counts
    cols_a, cols_b = linear_sum_assignment(-shared)
    return cols_a.astype(np.int64), cols_b.astype(np.int64)


def shared_rows(a: Table, b: Table, fa: Fingerprint, fb: Fingerprint, *,
                row_tol: float = 1e-3, max_queries: int = 500, iterations: int = 6,
                seed: int = 0) -> tuple[float, float, int]:
    """Fraction of ``a``'s rows with a twin in ``b``, its chance level, and the columns compared.

    A twin agrees with the row on the compared columns after one affine map per column. The
    column pairing and the maps are searched from four starts, each refined by iterating
    nearest neighbours under the current maps (on the columns that agreed so far) and
    :func:`_fit_columns` on those row pairs; the best end counts. Starts: (1) columns paired
    by signature (Hungarian, no threshold) with the robust-standardisation maps; (2) columns
    paired by shared values (:func:`_pair_by_shared_values`) with identity maps, and (3) after
    min-max scaling each table, with the min-max maps (copies that keep their values or
    min-max scale them, whichever rows they keep); (4) the columns of (1), rows paired by
    their sorted per-column quantile ranks (no column pairing needed). A column agrees when
    at least half as many of its row pairs as the best column's are within 0.05 of its scale;
    at least the ``max(min(2, P), ceil(P / 2))`` best of the P paired columns are compared.

    Parameters
    ----------
    a, b : Table
        ``a`` is the table whose rows are looked up (usually the shorter one).
    fa, fb : Fingerprint
        Their fingerprints.
    row_tol : float
        A twin differs by less than this in every compared column, in units of ``b``'s
        column scale (see :class:`Fingerprint`), or by less than half the two columns'
        rounding steps where that is more (a copy rounded to fewer digits).
    max_queries : int
        At most this many rows of ``a`` (a seeded sample) are looked up.

    Returns
    -------
    fraction : float
        Distinct twins found over distinct rows looked up.
    chance : float
        The same for ``b`` with each of its columns shuffled on its own.
    n_columns : int
        The columns compared.
    """
    rng = np.random.default_rng(seed)
    if not len(fa.columns) or not len(fb.columns):
        return 0.0, 0.0, 0
    xa_all = a.x[:, fa.columns].astype(np.float64)
    xb_all = b.x[:, fb.columns].astype(np.float64)
    queries = rng.permutation(len(xa_all))[:max_queries]
    low_a, span_a = np.nanmin(xa_all, 0), np.nanmax(xa_all, 0) - np.nanmin(xa_all, 0)
    low_b, span_b = np.nanmin(xb_all, 0), np.nanmax(xb_all, 0) - np.nanmin(xb_all, 0)
    finite_a = xa_all[queries][np.isfinite(xa_all[queries]).all(1)]
    finite_b = xb_all[np.isfinite(xb_all).all(1)]

    cost = cdist(fa.signatures, fb.signatures, "cityblock")
    sig_a, sig_b = linear_sum_assignment(cost)
    slope = fb.scales[sig_b] / fa.scales[sig_a]
    starts = [(sig_a, sig_b, slope, fb.centers[sig_b] - slope * fa.centers[sig_a])]
    if len(finite_a) and len(finite_b):
        ia, ib = _pair_by_shared_values(finite_a, finite_b)
        starts.append((ia, ib, np.ones(len(ia)), np.zeros(len(ia))))
        ia, ib = _pair_by_shared_values((finite_a - low_a) / np.where(span_a > 0, span_a, 1),
                                        (finite_b - low_b) / np.where(span_b > 0, span_b, 1))
        slope = span_b[ib] / np.where(span_a[ia] > 0, span_a[ia], 1)
        starts.append((ia, ib, slope, low_b[ib] - slope * low_a[ia]))
    starts.append((sig_a, sig_b, None, None))
    best = (-1.0, 0.0, 0)
    for ia, ib, slope, intercept in starts:
        qa, xb = xa_all[queries][:, ia], xb_all[:, ib]
        qa, xb = qa[np.isfinite(qa).all(1)], xb[np.isfinite(xb).all(1)]
        if not len(qa) or not len(xb):
            continue
        ratio = fb.scales[ib][None, :] / fa.scales[ia][:, None]  # (P, P)
        if slope is None:
            ranks = NearestNeighbors(n_neighbors=1).fit(np.sort(_quantile_ranks(xb), 1))
            idx = ranks.kneighbors(np.sort(_quantile_ranks(qa), 1), return_distance=False)
            maps = _fit_columns(qa, xb[idx[:, 0]], ratio, rng)
        else:
            maps = (np.arange(len(ia)), slope, intercept)
        scale_b, steps = np.abs(fb.scales[ib]), (fa.resolutions[ia], fb.resolutions[ib])
        found, maps, active = _refine(qa, xb, maps, scale_b, steps, ratio, rng, row_tol,
                                      iterations)
        if found > best[0]:
            shuffled = np.stack([rng.permutation(col) for col in xb.T], 1)
            chance = _twins(qa, shuffled, maps, active, scale_b, steps, row_tol, {})
            best = (found, chance, int(active.sum()))
        if found >= 0.99:
            break
    return best if best[0] >= 0 else (0.0, 0.0, 0)


def _mapped_nearest(qa: np.ndarray, xb: np.ndarray, maps, active: np.ndarray,
                    scale_b: np.ndarray, indexes: dict) -> tuple[np.ndarray, np.ndarray]:
    """Absolute residuals (q, P), in ``xb``'s column order, of ``qa`` mapped into ``xb``'s
    columns against each one's nearest row of ``xb`` (found on the ``active`` columns of
    ``qa``, in units of ``scale_b``), and the index of those rows. ``indexes`` caches the
    neighbour search of ``xb`` per column set."""
    order, slope, intercept = maps
    m = np.empty_like(qa)
    m[:, order] = qa * slope + intercept
    cols = np.sort(order[active])
    key = cols.tobytes()
    if key not in indexes:
        indexes[key] = NearestNeighbors(n_neighbors=1).fit(xb[:, cols] / scale_b[cols])
    idx = indexes[key].kneighbors(m[:, cols] / scale_b[cols], return_distance=False)[:, 0]
    return np.abs(m - xb[idx]), idx


def _tolerance(maps, rel_tol: float, scale_b: np.ndarray, step_a: np.ndarray,
               step_b: np.ndarray) -> np.ndarray:
    """Per column of ``xb``: ``rel_tol`` of its scale, or half the two rounding steps (``qa``'s
    mapped), whichever is larger."""
    order, slope, _ = maps
    rounding = step_b.copy()
    rounding[order] += np.abs(slope) * step_a
    return np.maximum(rel_tol * scale_b, rounding / 2)


MIN_DISTINCT_ROWS = 20
"""Fewer distinct rows (on the compared columns) than this say nothing: a few value patterns
of discrete columns occur in any large table."""


def _twins(qa, xb, maps, active, scale_b, steps, row_tol, indexes: dict) -> float:
    """Distinct rows of ``xb`` that are twins of rows of ``qa``, over ``qa``'s distinct rows
    (on the compared columns); 0 for fewer than :data:`MIN_DISTINCT_ROWS` of those."""
    n_distinct = len(np.unique(qa[:, active], axis=0))
    if n_distinct < MIN_DISTINCT_ROWS:
        return 0.0
    residual, idx = _mapped_nearest(qa, xb, maps, active, scale_b, indexes)
    cols = maps[0][active]
    close = (residual[:, cols] < _tolerance(maps, row_tol, scale_b, *steps)[cols]).all(1)
    return len(np.unique(idx[close])) / n_distinct


def _refine(qa, xb, maps, scale_b, steps, ratio, rng, row_tol, iterations):
    """Iterate nearest neighbours and :func:`_fit_columns`; ``(twin fraction, maps, active)``."""
    n = qa.shape[1]
    needed = max(min(2, n), -(-n // 2))
    active = np.ones(n, bool)
    indexes: dict = {}
    for _ in range(iterations):
        _, idx = _mapped_nearest(qa, xb, maps, active, scale_b, indexes)
        maps = _fit_columns(qa, xb[idx], ratio, rng)
        residual, _ = _mapped_nearest(qa, xb, maps, active, scale_b, indexes)
        order = maps[0]
        rate = (residual[:, order] < _tolerance(maps, 0.05, scale_b, *steps)[order]).mean(0)
        active = rate >= 0.5 * rate.max() if rate.max() > 0 else np.ones(n, bool)
        if active.sum() < needed:
            active = np.zeros(n, bool)
            active[np.argsort(-rate, kind="stable")[:needed]] = True
    return _twins(qa, xb, maps, active, scale_b, steps, row_tol, indexes), maps, active


@dataclass(frozen=True)
class NearCopy:
    """Evidence that two tables are copies or near-copies of one source.

    Attributes
    ----------
    a, b : str
        Table names (for :func:`find_near_copies`: ``a`` a training table, ``b`` an
        evaluation table).
    reasons : tuple of str
        Some of ``"name"``, ``"hash"``, ``"rows"`` (see the module docstring).
    matched_columns : int
        Columns paired by signature.
    column_fraction : float
        ``matched_columns`` over the non-constant columns of the narrower table.
    shared_rows, chance_rows : float or None
        From :func:`shared_rows` (None when the row test did not run).
    row_columns : int
        The columns the row test compared (0 when it did not run).
    """

    a: str
    b: str
    reasons: tuple[str, ...]
    matched_columns: int
    column_fraction: float
    shared_rows: float | None = None
    chance_rows: float | None = None
    row_columns: int = 0

    def as_dict(self) -> dict:
        """JSON-able, floats rounded to 4 digits."""
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        for key in ("column_fraction", "shared_rows", "chance_rows"):
            if out[key] is not None:
                out[key] = round(out[key], 4)
        return out


def compare_tables(a: Table, b: Table, fa: Fingerprint | None = None,
                   fb: Fingerprint | None = None, *, col_tol: float = 0.1,
                   min_column_fraction: float = 0.75, row_tol: float = 1e-3,
                   min_shared: float = 0.5, min_above_chance: float = 0.25,
                   max_chance: float = 0.25, seed: int = 0) -> NearCopy | None:
    """A :class:`NearCopy` if ``a`` and ``b`` are copies by name, hash or shared rows, else None.

    The row test runs when at least ``min_column_fraction`` of the narrower table's
    non-constant columns (and at least two, or its one) pair up; it finds a copy when at least
    ``min_shared`` of the shorter table's rows have twins, ``min_above_chance`` above chance,
    and the chance level is at most ``max_chance`` (where twins are common by chance, as in
    coarsely rounded data on a narrow support, shared rows are no evidence).
    A quick row test (64 rows, 4 refits) goes first; the full one runs when the quick one
    finds at least ``min_shared / 2``.
    """
    fa = fa or fingerprint(a)
    fb = fb or fingerprint(b)
    reasons = []
    if source_name(a.name) == source_name(b.name):
        reasons.append("name")
    if fa.hash == fb.hash:
        reasons.append("hash")
    pairs, _ = match_columns(fa, fb, col_tol)
    narrow = min(len(fa.columns), len(fb.columns))
    column_fraction = len(pairs) / narrow if narrow else 0.0
    shared = chance = None
    n_columns = 0
    if narrow and len(pairs) >= min(2, narrow) and column_fraction >= min_column_fraction:
        short, long = ((a, fa), (b, fb)) if fa.n_rows <= fb.n_rows else ((b, fb), (a, fa))
        args = (short[0], long[0], short[1], long[1])
        shared, chance, n_columns = shared_rows(*args, row_tol=row_tol, max_queries=64,
                                                iterations=4, seed=seed)
        if shared >= min_shared / 2:
            shared, chance, n_columns = shared_rows(*args, row_tol=row_tol, seed=seed)
        if (shared >= min_shared and shared - chance >= min_above_chance
                and chance <= max_chance):
            reasons.append("rows")
    if not reasons:
        return None
    return NearCopy(a.name, b.name, tuple(reasons), int(len(pairs)), float(column_fraction),
                    shared, chance, n_columns)


def find_near_copies(train: Sequence[Table], evaluation: Sequence[Table],
                     **options) -> list[NearCopy]:
    """Every (training, evaluation) pair of tables that are copies or near-copies.

    Parameters
    ----------
    train, evaluation : sequences of Table
        A table in both lists (same name) is reported as a copy of itself (reason ``"name"``
        and ``"hash"`` at least).
    **options
        Thresholds of :func:`compare_tables`.

    Returns
    -------
    list of NearCopy, ``a`` from ``train`` and ``b`` from ``evaluation``, in input order.
    """
    prints = {t.name: fingerprint(t) for t in _unique(list(train) + list(evaluation))}
    found = []
    for a in train:
        for b in evaluation:
            hit = compare_tables(a, b, prints[a.name], prints[b.name], **options)
            if hit is not None:
                found.append(hit)
    return found


def _unique(tables: Iterable[Table]) -> list[Table]:
    seen: dict[str, Table] = {}
    for t in tables:
        seen.setdefault(t.name, t)
    return list(seen.values())
