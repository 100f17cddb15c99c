// Snapshot compression on real training states: trains a ResNet-18 (Adam) for N steps and, for
// the state after every step, reports raw versus stored bytes per tensor kind and overall for
// several methods, the codec's throughput, and the time to restore an arbitrary step.
//   swift run -c release SnapshotBench [--dataset SPEC] [--scale small|tiny|paper] [--steps N]
//       [--threads T] [--level L] [--csv PATH] [--dump DIR]
// --dump writes DIR/layout.csv (name,kind,offset,count), DIR/step_<t>.f32 (the raw
// little-endian state after step t) and DIR/ours.csv (the summary below) for
// Benchmarks/snapshot_vs_blosc2.py. Snapshots are the states after steps 1...N (the initial
// state, with all-zero Adam moments, is left out: it would flatter every method).
import Dispatch
import Foundation
import Recorder
import Sim

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

var datasetSpec = "fashion-mnist", scaleName = "small", steps = 64, threads = 2, level: Int32 = 1
var csvPath: String? = nil, dumpDir: String? = nil
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--dataset": datasetSpec = args.next() ?? datasetSpec
    case "--scale": scaleName = args.next() ?? scaleName
    case "--steps": steps = Int(args.next() ?? "") ?? steps
    case "--threads": threads = Int(args.next() ?? "") ?? threads
    case "--level": level = Int32(args.next() ?? "") ?? level
    case "--csv": csvPath = args.next()
    case "--dump": dumpDir = args.next()
    default: fail("unknown argument \(a)\nusage: SnapshotBench [--dataset SPEC] [--scale S] [--steps N] [--threads T] [--level L] [--csv PATH] [--dump DIR]")
    }
}
guard let scale = ResNetScale.named(scaleName) else { fail("unknown scale \(scaleName)") }
guard steps >= 2 else { fail("--steps must be at least 2") }

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

// Training.
let data = try DatasetSource.parse(datasetSpec).load()
let run = try TrainingRun(config: TrainingConfig(workload: .resnet18, scale: scale), data: data, threads: threads)
var state = run.initialState()
let layout = try StateLayout(state, model: run.model, optimizer: run.config.optimizer)
var snapshots: [[Float]] = []
let trainStart = now()
for _ in 0..<steps {
    state = run.step(state).0
    snapshots.append(try layout.flatten(state))
}
let trainSeconds = now() - trainStart
print(String(format: "ResNet-18 %@ on %@: %d steps in %.1f s; state %d values = %.2f MB (%d tensors), zstd level %d",
             scaleName, data.train.name, steps, trainSeconds, layout.elementCount, Double(layout.byteCount) / 1e6, layout.tensors.count, level))

if let dir = dumpDir {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let rows = layout.tensors.map { "\($0.name),\($0.kind),\($0.offset),\($0.count)" }
    try (["name,kind,offset,count"] + rows).joined(separator: "\n").appending("\n").write(toFile: dir + "/layout.csv", atomically: true, encoding: .utf8)
    for (i, s) in snapshots.enumerated() {
        try Data(StateLayout.littleEndianBytes(of: s)).write(to: URL(fileURLWithPath: "\(dir)/step_\(i + 1).f32"))
    }
}

// Methods: which reference each snapshot is stored against, and whether bytes are shuffled.
struct Method {
    var name: String
    var shuffle: Bool
    var reference: (Int) -> Int?   // snapshot index -> reference snapshot index
}
let methods: [Method] = [
    Method(name: "zstd-raw", shuffle: false, reference: { _ in nil }),
    Method(name: "shuffle-key", shuffle: true, reference: { _ in nil }),
    Method(name: "xor-prev", shuffle: true, reference: { $0 == 0 ? nil : $0 - 1 }),
    Method(name: "xor-key8", shuffle: true, reference: { KeyframePolicy(interval: 8).isKeyframe($0) ? nil : KeyframePolicy(interval: 8).keyframe(for: $0) }),
    Method(name: "xor-key16", shuffle: true, reference: { KeyframePolicy(interval: 16).isKeyframe($0) ? nil : KeyframePolicy(interval: 16).keyframe(for: $0) }),
    Method(name: "xor-key32", shuffle: true, reference: { KeyframePolicy(interval: 32).isKeyframe($0) ? nil : KeyframePolicy(interval: 32).keyframe(for: $0) }),
]
// Kind groups: each kind's contiguous range, then the whole state as one blob.
let groups: [(name: String, range: Range<Int>)] = layout.kindRanges.map { ($0.kind.description, $0.range) } + [("overall", 0..<layout.elementCount)]

// stored[method][group][snapshot] in bytes (blob including its 40-byte header; zstd-raw is a
// bare zstd frame of the raw bytes).
var stored = [[[Int]]](repeating: [[Int]](repeating: [Int](repeating: 0, count: steps), count: groups.count), count: methods.count)
for (m, method) in methods.enumerated() {
    let codec = SnapshotCodec(options: .init(shuffle: method.shuffle, level: level))
    for (g, group) in groups.enumerated() {
        for i in 0..<steps {
            let values = Array(snapshots[i][group.range])
            if method.name == "zstd-raw" {
                stored[m][g][i] = try Zstd.compress(StateLayout.littleEndianBytes(of: values), level: level).count
            } else {
                stored[m][g][i] = try codec.encode(values, reference: method.reference(i).map { Array(snapshots[$0][group.range]) }).count
            }
        }
    }
}

func ratio(_ raw: Int, _ s: Int) -> String { String(format: "%.3f", Double(raw) / Double(s)) }
func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }

print("\nPer step, whole state: raw/stored (raw \(layout.byteCount) B)")
print(pad("step", 5) + methods.map { pad($0.name, 12) }.joined())
for i in 0..<steps {
    print(pad("\(i + 1)", 5) + methods.indices.map { pad(ratio(layout.byteCount, stored[$0][groups.count - 1][i]), 12) }.joined())
}

