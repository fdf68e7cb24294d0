"""Training images from Omniglot and the procedural prior together (``data.dataset`` mixtures).

Names:

``"procedural"``
    The procedural prior alone (`umeta.data.procedural`): 1,000 classes x 20 images for a
    training part.
``"omniglot+procedural"``, ``"omniglot+procedural:F"``
    A part of Omniglot (any split and part it has, e.g. split ``background-evaluation``, part
    ``background``) plus generated images, so that a fraction ``F`` of the pool is generated
    (default 0.5: as many generated images as Omniglot ones). A label-free task builder draws
    images uniformly from the pool (`ImageSet.unlabeled`), so ``F`` is also the expected
    generated share of every batch.

Generated classes of different parts come from disjoint class ranges. The held-out parts
(``val``, ``test``, ``evaluation``) of a mixture are Omniglot's alone: the prior is for
training, and benchmarks of a mixture-trained model score the real data.
"""

from __future__ import annotations

import math

import torch

from umeta.config import DataConfig
from umeta.data.imageset import ImageSet
from umeta.data.procedural import make_procedural
from umeta.errors import UmetaError

PROCEDURAL = "procedural"
DEFAULT_FRACTION = 0.5
SAMPLES_PER_CLASS = 20
PROCEDURAL_ONLY_CLASSES = 1000
#: first procedural class of each part; a part draws the classes it needs upwards from there
PROCEDURAL_FIRST_CLASS = {"train": 0, "trainval": 0, "background": 0,
                          "val": 10_000_000, "test": 20_000_000, "evaluation": 20_000_000}
HELD_OUT_PARTS = ("val", "test", "evaluation")
_BASES = ("omniglot",)


def is_mixture(dataset: str) -> bool:
    """Whether ``dataset`` names the procedural prior or a mixture with it."""
    return dataset == PROCEDURAL or "+" in dataset


def parse_mixture(dataset: str) -> tuple[str | None, float]:
    """``"omniglot+procedural:0.3"`` -> ``("omniglot", 0.3)``; ``"procedural"`` -> ``(None, 1)``.

    Raises
    ------
    UmetaError
        If the name is not a mixture this module knows.
    """
    if dataset == PROCEDURAL:
        return None, 1.0
    base, _, rest = dataset.partition("+")
    prior, _, fraction = rest.partition(":")
    if base not in _BASES or prior != PROCEDURAL:
        raise UmetaError(f"unknown data mixture {dataset!r}; write omniglot+procedural or "
                         f"omniglot+procedural:F with F the generated fraction, e.g. 0.5")
    if not fraction:
        return base, DEFAULT_FRACTION
    try:
        value = float(fraction)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise UmetaError(f"the generated fraction in {dataset!r} must be a number strictly between "
                         f"0 and 1, e.g. omniglot+procedural:0.5")
    return base, value


def load_mixture(cfg: DataConfig, part: str, rotations: bool | None = None,
                 device: torch.device | str = "cpu") -> ImageSet:
    """The ``part`` of the mixture ``cfg.dataset`` as one `ImageSet` (generated classes last).

    Parameters
    ----------
    cfg : DataConfig
        ``dataset`` a mixture name; ``split``, ``image_size``, ``data_dir`` and ``download`` are
        used for Omniglot.
    part : str
        A part of ``cfg.split`` (``background`` for split ``background-evaluation``) or, for
        ``"procedural"``, one of :data:`PROCEDURAL_FIRST_CLASS`.
    rotations : bool, optional
        Overrides ``cfg.rotations``; rotated classes are not supported for mixtures.
    device : torch.device or str
        Where the generated images are drawn (the result is on the CPU).
    """
    base, fraction = parse_mixture(cfg.dataset)
    if cfg.rotations if rotations is None else rotations:
        raise UmetaError(f"data.rotations is for Omniglot alone; set data.rotations=false for "
                         f"{cfg.dataset!r}")
    if base is None:
        if part not in PROCEDURAL_FIRST_CLASS:
            raise UmetaError(f"unknown part {part!r} of the procedural prior; use one of "
                             f"{', '.join(PROCEDURAL_FIRST_CLASS)}")
        return _generated(PROCEDURAL_ONLY_CLASSES * SAMPLES_PER_CLASS, part, cfg.image_size,
                          device)
    from umeta.data.omniglot import load_omniglot

    real = load_omniglot(part, split=cfg.split, image_size=cfg.image_size,
                         data_dir=cfg.data_dir, download=cfg.download)
    if part in HELD_OUT_PARTS:
        return real
    count = round(len(real) * fraction / (1.0 - fraction))
    generated = _generated(count, part, cfg.image_size, device)
    return ImageSet.concat([real, generated], f"{real.name}+procedural:{fraction:g}")


def _generated(count: int, part: str, image_size: int, device: torch.device | str) -> ImageSet:
    """The first ``count`` images of the procedural classes of ``part`` (whole classes but the
    last), on the CPU."""
    classes = max(1, math.ceil(count / SAMPLES_PER_CLASS))
    data = make_procedural(classes, SAMPLES_PER_CLASS, image_size,
                           first_class=PROCEDURAL_FIRST_CLASS[part], name=f"procedural-{part}",
                           device=device)
    keep = slice(0, count)
    labels = data.labels[keep]
    used = int(labels.max()) + 1 if count else 0
    return ImageSet(data.images[keep].cpu(), labels.cpu(), data.class_names[:used], None,
                    data.name)
