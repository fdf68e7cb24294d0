"""The README's `umeta explain` figure: 6 seeded Omniglot evaluation characters x 20 drawers
(classes the built-in image model never saw), clustered and explained by the command itself.

    python benchmarks/explain_figure.py --figure docs/explain.png
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from entry import run_main

from umeta.cli import main as umeta_main
from umeta.config import DataConfig
from umeta.data.sources import load_part

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("UMETA_SHARED_DATA")
    parser.add_argument("--data-dir", default=str((Path(shared) if shared else REPO_ROOT.parent
                                                   / "shared" / "data") / "omniglot"))
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", required=True)
    args = parser.parse_args()
    cfg = DataConfig(dataset="omniglot", split="background-evaluation", data_dir=args.data_dir)
    data = load_part(cfg, "test")
    chosen = torch.randperm(data.num_classes, generator=torch.Generator().manual_seed(args.seed))
    keep = torch.cat([torch.nonzero(data.labels == c).squeeze(1)
                      for c in chosen[:args.classes].tolist()])
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / f"omniglot_evaluation_{args.classes}_characters.npz"
        np.savez(npz, X=data.images[keep].numpy(), y=data.labels[keep].numpy())
        status = umeta_main(["explain", str(npz), "--n-clusters", str(args.classes),
                             "--examples", "4", "--out", str(Path(tmp) / "explain.csv"),
                             "--figure", args.figure, "--force", "--no-progress"])
    raise SystemExit(status)


if __name__ == "__main__":
    run_main(main)
