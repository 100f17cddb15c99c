#!/usr/bin/env bash
# Control campaigns on the default workload's golden, whose expected outcome is known in
# advance, so that a wrong classification or a wrong `activated` count shows:
#   no-effect     faults that cannot change the computation: hardware faults in PEs outside
#                 the columns the operation occupies (or, for the weight and input registers,
#                 outside its rows), flips of fp32 bits that
#                 bfloat16 rounding of an MXU operand discards, and 0 written over an operand
#                 element that is already +0. Expected: every result Masked, activated 0,
#                 stopped masked-exact at the injected step.
#   low-mantissa  flips of the lowest mantissa bits: fp32 bits 0-9 of an MXU output
#                 (RBFLIP), and the lowest bfloat16 mantissa bits (fp32 bits 16-18) of an input
#                 or weight element where the flip survives rounding. Every one changes the
#                 computation (activated 1). Expected: no degrade class at the default
#                 confidence (Masked only).
# The specs are written from the golden's own operands (`tpufi export --operation`), listed
# in DIR/specs.jsonl and run with `tpufi campaign --specs`; the script then checks every result
# against the expectation and prints the misses (exit 1 if any).
#   scripts/control_campaign.sh no-effect|low-mantissa [EXPERIMENTS [SEED]]
# Defaults: 100 experiments, seed 1, golden/resnet18-small (GOLDEN overrides; recorded by
# scripts/main.sh if missing). Output: campaigns/control-<kind>-<seed>; rerun to resume.
# WORKERS and THREADS set the parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/control_campaign.sh no-effect|low-mantissa [EXPERIMENTS [SEED]]" >&2; exit 2; }
KIND=$1
EXPERIMENTS=${2:-100}
SEED=${3:-1}
case "$KIND" in
  no-effect) AFTER=1 ;;
  low-mantissa) AFTER=5 ;;
  *) echo "unknown control '$KIND': give no-effect or low-mantissa" >&2; exit 2 ;;
esac
GOLDEN=${GOLDEN:-golden/resnet18-small}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
OUT=campaigns/control-$KIND-$SEED
if [ "$GOLDEN" = golden/resnet18-small ]; then ./scripts/main.sh >/dev/null; else swift build -c release --product tpufi >/dev/null; fi
TPUFI="$(swift build -c release --show-bin-path)/tpufi"
mkdir -p "$OUT/operands"

if [ ! -f "$OUT/specs.jsonl" ]; then
  WORKLOAD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1] + "/manifest.json"))["config"]["workload"])' "$GOLDEN")
  "$TPUFI" sites --workload "$WORKLOAD" --json >"$OUT/sites.json"
  "$TPUFI" inspect "$GOLDEN" --json >"$OUT/golden.json"
  cp "$GOLDEN/manifest.json" "$OUT/manifest.json"
  # Which operations (step, site, replica) to take operands from: a fixed draw.
  python3 - "$KIND" "$EXPERIMENTS" "$SEED" "$AFTER" "$OUT" <<'PY' >"$OUT/operations.txt"
