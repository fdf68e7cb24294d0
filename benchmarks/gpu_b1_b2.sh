#!/usr/bin/env bash
# One GPU command (<= 10 min): B1 label-free (PsCo) and supervised (ProtoNets 1-shot) runs, then
# B2 few-shot clustering with both checkpoints and the classical baselines.
# Usage: OUT=dir bash benchmarks/gpu_b1_b2.sh   (UMETA_DATA / UMETA_CACHE point at the data)
set -u
OUT=${OUT:-benchmarks/results}
PSCO_STEPS=${PSCO_STEPS:-12000}
export PYTHONUNBUFFERED=1
timeout 300 python benchmarks/b1_fewshot.py --config configs/b1_psco.toml \
  --set run.run_dir=/tmp/umeta_psco --set optim.steps="$PSCO_STEPS" ${PSCO_SETS:-} \
  --transductive-steps 0,5 --out "$OUT/b1_psco.json"
timeout 120 python benchmarks/b1_fewshot.py --config configs/b1_protonet_1shot.toml \
  --set run.run_dir=/tmp/umeta_proto1 --transductive-steps 0,5 --out "$OUT/b1_protonet_1shot.json"
timeout 200 python benchmarks/b2_clustering.py \
  --checkpoint /tmp/umeta_psco/checkpoints/best.safetensors \
  --checkpoint /tmp/umeta_proto1/checkpoints/best.safetensors \
  --refine none,balanced --out "$OUT/b2_clustering.json"
