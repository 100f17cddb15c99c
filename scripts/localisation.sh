#!/usr/bin/env bash
# Localisation as a measured claim: draws random injections over every software fault model
# and every hardware register and fault class, at every phase (forward, _grad_in, _grad_wt),
# replays each one step (the injected one), keeps each faulty trace, and runs `tpufi bisect`
# of the golden against it. Reports how many changed anything, and of those the fraction
# whose first divergent step and operation (and replica) bisect names as the injected ones;
# lists every miss with its spec.
#   scripts/localisation.sh [GOLDEN [EXPERIMENTS [SEED]]]
# Defaults: golden/resnet18-small (recorded by scripts/main.sh if missing), 200, seed 7.
# Output: campaigns/localisation-<seed> (the campaign, its kept traces, bisect/<index>.json,
# localisation.txt). Rerun to resume the campaign; bisections are redone.
set -euo pipefail
cd "$(dirname "$0")/.."
GOLDEN=${1:-golden/resnet18-small}
EXPERIMENTS=${2:-200}
SEED=${3:-7}
OUT=campaigns/localisation-$SEED
if [ "$GOLDEN" = golden/resnet18-small ]; then ./scripts/main.sh >/dev/null; else swift build -c release --product tpufi >/dev/null; fi
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
RESUME=()
[ -f "$OUT/campaign.json" ] && RESUME=(--resume)
"$TPUFI" campaign --golden "$GOLDEN" --out "$OUT" "${RESUME[@]}" --experiments "$EXPERIMENTS" --seed "$SEED" \
  --kinds software,hardware --steps-after-injection 0 --keep-traces >/dev/null
rm -rf "$OUT/bisect" && mkdir -p "$OUT/bisect"
python3 - "$OUT/results.jsonl" <<'PY' | while read -r index; do
import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line)["index"])
PY
  "$TPUFI" bisect "$GOLDEN" "$OUT/traces/$index" --json >"$OUT/bisect/$index.json" 2>"$OUT/bisect/$index.err" || true
done
python3 - "$OUT" <<'PY' | tee "$OUT/localisation.txt"
import json, sys
out = sys.argv[1]
results = {}
for line in open(out + "/results.jsonl"):
    r = json.loads(line); results[r["index"]] = r
changed = located = 0
misses, errors, by_kind, outputOnly = [], [], {}, []
for index, r in sorted(results.items()):
    try:
        d = json.load(open(f"{out}/bisect/{index}.json"))
    except (OSError, ValueError):
        errors.append((r, open(f"{out}/bisect/{index}.err").read().strip())); continue
    if d.get("firstDivergentStep") is None:
        # The state is golden's: nothing for bisect to find. The replay's own per-operation
        # digests say whether an output changed on the way (and was masked before the update).
        if r.get("firstDivergence"): outputOnly.append(r)
        continue
    changed += 1
    ok = (d["firstDivergentStep"] == r["globalStep"] and d.get("firstDivergentSite") == r["site"]
          and d.get("replica") == r["replica"])
    k = by_kind.setdefault(r["faultModel"], [0, 0]); k[0] += 1; k[1] += ok
    if ok: located += 1
    else: misses.append((r, d))
total = len(results)
print(f"{total} injections ({sum(1 for r in results.values() if r['kind'] == 'hardware')} hardware), "
      f"{changed} changed the state, {located} of those localised by bisect to the injected step, operation and replica "
      f"({100.0 * located / max(changed, 1):.1f} %); {len(errors)} bisect errors")
print(f"{len(outputOnly)} more changed an operation's output but not the state (masked within the step; bisect compares states)")
print("per fault model (changed, localised): " + ", ".join(f"{m} {c}/{l}" for m, (c, l) in sorted(by_kind.items())))
phases = {}
for r in results.values():
    p = "forward" if r["phase"] == "forward" else ("grad_wt" if r["site"].endswith("_grad_wt") else "grad_in")
    phases[p] = phases.get(p, 0) + 1
print("injections per phase: " + ", ".join(f"{p} {n}" for p, n in sorted(phases.items())))
for r, d in misses:
    print(f"MISS index {r['index']}: injected {r['faultModel']} at step {r['globalStep']} {r['site']} replica {r['replica']}; "
          f"bisect: step {d.get('firstDivergentStep')} {d.get('firstDivergentSite')} replica {d.get('replica')}; spec {json.dumps(r['spec'])}")
for r, e in errors:
    print(f"ERROR index {r['index']}: {e}")
PY
