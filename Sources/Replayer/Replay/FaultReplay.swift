import Foundation
import Recorder
import Sim

/// Errors of a replay; each names the spec or the trace and what does not fit.
public enum ReplayError: Error, CustomStringConvertible, Equatable {
    case specMismatch(String)

    public var description: String {
        switch self {
        case .specMismatch(let m): return m
        }
    }
}

/// What a replay found.
public struct ReplayResult: Sendable, Codable, Equatable {
    public struct Injection: Sendable, Codable, Equatable {
        public var epoch: Int
        public var step: Int
        public var globalStep: Int
        public var site: String
        public var role: String
        public var faultModel: String
        public var replica: Int
        public var positions: [[Int]]
        public var values: [Float]
    }

    public struct Divergence: Sendable, Codable, Equatable {
        public var globalStep: Int
        public var site: String
        public var replica: Int
    }

    public struct Accuracy: Sendable, Codable, Equatable {
        public var trainAccuracy: Float
        public var testAccuracy: Float
    }

    public var outcome: String
    public var evidence: [String]
    public var injection: Injection
    /// The first MXU operation (execution order) whose output differed from golden; nil when
    /// nothing differed.
    public var firstDivergence: Divergence?
    /// `masked-exact` or `non-finite` when the run stopped before its last step.
    public var stoppedEarly: String?
    public var stepsRun: Int
    public var golden: Accuracy
    public var faulty: Accuracy
    public var trace: String
}

/// The golden side of replays, shared by the replays of a campaign: the restorer (data loaded
/// once), the golden step records decoded once, and the golden test accuracy per step, from
/// the trace's epoch summaries where it records them, else evaluated once and cached.
/// A reference type (the cache); safe to share between threads.
public final class GoldenReference: @unchecked Sendable {
    public let restorer: TraceRestorer
    /// Golden step records by global step.
    public let records: [Int: StepRecord]
    /// Test accuracy the golden trace records, by the step count after which it was measured.
    let recordedTests: [Int: Float]
    private let lock = NSLock()
    private var evaluated: [Int: Float] = [:]

    public init(restorer: TraceRestorer) throws {
        self.restorer = restorer
        let reader = restorer.reader
        records = Dictionary(try reader.stepRecords().map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
        // An epoch summary is written after its epoch's last step, or after the run's last
        // step when that ends mid-epoch: epoch * stepsPerEpoch + its steps.
        let perEpoch = reader.manifest.stepsPerEpoch
        recordedTests = Dictionary(try reader.epochSummaries().map { ($0.epoch * perEpoch + $0.steps, $0.testAccuracy) },
                                   uniquingKeysWith: { _, b in b })
    }

    /// The golden test accuracy after `step` updates, if the trace records it.
    public func recordedTestAccuracy(at step: Int) -> Float? { recordedTests[step] }

    /// The golden test accuracy after `step` updates: recorded, cached, or evaluated now.
    public func testAccuracy(at step: Int) throws -> Float {
        if let t = recordedTests[step] { return t }
        lock.lock()
        let cached = evaluated[step]
        lock.unlock()
        if let cached { return cached }
        // Evaluated outside the lock: two threads may both evaluate one step, to the same value.
        let t = restorer.run.evaluate(try restorer.state(at: step)).accuracy
        lock.lock()
        evaluated[step] = t
        lock.unlock()
        return t
    }

    /// Golden evaluations run so far (not counting recorded ones).
    public var evaluations: Int {
        lock.lock()
        defer { lock.unlock() }
        return evaluated.count
    }
}

/// Fork, inject, continue, classify.
public enum FaultReplay {
    /// Replays `spec` against the golden trace: restores the state before the target step
    /// (checking every re-executed step against the golden digests), runs that step with the
    /// fault, continues for `stepsAfterInjection` steps (default: to the end of the golden
    /// run) while writing the faulty run as a trace to `out`, stops early when the state is
    /// bit-identical to golden again (`masked-exact`) or the loss is non-finite, and
    /// classifies the outcome.
    public static func run(golden reader: TraceReader, spec: InjectionSpec, specName: String, stepsAfterInjection: Int?, out: String,
                           threads: Int = 1, thresholds: ClassifierThresholds = .init(),
                           report: (TrainingEvent) -> Void = { _ in }) throws -> ReplayResult {
        try checkWorkload(spec, reader, specName: specName)
        let golden = try GoldenReference(restorer: TraceRestorer(reader: reader, threads: threads))
        return try run(golden: golden, spec: spec, specName: specName,
                       options: .init(stepsAfterInjection: stepsAfterInjection, thresholds: thresholds), out: out, report: report)
    }

