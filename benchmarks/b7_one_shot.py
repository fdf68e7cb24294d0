"""B7: Lake et al.'s 20 within-alphabet 20-way one-shot classification runs (Science 2015).

Data: ``../shared/data/omniglot/one_shot_runs.zip`` (``runNN/training/classXX.png``: one image of
each of 20 characters of one evaluation alphabet; ``runNN/test/itemXX.png``: 20 other drawings;
``runNN/class_labels.txt``: the training image of each test image). The 105x105 PNGs (dark ink on
white) are read as Omniglot is for training (ink = a pixel below 128) and area-shrunk to the
model's size (`umeta.data.omniglot.resize_ink`). Each test image is classified among the 20
training images of its run, by the learner's own few-shot rule with one shot per class
(``adapt`` / ``predict``: ProtoNets' nearest prototype, PsCo's cosine of predictor to projector
features) and, as a second row, by the nearest training image in the learner's embedding
(cosine similarity of :meth:`Learner.embed`, or with ``--space blockN`` of the backbone's N-th
block, `umeta.adapt.layers.LayerEmbedding`). Metric ``error_pct``: percent of test images
misclassified, mean over the 20 runs (with the per-run values and a t-interval over runs).

The protocol asks for models meta-trained on the 30 background alphabets only. A checkpoint is
refused unless its config says Omniglot with split ``background-evaluation`` and its progress
record (when it has one) names the background part; ``--allow-invalid`` scores another model
anyway, and marks its rows ``valid_b7: false`` with the reason.

    python benchmarks/b7_one_shot.py --checkpoint runs/bg/checkpoints/last.safetensors \
        --out benchmarks/results/b7_one_shot.json
"""

from __future__ import annotations

import argparse
import io
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from entry import run_main

from umeta.adapt.layers import in_space
from umeta.build import is_label_free, load_learner, resolve_device
from umeta.checkpoint import read_checkpoint
from umeta.data.omniglot import resize_ink
from umeta.errors import UmetaError
from umeta.learners.base import Learner
from umeta.learners.psco import EMBED_HEADS, PsCo
from umeta.metrics import mean_ci95
from umeta.results import result_row, write_results

RULES = ("adapt-predict", "nearest-embedding")
BACKGROUND = "omniglot/background-evaluation/background"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Published error rates (percent) on these 20 runs.
ANCHORS = (
    ("people", "human", 4.5, "Lake, Salakhutdinov and Tenenbaum, Science 350:1332 (2015)"),
    ("bayesian-program-learning", "supervised", 3.3,
     "Lake, Salakhutdinov and Tenenbaum, Science 350:1332 (2015)"),
    ("lake-convnet", "supervised", 13.5,
     "Lake, Salakhutdinov and Tenenbaum, Science 350:1332 (2015)"),
    ("siamese-koch2015", "supervised", 8.0,
     "Koch, Zemel and Salakhutdinov, ICML Deep Learning Workshop (2015)"),
)


def default_zip() -> Path:
    shared = os.environ.get("UMETA_SHARED_DATA")
    base = Path(shared) if shared else REPO_ROOT.parent / "shared" / "data"
    return base / "omniglot" / "one_shot_runs.zip"


@dataclass
class OneShotRun:
    """One 20-way one-shot run.

    Attributes
    ----------
    name : str
        ``runNN``.
    training : Tensor of shape (K, 1, S, S), uint8, ink = 255
        One image per class, classes in file order (``class01`` ...).
    test : Tensor of shape (Q, 1, S, S), uint8
    test_labels : Tensor of shape (Q,), int64
        The class (row of ``training``) of each test image.
    """

    name: str
    training: Tensor
    test: Tensor
    test_labels: Tensor


def _ink(archive: zipfile.ZipFile, name: str, size: int) -> Tensor:
    """One PNG of the zip as uint8 ink (1, size, size): a pixel below 128 is ink, then area
    shrinking, as `umeta.data.omniglot` reads Omniglot."""
    try:
        with Image.open(io.BytesIO(archive.read(name))) as image:
            ink = np.asarray(image.convert("L")) < 128
    except (KeyError, UnidentifiedImageError, OSError) as err:
        raise UmetaError(f"cannot read {name!r} from the one-shot zip ({err}); use the official "
                         f"one_shot_runs.zip") from None
    return resize_ink(torch.from_numpy(ink), size)[None]


