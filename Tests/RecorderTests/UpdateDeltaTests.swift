import Foundation
import Testing
@testable import Recorder
import Sim

/// Update deltas: snapshots stored as the step's gradients and batch statistics, restored by
/// re-applying them (trace format 2), next to the XOR deltas of format 1.
@Suite(.serialized) struct UpdateDeltaTests {
    static let dataset = "synthetic:train=64,test=16,shape=16x16x1"
    static let policy = TraceRecorder.Policy(snapshotEvery: 1, keyframeEvery: 4)

    static func run(_ optimizer: OptimizerConfig) throws -> TrainingRun {
        var config = try TrainingConfig(workload: "resnet18", scale: "tiny", optimizer: optimizer.kind, replicas: 2)
        config.optimizer = optimizer
        return try TrainingRun(config: config, data: try DatasetSource.parse(dataset).load())
    }

    /// Records `steps` steps of `run` into a fresh directory, in trace format `version` (1
    /// writes the previous format's XOR deltas: the code path old traces were made by).
    static func record(_ run: TrainingRun, steps: Int, version: Int = TraceManifest.currentFormatVersion,
                       to dir: String) throws -> TraceReader {
        var manifest = try TraceRecorder.manifest(run: run, dataset: dataset, steps: steps, policy: policy)
        manifest.formatVersion = version
        // Formats 1 and 2 did not state their operation digests: element by element.
        if version < 3 { manifest.outputDigest = nil }
        let writer = try TraceWriter(creating: dir, manifest: manifest)
        let initial = run.initialState()
        try writer.appendSnapshot(initial)
        try TraceRecorder.loop(run: run, writer: writer, from: initial, to: steps, report: { _ in })
        return try TraceReader(directory: dir)
    }

    static func direct(_ run: TrainingRun, steps: Int) -> [TrainingState] {
        var states = [run.initialState()]
        for _ in 0..<steps { states.append(run.step(states[states.count - 1]).0) }
        return states
    }

    static func kinds(_ reader: TraceReader) throws -> [SnapshotHeader.FrameKind?] { try reader.snapshotSizes().map(\.kind) }

