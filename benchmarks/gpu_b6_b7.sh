#!/usr/bin/env bash
# B7 and B6 on one GPU for a label-free PsCo model meta-trained on Omniglot's background
# alphabets only (configs/b1_psco.toml, BG_STEPS steps, the step replayed from a CUDA graph):
# train it (benchmarks/train_background.py), score Lake's 20 one-shot runs (b7_one_shot.py, in
# PsCo's own space and the backbone's third block) and the cross-domain clustering suite
# (b6_xdomain.py: the model's space and blocks 2 and 3, each without and with AdaBN, against
# k-means / PCA / spectral on pixels). With VINYALS_CHECKPOINT (e.g. the 105k-step PsCo run
# left on the device by gpu_psco_long.sh) B6 also scores that model. Expected: about 2.5 min of
# training at 20,000 steps, 1 min of B7, 2 to 4 min of B6 per model (not yet run on a GPU).
# Usage: OUT=dir UMETA_SHARED_DATA=/path/to/shared/data [BG_STEPS=20000] [DEVICE=cuda] \
#   [B6_TASKS=200] [BG_SETS="--set key=value ..."] [VINYALS_CHECKPOINT=path] \
#   bash benchmarks/gpu_b6_b7.sh
set -u
OUT=${OUT:-benchmarks/results}
STEPS=${BG_STEPS:-20000}
DEVICE=${DEVICE:-cuda}
TASKS=${B6_TASKS:-200}
RUN=runs/b7_background_psco_$STEPS
CKPT=$RUN/checkpoints/last.safetensors
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-src}
mkdir -p "$OUT"
if [ ! -f "$CKPT" ]; then
  timeout 300 python benchmarks/train_background.py --config configs/b1_psco.toml \
    --steps "$STEPS" --device "$DEVICE" --run-dir "$RUN" \
    ${BG_SETS---set run.cuda_graph=true --set run.checkpoint_every=$STEPS} || exit
  cp "$RUN/metrics.jsonl" "$OUT/b7_background_psco_${STEPS}_metrics.jsonl"
fi
timeout 120 python benchmarks/b7_one_shot.py --checkpoint "$CKPT" --space embedding,block3 \
  --device "$DEVICE" --out "$OUT/b7_one_shot_psco_background_$STEPS.json"
timeout 280 python benchmarks/b6_xdomain.py --checkpoint "$CKPT" --space embedding,block2,block3 \
  --adapt none,adabn --tasks "$TASKS" --device "$DEVICE" \
  --out "$OUT/b6_xdomain_psco_background_$STEPS.json"
if [ -n "${VINYALS_CHECKPOINT:-}" ]; then
  timeout 280 python benchmarks/b6_xdomain.py --checkpoint "$VINYALS_CHECKPOINT" \
    --space embedding,block2,block3 --adapt none,adabn --tasks "$TASKS" --device "$DEVICE" \
    --out "$OUT/b6_xdomain_psco_vinyals.json"
fi
