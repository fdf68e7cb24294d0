"""A small label-free model, meta-trained on the built-in glyphs on first use and cached.

For users with no checkpoint of their own: ``learner="builtin"`` in the estimators and
``--checkpoint builtin`` at the CLI give meta-learned features for 28x28 grayscale images
(light ink on a dark background, as Omniglot) after a one-off training of two to three minutes
on a 2-core CPU.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from umeta.files import file_lock

BUILTIN = "builtin"
#: Meta-training steps of the built-in model (the main job's label-free recipe, which runs 800).
BUILTIN_STEPS = 1000


def builtin_checkpoint(cache_dir: str | os.PathLike | None = None, progress: bool = False) -> Path:
    """The built-in model's checkpoint, training it first if it is not cached yet.

    The run is trained in a temporary folder and moved into place in one rename, so an
    interrupted first use leaves no half-made model behind. The cache is locked while the
    model is made: a second process asking for it at the same time waits, then uses it, and
    leftovers of a first use that was killed are removed.

    Parameters
    ----------
    cache_dir : folder for the model; default ``$UMETA_CACHE``, else ``~/.cache/umeta``.
    progress : show the training progress bar.
    """
    from umeta.recipes import main_job_config
    from umeta.train import train

    root = Path(cache_dir or os.environ.get("UMETA_CACHE") or Path.home() / ".cache" / "umeta")
    final = root / "models" / f"builtin-glyphs-{BUILTIN_STEPS}"
    checkpoint = final / "checkpoints" / "last.safetensors"
    if checkpoint.is_file():
        return checkpoint
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.with_name(f".{final.name}.lock"), wait=True):
        if checkpoint.is_file():  # made by the process we waited for
            return checkpoint
        for stale in final.parent.glob(f".{final.name}.tmp*"):  # a killed first use's
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        try:
            train(main_job_config("glyphs", BUILTIN_STEPS, 0, "auto", tmp, None),
                  progress=progress)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return checkpoint
