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
        /// Software faults: where in the operand and what was written; hardware faults:
        /// `[row, column]` of the product elements the fault changed, and their faulty values.
        public var positions: [[Int]]
        public var values: [Float]
        public var hardware: HardwareFault?
        /// The values at ``positions`` before the fault (``InjectionRecord/goldenValues``).
        public var goldenValues: [Float]?
        /// A bit-flip model's flipped bit per position, in ``bitFormat``'s encoding
        /// (``InjectionRecord/bits``).
        public var bits: [Int]?
        public var bitFormat: OperandPrecision?
        /// Elements the fault changed (``InjectionRecord/activated``).
        public var activated: Int?
        /// A hardware fault: whether the struck PE held data of the operation
        /// (``InjectionRecord/peInUse``).
        public var peInUse: Bool?

        /// The record as a result reports it (with the step within its epoch).
        public init(_ r: InjectionRecord, stepsPerEpoch: Int) {
            epoch = r.globalStep / stepsPerEpoch
            step = r.globalStep % stepsPerEpoch
            globalStep = r.globalStep
            site = r.site
            role = r.role.rawValue
            faultModel = r.faultName
            replica = r.replica
            positions = r.positions.indices
            values = r.values
            hardware = r.hardware
            goldenValues = r.goldenValues
            bits = r.bits
            bitFormat = r.bitFormat
            activated = r.activated
            peInUse = r.peInUse
        }
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
    /// The global step at which the outcome showed itself (``Classification/onset``); nil for
    /// Masked.
    public var onset: Int?
    /// False when the golden had not learned over the compared steps (no degrade class could
    /// be assigned; ``Classification/goldenLearned``).
    public var goldenLearned: Bool
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
    /// The faulty run's per-step train loss and batch accuracy, from the injected step to the
    /// last step run (what the classifier compared).
    public var faultyPoints: [StepPoint]
    /// The golden run's points over the same steps.
    public var goldenPoints: [StepPoint]
    /// What mitigation found and did (nil: the replay ran without).
    public var mitigation: MitigationOutcome?
}

/// A replay's mitigation in brief: whether and when it detected the fault, and what it did.
public struct MitigationOutcome: Sendable, Codable, Equatable {
    /// The detectors and response (``Mitigation/description``).
    public var settings: String
    /// The detectors that ran (their spellings, in the order configured).
    public var configured: [String]
    public var detected: Bool
    /// The first global step a detector fired on.
    public var firstDetection: Int?
    /// Steps from the injected step to the first detection (0: in the injected step).
    public var latency: Int?
    /// Every detector that fired at least once (its spelling), in the order configured.
    public var detectors: [String]
    public var restores: Int
    public var skips: Int
    /// Steps computed again because of restores (the cost of recovery).
    public var reexecutedSteps: Int

    public init(settings: Mitigation, events: [MitigationEvent], injectedStep: Int) {
        self.settings = settings.description
        configured = settings.detectors.map(\.description)
        detected = !events.isEmpty
        firstDetection = events.map(\.step).min()
        latency = firstDetection.map { $0 - injectedStep }
        let fired = Set(events.flatMap { $0.detections.map(\.detector) })
        detectors = settings.detectors.map(\.description).filter(fired.contains)
        restores = events.filter { $0.action == .restored }.count
        skips = events.filter { $0.action == .skipped }.count
        reexecutedSteps = events.reduce(0) { sum, e in sum + (e.restoredTo.map { e.step - $0 + 1 } ?? 0) }
    }
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
    /// Guards `evaluated` and `inFlight`; signalled when an evaluation ends.
    private let condition = NSCondition()
    private var evaluated: [Int: Float] = [:]
    /// Steps some thread is evaluating now (the others wait for its value).
    private var inFlight: Set<Int> = []
    private var runs = 0

