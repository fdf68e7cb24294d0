#!/usr/bin/env bash
# Issue 15 levers on one GPU, each with its ablation: train every configs/xdomain_psco_*.toml
# (PsCo, label-free, Omniglot's 30 background alphabets only, 10,000 steps replayed from a CUDA
# graph; "procedural" and "both" add generated images, "dr" and "both" domain randomisation
# (stroke width and blur), "resnet12" is "dr" on a ResNet-12 of widths 32-80-160-320; CONFIGS
# may add "dr_photo") and score each on the cross-domain sets and two in-domain
# references: few-shot clustering 5 classes x 10 images, 200 seeded tasks a set, umeta (k-means++
# on L2-normalised predictor embeddings) against k-means on pixels on the same tasks
# (benchmarks/xdomain_score.py, the minimal B6-style scorer). Expected on one H200: about 60 s a
# Conv4 config (190 steps/s measured for the plain recipe), 2-3 min for ResNet-12 (not measured
# on a GPU: about 5x Conv4's compute on the CPU), under 9 min in all. Results: $OUT/$NAME.json
# (NAME default xdomain_ablation; rewritten after every config, so a run cut short keeps the
# configs it finished: then run the rest alone, e.g. NAME=xdomain_ablation_resnet12
# CONFIGS=resnet12) and each run's metrics.jsonl; checkpoints (tens of MB) stay in
# runs/xdomain/<time> on the device.
# Usage: OUT=dir [UMETA_SHARED_DATA=../shared/data] [CONFIGS="baseline dr ..."] [NAME=file stem] \
#   [STEPS=n] [CUDA_GRAPH=false] [TASKS=200] bash benchmarks/gpu_xdomain_ablation.sh
set -u
OUT=${OUT:-benchmarks/results}
DATA=${UMETA_SHARED_DATA:-../shared/data}
CONFIGS=${CONFIGS:-baseline dr procedural both resnet12}
RUNS=runs/xdomain/$(date +%Y%m%d_%H%M%S)
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
ARGS=()
for c in $CONFIGS; do ARGS+=(--config "configs/xdomain_psco_$c.toml"); done
timeout 540 python benchmarks/xdomain_ablation.py "${ARGS[@]}" \
  --set run.cuda_graph="${CUDA_GRAPH:-true}" ${STEPS:+--steps "$STEPS"} --tasks "${TASKS:-200}" \
  --xdomain-dir "$DATA/xdomain" --data-dir "$DATA/omniglot" --run-root "$RUNS" \
  --no-progress --out "$OUT/${NAME:-xdomain_ablation}.json"
STATUS=$?
for c in $CONFIGS; do
  [ -f "$RUNS/xdomain_psco_$c/metrics.jsonl" ] && \
    cp "$RUNS/xdomain_psco_$c/metrics.jsonl" "$OUT/xdomain_psco_${c}_metrics.jsonl"
done
exit $STATUS
