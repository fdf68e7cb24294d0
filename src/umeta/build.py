"""The factory: a config becomes a device, a backbone and learner, and a task source; a
checkpoint becomes a learner again.

Everything a learner or a task builder needs from the run is read from what their classes
declare (`umeta.learners.Learner`, `umeta.tasks.builders`), never from their names, and every
``options`` table is checked against its factory's signature (`umeta.registry`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from umeta.checkpoint import model_state, read_checkpoint, save_model
from umeta.config import TrainConfig
from umeta.data.imageset import ImageSet
from umeta.errors import UmetaError
from umeta.learners import LEARNERS, Learner
from umeta.models.backbones import BACKBONES
from umeta.tasks.builders import TASK_BUILDERS, TaskSource


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UmetaError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UmetaError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def is_label_free(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` meta-trains without labels (its task builder is handed images only)."""
    return bool(TASK_BUILDERS.get(cfg.tasks.builder).label_free)


def build_learner(cfg: TrainConfig, image_shape: tuple[int, ...]) -> Learner:
    """The learner of ``cfg`` over a fresh backbone for images of ``image_shape`` (C, H, W).

    The backbone keeps running normalisation statistics unless the learner's class says it
    needs batch statistics; ``cfg.tasks.n_way`` is passed to learners that take it.
    """
    learner_cls = LEARNERS.get(cfg.learner.name)
    backbone = BACKBONES.build(cfg.model.backbone, cfg.model.options,
                               image_shape=tuple(image_shape), hidden=cfg.model.hidden,
                               running_stats=not learner_cls.needs_batch_stats)
    learner = LEARNERS.build(cfg.learner.name, cfg.learner.options, backbone=backbone,
                             n_way=cfg.tasks.n_way)
    learner.image_shape = tuple(image_shape)
    learner.config = cfg
    return learner


#: What the run passes to every factory itself (not user options).
_LEARNER_ARGS = ("backbone", "n_way")
_BACKBONE_ARGS = ("image_shape", "hidden", "running_stats")
_BUILDER_ARGS = ("n_way", "k_shot", "q_query", "seed", "images", "data", "embeddings", "progress")


def check_options(cfg: TrainConfig) -> None:
    """Raise `UmetaError` for a learner, backbone or task-builder option of ``cfg`` that its
    factory does not take (before any data is loaded or anything is written)."""
    LEARNERS.check_options(cfg.learner.name, cfg.learner.options, _LEARNER_ARGS)
    BACKBONES.check_options(cfg.model.backbone, cfg.model.options, _BACKBONE_ARGS)
    options = dict(cfg.tasks.options)
    if "embeddings" in TASK_BUILDERS.options(cfg.tasks.builder):
        options.pop("encoder", None)  # turned into embeddings by build_task_source
    TASK_BUILDERS.check_options(cfg.tasks.builder, options, _BUILDER_ARGS)


def check_pairing(cfg: TrainConfig) -> None:
    """Raise `UmetaError` unless the task builder makes the batches the learner trains on."""
    source_cls = TASK_BUILDERS.get(cfg.tasks.builder)
    learner_cls = LEARNERS.get(cfg.learner.name)
    if source_cls.batch_type is not learner_cls.batch_type:
        raise UmetaError(
            f"tasks.builder {cfg.tasks.builder!r} and learner {cfg.learner.name!r} do not go "
            f"together: the builder makes {source_cls.batch_type.__name__} batches, the learner "
            f"trains on {learner_cls.batch_type.__name__} batches (psco tasks need the psco "
            f"learner and vice versa)")


def build_task_source(cfg: TrainConfig, data, device: torch.device, *,
                      progress: bool = False) -> TaskSource:
    """The task source of ``cfg`` over ``data`` (an `ImageSet` or, for tables, a
    `umeta.data.table_sets.TableCollection`), on ``device``.

    Label-free builders are handed ``data.unlabeled()`` (images only); the labelled sampler
    the image set. A builder that takes ``embeddings`` (CACTUs) gets those of the training images
    under the label-free checkpoint named by its ``encoder`` option. ``progress`` shows bars
    for slow set-up work (the embeddings, CACTUs' partitions) to builders that take it.
    """
    t = cfg.tasks
    check_pairing(cfg)
    source_cls = TASK_BUILDERS.get(t.builder)
    options = dict(t.options)
    provided = {"n_way": t.n_way, "k_shot": t.k_shot, "q_query": t.q_query, "seed": cfg.run.seed,
                "progress": progress}
    if "embeddings" in TASK_BUILDERS.options(t.builder):
        provided["embeddings"] = encoder_embeddings(options.pop("encoder", None), data, device,
                                                    progress=progress)
    if source_cls.label_free:
        provided["images"] = data.unlabeled()
    elif isinstance(data, ImageSet) and data.num_classes == 0:
        raise UmetaError(f"tasks.builder {t.builder!r} draws labelled episodes, but {data.name} "
                         f"has no labels (an image folder without class subfolders); use a "
                         f"label-free builder (--tasks umtra or psco), or put the images in one "
                         f"subfolder per class")
    else:
        provided["data"] = data
    return TASK_BUILDERS.build(t.builder, options, **provided)


