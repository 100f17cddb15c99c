#!/usr/bin/env bash
# Records the small golden run of a workload: golden/<workload>-small (the workload at
# `small` scale on its default data set, Fashion-MNIST for the image networks and the fortunes
# text task for the transformer, 8 simulated replicas, its default optimizer and augmentation,
# seed 0, one epoch) and inspects it. Installs what is missing and builds tpufi first.
# Idempotent: a finished trace is only inspected, an interrupted one is resumed.
#   scripts/record_golden.sh WORKLOAD [extra tpufi record flags]
# TPUFI_GOLDEN overrides the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/record_golden.sh WORKLOAD [tpufi record flags]" >&2; exit 2; }
WORKLOAD=$1; shift
./scripts/setup.sh
swift build -c release --product tpufi
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
OUT=${TPUFI_GOLDEN:-golden/$WORKLOAD-small}
if [ -f "$OUT/manifest.json" ]; then
  if grep -q '"complete":true' "$OUT/manifest.json"; then
    echo "$OUT is already recorded"
  else
    "$TPUFI" record --resume --out "$OUT"
  fi
else
  "$TPUFI" record --workload "$WORKLOAD" --scale small --epochs 1 --out "$OUT" "$@"
fi
"$TPUFI" inspect "$OUT"
