// Functional-MXU throughput, printed as CSV for Benchmarks/mxu_vs_numpy.sh to pair with
// numpy/OpenBLAS on the same shapes.
//   swift run -c release MXUBench [--threads 1,2] [--shapes MxKxN,...] [--seconds S] [--fp32] [--kernel-rate]
// --kernel-rate first prints the main micro-kernel's rate on packed operands in cache, the
// ceiling a whole product is measured against.
import Dispatch
import Foundation
import Sim

var threadCounts = [1, 2]
var shapes: [GEMMShape] = [
    GEMMShape(m: 512, k: 512, n: 512),
    // ResNet-18 convolutions lowered by im2col (M = batch x output pixels, K = 3x3 x Cin, N = Cout):
    GEMMShape(m: 32 * 28 * 28, k: 9 * 16, n: 16),     // small scale, stage 1
    GEMMShape(m: 32 * 7 * 7, k: 9 * 64, n: 128),      // small scale, stage 4
    GEMMShape(m: 128 * 32 * 32, k: 9 * 64, n: 64),    // paper scale, stage 1
    GEMMShape(m: 128 * 8 * 8, k: 9 * 256, n: 256),    // paper scale, stage 3
    GEMMShape(m: 128 * 4 * 4, k: 9 * 512, n: 512),    // paper scale, stage 4
]
var minSeconds = 0.5
var precision = OperandPrecision.bfloat16
var kernelRate = false

var args = CommandLine.arguments.dropFirst().makeIterator()
while let arg = args.next() {
    switch arg {
    case "--threads": threadCounts = (args.next() ?? "1").split(separator: ",").compactMap { Int($0) }
    case "--seconds": minSeconds = Double(args.next() ?? "") ?? minSeconds
    case "--fp32": precision = .float32
    case "--kernel-rate": kernelRate = true
    case "--shapes":
        shapes = (args.next() ?? "").split(separator: ",").compactMap { s in
            let d = s.split(separator: "x").compactMap { Int($0) }
            return d.count == 3 ? GEMMShape(m: d[0], k: d[1], n: d[2]) : nil
        }
    default:
        FileHandle.standardError.write("unknown argument \(arg)\n".data(using: .utf8)!)
        exit(2)
    }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
/// CPU seconds of the whole process: on a shared machine, throughput per CPU second is less
/// disturbed by other programs than throughput per wall-clock second.
func cpuTime() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

print("# \(MXU.kernelsDescription)")
if kernelRate {
    let (tile, gflops) = MXU.microKernelRate(seconds: minSeconds)
    print("# \(tile) micro-kernel alone, operands packed and in cache, one thread: \(String(format: "%.1f", gflops)) GFLOP/s")
}
print("shape,threads,precision,gflops,seconds_per_call,checksum,cpu_gflops_per_thread")
for shape in shapes {
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> Float {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: seed >> 11) % 2000) / 1000 - 1
    }
    let a = (0..<(shape.m * shape.k)).map { _ in next() }
    let b = (0..<(shape.k * shape.n)).map { _ in next() }
    var reference: [Float]? = nil
    for t in threadCounts {
        let mxu = MXU(config: .tpuV3, precision: precision, threads: t)
        var c = try mxu.multiply(a, b, shape: shape)     // warm-up
        if let r = reference, r != c { print("# MISMATCH between thread counts for \(shape)") }
        reference = c
        var calls = 0
        let start = now(), cpuStart = cpuTime()
        var elapsed = 0.0
        repeat {
            c = try mxu.multiply(a, b, shape: shape)
            calls += 1
            elapsed = now() - start
        } while elapsed < minSeconds
        let perCall = elapsed / Double(calls)
        let cpuPerCall = (cpuTime() - cpuStart) / Double(calls)
        let checksum = c.reduce(0) { $0 &+ UInt64($1.bitPattern) }
        print("\(shape.m)x\(shape.k)x\(shape.n),\(t),\(precision.rawValue),\(String(format: "%.2f", 2 * Double(shape.macs) / perCall / 1e9)),\(String(format: "%.6f", perCall)),\(checksum),\(String(format: "%.2f", 2 * Double(shape.macs) / cpuPerCall / 1e9))")
    }
}
