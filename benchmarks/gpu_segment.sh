#!/usr/bin/env bash
# A larger segmentation model on one GPU (issue 16, part 2): configs/segment_mosaic.toml (the
# pixelproto learner on mosaic tasks of procedural colour textures, no labels) at 128 x 128
# scenes, 32 stem channels, 32 scenes a step, for STEPS steps (stopped after 300 s of training
# at the latest, with a checkpoint), then its inference-only float16 export. The shipped CPU
# model is made by the same config at its own size (see src/umeta/pretrained.py).
# Score the export on CPU afterwards (SLIC and the photos need scikit-image):
#   python benchmarks/b10_segmentation.py --checkpoint OUT/segment_mosaic_gpu.safetensors \
#       --out benchmarks/results/b10_segmentation_gpu.json
# Usage: OUT=dir [STEPS=8000] [DEVICE=cuda] bash benchmarks/gpu_segment.sh
set -u
OUT=${OUT:?set OUT}
STEPS=${STEPS:-8000}
RUN=runs/segment_mosaic_gpu
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$OUT"
timeout 450 python -m umeta train --config configs/segment_mosaic.toml --run-dir "$RUN" \
  --device "${DEVICE:-cuda}" --steps "$STEPS" --meta-batch 32 --set data.image_size=128 \
  --set model.hidden=32 --set run.time_limit_s=300 --set run.checkpoint_every=1000 \
  --set run.log_every=100 --no-progress || exit
cp "$RUN/metrics.jsonl" "$OUT/segment_mosaic_gpu_metrics.jsonl"
python -m umeta export "$RUN/checkpoints/last.safetensors" --out "$OUT/segment_mosaic_gpu.safetensors"
