#!/usr/bin/env bash
# Issue 15, B1's untried levers, one GPU command: the label-free recipe configs/b1_psco.toml at
# STEPS steps (CUDA graph) as it is ("base") and with one lever changed each, same seed and data,
# scored on B1 (Vinyals test split, 2,000 episodes a setting, inductive and 5 transductive steps):
#   noflip  no horizontal flip in the views (a character and its mirror image are different
#           characters; the flip-free ResNet-12 told them apart and gained on B7, issue 15);
#   k4      K = 4 pseudo-shots: each pseudo-class's support is the 4 queue embeddings that the
#           Sinkhorn assignment gives it, not 1.
#   noflip_k4  both.
# ARMS picks which (default "base noflip k4"); each arm gets at most ARM_LIMIT seconds.
# EXPORT=1 also writes each arm's inference-only model (float16, 8.3 MB; the training
# checkpoint, 77 MB, is too large to come back from the GPU machine) as
# $OUT/b1_psco_<arm>_<steps>.safetensors, for B2 (b2_clustering.py --checkpoint) elsewhere.
# Usage: OUT=dir UMETA_SHARED_DATA=dir [STEPS=20000] [ARMS="base noflip k4"] [EXPORT=1] \
#   bash benchmarks/gpu_b1_ablation.sh
# The flip-free recipe at 105,000 steps, as configs/b1_psco_noflip.toml (480 s on one H100):
#   ARMS=noflip STEPS=105000 ARM_LIMIT=590 EXPORT=1
set -u
OUT=${OUT:?set OUT}
DATA=${UMETA_SHARED_DATA:?set UMETA_SHARED_DATA}
STEPS=${STEPS:-20000}
ARMS=${ARMS:-base noflip k4}
ARM_LIMIT=${ARM_LIMIT:-170}
export PYTHONPATH=src PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
mkdir -p "$OUT"
NOFLIP=(--set 'tasks.options.augment={"crop_scale": [0.2, 1.0], "flip": 0.0}')
K4=(--set tasks.k_shot=4)
for arm in $ARMS; do
  case $arm in
    base) LEVER=() ;;
    noflip) LEVER=("${NOFLIP[@]}") ;;
    k4) LEVER=("${K4[@]}") ;;
    noflip_k4) LEVER=("${NOFLIP[@]}" "${K4[@]}") ;;
    *) echo "unknown arm $arm (base, noflip, k4, noflip_k4)"; exit 2 ;;
  esac
  rm -rf "runs/b1_ablation_$arm"
  timeout -s ABRT "$ARM_LIMIT" python benchmarks/b1_fewshot.py --config configs/b1_psco.toml \
    --set run.run_dir="runs/b1_ablation_$arm" --set optim.steps="$STEPS" \
    --set run.checkpoint_every="$STEPS" --set run.cuda_graph=true \
    --set data.data_dir="$DATA/omniglot" --set data.download=false "${LEVER[@]}" \
    --method "psco-$arm" --transductive-steps 0,5 \
    --out "$OUT/b1_psco_${arm}_$STEPS.json" >"$OUT/b1_$arm.log" 2>&1
  echo "$arm exit $?"
  cp "runs/b1_ablation_$arm/metrics.jsonl" "$OUT/b1_psco_${arm}_${STEPS}_metrics.jsonl"
  if [ "${EXPORT:-0}" = 1 ]; then
    python -m umeta export "runs/b1_ablation_$arm/checkpoints/last.safetensors" \
      --out "$OUT/b1_psco_${arm}_$STEPS.safetensors"
  fi
done
python - "$OUT" <<'PY'
import glob, json, sys
for path in sorted(glob.glob(f"{sys.argv[1]}/b1_psco_*.json")):
    d = json.load(open(path))
    row = {(r["setting"], r.get("transductive_steps")): r["mean"] for r in d["results"]
           if r["metric"] == "accuracy" and r.get("test_rotations")}  # B1's 1692 classes
    print(path.split("/")[-1], d.get("train_wall_s"),
          " ".join(f"{s}/{t}:{v:.2f}" for (s, t), v in sorted(row.items(), key=lambda x: (x[0][1], x[0][0]))))
PY
