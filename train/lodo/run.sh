#!/usr/bin/env bash
# Leave-one-dataset-out runs (train/lodo/README.md). Usage: run.sh [DATA] [bench/lodo.py OPTIONS]
set -euo pipefail
D="${1:-../shared/data}"
shift || true
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" python "$(dirname "$0")/../../bench/lodo.py" \
  --data "$D" --out runs/lodo "$@"
