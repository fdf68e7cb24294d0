"""The table encoder: a whole table in (any rows, any columns, any scale, missing values),
an embedding and an outlier logit per row out.

Every step is one of two kinds. *Per-row* steps look at one row at a time. *Cross-row* steps
let rows see each other only through a **summary of the context rows**: per-column value
statistics, per-column means, a few learned inducing points, and a k-nearest-neighbour graph
whose neighbours are context rows. So the encoder is equivariant to the order of the rows,
invariant to the order of the columns (nothing tells columns apart but their values), and
it can run in two passes: the context rows first (every table of up to ``context_rows`` rows
is its own context; larger ones use a seeded sample of them), recording each step's summary;
then every other row, in chunks of at most ``chunk_cells`` cells, against those summaries.
Memory is then bounded by the context and one chunk, whatever the table's length.

Steps (``B`` tables, ``N`` rows, ``D`` columns; widths ``d`` per cell, ``r`` per row):

1. :func:`column_stats` / :func:`cell_features` (no weights: *scaling is the model's job*):
   per column, from the context rows, the median, a robust scale (IQR / 1.349, else the
   standard deviation, else 1) and the sorted values; per cell five numbers: the robust
   z-score through ``asinh`` and clipped to [-4, 4], its normal score (mid-rank quantile
   through the inverse normal CDF), the share of the column's values equal to it (category
   codes and other discrete values: high; continuous values: near 0) and a missing flag
   (the other four are 0 where a value is missing).
2. cells (B, N, D, d): an MLP of the five numbers, then a column block: each cell sees the
   mean over the context rows of a learned function of its column's cells (a DeepSets summary
   of the column: what the column holds, how it is spread).
3. rows (B, N, r): each of ``pool_seeds`` seeds weighs the columns (a softmax over them of a
   score of each column's summary: which columns matter for this table) and sums the row's
   cells with those weights; the seeds' sums, concatenated, are mapped to width ``r``.
4. two rounds of: an induced set attention block across rows (inducing points summarise the
   context rows, every row reads them), then a neighbour block: a learned metric, each row's
   ``neighbours`` nearest context rows (never itself), the mean of their messages, and how far
   they are (its log mean distance against the context's median and against its neighbours'
   own: a density contrast, as LOF has).
5. heads: the embedding (B, N, e) and the outlier logit (B, N). The embedding is followed by
   the row's own values (clipped robust z-score and normal score of each column) weighted by a
   learned function of each column's summary, so that clustering happens in a learned
   space *and* a learned feature weighting of the values themselves (``raw_columns``); with
   ``standard_values`` a third value of each column is weighted too, its plain z-score
   (clipped to [-8, 8]): the scale k-means on standardised values works in, which the
   robust and rank scores bend (a rank score spreads tight groups of a column apart); with
   ``value_gate`` the weighted values of each table are scaled by one more learned weight,
   of the table's rows jointly (:class:`ValueGate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umeta.errors import UmetaError
from umeta.models.backbones import BACKBONES

__all__ = ["ColumnStats", "TableContext", "TableEncoder", "cell_features", "column_stats",
           "CELL_FEATURES"]

CELL_FEATURES = 5
_DISTANCE_CHUNK = 2048  # rows whose distances to the context rows are computed at once


# ----------------------------------------------------------------------------- preprocessing

@dataclass
class ColumnStats:
    """Per-column statistics of the context rows of B tables.

    Attributes
    ----------
    sorted : Tensor of shape (B, D, C)
        Each column's finite values, sorted, padded with +inf.
    count : Tensor of shape (B, D)
        Finite values per column.
    median, scale : Tensor of shape (B, D)
        The robust centre and scale (module docstring, step 1).
    mean, std : Tensor of shape (B, D)
        The plain ones (the standard deviation 1 where it is 0).
    """

    sorted: Tensor
    count: Tensor
    median: Tensor
    scale: Tensor
    mean: Tensor
    std: Tensor


def column_stats(x: Tensor) -> ColumnStats:
    """Statistics of the columns of ``x`` (B, C, D) (NaN = missing).

    Examples
    --------
    >>> import torch
    >>> s = column_stats(torch.tensor([[[1.0], [2.0], [float("nan")], [10.0]]]))
    >>> s.count.tolist(), s.median.tolist()
    ([[3]], [[2.0]])
    """
    v = x.transpose(1, 2)
    finite = torch.isfinite(v)
    count = finite.sum(-1)
    ordered = torch.where(finite, v, torch.full_like(v, math.inf)).sort(-1).values
    last = (count - 1).clamp(min=0).float()

    def quantile(p: float) -> Tensor:
        value = ordered.gather(-1, (last * p).round().long()[..., None])[..., 0]
        return torch.where(count > 0, value, torch.zeros_like(value))

    median = quantile(0.5)
    iqr = (quantile(0.75) - quantile(0.25)) / 1.349
    zeroed = torch.where(finite, v, torch.zeros_like(v))
    n = count.clamp(min=1)
    mean = zeroed.sum(-1) / n
    std = (torch.where(finite, v - mean[..., None], torch.zeros_like(v)).square().sum(-1) / n).sqrt()
    scale = torch.where(iqr > 0, iqr, torch.where(std > 0, std, torch.ones_like(std)))
    return ColumnStats(ordered.contiguous(), count, median, scale, mean,
                       torch.where(std > 0, std, torch.ones_like(std)))


def plain_scores(x: Tensor, stats: ColumnStats) -> Tensor:
    """Each cell's plain z-score against the context's column mean and standard deviation,
    clipped to [-8, 8], 0 where a value is missing: ``x`` (B, N, D) -> (B, N, D).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0], [3.0], [float("nan")]]])
    >>> plain_scores(x, column_stats(x))[0, :, 0].tolist()
    [-1.0, 1.0, 0.0]
    """
    plain = ((x - stats.mean[:, None]) / stats.std[:, None]).clamp(-8, 8)
    return plain.masked_fill(~torch.isfinite(x), 0.0)


def cell_features(x: Tensor, stats: ColumnStats) -> Tensor:
    """The five per-cell numbers (module docstring) of ``x`` (B, N, D) against ``stats``.

    Returns
    -------
    Tensor of shape (B, N, D, 5)

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0], [2.0], [float("nan")]]])
    >>> cell_features(x, column_stats(x))[0, 2, 0].tolist()  # a missing value
    [0.0, 0.0, 0.0, 0.0, 1.0]
    """
    missing = ~torch.isfinite(x)
    clean = torch.where(missing, stats.median[:, None], x)
    r = (clean - stats.median[:, None]) / stats.scale[:, None]
    values = clean.transpose(1, 2).contiguous()  # (B, D, N)
    left = torch.searchsorted(stats.sorted, values, right=False)
    right = torch.searchsorted(stats.sorted, values, right=True)
    n = stats.count[..., None].clamp(min=1)
    p = (left + right + 1).float() / (2 * (n + 1))
    normal = (math.sqrt(2) * torch.erfinv((2 * p - 1).clamp(-0.9999, 0.9999))).transpose(1, 2)
    share = ((right - left).float() / n).transpose(1, 2)
    numbers = torch.stack([torch.asinh(r), r.clamp(-4, 4) / 2, normal, share], -1)
    return torch.cat([numbers.masked_fill(missing[..., None], 0.0), missing[..., None].float()],
                     -1)


# ----------------------------------------------------------------------------- layers

class Attention(nn.Module):
    """Multi-head attention of queries (..., Q, dim) to a context (..., K, dim)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise UmetaError(f"the table encoder's widths must be multiples of heads={heads}; "
                             f"got {dim}")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        lead = query.shape[:-2]
        q = self.query(query).reshape(-1, query.shape[-2], self.heads,
                                      query.shape[-1] // self.heads).transpose(1, 2)
        k, v = self.key_value(context).reshape(-1, context.shape[-2], 2, self.heads,
                                               query.shape[-1] // self.heads).unbind(2)
        out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2))
        return self.out(out.transpose(1, 2).reshape(*lead, query.shape[-2], query.shape[-1]))


