"""Benchmark result files: JSON in the format of BENCHMARKS.md, with provenance."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from umeta.files import atomic_write


def device_name(device: torch.device | str) -> str:
    """`torch.cuda.get_device_name()` for a CUDA device, else the CPU model and core count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def git_commit() -> str:
    """``$UMETA_COMMIT`` if set (a copy of the tree without its own history, e.g. on a lent
    GPU machine), else the checkout's commit (``-dirty`` with uncommitted changes), or
    ``unknown``."""
    if os.environ.get("UMETA_COMMIT"):
        return os.environ["UMETA_COMMIT"]
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line() -> str:
    """How this process was started, for the ``command`` field."""
    return " ".join([Path(sys.argv[0]).name] + sys.argv[1:])


def result_row(method: str, training: str, setting: str, metric: str, mean: float, ci95: float,
               n_tasks: int, **extra: Any) -> dict[str, Any]:
    """One entry of ``results``, as BENCHMARKS.md lays it out."""
    row = {"method": method, "training": training, "setting": setting, "metric": metric,
           "mean": round(float(mean), 4), "ci95": round(float(ci95), 4), "n_tasks": int(n_tasks)}
    row.update(extra)
    return row


def write_results(path: str | Path, benchmark: str, results: list[dict[str, Any]], *,
                  device: torch.device | str, wall_s: float, seed: int, **extra: Any) -> dict:
    """Write a results file atomically and return its content.

    Fields: benchmark, command, commit, device, wall_s, seed, any ``extra`` keys
    (dataset, split, ...), torch version, results.
    """
    doc: dict[str, Any] = {
        "benchmark": benchmark, "command": command_line(), "commit": git_commit(),
        "device": device_name(device), "wall_s": round(float(wall_s), 2), "seed": seed,
        "torch": torch.__version__,
    }
    doc.update(extra)
    doc["results"] = results
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(json.dumps(doc, indent=2) + "\n")
    return doc
