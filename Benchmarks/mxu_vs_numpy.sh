#!/usr/bin/env bash
# Functional-MXU throughput (bf16 operands, fixed accumulation order) next to numpy/OpenBLAS
# fp32 sgemm on the same shapes, 1 and 2 threads, in one run.
#   Benchmarks/mxu_vs_numpy.sh [--seconds S] [--peer-isa native|avx2]
# numpy comes from PyPI into a throwaway venv (NUMPY_VENV, default /tmp/tpufi-numpy-venv).
# --peer-isa avx2 runs OpenBLAS's Haswell (AVX2) kernels, as on a host without AVX-512; the
# default is avx2 when TPUFI_TARGET_CPU=haswell, else native (OpenBLAS picks for the host).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=0.5
PEER_ISA=$([ "${TPUFI_TARGET_CPU:-native}" = haswell ] && echo avx2 || echo native)
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --peer-isa) PEER_ISA=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds S] [--peer-isa native|avx2]" >&2; exit 2 ;;
  esac
done
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
for t in 1 2; do
  "$BIN" --threads $t --seconds "$SECONDS_PER" --shapes $SHAPES > "$out/mxu_$t.csv"
  ( unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; [ -n "$CORETYPE" ] && export OPENBLAS_CORETYPE=$CORETYPE; OPENBLAS_NUM_THREADS=$t "$V/bin/python" Benchmarks/numpy_sgemm.py --shapes $SHAPES --seconds "$SECONDS_PER" ) > "$out/np_$t.csv"
done
Benchmarks/host_line.sh
echo "peer: numpy/OpenBLAS with $( [ "$PEER_ISA" = avx2 ] && echo 'its Haswell (AVX2) kernels (OPENBLAS_CORETYPE=Haswell)' || echo 'the kernels it picks for this host')"
grep -h '^#' "$out"/mxu_*.csv | sort -u   # the micro-kernels this build uses
status=0
"$V/bin/python" - "$out" <<'PY' || status=$?
import csv, sys, os
d = sys.argv[1]
def load(p, col, kind=float):
    with open(os.path.join(d, p)) as f:
        return {r["shape"]: kind(r[col]) for r in csv.DictReader(l for l in f if not l.startswith("#"))}
print(f"{'shape (MxKxN)':<18}{'thr':>4}{'MXU GF/s':>10}{'numpy GF/s':>12}{'ratio':>8}{'MXU 2t/1t':>11}")
for t in (1, 2):
    mxu, npy = load(f"mxu_{t}.csv", "gflops"), load(f"np_{t}.csv", "gflops")
    one = load("mxu_1.csv", "gflops")
    for s in mxu:
        scale = f"{mxu[s] / one[s]:.2f}" if t == 2 else ""
        print(f"{s:<18}{t:>4}{mxu[s]:>10.1f}{npy[s]:>12.1f}{mxu[s] / npy[s]:>8.2f}{scale:>11}")
# The product's bits may not depend on the thread count: the checksums must agree.
one_thread, two_threads = load("mxu_1.csv", "checksum", str), load("mxu_2.csv", "checksum", str)
differ = [s for s in one_thread if two_threads.get(s) != one_thread[s]]
if differ:
    sys.exit(f"MXU checksums differ between 1 and 2 threads for {', '.join(differ)}: results depend on the thread count")
PY
rm -rf "$out"
exit $status
