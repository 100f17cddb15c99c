#!/usr/bin/env bash
# Snapshot compression, ours (SnapshotCodec) next to Blosc2 (shuffle + zstd, typesize 4) on the
# same training states, in one run.
#   Benchmarks/snapshot_vs_blosc2.sh [--dataset SPEC] [--scale S] [--steps N] [--threads T] [--level L]
# Defaults: Fashion-MNIST, small ResNet-18 (Adam), 64 steps, 2 threads, zstd level 1 / Blosc2
# clevel 1 (Blosc2 maps clevel 1 to zstd level 1). Blosc2 and numpy come from PyPI into a
# throwaway venv (BLOSC2_VENV, default /tmp/tpufi-blosc2-venv). The states are dumped to a
# temporary directory (about 8.4 MB per step for the small scale), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=fashion-mnist; SCALE=small; STEPS=64; THREADS=2; LEVEL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) DATASET=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --level) LEVEL=$2; shift 2 ;;
    *) echo "usage: $0 [--dataset SPEC] [--scale S] [--steps N] [--threads T] [--level L]" >&2; exit 2 ;;
  esac
done
V=${BLOSC2_VENV:-/tmp/tpufi-blosc2-venv}
"$V/bin/python" -c 'import blosc2, numpy' 2>/dev/null || { python3 -m venv "$V"; "$V/bin/pip" install -q blosc2 numpy; }
DIR=$(mktemp -d /tmp/tpufi-snapshots.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
swift build -c release --product SnapshotBench >&2
BIN="$(swift build -c release --show-bin-path)/SnapshotBench"
"$BIN" --dataset "$DATASET" --scale "$SCALE" --steps "$STEPS" --threads "$THREADS" --level "$LEVEL" --dump "$DIR"
"$V/bin/python" Benchmarks/snapshot_vs_blosc2.py "$DIR" --clevel "$LEVEL" --nthreads 1
