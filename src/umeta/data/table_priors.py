"""Synthetic tables with known clusters and known outliers: the prior a table model meta-trains on.

:func:`sample_prior_tables` draws a batch of tables of one shape (T tables of N rows and D
columns) in a few vectorised torch calls on the generator's device. Each table is made in a
latent space and then observed through random maps, so that the same clusters reach the
columns in many forms:

1. **Clusters** (``k`` of 2 .. 10 per table; with ``max_clusters`` above 10, three tables in
   ten have 11 .. ``max_clusters`` instead, their centres spread by ``(k / 10) ** (1 / L)`` so
   that each cluster keeps the same latent volume): weights from a log-normal spread (a few
   tables nearly balanced, others with clusters 20x smaller than the largest); centres in an
   ``L``-dimensional latent space (``L`` of 1 .. 8) at a random separation; each cluster a
   random rotation and per-axis scales, and a shape: a Gaussian blob, a shell (a ring in 2-D),
   or a curved arc (moons), with Gaussian or heavy-tailed (log-normal scale mixture) noise. In a
   quarter of the tables with such shapes, every cluster is a shell around one centre (nested
   rings).
2. **Outliers** (in a share of the tables, 1 .. 15 % of the rows, label -1): *global*
   (uniform in an inflated box around the latent data), *local* (a cluster's own distribution
   with its spread inflated 2.5 .. 6x), *clustered* (a small tight group at a new place) and
   *dependency* (an inlier whose informative columns are each replaced by another row's value:
   every value is ordinary, their combination is not).
3. **Columns**: *informative* ones are the latent points through a random linear map or a
   random one-hidden-layer network (tanh, ReLU, sine or softplus), standardised; *redundant*
   ones are random combinations of the informative ones plus a little noise; *noise* ones do
   not depend on the clusters (Gaussian, uniform, exponential or small counts). At least one
   column is informative.
   *Class-coded* columns (in a third of the tables, from 20 % of the columns to all of them) are
   category codes (2 .. 6) drawn from a distribution of each cluster (latent class tables such
   as surveys and votes).
4. **How columns are observed**: a random monotone warp per column (identity, exponential,
   signed power, sigmoid, asinh), some columns rounded to integers, some turned into
   categories (2 .. 8 codes, by random cut points; half of them in a random code order:
   nominal), a random scale (1e-2 .. 1e3) and offset per column, missing values (MCAR, up to
   20 % of the cells in a share of the tables), and the columns in random order.

5. **Plain tables** (share ``plain_share``, 0 by default): the low-dimensional shapes of
   clustering benchmarks as they are measured, where the empty space between clusters is what
   tells them apart: 2 or 3 latent axes (at most D), non-convex shapes in every table (shells,
   arcs, nested rings), every column a linear map of the latent points, with no warp,
   categories, rounding, class codes, noise columns or missing values (scale and offset stay).

Everything is drawn from one ``torch.Generator``: the same generator state gives the same
tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from umeta.errors import UmetaError

__all__ = ["PriorTables", "sample_prior_tables", "MAX_CLUSTERS", "MAX_LATENT", "OUTLIER_TYPES"]

MAX_CLUSTERS = 10  #: clusters of a table by default (``max_clusters``)
_MANY_CLUSTERS_SHARE = 0.3  # tables of more than MAX_CLUSTERS clusters, when allowed
MAX_LATENT = 8
OUTLIER_TYPES = ("global", "local", "clustered", "dependency")
_SHAPES = 3  # blob, shell, arc
_WARPS = 5  # identity, exp, signed power, sigmoid, asinh
_HIDDEN = 16  # width of the random networks that map latent points to columns
_MAX_CODES = 8
_MAX_CLASS_CODES = 6


@dataclass
class PriorTables:
    """A batch of synthetic tables of one shape.

    Attributes
    ----------
    x : Tensor of shape (T, N, D), float32
        The tables as a user would have them: any scale, NaN for missing values, category
        codes ``0 .. K-1`` in categorical columns.
    y : Tensor of shape (T, N), int64
        Cluster of each row, ``0 .. n_clusters - 1``; -1 for outliers.
    outlier : Tensor of shape (T, N), bool
    outlier_type : Tensor of shape (T, N), int64
        Index into :data:`OUTLIER_TYPES` for outliers, -1 for inliers.
    n_clusters : Tensor of shape (T,), int64
    categorical : Tensor of shape (T, D), bool
    informative : Tensor of shape (T, D), bool
        Columns that depend on the clusters (informative or redundant).
    """

    x: Tensor
    y: Tensor
    outlier: Tensor
    outlier_type: Tensor
    n_clusters: Tensor
    categorical: Tensor
    informative: Tensor


def _uniform(gen: torch.Generator, shape, low: float, high: float, device) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen, device=device)


def _log_uniform(gen: torch.Generator, shape, low: float, high: float, device) -> Tensor:
    return torch.exp(_uniform(gen, shape, math.log(low), math.log(high), device))


def _choice(gen: torch.Generator, probs: Tensor, n: int) -> Tensor:
    """``n`` draws per row of ``probs`` (B, C), with replacement -> (B, n)."""
    return torch.multinomial(probs, n, replacement=True, generator=gen)


def _standardise(x: Tensor, dim: int = 1) -> Tensor:
    return (x - x.mean(dim, keepdim=True)) / (x.std(dim, keepdim=True) + 1e-6)


def _latent_points(gen, t, n, k, latent, device, kmax=MAX_CLUSTERS, plain=None):
    """Cluster labels (T, N), latent points (T, N, L_MAX) with the unused axes zero, and
    what makes local and clustered outliers: centres (T, K, L), per-cluster maps (T, K, L, L),
    per-cluster scales (T, K); ``K = kmax``, the most clusters a table may have. ``plain``
    (T,) bool: tables whose clusters are non-convex shapes in every case (None: no plain
    tables were drawn, and none of their draws is made)."""
    slots = torch.arange(kmax, device=device)
    spread = _uniform(gen, (t, 1), 0.0, 1.5, device)
    weights = torch.exp(spread * torch.randn(t, kmax, generator=gen, device=device))
    weights = torch.where(slots < k[:, None], weights, torch.zeros_like(weights))
    weights = weights / weights.sum(1, keepdim=True)
    weights = 0.9 * weights + 0.1 * (slots < k[:, None]).float() / k[:, None]
    y = _choice(gen, weights, n)  # (T, N)

    axes = (torch.arange(MAX_LATENT, device=device) < latent[:, None]).float()  # (T, L)
    separation = _log_uniform(gen, (t, 1, 1), 0.8, 6.0, device)
    centers = torch.randn(t, kmax, MAX_LATENT, generator=gen, device=device)
    crowd = (k.float() / MAX_CLUSTERS).clamp(min=1) ** (1 / latent.float())  # (T,): 1 for k <= 10
    centers = centers * separation * crowd[:, None, None] * axes[:, None]
    rotation = torch.linalg.qr(torch.randn(t, kmax, MAX_LATENT, MAX_LATENT,
                                           generator=gen, device=device))[0]
    axis_scale = _log_uniform(gen, (t, kmax, 1, MAX_LATENT), 0.25, 1.5, device)
    maps = rotation * axis_scale  # columns scaled: x = maps @ e
    scale = _log_uniform(gen, (t, kmax), 0.5, 2.0, device)

    e = torch.randn(t, n, MAX_LATENT, generator=gen, device=device) * axes[:, None]
    heavy = (torch.rand(t, 1, 1, generator=gen, device=device) < 0.3).float()
    tail = _uniform(gen, (t, 1, 1), 0.3, 1.0, device)
    e = e * torch.exp(heavy * tail * torch.randn(t, n, 1, generator=gen, device=device))

    # shapes: 0 blob, 1 shell, 2 arc (not in one latent dimension, where they would split)
    nonconvex = (torch.rand(t, 1, generator=gen, device=device) < 0.5).float() \
        * (latent[:, None] > 1).float() * _uniform(gen, (t, 1), 0.3, 1.0, device)
    if plain is not None:
        nonconvex = torch.where(plain[:, None], _uniform(gen, (t, 1), 0.6, 1.0, device),
                                nonconvex)
    shape_probs = torch.stack([1 - nonconvex, nonconvex / 2, nonconvex / 2], -1)  # (T, 1, 3)
    shape = _choice(gen, shape_probs.expand(t, kmax, _SHAPES).reshape(-1, _SHAPES),
                    1).view(t, kmax)
    point_shape = shape.gather(1, y)  # (T, N)
    radius = _uniform(gen, (t, kmax), 1.5, 3.0, device).gather(1, y)[..., None]
    # nested tables: every cluster a shell around cluster 0's centre, radii 1, 2.6, 4.2, ...
    nested = (torch.rand(t, 1, generator=gen, device=device) < 0.25) & (nonconvex > 0)
    point_shape = torch.where(nested, torch.ones_like(point_shape), point_shape)
    radius = torch.where(nested[..., None], 1.0 + 1.6 * y[..., None].float(), radius)
    owner = torch.where(nested, torch.zeros_like(y), y)  # whose centre, map and scale
    direction = e / (e.norm(dim=-1, keepdim=True) + 1e-6)
    shell = radius * direction + 0.15 * e
    u = _uniform(gen, (t, n, 1), -1.0, 1.0, device)
    a = torch.randn(t, kmax, MAX_LATENT, generator=gen, device=device) * axes[:, None]
    b = torch.randn(t, kmax, MAX_LATENT, generator=gen, device=device) * axes[:, None]
    a = 2.0 * a / (a.norm(dim=-1, keepdim=True) + 1e-6)
    b = 1.5 * b / (b.norm(dim=-1, keepdim=True) + 1e-6)
    take = y[..., None].expand(t, n, MAX_LATENT)
    arc = a.gather(1, take) * u + b.gather(1, take) * (u * u - 1 / 3) + 0.15 * e
    take = owner[..., None].expand(t, n, MAX_LATENT)
    local = torch.where(point_shape[..., None] == 1, shell,
                        torch.where(point_shape[..., None] == 2, arc, e))
    cluster_maps = maps.gather(1, owner[..., None, None].expand(t, n, MAX_LATENT, MAX_LATENT))
    offset = (cluster_maps @ local[..., None])[..., 0] * scale.gather(1, owner)[..., None]
    z = (centers.gather(1, take) + offset) * axes[:, None]
    return y, z, centers, maps, scale, axes


def _outliers(gen, z, y, centers, maps, scale, axes, rate):
    """Outlier rows (T, N) bool, their types (T, N) (-1 for inliers) and the latent points
    with global, local and clustered outliers put in (dependency outliers are made later,
    in column space)."""
    t, n, _ = z.shape
    device = z.device
    outlier = torch.rand(t, n, generator=gen, device=device) < rate[:, None]
    mix = torch.rand(t, len(OUTLIER_TYPES), generator=gen, device=device) + 0.05
    mix = mix * (torch.rand(t, len(OUTLIER_TYPES), generator=gen, device=device) < 0.7)
    mix[:, 0] += 1e-3  # a table whose types all dropped out gets global outliers
    kind = _choice(gen, mix / mix.sum(1, keepdim=True), n)
    kind = torch.where(outlier, kind, torch.full_like(kind, -1))

    low, high = z.min(1, keepdim=True).values, z.max(1, keepdim=True).values
    middle, half = (low + high) / 2, (high - low) / 2 + 1.0
    inflate = _uniform(gen, (t, 1, 1), 1.3, 2.5, device)
    box = middle + inflate * half * _uniform(gen, z.shape, -1.0, 1.0, device)

    take = y[..., None].expand_as(z)
    e = torch.randn(z.shape, generator=gen, device=device)
    cluster_maps = maps.gather(1, y[..., None, None].expand(t, n, *maps.shape[2:]))
    spread = _uniform(gen, (t, 1, 1), 2.5, 6.0, device) * scale.gather(1, y)[..., None]
    loose = centers.gather(1, take) + spread * (cluster_maps @ e[..., None])[..., 0]

    place = middle[:, 0] + half[:, 0] * _uniform(gen, (t, z.shape[2]), -1.2, 1.2, device)
    tight = place[:, None] + 0.1 * scale.mean(1)[:, None, None] * e

    new = torch.stack([box, loose, tight, z], 0)  # the last: dependency (moved later)
    pick = kind.clamp(min=0)[None, ..., None].expand(1, t, n, z.shape[2])
    moved = new.gather(0, pick)[0]
    z = torch.where(outlier[..., None], moved, z) * axes[:, None]
    return outlier, kind, z


def _informative_columns(gen, z, d, plain):
    """Columns (T, N, D) that depend on the latent points: a random linear map or a random
    one-hidden-layer network (never for the ``plain`` (T,) tables), each column
    standardised."""
    t, n, latent = z.shape
    device = z.device
    w = torch.randn(t, latent, d, generator=gen, device=device) / math.sqrt(latent)
    linear = z @ w
    w1 = torch.randn(t, latent, _HIDDEN, generator=gen, device=device) * 1.2
    b1 = torch.randn(t, 1, _HIDDEN, generator=gen, device=device)
    w2 = torch.randn(t, _HIDDEN, d, generator=gen, device=device) / math.sqrt(_HIDDEN)
    h = _standardise(z, 1) @ w1 + b1
    acts = torch.stack([torch.tanh(h), torch.relu(h), torch.sin(h),
                        torch.nn.functional.softplus(h)], 0)  # (4, T, N, H)
    which = torch.randint(0, 4, (t,), generator=gen, device=device)
    hidden = acts.gather(0, which[None, :, None, None].expand(1, t, n, _HIDDEN))[0]
    network = hidden @ w2 + 0.3 * linear
    nonlinear = torch.rand(t, 1, 1, generator=gen, device=device) < 0.5
    nonlinear = nonlinear & ~plain[:, None, None]
    return _standardise(torch.where(nonlinear, network, linear), 1)


def _warp(gen, x: Tensor) -> Tensor:
    """A random monotone map per column of x (T, N, D) (standardised columns)."""
    t, _, d = x.shape
    device = x.device
    strength = _uniform(gen, (t, 1, d), 0.3, 1.5, device)
    power = _uniform(gen, (t, 1, d), 0.4, 2.5, device)
    variants = torch.stack([
        x,
        torch.exp(strength * x.clamp(max=8.0)),
        torch.sign(x) * x.abs().pow(power),
        torch.sigmoid(2 * strength * x),
        torch.asinh(3 * strength * x),
    ], 0)
    probs = torch.tensor([0.4, 0.15, 0.15, 0.15, 0.15], device=device)
    which = _choice(gen, probs.expand(t * d, _WARPS), 1).view(t, 1, d)
    return variants.gather(0, which[None].expand(1, *x.shape))[0]


def _categories(gen, x: Tensor) -> Tensor:
    """Each column of x (T, N, D) cut into 2 .. 8 codes at random quantiles, in a random code
    order for half of the columns (nominal)."""
    t, n, d = x.shape
    device = x.device
    codes = torch.randint(2, _MAX_CODES + 1, (t, 1, d), generator=gen, device=device)
    cuts = torch.sort(torch.rand(t, _MAX_CODES - 1, d, generator=gen, device=device), 1).values
    ranks = x.argsort(1).argsort(1).float() / max(n - 1, 1)  # (T, N, D) in [0, 1]
    used = torch.arange(_MAX_CODES - 1, device=device)[None, :, None] < codes - 1
    level = ((ranks[:, :, None, :] > cuts[:, None]) & used[:, None]).sum(2)  # (T, N, D)
    order = torch.rand(t, d, _MAX_CODES, generator=gen, device=device)
    order = torch.where(torch.arange(_MAX_CODES, device=device) < codes[:, 0, :, None], order,
                        torch.full_like(order, 2.0)).argsort(-1).argsort(-1)
    nominal = torch.rand(t, 1, d, generator=gen, device=device) < 0.5
    permuted = order.permute(0, 2, 1).gather(1, level)  # (T, N, D): code -> its place
    return torch.where(nominal, permuted, level).float()


def _class_codes(gen, y: Tensor, kind: Tensor, k: Tensor, d: int,
                 kmax: int = MAX_CLUSTERS) -> Tensor:
    """Category codes (T, N, D) drawn from a distribution over 2 .. 6 codes per cluster and
    column, at a random sharpness (latent class tables: surveys, votes). Global and clustered
    outliers draw every code at random; dependency outliers draw each column's code as a random
    cluster would."""
    t, n = y.shape
    device = y.device
    sizes = torch.randint(2, _MAX_CLASS_CODES + 1, (t, 1, d, 1), generator=gen, device=device)
    sharpness = _uniform(gen, (t, 1, 1, 1), 0.5, 3.0, device)
    logits = torch.randn(t, kmax, d, _MAX_CLASS_CODES, generator=gen, device=device)
    used = torch.arange(_MAX_CLASS_CODES, device=device) < sizes
    probs = (logits * sharpness).masked_fill(~used, -math.inf).softmax(-1)
    other = (torch.rand(t, n, d, generator=gen, device=device) * k[:, None, None]).long()
    mixed = kind == OUTLIER_TYPES.index("dependency")
    cluster = torch.where(mixed[..., None], other, y[..., None].expand(t, n, d))
    per_row = probs.gather(1, cluster[..., None].expand(t, n, d, _MAX_CLASS_CODES))
    scattered = (kind == OUTLIER_TYPES.index("global")) | (kind == OUTLIER_TYPES.index("clustered"))
    per_row = torch.where(scattered[..., None, None], used.float() / sizes, per_row)
    u = torch.rand(t, n, d, 1, generator=gen, device=device)
    return torch.minimum((per_row.cumsum(-1) < u).sum(-1), sizes[..., 0] - 1).float()


def sample_prior_tables(num_tasks: int, n_rows: int, n_cols: int, generator: torch.Generator,
                        *, outlier_share: float = 0.5, max_outlier_rate: float = 0.15,
                        max_clusters: int = MAX_CLUSTERS, plain_share: float = 0.0
                        ) -> PriorTables:
    """Draw ``num_tasks`` synthetic tables of ``n_rows`` x ``n_cols`` (module docstring).

    Parameters
    ----------
    num_tasks, n_rows, n_cols : int
        T, N (at least 4) and D (at least 1).
    generator : torch.Generator
        Every draw comes from it, on its device.
    outlier_share : float
        Share of the tables that get outliers (the others have none).
    max_outlier_rate : float
        The outlier rate of a table with outliers is uniform in [0.01, max_outlier_rate].
    max_clusters : int
        Most clusters of a table, 10 .. 64 (above 10: module docstring, step 1).
    plain_share : float
        Share of plain tables (module docstring, step 5). At 0 no draw is made for them, so
        the tables are those of a generator without this option.

    Returns
    -------
    PriorTables

    Examples
    --------
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> tables = sample_prior_tables(3, 200, 6, gen)
    >>> tables.x.shape, tables.y.shape, int(tables.n_clusters.min()) >= 2
    (torch.Size([3, 200, 6]), torch.Size([3, 200]), True)
    >>> bool(((tables.y == -1) == tables.outlier).all())
    True
    """
    if num_tasks < 1 or n_rows < 4 or n_cols < 1:
        raise UmetaError(f"synthetic tables need num_tasks >= 1, n_rows >= 4 and n_cols >= 1; "
                         f"got {num_tasks}, {n_rows}, {n_cols}")
    if not MAX_CLUSTERS <= max_clusters <= 64:
        raise UmetaError(f"max_clusters must be in [{MAX_CLUSTERS}, 64]; got {max_clusters}")
    if not 0.0 <= outlier_share <= 1.0 or not 0.01 <= max_outlier_rate <= 0.5:
        raise UmetaError(f"outlier_share must be in [0, 1] and max_outlier_rate in [0.01, 0.5]; "
                         f"got {outlier_share}, {max_outlier_rate}")
    if not 0.0 <= plain_share <= 1.0:
        raise UmetaError(f"plain_share must be in [0, 1]; got {plain_share}")
    gen, t, n, d = generator, num_tasks, n_rows, n_cols
    device = gen.device
    k = torch.randint(2, MAX_CLUSTERS + 1, (t,), generator=gen, device=device)
    if max_clusters > MAX_CLUSTERS:
        many = torch.rand(t, generator=gen, device=device) < _MANY_CLUSTERS_SHARE
        more = torch.randint(MAX_CLUSTERS + 1, max_clusters + 1, (t,), generator=gen,
                             device=device)
        k = torch.where(many, more, k)
    latent = torch.minimum(torch.randint(1, MAX_LATENT + 1, (t,), generator=gen, device=device),
                           torch.full((t,), max(d, 1), device=device))
    plain = torch.zeros(t, dtype=torch.bool, device=device)
    if plain_share > 0:
        plain = torch.rand(t, generator=gen, device=device) < plain_share
        shape_axes = torch.randint(2, 4, (t,), generator=gen, device=device)
        latent = torch.where(plain, torch.clamp(shape_axes, max=max(d, 1)), latent)
    y, z, centers, maps, scale, axes = _latent_points(gen, t, n, k, latent, device, max_clusters,
                                                      plain if plain_share > 0 else None)
    with_outliers = torch.rand(t, generator=gen, device=device) < outlier_share
    rate = with_outliers * _uniform(gen, (t,), 0.01, max_outlier_rate, device)
    outlier, kind, z = _outliers(gen, z, y, centers, maps, scale, axes, rate)

    # column roles: class-coded, informative, redundant, noise; column 0 depends on clusters
    share_coded = (torch.rand(t, 1, generator=gen, device=device) < 0.35) \
        * _uniform(gen, (t, 1), 0.2, 1.0, device)
    coded = torch.rand(t, d, generator=gen, device=device) < share_coded
    share_informative = _uniform(gen, (t, 1), 0.3, 1.0, device)
    share_redundant = _uniform(gen, (t, 1), 0.0, 0.3, device)
    role_draw = torch.rand(t, d, generator=gen, device=device)
    informative = ~coded & (role_draw < share_informative)
    informative[:, 0] |= ~coded[:, 0]
    redundant = ~coded & ~informative & (role_draw < share_informative + share_redundant)
    coded, informative = coded & ~plain[:, None], informative | plain[:, None]
    redundant = redundant & ~plain[:, None]

    columns = _informative_columns(gen, z, d, plain)
    # dependency outliers: each informative column takes the value of another random row
    donors = torch.randint(0, n, (t, n, d), generator=gen, device=device)
    swapped = columns.gather(1, donors)
    dependency = (kind == OUTLIER_TYPES.index("dependency"))[..., None] & informative[:, None]
    columns = torch.where(dependency, swapped, columns)
    mix = torch.randn(t, d, d, generator=gen, device=device) * informative[..., None]
    combos = _standardise(columns @ (mix / (mix.norm(dim=1, keepdim=True) + 1e-6)), 1)
    combos = combos + 0.2 * torch.randn(combos.shape, generator=gen, device=device)
    noise_kind = torch.randint(0, 4, (t, 1, d), generator=gen, device=device)
    gauss = torch.randn(t, n, d, generator=gen, device=device)
    uniform = _uniform(gen, (t, n, d), -1.7, 1.7, device)
    expo = -torch.log(torch.rand(t, n, d, generator=gen, device=device).clamp(min=1e-12))
    counts = torch.floor(expo * _uniform(gen, (t, 1, d), 0.5, 3.0, device))
    noise = torch.stack([gauss, uniform, expo, counts], 0).gather(
        0, noise_kind[None].expand(1, t, n, d))[0]
    x = torch.where(informative[:, None], columns,
                    torch.where(redundant[:, None], combos, _standardise(noise, 1)))

    x = torch.where(plain[:, None, None], x, _warp(gen, x))
    share_categorical = (torch.rand(t, 1, generator=gen, device=device) < 0.4) \
        * _uniform(gen, (t, 1), 0.0, 0.6, device)
    categorical = (torch.rand(t, d, generator=gen, device=device) < share_categorical) \
        & ~plain[:, None]
    x = torch.where(categorical[:, None], _categories(gen, x), x)
    rounded = ~categorical & ~plain[:, None] \
        & (torch.rand(t, d, generator=gen, device=device) < 0.15)
    steps = _uniform(gen, (t, 1, d), 1.0, 6.0, device)
    x = torch.where(rounded[:, None], torch.round(_standardise(x, 1) * steps), x)
    numeric = ~categorical[:, None]
    x = torch.where(numeric, x * _log_uniform(gen, (t, 1, d), 1e-2, 1e3, device)
                    + torch.randn(t, 1, d, generator=gen, device=device)
                    * _log_uniform(gen, (t, 1, d), 1e-2, 1e3, device), x)

    x = torch.where(coded[:, None], _class_codes(gen, y, kind, k, d, max_clusters), x)
    categorical = categorical | coded

    missing_rate = (torch.rand(t, 1, 1, generator=gen, device=device) < 0.3) \
        * _uniform(gen, (t, 1, 1), 0.0, 0.2, device)
    missing = (torch.rand(t, n, d, generator=gen, device=device) < missing_rate) \
        & ~plain[:, None, None]
    missing[:, 0] = False  # no column is missing everywhere
    x = torch.where(missing, torch.full_like(x, float("nan")), x)

    order = torch.rand(t, d, generator=gen, device=device).argsort(1)
    x = x.gather(2, order[:, None].expand(t, n, d))
    y = torch.where(outlier, torch.full_like(y, -1), y)
    return PriorTables(x.float(), y, outlier, kind, k, categorical.gather(1, order),
                       (informative | redundant | coded).gather(1, order))
