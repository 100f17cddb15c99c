import Foundation
import Synchronization
import Sim

/// Records golden runs: the training loop of ``TrainingRun`` with a ``TraceWriter`` around it.
public enum TraceRecorder {
    /// How often to snapshot.
    public struct Policy: Sendable, Equatable {
        /// Snapshot after every `snapshotEvery` updates (and the initial state).
        public var snapshotEvery: Int
        /// Every `keyframeEvery`-th snapshot is a keyframe. Restoring a step applies up to
        /// `keyframeEvery - 1` update deltas (about 8 ms each on the `small` ResNet-18 with
        /// Adam): 8 keeps the worst case near 70 ms, under the 100 ms target (16: 140 ms).
        public var keyframeEvery: Int

        public init(snapshotEvery: Int = 1, keyframeEvery: Int = 8) {
            self.snapshotEvery = snapshotEvery
            self.keyframeEvery = keyframeEvery
        }
    }

    /// The identity of a data set's contents: a digest of every decoded image and label.
    public static func dataDigest(_ data: DataSplit) -> Digest {
        var d = Digest()
        for set in [data.train, data.test] {
            d.add(set.images)
            d.add(set.labels.map { Float(bitPattern: UInt32(bitPattern: $0)) })
            if let s = set.sequences {
                d.add((s.sources + s.targets).map { Float(bitPattern: UInt32(bitPattern: $0)) })
            }
        }
        return d
    }

    /// The manifest of a new trace of `run`.
    public static func manifest(run: TrainingRun, dataset: String, steps: Int, policy: Policy) throws -> TraceManifest {
        let c = run.config
        let cost = try run.stepCost()
        return TraceManifest(config: c, dataset: dataset, datasetName: run.data.train.name, trainCount: run.data.train.count,
                             testCount: run.data.test.count, dataDigest: dataDigest(run.data).description,
                             stepsPerEpoch: run.stepsPerEpoch, snapshotEvery: policy.snapshotEvery, keyframeEvery: policy.keyframeEvery,
                             plannedSteps: steps, sites: run.model.sites.map(\.name), parameterNames: run.model.parameterNames,
                             timing: SimulationReport(source: "\(c.workload) (\(c.scaleName), training step, one replica)", cost: cost),
                             complete: false, completedSteps: 0)
    }

    /// Trains `run` for `steps` steps from its initial state, writing a new trace to
    /// `directory`.
    public static func record(run: TrainingRun, dataset: String, steps: Int, policy: Policy, to directory: String,
                              report: (TrainingEvent) -> Void = { _ in }) throws -> TraceReader {
        guard steps > 0, policy.snapshotEvery > 0, policy.keyframeEvery > 0 else {
            throw TraceError.mismatch("steps, --snapshot-every and the keyframe interval must be positive")
        }
        let writer = try TraceWriter(creating: directory, manifest: try manifest(run: run, dataset: dataset, steps: steps, policy: policy))
        let initial = run.initialState()
        try writer.appendSnapshot(initial)
        try loop(run: run, writer: writer, from: initial, to: steps, report: report)
        return try TraceReader(directory: directory)
    }

    /// Continues the interrupted trace in `directory` to its planned step count.
    public static func resume(directory: String, threads: Int = 1, report: (TrainingEvent) -> Void = { _ in }) throws -> TraceReader {
        // Nothing is created where no trace is: the reader throws, naming what is missing.
        if !FileManager.default.fileExists(atPath: TraceWriter.manifestPath(directory)) { _ = try TraceReader(directory: directory) }
        // Locked before reading: a second `--resume` of the same trace is refused, not run twice.
        let lock = try TraceWriter.lock(directory)
        let reader = try TraceReader(directory: directory)
        guard !reader.manifest.complete else {
            throw TraceError.mismatch("\(directory): the trace is complete (\(reader.manifest.completedSteps) steps); nothing to resume")
        }
        let restorer = try TraceRestorer(reader: reader, threads: threads)
        let (writer, state) = try TraceWriter.resume(reader, restorer: restorer, lock: lock)
        try loop(run: restorer.run, writer: writer, from: state, to: reader.manifest.plannedSteps, report: report)
        return try TraceReader(directory: directory)
    }

    /// When the loop evaluates the test set.
    public typealias TestEvaluation = TrainingLoop.TestEvaluation

