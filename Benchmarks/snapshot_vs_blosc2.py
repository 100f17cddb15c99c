"""Blosc2 on the same training-state snapshots SnapshotBench dumped, next to SnapshotBench's own
numbers (ours.csv). Run by Benchmarks/snapshot_vs_blosc2.sh; needs numpy and blosc2.

   python snapshot_vs_blosc2.py DIR [--clevel L] [--nthreads T]

DIR holds layout.csv (name,kind,offset,count), step_<t>.f32 (raw little-endian fp32 state
after step t) and ours.csv (method,kind,raw_bytes,stored_bytes,ratio). Every Blosc2 chunk is
decompressed again and compared with its input (lossless check). Blosc2 configurations, all
with the zstd codec and typesize 4:
  shuffle            byte shuffle (Blosc2's default filter)
  bitshuffle         bit shuffle
  shuffle+bytedelta  byte shuffle then bytedelta (Blosc2's recommendation for floats)
  xor-key16+shuffle  our XOR against the keyframe (every 16) done in numpy, then Blosc2 shuffle
"""
import argparse
import csv
import glob
import os
import re
import time

import blosc2
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("dir")
p.add_argument("--clevel", type=int, default=1)
p.add_argument("--nthreads", type=int, default=1)
args = p.parse_args()

layout = list(csv.DictReader(open(os.path.join(args.dir, "layout.csv"))))
kinds = []
ranges = {}
for t in layout:
    k, lo, hi = t["kind"], int(t["offset"]), int(t["offset"]) + int(t["count"])
    if k not in ranges:
        kinds.append(k)
        ranges[k] = [lo, hi]
    else:
        ranges[k][1] = max(ranges[k][1], hi)
total = max(r[1] for r in ranges.values())
groups = [(k, slice(*ranges[k])) for k in kinds] + [("overall", slice(0, total))]

files = sorted(glob.glob(os.path.join(args.dir, "step_*.f32")), key=lambda f: int(re.search(r"step_(\d+)", f).group(1)))
steps = [np.fromfile(f, dtype="<u4") for f in files]
assert all(s.size == total for s in steps), "step files do not match layout.csv"


def cparams(filters):
    return blosc2.CParams(codec=blosc2.Codec.ZSTD, clevel=args.clevel, typesize=4, nthreads=args.nthreads,
                          filters=filters, filters_meta=[0] * len(filters))


configs = {
    "shuffle": cparams([blosc2.Filter.SHUFFLE]),
    "bitshuffle": cparams([blosc2.Filter.BITSHUFFLE]),
    "shuffle+bytedelta": cparams([blosc2.Filter.SHUFFLE, blosc2.Filter.BYTEDELTA]),
}
dparams = blosc2.DParams(nthreads=args.nthreads)


def compressed_size(buf, cp):
    c = blosc2.compress2(buf, cparams=cp)
    assert blosc2.decompress2(c, dparams=dparams) == buf.tobytes(), "Blosc2 round trip is not lossless"
    return len(c)


theirs = {}  # (method, kind) -> (raw, stored)
for name, cp in configs.items():
    for kind, sl in groups:
        raw = stored = 0
        for s in steps:
            buf = np.ascontiguousarray(s[sl])
            raw += buf.nbytes
            stored += compressed_size(buf, cp)
        theirs[(name, kind)] = (raw, stored)
for kind, sl in groups:
    raw = stored = 0
    for i, s in enumerate(steps):
        buf = np.ascontiguousarray(s[sl]) if i % 16 == 0 else np.ascontiguousarray(s[sl] ^ steps[i - i % 16][sl])
        raw += buf.nbytes
        stored += compressed_size(buf, configs["shuffle"])
    theirs[("xor-key16+shuffle", kind)] = (raw, stored)

ours = {}
for row in csv.DictReader(open(os.path.join(args.dir, "ours.csv"))):
    ours[(row["method"], row["kind"])] = (int(row["raw_bytes"]), int(row["stored_bytes"]))
our_methods = [m for m in dict.fromkeys(k[0] for k in ours)]
their_methods = list(configs) + ["xor-key16+shuffle"]

print(f"\n{len(steps)} snapshots of {total * 4 / 1e6:.2f} MB; raw/stored (higher is better); "
      f"zstd level / Blosc2 clevel {args.clevel}, Blosc2 {blosc2.__version__} nthreads {args.nthreads}")
columns = [("ours", m) for m in our_methods] + [("blosc2", m) for m in their_methods]
print("".rjust(10) + "".join(who.rjust(max(len(m), 6) + 2) for who, m in columns))
print("kind".rjust(10) + "".join(m.rjust(max(len(m), 6) + 2) for _, m in columns))
for kind, _ in groups:
    line = kind.rjust(10)
    for who, m in columns:
        cell = (ours if who == "ours" else theirs).get((m, kind))
        # Update deltas (upd-key*) have no per-kind parts: whole state only.
        line += (f"{cell[0] / cell[1]:.3f}" if cell else "-").rjust(max(len(m), 6) + 2)
    print(line)

best_ours = max(our_methods, key=lambda m: ours[(m, "overall")][0] / ours[(m, "overall")][1])
best_theirs = max(their_methods, key=lambda m: theirs[(m, "overall")][0] / theirs[(m, "overall")][1])
policy = "upd-key16" if ("upd-key16", "overall") in ours else "xor-key16" if ("xor-key16", "overall") in ours else best_ours
ro, so = ours[(policy, "overall")]
rb, sb = theirs[("shuffle", "overall")]
print(f"\noverall: ours {policy} (the trace's policy) {ro / so:.3f}x vs Blosc2 shuffle {rb / sb:.3f}x "
      f"({'ours smaller' if so < sb else 'Blosc2 smaller'} by {abs(sb - so) / max(sb, so) * 100:.1f} %)")
rk, sk = ours[("shuffle-key", "overall")]
print(f"like for like, no delta: ours shuffle-key {rk / sk:.3f}x vs Blosc2 shuffle {rb / sb:.3f}x")
print(f"best of each: ours {best_ours} {ours[(best_ours, 'overall')][0] / ours[(best_ours, 'overall')][1]:.3f}x, "
      f"Blosc2 {best_theirs} {theirs[(best_theirs, 'overall')][0] / theirs[(best_theirs, 'overall')][1]:.3f}x")

# Blosc2 throughput on the whole state (best of 3 passes over all snapshots).
def best_seconds(body):
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        body()
        times.append(time.perf_counter() - t0)
    return min(times)


mb = sum(s.nbytes for s in steps) / 1e6
for name in ["shuffle", "shuffle+bytedelta"]:
    cp = configs[name]
    blobs = [blosc2.compress2(s, cparams=cp) for s in steps]
    enc = best_seconds(lambda: [blosc2.compress2(s, cparams=cp) for s in steps])
    dec = best_seconds(lambda: [blosc2.decompress2(b, dparams=dparams) for b in blobs])
    print(f"Blosc2 {name}: encode {mb / enc:.0f} MB/s, decode {mb / dec:.0f} MB/s (nthreads {args.nthreads})")
