#!/usr/bin/env bash
# CPU development runs of the issue-15 levers at small scale: a config of configs/xdomain_psco_*.toml
# shrunk to Conv4-32 (ResNet-12: add --set model.hidden=16 after the config), batch 64, queue 2048, heads 512/128, 400 steps
# (about 2-4 minutes on one busy thread; --steps 1200 for the longer runs), scored on ONE cross-domain set (sklearn_digits, the development
# set) and on Omniglot's evaluation alphabets (in domain); the other cross-domain sets judge only.
# Usage: bash benchmarks/cpu_xdomain_dev.sh NAME CONFIG [--set KEY=VALUE ...] [--sets A,B]
#   -> benchmarks/results/dev_xdomain_NAME.json
set -eu
NAME=$1; CONFIG=$2; shift 2
DATA=${UMETA_SHARED_DATA:-../shared/data}
export OMP_NUM_THREADS=1 PYTHONPATH=src
nice -n 10 python benchmarks/xdomain_ablation.py --config "$CONFIG" --device cpu --steps 400 \
  --set tasks.n_way=64 --set learner.options.queue_size=2048 --set learner.options.hidden_dim=512 \
  --set learner.options.proj_dim=128 --set model.hidden=32 --set run.log_every=50 \
  --sets sklearn_digits,omniglot-evaluation --tasks 200 --xdomain-dir "$DATA/xdomain" \
  --data-dir "$DATA/omniglot" --run-root "${TMPDIR:-/tmp}/umeta_dev_xdomain/$NAME" --no-progress \
  --out "benchmarks/results/dev_xdomain_$NAME.json" "$@"
