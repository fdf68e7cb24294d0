"""Meta-train a label-free recipe on Omniglot's 30 background alphabets only (for B7).

Without ``--config``: the recipe of the built-in model (`umeta.mainjob.main_job_config`:
UMTRA-style pseudo-tasks, ProtoNets on Conv4 with 32 filters), sized for a CPU. With
``--config`` (e.g. ``configs/b1_psco.toml``) and ``--set``: that recipe. Either way on the
images (no labels) of split ``background-evaluation``, whose training part is the background
alphabets; the checkpoint's progress records that part, which
`b7_one_shot.check_background_only` reads. (``umeta train --config C --set
data.split=background-evaluation`` does the same for a config file.)

    python benchmarks/train_background.py --steps 1000 --run-dir runs/b7_background_cpu
    python benchmarks/train_background.py --config configs/b1_psco.toml --steps 20000 \
        --set run.cuda_graph=true --device cuda --run-dir runs/b7_background_psco
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from entry import run_main

from umeta.config import assemble_config
from umeta.errors import UmetaError
from umeta.build import is_label_free
from umeta.recipes import main_job_config
from umeta.train import train

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a label-free run config (default: the built-in "
                                         "model's CPU recipe)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides, as umeta train --set")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", help="folder with images_background.npz (default "
                                           "../shared/data/omniglot or $UMETA_SHARED_DATA)")
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args()
    shared = os.environ.get("UMETA_SHARED_DATA")
    data_dir = args.data_dir or str(
        (Path(shared) if shared else REPO_ROOT.parent / "shared" / "data") / "omniglot")
    if args.config:
        cfg = assemble_config(args.config, sets=args.set)
        cfg.optim.steps, cfg.run.seed, cfg.run.device = args.steps, args.seed, args.device
        cfg.run.run_dir, cfg.data.dataset, cfg.data.data_dir = args.run_dir, "omniglot", data_dir
    else:
        cfg = main_job_config("omniglot", args.steps, args.seed, args.device, Path(args.run_dir),
                              data_dir)
        for item in args.set:
            key, _, value = item.partition("=")
            cfg.override(key, value)
    if not is_label_free(cfg):
        raise UmetaError("train_background.py is for label-free recipes; the config's "
                         "tasks.builder is 'labelled'")
    cfg.data.split, cfg.data.download = "background-evaluation", False
    result = train(cfg, progress=False)
    print(f"trained {result.steps} steps on the background alphabets (labels unused) in "
          f"{result.wall_s:.0f} s: {result.run_dir / 'checkpoints' / 'last.safetensors'}")


if __name__ == "__main__":
    run_main(main)
