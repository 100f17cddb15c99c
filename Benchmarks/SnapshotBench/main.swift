// Snapshot compression on real training states: trains a ResNet-18 (Adam) for N steps and, for
// the state after every step, reports raw versus stored bytes per tensor kind and overall for
// several methods, the codec's throughput, and the time to restore an arbitrary step. The
// upd-key* methods are update deltas (trace format 2): a keyframe every K snapshots, every
// other snapshot the step's gradients and batch statistics (whole state only: they have no
// per-kind parts). Then it writes real traces (format 1 XOR deltas, format 2 update deltas)
// and times appending each snapshot and restoring steps early, mid and late in the run.
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
guard steps >= 2 else { fail("--steps must be at least 2") }

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

// Training.
let data = try DatasetSource.parse(datasetSpec).load()
let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: scaleName), data: data, threads: threads)
var state = run.initialState()
let layout = try StateLayout(state, model: run.model, optimizer: run.config.optimizer)
var snapshots: [[Float]] = []
// Per step: what the trainer computed (the update delta's content) and its flat values in the
// order the trace stores them (gradients, then per batch-norm layer mean and variance).
var gradients: [Trainer.Gradients] = []
var updates: [[Float]] = []
let initialFlat = try layout.flatten(state)
let trainStart = now()
for _ in 0..<steps {
    let g = run.trainer.gradients(state, batches: run.batches(step: state.step))
    state = run.trainer.apply(g, to: state)
    snapshots.append(try layout.flatten(state))
    gradients.append(g)
    updates.append(g.gradients.flatMap { $0 } + g.statistics.flatMap { $0 })
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
// `updateKeyframes`: update deltas with a keyframe every that many snapshots.
struct Method {
    var name: String
    var shuffle: Bool
    var reference: (Int) -> Int?   // snapshot index -> reference snapshot index
    var updateKeyframes: Int? = nil
}
let methods: [Method] = [
    Method(name: "zstd-raw", shuffle: false, reference: { _ in nil }),
    Method(name: "shuffle-key", shuffle: true, reference: { _ in nil }),
    Method(name: "xor-prev", shuffle: true, reference: { $0 == 0 ? nil : $0 - 1 }),
    Method(name: "xor-key8", shuffle: true, reference: { KeyframePolicy(interval: 8).isKeyframe($0) ? nil : KeyframePolicy(interval: 8).keyframe(for: $0) }),
    Method(name: "xor-key16", shuffle: true, reference: { KeyframePolicy(interval: 16).isKeyframe($0) ? nil : KeyframePolicy(interval: 16).keyframe(for: $0) }),
    Method(name: "xor-key32", shuffle: true, reference: { KeyframePolicy(interval: 32).isKeyframe($0) ? nil : KeyframePolicy(interval: 32).keyframe(for: $0) }),
    Method(name: "upd-key8", shuffle: true, reference: { _ in nil }, updateKeyframes: 8),
    Method(name: "upd-key16", shuffle: true, reference: { _ in nil }, updateKeyframes: 16),
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
            if let k = method.updateKeyframes {
                // Whole state only (the per-kind cells stay 0 and print as "-").
                guard g == groups.count - 1 else { continue }
                stored[m][g][i] = KeyframePolicy(interval: k).isKeyframe(i)
                    ? try codec.encode(snapshots[i]).count
                    : try codec.encodeUpdate(updates[i], stateDigest: Digest.of(snapshots[i]), stateElements: layout.elementCount,
                                             referenceDigest: Digest.of(snapshots[i - 1])).count
                continue
            }
            let values = Array(snapshots[i][group.range])
            if method.name == "zstd-raw" {
                stored[m][g][i] = try Zstd.compress(StateLayout.littleEndianBytes(of: values), level: level).count
            } else {
                stored[m][g][i] = try codec.encode(values, reference: method.reference(i).map { Array(snapshots[$0][group.range]) }).count
            }
        }
    }
}

func ratio(_ raw: Int, _ s: Int) -> String { s == 0 ? "-" : String(format: "%.3f", Double(raw) / Double(s)) }
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
    for (m, method) in methods.enumerated() where stored[m][g].reduce(0, +) > 0 {
        summary.append("\(method.name),\(group.name),\(raw),\(stored[m][g].reduce(0, +)),\(ratio(raw, stored[m][g].reduce(0, +)))")
    }
}
// The update delta's payload alone, three ways: shuffle + zstd (what traces store), XOR with
// the previous step's update first, and no shuffle.
do {
    let c = SnapshotCodec(options: .init(level: level))
    var shuffled = 0, xorPrevious = 0, unshuffled = 0
    for i in 1..<steps {
        shuffled += try c.encodeUpdate(updates[i], stateDigest: Digest(value: 1), stateElements: layout.elementCount, referenceDigest: Digest(value: 1)).count
        xorPrevious += SnapshotHeader.size + (try Zstd.compress(try SnapshotCodec.transform(updates[i], reference: updates[i - 1]), level: level).count)
        unshuffled += SnapshotHeader.size + (try Zstd.compress(try SnapshotCodec.transform(updates[i], shuffle: false), level: level).count)
    }
    let n = Double(steps - 1), raw = Double(4 * updates[0].count)
    print(String(format: "\nUpdate delta blob per step (%d values = %.2f MB raw, %.1f %% of the state), mean over steps 2-%d:",
                 updates[0].count, raw / 1e6, 100 * Double(updates[0].count) / Double(layout.elementCount), steps))
    for (name, total) in [("shuffle + zstd (stored)", shuffled), ("XOR previous update + shuffle + zstd", xorPrevious), ("zstd, no shuffle", unshuffled)] {
        print(String(format: "  %-38@ %9.0f B  update %.3fx  state %.3fx", name as NSString, Double(total) / n, raw * n / Double(total),
                     Double(layout.byteCount) * n / Double(total)))
    }
}