    /// How a replay runs, beyond the spec.
    public struct Options: Sendable, Equatable {
        /// Steps to train after the injected one (nil: to the end of the golden run).
        public var stepsAfterInjection: Int?
        public var thresholds: ClassifierThresholds
        /// Snapshot interval of the faulty trace (nil: the golden's). The fork state and the
        /// last state are always written.
        public var snapshotEvery: Int?
        /// `.atEndOnly`: evaluate the test set (faulty, and golden where the golden trace has
        /// no record of it) only when the run reaches its last planned step; a run that
        /// stopped early (masked-exact, non-finite) needs no test accuracy to be classified,
        /// and reports NaN for both.
        public var testEvaluation: TraceRecorder.TestEvaluation
        /// Stop at masked-exact or a non-finite loss (false: always run to the planned end,
        /// for measuring what early stopping saves; the outcome is the same).
        public var earlyStop: Bool

        public init(stepsAfterInjection: Int? = nil, thresholds: ClassifierThresholds = .init(), snapshotEvery: Int? = nil,
                    testEvaluation: TraceRecorder.TestEvaluation = .everyEpoch, earlyStop: Bool = true) {
            self.stepsAfterInjection = stepsAfterInjection
            self.thresholds = thresholds
            self.snapshotEvery = snapshotEvery
            self.testEvaluation = testEvaluation
            self.earlyStop = earlyStop
        }
    }

    static func checkWorkload(_ spec: InjectionSpec, _ reader: TraceReader, specName: String) throws {
        guard spec.workload == reader.manifest.config.workload.rawValue else {
            throw ReplayError.specMismatch("\(specName): the spec is for workload '\(spec.workload)', the golden trace \(reader.directory) is '\(reader.manifest.config.workload.rawValue)'")
        }
    }