    /// Adam (slots m, v), SGD without slots, SGD with momentum (one slot) and RMSProp: every
    /// step restored from update deltas equals direct training, bit for bit.
    @Test(arguments: [OptimizerConfig(kind: .adam), OptimizerConfig(kind: .sgd), OptimizerConfig(kind: .sgd, momentum: 0.9),
                      OptimizerConfig(kind: .rmsprop)])
    func everyStepRestoresExactlyThroughUpdateDeltas(_ optimizer: OptimizerConfig) throws {
        let dir = scratch("updates-\(optimizer.kind)-\(optimizer.momentum)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let steps = 6
        let run = try Self.run(optimizer)
        let reader = try Self.record(run, steps: steps, to: dir)
        #expect(try Self.kinds(reader) == [.keyframe, .update, .update, .update, .keyframe, .update, .update])
        let direct = Self.direct(run, steps: steps)
        for s in 0...steps {
            let restored = try reader.snapshot(at: s)
            #expect(restored == direct[s] && restored.digest == direct[s].digest, "step \(s), \(optimizer.kind)")
        }
        #expect(try reader.verify() == reader.frames.count)
    }

    /// Format 3: an update delta's header records the digest of the state it rebuilds, the
    /// one its step record holds (taken once on the writer's thread); format 2 recorded the
    /// digest of that state's flat values. Both restore every step exactly, and the records
    /// hold the states' digests either way, with and without a stop rule (which takes the
    /// digest on the training thread and hands it to the writer).
    @Test func updateDeltasOfFormat3RecordTheStateDigest() throws {
        let run = try Self.run(OptimizerConfig(kind: .adam))
        let steps = 5
        let direct = Self.direct(run, steps: steps)
        let store = try SnapshotStore(manifest: try TraceRecorder.manifest(run: run, dataset: Self.dataset, steps: steps, policy: Self.policy))
        for (version, stopRule) in [(2, false), (3, false), (3, true)] {
            let dir = scratch("updates-digest-\(version)-\(stopRule)")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let reader: TraceReader
            if stopRule {
                let manifest = try TraceRecorder.manifest(run: run, dataset: Self.dataset, steps: steps, policy: Self.policy)
                let writer = try TraceWriter(creating: dir, manifest: manifest)
                try writer.appendSnapshot(run.initialState())
                try TraceRecorder.loop(run: run, writer: writer, from: run.initialState(), to: steps, stop: { _, _ in false }, report: { _ in })
                reader = try TraceReader(directory: dir)
            } else {
                reader = try Self.record(run, steps: steps, version: version, to: dir)
            }
            let records = try reader.stepRecords()
            #expect(records.map(\.stateDigest) == direct.dropFirst().map(\.digest.description), "format \(version)")
            var updates = 0
            for frame in reader.frames where frame.header.kind == .snapshot {
                let header = try #require(reader.snapshotHeader(frame))
                guard header.kind == .update else { continue }
                updates += 1
                let state = direct[frame.header.step]
                let flat = try store.layout.flatDigest(state)
                let (expected, other) = version >= 3 ? (state.digest, flat) : (flat, state.digest)
                #expect(header.digest == expected && header.digest != other, "format \(version), step \(frame.header.step)")
            }
            #expect(updates == 4)
            // Payload checksums: two words a lane step from format 3 on, one before.
            let bytes = fileBytes(reader.framesPath)
            for frame in reader.frames {
                let payload = bytes[frame.payloadOffset ..< frame.end]
                let (expected, other) = (FrameLog.payloadChecksum(payload, formatVersion: version), FrameLog.payloadChecksum(payload, formatVersion: 5 - version))
                #expect(frame.header.payloadChecksum == expected && expected != other, "format \(version), frame \(frame.index)")
            }
            for t in 0...steps { #expect(try reader.snapshot(at: t) == direct[t], "format \(version), step \(t)") }
            #expect(try reader.verify() == reader.frames.count)
        }
    }

    /// A delta whose reconstruction is not the recorded state is an error naming the frame and
    /// the step, whether the update was altered (frame checksums intact) or the manifest
    /// describes another optimizer than the one that recorded the trace.
    @Test func updateThatDoesNotReproduceItsDigestIsCorrupt() throws {
        let dir = scratch("updates-corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try Self.run(OptimizerConfig(kind: .adam))
        let reader = try Self.record(run, steps: 3, to: dir)
        let victim = try #require(reader.frames.first { $0.header.kind == .snapshot && $0.header.step == 2 })
        let store = try SnapshotStore(manifest: reader.manifest)

        // Re-encode step 2's update with one gradient changed by one ulp, same digests, and
        // rewrite the frame file with valid checksums around it.
        let payload = try FrameLog.payload(victim, in: fileBytes(reader.framesPath), file: reader.framesPath,
                                           formatVersion: reader.manifest.formatVersion)
        let blob = Array(payload.dropFirst(8))
        let header = try SnapshotHeader(parsing: blob)
        let referenceDigest = try #require(header.referenceDigest)
        var (_, update) = try store.codec.decodeUpdate(blob, updateElements: store.updateElements, referenceDigest: referenceDigest)
        update[17] = update[17].nextUp
        let forged = Array(payload.prefix(8)) + (try store.codec.encodeUpdate(update, stateDigest: header.digest,
                                                                            stateElements: Int(header.elementCount), referenceDigest: referenceDigest))
        let bytes = fileBytes(reader.framesPath)
        try FileManager.default.removeItem(atPath: reader.framesPath)
        let appender = try FrameAppender(path: reader.framesPath, formatVersion: reader.manifest.formatVersion)
        for f in reader.frames {
            try appender.append(kind: f.header.kind, step: f.header.step,
                                payload: f.index == victim.index ? forged : Array(bytes[f.payloadOffset ..< f.end]))
        }
        try appender.sync()
        let forgedTrace = try TraceReader(directory: dir)
        for check in [{ _ = try forgedTrace.snapshot(at: 2) }, { _ = try forgedTrace.snapshot(at: 3) }, { _ = try forgedTrace.verify() }] {
            do {
                try check()
                Issue.record("a forged update delta went unnoticed")
            } catch {
                #expect("\(error)".contains("frame \(victim.index)") && "\(error)".contains("step 2") && "\(error)".contains("applying the recorded update"),
                        "\(error)")
            }
        }
        #expect(try forgedTrace.snapshot(at: 1) == Self.direct(run, steps: 1)[1])

        // The same bytes read under another optimizer's constants: keyframes still decode,
        // the first update delta does not.
        var manifest = reader.manifest
        manifest.config.optimizer.beta1 = 0.8
        try Data(try JSONCoding.encode(manifest)).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(dir)))
        let other = try TraceReader(directory: dir)
        _ = try other.snapshot(at: 0)
        let first = try #require(reader.frames.first { $0.header.kind == .snapshot && $0.header.step == 1 })
        do {
            _ = try other.snapshot(at: 1)
            Issue.record("an update applied with other optimizer constants went unnoticed")
        } catch {
            #expect(error.description.contains("frame \(first.index)") && error.description.contains("step 1")
                    && error.description.contains("applying the recorded update"), "\(error)")
        }
    }

    /// Format 1 (keyframes and XOR deltas) is still read, restores exactly, and a truncated
    /// format-1 trace resumes in its own encoding to the uninterrupted bytes.
    @Test func previousFormatIsReadAndResumed() throws {
        let dir = scratch("updates-v1"), cut = scratch("updates-v1-cut")
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: cut)
        }
        let steps = 5
        let run = try Self.run(OptimizerConfig(kind: .adam))
        let old = try Self.record(run, steps: steps, version: 1, to: dir)
        #expect(old.manifest.formatVersion == 1)
        #expect(try Self.kinds(old) == [.keyframe, .delta, .delta, .delta, .keyframe, .delta])
        let direct = Self.direct(run, steps: steps)
        for s in 0...steps { #expect(try old.snapshot(at: s) == direct[s], "step \(s)") }
        #expect(try old.verify() == old.frames.count)

        let golden = fileBytes(old.framesPath)
        try FileManager.default.createDirectory(atPath: cut, withIntermediateDirectories: true)
        var manifest = old.manifest
        manifest.complete = false
        manifest.completedSteps = 0
        try Data(try JSONCoding.encode(manifest)).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(cut)))
        try Data(golden[..<(golden.count / 2)]).write(to: URL(fileURLWithPath: TraceWriter.framesPath(cut)))
        let resumed = try TraceRecorder.resume(directory: cut)
        #expect(resumed.manifest.formatVersion == 1 && resumed.completedSteps == steps)
        #expect(fileBytes(resumed.framesPath) == golden)

        // A version this tpufi does not know is refused, naming it.
        manifest.formatVersion = 4
        try Data(try JSONCoding.encode(manifest)).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(cut)))
        do {
            _ = try TraceReader(directory: cut)
            Issue.record("format version 4 was accepted")
        } catch {
            #expect(error.description.contains("trace format version 4"))
        }
    }

    /// On the same run, update deltas store less than XOR deltas against the keyframe, and
    /// every non-keyframe snapshot is an update delta under half the raw state (Adam: the
    /// update is a third of the state before compression), so a silent fallback to keyframes
    /// or XOR deltas fails here.
    @Test func updateDeltasAreSmallerThanXORDeltas() throws {
        let newDir = scratch("updates-size-2"), oldDir = scratch("updates-size-1")
        defer {
            try? FileManager.default.removeItem(atPath: newDir)
            try? FileManager.default.removeItem(atPath: oldDir)
        }
        let run = try Self.run(OptimizerConfig(kind: .adam))
        let sizes2 = try Self.record(run, steps: 7, to: newDir).snapshotSizes()
        let sizes1 = try Self.record(run, steps: 7, version: 1, to: oldDir).snapshotSizes()
        let deltas2 = sizes2.filter { $0.kind != .keyframe }, deltas1 = sizes1.filter { $0.kind != .keyframe }
        #expect(deltas2.count == 6 && deltas2.allSatisfy { $0.kind == .update && 2 * $0.stored < $0.raw }, "\(deltas2)")
        let stored2 = deltas2.reduce(0) { $0 + $1.stored }, stored1 = deltas1.reduce(0) { $0 + $1.stored }
        let raw = deltas2.reduce(0) { $0 + $1.raw }
        #expect(stored2 < stored1, "update deltas \(stored2) B, XOR deltas \(stored1) B, raw \(raw) B")
        // Keyframes are the same blobs in both formats.
        #expect(sizes2.filter { $0.kind == .keyframe }.map(\.stored) == sizes1.filter { $0.kind == .keyframe }.map(\.stored))
    }

    @Test func updateBlobsRoundTripAndRefuseMisuse() throws {
        let codec = SnapshotCodec()
        let update = awkwardValues(count: 517), state = awkwardValues(count: 1_031, seed: 3)
        let stateDigest = Digest.of(state), reference = Digest.of(awkwardValues(count: 1_031, seed: 4))
        let blob = try codec.encodeUpdate(update, stateDigest: stateDigest, stateElements: state.count, referenceDigest: reference)
        let (header, decoded) = try codec.decodeUpdate(blob, updateElements: update.count, referenceDigest: reference)
        #expect(header.kind == .update && header.digest == stateDigest && header.referenceDigest == reference)
        #expect(header.rawByteCount == UInt64(4 * state.count) && bits(decoded) == bits(update))
        try SnapshotCodec.checkUpdateResult(state, header: header)
        var other = state
        other[9] = other[9].nextUp
        #expect(throws: SnapshotCodecError.updateMismatch(expected: stateDigest, got: Digest.of(other))) {
            try SnapshotCodec.checkUpdateResult(other, header: header)
        }
        #expect(throws: SnapshotCodecError.wrongReference(expected: reference, got: stateDigest)) {
            try codec.decodeUpdate(blob, updateElements: update.count, referenceDigest: stateDigest)
        }
        // The reader's expected count must match the payload, and an update is not a state.
        #expect(throws: SnapshotCodecError.self) { try codec.decodeUpdate(blob, updateElements: update.count - 1, referenceDigest: reference) }
        #expect(throws: SnapshotCodecError.self) { try codec.decodeUpdate(blob, updateElements: update.count + 1, referenceDigest: reference) }
        #expect(throws: SnapshotCodecError.wrongFrameKind(expected: .delta, got: .update)) { try codec.decode(blob) }
        #expect(throws: SnapshotCodecError.wrongFrameKind(expected: .update, got: .keyframe)) {
            try codec.decodeUpdate(try codec.encode(state), updateElements: 10, referenceDigest: reference)
        }
        #expect(throws: SnapshotCodecError.self) {
            try codec.encodeUpdate(state, stateDigest: stateDigest, stateElements: update.count, referenceDigest: reference)
        }
    }
}
