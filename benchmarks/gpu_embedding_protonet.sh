#!/usr/bin/env bash
# One GPU command (<= 10 min): a longer supervised ProtoNets run (B1), a shorter PsCo run, and the
# embedding-quality benchmark for both checkpoints.
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
timeout 150 python -m umeta train --config configs/b1_psco.toml --set run.run_dir=/tmp/umeta_psco \
  --set optim.steps=8000 --set model.options.ceil_mode=true --no-progress
timeout 220 python benchmarks/b1_fewshot.py --config configs/b1_protonet_1shot.toml \
  --set run.run_dir=/tmp/umeta_proto --set optim.steps=20000 --set run.val_every=4000 \
  --transductive-steps 0,5 --out "$OUT/b1_protonet_1shot_20k.json"
timeout 180 python benchmarks/b2_embedding.py --tasks 50 \
  --checkpoint /tmp/umeta_psco/checkpoints/last.safetensors \
  --checkpoint /tmp/umeta_proto/checkpoints/best.safetensors --out "$OUT/b2_embedding.json"
