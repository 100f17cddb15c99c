#!/usr/bin/env python3
"""fp32 GEMM throughput of numpy (OpenBLAS) on the shapes MXUBench uses; CSV on stdout.
   python numpy_sgemm.py --shapes 512x512x512,... [--seconds S]   (threads: OPENBLAS_NUM_THREADS)"""
import argparse, os, time
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--shapes", required=True)
ap.add_argument("--seconds", type=float, default=0.5)
args = ap.parse_args()
rng = np.random.default_rng(0)
threads = os.environ.get("OPENBLAS_NUM_THREADS", "?")
print("shape,threads,gflops")
for s in args.shapes.split(","):
    m, k, n = map(int, s.split("x"))
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a @ b
    calls, start = 0, time.perf_counter()
    while True:
        a @ b
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= args.seconds:
            break
    print(f"{s},{threads},{2 * m * k * n * calls / elapsed / 1e9:.2f}")
