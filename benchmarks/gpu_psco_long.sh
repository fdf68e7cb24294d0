#!/usr/bin/env bash
# PsCo (label-free) on a longer schedule than one GPU command allows, resumed across commands:
# each call trains until PSCO_BUDGET seconds (checkpoints every 1000 steps, written atomically),
# and the call that finds the run finished evaluates it (B1, with and without test-time steps).
# Usage: OUT=dir [PREV=dir] bash benchmarks/gpu_psco_long.sh
#   The run directory is $OUT/psco_long, so it comes back with the results; PREV is that folder
#   from the previous call, carried to the device (UMETA_DATA / UMETA_CACHE point at the data).
set -u
OUT=${OUT:-benchmarks/results}
RUN=$OUT/psco_long
STEPS=${PSCO_STEPS:-40000}
export PYTHONUNBUFFERED=1
mkdir -p "$RUN"
if [ -n "${PREV:-}" ]; then cp -r "$PREV"/. "$RUN"/; fi
RESUME=""
[ -f "$RUN/checkpoints/last.safetensors" ] && RESUME="--resume"
timeout "${PSCO_BUDGET:-500}" python -m umeta train --config configs/b1_psco.toml \
  --set run.run_dir="$RUN" --set optim.steps="$STEPS" --set model.options.ceil_mode=true \
  --set run.checkpoint_every=1000 --no-progress $RESUME
if [ $? -eq 0 ]; then  # finished (a timeout exits 124 and leaves the last checkpoint)
  timeout 120 python benchmarks/b1_fewshot.py --config configs/b1_psco.toml \
    --checkpoint "$RUN/checkpoints/last.safetensors" --transductive-steps 0,5 \
    --out "$OUT/b1_psco_${STEPS}.json"
fi
