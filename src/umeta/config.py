"""Typed run configuration: dataclass sections that map one-to-one to constructor arguments.

A config file (TOML or JSON) has the sections ``data``, ``model``, ``learner``, ``tasks``,
``optim`` and ``run``; command-line flags and ``--set section.key=value`` override it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from umeta.errors import UmetaError


@dataclass
class DataConfig:
    """Which data to meta-train and evaluate on: images, or tables."""

    #: "omniglot", "glyphs" (built in, offline), the path of a folder of images, "tables" (real
    #: tables and synthetic priors) or "table-priors" (synthetic tables only, offline)
    dataset: str = "glyphs"
    split: str = "vinyals"  #: Omniglot split: "vinyals" or "background-evaluation"
    image_size: int = 28  #: side of the (square) images; an image folder is resized to it
    rotations: bool = False  #: add 90/180/270-degree rotations as classes (supervised only)
    data_dir: str | None = None  #: folder with the data; default $UMETA_DATA or ~/.cache/umeta
    download: bool = True  #: fetch Omniglot's official zips when no copy is found
    #: classes a supervised run trains on: "train", or "trainval" (train + val, as Snell et al.
    #: and Finn et al. train their final Omniglot models; there is then nothing to validate on)
    train_part: str = "train"
    #: tables (data.dataset "tables"): the collections of the shared data folder (data_dir, else
    #: $UMETA_SHARED_DATA) whose tables tasks are drawn from
    collections: list = field(default_factory=lambda: ["pmlb", "clustering-data-v1"])
    #: tables: keys (pmlb/iris) or files of tables that training must never see; they and their
    #: near-copies are left out (`umeta.data.table_sets`)
    exclude: list = field(default_factory=list)


@dataclass
class ModelConfig:
    """The backbone."""

    backbone: str = "conv4"
    hidden: int = 64
    options: dict[str, Any] = field(default_factory=dict)  #: more backbone arguments


@dataclass
class LearnerConfig:
    """The meta-learner and its options (passed to the learner's constructor)."""

    name: str = "protonet"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskConfig:
    """How meta-training tasks are built: labelled episodes or a label-free builder."""

    builder: str = "labelled"  #: "labelled", "umtra", "cactus" or "psco"
    n_way: int = 5
    k_shot: int = 1
    q_query: int = 15
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Adam with a learning-rate schedule."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"  #: "cosine", "step" (halve every `step_every`) or "constant"
    step_every: int = 2000
    steps: int = 1000
    meta_batch: int = 32
    grad_clip: float = 0.0  #: max gradient norm; 0 disables


@dataclass
class RunConfig:
    """Where and how the run happens."""

    run_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  #: "auto", "cpu" or "cuda"
    val_every: int = 500  #: validate every n steps on the val split (0: never)
    val_tasks: int = 200
    checkpoint_every: int = 500
    log_every: int = 50
    amp: str = "none"  #: "none" or "bf16" (CUDA autocast)
    channels_last: bool = False
    compile: bool = False  #: torch.compile the training step's model
    cuda_graph: bool = False  #: record the whole step as a CUDA graph and replay it (CUDA only)
    #: stop at the first step after this many seconds of this call's training (host clock),
    #: with a checkpoint to continue from with --resume (0: no limit)
    time_limit_s: float = 0.0


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: "TrainConfig | None" = None) -> "TrainConfig":
        """Build from nested dicts over ``base`` (default: the defaults); unknown sections or
        keys raise `UmetaError`."""
        sections = {f.name: f.type for f in fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise UmetaError(f"unknown config section {sorted(unknown)[0]!r}; valid sections: "
                             f"{', '.join(sections)}")
        cfg = copy_config(base) if base is not None else cls()
        for name, value in raw.items():
            if not isinstance(value, dict):
                raise UmetaError(f"config section {name!r} must be a table of keys, got {value!r}")
            section = getattr(cfg, name)
            for key, item in value.items():
                _set_field(section, name, key, item)
        return cfg

    def override(self, dotted: str, value: Any) -> None:
        """Set ``section.key`` (or ``section.options.key``) to ``value``, parsed from text if str."""
        parts = dotted.split(".")
        if len(parts) not in (2, 3) or parts[0] not in {f.name for f in fields(self)}:
            raise UmetaError(f"cannot set {dotted!r}: use section.key=value with a section of "
                             f"{', '.join(f.name for f in fields(self))}")
        section = getattr(self, parts[0])
        if isinstance(value, str):
            value = parse_value(value)
        if len(parts) == 3:
            if parts[1] != "options" or not hasattr(section, "options"):
                raise UmetaError(f"cannot set {dotted!r}: only model.options.X, learner.options.X "
                                 f"and tasks.options.X take a third part")
            section.options[parts[2]] = value
        else:
            _set_field(section, parts[0], parts[1], value)


def _set_field(section: Any, section_name: str, key: str, value: Any) -> None:
    valid = {f.name: f for f in fields(section)}
    if key not in valid:
        raise UmetaError(f"unknown key {section_name}.{key}; valid keys: {', '.join(valid)}")
    default = getattr(type(section)(), key)
    if default is not None and not isinstance(default, dict) and value is not None:
        kind = type(default)
        if kind is list and isinstance(value, str):  # a comma-separated list from the command line
            value = [item.strip() for item in value.split(",") if item.strip()]
        try:
            if kind is bool and not isinstance(value, bool):
                raise TypeError
            if kind is list and not isinstance(value, (list, tuple)):
                raise TypeError
            value = kind(value) if kind is not bool else value
        except (TypeError, ValueError):
            raise UmetaError(f"{section_name}.{key} must be a {kind.__name__}; got {value!r}") from None
    setattr(section, key, value)


def parse_value(text: str) -> Any:
    """Parse a command-line value: JSON if it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a TOML (``.toml``) or JSON config file; the keys it sets override ``base``
    (default: the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise UmetaError(f"config file {str(path)!r} not found; pass an existing .toml or .json file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                raise UmetaError("TOML configs need Python >= 3.11; use a .json config") from None
            raw = tomllib.loads(text)
        elif path.suffix == ".json":
            raw = json.loads(text)
        else:
            raise UmetaError(f"config file {str(path)!r} must end in .toml or .json")
    except (ValueError,) as err:
        if isinstance(err, UmetaError):
            raise
        raise UmetaError(f"config file {str(path)!r} does not parse: {err}") from None
    return TrainConfig.from_dict(raw, base)


def assemble_config(path: str | Path | None = None, values: dict[str, Any] | None = None,
                    sets: list[str] = (), base: TrainConfig | None = None) -> TrainConfig:
    """A config from ``base`` (default: the defaults), then the keys of the file at ``path``,
    then ``values`` ({dotted key: value}, None skipped), then ``sets``
    (``"section.key=value"`` strings), each overriding the one before."""
    cfg = load_config(path, base) if path else (copy_config(base) if base else TrainConfig())
    for key, value in (values or {}).items():
        if value is not None:
            cfg.override(key, value)
    for item in sets:
        if "=" not in item:
            raise UmetaError(f"--set {item!r}: write KEY=VALUE, e.g. --set optim.lr=0.001")
        key, value = item.split("=", 1)
        cfg.override(key.strip(), value.strip())
    return cfg


def copy_config(cfg: TrainConfig) -> TrainConfig:
    """A deep copy of ``cfg``."""
    return TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))


__all__ = ["DataConfig", "ModelConfig", "LearnerConfig", "TaskConfig", "OptimConfig", "RunConfig",
           "TrainConfig", "assemble_config", "copy_config", "load_config", "parse_value"]
