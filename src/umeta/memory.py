"""Memory a computation needs, measured on a small case, and the memory a device has free.

`umeta.train` uses them to refuse a meta-batch that cannot fit before the first step runs (on a
CPU the operating system would otherwise kill the process without a word).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakMemory(TorchDispatchMode):
    """Inside ``with PeakMemory() as m:``, ``m.peak`` is the most bytes held at once by the
    tensors that the operations run inside it created (inputs made before it are not counted).

    Works under ``torch.func`` transforms (MAML's vmapped inner loop) and autograd alike; a
    storage is counted once however many views share it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self._seen:
                continue
            self._seen.add(key)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._free, key, nbytes)
        return out


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of the tensors ``fn()`` creates while it runs (see :class:`PeakMemory`)."""
    with PeakMemory() as meter:
        fn()
    return meter.peak


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup (v2) memory limit, or None without one."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (Linux), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device``: free GPU memory on CUDA; on the CPU the
    smaller of the system's available memory and what the cgroup limit leaves (Linux). None
    where it cannot be known (e.g. the CPU on macOS)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    known = [b for b in (_meminfo_available(), _cgroup_free()) if b is not None]
    return min(known) if known else None


def format_bytes(n: float) -> str:
    """``1.5e9`` -> ``"1.5 GB"``."""
    units = ["B", "kB", "MB", "GB", "TB"]
    step = 0
    while abs(n) >= 1000 and step < len(units) - 1:
        n, step = n / 1000, step + 1
    return f"{n:.0f} B" if step == 0 else f"{n:.1f} {units[step]}"


__all__ = ["PeakMemory", "available_bytes", "format_bytes", "peak_bytes"]