def read_runs(path: str | Path, image_size: int = 28) -> list[OneShotRun]:
    """The runs of ``one_shot_runs.zip`` (any number of ``runNN`` folders), in name order."""
    path = Path(path)
    if not path.is_file():
        raise UmetaError(f"{path} not found; pass --runs PATH/one_shot_runs.zip")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise UmetaError(f"{path} is not a zip ({err}); use the official "
                         f"one_shot_runs.zip") from None
    with archive:
        names = archive.namelist()
        labels_files = sorted(n for n in names
                              if re.fullmatch(r"(?:.*/)?run\d+/class_labels\.txt", n))
        if not labels_files:
            raise UmetaError(f"{path} holds no runNN/class_labels.txt; use the official zip")
        runs = []
        for labels_file in labels_files:
            root = labels_file[: -len("class_labels.txt")]
            pairs = [line.split() for line in archive.read(labels_file).decode().splitlines()
                     if line.strip()]
            if not pairs or any(len(p) != 2 for p in pairs):
                raise UmetaError(f"{labels_file}: each line must be 'test/itemXX.png "
                                 f"training/classYY.png'")
            classes = sorted(n for n in names if n.startswith(root + "training/")
                             and n.lower().endswith(".png"))
            index = {n[len(root):]: i for i, n in enumerate(classes)}
            run_name = root.rstrip("/").split("/")[-1]
            try:
                truth = [index[train[len(run_name) + 1:]] for _, train in pairs]
            except KeyError as err:
                raise UmetaError(f"{labels_file} names {err.args[0]!r}, which is not a training "
                                 f"image of {run_name}") from None
            prefix = root[: -len(run_name) - 1]
            training = torch.stack([_ink(archive, n, image_size) for n in classes])
            test = torch.stack([_ink(archive, prefix + t, image_size) for t, _ in pairs])
            runs.append(OneShotRun(run_name, training, test, torch.tensor(truth)))
    return runs


def check_background_only(config: Mapping, progress: Mapping) -> str | None:
    """None if the model was meta-trained on Omniglot's background alphabets only, else why not.

    Accepted: ``data.dataset`` Omniglot, or Omniglot with generated images of the procedural prior
    (``omniglot+procedural[:F]``: no other real data), and ``data.split ==
    "background-evaluation"``, and the progress record's training set name (when there is one)
    is the background part (with the generated images); without
    that record, a label-free run (its images: the split's training part) or a supervised run
    on ``train_part == "train"``.
    """
    data = config.get("data") or {}
    dataset = str(data.get("dataset"))
    if dataset != "omniglot" and not dataset.startswith("omniglot+procedural"):
        return f"trained on {data.get('dataset')!r}, not on Omniglot's background alphabets"
    if data.get("split") != "background-evaluation":
        return (f"trained on Omniglot split {data.get('split')!r}, whose training part holds "
                f"evaluation alphabets; B7 needs split 'background-evaluation'")
    trained_on = progress.get("data")
    if trained_on is not None:
        ok = trained_on == BACKGROUND or trained_on.startswith(BACKGROUND + "+procedural")
        return None if ok else f"trained on {trained_on!r}"
    label_free = (config.get("tasks") or {}).get("builder", "labelled") != "labelled"
    if label_free or data.get("train_part", "train") == "train":
        return None
    return f"a supervised run on train_part {data.get('train_part')!r} of the background split"


def model_images(x: Tensor, learner: Learner) -> Tensor:
    """uint8 ink (B, 1, S, S) as float in the learner's input shape (channels repeated)."""
    x = x.float().div_(255.0)
    c = (learner.image_shape or (1,))[0]
    return x.expand(-1, c, -1, -1) if c != 1 else x


@torch.no_grad()
def run_predictions(learner: Learner, run: OneShotRun, rule: str) -> Tensor:
    """The predicted class (Q,) of each test image of ``run`` under ``rule``."""
    device = next(learner.parameters()).device
    support = model_images(run.training, learner).to(device)
    query = model_images(run.test, learner).to(device)
    k = len(support)
    if rule == "adapt-predict":
        learner.eval()
        labels = torch.arange(k, device=device)
        state = learner.adapt(support[None], labels[None], k)
        return learner.predict(state, query[None])[0].argmax(-1).cpu()
    if rule == "nearest-embedding":
        s = F.normalize(learner.embed(support), dim=-1)
        q = F.normalize(learner.embed(query), dim=-1)
        return (q @ s.T).argmax(-1).cpu()
    raise UmetaError(f"unknown rule {rule!r}; choose one of: {', '.join(RULES)}")


