#!/usr/bin/env python3
"""Runs SCALE-Sim 3.0 and `tpufi simulate` on the same topologies and arrays and prints
compute cycles per layer side by side, with ratios, plus the wall time of each tool.

Usage (from the repository root; scalesim_compare.sh makes the venv and builds tpufi):
  python scalesim_compare.py --tpufi .build/release/tpufi [--set default|quick|all] [--out DIR]

Two columns per layer:
  compat = tpufi --timing scalesim (serialised passes, as SCALE-Sim models them);
           SCALE-Sim's "Total Cycles" counts the last cycle's index, ours one more.
  tpu    = tpufi --timing tpu: double-buffered stationary tiles, passes stream back to
           back (the TPU's behaviour); deliberately fewer cycles than SCALE-Sim.
"""
import argparse, csv, json, os, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
TOPO = os.path.join(HERE, "scalesim")
CFG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    1024
FilterSramSzkB:   1024
OfmapSramSzkB:    512
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : {df}
Bandwidth : 10
ReadRequestBuffer: 128
WriteRequestBuffer: 128

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

SETS = {
    "quick": [("gemms", a, d) for a in (8, 32, 128) for d in ("ws", "os", "is")],
}
SETS["default"] = SETS["quick"] + [("narrow", a, d) for a in (32, 128) for d in ("ws", "os", "is")] \
    + [("cifar", 128, "ws")]
SETS["all"] = [(w, a, d) for w in ("gemms", "narrow", "cifar") for a in (8, 32, 128) for d in ("ws", "os", "is")]
FILES = {"gemms": ("gemms.csv", "gemm"), "narrow": ("resnet18_narrow_mnist.csv", "conv"),
         "cifar": ("resnet18_cifar.csv", "conv")}


def run_scalesim(workdir, topo, kind, rows, df):
    name = f"run_{rows}_{df}"
    cfg = os.path.join(workdir, name + ".cfg")
    with open(cfg, "w") as f:
        f.write(CFG.format(name=name, rows=rows, cols=rows, df=df))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scalesim.scale", "-c", cfg, "-t", topo,
                    "-l", os.path.join(TOPO, "empty_layout.csv"), "-p", workdir, "-i", kind, "-s", "N"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, name, "COMPUTE_REPORT.csv")) as f:
        rows_ = [r for r in csv.reader(f, skipinitialspace=True)][1:]
    return [int(r[2]) for r in rows_ if r], wall, cfg


def run_tpufi(tpufi, topo, cfg, mode):
    start = time.perf_counter()
    out = subprocess.run([tpufi, "simulate", "--topology", topo, "--config", cfg, "--timing", mode, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tpufi", required=True)
    ap.add_argument("--set", choices=sorted(SETS), default="default")
    ap.add_argument("--out", help="also write every row as CSV here")
    args = ap.parse_args()
    table = []
    worst = 0.0
    speed = []
    for workload, rows, df in SETS[args.set]:
        fname, kind = FILES[workload]
        topo = os.path.join(TOPO, fname)
        with tempfile.TemporaryDirectory() as wd:
            ss, ss_wall, cfg = run_scalesim(wd, topo, kind, rows, df)
            compat, compat_wall = run_tpufi(args.tpufi, topo, cfg, "scalesim")
            tpu, _ = run_tpufi(args.tpufi, topo, cfg, "tpu")
        print(f"\n== {workload} on {rows}x{rows}, {df}  (SCALE-Sim {ss_wall:.1f} s, tpufi {compat_wall:.3f} s: "
              f"{ss_wall / compat_wall:.0f}x faster)")
        print(f"{'layer':<16}{'SCALE-Sim':>11}{'compat':>11}{'ratio':>8}{'tpu':>11}{'ratio':>8}")
        for s, c, t in zip(ss, compat["layers"], tpu["layers"]):
            r_c, r_t = c["computeCycles"] / s, t["computeCycles"] / s
            worst = max(worst, abs(r_c - 1))
            print(f"{c['name']:<16}{s:>11}{c['computeCycles']:>11}{r_c:>8.4f}{t['computeCycles']:>11}{r_t:>8.3f}")
            table.append([workload, f"{rows}x{rows}", df, c["name"], s, c["computeCycles"], f"{r_c:.5f}",
                          t["computeCycles"], f"{r_t:.4f}"])
        if len(ss) != len(compat["layers"]):
            sys.exit(f"layer count differs: SCALE-Sim {len(ss)}, tpufi {len(compat['layers'])}")
        tot_s = sum(ss)
        print(f"{'total':<16}{tot_s:>11}{compat['totalCycles']:>11}{compat['totalCycles'] / tot_s:>8.4f}"
              f"{tpu['totalCycles']:>11}{tpu['totalCycles'] / tot_s:>8.3f}")
        speed.append((workload, rows, df, ss_wall, compat_wall))
    print(f"\nlayers compared: {len(table)}; largest |compat/SCALE-Sim - 1|: {100 * worst:.3f} %")
    for w, r, d, s, t in speed:
        if w in ("cifar", "narrow"):
            print(f"timing-model speed, ResNet-18 {w} {r}x{r} {d}: SCALE-Sim {s:.1f} s vs tpufi {t:.3f} s "
                  f"(whole process) = {s / t:.0f}x")
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["workload", "array", "dataflow", "layer", "scalesim_cycles", "compat_cycles",
                        "compat_ratio", "tpu_cycles", "tpu_ratio"])
            w.writerows(table)


if __name__ == "__main__":
    main()
