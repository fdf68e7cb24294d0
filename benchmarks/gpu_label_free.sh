#!/usr/bin/env bash
# One GPU command (<= 10 min): PsCo (label-free) -> CACTUs-ProtoNets on the PsCo embeddings,
# B1 for CACTUs, then B2 clustering, anomaly and embedding benchmarks for both checkpoints.
# Usage: OUT=dir bash benchmarks/gpu_label_free.sh   (UMETA_DATA / UMETA_CACHE point at the data)
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
PSCO=/tmp/umeta_psco/checkpoints/last.safetensors
CACTUS=/tmp/umeta_cactus/checkpoints/last.safetensors
timeout 230 python -m umeta train --config configs/b1_psco.toml --set run.run_dir=/tmp/umeta_psco \
  --set optim.steps=12000 --set model.options.ceil_mode=true --no-progress
timeout 150 python benchmarks/b1_fewshot.py --config configs/b1_cactus.toml \
  --set run.run_dir=/tmp/umeta_cactus --set tasks.options.encoder=$PSCO \
  --transductive-steps 0,5 --out "$OUT/b1_cactus.json"
timeout 100 python benchmarks/b2_clustering.py --checkpoint $PSCO --checkpoint $CACTUS \
  --refine none,balanced --no-baselines --out "$OUT/b2_clustering_label_free.json"
timeout 60 python benchmarks/b2_anomaly.py --checkpoint $PSCO --checkpoint $CACTUS \
  --out "$OUT/b2_anomaly.json"
timeout 60 python benchmarks/b2_embedding.py --checkpoint $PSCO --checkpoint $CACTUS \
  --out "$OUT/b2_embedding.json"
