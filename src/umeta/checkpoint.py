"""Checkpoint files: one safetensors file holding weights, optimizer and RNG state, with the
resolved config and progress as JSON metadata. Written atomically; loading never unpickles.

Each file stores the SHA-256 of its tensors (names, dtypes, shapes and bytes) in its metadata,
and loading recomputes it, so that a damaged file is refused instead of giving a model with
scrambled weights (files written before the checksum existed load unchecked). Files are created
like any other new file: mode 0666 less the process's umask (0644 under the usual umask 022).

File I/O only: `umeta.build.load_learner` turns a checkpoint back into a learner.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from umeta.errors import UmetaError
from umeta.files import atomic_path

FORMAT = "umeta-checkpoint-1"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors and JSON-able rest."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def tensors_sha256(tensors: dict[str, Tensor]) -> str:
    """SHA-256 (hex) of named tensors: each name, dtype, shape and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, config: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, rng: dict[str, Tensor] | None = None,
                    progress: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically (`umeta.files.atomic_path`).

    Parameters
    ----------
    model : the learner; its ``state_dict()`` tensors are stored under ``model.``.
    config : the resolved run config (JSON-able dict), needed to rebuild the learner.
    optimizer, scheduler : optional, for resuming.
    rng : named generator states (uint8 tensors), e.g. ``{"sampler": gen.get_state()}``.
    progress : JSON-able counters (step, best validation accuracy, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "config": config, "progress": progress or {}}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update({k: v.contiguous().cpu() for k, v in opt_tensors.items()})
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    for name, state in (rng or {}).items():
        tensors[f"rng.{name}"] = state.cpu()
    meta["sha256"] = tensors_sha256(tensors)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"umeta": json.dumps(meta, default=float)})


def save_model(path: str | Path, state: dict[str, Tensor], config: dict[str, Any],
               progress: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Write model weights alone (``state``, stored under ``model.``) with their config, as a
    checkpoint that `read_checkpoint` reads; ``extra`` adds metadata. Returns the metadata."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in state.items()}
    meta: dict[str, Any] = {"format": FORMAT, "config": config, "progress": progress, **extra}
    meta["sha256"] = tensors_sha256(tensors)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"umeta": json.dumps(meta, default=float)})
    return meta


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint; a missing or corrupt file raises `UmetaError`."""
    path = Path(path)
    if not path.is_file():
        raise UmetaError(f"checkpoint {str(path)!r} not found; pass the .safetensors file a "
                         f"training run wrote (RUN_DIR/checkpoints/best.safetensors or last.safetensors)")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw_meta = (handle.metadata() or {}).get("umeta")
        tensors = load_file(str(path))
        meta = json.loads(raw_meta) if raw_meta else None
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise UmetaError(f"checkpoint {str(path)!r} is corrupt or not a safetensors file "
                         f"({str(err).splitlines()[0][:120]}); use another checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UmetaError(f"{str(path)!r} is a safetensors file but not a umeta checkpoint")
    if "sha256" in meta and tensors_sha256(tensors) != meta["sha256"]:
        raise UmetaError(f"checkpoint {str(path)!r} is damaged: its tensors do not match the "
                         f"checksum stored in it; use another copy or checkpoint")
    return {k: v.to(device) for k, v in tensors.items()}, meta


def model_state(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The ``model.`` entries of a checkpoint, with the prefix removed."""
    return {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}


def optimizer_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The optimizer state_dict stored in a checkpoint."""
    return _unflatten_optimizer({k: v for k, v in tensors.items() if k.startswith("optim.")},
                                meta["optimizer"])


def rng_states(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Named generator states stored in a checkpoint."""
    return {k[4:]: v.cpu() for k, v in tensors.items() if k.startswith("rng.")}
