#!/usr/bin/env bash
# One GPU command (<= 10 min): B1 supervised MAML (Finn et al.: 5-way 1-shot, trained on train+val
# classes) with the step replayed from a CUDA graph, and two ProtoNets 1-shot schedule ablations.
# Usage: OUT=dir bash benchmarks/gpu_supervised2.sh   (UMETA_DATA / UMETA_CACHE point at the data)
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
FAST="--set data.train_part=trainval --set run.cuda_graph=true"
timeout 360 python benchmarks/b1_fewshot.py --config configs/b1_maml.toml $FAST \
  --set run.run_dir=/tmp/maml --set optim.steps=${MAML_STEPS:-15000} --settings 5w1s,5w5s \
  --out "$OUT/b1_maml_trainval.json"
timeout 90 python benchmarks/b1_fewshot.py --config configs/b1_protonet_1shot.toml $FAST \
  --set run.channels_last=true --set run.run_dir=/tmp/proto_step --set optim.steps=20000 \
  --set optim.schedule=step --set optim.step_every=2000 \
  --out "$OUT/b1_protonet_1shot_trainval_step_schedule.json"
timeout 90 python benchmarks/b1_fewshot.py --config configs/b1_protonet_1shot.toml $FAST \
  --set run.channels_last=true --set run.run_dir=/tmp/proto_q15 --set optim.steps=20000 \
  --set tasks.q_query=15 --out "$OUT/b1_protonet_1shot_trainval_q15.json"
