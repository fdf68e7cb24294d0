#!/usr/bin/env bash
# The shipped table model of issue 14, in one GPU command: meta-train configs/tables_gpu.toml
# (synthetic priors + the real pmlb tables that are no B8 table nor a near-copy of one; the
# exclusion record benchmarks/results/tables_exclusion_b8.json spares the minutes of near-copy
# comparisons) for TRAIN_S seconds, export its inference-only float16 weights (umeta export:
# what ships as umeta/weights/builtin-tables.safetensors), then check the EXPORTED model:
# speed on 10,000 x 50 and 100,000 x 50 tables on the GPU, and held-out synthetic tables
# against k-means / GMM and IsolationForest / k-NN (benchmarks/tables_check.py).
# STEPS=auto first times 60 steps and sets the steps that fill TRAIN_S, so that the cosine
# schedule ends with the time (run.time_limit_s stops the run at TRAIN_S in any case).
# RESUME=run_dir instead continues that run (its own settings; e.g. runs/tables_cpu, the CPU run
# of the shipped model, carried to the GPU machine) on the GPU for TRAIN_S more seconds: the probe
# times 60 steps past its last one, and its cosine schedule is stretched to the new step count.
# CONFIG trains another config the same way (default configs/tables_gpu.toml).
# Usage: OUT=dir UMETA_SHARED_DATA=dir [TRAIN_S=300] [STEPS=auto] [RESUME=run_dir] \
#   [CONFIG=configs/tables_gpu.toml] bash benchmarks/gpu_tables.sh
# (a CPU smoke test: DEVICE=cpu TRAIN_SET="--set optim.meta_batch=4 ..." TRAIN_S=20 CHECK_TABLES=2)
# Writes: $OUT/builtin-tables.safetensors (+ .sha256), $OUT/tables_gpu_metrics.jsonl,
# $OUT/tables_gpu_probe_metrics.jsonl, $OUT/tables_check_gpu.json, $OUT/tables_gpu_train.log
set -u
OUT=${OUT:?set OUT}
DATA=${UMETA_SHARED_DATA:?set UMETA_SHARED_DATA}
TRAIN_S=${TRAIN_S:-300}
STEPS=${STEPS:-auto}
DEVICE=${DEVICE:-cuda}
TRAIN_SET=${TRAIN_SET:-}
CHECK_TABLES=${CHECK_TABLES:-12}
RESUME=${RESUME:-}
RUN=runs/tables_gpu
export PYTHONPATH=src PYTHONUNBUFFERED=1 UMETA_CACHE=$OUT/cache
mkdir -p "$OUT" "$UMETA_CACHE/table-exclusions"
cp benchmarks/results/tables_exclusion_b8.json "$UMETA_CACHE/table-exclusions/" || exit
rm -rf "$RUN" "${RUN}_probe"
START=0
if [ -n "$RESUME" ]; then
  cp -r "$RESUME" "$RUN" && cp -r "$RESUME" "${RUN}_probe" || exit
  START=$(python -c "import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])['step'])" \
    "$RUN/metrics.jsonl") || exit
  SETTINGS=(--resume)
else
  SETTINGS=(--config "${CONFIG:-configs/tables_gpu.toml}")
fi
if [ "$STEPS" = auto ]; then
  timeout 150 python -m umeta train "${SETTINGS[@]}" --run-dir "${RUN}_probe" \
    --steps $((START + 60)) --set run.log_every=20 --data-dir "$DATA" --device "$DEVICE" \
    $TRAIN_SET --no-progress || exit
  cp "${RUN}_probe/metrics.jsonl" "$OUT/tables_gpu_probe_metrics.jsonl"
  STEPS=$(python benchmarks/steps_for_budget.py "${RUN}_probe" "$TRAIN_S" "$START") || exit
fi
echo "training $STEPS steps (at most $TRAIN_S s)"
timeout $((TRAIN_S + 150)) python -m umeta train "${SETTINGS[@]}" --run-dir "$RUN" \
  --steps "$STEPS" --set run.time_limit_s="$TRAIN_S" --set run.checkpoint_every="$STEPS" \
  --data-dir "$DATA" --device "$DEVICE" $TRAIN_SET --no-progress 2>&1 \
  | tee "$OUT/tables_gpu_train.log"
[ -f "$RUN/checkpoints/last.safetensors" ] || exit 1
cp "$RUN/metrics.jsonl" "$OUT/tables_gpu_metrics.jsonl"
python -m umeta export "$RUN/checkpoints/last.safetensors" --out "$OUT/builtin-tables.safetensors" || exit
sha256sum "$OUT/builtin-tables.safetensors" | tee "$OUT/builtin-tables.safetensors.sha256"
timeout 150 python benchmarks/tables_check.py --checkpoint "$OUT/builtin-tables.safetensors" \
  --device "$DEVICE" --tables "$CHECK_TABLES" --out "$OUT/tables_check_gpu.json"
