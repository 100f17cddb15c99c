#!/usr/bin/env bash
# Mitigation coverage on one workload: records the workload's small golden if it is missing
# (scripts/record_golden.sh), runs every fault-free step through the detectors (false
# positives, cost), then a campaign of software and hardware faults, each experiment run
# without and with mitigation side by side, and prints the coverage table.
#   scripts/mitigation_campaign.sh WORKLOAD [EXPERIMENTS [SEED]]
# Outputs: campaigns/mitigation-WORKLOAD (results.jsonl, summary.json, summary.csv); rerun to
# resume. DETECTORS overrides the detector list; WORKERS and THREADS the parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/mitigation_campaign.sh WORKLOAD [EXPERIMENTS [SEED]]" >&2; exit 2; }
WORKLOAD=$1
EXPERIMENTS=${2:-200}
SEED=${3:-11}
DETECTORS=${DETECTORS:-adam-m,moving-variance,non-finite,abft}
WORKERS=${WORKERS:-1}
THREADS=${THREADS:-2}
GOLDEN=golden/$WORKLOAD-small
OUT=campaigns/mitigation-$WORKLOAD
./scripts/record_golden.sh "$WORKLOAD" >/dev/null
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
# A detector that cannot see the run (moving-variance without batch norm, adam-m without
# Adam) is refused by name: give DETECTORS without it.
"$TPUFI" detect --golden "$GOLDEN" --mitigation "$DETECTORS"
RESUME=()
[ -f "$OUT/campaign.json" ] && RESUME=(--resume)
"$TPUFI" campaign --golden "$GOLDEN" --out "$OUT" "${RESUME[@]}" --experiments "$EXPERIMENTS" --seed "$SEED" \
  --kinds software,hardware --steps-after-injection 1 --mitigation "$DETECTORS" \
  --workers "$WORKERS" --threads "$THREADS"