class FeedForward(nn.Sequential):
    """LayerNorm -> Linear(dim, 2 dim) -> GELU -> Linear(2 dim, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(),
                         nn.Linear(2 * dim, dim))


class InducedSetBlock(nn.Module):
    """Induced set attention across axis -2: ``points`` learned queries summarise the set,
    then every element reads the summary (cost linear in the set's size)."""

    def __init__(self, dim: int, heads: int, points: int) -> None:
        super().__init__()
        self.points = nn.Parameter(torch.randn(points, dim) * 0.02)
        self.norm_set = nn.LayerNorm(dim)
        self.summarise = Attention(dim, heads)
        self.norm_summary = nn.LayerNorm(dim)
        self.norm_element = nn.LayerNorm(dim)
        self.read = Attention(dim, heads)
        self.feed = FeedForward(dim)

    def summary(self, h: Tensor) -> Tensor:
        """(..., L, dim) -> (..., points, dim)."""
        q = self.points.expand(*h.shape[:-2], *self.points.shape)
        return q + self.summarise(q, self.norm_set(h))

    def apply(self, h: Tensor, summary: Tensor) -> Tensor:
        h = h + self.read(self.norm_element(h), self.norm_summary(summary))
        return h + self.feed(h)


class ColumnBlock(nn.Module):
    """Each cell (B, N, D, d) sees the mean over the context rows of a learned function of its
    column's cells (a DeepSets summary of the column)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.embed = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.mix = nn.Linear(dim, dim)
        self.cell = nn.Linear(dim, dim)
        self.update = nn.Linear(dim, dim)

    def summary(self, cells: Tensor) -> Tensor:
        return self.mix(self.embed(self.norm(cells)).mean(1, keepdim=True))  # (B, 1, D, d)

    def apply(self, cells: Tensor, summary: Tensor) -> Tensor:
        return cells + self.update(F.gelu(self.cell(self.norm(cells)) + summary))


class ValueGate(nn.Module):
    """A table's weight of its own values in the embedding, in (0, 2): a learned score of the
    mean over the context rows of their final row states (B, N, r) -> (B, 1, 1). It sees the
    rows jointly (after the blocks across rows), which a column's summary cannot: whether the
    table's clusters lie along its columns (blobs, for k-means) or in structure that only the
    learned part carries (rings, chains)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))

    def summary(self, h: Tensor) -> Tensor:
        return 2 * torch.sigmoid(self.score(h.mean(1, keepdim=True)))  # (B, 1, 1)


