"""Batched distances: squared Euclidean to centres, and k-th nearest-neighbour distances."""

from __future__ import annotations

import torch
from torch import Tensor

from umeta.params import ParamError

#: Queries per block of :func:`kth_neighbour_distance` (bounds its (block, R) distance matrix).
QUERY_CHUNK = 4096


def squared_distances(x: Tensor, centers: Tensor) -> Tensor:
    """Squared Euclidean distances, (T, M, D) x (T, P, D) -> (T, M, P), clamped at 0."""
    return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ centers.transpose(1, 2)
            + centers.pow(2).sum(-1)[:, None, :]).clamp_min(0.0)


def kth_neighbour_distance(queries: Tensor, reference: Tensor, k: int, *,
                           exclude_self: bool = False) -> Tensor:
    """Euclidean distance from each query to its ``k``-th nearest reference point.

    Parameters
    ----------
    queries : Tensor of shape (N, D)
    reference : Tensor of shape (R, D)
    k : int
        ``1 <= k <= R`` (``k < R`` with ``exclude_self``).
    exclude_self : bool
        ``queries`` are ``reference`` itself: skip each point's own row (by index, so exact
        duplicates still count as neighbours).

    Returns
    -------
    Tensor of shape (N,)
    """
    available = len(reference) - int(exclude_self)
    if not 1 <= k <= available:
        raise ParamError("n_neighbors", k, f"{{setting}} needs {k} reference samples besides the "
                                           f"query; there are {available}: use {{param}} <= "
                                           f"{max(available, 1)} or more data")
    out = []
    for start in range(0, len(queries), QUERY_CHUNK):
        d = torch.cdist(queries[start:start + QUERY_CHUNK], reference)
        if exclude_self:
            rows = torch.arange(len(d), device=d.device)
            d[rows, rows + start] = torch.inf
        out.append(d.topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(out)