print("\nAll \(steps) snapshots: raw/stored per kind (sum raw / sum stored)")
print(pad("kind", 14) + pad("raw MB", 9) + methods.map { pad($0.name, 12) }.joined())
var summary = ["method,kind,raw_bytes,stored_bytes,ratio"]
for (g, group) in groups.enumerated() {
    let raw = 4 * group.range.count * steps
    print(pad(group.name, 14) + pad(String(format: "%.1f", Double(raw) / 1e6), 9)
          + methods.indices.map { pad(ratio(raw, stored[$0][g].reduce(0, +)), 12) }.joined())
    for (m, method) in methods.enumerated() {
        summary.append("\(method.name),\(group.name),\(raw),\(stored[m][g].reduce(0, +)),\(ratio(raw, stored[m][g].reduce(0, +)))")
    }
}
if let path = csvPath {
    var rows = ["step,method,kind,raw_bytes,stored_bytes"]
    for (m, method) in methods.enumerated() {
        for (g, group) in groups.enumerated() {
            for i in 0..<steps { rows.append("\(i + 1),\(method.name),\(group.name),\(4 * group.range.count),\(stored[m][g][i])") }
        }
    }
    try rows.joined(separator: "\n").appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
}
if let dir = dumpDir {
    try summary.joined(separator: "\n").appending("\n").write(toFile: dir + "/ours.csv", atomically: true, encoding: .utf8)
}

// Throughput on the whole state (single thread), best of 3 passes over all snapshots.
func best(_ body: () throws -> Void) rethrows -> Double {
    var t = Double.infinity
    for _ in 0..<3 {
        let start = now()
        try body()
        t = min(t, now() - start)
    }
    return t
}
let totalMB = Double(layout.byteCount * steps) / 1e6
@MainActor func mbps(_ seconds: Double) -> String { String(format: "%8.0f MB/s", totalMB / seconds) }
let codec = SnapshotCodec(options: .init(level: level))
let policy = KeyframePolicy(interval: 16)
@MainActor func ref16(_ i: Int) -> [Float]? { policy.isKeyframe(i) ? nil : snapshots[policy.keyframe(for: i)] }
var sink = 0
print("\nThroughput, whole state, one thread (raw MB per second)")
print("  shuffle            " + mbps(try best { for s in snapshots { sink &+= try SnapshotCodec.transform(s).count } }))
let shuffledAll = try snapshots.map { try SnapshotCodec.transform($0) }
print("  unshuffle          " + mbps(try best { for b in shuffledAll { sink &+= try SnapshotCodec.inverseTransform(b).count } }))
print("  xor+shuffle        " + mbps(try best { for i in 1..<steps { sink &+= try SnapshotCodec.transform(snapshots[i], reference: snapshots[0]).count } } * Double(steps) / Double(steps - 1)))
print("  digest             " + mbps(best { for s in snapshots { sink &+= Int(truncatingIfNeeded: Digest.of(s).value) } }))
print("  zstd-raw encode    " + mbps(try best { for s in snapshots { sink &+= try Zstd.compress(StateLayout.littleEndianBytes(of: s), level: level).count } }))
let keyBlobs = try snapshots.map { try codec.encode($0) }
let blobs16 = try snapshots.indices.map { try codec.encode(snapshots[$0], reference: ref16($0)) }
print("  keyframe encode    " + mbps(try best { for s in snapshots { sink &+= try codec.encode(s).count } }))
print("  keyframe decode    " + mbps(try best { for b in keyBlobs { sink &+= try codec.decode(b).count } }))
print("  xor-key16 encode   " + mbps(try best { for i in snapshots.indices { sink &+= try codec.encode(snapshots[i], reference: ref16(i)).count } }))
print("  xor-key16 decode   " + mbps(try best { for i in snapshots.indices { sink &+= try codec.decode(blobs16[i], reference: ref16(i)).count } }))

// Restore: step t's state from blobs alone. Keyframe policy: decode the keyframe, then at most
// one delta. Chain (xor-prev with one keyframe at the start): every delta up to t.
let prevBlobs = try snapshots.indices.map { try codec.encode(snapshots[$0], reference: $0 == 0 ? nil : snapshots[$0 - 1]) }
@MainActor func restore16(_ i: Int) throws -> TrainingState {
    let key = try codec.decode(blobs16[policy.keyframe(for: i)])
    let values = policy.isKeyframe(i) ? key : try codec.decode(blobs16[i], reference: key)
    return try layout.state(from: values, step: i + 1)
}
@MainActor func restoreChain(_ i: Int) throws -> TrainingState {
    var values = try codec.decode(prevBlobs[0])
    for j in stride(from: 1, through: i, by: 1) { values = try codec.decode(prevBlobs[j], reference: values) }
    return try layout.state(from: values, step: i + 1)
}
print("\nRestore one step's TrainingState from its blobs (median of 5, ms)")
for i in [0, min(steps / 2 + 3, steps - 1), steps - 1] {   // a keyframe, then deltas
    var t16: [Double] = [], tChain: [Double] = []
    for _ in 0..<5 {
        var start = now()
        let a = try restore16(i)
        t16.append(now() - start)
        start = now()
        let b = try restoreChain(i)
        tChain.append(now() - start)
        guard a.digest == state.digest || i != steps - 1, a == b else { fail("restored states differ at step \(i + 1)") }
    }
    print(String(format: "  step %3d: keyframe-every-16 %7.2f ms   xor-prev chain %8.2f ms", i + 1, t16.sorted()[2] * 1e3, tChain.sorted()[2] * 1e3))
}
if sink == 42 { print("") }   // keeps the timed work observable
