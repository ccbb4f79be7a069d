#!/usr/bin/env bash
# Stage 1 of the bundled model (train/default-model/README.md). Usage: stage1.sh [DATA]
set -euo pipefail
D="${1:-../shared/data}"
fervid-train --data "$D/fer2013" --data "$D/rafdb/basic" --data "$D/affectnet-subset" \
  --labels ferplus --eval-labels majority --exclude "$D/test-duplicates.txt" \
  --archs resnet18 --input-size 112 --channels rgb --random-gray 0.2 \
  --batch-size 256 --lr 2e-3 --warmup-epochs 2 --epochs 50 \
  --balance sampler --balance-power 0.5 --source-power 0 --select acc \
  --aug-scale 0.6 --rotate 15 --erase 0.25 --mixup 0.2 --cutmix 1.0 --mix-prob 0.5 \
  --ema --tta hflip --seed 1 --out runs/default --resume
