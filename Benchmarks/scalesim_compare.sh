#!/usr/bin/env bash
# Cycle counts of tpufi's timing model next to SCALE-Sim 3.0 on the same topologies and arrays.
#   Benchmarks/scalesim_compare.sh [--set quick|default|all] [--out FILE.csv]
# Installs SCALE-Sim into a throwaway venv (SCALESIM_VENV, default /tmp/tpufi-scalesim-venv;
# SCALE-Sim 3.0.0 needs numpy < 2.3) and builds tpufi in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."
V=${SCALESIM_VENV:-/tmp/tpufi-scalesim-venv}
if ! "$V/bin/python" -c 'import scalesim' 2>/dev/null; then
  python3 -m venv "$V"
  "$V/bin/pip" install -q 'numpy<2.3' scalesim
fi
swift build -c release --product tpufi >&2
exec "$V/bin/python" Benchmarks/scalesim_compare.py --tpufi "$(swift build -c release --show-bin-path)/tpufi" "$@"
