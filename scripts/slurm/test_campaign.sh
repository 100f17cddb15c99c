#!/usr/bin/env bash
# End-to-end check of sharded campaigns on a real (single-node) Slurm: starts it with
# local-slurm, records a tiny golden trace (or takes GOLDEN), submits the campaign as a job
# array of SHARDS tasks, waits, merges the shards, runs the same campaign unsharded, and
# compares results (without the timing field) and summaries byte for byte. Stops Slurm at
# the end. Needs root (local-slurm installs and starts slurm-wlm and munge).
#
#   scripts/slurm/test_campaign.sh          (SHARDS=3 EXPERIMENTS=9 WORK=/tmp/... GOLDEN=... to change)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
local_slurm=${LOCAL_SLURM:-/work/shared/tools/local-slurm}
shards=${SHARDS:-3}
experiments=${EXPERIMENTS:-9}
work=${WORK:-$(mktemp -d /tmp/tpufi-slurm-XXXXXX)}
flags=(--seed 7 --steps-after-injection 2)

cd "$repo"
swift build --product tpufi >/dev/null
tpufi="$repo/.build/debug/tpufi"

"$local_slurm" start >/dev/null
trap '"$local_slurm" stop' EXIT

golden=${GOLDEN:-$work/golden}
if [ -z "${GOLDEN:-}" ]; then
  "$tpufi" record --workload resnet18_nobn --optimizer sgd --scale tiny --dataset synthetic:train=64,test=16 \
    --steps 12 --replicas 2 --out "$golden" >/dev/null
fi

job=$(sbatch --parsable --array=0-$((shards - 1)) --chdir "$work" --output "$work/slurm-%A_%a.out" \
  --export=ALL,TPUFI="$tpufi" scripts/slurm/campaign.sbatch "$golden" "$experiments" "$work/shards" "${flags[@]}")
job=${job%%;*}
echo "submitted job array $job ($shards tasks, $experiments experiments)"
start=$(date +%s)
while [ -n "$(squeue -h -j "$job" 2>/dev/null)" ]; do
  [ $(( $(date +%s) - start )) -lt 1800 ] || { echo "FAIL: job $job still queued or running after 30 min" >&2; exit 1; }
  sleep 2
done
echo "job array finished after $(( $(date +%s) - start )) s"
for i in $(seq 0 $((shards - 1))); do
  [ -f "$work/shards/shard-$i-of-$shards/summary.json" ] || { echo "FAIL: shard $i did not finish:" >&2; cat "$work"/slurm-"${job}"_"$i".out >&2; exit 1; }
done

"$tpufi" merge "$work"/shards/shard-*-of-"$shards" --out "$work/merged"
"$tpufi" campaign --golden "$golden" --experiments "$experiments" "${flags[@]}" --out "$work/unsharded" >/dev/null

strip() { sed -E 's/"seconds":[^,}]*,?//' "$1"; }
status=0
diff <(strip "$work/merged/results.jsonl") <(strip "$work/unsharded/results.jsonl") >/dev/null \
  || { echo "FAIL: merged results differ from the unsharded run" >&2; status=1; }
for f in summary.json summary.csv; do
  cmp -s "$work/merged/$f" "$work/unsharded/$f" || { echo "FAIL: merged $f differs from the unsharded run" >&2; status=1; }
done
[ $status -eq 0 ] && echo "PASS: $shards Slurm array tasks merged = unsharded run ($experiments experiments; $work)"
exit $status