    public init(restorer: TraceRestorer) throws {
        self.restorer = restorer
        let reader = restorer.reader
        records = restorer.records
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
        condition.lock()
        while evaluated[step] == nil && inFlight.contains(step) { condition.wait() }
        if let cached = evaluated[step] {
            condition.unlock()
            return cached
        }
        inFlight.insert(step)
        condition.unlock()
        // Evaluated outside the lock (other steps proceed); a second asker of this step waits.
        let result = Result { try restorer.run.evaluate(restorer.state(at: step)).accuracy }
        condition.lock()
        inFlight.remove(step)
        runs += 1
        if case .success(let t) = result { evaluated[step] = t }
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    /// Golden evaluations run so far (not counting recorded ones).
    public var evaluations: Int {
        condition.lock()
        defer { condition.unlock() }
        return runs
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
                           threads: Int = 1, thresholds: ClassifierThresholds = .init(), sixteen: SixteenSemantics = .fidelity,
                           mitigation: Mitigation? = nil, report: (TrainingEvent) -> Void = { _ in }) throws -> ReplayResult {
        try checkWorkload(spec, reader, specName: specName)
        let golden = try GoldenReference(restorer: TraceRestorer(reader: reader, threads: threads))
        return try run(golden: golden, spec: spec, specName: specName,
                       options: .init(stepsAfterInjection: stepsAfterInjection, thresholds: thresholds, sixteen: sixteen, mitigation: mitigation),
                       out: out, report: report)
    }

    /// How a replay runs, beyond the spec.
    public struct Options: Sendable, Equatable {
        /// Steps to train after the injected one (nil: to the end of the golden run).
        public var stepsAfterInjection: Int?
        public var thresholds: ClassifierThresholds
        /// Snapshot interval of the faulty trace (nil: the golden's). The fork state and the
        /// last state are always written.
        public var snapshotEvery: Int?
        /// When the faulty run evaluates the test set (the golden side follows: its recorded
        /// accuracy, or its restored state evaluated, at the faulty run's last step). A run that
        /// stopped early (masked-exact, non-finite) needs no test accuracy to be classified:
        /// under `.everyEpochUnlessStopped` (the default) and `.atEndOnly` it spends no
        /// evaluation on one and reports NaN for both (the golden's recorded accuracy where
        /// the trace has it); `.atEndOnly` also skips the epoch ends on the way.
        public var testEvaluation: TraceRecorder.TestEvaluation
        /// Stop at masked-exact or a non-finite loss (false: always run to the planned end,
        /// for measuring what early stopping saves; the outcome is the same).
        public var earlyStop: Bool
        /// What the `_16` fault models mean.
        public var sixteen: SixteenSemantics
        /// Detectors and their response during the faulty run (nil: none).
        public var mitigation: Mitigation?

        public init(stepsAfterInjection: Int? = nil, thresholds: ClassifierThresholds = .init(), snapshotEvery: Int? = nil,
                    testEvaluation: TraceRecorder.TestEvaluation = .everyEpochUnlessStopped, earlyStop: Bool = true,
                    sixteen: SixteenSemantics = .fidelity, mitigation: Mitigation? = nil) {
            self.sixteen = sixteen
            self.mitigation = mitigation
            self.stepsAfterInjection = stepsAfterInjection
            self.thresholds = thresholds
            self.snapshotEvery = snapshotEvery
            self.testEvaluation = testEvaluation
            self.earlyStop = earlyStop
        }
    }

    /// The operation, operand and operand shape `spec` strikes in `model`, checked (the site
    /// exists, the replica does).
    static func resolve(_ spec: InjectionSpec, specName: String, config: TrainingConfig,
                        model: any Model) throws -> (site: SiteID, role: OperandRole, shape: [Int]) {
        // A hardware fault corrupts the operation's product, so it shows in the output.
        let role = spec.faultModel?.tensor ?? .output
        let wholeStep = spec.hardware != nil && spec.site == wholeStepSite
        let operation = model.operation(named: spec.site)
        guard wholeStep || operation != nil else {
            let known = model.sites.prefix(4).map(\.name).joined(separator: ", ")
            throw ReplayError.specMismatch("\(specName): unknown layer '\(spec.site)' for \(config.title) (sites: \(known), ... \(model.sites.count) in all; `tpufi sites` lists them)")
        }
        guard spec.replica < config.replicas else {
            throw ReplayError.specMismatch("\(specName): target_worker \(spec.replica) does not exist; the run has \(config.replicas) replicas (0...\(config.replicas - 1))")
        }
        return (operation?.site ?? SiteID(layer: wholeStepSite, kind: .forward), role, operation?.shape(of: role) ?? [])
    }

    /// Checks `spec` against the workload and scale of `config` without a golden trace: the
    /// workload, the site, the replica, the positions (in range of the operand they index) and
    /// a hardware fault's PE, register, bit and cycle against the operation's schedule on the
    /// chip. Returns a one-line description of what the spec strikes. The step is checked only
    /// against a golden run (``run(golden:spec:specName:options:out:report:)``).
    public static func check(_ spec: InjectionSpec, specName: String, config: TrainingConfig) throws -> String {
        try check(spec, specName: specName, config: config, model: try config.makeModel())
    }

    /// ``check(_:specName:config:)`` with the model of `config` already built (a campaign
    /// checks its listed specs against one).
    static func check(_ spec: InjectionSpec, specName: String, config: TrainingConfig, model: any Model) throws -> String {
        if let w = spec.workload, w != config.workload {
            throw ReplayError.specMismatch("\(specName): the spec is for workload '\(w)', not '\(config.workload)'")
        }
        let (site, role, shape) = try resolve(spec, specName: specName, config: config, model: model)
        let target = InjectionTarget(site: site, role: role, replica: spec.replica, globalStep: spec.globalStep ?? 0)
        _ = try arm(spec, specName: specName, target: target, shape: shape, config: config, model: model, sixteen: .fidelity)
        let what = spec.hardware.map { "\($0)" } ?? spec.faultModel.map { "\($0.rawValue) into the \(role.rawValue)" } ?? "?"
        let positions = spec.positions.map { "\($0.count) position(s) inside \(shape.map(String.init).joined(separator: "x"))" }
            ?? (spec.hardware == nil ? "positions drawn from seed \(spec.seed ?? 0)" : "mapped through the schedule")
        return "\(specName): \(what) of \(spec.site) on replica \(spec.replica) (\(config.title)): \(positions)"
    }

    /// The global step `spec` targets (`globalStep`, or `epoch` and `step`), checked to lie
    /// inside a golden run of `completedSteps` steps.
    static func globalStep(of spec: InjectionSpec, specName: String, stepsPerEpoch: Int, completedSteps: Int) throws(ReplayError) -> Int {
        if let s = spec.step, s >= stepsPerEpoch {
            throw .specMismatch("\(specName): target_step \(s) is past the end of an epoch (\(stepsPerEpoch) steps)")
        }
        let globalStep: Int
        if let g = spec.globalStep {
            globalStep = g
        } else {
            let (steps, overflow) = (spec.epoch ?? 0).multipliedReportingOverflow(by: stepsPerEpoch)
            let (sum, overflow2) = steps.addingReportingOverflow(spec.step ?? 0)
            guard !overflow, !overflow2 else {
                throw .specMismatch("\(specName): epoch \(spec.epoch ?? 0) is past the end of the golden trace (steps 0...\(completedSteps - 1), \(stepsPerEpoch) per epoch)")
            }
            globalStep = sum
        }
        guard globalStep < completedSteps else {
            throw .specMismatch("\(specName): epoch \(globalStep / stepsPerEpoch) step \(globalStep % stepsPerEpoch) is global step \(globalStep); the golden trace has steps 0...\(completedSteps - 1)")
        }
        return globalStep
    }

    static func checkWorkload(_ spec: InjectionSpec, _ reader: TraceReader, specName: String) throws {
        if let w = spec.workload, w != reader.manifest.config.workload {
            throw ReplayError.specMismatch("\(specName): the spec is for workload '\(w)', the golden trace \(reader.directory) is '\(reader.manifest.config.workload)'")
        }
    }

    /// ``run(golden:spec:specName:stepsAfterInjection:out:threads:thresholds:report:)`` against
    /// a golden side that many replays share (a campaign's: the data loaded once, the golden
    /// records decoded once, golden test evaluations cached).
    public static func run(golden: GoldenReference, spec: InjectionSpec, specName: String, options: Options, out: String,
                           report: (TrainingEvent) -> Void = { _ in }) throws -> ReplayResult {
        let reader = golden.restorer.reader
        if let k = options.stepsAfterInjection, k < 0 {
            throw ReplayError.specMismatch("--steps-after-injection must be non-negative (got \(k)): the injected step itself always runs")
        }
        try options.thresholds.validate()
        try checkWorkload(spec, reader, specName: specName)
        let m = reader.manifest
        let restorer = golden.restorer
        let model = restorer.run.model
        let (site, role, shape) = try resolve(spec, specName: specName, config: m.config, model: model)
        try options.mitigation?.validate(optimizer: m.config.optimizer, model: model)
        let globalStep = try Self.globalStep(of: spec, specName: specName, stepsPerEpoch: m.stepsPerEpoch, completedSteps: reader.completedSteps)
        let target = InjectionTarget(site: site, role: role, replica: spec.replica, globalStep: globalStep)
        let armed = try arm(spec, specName: specName, target: target, shape: shape, config: m.config, model: model, sixteen: options.sixteen)
        let hook = armed.hook

        let start = try restorer.state(at: globalStep)
        // Clamped before adding: any count past the golden's end means to the end (even Int.max).
        let end = options.stepsAfterInjection.map { min(reader.completedSteps, globalStep + 1 + min($0, reader.completedSteps)) } ?? reader.completedSteps
        var manifest = m
        // A new trace in the golden's format, at least 2 (update deltas): its records then
        // compare with the golden's (operation digests taken alike), and the replay of an
        // older golden writes the bytes the tool of its time wrote.
        manifest.formatVersion = max(m.formatVersion, 2)
        manifest.outputDigest = m.outputDigest
        manifest.plannedSteps = end
        manifest.complete = false
        manifest.completedSteps = 0
        if let every = options.snapshotEvery { manifest.snapshotEvery = max(1, every) }
        func injection() -> InjectionRecord {
            let a = armed.applied()
            return InjectionRecord(golden: reader.directory, site: site.name, role: role, replica: target.replica, globalStep: globalStep,
                                   fault: armed.fault, seed: spec.seed, positions: a.positions, values: a.values,
                                   limitedReach: armed.limitedReach ? true : nil, goldenValues: a.goldenValues, bits: a.bits,
                                   bitFormat: a.bitFormat, activated: a.activated, peInUse: a.peInUse)
        }
        manifest.injection = injection()
        manifest.mitigation = options.mitigation.map { MitigationRecord(settings: $0) }
        let writer = try TraceWriter(creating: out, manifest: manifest)
        try writer.appendSnapshot(start)

        let goldenRecords = golden.records
        var divergence: ReplayResult.Divergence?
        var stopped: String?
        var events: [MitigationEvent] = []
        let final = try TraceRecorder.loop(run: restorer.run, writer: writer, from: start, to: end,
                                           hook: { $0 == globalStep ? hook : nil },
                                           stop: { record, _ in
            // What the fault found and changed is known once the step has run (the golden
            // values; a seeded fault's draw).
            if record.step == globalStep { try writer.setInjection(injection()) }
            if record.step == globalStep, let g = goldenRecords[globalStep] {
                try proveFork(record, g, injectedSite: site, replica: target.replica, sites: model.sites, specName: specName, golden: reader.directory)
            }
            if divergence == nil, let g = goldenRecords[record.step] {
                divergence = firstDivergence(record, g, sites: model.sites)
            }
            guard options.earlyStop, stopped == nil else { return false }
            // A skipped update's non-finite loss did not reach the state.
            let skipped = events.contains { $0.step == record.step && $0.action == .skipped }
            if !record.loss.isFinite, !skipped { stopped = "non-finite"; return true }
            if goldenRecords[record.step]?.stateDigest == record.stateDigest { stopped = "masked-exact"; return true }
            return false
        }, evaluation: options.testEvaluation, mitigation: options.mitigation, mitigated: { event in
            events.append(event)
            if let settings = options.mitigation { try writer.setMitigation(MitigationRecord(settings: settings, events: events)) }
        }, report: report)

        let failures = armed.failures()
        guard failures.isEmpty else {
            throw ReplayError.specMismatch("\(specName): the fault could not be mapped onto \(failures.joined(separator: "; ")); the trace \(out) is not a valid faulty run")
        }
        let faultyTrace = try TraceReader(directory: out)
        let faultyRecords = try faultyTrace.stepRecords()
        let faultyTest = try faultyTrace.epochSummaries().last?.testAccuracy ?? .nan
        // Golden test accuracy at the same step: its own record if the trace has one, else
        // the restored golden state evaluated (once per step and golden reference).
        let goldenTest: Float
        if options.testEvaluation != .everyEpoch && final.step < end {
            goldenTest = golden.recordedTestAccuracy(at: final.step) ?? .nan
        } else if stopped == "masked-exact" {
            goldenTest = faultyTest
        } else {
            goldenTest = try golden.testAccuracy(at: final.step)
        }
        // The golden up to the faulty run's end: the steps before the injection give the
        // classifier its noise (step-to-step variability), those from it are compared.
        let goldenHistory = goldenRecords.values.filter { $0.step < final.step }.sorted { $0.step < $1.step }
            .map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
        let goldenPoints = goldenHistory.filter { $0.step >= globalStep }
        let faultyPoints = faultyRecords.map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
        // Steps whose update mitigation skipped changed nothing: their metrics (those of the
        // faulty forward pass) are not the training's, so the classifier does not see them.
        let skipped = Set(events.filter { $0.action == .skipped }.map(\.step))
        var classification = Classifier.classify(golden: goldenHistory, faulty: faultyPoints.filter { !skipped.contains($0.step) },
                                                 goldenTest: goldenTest, faultyTest: faultyTest, testCount: m.testCount,
                                                 classes: model.classes, exact: stopped == "masked-exact", thresholds: options.thresholds)
        if !skipped.isEmpty { classification.evidence.append("\(skipped.count) step(s) with a skipped update left out of the comparison: \(skipped.sorted().map(String.init).joined(separator: ", "))") }
        let window = max(1, options.thresholds.finalWindow)
        func mean(_ xs: [Float]) -> Float { xs.isEmpty ? .nan : xs.reduce(0, +) / Float(xs.count) }
        return ReplayResult(
            outcome: classification.outcome.rawValue, evidence: classification.evidence, onset: classification.onset,
            goldenLearned: classification.goldenLearned, injection: .init(injection(), stepsPerEpoch: m.stepsPerEpoch),
            firstDivergence: divergence, stoppedEarly: final.step < end ? stopped : nil, stepsRun: faultyRecords.count,
            golden: .init(trainAccuracy: mean(goldenPoints.suffix(window).map(\.accuracy)), testAccuracy: goldenTest),
            faulty: .init(trainAccuracy: mean(faultyPoints.suffix(window).map(\.accuracy)), testAccuracy: faultyTest),
            trace: out, faultyPoints: faultyPoints, goldenPoints: goldenPoints,
            mitigation: options.mitigation.map { MitigationOutcome(settings: $0, events: events, injectedStep: globalStep) })
    }

    /// What a fault applied: positions and values, and (once it has struck) what it found
    /// there and changed, as ``InjectionRecord`` records them.
    struct Applied {
        var positions: InjectionRecord.Positions
        var values: [Float]
        var goldenValues: [Float]?
        var bits: [Int]?
        var bitFormat: OperandPrecision?
        var activated: Int?
        var peInUse: Bool?
    }

    /// A fault ready to strike: its hook and what it has applied so far.
    struct ArmedFault {
        var hook: any OperandHook
        var fault: InjectionRecord.Fault
        /// Whether a `_16` corruption reaches only 16 outputs (``SixteenSemantics/fidelity``).
        var limitedReach: Bool
        /// What was applied so far: in the operand (software) or in the product (hardware).
        var applied: () -> Applied
        /// Operations the fault should have struck but could not (hardware faults whose
        /// schedule failed): the replay is then an error.
        var failures: () -> [String] = { [] }
    }

    /// Builds the hook of `spec`, checking it against the operand or operation it strikes.
    static func arm(_ spec: InjectionSpec, specName: String, target: InjectionTarget, shape: [Int],
                    config: TrainingConfig, model: any Model, sixteen: SixteenSemantics) throws -> ArmedFault {
        if let fault = spec.hardware {
            let name = target.site.name
            let operations = model.operations
            let wholeStep = name == wholeStepSite
            if wholeStep, case .transient = fault.kind {
                throw ReplayError.specMismatch("\(specName): a flip happens in one cycle of one operation: name its site (\"site\": \"all\" is for stuck-at faults, which hold for the whole step)")
            }
            if !wholeStep, let operation = operations.first(where: { $0.name == name }), !operation.isOnMXU {
                throw ReplayError.specMismatch("\(specName): \(name) runs on the vector unit, not the MXU: no PE-register fault reaches it (a software fault model can strike it)")
            }
            // The cycle is checked against the operation; a whole-step fault against every one
            // on the MXU (a stuck PE does not touch the vector unit's operations).
            for operation in operations where operation.isOnMXU && (wholeStep || operation.name == name) {
                do {
                    try HardwareInjectionHook.validate(fault, site: operation.site, shape: operation.gemm, products: operation.products,
                                                       chip: config.chip, precision: config.precision)
                } catch {
                    throw ReplayError.specMismatch("\(specName): \(error)")
                }
            }
            guard wholeStep || operations.contains(where: { $0.name == name }) else {
                throw ReplayError.specMismatch("\(specName): \(name) is not an MXU operation of this workload")
            }
            let hook = HardwareInjectionHook(site: wholeStep ? nil : target.site, replica: target.replica, fault: fault, chip: config.chip)
            // Positions: [row, column] of the product; for a whole-step fault
            // [operation index (execution order), row, column].
            let index = Dictionary(uniqueKeysWithValues: operations.enumerated().map { ($1.site, $0) })
            // The partial-sum register holds fp32 whatever the operand format.
            let bitFormat: OperandPrecision = fault.register == .partialSum ? .float32 : config.precision
            return ArmedFault(hook: hook, fault: .hardware(fault), limitedReach: false, applied: {
                let applied = hook.applied
                let values = applied.flatMap { $0.elements.map(\.faulty) }
                let struck = !applied.isEmpty
                // The hook strikes only operations the model runs, all of which are in its table.
                let positions: InjectionRecord.Positions = wholeStep
                    ? .stepProduct(applied.flatMap { op in op.elements.map { [index[op.site] ?? -1, $0.row, $0.column] } })
                    : .product(applied.flatMap { $0.elements.map { [$0.row, $0.column] } })
                return Applied(positions: positions, values: values,
                               goldenValues: struck ? applied.flatMap { $0.elements.map(\.golden) } : nil,
                               bitFormat: bitFormat, activated: struck ? values.count : nil,
                               peInUse: struck ? applied.contains { $0.peInUse } : nil)
            }, failures: { hook.failures })
        }
        // An MXU operation consumes its input and weight rounded to the operand format; an
        // output, or an operand of a vector-unit operation, as it is.
        let onMXU = model.operation(named: target.site.name)?.isOnMXU ?? false
        let consumed: (any NumberFormat)? = target.role != .output && onMXU ? config.precision.format : nil
        guard let model = spec.faultModel else { throw ReplayError.specMismatch("\(specName): no fault model and no hardware fault") }
        let limited = model.reachesSixteen && sixteen == .fidelity
        let hook: InjectionHook
        if let positions = spec.positions, let values = spec.values {
            do {
                hook = InjectionHook(target: target, corruption: try InjectionHook.corruption(positions: positions, values: values, shape: shape,
                                                                                              operand: "the \(target.role.rawValue) of \(target.site.name)"),
                                     limitReachSeed: limited ? spec.seed ?? 0 : nil)
            } catch {
                throw ReplayError.specMismatch("\(specName): \(error)")
            }
        } else {
            hook = InjectionHook(target: target, model: model, seed: spec.seed ?? 0, sixteen: sixteen)
        }
        return ArmedFault(hook: hook, fault: .software(model), limitedReach: limited) {
            let values = hook.applied?.values ?? []
            let golden = hook.goldenValues
            // A bit-flip model flips a bit of the fp32 value (before any operand rounding).
            let bits = model.flipsBit ? golden.flatMap { InjectionRecord.flippedBits(golden: $0, values: values) } : nil
            return Applied(positions: .operand(hook.applied?.positions(in: shape) ?? []), values: values, goldenValues: golden,
                           bits: bits, bitFormat: bits == nil ? nil : .float32,
                           activated: golden.map { InjectionRecord.changedCount(golden: $0, values: values, consumedAs: consumed) })
        }
    }

    /// The hook of a fault a trace's manifest records, re-armed to strike again exactly as it
    /// did: a software fault's recorded positions and values verbatim, a hardware fault as
    /// specified (its mapping is deterministic).
    public static func rearm(_ recorded: InjectionRecord, config: TrainingConfig,
                             model: any Model) throws -> (target: InjectionTarget, hook: any OperandHook) {
        let operation = model.operation(named: recorded.site)
        let spec: InjectionSpec
        switch (recorded.fault, recorded.positions) {
        case (.hardware(let hardware), .product), (.hardware(let hardware), .stepProduct):
            spec = InjectionSpec(workload: config.workload, site: recorded.site, faultModel: nil, replica: recorded.replica,
                                 globalStep: recorded.globalStep, hardware: hardware)
        case (.software(let fault), .operand(let positions)):
            spec = InjectionSpec(workload: config.workload, site: recorded.site, faultModel: fault, replica: recorded.replica,
                                 globalStep: recorded.globalStep, positions: positions, values: recorded.values, seed: recorded.seed)
        default:
            throw ReplayError.specMismatch("the recorded positions do not fit a \(recorded.faultName) fault")
        }
        let wholeStep = recorded.hardware != nil && recorded.site == wholeStepSite
        guard wholeStep || operation != nil else { throw ReplayError.specMismatch("unknown site '\(recorded.site)'") }
        let site = operation?.site ?? SiteID(layer: wholeStepSite, kind: .forward)
        let shape = operation?.shape(of: recorded.role) ?? []
        let target = InjectionTarget(site: site, role: recorded.role, replica: recorded.replica, globalStep: recorded.globalStep)
        return (target, try arm(spec, specName: "the recorded injection", target: target, shape: shape, config: config, model: model,
                                sixteen: recorded.limitedReach == true ? .fidelity : .released).hook)
    }

    /// The site of a hardware fault stuck for the whole step: every MXU operation of the
    /// replica's step runs on the faulty PE.
    public static let wholeStepSite = InjectionRecord.wholeStepSite

    /// Proves that the re-executed injected step is the golden's everywhere the fault cannot
    /// have reached yet: every operation of the other replicas (they meet the fault only in
    /// the all-reduce, after the step), and on the struck replica every operation before the
    /// injected one. A difference there means the replay is not the golden run plus the fault
    /// (other code, other data, nondeterminism), and no comparison after it could be trusted.
    static func proveFork(_ faulty: StepRecord, _ golden: StepRecord, injectedSite: SiteID, replica: Int, sites: [SiteID],
                          specName: String, golden directory: String) throws {
        // A whole-step hardware fault strikes every operation of its replica.
        let injectedIndex = sites.firstIndex(of: injectedSite) ?? 0
        for r in golden.siteDigests.indices where r < faulty.siteDigests.count {
            let reach = r == replica ? injectedIndex : sites.count
            for i in 0..<min(reach, golden.siteDigests[r].count, faulty.siteDigests[r].count) where faulty.siteDigests[r][i] != golden.siteDigests[r][i] {
                throw ReplayError.specMismatch("\(specName): re-executing the injected step \(faulty.step) gave a different output at \(sites[i].name) on replica \(r), which the fault cannot reach (the golden trace \(directory) recorded digest \(golden.siteDigests[r][i]), the replay \(faulty.siteDigests[r][i])): the replay is not the golden run plus the fault")
            }
        }
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
