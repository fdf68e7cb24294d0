#!/usr/bin/env bash
# One GPU command (<= 10 min): the CUDA-graph step checked against the eager step on the GPU,
# B1 supervised ProtoNets trained on train+val classes (Snell et al.'s final-model protocol) with
# the step replayed from a CUDA graph (1-shot model for the 1-shot settings, 5-shot model for
# the 5-shot ones, as Snell et al. match training and test shots), then B3 with CUDA-graph rows.
# Usage: OUT=dir bash benchmarks/gpu_supervised.sh   (UMETA_DATA / UMETA_CACHE point at the data)
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
FAST="--set data.train_part=trainval --set run.cuda_graph=true --set run.channels_last=true"
timeout 120 python -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py 2>&1 | tail -3
for steps in 20000 40000; do
  timeout 150 python benchmarks/b1_fewshot.py --config configs/b1_protonet_1shot.toml $FAST \
    --set run.run_dir=/tmp/proto1_$steps --set optim.steps=$steps \
    --out "$OUT/b1_protonet_1shot_trainval_${steps}.json"
done
timeout 150 python benchmarks/b1_fewshot.py --config configs/b1_protonet_5shot.toml $FAST \
  --set run.run_dir=/tmp/proto5 --set optim.steps=20000 --settings 5w5s,20w5s \
  --out "$OUT/b1_protonet_5shot_trainval.json"
timeout 240 python benchmarks/b3_throughput.py --device cuda --channels-last --cuda-graph \
  --out "$OUT/b3_throughput_cuda.json"
