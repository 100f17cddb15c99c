#!/usr/bin/env bash
# Functional-MXU throughput (bf16 operands, fixed accumulation order) next to numpy/OpenBLAS
# fp32 sgemm on the same shapes, 1 and 2 threads, in one run.
#   Benchmarks/mxu_vs_numpy.sh [--seconds S] [--rounds R] [--peer-isa native|avx2] [--operands bf16|fp32]
# The two sides run in R alternating rounds (default 3: MXU then numpy, 1 thread then 2), so
# that a neighbour's burst on a shared host falls on both rather than on one side's only run;
# the table shows each side's median and the lowest and highest ratio of one round's pair.
# numpy comes from PyPI into a throwaway venv (NUMPY_VENV, default /tmp/tpufi-numpy-venv).
# --peer-isa avx2 runs OpenBLAS's Haswell (AVX2) kernels, as on a host without AVX-512; the
# default is avx2 when TPUFI_TARGET_CPU=haswell, else native (OpenBLAS picks for the host).
# --operands fp32 runs the MXU with fp32 operands (no rounding to bf16, so a row-major A is
# read where it lies instead of being rounded into a packed copy; same kernels, same folds of
# the accumulation): the difference from the default shows what rounding the operands costs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=0.5
ROUNDS=3
PEER_ISA=$([ "${TPUFI_TARGET_CPU:-native}" = haswell ] && echo avx2 || echo native)
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --peer-isa) PEER_ISA=$2; shift 2 ;;
    --operands) OPERANDS=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds S] [--rounds R] [--peer-isa native|avx2] [--operands bf16|fp32]" >&2; exit 2 ;;
  esac
done
case "${OPERANDS:=bf16}" in
  bf16) PRECISION= ;;
  fp32) PRECISION=--fp32 ;;
  *) echo "$0: --operands is '$OPERANDS'; expected bf16 or fp32" >&2; exit 2 ;;
esac
case "$ROUNDS" in
  ''|*[!0-9]*|0) echo "$0: --rounds is '$ROUNDS'; expected a whole number of at least 1" >&2; exit 2 ;;
esac
case "$PEER_ISA" in
  native) CORETYPE= ;;
  avx2) CORETYPE=Haswell ;;
  *) echo "$0: --peer-isa is '$PEER_ISA'; expected native or avx2" >&2; exit 2 ;;
esac
V=${NUMPY_VENV:-/tmp/tpufi-numpy-venv}
"$V/bin/python" -c 'import numpy' 2>/dev/null || { python3 -m venv "$V"; "$V/bin/pip" install -q numpy; }
swift build -c release --product MXUBench >&2
BIN="$(swift build -c release --show-bin-path)/MXUBench"
SHAPES=512x512x512,25088x144x16,1568x576x128,131072x576x64,8192x2304x256,2048x4608x512
out=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for t in 1 2; do
    rate=$([ "$r$t" = 11 ] && echo --kernel-rate || true)   # once: the kernel's own rate, in cache
    "$BIN" --threads $t --seconds "$SECONDS_PER" --shapes $SHAPES $rate $PRECISION > "$out/mxu_${t}_$r.csv"
    ( unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; [ -n "$CORETYPE" ] && export OPENBLAS_CORETYPE=$CORETYPE; OPENBLAS_NUM_THREADS=$t "$V/bin/python" Benchmarks/numpy_sgemm.py --shapes $SHAPES --seconds "$SECONDS_PER" ) > "$out/np_${t}_$r.csv"
  done
done
Benchmarks/host_line.sh
echo "peer: numpy/OpenBLAS with $( [ "$PEER_ISA" = avx2 ] && echo 'its Haswell (AVX2) kernels (OPENBLAS_CORETYPE=Haswell)' || echo 'the kernels it picks for this host')"
echo "MXU operands: $OPERANDS$( [ "$OPERANDS" = fp32 ] && echo ' (not rounded: a diagnostic, not the simulated numerics)' || true)"
echo "rounds: $ROUNDS alternating, ${SECONDS_PER} s per shape and side; medians, and the range of one round's ratio"
grep -h '^#' "$out"/mxu_*.csv | awk '!seen[$0]++'   # the micro-kernels this build uses, the kernel's rate
status=0
"$V/bin/python" - "$out" "$ROUNDS" <<'PY' || status=$?
import csv, sys, os, statistics
d, rounds = sys.argv[1], int(sys.argv[2])
def load(p, col, kind=float):
    with open(os.path.join(d, p)) as f:
        return {r["shape"]: kind(r[col]) for r in csv.DictReader(l for l in f if not l.startswith("#"))}
def rates(side, t, col="gflops"):
    return [load(f"{side}_{t}_{r}.csv", col) for r in range(1, rounds + 1)]
median = statistics.median
print(f"{'shape (MxKxN)':<18}{'thr':>4}{'MXU GF/s':>10}{'numpy GF/s':>12}{'ratio':>8}{'range':>12}{'MXU 2t/1t':>11}")
one = rates("mxu", 1)
for t in (1, 2):
    mxu, npy = rates("mxu", t), rates("np", t)
    for s in mxu[0]:
        m, n = median([x[s] for x in mxu]), median([x[s] for x in npy])
        pairs = [a[s] / b[s] for a, b in zip(mxu, npy)]
        spread = f"{min(pairs):.2f}-{max(pairs):.2f}"
        scale = f"{m / median([x[s] for x in one]):.2f}" if t == 2 else ""
        print(f"{s:<18}{t:>4}{m:>10.1f}{n:>12.1f}{m / n:>8.2f}{spread:>12}{scale:>11}")
# The product's bits may not depend on the thread count or the run: every checksum must agree.
sums = {(t, r): load(f"mxu_{t}_{r}.csv", "checksum", str) for t in (1, 2) for r in range(1, rounds + 1)}
first = sums[(1, 1)]
differ = sorted({s for c in sums.values() for s in first if c.get(s) != first[s]})
if differ:
    sys.exit(f"MXU checksums differ between runs or thread counts for {', '.join(differ)}: results depend on the thread count")
PY
rm -rf "$out"
exit $status