    /// ``run(golden:spec:specName:stepsAfterInjection:out:threads:thresholds:report:)`` against
    /// a golden side that many replays share (a campaign's: the data loaded once, the golden
    /// records decoded once, golden test evaluations cached).
    public static func run(golden: GoldenReference, spec: InjectionSpec, specName: String, options: Options, out: String,
                           report: (TrainingEvent) -> Void = { _ in }) throws -> ReplayResult {
        let reader = golden.restorer.reader
        try checkWorkload(spec, reader, specName: specName)
        let m = reader.manifest
        let restorer = golden.restorer
        let model = restorer.run.model
        let site = parseSite(spec.site)
        let role = spec.faultModel.tensor
        guard let shape = model.operandShape(site, role) else {
            let known = model.sites.prefix(4).map(\.name).joined(separator: ", ")
            throw ReplayError.specMismatch("\(specName): unknown layer '\(spec.site)' for \(m.config.workload.rawValue) \(m.config.scale.name) (sites: \(known), ... \(model.sites.count) in all)")
        }
        guard spec.replica < m.config.replicas else {
            throw ReplayError.specMismatch("\(specName): target_worker \(spec.replica) does not exist; the run has \(m.config.replicas) replicas (0...\(m.config.replicas - 1))")
        }
        if let s = spec.step, s >= m.stepsPerEpoch {
            throw ReplayError.specMismatch("\(specName): target_step \(s) is past the end of an epoch (\(m.stepsPerEpoch) steps)")
        }
        let globalStep = spec.globalStep ?? (spec.epoch ?? 0) * m.stepsPerEpoch + (spec.step ?? 0)
        guard globalStep < reader.completedSteps else {
            throw ReplayError.specMismatch("\(specName): epoch \(globalStep / m.stepsPerEpoch) step \(globalStep % m.stepsPerEpoch) is global step \(globalStep); the golden trace has steps 0...\(reader.completedSteps - 1)")
        }
        let target = InjectionTarget(site: site, role: role, replica: spec.replica, globalStep: globalStep)
        let hook: InjectionHook
        if let positions = spec.positions, let values = spec.values {
            do {
                hook = InjectionHook(target: target, corruption: try InjectionHook.corruption(positions: positions, values: values, shape: shape,
                                                                                              operand: "the \(role.rawValue) of \(site.name)"))
            } catch {
                throw ReplayError.specMismatch("\(specName): \(error)")
            }
        } else {
            hook = InjectionHook(target: target, model: spec.faultModel, seed: spec.seed ?? 0)
        }

        let start = try restorer.state(at: globalStep)
        let end = options.stepsAfterInjection.map { min(reader.completedSteps, globalStep + 1 + $0) } ?? reader.completedSteps
        var manifest = m
        manifest.plannedSteps = end
        manifest.complete = false
        manifest.completedSteps = 0
        if let every = options.snapshotEvery { manifest.snapshotEvery = max(1, every) }
        func injection(_ c: Corruption?) -> TraceManifest.Injection {
            .init(golden: reader.directory, site: site.name, role: role.rawValue, replica: target.replica, globalStep: globalStep,
                  faultModel: spec.faultModel.rawValue, seed: spec.seed, positions: c?.positions(in: shape) ?? [], values: c?.values ?? [])
        }
        manifest.injection = injection(hook.applied)
        let writer = try TraceWriter(creating: out, manifest: manifest)
        try writer.appendSnapshot(start)

        let goldenRecords = golden.records
        var divergence: ReplayResult.Divergence?
        var stopped: String?
        let final = try TraceRecorder.loop(run: restorer.run, writer: writer, from: start, to: end,
                                           hook: { $0 == globalStep ? hook : nil },
                                           stop: { record, _ in
            if record.step == globalStep, spec.positions == nil { try? writer.setInjection(injection(hook.applied)) }
            if divergence == nil, let g = goldenRecords[record.step] {
                divergence = firstDivergence(record, g, sites: model.sites)
            }
            guard options.earlyStop, stopped == nil else { return false }
            if !record.loss.isFinite { stopped = "non-finite"; return true }
            if goldenRecords[record.step]?.stateDigest == record.stateDigest { stopped = "masked-exact"; return true }
            return false
        }, evaluation: options.testEvaluation, report: report)

        let faultyTrace = try TraceReader(directory: out)
        let faultyRecords = try faultyTrace.stepRecords()
        let faultyTest = try faultyTrace.epochSummaries().last?.testAccuracy ?? .nan
        // Golden test accuracy at the same step: its own record if the trace has one, else
        // the restored golden state evaluated (once per step and golden reference).
        let goldenTest: Float
        if stopped == "masked-exact" {
            goldenTest = faultyTest
        } else if options.testEvaluation == .atEndOnly && final.step < end {
            goldenTest = golden.recordedTestAccuracy(at: final.step) ?? .nan
        } else {
            goldenTest = try golden.testAccuracy(at: final.step)
        }
        let goldenPoints = goldenRecords.values.filter { $0.step >= globalStep && $0.step < final.step }.sorted { $0.step < $1.step }
            .map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
        let faultyPoints = faultyRecords.map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
        let (outcome, evidence) = Classifier.classify(golden: goldenPoints, faulty: faultyPoints, goldenTest: goldenTest, faultyTest: faultyTest,
                                                      classes: m.config.scale.classes, exact: stopped == "masked-exact", thresholds: options.thresholds)
        let window = max(1, options.thresholds.finalWindow)
        func mean(_ xs: [Float]) -> Float { xs.isEmpty ? .nan : xs.reduce(0, +) / Float(xs.count) }
        return ReplayResult(
            outcome: outcome.rawValue, evidence: evidence,
            injection: .init(epoch: globalStep / m.stepsPerEpoch, step: globalStep % m.stepsPerEpoch, globalStep: globalStep, site: site.name,
                             role: role.rawValue, faultModel: spec.faultModel.rawValue, replica: target.replica,
                             positions: hook.applied?.positions(in: shape) ?? [], values: hook.applied?.values ?? []),
            firstDivergence: divergence, stoppedEarly: final.step < end ? stopped : nil, stepsRun: faultyRecords.count,
            golden: .init(trainAccuracy: mean(goldenPoints.suffix(window).map(\.accuracy)), testAccuracy: goldenTest),
            faulty: .init(trainAccuracy: mean(faultyPoints.suffix(window).map(\.accuracy)), testAccuracy: faultyTest),
            trace: out)
    }

    /// `basicblock_1_basic_0_conv1_grad_in` -> (`basicblock_1_basic_0_conv1`, grad_in).
    public static func parseSite(_ name: String) -> SiteID {
        for kind in [OperationKind.gradIn, .gradWt] where name.hasSuffix(kind.rawValue) {
            return SiteID(layer: String(name.dropLast(kind.rawValue.count)), kind: kind)
        }
        return SiteID(layer: name, kind: .forward)
    }

    /// The first site, in execution order, whose output digest differs on some replica.
    static func firstDivergence(_ faulty: StepRecord, _ golden: StepRecord, sites: [SiteID]) -> ReplayResult.Divergence? {
        for (i, site) in sites.enumerated() {
            for r in faulty.siteDigests.indices where r < golden.siteDigests.count && i < faulty.siteDigests[r].count {
                if faulty.siteDigests[r][i] != golden.siteDigests[r][i] {
                    return .init(globalStep: faulty.step, site: site.name, replica: r)
                }
            }
        }
        return nil
    }
}
