#!/usr/bin/env bash
# PsCo (label-free) on the long schedule of configs/b1_psco.toml (105,000 steps, the step replayed
# from a CUDA graph): train and run B1 with 0, 5 and 10 test-time steps (b1_psco_105000.json,
# about 565 s on one H200), then B2 clustering in each of the spaces PsCo can embed in, B2
# clustering against the pixel baselines and B2 anomaly scoring (about 6 more minutes). A PsCo
# checkpoint (65 MB with its optimizer state and queue) is too large to come back from the
# device, so the run lives in runs/ on the device: call the script again on the same (still warm)
# machine and it resumes the finished run, re-runs B1 and goes on to B2. With TIME_LIMIT set,
# training stops after that many seconds with a checkpoint (run.time_limit_s) and the script
# exits; call it again to continue. CONFIG and NAME run another PsCo config the same way (e.g.
# configs/b1_psco_resnet12.toml, NAME=psco_resnet12: files b1_$NAME_$STEPS.json ...); B2=0 stops
# after B1.
# Usage: OUT=dir [PSCO_STEPS=105000] [TIME_LIMIT=seconds] [PSCO_SETS="--set key=value ..."] \
#   [CONFIG=configs/b1_psco.toml NAME=psco] [B2=1] bash benchmarks/gpu_psco_long.sh
#   (UMETA_DATA / UMETA_CACHE point at the data; PSCO_SETS are config overrides for the first
#   call, default --set run.cuda_graph=true)
set -u
OUT=${OUT:-benchmarks/results}
STEPS=${PSCO_STEPS:-105000}
CONFIG=${CONFIG:-configs/b1_psco.toml}
NAME=${NAME:-psco}
RUN=runs/umeta_${NAME}_$STEPS
RESUME=""
[ -f "$RUN/checkpoints/last.safetensors" ] && RESUME=--resume
export PYTHONUNBUFFERED=1
rm -f "$OUT/b1_${NAME}_$STEPS.json"
timeout 580 python benchmarks/b1_fewshot.py --config "$CONFIG" \
  --set run.run_dir="$RUN" --set optim.steps="$STEPS" --set run.time_limit_s="${TIME_LIMIT:-0}" \
  ${PSCO_SETS---set run.cuda_graph=true} $RESUME --transductive-steps 0,5,10 \
  --out "$OUT/b1_${NAME}_$STEPS.json" || exit
[ -f "$OUT/b1_${NAME}_$STEPS.json" ] || exit 0  # stopped at the time limit: call again
cp "$RUN/metrics.jsonl" "$OUT/${NAME}_${STEPS}_metrics.jsonl"
[ "${B2:-1}" = 0 ] && exit 0
for HEAD in projector predictor backbone; do
  timeout 50 python benchmarks/b2_clustering.py --checkpoint "$RUN/checkpoints/last.safetensors" \
    --embed-head $HEAD --refine none,balanced --no-baselines \
    --out "$OUT/b2_clustering_psco_${STEPS}_$HEAD.json"
done
timeout 120 python benchmarks/b2_clustering.py --checkpoint "$RUN/checkpoints/last.safetensors" \
  --embed-head predictor --refine none,balanced --out "$OUT/b2_clustering_label_free.json"
timeout 60 python benchmarks/b2_anomaly.py --checkpoint "$RUN/checkpoints/last.safetensors" \
  --embed-head predictor --out "$OUT/b2_anomaly_psco.json"
