#!/usr/bin/env bash
# Issue 15, the supervised row of B7 in one GPU command: ProtoNets trained with labels on
# Omniglot's 30 background alphabets only (configs/b7_protonet_background.toml, CUDA graph,
# at most TIME_LIMIT seconds), then Lake et al.'s 20 within-alphabet one-shot runs scored for
# it and, in the same run, for the shipped label-free model (--checkpoint builtin, its space).
# Usage: OUT=dir UMETA_SHARED_DATA=dir [TIME_LIMIT=300] [B7_STEPS=20000] [CUDA_GRAPH=false on CPU] bash benchmarks/gpu_b7_supervised.sh
# Writes: $OUT/b7_one_shot_supervised.json, $OUT/b7_protonet_background_metrics.jsonl, $OUT/*.log
set -u
OUT=${OUT:?set OUT}
DATA=${UMETA_SHARED_DATA:?set UMETA_SHARED_DATA}
LIMIT=${TIME_LIMIT:-300}
RUN=runs/b7_protonet_background
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
rm -rf "$RUN"
timeout $((LIMIT + 200)) python -m umeta train --config configs/b7_protonet_background.toml \
  --run-dir "$RUN" --steps "${B7_STEPS:-20000}" --set run.cuda_graph="${CUDA_GRAPH:-true}" \
  --set run.channels_last="${CUDA_GRAPH:-true}" --set run.time_limit_s="$LIMIT" --set data.data_dir="$DATA/omniglot" \
  --set data.download=false --no-progress >"$OUT/train_b7_protonet.log" 2>&1
cp "$RUN/metrics.jsonl" "$OUT/b7_protonet_background_metrics.jsonl"
timeout 120 python benchmarks/b7_one_shot.py --checkpoint "$RUN/checkpoints/last.safetensors" \
  --checkpoint builtin --space "embedding,embedding+block2+block3" --runs "$DATA/omniglot/one_shot_runs.zip" \
  --out "$OUT/b7_one_shot_supervised.json" >"$OUT/b7.log" 2>&1
tail -n 3 "$OUT"/*.log
