"""Built-in models that ship with umeta: package data, sha256-checked at load.

``learner="builtin"`` in the estimators and ``--checkpoint builtin`` at the CLI (the CLI's
default) take the model of the data's kind (``segmentation``: the dense model of
`umeta.segmenter.MetaSegmenter` and ``umeta segment``): :data:`SHIPPED` names each model's
weights file in ``umeta/weights/``, its sha256, the committed command that made it and the results files of the
run that made it and measured it. A file whose sha256 differs (a corrupt or partial install) is
refused with one line. Each model also says the embedding space the adaptation tools use
(`umeta.adapt.layers.in_space`), chosen on its benchmark files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from umeta.errors import UmetaError

BUILTIN = "builtin"
WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ShippedModel:
    """A model in the package.

    Attributes
    ----------
    file : str
        Its file in ``umeta/weights/`` (an exported, inference-only checkpoint).
    sha256 : str
        Of the file.
    command : str
        The committed command that trained and exported it.
    results : tuple of str
        The ``benchmarks/results/`` files of the run that made it and of its measurements.
    space : str
        The embedding space its adaptation tools use: ``embedding`` (the learner's own) or a
        space of `umeta.adapt.layers.in_space`.
    """

    file: str
    sha256: str
    command: str
    results: tuple[str, ...]
    space: str = "embedding"


#: The built-in model of each kind of data.
SHIPPED: dict[str, ShippedModel] = {
    "images": ShippedModel(
        file="builtin-images.safetensors",
        sha256="8013effeb32868ea626e5022a8a2a0a2db9c7f55f866c0b7b59e33fa7faa92b3",
        command="OUT=dir UMETA_SHARED_DATA=dir CAND=both_resnet12 STEPS=36000 TIME_LIMIT=450 "
                "B6_BUILTIN=0 bash benchmarks/gpu_style_candidate.sh",
        results=("xdomain_psco_both_resnet12_36000_metrics.jsonl",
                 "b6_xdomain_both_resnet12_36000.json", "b7_one_shot_both_resnet12_36000.json",
                 "b2_clustering_resnet12_36000_gpu.json", "b6_spaces_builtin.json",
                 "b9_robustness_resnet12.json"),
        space="embedding+block2+block3",
    ),
    "tables": ShippedModel(
        file="builtin-tables.safetensors",
        sha256="ff6641f751e615e9270b9a484731a542163bd5c86a8e1b8251ea0d25c082f63f",
        command="umeta train --config configs/tables_cpu.toml --set data.data_dir=../shared/data "
                "&& umeta export runs/tables_cpu/checkpoints/last.safetensors --out "
                "src/umeta/weights/builtin-tables.safetensors",
        results=("tables_cpu_metrics.jsonl", "tables_exclusion_b8.json",
                 "builtin_tables_training_data.md", "b8_tables_builtin.json",
                 "b8_tables_builtin_values.json"),
    ),
    "segmentation": ShippedModel(
        file="builtin-segmentation.safetensors",
        sha256="30bceeb33a32e3908df9be7315a1f3309fa838a80fc99bf7a1aea3cdf8762d57",
        command="umeta train --config configs/segment_mosaic.toml && umeta export "
                "runs/segment_mosaic/checkpoints/last.safetensors --out "
                "src/umeta/weights/builtin-segmentation.safetensors",
        results=("segment_mosaic_metrics.jsonl", "b10_segmentation.json",
                 "b10_segmentation_seed1.json"),
        space="embedding",
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped(kind: str = "images") -> ShippedModel:
    """The `ShippedModel` of ``kind``; an unknown kind lists the known ones."""
    if kind not in SHIPPED:
        raise UmetaError(f"there is no built-in model for {kind}; built-in models: "
                         f"{', '.join(SHIPPED)}")
    return SHIPPED[kind]


def builtin_checkpoint(kind: str = "images") -> Path:
    """The path of the built-in model of ``kind``, after checking its sha256.

    Raises
    ------
    UmetaError
        If the file is missing or its sha256 is not the shipped one.
    """
    model = shipped(kind)
    path = WEIGHTS / model.file
    if not path.is_file():
        raise UmetaError(f"the built-in {kind} model {str(path)!r} is missing; reinstall umeta")
    if sha256_of(path) != model.sha256:
        raise UmetaError(f"the built-in {kind} model {str(path)!r} does not have its shipped "
                         f"sha256 (a corrupt or partial install); reinstall umeta")
    return path


def load_builtin(kind: str = "images", device: torch.device | str = "cpu",
                 space: str | None = None):
    """The built-in model of ``kind`` on ``device``, in eval mode, embedding in ``space`` (a
    space of `umeta.adapt.layers.in_space`; None: the space it ships with)."""
    from umeta.adapt.layers import in_space
    from umeta.build import load_learner

    return in_space(load_learner(builtin_checkpoint(kind), device),
                    shipped(kind).space if space is None else space)


__all__ = ["BUILTIN", "SHIPPED", "ShippedModel", "builtin_checkpoint", "load_builtin",
           "shipped"]
