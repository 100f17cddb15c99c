import Foundation
import Sim

/// Writes a trace directory: `manifest.json` and the append-only `frames.tpf`.
///
/// Per step it appends the snapshot (when the policy asks for one), the epoch's test metrics
/// (when the step ends an epoch) and then the step record, and syncs: a step is on disk,
/// complete, once its record is. Killed at any moment, the
/// directory holds every completed step; ``TraceReader`` ignores a torn tail and
/// `resume` continues after the last complete step.
public final class TraceWriter {
    public let directory: String
    public private(set) var manifest: TraceManifest
    private let frames: FrameAppender
    private let snapshots: SnapshotStore
    /// The latest keyframe written, for deltas.
    private var keyframe: TrainingState?
    private var snapshotsWritten: Int

    public static func manifestPath(_ directory: String) -> String { directory + "/manifest.json" }
    public static func framesPath(_ directory: String) -> String { directory + "/frames.tpf" }

    /// Starts a new trace in `directory`, which must not exist or be empty.
    public init(creating directory: String, manifest: TraceManifest) throws(TraceError) {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory) {
            let contents = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            guard contents.isEmpty else {
                throw .io(file: directory, reason: "already exists and is not empty (use --resume to continue a trace, or another --out)")
            }
        }
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .io(file: directory, reason: "cannot create: \(error.localizedDescription)")
        }
        self.directory = directory
        self.manifest = manifest
        try writeAtomically(try Self.encode(manifest, path: Self.manifestPath(directory)), to: Self.manifestPath(directory))
        frames = try FrameAppender(path: Self.framesPath(directory))
        snapshots = try SnapshotStore(manifest: manifest)
        snapshotsWritten = 0
    }

    /// Continues the trace `reader` read: drops its torn tail and anything after the last
    /// complete step, and returns the writer with the state to continue from.
    public static func resume(_ reader: TraceReader, restorer: TraceRestorer) throws -> (TraceWriter, TrainingState) {
        let lastStep = reader.completedSteps
        // Keep frames up to and including the last complete step's record.
        let keep = reader.frames.last { $0.header.kind == .step && $0.header.step == lastStep - 1 }?.end
            ?? reader.frames.last { $0.header.kind == .snapshot && $0.header.step == 0 }?.end ?? 0
        guard let restoreFrom = reader.snapshotSteps.last(where: { $0 <= lastStep }) else {
            throw TraceError.malformed(file: reader.framesPath, reason: "no snapshot to resume from")
        }
        var state = try reader.snapshot(at: restoreFrom)
        // Steps after the last snapshot are re-executed, checked against their records.
        state = try restorer.replay(from: state, to: lastStep)
        return (try TraceWriter(continuing: reader, truncateTo: keep), state)
    }

    private init(continuing reader: TraceReader, truncateTo length: Int) throws(TraceError) {
        directory = reader.directory
        manifest = reader.manifest
        manifest.complete = false
        frames = try FrameAppender(path: Self.framesPath(directory), truncateTo: length)
        snapshots = try SnapshotStore(manifest: manifest)
        let kept = reader.snapshotSteps.filter { $0 <= reader.completedSteps }
        snapshotsWritten = kept.count
        if let k = kept.last(where: { reader.isKeyframe(step: $0) }) { keyframe = try reader.snapshot(at: k) }
        try writeAtomically(try Self.encode(manifest, path: Self.manifestPath(directory)), to: Self.manifestPath(directory))
    }

    /// Appends the snapshot of `state` (taken after `state.step` updates).
    public func appendSnapshot(_ state: TrainingState) throws(TraceError) {
        let isKey = snapshotsWritten % manifest.keyframeEvery == 0 || keyframe == nil
        let payload = try snapshots.encode(state, against: isKey ? nil : keyframe, file: frames.path)
        try frames.append(kind: .snapshot, step: state.step, payload: payload)
        if isKey { keyframe = state }
        snapshotsWritten += 1
    }

    /// Appends a step's record and makes everything so far durable.
    public func appendStep(_ record: StepRecord) throws(TraceError) {
        try frames.append(kind: .step, step: record.step, payload: try Self.encode(record, path: frames.path))
        try frames.sync()
    }

    public func appendEpoch(_ summary: EpochSummary) throws(TraceError) {
        try frames.append(kind: .epoch, step: summary.epoch, payload: try Self.encode(summary, path: frames.path))
    }

    /// Records the resolved fault in the manifest (a replay learns it during the injected step).
    public func setInjection(_ injection: TraceManifest.Injection) throws(TraceError) {
        manifest.injection = injection
        try writeAtomically(try Self.encode(manifest, path: Self.manifestPath(directory)), to: Self.manifestPath(directory))
    }

    /// Marks the trace complete with `steps` recorded steps.
    public func finish(steps: Int) throws(TraceError) {
        try frames.sync()
        manifest.complete = true
        manifest.completedSteps = steps
        try writeAtomically(try Self.encode(manifest, path: Self.manifestPath(directory)), to: Self.manifestPath(directory))
    }

    static func encode<T: Encodable>(_ value: T, path: String) throws(TraceError) -> [UInt8] {
        do { return try JSONCoding.encode(value) } catch { throw .io(file: path, reason: "cannot encode: \(error)") }
    }
}
