import Foundation
import Recorder
import Sim

/// Errors of a bisection; each names the trace (file or directory) and the step.
public enum BisectError: Error, CustomStringConvertible, Equatable {
    /// The two traces are not of the same run (workload, configuration or data).
    case differentRuns(String)
    /// No snapshot at or before the state a re-execution must start from.
    case noSnapshot(file: String, step: Int, snapshots: String)
    /// Re-executing a recorded step did not give the digests the trace recorded.
    case notReproduced(directory: String, step: Int, reason: String)
    /// The injection a faulty trace's manifest records does not fit its model.
    case badInjection(file: String, reason: String)
    /// The traces record no step in common: there is nothing to compare.
    case noCommonStep(String)

    public var description: String {
        switch self {
        case .differentRuns(let m): return m
        case .noSnapshot(let file, let step, let snapshots):
            return "\(file): no snapshot at or before step \(step) to re-execute it from (snapshots after steps: \(snapshots))"
        case .notReproduced(let directory, let step, let reason):
            return "\(directory): re-executing step \(step) does not reproduce the trace: \(reason)"
        case .badInjection(let file, let reason): return "\(file): the recorded injection cannot be re-applied: \(reason)"
        case .noCommonStep(let m): return m
        }
    }
}

/// Where two runs of the same configuration first part, how the difference spreads through
/// that step, when the outcome shows, and what finding it cost.
public struct BisectResult: Sendable, Codable, Equatable {
    /// What the bisection re-executed, against what a linear replay of both runs would have.
    public struct Cost: Sendable, Codable, Equatable {
        /// Per trace (A, B): steps re-executed from its nearest snapshot to the state before
        /// the divergent step.
        public var restoreSteps: [Int]
        /// Executions of the divergent step itself (one per trace).
        public var divergentStepExecutions: Int
        /// All step re-executions: restores plus the divergent step on both sides.
        public var reexecutions: Int
        /// Steps a linear replay would re-execute for the same answer: each trace from its
        /// first snapshot through the divergent step (through the last common step when
        /// nothing diverges).
        public var linearSteps: Int
        /// Wall time of the whole bisection (reading, restoring, re-executing, comparing).
        public var wallSeconds: Double
        /// Mean wall time of one step re-execution here (nil when none ran).
        public var secondsPerStep: Double?
        /// An estimate, not a measurement: `linearSteps x secondsPerStep`.
        public var estimatedLinearSeconds: Double?
    }

    /// First global step whose resulting state (or any operation's output) differs; nil: none
    /// in the common steps.
    public var firstDivergentStep: Int?
    /// The site of the first entry of ``sites``: the first MXU operation, in execution order,
    /// whose output differs on some replica; `update` when every operation matched and the
    /// update differed; `state` when the runs entered the step in different states.
    public var firstDivergentSite: String?
    /// The replica of that operation (nil for `update` and `state`).
    public var replica: Int?
    /// For `update` and `state`: the first state tensor that differs.
    public var firstDivergentTensor: String?
    /// Every tensor of the divergent step that differs, in execution order: per operation
    /// the replicas ascending, then the state after the update per tensor (`update`).
    public var sites: [TensorDifference]
    /// State digests compared (binary search: about log2 of the common steps).
    public var comparisons: Int
    public var commonSteps: ClosedRange<Int>?
    /// First common step where B leaves the band A defines: a non-finite loss where A's is
    /// finite, or a train accuracy more than ``accuracyBand`` from A's at the same step.
    public var onsetStep: Int?
    public var onsetEvidence: String?
    /// The classifier's accuracy band (``ClassifierThresholds/accuracyBand``) the onset used.
    public var accuracyBand: Float
    public var cost: Cost
}

