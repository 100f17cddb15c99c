#!/usr/bin/env bash
# Recording overhead: whole-process `tpufi record` against `tpufi train` of the same run,
# in alternating rounds (train, record[, record with a second build]) so that a host whose
# speed drifts meets every command alike. Prints each run and the medians [ranges] of
# record/train CPU (user + system) and wall time, and, with --baseline, record/record of the
# two builds paired round by round.
#
#   Benchmarks/record_overhead.sh [--rounds N] [--steps S] [--threads T] [--scale S]
#                                 [--baseline PATH_TO_OTHER_TPUFI]
#
# Defaults: 6 rounds of 100 steps of the `small` ResNet-18 on Fashion-MNIST, 2 threads.
# Whole-process medians resolve little below a few per cent on a noisy host; `perf record`
# of the writer's thread says where a recording's own time goes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
rounds=6 steps=100 threads=2 scale=small baseline=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--steps S] [--threads T] [--scale S] [--baseline PATH]" >&2; exit 2 ;;
  esac
done
if [ -n "$baseline" ] && [ ! -x "$baseline" ]; then echo "$0: --baseline $baseline is not an executable" >&2; exit 2; fi
swift build -c release --product tpufi >&2
tpufi="$(swift build -c release --show-bin-path)/tpufi"
work=$(mktemp -d /tmp/tpufi-record-overhead-XXXXXX)
trap 'rm -rf "$work"' EXIT
Benchmarks/host_line.sh
echo "runs: $rounds rounds of train, record${baseline:+, record with $baseline}; --scale $scale --dataset fashion-mnist --steps $steps --threads $threads"
python3 - "$work" "$rounds" "$tpufi" "$baseline" "$scale" "$steps" "$threads" <<'PY'
import os, shutil, statistics, subprocess, sys, time
work, rounds, tpufi, baseline, scale, steps, threads = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
common = ["--scale", scale, "--dataset", "fashion-mnist", "--steps", steps, "--threads", threads]

def run(argv):
    """Wall and CPU (user + system) seconds of one whole process."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)} exited {code}:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime

def record(binary, name):
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    r = run([binary, "record", *common, "--out", out])
    shutil.rmtree(out)
    return r

kinds = ["train", "record"] + (["baseline"] if baseline else [])
runs = {k: [] for k in kinds}
for i in range(rounds):
    runs["train"].append(run([tpufi, "train", *common]))
    runs["record"].append(record(tpufi, "trace"))
    if baseline:
        runs["baseline"].append(record(baseline, "baseline-trace"))
    print(f"round {i + 1}: " + ", ".join(f"{k} {runs[k][-1][0]:.2f} s wall {runs[k][-1][1]:.2f} s cpu" for k in kinds), flush=True)

def summary(label, a, b):
    for what, j in (("cpu", 1), ("wall", 0)):
        r = [x[j] / y[j] for x, y in zip(a, b)]
        print(f"{label} {what:>4}: median {statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}]")
summary("record/train", runs["record"], runs["train"])
if baseline:
    summary("baseline record/train", runs["baseline"], runs["train"])
    summary("record/baseline record", runs["record"], runs["baseline"])
PY