import json, random, sys
kind, n, seed, after, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
golden = json.load(open(out + "/golden.json"))
replicas = json.load(open(out + "/manifest.json"))["config"]["replicas"]
sites = [s for s in json.load(open(out + "/sites.json"))["sites"] if s["unit"] == "mxu"]
rng = random.Random(seed)
last = golden["lastStep"] - after
for _ in range(max(1, n // 10)):
    print(rng.randint(0, last), rng.choice(sites)["name"], rng.randrange(replicas))
PY
  while read -r step site replica; do
    f="$OUT/operands/$step-$site-$replica.safetensors"
    [ -f "$f" ] || "$TPUFI" export "$GOLDEN" --step "$step" --operation "$site" --replica "$replica" --out "$f" --threads "$((WORKERS * THREADS))" >/dev/null
  done <"$OUT/operations.txt"
  python3 - "$KIND" "$EXPERIMENTS" "$SEED" "$OUT" "$WORKLOAD" <<'PY' >"$OUT/specs.jsonl.tmp"
import json, random, struct, sys
kind, n, seed, out, workload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sites = {s["name"]: s for s in json.load(open(out + "/sites.json"))["sites"]}
array = json.load(open(out + "/sites.json"))
rng = random.Random(seed * 7919 + 1)

def tensors(path):
    """safetensors: an 8-byte header length, a JSON header, raw little-endian data."""
    raw = open(path, "rb").read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    data = raw[8 + size:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__": continue
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        out[name] = (t["shape"], [x[0] for x in struct.iter_unpack("<I", data[a:b])])
    return out

def bf16(bits):
    """fp32 bits rounded to bfloat16 (to nearest, ties to even), as the MXU rounds operands."""
    if (bits >> 23) & 0xFF == 0xFF: return bits >> 16
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF

def value(bits): return struct.unpack("<f", struct.pack("<I", bits))[0]

def finite(bits): return (bits >> 23) & 0xFF != 0xFF

def index(flat, shape):
    idx = []
    for d in reversed(shape):
        idx.append(flat % d); flat //= d
    return idx[::-1]

ops = []
for line in open(out + "/operations.txt"):
    step, site, replica = line.split()
    ops.append((int(step), site, int(replica), tensors(f"{out}/operands/{step}-{site}-{replica}.safetensors")))

def spec(step, site, replica, **fields):
    return dict(workload=workload, site=site, replica=replica, globalStep=step, **fields)

def software(model, role, pick):
    """A verbatim one-element spec: `pick(bits)` gives the new bits or None to try another."""
    for _ in range(10000):
        step, site, replica, t = rng.choice(ops)
        shape, data = t[role]
        flat = rng.randrange(len(data))
        new = pick(data[flat])
        if new is not None:
            return spec(step, site, replica, faultModel=model, positions=[index(flat, shape)], values=[value(new)])
    raise SystemExit(f"no element for {model} after 10000 tries")

def discarded(bits):
    if not finite(bits): return None
    b = rng.randrange(16)
    new = bits ^ (1 << b)
    return new if bf16(new) == bf16(bits) else None

def zero(bits): return 0 if bits == 0 else None

def low_bf16(bits):
    if not finite(bits) or bits & 0x7FFFFFFF == 0: return None
    new = bits ^ (1 << rng.randint(16, 18))
    return new if bf16(new) != bf16(bits) and finite(new) else None

def low_fp32(bits):
    if not finite(bits): return None
    return bits ^ (1 << rng.randrange(10))

def unused_pe():
    # Outside the columns an operation occupies, no register holds its data; outside its
    # rows, the weight and input registers hold none, but partial sums still pass down every
    # row under the weight- and input-stationary dataflows.
    rows, cols = array["arrayRows"], array["arrayColumns"]
    def outside(register):
        return [s for s in sites.values() if s["unit"] == "mxu"
                and (s["columns"] < cols or (register != "partial-sum" and s["rows"] < rows))]
    registers = [r for r in ["weight", "input", "partial-sum"] if outside(r)]
    if not registers: raise SystemExit("every operation fills the whole array: no PE outside it to strike")
    register = rng.choice(registers)
    candidates = outside(register)
    step, _, replica, _ = rng.choice(ops)
    s = rng.choice(candidates)
    if s["columns"] < cols and (register == "partial-sum" or s["rows"] == rows or rng.random() < 0.5):
        row, column = rng.randrange(rows), rng.randrange(s["columns"], cols)
    else:
        row, column = rng.randrange(s["rows"], rows), rng.randrange(cols)
    hw = dict(mxu=0, row=row, column=column, register=register, bit=rng.randrange(16 if register != "partial-sum" else 32))
    if rng.random() < 0.5: hw["cycle"] = rng.randrange(s["cycles"])
    else: hw["stuckAt"] = rng.randrange(2)
    return spec(step, s["name"], replica, hardware=hw)

specs = []
for i in range(n):
    if kind == "no-effect":
        r = i % 5
        if r < 2: specs.append(unused_pe())
        elif r < 4: specs.append(software("INPUT" if r == 2 else "WT", "input" if r == 2 else "weight", discarded))
        else: specs.append(software("INPUT", "input", zero))
    else:
        if i % 2 == 0: specs.append(software("RBFLIP", "output", low_fp32))
        else:
            role = rng.choice(["input", "weight"])
            specs.append(software("INPUT" if role == "input" else "WT", role, low_bf16))
for s in specs: print(json.dumps(s, separators=(",", ":")))
PY
  mv "$OUT/specs.jsonl.tmp" "$OUT/specs.jsonl"
fi

RESUME=()
[ -f "$OUT/campaign/campaign.json" ] && RESUME=(--resume)
"$TPUFI" campaign --golden "$GOLDEN" --specs "$OUT/specs.jsonl" --out "$OUT/campaign" "${RESUME[@]}" \
  --steps-after-injection "$AFTER" --workers "$WORKERS" --threads "$THREADS" >/dev/null

python3 - "$KIND" "$OUT" <<'PY' | tee "$OUT/control.txt"
import json, sys
kind, out = sys.argv[1], sys.argv[2]
results = [json.loads(l) for l in open(out + "/campaign/results.jsonl")]
results.sort(key=lambda r: r["index"])
def what(r):
    if r["kind"] == "hardware":
        h = r["spec"]["hardware"]
        return f"hardware {h['register']} {'flip' if 'cycle' in h else 'stuck-at'}"
    # A verbatim value that is a one-bit flip of the golden one records the bit: that the
    # operand exported is the one the injection saw.
    if r.get("bits"): return f"{r['faultModel']} {'low-bit' if kind == 'low-mantissa' else 'discarded-bit'} flip"
    if r["spec"].get("values") == [0.0] and r.get("goldenValues") == [0.0]: return f"{r['faultModel']} 0 over +0"
    return f"{r['faultModel']} (unexpected value)"
misses, groups = [], {}
for r in results:
    g = groups.setdefault(what(r), {"n": 0, "Masked": 0, "activated0": 0, "exact": 0, "outcomes": {}})
    g["n"] += 1
    g["outcomes"][r["outcome"]] = g["outcomes"].get(r["outcome"], 0) + 1
    g["Masked"] += r["outcome"] == "Masked"
    g["activated0"] += r.get("activated") == 0
    g["exact"] += r.get("stoppedEarly") == "masked-exact"
    if kind == "no-effect":
        ok = r["outcome"] == "Masked" and r.get("activated") == 0 and r.get("stoppedEarly") == "masked-exact" and r["stepsRun"] == 1 \
             and (r["kind"] != "hardware" or r.get("peInUse") is False)
    else:
        ok = r["outcome"] == "Masked" and (r.get("activated") or 0) >= 1
    if "unexpected" in what(r): ok = False
    if not ok: misses.append(r)
print(f"{kind} control on {len(results)} experiments: "
      + ("expected every result Masked, activated 0, masked-exact after the injected step"
         if kind == "no-effect" else "expected every one activated and Masked (no degrade class at the default confidence)"))
print(f"{'fault':<28}{'n':>5}{'Masked':>8}{'activated 0':>13}{'masked-exact':>14}  outcomes")
for name, g in sorted(groups.items()):
    print(f"{name:<28}{g['n']:>5}{g['Masked']:>8}{g['activated0']:>13}{g['exact']:>14}  "
          + ", ".join(f"{o} {c}" for o, c in sorted(g["outcomes"].items())))
print(f"as expected: {len(results) - len(misses)} of {len(results)}")
for r in misses:
    print(f"MISS index {r['index']}: {r['outcome']}, activated {r.get('activated')}, stopped {r.get('stoppedEarly')}, "
          f"peInUse {r.get('peInUse')}; evidence {r.get('evidence')}; spec {json.dumps(r['spec'])}")
sys.exit(1 if misses else 0)
PY
