#!/usr/bin/env bash
# One GPU command (<= 5 min): B1 label-free UMTRA-ProtoNets (2000 test episodes) and a
# supervised ProtoNets run with shift augmentation of the labelled episodes, both with the step
# replayed from a CUDA graph.
# Usage: OUT=dir bash benchmarks/gpu_umtra_augment.sh   (UMETA_DATA / UMETA_CACHE: the data)
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
timeout 110 python benchmarks/b1_fewshot.py --config configs/b1_umtra.toml \
  --set run.cuda_graph=true --set run.channels_last=true --set run.run_dir=/tmp/umtra \
  --out "$OUT/b1_umtra.json"
timeout 90 python benchmarks/b1_fewshot.py --config configs/b1_protonet_1shot.toml \
  --set data.train_part=trainval --set run.cuda_graph=true --set run.channels_last=true \
  --set run.run_dir=/tmp/proto_aug --set optim.steps=20000 \
  --set 'tasks.options.augment={"shift": 2}' \
  --out "$OUT/b1_ablation_protonet_1shot_trainval_shift2.json"
