#!/usr/bin/env bash
# The label-free image model of issue 15, in one GPU command: train configs/xdomain_psco_both.toml
# (PsCo on Omniglot's 30 background alphabets, no labels, plus generated images of the
# procedural prior, with stroke-width and blur randomisation; STEPS steps replayed from a CUDA
# graph), export its inference-only weights (umeta export: float16, what ships as the built-in
# model), then score the EXPORTED model on B7 (Lake's 20 one-shot runs), B6 (the cross-domain
# sets: the model's space and the backbone's second block, each without and with AdaBN) and the
# in-domain B1 (Vinyals test with rotations; never trained on: the Vinyals test alphabets are
# evaluation alphabets) and B2 (few-shot clustering of the same test classes).
# Usage: OUT=dir UMETA_SHARED_DATA=dir [STEPS=30000] [TASKS=200] bash benchmarks/gpu_xdomain_final.sh
set -u
OUT=${OUT:?set OUT}
DATA=${UMETA_SHARED_DATA:?set UMETA_SHARED_DATA}
STEPS=${STEPS:-30000}
TASKS=${TASKS:-200}
RUN=runs/xdomain_final_$STEPS
MODEL=$OUT/xdomain_psco_both_$STEPS.safetensors
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
timeout 330 python -m umeta train --config configs/xdomain_psco_both.toml --run-dir "$RUN" \
  --steps "$STEPS" --set run.cuda_graph=true --set run.checkpoint_every="$STEPS" \
  --set data.data_dir="$DATA/omniglot" --set data.download=false --no-progress || exit
cp "$RUN/metrics.jsonl" "$OUT/xdomain_psco_both_${STEPS}_metrics.jsonl"
python -m umeta export "$RUN/checkpoints/last.safetensors" --out "$MODEL" || exit
timeout 60 python benchmarks/b7_one_shot.py --checkpoint "$MODEL" --space embedding,block2 \
  --runs "$DATA/omniglot/one_shot_runs.zip" --out "$OUT/b7_one_shot_xdomain_psco_both.json"
timeout 200 python benchmarks/b6_xdomain.py --checkpoint "$MODEL" --space embedding,block2 \
  --adapt none,adabn --tasks "$TASKS" --data-dir "$DATA/xdomain" \
  --out "$OUT/b6_xdomain_psco_both.json"
timeout 60 python benchmarks/b1_fewshot.py --config configs/xdomain_psco_both.toml \
  --checkpoint "$MODEL" --set data.data_dir="$DATA/omniglot" --set data.split=vinyals \
  --set data.dataset=omniglot --transductive-steps 0,5 --out "$OUT/b1_xdomain_psco_both.json"
timeout 60 python benchmarks/b2_clustering.py --checkpoint "$MODEL" --data-dir "$DATA/omniglot" \
  --refine none,balanced --no-baselines --out "$OUT/b2_clustering_xdomain_psco_both.json"
