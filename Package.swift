// swift-tools-version: 6.0
import PackageDescription
import Foundation

// The numeric kernels need the host's vector instructions: Swift's default x86-64 target is
// baseline SSE2, on which a SIMD fused multiply-add becomes a library call per lane. Every FMA
// in the simulator is explicit (`addingProduct`) and correctly rounded on every target, so the
// choice of CPU changes speed, never bits. `TPUFI_TARGET_CPU=generic` builds a portable binary;
// any other value (e.g. `haswell`, `skylake-avx512`) is passed to `-target-cpu` as is.
let targetCPU = ProcessInfo.processInfo.environment["TPUFI_TARGET_CPU"] ?? "native"
let kernelFlags: [SwiftSetting] = targetCPU == "generic" ? [] : [.unsafeFlags(["-target-cpu", targetCPU])]

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
        .target(name: "Sim", dependencies: ["CZlib"], swiftSettings: kernelFlags),
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