/// Bisection: a binary search over the recorded per-step state digests finds the step; that
/// one step is then re-executed on both sides from their snapshots (a faulty trace's recorded
/// injection re-applied, both checked against their recorded digests) and every MXU output
/// and the updated state are compared element by element.
public enum Bisect {
    /// Bisects `a` (the reference, e.g. golden) against `b`. `threads`: host threads for the
    /// re-executions (results do not depend on it). `thresholds.accuracyBand` sets the onset's
    /// band.
    public static func run(_ a: TraceReader, _ b: TraceReader, threads: Int = 1,
                           thresholds: ClassifierThresholds = .init()) throws -> BisectResult {
        let clock = ContinuousClock()
        let started = clock.now
        guard a.manifest.config == b.manifest.config else {
            throw BisectError.differentRuns("\(a.directory) and \(b.directory) record different configurations (\(describe(a.manifest.config)) vs \(describe(b.manifest.config)))")
        }
        guard a.manifest.dataDigest == b.manifest.dataDigest else {
            throw BisectError.differentRuns("\(a.directory) and \(b.directory) were recorded on different data (digests \(a.manifest.dataDigest) and \(b.manifest.dataDigest))")
        }
        let ra = Dictionary(try a.stepRecords().map { ($0.step, $0) }, uniquingKeysWith: { x, _ in x })
        let rb = Dictionary(try b.stepRecords().map { ($0.step, $0) }, uniquingKeysWith: { x, _ in x })
        let common = Set(ra.keys).intersection(rb.keys).sorted()
        let point = { (r: StepRecord) in StepPoint(step: r.step, loss: r.loss, accuracy: r.accuracy) }
        let onset = onset(common.compactMap { s in ra[s].flatMap { x in rb[s].map { (point(x), point($0)) } } }, band: thresholds.accuracyBand)
        var result = BisectResult(firstDivergentStep: nil, firstDivergentSite: nil, replica: nil, firstDivergentTensor: nil, sites: [],
                                  comparisons: 0, commonSteps: common.first.flatMap { lo in common.last.map { lo...$0 } },
                                  onsetStep: onset?.step, onsetEvidence: onset?.evidence, accuracyBand: thresholds.accuracyBand,
                                  cost: .init(restoreSteps: [0, 0], divergentStepExecutions: 0, reexecutions: 0, linearSteps: 0, wallSeconds: 0))
        func linear(through end: Int) -> Int {
            [a, b].reduce(0) { sum, t in sum + max(0, end + 1 - (t.snapshotSteps.first ?? end + 1)) }
        }
        func finish(_ r: BisectResult) -> BisectResult {
            var r = r
            r.cost.wallSeconds = seconds(clock.now - started)
            r.cost.estimatedLinearSeconds = r.cost.secondsPerStep.map { $0 * Double(r.cost.linearSteps) }
            return r
        }
        guard let lo = common.first, let hi = common.last else {
            func span(_ r: [Int: StepRecord]) -> String { r.keys.min().flatMap { lo in r.keys.max().map { "steps \(lo)...\($0)" } } ?? "no steps" }
            throw BisectError.noCommonStep("\(a.directory) (\(span(ra))) and \(b.directory) (\(span(rb))) record no step in common: nothing to compare")
        }

        var comparisons = 0
        func differs(_ s: Int) -> Bool {
            comparisons += 1
            return ra[s]?.stateDigest != rb[s]?.stateDigest
        }
        let step: Int
        if differs(lo) {
            step = lo
        } else if differs(hi) {
            // Binary search: the states agree after `left - 1` and differ after `right`.
            var (left, right) = (lo + 1, hi)
            while left < right {
                let mid = (left + right) / 2
                if differs(mid) { right = mid } else { left = mid + 1 }
            }
            step = right
        } else if ra[lo]?.siteDigests != rb[lo]?.siteDigests {
            // The states agree, but operations of the first common step did not: a fault
            // masked exactly within that step (a replay's first step is its injected one).
            // Traces whose operation digests were taken differently always come here: the
            // re-execution below decides.
            step = lo
        } else {
            result.comparisons = comparisons
            result.cost.linearSteps = linear(through: hi)
            return finish(result)
        }
        result.comparisons = comparisons
        result.firstDivergentStep = step
        result.cost.linearSteps = linear(through: step)

        let (differences, cost) = try reexecute(step: step, a, b, records: (ra, rb), threads: threads)
        result.sites = differences
        if differences.isEmpty && a.manifest.outputDigests != b.manifest.outputDigests {
            // Re-executed only because the records could not say: nothing differs.
            result.firstDivergentStep = nil
            result.cost.linearSteps = linear(through: hi)
        }
        result.cost.restoreSteps = cost.restoreSteps
        result.cost.divergentStepExecutions = cost.divergentStepExecutions
        result.cost.reexecutions = cost.reexecutions
        result.cost.secondsPerStep = cost.secondsPerStep
        if let first = differences.first {
            (result.firstDivergentSite, result.replica, result.firstDivergentTensor) = (first.site, first.replica, first.tensor)
        }
        return finish(result)
    }

