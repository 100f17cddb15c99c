#!/usr/bin/env bash
# Replays every example spec in traces/resnet18-small against the default golden run
# (recorded by scripts/main.sh if missing) and checks each outcome against its file name.
set -euo pipefail
cd "$(dirname "$0")/.."
GOLDEN=${TPUFI_GOLDEN:-golden/resnet18-small}
[ -f "$GOLDEN/manifest.json" ] && grep -q '"complete":true' "$GOLDEN/manifest.json" || ./scripts/main.sh
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
status=0
for spec in traces/resnet18-small/*.csv traces/resnet18-small/*.json; do
  name=$(basename "${spec%.*}")
  expected=$(echo "${name%%__*}" | sed -E 's/(^|_)([a-z])/\U\2/g; s/Infs/INFs/; s/Nans/NaNs/')
  out="traces/replay-resnet18-small-$name"
  rm -rf "$out"
  got=$("$TPUFI" replay --golden "$GOLDEN" --spec "$spec" --steps-after-injection 20 --out "$out" | head -1)
  if [ "$got" = "$expected" ]; then echo "ok   $name: $got"; else echo "FAIL $name: expected $expected, got $got"; status=1; fi
done
exit $status
