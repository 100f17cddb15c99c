#!/usr/bin/env bash
# The main job on the default workload: record a golden run of ResNet-18 (small scale,
# Fashion-MNIST, 8 simulated replicas, one epoch) and inspect it. Installs what is missing
# first. Idempotent: a finished trace is only inspected, an interrupted one is resumed.
# The same for any workload: scripts/record_golden.sh WORKLOAD.
#   scripts/main.sh [extra tpufi record flags]
set -euo pipefail
exec "$(dirname "$0")/record_golden.sh" resnet18 "$@"
