#!/usr/bin/env bash
# One data-parallel training step of a workload at a scale preset (8 replicas, per-replica
# batch norm, dropout, Adam; ResNet-18 unless --workload) in tpufi next to PyTorch eager on
# the CPU, same network and batch, same thread count, in one run; prints the ratio.
#   Benchmarks/train_step_vs_torch.sh [--workload resnet18|effnet|densenet|nfnet|transformer]
#                                     [--threads T] [--scale small|tiny|paper] [--steps N]
# PyTorch goes into a throwaway venv (TORCH_VENV, default /tmp/tpufi-torch-venv): from the
# local wheel TORCH_WHEEL when set (e.g. a CPU-only build), else from PyPI (large); numpy
# too. TORCH_VENV may also name an existing venv with torch and numpy installed. Its networks
# come from scripts/reference/*_net.py, as the float64 correctness fixtures' do
# (Benchmarks/torch_train_step.py). tpufi is built in release for TPUFI_TARGET_CPU
# (Package.swift; default native). tpufi's step simulates the TPU's bf16 MXU numerics in a
# fixed accumulation order; PyTorch runs plain fp32. With --threads 1 it also prints the ratio of
# CPU time per step, the steadier figure on a host shared with other work.
# --peer-isa avx2 keeps PyTorch to AVX2 (its ATen kernels, oneDNN and MKL), as it runs on a
# host without AVX-512; the default is avx2 when TPUFI_TARGET_CPU=haswell (tpufi built for
# such a host, measured on an AVX-512 one), else native (whatever the host has).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKLOAD=resnet18; THREADS=2; SCALE=small; STEPS=5
PEER_ISA=$([ "${TPUFI_TARGET_CPU:-native}" = haswell ] && echo avx2 || echo native)
while [ $# -gt 0 ]; do
  case "$1" in
    --workload) WORKLOAD=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --peer-isa) PEER_ISA=$2; shift 2 ;;
    *) echo "usage: $0 [--workload W] [--threads T] [--scale small|tiny|paper] [--steps N] [--peer-isa native|avx2]" >&2; exit 2 ;;
  esac
done
case "$PEER_ISA" in
  native) PEER_ENV=() ;;
  avx2) PEER_ENV=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2) ;;
  *) echo "$0: --peer-isa is '$PEER_ISA'; expected native or avx2" >&2; exit 2 ;;
esac
V=${TORCH_VENV:-/tmp/tpufi-torch-venv}
if ! "$V/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  python3 -m venv "$V"
  "$V/bin/pip" install -q "${TORCH_WHEEL:-torch}" numpy
fi
swift build -c release --product TrainStepBench >&2
BIN="$(swift build -c release --show-bin-path)/TrainStepBench"
ours=$("$BIN" --workload "$WORKLOAD" --threads "$THREADS" --scale "$SCALE" --steps "$STEPS")
theirs=$(env "${PEER_ENV[@]}" "$V/bin/python" Benchmarks/torch_train_step.py --workload "$WORKLOAD" --threads "$THREADS" --scale "$SCALE" --steps "$STEPS")
Benchmarks/host_line.sh
echo "peer: PyTorch with $( [ "$PEER_ISA" = avx2 ] && echo 'AVX2 only (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2)' || echo 'every instruction set the host has')"
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" "$THREADS" <<'PY'
import re, sys
ours, theirs, threads = sys.argv[1:]
def get(key, s):
    return float(re.search(key + r" ([0-9.]+)", s).group(1))
print(f"tpufi step / PyTorch step = {get('step median', ours) / get('step median', theirs):.2f} (below 1: tpufi faster)")
if threads == "1":  # with more threads CPU time also counts PyTorch's spinning OpenMP threads
    print(f"CPU time per step, tpufi / PyTorch = {get('cpu median', ours) / get('cpu median', theirs):.2f}")
PY
