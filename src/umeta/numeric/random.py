"""Seeded random generators: every sampler and randomised algorithm owns one."""

from __future__ import annotations

import torch


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A `torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def as_generator(seed: int | torch.Generator, device: torch.device | str) -> torch.Generator:
    """``seed`` itself if it is a generator, else a new generator on ``device`` seeded with it."""
    return seed if isinstance(seed, torch.Generator) else seeded_generator(seed, device)
