#!/usr/bin/env bash
# Prints which kind of host a benchmark measured: the CPU model, its cores, whether it has
# AVX-512, and the target CPU tpufi is built for (Package.swift: TPUFI_TARGET_CPU, default
# native). The benchmark binaries print the micro-kernel family that build got.
model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then avx512=yes; else avx512=no; fi
echo "host: ${model:-unknown CPU}, $(nproc) cores, AVX-512: $avx512; tpufi built for TPUFI_TARGET_CPU=${TPUFI_TARGET_CPU:-native}"