    /// Re-executes `step` on both sides and compares every MXU output (B's against A's, one
    /// tensor at a time as B produces it, so that at most one copy of the step's outputs is
    /// held) and the updated state.
    static func reexecute(step: Int, _ a: TraceReader, _ b: TraceReader, records: ([Int: StepRecord], [Int: StepRecord]),
                          threads: Int) throws -> ([TensorDifference], BisectResult.Cost) {
        let m = a.manifest
        let data = try DatasetSource.parse(m.dataset).load()
        let digest = TraceRecorder.dataDigest(data).description
        guard digest == m.dataDigest else {
            throw BisectError.differentRuns("\(a.directory): data set '\(m.dataset)' loads as digest \(digest), the trace was recorded on \(m.dataDigest)")
        }
        let run = try TrainingRun(config: m.config, data: data, threads: threads)
        let sideA = try Side(reader: a, run: run, records: records.0)
        let sideB = try Side(reader: b, run: run, records: records.1)
        let clock = ContinuousClock()
        var busy = Duration.zero

        let t0 = clock.now
        let (beforeA, restoreA) = try sideA.state(before: step)
        let (beforeB, restoreB) = try sideB.state(before: step)
        busy += clock.now - t0

        var differences: [TensorDifference] = []
        if beforeA.digest != beforeB.digest { differences += try compareStates(beforeA, beforeB, site: "state", model: run.model, optimizer: m.config.optimizer) }

        let outputs = StepOutputs(replicas: m.config.replicas)
        let t1 = clock.now
        let afterA = try sideA.execute(from: beforeA, capture: outputs.store)
        let afterB = try sideB.execute(from: beforeB, capture: outputs.compare)
        busy += clock.now - t1
        if let problem = outputs.problem {
            throw BisectError.notReproduced(directory: b.directory, step: step, reason: problem)
        }
        differences += outputs.differences
        differences += try compareStates(afterA, afterB, site: "update", model: run.model, optimizer: m.config.optimizer)

        let executions = restoreA + restoreB + 2
        return (differences, .init(restoreSteps: [restoreA, restoreB], divergentStepExecutions: 2, reexecutions: executions,
                                   linearSteps: 0, wallSeconds: 0, secondsPerStep: seconds(busy) / Double(executions)))
    }

    /// Per state tensor (named as snapshots name them), how `y` differs from `x`.
    static func compareStates(_ x: TrainingState, _ y: TrainingState, site: String, model: any Model,
                              optimizer: OptimizerConfig) throws -> [TensorDifference] {
        let layout = try StateLayout(x, model: model, optimizer: optimizer)
        let (fx, fy) = (try layout.flatten(x), try layout.flatten(y))
        let parameters = model.parameterShapes.count
        return layout.tensors.enumerated().compactMap { i, t in
            // Parameters, then each slot of every parameter (same shapes), then the model state.
            let slotted = parameters * (1 + layout.slotNames.count)
            let shape = i < slotted ? model.parameterShapes[i % parameters] : model.modelState[i - slotted].shape
            return TensorDifference.compare(Array(fx[t.range]), Array(fy[t.range]), shape: shape, site: site, tensor: t.name,
                                            kind: t.kind.description)
        }
    }

