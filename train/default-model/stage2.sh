#!/usr/bin/env bash
# Stage 2 of the bundled model, packaged, calibrated and quantized
# (train/default-model/README.md). Usage: stage2.sh STAGE1_MODEL [DATA]
set -euo pipefail
START="$1"
D="${2:-../shared/data}"
DATA=(--data "$D/fer2013" --data "$D/rafdb/basic" --data "$D/affectnet-subset")
fervid-train "${DATA[@]}" \
  --labels ferplus --eval-labels majority --exclude "$D/test-duplicates.txt" \
  --archs resnet18 --input-size 112 --channels rgb --random-gray 0.2 \
  --batch-size 256 --lr 5e-4 --warmup-epochs 0 --epochs 2 \
  --balance sampler --balance-power 0.5 --source-power 0 --select acc \
  --aug-scale 0.6 --rotate 15 --erase 0.25 --mixup 0.2 --cutmix 1.0 --mix-prob 0.5 \
  --ema --ema-decay 0.995 --tta hflip --seed 1 --no-test \
  --init "$START" --logit-adjust 0 --logit-adjust-by source --out runs/ft-natural --resume
fervid-train export runs/ft-natural/resnet18/best.safetensors runs/packaged.safetensors \
  --crop-scale 0.98 --crop-shift -0.007 --tta hflip \
  --dataset "fer2013 (FER+ votes) + rafdb + affectnet-subset"
fervid-train calibrate runs/packaged.safetensors runs/default.safetensors "${DATA[@]}" \
  --exclude "$D/test-duplicates.txt" --labels ferplus --eval-labels majority
echo "runs/default.safetensors: copy it to fervid/models/, then: python bench/quantize.py --data $D"