def error_rates(learner: Learner, runs: list[OneShotRun], rule: str) -> np.ndarray:
    """Percent of misclassified test images of each run, shape (len(runs),)."""
    return np.array([100.0 * float((run_predictions(learner, run, rule) != run.test_labels)
                                   .float().mean()) for run in runs])


def anchor_rows() -> list[dict]:
    return [result_row(name, training, "20w1s", "error_pct", value, 0.0, 20, published=True,
                       source=source) for name, training, value, source in ANCHORS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="a meta-trained checkpoint (repeatable); 'builtin' is the built-in "
                             "glyph model (not a valid B7 model: use with --allow-invalid)")
    parser.add_argument("--runs", help="one_shot_runs.zip (default ../shared/data/omniglot/)")
    parser.add_argument("--allow-invalid", action="store_true",
                        help="score models not meta-trained on the background alphabets only, "
                             "marking their rows valid_b7=false")
    parser.add_argument("--embed-head", choices=EMBED_HEADS,
                        help="for PsCo checkpoints: the space of the nearest-embedding rule")
    parser.add_argument("--space", default="embedding",
                        help="spaces of the nearest-embedding rule, comma-separated: embedding "
                             "(the learner's own) or blockN (the backbone's N-th block)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    device = resolve_device(args.device)
    from umeta.pretrained import BUILTIN, builtin_checkpoint

    models = []
    for given in args.checkpoint:
        path = builtin_checkpoint() if given == BUILTIN else Path(given)
        _, meta = read_checkpoint(path)
        why = check_background_only(meta["config"], meta.get("progress") or {})
        if why is not None and not args.allow_invalid:
            raise UmetaError(f"checkpoint {given!r} is not a B7 model: {why}; meta-train on the "
                             f"background alphabets (data.split=background-evaluation) or pass "
                             f"--allow-invalid")
        learner = load_learner(path, device)
        if args.embed_head and isinstance(learner, PsCo):
            learner.embed_head = args.embed_head
        models.append((given, learner, why))
    runs_path = Path(args.runs) if args.runs else default_zip()
    rows = anchor_rows()
    runs_by_size: dict[int, list[OneShotRun]] = {}
    for given, learner, why in models:
        size = int(learner.image_shape[-1])
        if size not in runs_by_size:
            runs_by_size[size] = read_runs(runs_path, size)
        runs = runs_by_size[size]
        cfg = learner.config
        training = "label-free" if is_label_free(cfg) else "supervised"
        spaces = [v.strip() for v in args.space.split(",") if v.strip()]
        variants = [("adapt-predict", "embedding")] + [("nearest-embedding", sp) for sp in spaces]
        for rule, space in variants:
            model = in_space(learner, space)
            errors = error_rates(model, runs, rule)
            mean, ci = mean_ci95(errors)
            validity = {"valid_b7": why is None} | ({} if why is None else {"invalid_why": why})
            rows.append(result_row(
                f"umeta-{cfg.tasks.builder}-{cfg.learner.name}", training, "20w1s", "error_pct",
                mean, ci, len(runs), rule=rule, space=space, checkpoint=given,
                model=f"{cfg.learner.name} on {cfg.model.backbone}-{cfg.model.hidden}, "
                      f"{cfg.data.dataset}/{cfg.data.split}, {cfg.optim.steps} steps",
                per_run=[round(float(e), 2) for e in errors], ci_method="t over runs",
                **validity))
            print(f"{given:<40} {rule:<18} {space:<10} error {mean:5.2f} +- {ci:.2f} %"
                  + ("" if why is None else f"   (not a valid B7 row: {why})"), flush=True)
    write_results(args.out, "B7", rows, device=device, wall_s=time.perf_counter() - start, seed=0,
                  dataset="omniglot", split="background-evaluation", part="evaluation",
                  runs_file=str(runs_path.name), n_runs=len(next(iter(runs_by_size.values()), [])))


if __name__ == "__main__":
    run_main(main)