def encoder_embeddings(encoder: str | None, data: ImageSet, device: torch.device, *,
                       progress: bool = False) -> torch.Tensor:
    """Embeddings (N, D) of the training images under a label-free checkpoint (CACTUs' input)."""
    if not encoder:
        raise UmetaError("the cactus builder clusters embeddings from an unsupervised encoder: "
                         "train one label-free first (e.g. --tasks psco --learner psco) and pass "
                         "--set tasks.options.encoder=RUN_DIR/checkpoints/last.safetensors")
    learner = load_learner(encoder, device)
    if not is_label_free(learner.config):
        raise UmetaError(f"encoder {encoder!r} was trained with labels; CACTUs must stay label-free: "
                         f"use a checkpoint of a label-free run")
    return learner.embed(data.float_images(), progress=progress)


def load_learner(path: str | Path, device: torch.device | str = "cpu") -> Learner:
    """Rebuild the meta-trained learner stored in a checkpoint, in eval mode on ``device``.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` checkpoint written by `umeta.train.train`.
    device : torch.device or str

    Returns
    -------
    Learner
        With ``learner.config`` the run's resolved config (TrainConfig) and
        ``learner.image_shape`` the (C, H, W) of the images it was trained on.

    Examples
    --------
    >>> import tempfile, torch
    >>> from umeta.config import TrainConfig
    >>> from umeta.train import train
    >>> cfg = TrainConfig()                       # ProtoNets on the built-in glyphs
    >>> cfg.model.hidden, cfg.optim.steps = 8, 2
    >>> cfg.run.run_dir = tempfile.mkdtemp() + "/run"
    >>> path = train(cfg, progress=False).run_dir / "checkpoints" / "last.safetensors"
    >>> learner = load_learner(path)
    >>> learner.image_shape, learner.config.learner.name
    ((1, 28, 28), 'protonet')
    >>> learner.embed(torch.rand(3, 1, 28, 28)).shape
    torch.Size([3, 8])
    """
    tensors, meta = read_checkpoint(path, device)
    config = TrainConfig.from_dict(meta["config"])
    image_shape = tuple(meta["progress"].get("image_shape", (1, config.data.image_size,
                                                             config.data.image_size)))
    learner = build_learner(config, image_shape).to(device)
    state = {k: v.float() if v.is_floating_point() else v for k, v in model_state(tensors).items()}
    exported = bool(meta.get("exported"))
    try:
        missing, unexpected = learner.load_state_dict(state, strict=not exported)
    except RuntimeError as err:
        raise UmetaError(f"checkpoint {str(path)!r} does not fit its own config "
                         f"({str(err).splitlines()[0][:120]})") from None
    if exported:
        left_out = [k for k in missing if not k.startswith(learner.training_only_state)]
        if left_out or unexpected:
            raise UmetaError(f"exported model {str(path)!r} does not fit its own config "
                             f"(missing {left_out[:3]}, unexpected {unexpected[:3]})")
        learner.restore_training_state()
    return learner.eval()


def export_learner(checkpoint: str | Path, out: str | Path, *, half: bool = True) -> dict:
    """Write the inference-only model of a training checkpoint: the weights the learner embeds
    and predicts with (not its ``training_only_state``, optimizer or generator states), in
    float16 with ``half``; `load_learner` reads it back (in float32).

    Returns
    -------
    dict : the export's metadata (config, progress, source checkpoint, dtype, sha256).
    """
    tensors, meta = read_checkpoint(checkpoint)
    learner = load_learner(checkpoint)
    keep = {k: v for k, v in learner.state_dict().items()
            if not k.startswith(learner.training_only_state)}
    if half:
        keep = {k: v.half() if v.is_floating_point() else v for k, v in keep.items()}
    progress = {k: meta["progress"][k] for k in ("step", "image_shape", "data", "train_s",
                                                 "training_tables", "exclude",
                                                 "excluded_tables") if k in meta["progress"]}
    extra = {"exported": True, "exported_from": Path(checkpoint).name,
             "dtype": "float16" if half else "float32"}
    return save_model(out, keep, meta["config"], progress, extra)


__all__ = ["build_learner", "build_task_source", "check_options", "check_pairing",
           "encoder_embeddings", "export_learner", "is_label_free", "load_learner",
           "resolve_device"]
