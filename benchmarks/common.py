"""What the B2 benchmark scripts share: their common arguments and the held-out data + models."""

from __future__ import annotations

import argparse

from umeta.build import load_learner, resolve_device
from umeta.config import DataConfig
from umeta.data.sources import load_part
from umeta.learners.psco import EMBED_HEADS, PsCo
from umeta.pretrained import BUILTIN, builtin_checkpoint


def add_common_arguments(parser: argparse.ArgumentParser, jobs_help: str) -> None:
    """--checkpoint (repeatable), --dataset, --data-dir, --device, --seed, --no-baselines,
    --jobs, --embed-head and --out."""
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="a meta-trained checkpoint to evaluate (repeatable); 'builtin' is "
                             "the built-in label-free glyph model (umeta.pretrained)")
    parser.add_argument("--dataset", default="omniglot")
    parser.add_argument("--data-dir")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--jobs", type=int, default=-1, help=jobs_help)
    parser.add_argument("--embed-head", choices=EMBED_HEADS,
                        help="for PsCo checkpoints: the space to embed in (default: the "
                             "checkpoint's own learner.options.embed_head, else predictor)")
    parser.add_argument("--out", required=True)


def test_data_and_learners(args: argparse.Namespace):
    """(device, data config, the test part on the device, the loaded checkpoints)."""
    device = resolve_device(args.device)
    data_cfg = DataConfig(dataset=args.dataset, data_dir=args.data_dir)
    data = load_part(data_cfg, "test").to(device)
    paths = [builtin_checkpoint() if path == BUILTIN else path for path in args.checkpoint]
    learners = [load_learner(path, device) for path in paths]
    for learner in learners:
        if args.embed_head and isinstance(learner, PsCo):
            learner.embed_head = args.embed_head
    return device, data_cfg, data, learners
