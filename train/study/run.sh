#!/usr/bin/env bash
# The five-architecture study on RAF-DB (train/study/README.md). Usage: run.sh [DATA] [OPTIONS]
set -euo pipefail
D="${1:-../shared/data}"
shift || true
fervid-train --data "$D/rafdb/basic" --input-size 80 --epochs 17 --batch-size 128 \
  --lr 1e-3 --balance sampler --seed 0 --out runs/study \
  --archs resnet18,resnet34,resnet101,efficientnet_b3,efficientnet_b7 "$@"
