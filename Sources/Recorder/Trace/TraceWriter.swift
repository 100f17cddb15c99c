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
    /// The latest keyframe written (flat values), for XOR deltas.
    private var keyframe: [Float]?
    /// The latest snapshot written: its step and the digest its header records, for update deltas.
    private var previous: (step: Int, digest: Digest)?
    private var snapshotsWritten: Int
    /// The encoder's byte buffers, reused snapshot to snapshot.
    private var buffers = EncodeBuffers()
    /// The flat values of the last XOR delta, whose storage the next one reuses.
    private var deltaValues: [Float] = []
    /// Held for the writer's lifetime: a second writer of the same directory (two `record
    /// --resume` at once, two replays into one `--out`) is refused instead of interleaving
    /// frames.
    private let lock: DirectoryLock

    /// Whether this trace stores update deltas (format 2 on); a trace of format 1 continues
    /// in its own encoding when resumed.
    private var writesUpdates: Bool { manifest.formatVersion >= 2 }

    public static func manifestPath(_ directory: String) -> String { directory + "/manifest.json" }
    public static func framesPath(_ directory: String) -> String { directory + "/frames.tpf" }

    /// Starts a new trace in `directory`, which must not exist or be empty.
    public init(creating directory: String, manifest: TraceManifest) throws(TraceError) {
        try manifest.validateFormat(file: Self.manifestPath(directory))
        let fm = FileManager.default
        let unfinishedManifest = temporaryPath(Self.manifestPath(directory))
        // Refused before anything is created in a directory that holds something else.
        func checkEmpty() throws(TraceError) -> Bool {
            let contents = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            // A writer killed while writing its first manifest leaves only the manifest's
            // temporary file (and the lock file): nothing was recorded, so the directory
            // counts as empty.
            guard contents.allSatisfy({ $0 == DirectoryLock.fileName || directory + "/" + $0 == unfinishedManifest }) else {
                throw .io(file: directory, reason: "already exists and is not empty: choose another --out")
            }
            return contents.contains { directory + "/" + $0 == unfinishedManifest }
        }
        if fm.fileExists(atPath: directory) { _ = try checkEmpty() }
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .io(file: directory, reason: "cannot create: \(error.localizedDescription)")
        }
        lock = try Self.lock(directory)
        // Again under the lock: another writer that also found it empty may have got here first.
        if try checkEmpty() {
            do { try fm.removeItem(atPath: unfinishedManifest) } catch {
                throw .io(file: unfinishedManifest, reason: "cannot remove an unfinished manifest: \(error.localizedDescription)")
            }
        }
        self.directory = directory
        self.manifest = manifest
        try writeAtomically(try Self.encode(manifest, path: Self.manifestPath(directory)), to: Self.manifestPath(directory))
        frames = try FrameAppender(path: Self.framesPath(directory), formatVersion: manifest.formatVersion)
        snapshots = try SnapshotStore(manifest: manifest)
        snapshotsWritten = 0
    }

    /// The lock of a trace directory a writer holds, or the error naming its holder.
    public static func lock(_ directory: String) throws(TraceError) -> DirectoryLock {
        do { return try DirectoryLock(directory: directory) } catch { throw .io(file: error.file, reason: error.reason) }
    }

    /// Continues the trace `reader` read, under `lock` (taken before it was read, so that
    /// no other writer changed it since): drops its torn tail and anything after the last
    /// complete step, and returns the writer with the state to continue from.
    public static func resume(_ reader: TraceReader, restorer: TraceRestorer, lock: DirectoryLock) throws -> (TraceWriter, TrainingState) {
        let lastStep = reader.completedSteps
        // Keep frames up to and including the last complete step's record.
        let keep = reader.frames.last { $0.header.kind == .step && $0.header.step == lastStep - 1 }?.end
            ?? reader.frames.last { $0.header.kind == .snapshot && $0.header.step == 0 }?.end ?? 0
        guard let restoreFrom = reader.snapshotSteps.last(where: { $0 <= lastStep }) else {
            guard lastStep == 0 else {
                throw TraceError.malformed(file: reader.framesPath, reason: "no snapshot to resume from")
            }
            // Killed before the initial snapshot landed: nothing was recorded, so the run
            // starts over from its initial state (a function of the manifest's configuration).
            let writer = try TraceWriter(continuing: reader, truncateTo: 0, lock: lock)
            let initial = restorer.run.initialState()
            try writer.appendSnapshot(initial)
            return (writer, initial)
        }
        var state = try reader.snapshot(at: restoreFrom)
        // Steps after the last snapshot are re-executed, checked against their records.
        state = try restorer.replay(from: state, to: lastStep)
        return (try TraceWriter(continuing: reader, truncateTo: keep, lock: lock), state)
    }

    private init(continuing reader: TraceReader, truncateTo length: Int, lock: DirectoryLock) throws(TraceError) {
        self.lock = lock
        directory = reader.directory
        manifest = reader.manifest
        manifest.complete = false
        frames = try FrameAppender(path: Self.framesPath(directory), formatVersion: manifest.formatVersion, truncateTo: length)
        snapshots = try SnapshotStore(manifest: manifest)
        let kept = reader.frames.filter { $0.header.kind == .snapshot && $0.header.step <= reader.completedSteps }
        snapshotsWritten = kept.count
        if let k = kept.last(where: reader.isKeyframe) {
            var values: [Float] = []
            try snapshots.flatten(try reader.snapshot(at: k.header.step), into: &values, file: reader.framesPath)
            keyframe = values
        }
        // The next update delta refers to the last kept snapshot (decoded and verified by
        // `resume` before this runs), by the digest its header records.
        if let last = kept.last, let header = reader.snapshotHeader(last) { previous = (last.header.step, header.digest) }
        try writeAtomically(try Self.encode(manifest, path: Self.manifestPath(directory)), to: Self.manifestPath(directory))
    }

    /// Appends the snapshot of `state` (taken after `state.step` updates). `update`, when
    /// given, is what the step that produced `state` computed (``Trainer/apply(_:to:)`` of it
    /// to the previous state gives `state`): if the previous snapshot is of the step before,
    /// the frame stores just that (an update delta) unless a keyframe is due. Otherwise the
    /// frame is a keyframe or an XOR delta against the latest keyframe. Which one depends only
    /// on the snapshots written before, so a resumed trace encodes like an uninterrupted one.
    ///
    /// `stateDigest`: `state.digest`, when the caller has it. Returns the state's digest when
    /// the snapshot took it (a format-3 update delta records it), so that the step record
    /// need not take it again; nil otherwise.
    @discardableResult
    public func appendSnapshot(_ state: TrainingState, update: Trainer.Gradients? = nil,
                               stateDigest: Digest? = nil) throws(TraceError) -> Digest? {
        let isKey = snapshotsWritten % manifest.keyframeEvery == 0 || keyframe == nil
        let payload: ArraySlice<UInt8>, digest: Digest
        var taken: Digest?
        var flat: [Float]?
        if !isKey, writesUpdates, let update, let previous, previous.step == state.step - 1 {
            if snapshots.updatesHoldStateDigests {
                digest = stateDigest ?? state.digest
                taken = digest
            } else {
                digest = try snapshots.flatDigest(state, file: frames.path)
            }
            payload = try snapshots.encodeUpdate(update, step: state.step, digest: digest, previous: previous.digest, file: frames.path,
                                                 using: &buffers)
        } else {
            // Flattened into the storage of the keyframe it replaces (a keyframe needs no
            // reference) or of the last XOR delta: the same pages each time, not fresh ones.
            var values: [Float]
            if isKey { (values, keyframe) = (keyframe ?? [], nil) } else { (values, deltaValues) = (deltaValues, []) }
            try snapshots.flatten(state, into: &values, file: frames.path)
            digest = Digest.of(values)
            payload = try snapshots.encode(values, digest: digest, step: state.step, against: isKey ? nil : keyframe, file: frames.path,
                                           using: &buffers)
            flat = values
        }
        try frames.append(kind: .snapshot, step: state.step, payload: payload)
        // Kept only once written (an XOR delta must not refer to a keyframe the file lacks).
        if let flat { if isKey { keyframe = flat } else { deltaValues = flat } }
        previous = (state.step, digest)
        snapshotsWritten += 1
        return taken
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
        try writeManifest()
    }

    /// Records the run's mitigation and what it has done so far in the manifest.
    public func setMitigation(_ mitigation: MitigationRecord) throws(TraceError) {
        manifest.mitigation = mitigation
        try writeManifest()
    }

    private func writeManifest() throws(TraceError) {
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