    /// ``TrainingLoop`` with recording: a snapshot every `snapshotEvery` steps and after the
    /// last, epoch summaries, a step record per step (with every MXU operation's digest).
    /// `hook(step)` may inject into a step; `stop` sees each step's record and the state after
    /// it, and ends the run early when it says so (the last step is then evaluated, as
    /// `evaluation` says, and the trace finished as usual). Without a `stop`, the state's digest
    /// for the record is taken on the writer's thread while the next step trains, not between
    /// steps (a pass over the whole state, about 1.5 % of a `small` step).
    @discardableResult
    public static func loop(run: TrainingRun, writer: TraceWriter, from state: TrainingState, to end: Int,
                            hook: @escaping (Int) -> (any OperandHook)? = { _ in nil },
                            stop: ((StepRecord, TrainingState) throws -> Bool)? = nil,
                            evaluation: TestEvaluation = .everyEpoch, mitigation: Mitigation? = nil,
                            mitigated: (MitigationEvent) throws -> Void = { _ in },
                            report: (TrainingEvent) -> Void) throws -> TrainingState {
        let perEpoch = run.stepsPerEpoch
        // Metrics of the epoch's earlier steps, when resuming mid-epoch.
        var earlier: [StepMetrics] = []
        if state.step % perEpoch != 0 {
            let records = try TraceReader(directory: writer.directory).stepRecords()
            earlier = records.filter { $0.epoch == state.step / perEpoch }
                .map { StepMetrics(loss: $0.loss, accuracy: $0.accuracy, learningRate: $0.learningRate) }
        }
        var record: StepRecord?
        // The state whose digest the record still lacks (no `stop` asked for it).
        var undigested: TrainingState?
        // The latest state digest taken, by `stop` (on this thread) or by the writer for an
        // update delta that records it (format 3): the snapshot and the step record of that
        // state reuse it. Keyed by the state's step; each step's state is committed once.
        let stateDigest = Mutex<(step: Int, digest: Digest)?>(nil)
        @Sendable func knownDigest(of state: TrainingState) -> Digest? {
            stateDigest.withLock { $0?.step == state.step ? $0?.digest : nil }
        }
        // The writer encodes, writes and syncs each step while the next one trains.
        let appends = BackgroundAppends(writer)
        let snapshotEvery = writer.manifest.snapshotEvery
        defer { appends.waitUntilWritten() }
        let loop = TrainingLoop(run: run, inject: hook, digests: writer.manifest.outputDigests, evaluation: evaluation, mitigation: mitigation)
        let final = try loop.run(from: state, to: end, epochMetrics: earlier, stop: { s in
            var r = StepRecord(step: s.index, epoch: s.index / perEpoch, stepInEpoch: s.index % perEpoch,
                               loss: s.metrics.loss, accuracy: s.metrics.accuracy, learningRate: s.metrics.learningRate,
                               stateDigest: "",
                               siteDigests: s.gradients.siteDigests.map { $0.map(\.digest.description) })
            guard let stop else {
                (record, undigested) = (r, s.state)
                return false
            }
            let digest = s.state.digest
            r.stateDigest = digest.description
            (record, undigested) = (r, nil)
            stateDigest.withLock { $0 = (s.state.step, digest) }
            // `stop` sees every record, the last one included (a replay records its drawn fault there).
            return try stop(r, s.state)
        }, step: { s in
            // The previous step's frames are written by now, or this waits for them.
            appends.waitUntilWritten()
            let state = s.state
            // A step mitigation changed is not the plain update of its gradients: its state is
            // stored whole, so that restoring it re-executes nothing mitigation decided.
            if s.mitigated {
                try appends.add { try $0.appendSnapshot(state) }
            } else if state.step % snapshotEvery == 0 || s.last {
                let update = s.gradients
                try appends.add { writer in
                    if let d = try writer.appendSnapshot(state, update: update, stateDigest: knownDigest(of: state)) {
                        stateDigest.withLock { $0 = (state.step, d) }
                    }
                }
            }
            report(.step(globalStep: s.index, metrics: s.metrics))
        }, epoch: { summary, _ in
            try appends.add { try $0.appendEpoch(summary) }
            report(.epoch(summary))
        }, stepEnd: { s in
            guard let record, record.step == s.index else { throw TraceError.mismatch("step \(s.index) has no record") }
            let state = undigested
            try appends.add { writer in
                var complete = record
                if let state { complete.stateDigest = (knownDigest(of: state) ?? state.digest).description }
                try writer.appendStep(complete)
            }
        }, mitigated: mitigated)
        appends.waitUntilWritten()
        try appends.rethrow()
        try writer.finish(steps: final.step)
        return final
    }
}

