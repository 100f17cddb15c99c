#!/usr/bin/env bash
# The main job on the default workload: record a golden run of ResNet-18 (small scale,
# Fashion-MNIST, 8 simulated replicas, one epoch) and inspect it. Installs what is missing
# first. Idempotent: a finished trace is only inspected, an interrupted one is resumed.
#   scripts/main.sh [extra tpufi record flags]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release --product tpufi
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
OUT=${TPUFI_GOLDEN:-golden/resnet18-small}
if [ -f "$OUT/manifest.json" ]; then
  if grep -q '"complete":true' "$OUT/manifest.json"; then
    echo "$OUT is already recorded"
  else
    "$TPUFI" record --resume --out "$OUT"
  fi
else
  "$TPUFI" record --workload resnet18 --scale small --dataset fashion-mnist --epochs 1 --out "$OUT" "$@"
fi
"$TPUFI" inspect "$OUT"