class SeedPooling(nn.Module):
    """A row's cells (B, N, D, d) -> (B, N, seeds * d): each learned seed weighs the columns by
    a softmax over them of a linear score of the column's summary, and sums a linear map of
    the row's cells with those weights (one matrix product per table)."""

    def __init__(self, dim: int, seeds: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, seeds)
        self.value = nn.Linear(dim, dim)

    def forward(self, cells: Tensor, columns: Tensor) -> Tensor:
        """``columns`` (B, 1, D, d): the column summaries."""
        weights = self.score(columns).softmax(-2)  # (B, 1, D, seeds)
        values = self.value(self.norm(cells)).transpose(-1, -2)  # (B, N, d, D)
        return (values @ weights).flatten(-2)  # (B, N, d * seeds)


class NeighbourBlock(nn.Module):
    """Each row (B, N, r) reads the mean message of its ``k`` nearest reference rows in a
    learned metric, and how far they are (module docstring, step 4). The reference rows are the
    context rows, or a sample of ``reference_rows`` of them (seeded by their number)."""

    def __init__(self, dim: int, k: int, metric_dim: int, reference_rows: int) -> None:
        super().__init__()
        self.k = k
        self.reference_rows = reference_rows
        self.norm = nn.LayerNorm(dim)
        self.metric = nn.Linear(dim, metric_dim)
        self.message = nn.Linear(dim, dim)
        self.update = nn.Sequential(nn.Linear(2 * dim + 2, 2 * dim), nn.GELU(),
                                    nn.Linear(2 * dim, dim))

    def _neighbours(self, u: Tensor, reference: Tensor, own: Tensor | None) -> Tensor:
        """Indices (B, N, k) of the nearest rows of ``reference`` (B, R, m) to ``u`` (B, N, m),
        never a row's own place ``own`` (N,) in the reference (-1: none)."""
        k = min(self.k, reference.shape[1] - int(own is not None))
        ref_sq = reference.square().sum(-1)[:, None]
        index = []
        for start in range(0, u.shape[1], _DISTANCE_CHUNK):
            part = u[:, start:start + _DISTANCE_CHUNK]
            dist = torch.baddbmm(part.square().sum(-1, keepdim=True) + ref_sq, part,
                                 reference.transpose(1, 2), alpha=-2)
            if own is not None:
                place = own[start:start + part.shape[1]]
                rows = torch.nonzero(place >= 0)[:, 0]
                dist[:, rows, place[rows]] = math.inf
            index.append(dist.topk(k, dim=-1, largest=False).indices)
        return torch.cat(index, 1)

    @staticmethod
    def _gather(values: Tensor, index: Tensor) -> Tensor:
        """``values`` (B, R, w) of the rows ``index`` (B, N, k) -> (B, N, k, w)."""
        b, n, k = index.shape
        flat = index.reshape(b, n * k, 1).expand(-1, -1, values.shape[-1])
        return values.gather(1, flat).view(b, n, k, -1)

    def _radius(self, u: Tensor, reference: Tensor, index: Tensor) -> Tensor:
        """Log mean distance (B, N) of each row to its neighbours (differentiable)."""
        gap = u[:, :, None] - self._gather(reference, index)
        return torch.log((gap.square().sum(-1) + 1e-8).sqrt().mean(-1) + 1e-6)

    def _update(self, h: Tensor, n: Tensor, index: Tensor, radius: Tensor, ctx: dict) -> Tensor:
        around = self._gather(ctx["radius"][..., None], index)[..., 0].mean(-1)
        messages = self._gather(ctx["message"], index).mean(2)
        contrast = torch.stack([radius - ctx["median"], radius - around], -1)
        return h + self.update(torch.cat([n, messages, contrast], -1))

    def context(self, h: Tensor) -> tuple[Tensor, dict]:
        """The context rows (B, C, r) -> updated rows and the block's summary."""
        n = self.norm(h)
        u = self.metric(n)
        c = h.shape[1]
        own = torch.arange(c, device=h.device)
        if c > self.reference_rows:
            gen = torch.Generator().manual_seed(c)
            chosen = torch.randperm(c, generator=gen)[:self.reference_rows].sort().values
            chosen = chosen.to(h.device)
            own = torch.full((c,), -1, dtype=torch.long, device=h.device)
            own[chosen] = torch.arange(len(chosen), device=h.device)
        else:
            chosen = own
        reference = u[:, chosen]
        with torch.no_grad():
            index = self._neighbours(u, reference, own)
        radius = self._radius(u, reference, index)
        ctx = {"metric": reference, "message": self.message(n)[:, chosen],
               "radius": radius[:, chosen], "median": radius.median(1, keepdim=True).values}
        return self._update(h, n, index, radius, ctx), ctx

    def rows(self, h: Tensor, ctx: dict) -> Tensor:
        """Other rows of the table (B, N, r) against the summary of :meth:`context`."""
        n = self.norm(h)
        u = self.metric(n)
        with torch.no_grad():
            index = self._neighbours(u, ctx["metric"], None)
        return self._update(h, n, index, self._radius(u, ctx["metric"], index), ctx)


