"""Seeded random generators: every sampler and randomised algorithm owns one."""

from __future__ import annotations

import hashlib

import torch

from umeta.params import Interval, check_params


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A `torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def seeded_subset(feats: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """``size`` rows of ``feats`` (N, ...), a sample drawn by a CPU generator seeded with
    ``seed`` and kept in their original order (the same rows on any device)."""
    order = torch.randperm(len(feats), generator=seeded_generator(seed, "cpu"))
    return feats[order[:size].sort().values.to(feats.device)]


def restore_generator(gen: torch.Generator, state: torch.Tensor) -> None:
    """Put a saved state back into ``gen``. A state saved by a generator of another kind of
    device (a run trained on the CPU, resumed on a GPU, or back) cannot be set: ``gen`` is then
    seeded from that state's bytes instead, so the resumed run is still reproducible, though its
    random stream is not the one the first device would have drawn."""
    if state.numel() == gen.get_state().numel():
        gen.set_state(state)
    else:
        digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
        gen.manual_seed(int.from_bytes(digest[:8], "little") % 2**63)


def as_generator(seed: int | torch.Generator, device: torch.device | str) -> torch.Generator:
    """``seed`` itself if it is a generator, else a new generator on ``device`` seeded with it."""
    return seed if isinstance(seed, torch.Generator) else seeded_generator(seed, device)


#: Seeds every tool accepts: NumPy's and scikit-learn's range (torch takes these too).
SEED_LIMITS = [Interval(int, 0, 2**32 - 1)]


def check_seed(seed: int, name: str = "seed") -> None:
    """Raise `ParamError` (naming ``name``) unless ``seed`` is an integer in [0, 2**32 - 1]."""
    check_params({name: seed}, {name: SEED_LIMITS})
