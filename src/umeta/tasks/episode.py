"""`Episode`: a batch of N-way few-shot tasks with a leading task axis."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Episode:
    """A meta-batch of ``T`` tasks, each with ``n_way`` classes renumbered ``0 .. n_way - 1``.

    Attributes
    ----------
    support_x : Tensor of shape (T, n_way * k_shot, C, H, W), float32
    support_y : Tensor of shape (T, n_way * k_shot), int64
    query_x : Tensor of shape (T, n_way * q_query, C, H, W), float32
    query_y : Tensor of shape (T, n_way * q_query), int64
    n_way : int
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    n_way: int

    @property
    def num_tasks(self) -> int:
        return int(self.support_x.shape[0])

    def to(self, device: torch.device | str) -> "Episode":
        return Episode(
            self.support_x.to(device), self.support_y.to(device), self.query_x.to(device),
            self.query_y.to(device), self.n_way,
        )

    def task(self, t: int) -> "Episode":
        """Task ``t`` alone, keeping a task axis of length 1."""
        s = slice(t, t + 1)
        return Episode(self.support_x[s], self.support_y[s], self.query_x[s], self.query_y[s],
                       self.n_way)

    def chunk(self, start: int, stop: int) -> "Episode":
        """Tasks ``start .. stop - 1``."""
        s = slice(start, stop)
        return Episode(self.support_x[s], self.support_y[s], self.query_x[s], self.query_y[s],
                       self.n_way)
