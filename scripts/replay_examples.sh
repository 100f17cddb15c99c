#!/usr/bin/env bash
# Replays every example spec in traces/<workload>-small/ against that workload's small golden
# run (golden/<workload>-small, recorded by scripts/record_golden.sh if missing) with
# --steps-after-injection 20, and checks each outcome against its file name (the part before
# `__`). Each replay's trace and printed result go to traces/replay-<workload>-small-<spec>/.
#   scripts/replay_examples.sh [WORKLOAD...]      (default: every traces/*-small directory)
# TPUFI_WORKLOADS="effnet nfnet" selects workloads too; TPUFI_GOLDEN overrides the golden
# directory when exactly one workload is selected.
# Specs in traces/<workload>-small/mitigation/ replay with the detectors listed in that
# directory's `detectors` file (default adam-m,moving-variance,non-finite,abft) and
# --steps-after-injection 1; a file named `<detector>__<what>` must be detected by that
# detector and end bit-identical to golden, one named `missed__<what>` must go undetected.
# EXAMPLES=outcomes or EXAMPLES=mitigation checks only those.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  workloads=("$@")
elif [ -n "${TPUFI_WORKLOADS:-}" ]; then
  read -r -a workloads <<<"$TPUFI_WORKLOADS"
else
  workloads=()
  for dir in traces/*-small/; do
    name=$(basename "$dir")
    case "$name" in replay-*) continue ;; esac
    workloads+=("${name%-small}")
  done
fi
if [ -n "${TPUFI_GOLDEN:-}" ] && [ ${#workloads[@]} -ne 1 ]; then
  echo "replay_examples: TPUFI_GOLDEN needs exactly one workload (got ${workloads[*]})" >&2; exit 2
fi
status=0
for workload in "${workloads[@]}"; do
  examples="traces/$workload-small"
  [ -d "$examples" ] || { echo "replay_examples: no $examples" >&2; status=1; continue; }
  GOLDEN=${TPUFI_GOLDEN:-golden/$workload-small}
  if ! { [ -f "$GOLDEN/manifest.json" ] && grep -q '"complete":true' "$GOLDEN/manifest.json"; }; then
    TPUFI_GOLDEN="$GOLDEN" ./scripts/record_golden.sh "$workload"
  fi
  TPUFI="$(swift build -c release --show-bin-path)/tpufi"
  for spec in "$examples"/*.csv "$examples"/*.json; do
    [ -f "$spec" ] && [ "${EXAMPLES:-all}" != mitigation ] || continue
    name=$(basename "${spec%.*}")
    expected=$(echo "${name%%__*}" | sed -E 's/(^|_)([a-z])/\U\2/g; s/Infs/INFs/; s/Nans/NaNs/')
    out="traces/replay-$workload-small-$name"
    rm -rf "$out"
    if result=$("$TPUFI" replay --golden "$GOLDEN" --spec "$spec" --steps-after-injection 20 --out "$out"); then
      printf '%s\n' "$result" >"$out/replay.txt"
      got=$(printf '%s\n' "$result" | head -1)
    else
      got="(replay failed)"
    fi
    if [ "$got" = "$expected" ]; then echo "ok   $workload $name: $got"; else echo "FAIL $workload $name: expected $expected, got $got"; status=1; fi
  done
  MITIGATION=adam-m,moving-variance,non-finite,abft
  [ -f "$examples/mitigation/detectors" ] && MITIGATION=$(tr -d ' \n' <"$examples/mitigation/detectors")
  for spec in "$examples"/mitigation/*.json; do
    [ -f "$spec" ] && [ "${EXAMPLES:-all}" != outcomes ] || continue
    name=$(basename "${spec%.*}")
    detector=${name%%__*}
    out="traces/replay-$workload-small-mitigation-$name"
    rm -rf "$out"
    if result=$("$TPUFI" replay --golden "$GOLDEN" --spec "$spec" --steps-after-injection 1 --mitigation "$MITIGATION" --out "$out"); then
      printf '%s\n' "$result" >"$out/replay.txt"
      line=$(printf '%s\n' "$result" | grep '^mitigation ' || true)
    else
      line="(replay failed)"
    fi
    if [ "$detector" = missed ]; then
      case "$line" in *"nothing detected"*) ok=1 ;; *) ok=0 ;; esac
    else
      case "$line" in *" by "*"$detector"*) printf '%s\n' "$result" | grep -q 'masked-exact' && ok=1 || ok=0 ;; *) ok=0 ;; esac
    fi
    if [ $ok = 1 ]; then echo "ok   $workload mitigation/$name: ${line#mitigation }"; else echo "FAIL $workload mitigation/$name: ${line:-no mitigation line}"; status=1; fi
  done
done
exit $status
