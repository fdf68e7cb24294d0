"""DEV for B7: Lake-style within-alphabet 20-way one-shot runs built from the *background*
alphabets, to choose a label-free model's embedding head and space without looking at B7's 20
evaluation runs.

Each pseudo-run takes one background alphabet of at least 20 characters, 20 of its characters,
and two different drawers: the first drawer's drawings are the 20 training images, the
second's are the test images (as in Lake et al.'s runs). The labels are read only to score. A
label-free model meta-trained on the background alphabets has seen these images without labels,
so the error rates here are lower than on B7; they serve to rank heads and spaces, scored by
`b7_one_shot.error_rates` (the nearest training image, cosine similarity).

A second kind of row, metric ``cosine`` (mean over the runs' images, in the learner's own
space): how close the model puts a training image to its mirror image (setting ``mirror``), to
its character drawn by the other drawer (``same character``) and to the other characters of its
run (``same alphabet``). A model trained with random horizontal flips puts a character next to
its mirror image, which an alphabet may hold as another character.

    python benchmarks/b7_dev_background.py --checkpoint builtin --heads predictor,backbone \
        --space embedding,embedding+block2+block3 --out results/b7_dev_background_builtin.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from b7_one_shot import OneShotRun, default_zip, error_rates, model_images
from entry import run_main

from umeta.adapt.layers import in_space
from umeta.build import load_learner, resolve_device
from umeta.data.omniglot import read_omniglot_npz, resize_ink
from umeta.learners.psco import EMBED_HEADS, PsCo
from umeta.metrics import mean_ci95
from umeta.pretrained import BUILTIN, builtin_checkpoint
from umeta.results import result_row, write_results

WAYS = 20


def background_runs(npz: Path, count: int, size: int, seed: int) -> list[OneShotRun]:
    """``count`` within-alphabet 20-way one-shot runs from the background npz."""
    ink, names = read_omniglot_npz(npz)
    alphabets = np.array([n.split("/")[0] for n in names])
    eligible = [a for a in dict.fromkeys(alphabets) if (alphabets == a).sum() >= WAYS]
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(count):
        rows = np.flatnonzero(alphabets == eligible[rng.integers(len(eligible))])
        chars = rng.choice(rows, WAYS, replace=False)
        train_drawer, test_drawer = rng.choice(ink.shape[1], 2, replace=False)
        order = rng.permutation(WAYS)
        training = resize_ink(ink[chars, train_drawer], size)[:, None]
        test = resize_ink(ink[chars[order], test_drawer], size)[:, None]
        runs.append(OneShotRun(f"dev{i:03d}", training, test, torch.from_numpy(order)))
    return runs


@torch.no_grad()
def mirror_similarity(learner, runs: list[OneShotRun]) -> dict[str, np.ndarray]:
    """Per run, the mean cosine similarity in ``learner``'s embedding between each training
    image and: its horizontal mirror image (``mirror``), the test image of its character
    (``same character``), the test images of the other characters (``same alphabet``)."""
    device = next(learner.parameters()).device

    def embed(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(learner.embed(model_images(x, learner).to(device)), dim=-1)

    values: dict[str, list[float]] = {"mirror": [], "same character": [], "same alphabet": []}
    for run in runs:
        s, m, q = embed(run.training), embed(run.training.flip(-1)), embed(run.test)
        sim = s @ q.T  # (training, test)
        own = torch.zeros_like(sim, dtype=torch.bool)
        own[run.test_labels.to(device), torch.arange(len(q), device=device)] = True
        values["mirror"].append(float((s * m).sum(-1).mean()))
        values["same character"].append(float(sim[own].mean()))
        values["same alphabet"].append(float(sim[~own].mean()))
    return {k: np.array(v) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=BUILTIN)
    parser.add_argument("--heads", default="predictor",
                        help="PsCo embedding heads to compare, comma-separated: "
                             + ", ".join(EMBED_HEADS))
    parser.add_argument("--space", default="embedding",
                        help="spaces, comma-separated (as b7_one_shot.py --space)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="folder of images_background.npz (default: the "
                                           "folder of b7_one_shot.py's runs zip)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    heads = [h.strip() for h in args.heads.split(",")]
    if not set(heads) <= set(EMBED_HEADS):
        parser.error(f"--heads takes {', '.join(EMBED_HEADS)}; got {args.heads}")
    start = time.perf_counter()
    device = resolve_device(args.device)
    data = Path(args.data_dir) if args.data_dir else default_zip().parent
    path = builtin_checkpoint() if args.checkpoint == BUILTIN else Path(args.checkpoint)
    learner = load_learner(path, device)
    if not isinstance(learner, PsCo) and len(heads) > 1:
        parser.error("--heads compares the heads of a PsCo checkpoint; give one head")
    runs = background_runs(data / "images_background.npz", args.runs,
                           int(learner.image_shape[-1]), args.seed)
    rows = []
    for head in heads:
        if isinstance(learner, PsCo):
            learner.embed_head = head
        for space in args.space.split(","):
            errors = error_rates(in_space(learner, space), runs, "nearest-embedding")
            mean, ci = mean_ci95(errors)
            rows.append(result_row("umeta", "label-free", "20w1s-background", "error_pct", mean, ci,
                                   len(runs), embed_head=head, space=space))
            print(f"{head:<10} {space:<28} {mean:6.2f} +- {ci:.2f}")
        for setting, values in mirror_similarity(learner, runs).items():
            mean, ci = mean_ci95(values)
            rows.append(result_row("umeta", "label-free", setting, "cosine", mean, ci,
                                   len(runs), embed_head=head, space="embedding"))
            print(f"{head:<10} cosine to {setting:<18} {mean:6.3f} +- {ci:.3f}")
    write_results(args.out, "B7-DEV", rows, device=device, wall_s=time.perf_counter() - start,
                  seed=args.seed, checkpoint=args.checkpoint, runs=args.runs,
                  note="pseudo-runs from the background alphabets (DEV); not B7")


if __name__ == "__main__":
    run_main(main)
