"""Meta-training tasks for the table model: whole tables with known clusters and outliers.

A meta-batch (:class:`TableBatch`) is ``T`` tables of one shape, ``N`` rows by ``D`` columns,
both drawn per batch (log-uniform in ``[min_rows, max_rows]`` and ``[min_columns,
max_columns]``). Each table is either

* **synthetic** (share ``1 - real_share``): :func:`umeta.data.table_priors.sample_prior_tables`,
  with known clusters and, in ``outlier_share`` of them, known outliers; or
* **real**: a table of the collection (`umeta.data.table_sets.TableCollection`, its
  excluded tables and their near-copies already left out) with at least ``N`` rows and ``D``
  columns: ``D`` of its columns at random (each flipped in sign with probability 1/2) and
  ``N`` of its rows. Its classes are the clusters to recover (rows without a class are not
  scored). In ``real_outlier_share`` of the real tables, as ADBench makes anomaly sets from
  classification sets, one class (a small one more often: chosen with probability inversely
  proportional to its size) is the anomalies: 1 .. 15 % of the rows come from it, the rest
  from the other classes.

Every draw comes from the source's one ``torch.Generator`` (real tables through a NumPy
generator seeded from it once per batch), so the same state gives the same tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from umeta.data.table_priors import MAX_CLUSTERS, sample_prior_tables
from umeta.data.table_sets import TableCollection
from umeta.data.tables import Table
from umeta.errors import UmetaError
from umeta.numeric.random import restore_generator, seeded_generator

__all__ = ["TableBatch", "TableTasks"]


@dataclass
class TableBatch:
    """A meta-batch of tables of one shape.

    Attributes
    ----------
    x : Tensor of shape (T, N, D), float32
        Values as read (any scale), NaN = missing.
    y : Tensor of shape (T, N), int64
        Cluster (class) of each row; -1 for outliers and rows without one.
    outlier : Tensor of shape (T, N), bool
    cluster_task : Tensor of shape (T,), bool
        Whether ``y`` is a partition to learn (at least two clusters among the rows).
    outlier_task : Tensor of shape (T,), bool
        Whether the table's outliers are known (and it has outliers and inliers).
    """

    x: Tensor
    y: Tensor
    outlier: Tensor
    cluster_task: Tensor
    outlier_task: Tensor

    @property
    def num_tasks(self) -> int:
        return int(self.x.shape[0])


def _log_int(rng: np.random.Generator, low: int, high: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


class TableTasks:
    """Draws :class:`TableBatch` meta-batches from synthetic priors and real tables (module
    docstring).

    Parameters
    ----------
    data : TableCollection
        Real tables (may be empty when ``real_share`` is 0); tasks go to ``data.device``.
    seed : int
    min_rows, max_rows : int
        Range of ``N`` (at least 32).
    min_columns, max_columns : int
        Range of ``D`` (at least 1).
    real_share : float
        Expected share of real tables in a batch (where real tables of the drawn shape exist).
    outlier_share : float
        Share of synthetic tables with outliers.
    real_outlier_share : float
        Share of real tables turned into anomaly tasks.
    max_outlier_rate : float
        Largest share of outlier rows in a table.
    max_clusters : int
        Most clusters of a synthetic table (`umeta.data.table_priors.sample_prior_tables`).
    plain_share : float
        Share of the synthetic tables that are plain low-dimensional shapes (same function).

    Examples
    --------
    >>> from umeta.data.table_sets import TableCollection
    >>> tasks = TableTasks(TableCollection([]), seed=0, min_rows=64, max_rows=64,
    ...                    min_columns=5, max_columns=5, real_share=0.0)
    >>> batch = tasks.sample(4)
    >>> tuple(batch.x.shape), tuple(batch.y.shape)
    ((4, 64, 5), (4, 64))
    """

    batch_type = TableBatch
    label_free = False

    def __init__(self, data: TableCollection, seed: int = 0, min_rows: int = 64,
                 max_rows: int = 1024, min_columns: int = 2, max_columns: int = 32,
                 real_share: float = 0.5, outlier_share: float = 0.5,
                 real_outlier_share: float = 0.5, max_outlier_rate: float = 0.15,
                 max_clusters: int = MAX_CLUSTERS, plain_share: float = 0.0) -> None:
        if not 32 <= min_rows <= max_rows or not 1 <= min_columns <= max_columns:
            raise UmetaError(f"table tasks need 32 <= min_rows <= max_rows and 1 <= min_columns "
                             f"<= max_columns; got rows {min_rows}..{max_rows}, columns "
                             f"{min_columns}..{max_columns}")
        for name, value in (("real_share", real_share), ("outlier_share", outlier_share),
                            ("real_outlier_share", real_outlier_share),
                            ("plain_share", plain_share)):
            if not 0.0 <= value <= 1.0:
                raise UmetaError(f"tasks.options.{name} must be in [0, 1]; got {value}")
        if not 0.01 <= max_outlier_rate <= 0.5:
            raise UmetaError(f"tasks.options.max_outlier_rate must be in [0.01, 0.5]; got "
                             f"{max_outlier_rate}")
        if not MAX_CLUSTERS <= max_clusters <= 64:
            raise UmetaError(f"tasks.options.max_clusters must be in [{MAX_CLUSTERS}, 64]; got "
                             f"{max_clusters}")
        if real_share > 0 and not data.tables:
            raise UmetaError("tasks.options.real_share > 0 but there are no real tables; use "
                             "data.dataset = 'tables' or set tasks.options.real_share=0")
        self.data = data
        self.device = data.device
        self.generator = seeded_generator(seed, self.device)
        self.rows = (int(min_rows), int(max_rows))
        self.columns = (int(min_columns), int(max_columns))
        self.real_share = float(real_share)
        self.outlier_share = float(outlier_share)
        self.real_outlier_share = float(real_outlier_share)
        self.max_outlier_rate = float(max_outlier_rate)
        self.max_clusters = int(max_clusters)
        self.plain_share = float(plain_share)
        self._shapes = np.array([t.x.shape for t in data.tables], dtype=np.int64).reshape(-1, 2)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])

    def sample(self, num_tasks: int) -> TableBatch:
        """``num_tasks`` tables of one drawn shape."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator,
                                 device=self.device).item())
        rng = np.random.default_rng(seed)
        n = _log_int(rng, *self.rows)
        d = _log_int(rng, *self.columns)
        eligible = np.flatnonzero((self._shapes[:, 0] >= n) & (self._shapes[:, 1] >= d))
        n_real = int(rng.binomial(num_tasks, self.real_share)) if len(eligible) else 0
        parts = []
        if n_real < num_tasks:
            prior = sample_prior_tables(num_tasks - n_real, n, d, self.generator,
                                        outlier_share=self.outlier_share,
                                        max_outlier_rate=self.max_outlier_rate,
                                        max_clusters=self.max_clusters,
                                        plain_share=self.plain_share)
            has_outliers = prior.outlier.any(1) & ~prior.outlier.all(1)
            parts.append((prior.x, prior.y, prior.outlier, torch.ones_like(has_outliers),
                          has_outliers))
        if n_real:
            real = [self._real_task(self.data.tables[i], n, d, rng)
                    for i in rng.choice(eligible, n_real)]
            x, y, outlier, known = (np.stack(a) for a in zip(*real))
            to = dict(device=self.device)
            y_t = torch.as_tensor(y, **to)
            outlier_t = torch.as_tensor(outlier, **to)
            clusters = torch.tensor([len(np.unique(r[r >= 0])) >= 2 for r in y], **to)
            parts.append((torch.as_tensor(x, **to), y_t, outlier_t, clusters,
                          torch.as_tensor(known, **to) & outlier_t.any(1)))
        return TableBatch(*(torch.cat(items) for items in zip(*parts)))

    def _real_task(self, table: Table, n: int, d: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """(x (n, d), y (n,), outlier (n,), outliers known) from one table."""
        columns = rng.choice(table.x.shape[1], d, replace=False)
        y_all = table.y
        rows, outlier, known = None, np.zeros(n, dtype=bool), False
        if rng.random() < self.real_outlier_share:
            classes, counts = np.unique(y_all[y_all >= 0], return_counts=True)
            n_out = max(1, int(round(rng.uniform(0.01, self.max_outlier_rate) * n)))
            scored = int((y_all >= 0).sum())
            fits = (counts >= n_out) & (scored - counts >= n - n_out)
            if fits.any():
                weights = np.where(fits, 1.0 / counts, 0.0)
                chosen = classes[rng.choice(len(classes), p=weights / weights.sum())]
                out_rows = rng.choice(np.flatnonzero(y_all == chosen), n_out, replace=False)
                in_rows = rng.choice(np.flatnonzero((y_all >= 0) & (y_all != chosen)),
                                     n - n_out, replace=False)
                rows = np.concatenate([in_rows, out_rows])
                outlier[n - n_out:] = True
                known = True
        if rows is None:
            rows = rng.choice(len(y_all), n, replace=False)
        order = rng.permutation(n)
        rows, outlier = rows[order], outlier[order]
        x = table.x[rows][:, columns] * rng.choice([-1.0, 1.0], d).astype(np.float32)
        y = np.where(outlier, -1, y_all[rows])
        return x.astype(np.float32), y.astype(np.int64), outlier, known
