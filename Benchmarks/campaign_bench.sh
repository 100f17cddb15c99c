#!/usr/bin/env bash
# Campaign throughput: experiments per hour, and what early stopping saves (mean simulated
# steps per experiment and time, with versus without stopping at masked-exact/non-finite).
#
#   Benchmarks/campaign_bench.sh                 tiny golden (recorded here), release build
#   SMALL=/work/main/golden/resnet18-small Benchmarks/campaign_bench.sh   also the small workload (read only)
#
# Knobs: EXPERIMENTS (tiny, default 40), AFTER (steps after injection, default 10),
# WORKERS (default 2), SMALL_EXPERIMENTS (default 6), SMALL_AFTER (default 5),
# SMALL_STEPS (injection steps for small, default 100-102: few distinct end steps, so the
# golden test evaluations the trace does not record are shared).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
swift build -c release --product tpufi >/dev/null
tpufi="$repo/.build/release/tpufi"
work=$(mktemp -d /tmp/tpufi-campaign-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
n=${EXPERIMENTS:-40} after=${AFTER:-10} workers=${WORKERS:-2}

# Prints: seconds experiments mean_steps
measure() {
  local out=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$tpufi" campaign "$@" --out "$out" >/dev/null
  t1=$(date +%s.%N)
  python3 - "$out" "$t0" "$t1" <<'PY'
import json, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rs = [json.loads(l) for l in open(out + "/results.jsonl")]
print(f"{t1 - t0:.3f} {len(rs)} {sum(r['stepsRun'] for r in rs) / len(rs):.3f}")
PY
}

report() {  # name, "seconds n steps" (early stop), same without
  python3 - "$@" <<'PY'
import sys
name, a, b = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
(ta, na, sa), (tb, nb, sb) = (float(a[0]), int(a[1]), float(a[2])), (float(b[0]), int(b[1]), float(b[2]))
print(f"{name}: with early stopping    {na} experiments in {ta:.1f} s = {3600 * na / ta:.0f} experiments/hour, mean {sa:.2f} simulated steps/experiment")
print(f"{name}: without early stopping {nb} experiments in {tb:.1f} s = {3600 * nb / tb:.0f} experiments/hour, mean {sb:.2f} simulated steps/experiment")
print(f"{name}: ratio (with/without): throughput {(na / ta) / (nb / tb):.2f}x, steps {sa / sb:.2f}x")
PY
}

"$tpufi" record --scale tiny --dataset synthetic:train=256,test=64 --steps 60 --replicas 2 --out "$work/tiny" >/dev/null
common=(--golden "$work/tiny" --experiments "$n" --seed 1 --steps-after-injection "$after")
with=$(measure "$work/tiny-es" "${common[@]}" --workers "$workers")
without=$(measure "$work/tiny-noes" "${common[@]}" --workers "$workers" --no-early-stop)
report "tiny (resnet18, 8x8x1, 2 replicas, $workers workers, $after steps after)" "$with" "$without"
serial=$(measure "$work/tiny-w1" "${common[@]}" --workers 1)
python3 -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); print(f'tiny: {sys.argv[3]} workers vs 1: {(int(a[1]) / float(a[0])) / (int(b[1]) / float(b[0])):.2f}x throughput')" "$with" "$serial" "$workers"

if [ -n "${SMALL:-}" ]; then
  sn=${SMALL_EXPERIMENTS:-6} sa=${SMALL_AFTER:-5} ss=${SMALL_STEPS:-100-102}
  small=(--golden "$SMALL" --experiments "$sn" --seed 1 --steps-after-injection "$sa" --steps "$ss" --workers "$workers")
  with=$(measure "$work/small-es" "${small[@]}")
  without=$(measure "$work/small-noes" "${small[@]}" --no-early-stop)
  report "small ($SMALL, $workers workers, $sa steps after, steps $ss)" "$with" "$without"
fi
