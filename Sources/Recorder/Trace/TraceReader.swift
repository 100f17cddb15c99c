import Foundation
import Sim

/// Reads a trace directory. Opening it checks the manifest and every frame header; payloads
/// are checked against their checksums when read (``verify()`` reads them all).
public struct TraceReader: Sendable {
    public let directory: String
    public let manifest: TraceManifest
    /// Frames up to the last whole one (a torn tail left by a crash is not included).
    public let frames: [FrameEntry]
    /// Bytes of `frames.tpf` after the last whole frame (0 for a cleanly written trace).
    public let tornBytes: Int
    let file: FrameFile
    let snapshots: SnapshotStore

    public var framesPath: String { TraceWriter.framesPath(directory) }

    public init(directory: String) throws(TraceError) {
        self.directory = directory
        let manifestPath = TraceWriter.manifestPath(directory)
        // Only a regular file of bounded size is read (a FIFO or a device in its place would
        // block or never end); a wrong or out-of-range field is named.
        var st = stat()
        guard lstat(manifestPath, &st) == 0 else {
            var isDirectory: ObjCBool = false
            throw .io(file: manifestPath, reason: FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory)
                      ? (isDirectory.boolValue ? "missing: not a trace directory" : "\(directory) is not a directory") : "no such trace directory")
        }
        let data: Data
        switch InputFile.read(manifestPath, limit: InputFile.manifestLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .io(file: manifestPath, reason: e.reason)
        }
        switch JSONInput.decode(TraceManifest.self, from: data, decoder: JSONCoding.decoder) {
        case .success(let m): manifest = m
        case .failure(let e): throw .malformed(file: manifestPath, reason: "not a valid manifest: \(e)")
        }
        snapshots = try SnapshotStore(manifest: manifest, model: try manifest.validate(file: manifestPath))
        let path = TraceWriter.framesPath(directory)
        file = try FrameFile(path: path, formatVersion: manifest.formatVersion)
        let scan = try file.scan()
        // A frame's step is a number from the file: bound it before anything computes with it.
        let planned = manifest.plannedSteps
        if let wild = scan.frames.first(where: { $0.header.step < 0 || $0.header.step > planned }) {
            throw .corruptFrame(file: path, index: wild.index, offset: wild.offset, step: wild.header.step,
                                reason: "step outside the run's planned 0...\(planned)")
        }
        frames = scan.frames
        tornBytes = file.size - scan.validLength
        // A complete trace's manifest names how many steps it holds: frames that end sooner
        // (a copy cut short) or go on longer (frames of another run) do not belong to it.
        if manifest.complete && completedSteps != manifest.completedSteps {
            throw .malformed(file: path, reason: "holds step records up to global step \(completedSteps - 1), but the manifest of this complete trace records \(manifest.completedSteps) steps: the file was cut short or belongs to another run")
        }
    }

    /// Steps whose record is on disk: the run's progress (records are written in order).
    public var completedSteps: Int {
        (frames.last { $0.header.kind == .step }?.header.step).map { $0 + 1 } ?? 0
    }

    /// Snapshot steps (updates applied) available, ascending.
    public var snapshotSteps: [Int] { frames.filter { $0.header.kind == .snapshot }.map(\.header.step) }

    public func isKeyframe(step: Int) -> Bool {
        frames.first { $0.header.kind == .snapshot && $0.header.step == step }.map(isKeyframe) ?? false
    }

    /// Whether a snapshot frame holds a keyframe, from its header bytes alone (the payload's
    /// checksum is checked when it is decoded).
    func isKeyframe(_ frame: FrameEntry) -> Bool { snapshotHeader(frame)?.kind == .keyframe }

    /// A snapshot frame's codec header, from its first bytes alone (nil if it does not parse;
    /// decoding the frame then reports why).
    func snapshotHeader(_ frame: FrameEntry) -> SnapshotHeader? {
        (try? file.read(frame.payloadOffset ..< min(frame.end, frame.payloadOffset + SnapshotStore.headerBytes))).flatMap(SnapshotStore.header)
    }

    /// Size of `frames.tpf` in bytes.
    public var fileBytes: Int { file.size }

    /// Per snapshot: raw state bytes, stored (frame payload) bytes and how it is stored
    /// (keyframe, XOR delta or update delta).
    public func snapshotSizes() throws(TraceError) -> [(step: Int, raw: Int, stored: Int, kind: SnapshotHeader.FrameKind?)] {
        try frames.filter { $0.header.kind == .snapshot }.map { frame throws(TraceError) in
            let payload = try file.payload(frame)
            return (frame.header.step, SnapshotStore.rawBytes(payload), frame.header.length, SnapshotStore.header(payload)?.kind)
        }
    }

    /// Every step record, in order.
    public func stepRecords() throws(TraceError) -> [StepRecord] {
        try frames.filter { $0.header.kind == .step }.map { frame throws(TraceError) in try decode(StepRecord.self, frame) }
    }

    public func epochSummaries() throws(TraceError) -> [EpochSummary] {
        try frames.filter { $0.header.kind == .epoch }.map { frame throws(TraceError) in try decode(EpochSummary.self, frame) }
    }

    /// The training state recorded after `step` updates: its snapshot, decoded and checked
    /// against the digest its header records. An XOR delta is decoded against its keyframe;
    /// an update delta is applied to the previous step's state, which comes from the chain of
    /// update deltas back to the latest keyframe (or XOR delta), each result checked.
    public func snapshot(at step: Int) throws(TraceError) -> TrainingState {
        let snaps = frames.filter { $0.header.kind == .snapshot }
        guard let index = snaps.firstIndex(where: { $0.header.step == step }) else {
            throw .mismatch("\(framesPath): no snapshot after step \(step) (snapshots: \(Self.ranges(snaps.map(\.header.step))))")
        }
        // Back over update deltas to the snapshot the chain starts from.
        var start = index
        while snapshotHeader(snaps[start])?.kind == .update {
            guard start > 0, snaps[start - 1].header.step == snaps[start].header.step - 1 else { throw orphanUpdate(snaps[start]) }
            start -= 1
        }
        var decoded = try decodeSnapshot(snaps[start], reference: try keyframe(before: snaps[start], in: snaps[..<start]))
        for k in (start + 1) ..< (index + 1) { decoded = try decodeSnapshot(snaps[k], reference: decoded) }
        return decoded.state
    }

    private func orphanUpdate(_ frame: FrameEntry) -> TraceError {
        .corruptFrame(file: framesPath, index: frame.index, offset: frame.offset, step: frame.header.step,
                      reason: "update delta without the snapshot of step \(frame.header.step - 1) before it")
    }

    /// The decoded keyframe an XOR delta refers to (nil for a keyframe).
    private func keyframe(before frame: FrameEntry, in earlier: ArraySlice<FrameEntry>) throws(TraceError) -> SnapshotStore.Decoded? {
        guard !isKeyframe(frame) else { return nil }
        guard let k = earlier.last(where: isKeyframe) else {
            throw .corruptFrame(file: framesPath, index: frame.index, offset: frame.offset, step: frame.header.step, reason: "delta snapshot without a keyframe before it")
        }
        return try decodeSnapshot(k, reference: nil)
    }

    private func decodeSnapshot(_ frame: FrameEntry, reference: SnapshotStore.Decoded?) throws(TraceError) -> SnapshotStore.Decoded {
        try snapshots.decode(try file.payload(frame), reference: reference, frame: frame, file: framesPath)
    }

    /// Checks that the frames belong to the run the manifest describes, as far as the manifest
    /// can tell without training: each step record's epoch, step in the epoch and (for a
    /// golden trace) learning rate are the ones the manifest's configuration gives, and a
    /// golden trace's initial snapshot is the state its configuration starts from (seed, model,
    /// optimizer). A manifest copied from another run of the same shape fails here, where its
    /// checksums and digests, all internal to the frames, still agree.
    public func checkBelongsToManifest(records: [StepRecord]) throws(TraceError) {
        let m = manifest, path = TraceWriter.manifestPath(directory)
        for r in records {
            let (epoch, inEpoch) = (r.step / m.stepsPerEpoch, r.step % m.stepsPerEpoch)
            guard r.epoch == epoch, r.stepInEpoch == inEpoch else {
                throw .mismatch("\(framesPath): the record of global step \(r.step) says epoch \(r.epoch) step \(r.stepInEpoch); \(path) (\(m.stepsPerEpoch) steps per epoch) makes it epoch \(epoch) step \(inEpoch): the manifest belongs to another run")
            }
            let rate = m.config.schedule.rate(at: r.step)
            guard m.injection != nil || r.learningRate.bitPattern == rate.bitPattern else {
                throw .mismatch("\(framesPath): step \(r.step) trained at learning rate \(r.learningRate); the schedule in \(path) gives \(rate): the manifest belongs to another run")
            }
        }
        guard m.injection == nil, frames.contains(where: { $0.header.kind == .snapshot && $0.header.step == 0 }) else { return }
        let model: any Model
        do {
            model = try m.config.makeModel()
        } catch {
            throw .malformed(file: path, reason: "\(error)")
        }
        let expected = TrainingState(model: model, optimizer: m.config.optimizer, seed: m.config.seed).digest
        let stored = try snapshot(at: 0).digest
        guard stored == expected else {
            throw .mismatch("\(framesPath): the initial snapshot has state digest \(stored); the configuration in \(path) (seed \(m.config.seed)) starts from \(expected): the manifest belongs to another run")
        }
    }

    /// Reads and checks every frame: payload checksums, snapshots decoded (and their digests
    /// compared with the step records), records parsed, and that they belong to the manifest
    /// (``checkBelongsToManifest(records:)``). Returns the frames checked.
    public func verify() throws(TraceError) -> Int {
        let list = try stepRecords()
        try checkBelongsToManifest(records: list)
        let records = Dictionary(list.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
        var keyframe: SnapshotStore.Decoded?, previous: SnapshotStore.Decoded?
        for frame in frames where frame.header.kind == .snapshot {
            // Snapshots in order: an XOR delta refers to the latest keyframe, decoded once; an
            // update delta to the snapshot just before it.
            let kind = snapshotHeader(frame)?.kind
            let reference: SnapshotStore.Decoded?
            switch kind {
            case .keyframe:
                reference = nil
            case .update:
                guard let previous, previous.state.step == frame.header.step - 1 else { throw orphanUpdate(frame) }
                reference = previous
            default:
                guard let keyframe else {
                    throw .corruptFrame(file: framesPath, index: frame.index, offset: frame.offset, step: frame.header.step, reason: "delta snapshot without a keyframe before it")
                }
                reference = keyframe
            }
            let decoded = try decodeSnapshot(frame, reference: reference)
            if kind == .keyframe { keyframe = decoded }
            previous = decoded
            let state = decoded.state
            if let record = records[frame.header.step - 1], record.stateDigest != state.digest.description {
                throw .corruptFrame(file: framesPath, index: frame.index, offset: frame.offset, step: frame.header.step,
                                    reason: "snapshot digest \(state.digest) differs from the step record's \(record.stateDigest)")
            }
        }
        _ = try epochSummaries()
        return frames.count
    }

    func decode<T: Decodable>(_ type: T.Type, _ frame: FrameEntry) throws(TraceError) -> T {
        let payload = try file.payload(frame)
        do {
            return try JSONCoding.decode(type, from: payload)
        } catch {
            throw .corruptFrame(file: framesPath, index: frame.index, offset: frame.offset, step: frame.header.step, reason: "cannot decode \(frame.header.kind) record: \(error)")
        }
    }

    /// `[0, 1, 2, 5, 6]` as `0-2, 5-6`.
    public static func ranges(_ steps: [Int]) -> String {
        var out: [String] = []
        var i = 0
        while i < steps.count {
            var j = i
            while j + 1 < steps.count && steps[j + 1] == steps[j] + 1 { j += 1 }
            out.append(i == j ? "\(steps[i])" : "\(steps[i])-\(steps[j])")
            i = j + 1
        }
        return out.isEmpty ? "none" : out.joined(separator: ", ")
    }
}