# ----------------------------------------------------------------------------- the encoder

@dataclass
class TableContext:
    """What the rows of a table are encoded against: the context rows' column statistics and
    each cross-row step's summary (see :meth:`TableEncoder.context`).

    Attributes
    ----------
    stats : ColumnStats
    summaries : list
        One entry per cross-row step, in order.
    rows : Tensor of shape (C,), int64
        Which rows of the table were the context.
    n_columns : int
    """

    stats: ColumnStats
    summaries: list = field(default_factory=list)
    rows: Tensor | None = None
    n_columns: int = 0


class TableEncoder(nn.Module):
    """Tables (B, N, D) -> row embeddings (B, N, embed_dim) and outlier logits (B, N).

    Parameters
    ----------
    hidden : int
        ``d``, the width of a cell.
    row_width : int
        ``r``, the width of a row.
    embed_dim : int
        ``e``, the width of the learned row embedding (``out_dim``).
    raw_columns : int
        The embedding also holds each row's own values, weighted per column by the model
        (:meth:`_weighted_values`) for at most this many columns: ``e + 2 * min(D,
        raw_columns)`` numbers per row (``3 *`` with ``standard_values``). 0: the learned
        embedding alone.
    standard_values : bool
        Weigh each column's plain z-score as well (module docstring, step 5).
    value_gate : bool
        Scale the weighted values by a learned weight of the whole table (:class:`ValueGate`).
    heads : int
    pool_seeds, row_points : int
        Seeds of the pooling of a row's cells, inducing points across rows.
    neighbours : int
        ``k`` of the neighbour blocks.
    metric_dim : int
        Width of the neighbour blocks' learned metric.
    reference_rows : int
        Most context rows the neighbours are looked for among (a sample of the context when
        it is larger, seeded by its size).
    context_rows : int
        Most context rows of a table; more are a seeded sample (:meth:`encode`).
    chunk_cells : int
        Most cells encoded at once outside the context pass; the context itself holds at most
        ``max(256, chunk_cells // D)`` rows when that is fewer than ``context_rows``.

    Examples
    --------
    >>> import torch
    >>> encoder = TableEncoder(hidden=8, row_width=16, embed_dim=4, heads=2, row_points=4)
    >>> z, logit = encoder(torch.randn(2, 30, 5))
    >>> z.shape, logit.shape  # 4 learned numbers, then 2 weighted values of each column
    (torch.Size([2, 30, 14]), torch.Size([2, 30]))
    """

    def __init__(self, hidden: int = 16, row_width: int = 64, embed_dim: int = 32,
                 heads: int = 4, pool_seeds: int = 8, row_points: int = 32,
                 neighbours: int = 10, metric_dim: int = 16, reference_rows: int = 1024,
                 raw_columns: int = 64, context_rows: int = 4096,
                 chunk_cells: int = 1 << 19, standard_values: bool = False,
                 value_gate: bool = False) -> None:
        super().__init__()
        if min(hidden, row_width, embed_dim, heads, pool_seeds, row_points, neighbours,
               metric_dim) < 1 or raw_columns < 0 or min(context_rows, reference_rows) < 16 or chunk_cells < 1024:
            raise UmetaError("table encoder widths and counts must be positive, context_rows "
                             ">= 16 and chunk_cells >= 1024")
        for name, flag in (("standard_values", standard_values), ("value_gate", value_gate)):
            if not isinstance(flag, bool):
                raise UmetaError(f"model.options.{name} must be true or false; got {flag!r}")
        self.out_dim = embed_dim
        self.context_rows = int(context_rows)
        self.chunk_cells = int(chunk_cells)
        self.cell_embed = nn.Sequential(nn.Linear(CELL_FEATURES, hidden), nn.GELU(),
                                        nn.Linear(hidden, hidden))
        self.column = ColumnBlock(hidden)
        self.pool = SeedPooling(hidden, pool_seeds)
        self.to_row = nn.Sequential(nn.LayerNorm(pool_seeds * hidden),
                                    nn.Linear(pool_seeds * hidden, row_width))
        self.across_rows_1 = InducedSetBlock(row_width, heads, row_points)
        self.neighbours_1 = NeighbourBlock(row_width, neighbours, metric_dim, reference_rows)
        self.across_rows_2 = InducedSetBlock(row_width, heads, row_points)
        self.neighbours_2 = NeighbourBlock(row_width, neighbours, metric_dim, reference_rows)
        self.embed_head = nn.Sequential(nn.LayerNorm(row_width), nn.Linear(row_width, embed_dim))
        self.raw_columns = int(raw_columns)
        self.standard_values = bool(standard_values)
        self.column_weight = nn.Linear(hidden, 3 if standard_values else 2)
        self.value_gate = ValueGate(row_width) if value_gate else None
        self.score_head = nn.Sequential(nn.LayerNorm(row_width), nn.Linear(row_width, row_width),
                                        nn.GELU(), nn.Linear(row_width, 1))

    # -- the steps, each with its context form (summary recorded) and its rows form ---------

    def _run(self, x: Tensor, ctx: TableContext | None) -> tuple[Tensor, Tensor, TableContext]:
        """The steps on x (B, N, D): as the context (``ctx`` None: summaries recorded) or
        against ``ctx``."""
        recording = ctx is None
        if recording:
            ctx = TableContext(column_stats(x), n_columns=x.shape[-1])
        summaries = iter(ctx.summaries)

        def summary(block: nn.Module, h: Tensor):
            if recording:
                ctx.summaries.append(block.summary(h))
                return ctx.summaries[-1]
            return next(summaries)

        features = cell_features(x, ctx.stats)
        cells = self.cell_embed(features)
        columns = summary(self.column, cells)
        cells = self.column.apply(cells, columns)
        h = self.to_row(self.pool(cells, columns))
        for rows_block, neighbour_block in ((self.across_rows_1, self.neighbours_1),
                                            (self.across_rows_2, self.neighbours_2)):
            h = rows_block.apply(h, summary(rows_block, h))
            if recording:
                h, state = neighbour_block.context(h)
                ctx.summaries.append(state)
            else:
                h = neighbour_block.rows(h, next(summaries))
        z = self.embed_head(h)
        if self.raw_columns:
            values = self._weighted_values(x, features, columns, ctx.stats)
            if self.value_gate is not None:
                values = values * summary(self.value_gate, h)
            z = torch.cat([z, values], -1)
        return z, self.score_head(h)[..., 0], ctx

    def _weighted_values(self, x: Tensor, features: Tensor, columns: Tensor,
                         stats: ColumnStats) -> Tensor:
        """The rows' own values, weighted per column (B, N, v * min(D, raw_columns)): each
        column's clipped robust z-score and normal score (and with ``standard_values`` its
        clipped plain z-score: v = 3, else 2) times a learned weight of the column's summary
        (which columns matter, and how much); only the ``raw_columns`` columns of the largest
        weights when there are more."""
        weights = F.softplus(self.column_weight(columns))  # (B, 1, D, v)
        values = features[..., 1:3]
        if self.standard_values:
            values = torch.cat([values, plain_scores(x, stats)[..., None]], -1)
        values = values * weights  # (B, N, D, v)
        if values.shape[2] > self.raw_columns:
            keep = weights.sum(-1)[:, 0].topk(self.raw_columns, dim=-1).indices  # (B, m)
            values = values.gather(2, keep[:, None, :, None].expand(
                *values.shape[:2], -1, values.shape[-1]))
        return values.flatten(2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Every row of each table is context: x (B, N, D) -> (embeddings (B, N, e), outlier
        logits (B, N))."""
        if x.dim() != 3:
            raise UmetaError(f"the table encoder takes tables (B, N, D); got shape "
                             f"{tuple(x.shape)}")
        z, logit, _ = self._run(x, None)
        return z, logit

    # -- one table of any length ------------------------------------------------------------

    def context_size(self, n_rows: int, n_columns: int) -> int:
        """Context rows of a table of ``n_rows`` x ``n_columns``."""
        cap = max(256, self.chunk_cells // max(n_columns, 1))
        return min(n_rows, self.context_rows, cap)

    def context(self, x: Tensor, seed: int = 0) -> tuple[TableContext, Tensor, Tensor]:
        """Encode the context rows of one table ``x`` (N, D): all rows up to
        :meth:`context_size`, else a seeded sample of that many.

        Returns
        -------
        (TableContext, embeddings (C, e), outlier logits (C,)) of the context rows, in the
        order of ``ctx.rows``.
        """
        n, d = x.shape
        size = self.context_size(n, d)
        if size < n:
            gen = torch.Generator().manual_seed(int(seed))
            rows = torch.randperm(n, generator=gen)[:size].sort().values.to(x.device)
        else:
            rows = torch.arange(n, device=x.device)
        z, logit, ctx = self._run(x[rows][None], None)
        ctx.rows = rows
        return ctx, z[0], logit[0]

    def rows(self, x: Tensor, ctx: TableContext) -> tuple[Tensor, Tensor]:
        """Encode rows ``x`` (N, D) of a table against its context, ``chunk_cells`` cells at a
        time: (embeddings (N, e), outlier logits (N,))."""
        if x.shape[1] != ctx.n_columns:
            raise UmetaError(f"the rows have {x.shape[1]} columns but the table the model was "
                             f"fitted on has {ctx.n_columns}; give rows of that table")
        step = max(1, self.chunk_cells // max(x.shape[1], 1))
        zs, logits = [], []
        for start in range(0, len(x), step):
            z, logit, _ = self._run(x[start:start + step][None], ctx)
            zs.append(z[0])
            logits.append(logit[0])
        return torch.cat(zs), torch.cat(logits)

    def encode(self, x: Tensor, seed: int = 0) -> tuple[Tensor, Tensor, TableContext]:
        """One whole table ``x`` (N, D) -> (embeddings (N, e), outlier logits (N,), its
        context). The context rows' own encodings come from the context pass; the other rows'
        from :meth:`rows`."""
        ctx, z_ctx, logit_ctx = self.context(x, seed)
        if len(ctx.rows) == len(x):
            return z_ctx, logit_ctx, ctx
        others = torch.ones(len(x), dtype=torch.bool, device=x.device)
        others[ctx.rows] = False
        z_rest, logit_rest = self.rows(x[others], ctx)
        z = torch.empty(len(x), z_ctx.shape[1], dtype=z_ctx.dtype, device=x.device)
        logit = torch.empty(len(x), dtype=logit_ctx.dtype, device=x.device)
        z[ctx.rows], logit[ctx.rows] = z_ctx, logit_ctx
        z[others], logit[others] = z_rest, logit_rest
        return z, logit, ctx


BACKBONES.register("table_encoder")(TableEncoder)
