// swift-tools-version: 6.0
import PackageDescription
import Foundation

// The numeric kernels need the host's vector instructions: Swift's default x86-64 target is
// baseline SSE2, on which a SIMD fused multiply-add becomes a library call per lane. Every FMA
// in the simulator is explicit (`addingProduct`) and correctly rounded on every target, so the
// choice of CPU changes speed, never bits. `TPUFI_TARGET_CPU=generic` builds a portable binary;
// any other value (e.g. `haswell`, `skylake-avx512`) is passed to `-target-cpu` as is.
let targetCPU = ProcessInfo.processInfo.environment["TPUFI_TARGET_CPU"] ?? "native"

// The MXU's micro-kernels come in two families (Sources/Sim/Hardware/MXUKernel.swift): 16-lane
// ones sized for AVX-512's 32 vector registers, 8-lane ones for AVX2's 16 (and any other
// target). `TPUFI_AVX512` picks the former when the target CPU has AVX-512: for `native`, the
// build host's (Linux: /proc/cpuinfo; macOS: sysctl); else by LLVM CPU name. Speed only: both
// families give the same bits.
let avx512CPUs: Set<String> = [
    "knl", "knm", "skylake-avx512", "skx", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
    "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids",
    "graniterapids-d", "diamondrapids", "znver4", "znver5", "x86-64-v4",
]
func hostHasAVX512() -> Bool {
    #if os(Linux)
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    return info.split(separator: "\n").contains { $0.hasPrefix("flags") && $0.split(separator: " ").contains("avx512f") }
    #elseif arch(x86_64) && canImport(Darwin)
    var value: Int32 = 0
    var size = MemoryLayout<Int32>.size
    return sysctlbyname("hw.optional.avx512f", &value, &size, nil, 0) == 0 && value != 0
    #else
    return false
    #endif
}
let targetHasAVX512 = targetCPU == "native" ? hostHasAVX512() : avx512CPUs.contains(targetCPU)
let kernelFlags: [SwiftSetting] = (targetCPU == "generic" ? [] : [.unsafeFlags(["-target-cpu", targetCPU])])
    + (targetHasAVX512 ? [.define("TPUFI_AVX512")] : [])

let package = Package(
    name: "tpufi",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "tpufi", targets: ["tpufi"]),
        .library(name: "Sim", targets: ["Sim"]),
        .library(name: "Recorder", targets: ["Recorder"]),
        .library(name: "Replayer", targets: ["Replayer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CHostMemory"),
        .target(name: "Sim", dependencies: ["CZlib", "CHostMemory"], swiftSettings: kernelFlags),
        .target(name: "Recorder", dependencies: ["Sim", "CZstd"]),
        .target(name: "Replayer", dependencies: ["Sim", "Recorder"]),
        .executableTarget(
            name: "tpufi",
            dependencies: ["Sim", "Recorder", "Replayer",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "MXUBench", dependencies: ["Sim"], path: "Benchmarks/MXUBench",
                          swiftSettings: kernelFlags),
        .executableTarget(name: "DataBench", dependencies: ["Sim"], path: "Benchmarks/DataBench"),
        .executableTarget(name: "TrainStepBench", dependencies: ["Sim"], path: "Benchmarks/TrainStepBench"),
        .executableTarget(name: "SnapshotBench", dependencies: ["Sim", "Recorder"], path: "Benchmarks/SnapshotBench"),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SimTests", dependencies: ["Sim", "CZlib", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "RecorderTests", dependencies: ["Recorder", "Sim", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["tpufi", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ReplayerTests", dependencies: ["Replayer", "Sim", "TestSupport"], exclude: ["Fixtures"]),
    ]
)
