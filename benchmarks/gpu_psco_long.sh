#!/usr/bin/env bash
# PsCo (label-free) on a longer schedule than b1_psco.json's 12,000 steps: train and run B1 with
# and without test-time steps, then B2 clustering in each of the spaces PsCo can embed in, B2
# clustering against the pixel baselines and B2 anomaly scoring. A PsCo checkpoint (65 MB with
# its optimizer state and queue) is too large to come back from the device, so the run lives in
# runs/ on the device. With TIME_LIMIT set, training stops after that many seconds with a
# checkpoint (run.time_limit_s) and the script exits; call it again, on the same (still warm)
# machine, to continue, until training is done and the evaluations run (about 6 minutes).
# Usage: OUT=dir [PSCO_STEPS=25000] [TIME_LIMIT=seconds] [PSCO_SETS="--set key=value ..."] \
#   bash benchmarks/gpu_psco_long.sh    (UMETA_DATA / UMETA_CACHE point at the data; PSCO_SETS
#   are config overrides for the first call, e.g. --set run.cuda_graph=true)
set -u
OUT=${OUT:-benchmarks/results}
STEPS=${PSCO_STEPS:-25000}
RUN=runs/umeta_psco_$STEPS
RESUME=""
[ -f "$RUN/checkpoints/last.safetensors" ] && RESUME=--resume
export PYTHONUNBUFFERED=1
rm -f "$OUT/b1_psco_$STEPS.json"
timeout 580 python benchmarks/b1_fewshot.py --config configs/b1_psco.toml \
  --set run.run_dir="$RUN" --set optim.steps="$STEPS" --set run.time_limit_s="${TIME_LIMIT:-0}" \
  ${PSCO_SETS:-} $RESUME --transductive-steps 0,5 --out "$OUT/b1_psco_$STEPS.json" || exit
[ -f "$OUT/b1_psco_$STEPS.json" ] || exit 0  # stopped at the time limit: call again
cp "$RUN/metrics.jsonl" "$OUT/psco_${STEPS}_metrics.jsonl"
for HEAD in projector predictor backbone; do
  timeout 50 python benchmarks/b2_clustering.py --checkpoint "$RUN/checkpoints/last.safetensors" \
    --embed-head $HEAD --refine none,balanced --no-baselines \
    --out "$OUT/b2_clustering_psco_${STEPS}_$HEAD.json"
done
timeout 120 python benchmarks/b2_clustering.py --checkpoint "$RUN/checkpoints/last.safetensors" \
  --embed-head predictor --refine none,balanced --out "$OUT/b2_clustering_label_free.json"
timeout 60 python benchmarks/b2_anomaly.py --checkpoint "$RUN/checkpoints/last.safetensors" \
  --embed-head predictor --out "$OUT/b2_anomaly_psco.json"