    /// The first common step where B leaves A's band (see ``BisectResult/onsetStep``).
    static func onset(_ pairs: [(a: StepPoint, b: StepPoint)], band: Float) -> (step: Int, evidence: String)? {
        for (x, y) in pairs {
            if !y.loss.isFinite && x.loss.isFinite {
                return (y.step, "loss \(y.loss) at step \(y.step) (golden \(x.loss))")
            }
            if abs(y.accuracy - x.accuracy) > band {
                return (y.step, "train accuracy \(y.accuracy) at step \(y.step), golden \(x.accuracy) (band \(band))")
            }
        }
        return nil
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    static func describe(_ c: TrainingConfig) -> String {
        "\(c.workload) \(c.scaleName), \(c.replicas) replicas, \(c.optimizer.kind.rawValue), seed \(c.seed), \(c.chip.name), \(c.precision.rawValue)"
    }

    /// One trace's side of the bisection: its run and the fault its manifest records, if any.
    struct Side {
        let reader: TraceReader
        let restorer: TraceRestorer
        let records: [Int: StepRecord]
        let injection: (target: InjectionTarget, hook: any OperandHook)?

        init(reader: TraceReader, run: TrainingRun, records: [Int: StepRecord]) throws {
            self.reader = reader
            self.restorer = try TraceRestorer(reader: reader, run: run)
            self.records = records
            if let recorded = reader.manifest.injection {
                do {
                    self.injection = try FaultReplay.rearm(recorded, config: reader.manifest.config, model: run.model)
                } catch {
                    throw BisectError.badInjection(file: TraceWriter.manifestPath(reader.directory), reason: "\(error)")
                }
            } else {
                self.injection = nil
            }
        }

        func hook(_ step: Int) -> (any OperandHook)? {
            injection?.target.globalStep == step ? injection?.hook : nil
        }

        /// The state before `step` (after `step` updates): the nearest snapshot at or before it,
        /// then re-execution checked against the recorded digests. Also returns the steps
        /// re-executed.
        func state(before step: Int) throws -> (TrainingState, Int) {
            let snapshots = reader.snapshotSteps
            guard let from = snapshots.last(where: { $0 <= step }) else {
                throw BisectError.noSnapshot(file: reader.framesPath, step: step, snapshots: TraceReader.ranges(snapshots))
            }
            return (try restorer.replay(from: try reader.snapshot(at: from), to: step, hook: hook), step - from)
        }

        /// Executes the step `state` is before, handing every MXU output to `capture`, and
        /// checks the step's output digests and resulting state against the trace's record.
        /// `wrap` may put a hook of its own around the step's (the recorded fault's, if any).
        func execute(from state: TrainingState, capture: OutputCapture? = nil,
                     wrap: ((any OperandHook)?) -> (any OperandHook)? = { $0 }) throws -> TrainingState {
            let run = restorer.run, step = state.step
            let g = run.trainer.gradients(state, batches: run.batches(step: step), hook: wrap(hook(step)),
                                          digests: reader.manifest.outputDigests, capture: capture)
            let next = run.trainer.apply(g, to: state)
            guard let record = records[step] else {
                throw BisectError.notReproduced(directory: reader.directory, step: step, reason: "the trace has no record of it")
            }
            let computed = g.siteDigests.map { $0.map(\.digest.description) }
            let injected = injection.map { " (re-applying its recorded injection at \($0.target.site.name), replica \($0.target.replica), step \($0.target.globalStep))" } ?? ""
            if computed != record.siteDigests {
                let sites = reader.manifest.sites
                var first = "the number of operations"
                search: for r in computed.indices {
                    for i in computed[r].indices where r >= record.siteDigests.count || i >= record.siteDigests[r].count || computed[r][i] != record.siteDigests[r][i] {
                        first = "\(i < sites.count ? sites[i] : "operation \(i)") on replica \(r)"
                        break search
                    }
                }
                throw BisectError.notReproduced(directory: reader.directory, step: step, reason: "the output digest of \(first) differs from the recorded one\(injected)")
            }
            guard next.digest.description == record.stateDigest else {
                throw BisectError.notReproduced(directory: reader.directory, step: step,
                                                reason: "state digest \(next.digest), the trace recorded \(record.stateDigest)\(injected)")
            }
            return next
        }
    }
}

/// Side A's MXU outputs of the divergent step, per replica in execution order, each dropped
/// once side B's counterpart has been compared with it. Filled and read from the replicas'
/// threads; every entry is keyed by (operation index, replica), so the result does not depend
/// on their scheduling.
final class StepOutputs: @unchecked Sendable {
    private let lock = NSLock()
    private var outputs: [[(site: SiteID, values: [Float])?]]
    private var next: [Int]
    private var found: [(index: Int, replica: Int, difference: TensorDifference)] = []
    private(set) var problem: String?

    init(replicas: Int) {
        outputs = Array(repeating: [], count: replicas)
        next = Array(repeating: 0, count: replicas)
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// Keeps side A's output (an ``OutputCapture``).
    func store(replica: Int, site: SiteID, shape: [Int], values: [Float]) {
        locked { outputs[replica].append((site, values)) }
    }

    /// Compares side B's output with A's at the same place in the replica's sequence (an
    /// ``OutputCapture``).
    func compare(replica: Int, site: SiteID, shape: [Int], values: [Float]) {
        let (index, a): (Int, (site: SiteID, values: [Float])?) = locked {
            let i = next[replica]
            next[replica] += 1
            guard i < outputs[replica].count else { return (i, nil) }
            defer { outputs[replica][i] = nil }
            return (i, outputs[replica][i])
        }
        guard let a, a.site == site else {
            locked { problem = problem ?? "operation \(index) of replica \(replica) is \(site.name) on one side and \(a?.site.name ?? "missing") on the other" }
            return
        }
        if let d = TensorDifference.compare(a.values, values, shape: shape, site: site.name, replica: replica) {
            locked { found.append((index, replica, d)) }
        }
    }

    /// The differences in execution order: by operation, then replica.
    var differences: [TensorDifference] {
        locked { found.sorted { ($0.index, $0.replica) < ($1.index, $1.replica) }.map(\.difference) }
    }
}