if let path = csvPath {
    var rows = ["step,method,kind,raw_bytes,stored_bytes"]
    for (m, method) in methods.enumerated() {
        for (g, group) in groups.enumerated() where stored[m][g].reduce(0, +) > 0 {
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
// Encodes in reused buffers, as a trace writer does.
var buffers = EncodeBuffers()
print("  keyframe encode    " + mbps(try best { for s in snapshots { sink &+= try codec.encode(s, using: &buffers).count } }))
print("  keyframe decode    " + mbps(try best { for b in keyBlobs { sink &+= try codec.decode(b).count } }))
print("  xor-key16 encode   " + mbps(try best { for i in snapshots.indices { sink &+= try codec.encode(snapshots[i], reference: ref16(i), using: &buffers).count } }))
print("  xor-key16 decode   " + mbps(try best { for i in snapshots.indices { sink &+= try codec.decode(blobs16[i], reference: ref16(i)).count } }))
// The update delta a recording writes every step, with each of zstd's match finders (the
// small one is what traces use): throughput over the update's raw bytes, and stored bytes.
let updateMB = Double(4 * updates[0].count * (steps - 1)) / 1e6
for (name, finder) in [("update encode      ", Zstd.MatchFinder.small), ("  level's finder   ", .levels)] {
    let c = SnapshotCodec(options: .init(level: level, matchFinder: finder))
    var stored = 0
    let seconds = try best {
        stored = 0
        for i in 1..<steps {
            stored += try c.encodeUpdate(concatenationOf: [updates[i]], stateDigest: Digest(value: 1), stateElements: layout.elementCount,
                                         referenceDigest: Digest(value: 1), using: &buffers).count
        }
    }
    print("  " + name + String(format: "%8.0f MB/s  (update MB/s; %.4fx)", updateMB / seconds, updateMB * 1e6 / Double(stored)))
}

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


// Real traces: the recorder's writer and reader on these steps (the initial state first, as
// `tpufi record` writes it). Append time per snapshot (layout, digest, encode, write; no
// fsync, which the step record pays), stored bytes, and restore time of steps early, mid and
// late, keyframes and the worst case of an interval (the snapshot before a keyframe).
print("\nTraces (\(steps + 1) snapshots incl. the initial state; restore = TraceReader.snapshot(at:), median of 3)")
@MainActor func stateAfter(_ i: Int) throws -> TrainingState { try layout.state(from: snapshots[i], step: i + 1) }
for (name, version, interval) in [("xor-key16 (format 1)", 1, 16), ("update-key16", 2, 16), ("update-key8", 2, 8)] {
    let dir = NSTemporaryDirectory() + "tpufi-snapshotbench-\(ProcessInfo.processInfo.processIdentifier)-\(version)-\(interval)"
    try? FileManager.default.removeItem(atPath: dir)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var manifest = try TraceRecorder.manifest(run: run, dataset: datasetSpec, steps: steps, policy: .init(snapshotEvery: 1, keyframeEvery: interval))
    manifest.formatVersion = version
    if version < 3 { manifest.outputDigest = nil }  // formats 1-2 digested outputs element by element
    let writer = try TraceWriter(creating: dir, manifest: manifest)
    try writer.appendSnapshot(run.initialState())
    var appendTimes: [Double] = []
    for i in 0..<steps {
        let s = try stateAfter(i)
        let start = now()
        try writer.appendSnapshot(s, update: gradients[i])
        appendTimes.append(now() - start)
    }
    let reader = try TraceReader(directory: dir)
    let sizes = try reader.snapshotSizes()
    let raw = sizes.reduce(0) { $0 + $1.raw }, stored = sizes.reduce(0) { $0 + $1.stored }
    let deltas = sizes.filter { $0.kind != .keyframe }
    let sortedAppend = appendTimes.sorted()
    print(String(format: "  %@: raw/stored %.3fx (%.1f MB stored), delta frames %.0f B mean; append per step median %.1f ms (max %.1f ms)",
                 name, Double(raw) / Double(stored), Double(stored) / 1e6, Double(deltas.reduce(0) { $0 + $1.stored }) / Double(max(deltas.count, 1)),
                 sortedAppend[sortedAppend.count / 2] * 1e3, sortedAppend[sortedAppend.count - 1] * 1e3))
    let worst = Array(stride(from: interval - 1, through: steps, by: interval))
    let probe = Array(Set([worst.first, worst[worst.count / 2], worst.last, interval, steps].compactMap { $0 })).sorted()
    var line = "    restore ms:"
    for step in probe {
        var times: [Double] = []
        for _ in 0..<3 {
            let start = now()
            let restored = try reader.snapshot(at: step)
            times.append(now() - start)
            let expected = step == 0 ? initialFlat : snapshots[step - 1]
            guard try layout.flatten(restored) == expected else { fail("\(name): step \(step) restored wrong") }
        }
        line += String(format: "  step %d%@ %.1f", step, reader.isKeyframe(step: step) ? " (key)" : "", times.sorted()[1] * 1e3)
    }
    print(line)
}