/// A writer's appends (a ``TraceWriter``'s, in ``TraceRecorder/loop(run:writer:from:to:hook:stop:evaluation:mitigation:mitigated:report:)``),
/// run in order on one background thread so that a step's snapshot is encoded, written and
/// synced while the next step trains (the training step keeps both cores busy only between
/// these serial pauses). The loop waits for a step's appends before queueing the next
/// step's, so at most one step's are pending. The first error stops all later appends and
/// is thrown by the next ``add(_:)`` or by ``rethrow()``. Only the background thread touches
/// the writer until ``waitUntilWritten()``.
final class BackgroundAppends<Writer>: @unchecked Sendable {
    private let writer: Writer
    private let queue = DispatchQueue(label: "tpufi.trace-appends")
    private let lock = NSLock()
    private var failure: (any Error)?
    private let pending = DispatchGroup()

    init(_ writer: Writer) { self.writer = writer }

    /// Queues `append` (after every earlier one), first throwing an earlier append's error.
    func add(_ append: @escaping @Sendable (Writer) throws -> Void) throws {
        try rethrow()
        queue.async(group: pending) { [self] in
            guard lock.withLock({ failure == nil }) else { return }
            do { try append(writer) } catch { lock.withLock { failure = failure ?? error } }
        }
    }

    /// Waits for every queued append: at a step boundary (bounding what is pending to one
    /// step's frames), before finishing, and when the loop ends by an error.
    func waitUntilWritten() { pending.wait() }

    /// The first append's error, if any.
    func rethrow() throws {
        if let failure = lock.withLock({ failure }) { throw failure }
    }
}

/// Restores the exact training state of any recorded step: the nearest snapshot at or before
/// it, then deterministic re-execution, each step checked against its recorded digest.
public struct TraceRestorer: Sendable {
    public let reader: TraceReader
    public let run: TrainingRun
    /// The trace's step records by global step, decoded once.
    public let records: [Int: StepRecord]

    /// Rebuilds the run from the manifest: loads its data set and checks it is the same data.
    public init(reader: TraceReader, threads: Int = 1) throws {
        let m = reader.manifest
        let data = try DatasetSource.parse(m.dataset).load()
        let digest = TraceRecorder.dataDigest(data).description
        guard digest == m.dataDigest else {
            throw TraceError.mismatch("\(reader.directory): data set '\(m.dataset)' loads as digest \(digest), the trace was recorded on \(m.dataDigest)")
        }
        try self.init(reader: reader, run: TrainingRun(config: m.config, data: data, threads: threads))
    }

    public init(reader: TraceReader, run: TrainingRun) throws {
        guard run.config == reader.manifest.config else {
            throw TraceError.mismatch("\(reader.directory): the run's configuration differs from the trace's")
        }
        let list = try reader.stepRecords()
        try reader.checkBelongsToManifest(records: list)
        self.reader = reader
        self.run = run
        records = Dictionary(list.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The state after `step` updates.
    public func state(at step: Int) throws -> TrainingState {
        guard step >= 0 && step <= reader.completedSteps else {
            throw TraceError.mismatch("\(reader.directory): step \(step) is outside the recorded 0...\(reader.completedSteps)")
        }
        guard let from = reader.snapshotSteps.last(where: { $0 <= step }) else {
            throw TraceError.mismatch("\(reader.framesPath): no snapshot at or before step \(step)")
        }
        return try replay(from: try reader.snapshot(at: from), to: step)
    }

    /// Re-executes from `state` up to `step` updates, checking each state digest. `hook(step)`
    /// may inject into a step (a faulty trace re-applies its recorded fault).
    public func replay(from state: TrainingState, to step: Int, hook: (Int) -> (any OperandHook)? = { _ in nil }) throws -> TrainingState {
        var state = state
        // A snapshot of the step itself (the default policy) needs no records read.
        guard state.step < step else { return state }
        while state.step < step {
            let s = state.step
            state = run.step(state, hook: hook(s)).0
            guard let recorded = records[s]?.stateDigest, recorded == state.digest.description else {
                throw TraceError.mismatch("\(reader.directory): re-executing step \(s) gave state digest \(state.digest), the trace recorded \(records[s]?.stateDigest ?? "nothing"): the trace was made by other code or another configuration")
            }
        }
        return state
    }
}
