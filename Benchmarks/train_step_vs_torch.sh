#!/usr/bin/env bash
# One data-parallel ResNet-18 training step (the `resnet18` workload: the reference network,
# 8 replicas, per-replica batch norm, dropout, Adam) in tpufi next to PyTorch eager on the
# CPU, same network and batch, same thread count, in one run.
#   Benchmarks/train_step_vs_torch.sh [--threads T] [--scale small|tiny|paper] [--steps N]
# PyTorch comes from PyPI into a throwaway venv (TORCH_VENV, default /tmp/tpufi-torch-venv;
# the download is large); TORCH_VENV may also name an existing venv with torch installed
# (e.g. from a local CPU wheel): torch is all the PyTorch side needs. Its network comes from
# scripts/reference/resnet18_net.py, as the float64 correctness fixture's does. tpufi is
# built in release for TPUFI_TARGET_CPU (Package.swift; default native). tpufi's step
# simulates the TPU's bf16 MXU numerics in a fixed accumulation order; PyTorch runs plain fp32.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=2; SCALE=small; STEPS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    *) echo "usage: $0 [--threads T] [--scale small|tiny|paper] [--steps N]" >&2; exit 2 ;;
  esac
done
V=${TORCH_VENV:-/tmp/tpufi-torch-venv}
"$V/bin/python" -c 'import torch' 2>/dev/null || { python3 -m venv "$V"; "$V/bin/pip" install -q torch; }
swift build -c release --product TrainStepBench >&2
BIN="$(swift build -c release --show-bin-path)/TrainStepBench"
ours=$("$BIN" --threads "$THREADS" --scale "$SCALE" --steps "$STEPS")
theirs=$("$V/bin/python" Benchmarks/torch_train_step.py --threads "$THREADS" --scale "$SCALE" --steps "$STEPS")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import re, sys
med = [float(re.search(r"median ([0-9.]+)", s).group(1)) for s in sys.argv[1:]]
print(f"tpufi step / PyTorch step = {med[0] / med[1]:.2f} (below 1: tpufi faster)")
PY
