#!/usr/bin/env bash
# What a replay costs, on the default golden run (recorded by scripts/main.sh if missing):
#  1. time from the command's start to the end of the injected step, for targets early, in the
#     middle and late in the golden run (it should be flat in the step index: the fork decodes
#     the nearest snapshot instead of re-training from step 0, as the reference had to);
#  2. simulated steps per experiment with early stopping (masked-exact, non-finite) versus
#     training to the end of the golden run as the reference did, over the example specs in
#     traces/resnet18-small (each replayed to the end).
#   Benchmarks/replay_costs.sh [--golden DIR] [--threads T] [--skip-early-stop]
set -euo pipefail
cd "$(dirname "$0")/.."
GOLDEN=golden/resnet18-small; THREADS=2; EARLY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --golden) GOLDEN=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --skip-early-stop) EARLY=0; shift ;;
    *) echo "usage: $0 [--golden DIR] [--threads T] [--skip-early-stop]" >&2; exit 2 ;;
  esac
done
[ -f "$GOLDEN/manifest.json" ] && grep -q '"complete":true' "$GOLDEN/manifest.json" || ./scripts/main.sh
swift build -c release --product tpufi >&2
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
DIR=$(mktemp -d /tmp/tpufi-replay-costs.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
STEPS=$(jq '.completedSteps' "$GOLDEN/manifest.json")
WORKLOAD=$(jq -r '.config.workload' "$GOLDEN/manifest.json")

echo "== time to the injected step ($GOLDEN, $STEPS steps, $THREADS threads)"
printf "%-12s %12s %12s\n" "target step" "to step (s)" "total (s)"
first=""
for step in 3 $((STEPS / 2)) $((STEPS - 2)); do
  cat > "$DIR/spec.json" <<EOF
{"workload": "$WORKLOAD", "site": "basicblock_2_basic_0_conv1_grad_in", "faultModel": "INPUT", "replica": 1, "globalStep": $step, "seed": 7}
EOF
  rm -rf "$DIR/out"
  json=$("$TPUFI" replay --golden "$GOLDEN" --spec "$DIR/spec.json" --steps-after-injection 0 --threads "$THREADS" --out "$DIR/out" --json)
  to=$(echo "$json" | jq '.timing.secondsToInjectedStep'); total=$(echo "$json" | jq '.timing.seconds')
  printf "%-12s %12.2f %12.2f\n" "$step" "$to" "$total"
  first=${first:-$to}; last=$to
done
echo "late / early time to the injected step: $(python3 -c "print(f'{$last / $first:.2f}')")"

[ "$EARLY" = 1 ] || exit 0
echo
echo "== simulated steps per experiment: early stopping vs to the end of the golden run"
printf "%-45s %-18s %8s %8s\n" "spec" "outcome" "run" "to end"
sum_run=0; sum_end=0; n=0
for spec in traces/resnet18-small/*.csv traces/resnet18-small/*.json; do
  rm -rf "$DIR/out"
  json=$("$TPUFI" replay --golden "$GOLDEN" --spec "$spec" --threads "$THREADS" --out "$DIR/out" --json)
  run=$(echo "$json" | jq '.stepsRun'); g=$(echo "$json" | jq '.injection.globalStep')
  toend=$((STEPS - g))
  printf "%-45s %-18s %8d %8d\n" "$(basename "$spec")" "$(echo "$json" | jq -r '.outcome')" "$run" "$toend"
  sum_run=$((sum_run + run)); sum_end=$((sum_end + toend)); n=$((n + 1))
done
python3 -c "print(f'mean steps per experiment: {$sum_run / $n:.1f} with early stopping, {$sum_end / $n:.1f} to the end ({$sum_end / $sum_run:.2f}x)')"
