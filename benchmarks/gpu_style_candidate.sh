#!/usr/bin/env bash
# Issue 15, one label-free candidate in one GPU command: meta-train configs/xdomain_psco_$CAND.toml
# (PsCo on Omniglot's background alphabets and the procedural prior, no labels; CUDA graph) for
# at most TIME_LIMIT seconds, export it (float16, as a shipped model is), and score it beside the
# shipped model (--checkpoint builtin) on B6 and B7. The candidates' trainings of
# gpu_xdomain_round2.sh wrote nothing and no checkpoint twice (run four at once); this runs one,
# with Python's faulthandler on, so that a run stopped by its timeout (SIGABRT) leaves the stack
# of where it stood in its log.
# B6 clusters with ALGORITHM (default spectral: the step "auto" gives a user on B6's 10 images
# a cluster).
# STEPS=auto first times 300 steps and sets the steps that fill TIME_LIMIT, so that the cosine
# schedule ends with the time (a backbone of unknown speed, e.g. CAND=both_resnet12).
# B6_BUILTIN=0 leaves the shipped model out of B6 (a minute less; its rows are in earlier files).
# Usage: OUT=dir UMETA_SHARED_DATA=dir [CAND=style] [STEPS=25000] [TIME_LIMIT=180] [ALGORITHM=spectral] \
#   [B6_BUILTIN=1] bash benchmarks/gpu_style_candidate.sh
set -u
OUT=${OUT:?set OUT}
DATA=${UMETA_SHARED_DATA:?set UMETA_SHARED_DATA}
CAND=${CAND:-style}
STEPS=${STEPS:-25000}
LIMIT=${TIME_LIMIT:-180}
ALGORITHM=${ALGORITHM:-spectral}
RUN=runs/r3_$CAND
MODEL=$OUT/xdomain_psco_$CAND.safetensors
SPACES=embedding,embedding+block2+block3
export PYTHONPATH=src PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
mkdir -p "$OUT"
rm -rf "$RUN"  # a fresh run each time (a warm machine keeps runs/)
start=$(date +%s)
TRAIN=(--config "configs/xdomain_psco_$CAND.toml" --set run.cuda_graph=true
       --set data.data_dir="$DATA/omniglot" --set data.download=false --no-progress)
if [ "$STEPS" = auto ]; then
  rm -rf "${RUN}_probe"
  timeout 240 python -m umeta train "${TRAIN[@]}" --run-dir "${RUN}_probe" --steps 300 \
    --set run.log_every=100 >"$OUT/probe_$CAND.log" 2>&1 || exit
  cp "${RUN}_probe/metrics.jsonl" "$OUT/xdomain_psco_${CAND}_probe_metrics.jsonl"
  STEPS=$(python benchmarks/steps_for_budget.py "${RUN}_probe" "$LIMIT") || exit
  echo "probe: $STEPS steps fill $LIMIT s" | tee -a "$OUT/probe_$CAND.log"
fi
timeout -s ABRT $((LIMIT + 120)) python -m umeta train "${TRAIN[@]}" --run-dir "$RUN" \
  --steps "$STEPS" --set run.checkpoint_every="$STEPS" --set run.time_limit_s="$LIMIT" \
  >"$OUT/train_$CAND.log" 2>&1
echo "train exit $? after $(($(date +%s) - start)) s" | tee -a "$OUT/train_$CAND.log"
cp "$RUN/metrics.jsonl" "$OUT/xdomain_psco_${CAND}_metrics.jsonl" || exit
python -m umeta export "$RUN/checkpoints/last.safetensors" --out "$MODEL" || exit
BASE=(--checkpoint builtin)
[ "${B6_BUILTIN:-1}" = 0 ] && BASE=()
timeout 240 python benchmarks/b6_xdomain.py "${BASE[@]}" --checkpoint "$MODEL" \
  --space "$SPACES" --algorithm "$ALGORITHM" --tasks 200 --data-dir "$DATA/xdomain" \
  --out "$OUT/b6_xdomain_$CAND.json" >"$OUT/b6_$CAND.log" 2>&1
echo "b6 exit $? after $(($(date +%s) - start)) s"
timeout 40 python benchmarks/b7_one_shot.py --checkpoint "$MODEL" --space "$SPACES" \
  --runs "$DATA/omniglot/one_shot_runs.zip" --out "$OUT/b7_one_shot_$CAND.json" >"$OUT/b7_$CAND.log" 2>&1
echo "b7 exit $? after $(($(date +%s) - start)) s"
tail -n 4 "$OUT"/*.log
