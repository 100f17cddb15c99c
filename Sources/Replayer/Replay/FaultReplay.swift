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
        let m = reader.manifest
        guard spec.workload == m.config.workload.rawValue else {
            throw ReplayError.specMismatch("\(specName): the spec is for workload '\(spec.workload)', the golden trace \(reader.directory) is '\(m.config.workload.rawValue)'")
        }
        let restorer = try TraceRestorer(reader: reader, threads: threads)
        let model = restorer.run.model
        let site = parseSite(spec.site)
        // A hardware fault corrupts the operation's product, so it shows in the output.
        let role = spec.faultModel?.tensor ?? .output
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
        let armed = try arm(spec, specName: specName, target: target, shape: shape, config: m.config)
        let hook = armed.hook

        let start = try restorer.state(at: globalStep)
        let end = stepsAfterInjection.map { min(reader.completedSteps, globalStep + 1 + $0) } ?? reader.completedSteps
        var manifest = m
        manifest.plannedSteps = end
        manifest.complete = false
        manifest.completedSteps = 0
        func injection() -> TraceManifest.Injection {
            let (positions, values) = armed.applied()
            return .init(golden: reader.directory, site: site.name, role: role.rawValue, replica: target.replica, globalStep: globalStep,
                         faultModel: armed.faultModel, seed: spec.seed, positions: positions, values: values, hardware: spec.hardware)
        }
        manifest.injection = injection()
        let writer = try TraceWriter(creating: out, manifest: manifest)
        try writer.appendSnapshot(start)

        let goldenRecords = Dictionary(try reader.stepRecords().map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
        var divergence: ReplayResult.Divergence?
        var stopped: String?
        let final = try TraceRecorder.loop(run: restorer.run, writer: writer, from: start, to: end,
                                           hook: { $0 == globalStep ? hook : nil },
                                           stop: { record, _ in
            if record.step == globalStep, !armed.verbatim { try? writer.setInjection(injection()) }
            if divergence == nil, let g = goldenRecords[record.step] {
                divergence = firstDivergence(record, g, sites: model.sites)
            }
            if !record.loss.isFinite { stopped = "non-finite"; return true }
            if goldenRecords[record.step]?.stateDigest == record.stateDigest { stopped = "masked-exact"; return true }
            return false
        }, report: report)

        let faultyTrace = try TraceReader(directory: out)
        let faultyRecords = try faultyTrace.stepRecords()
        let faultyTest = try faultyTrace.epochSummaries().last?.testAccuracy ?? .nan
        // Golden test accuracy at the same step: its own record if the step ended an epoch,
        // else the restored golden state evaluated.
        let goldenTest: Float
        if stopped == "masked-exact" {
            goldenTest = faultyTest
        } else if final.step % m.stepsPerEpoch == 0, let e = try reader.epochSummaries().first(where: { ($0.epoch + 1) * m.stepsPerEpoch == final.step }) {
            goldenTest = e.testAccuracy
        } else {
            goldenTest = restorer.run.evaluate(try restorer.state(at: final.step)).accuracy
        }
        let goldenPoints = goldenRecords.values.filter { $0.step >= globalStep && $0.step < final.step }.sorted { $0.step < $1.step }
            .map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
        let faultyPoints = faultyRecords.map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
        let (outcome, evidence) = Classifier.classify(golden: goldenPoints, faulty: faultyPoints, goldenTest: goldenTest, faultyTest: faultyTest,
                                                      classes: m.config.scale.classes, exact: stopped == "masked-exact", thresholds: thresholds)
        let window = max(1, thresholds.finalWindow)
        func mean(_ xs: [Float]) -> Float { xs.isEmpty ? .nan : xs.reduce(0, +) / Float(xs.count) }
        let (positions, values) = armed.applied()
        return ReplayResult(
            outcome: outcome.rawValue, evidence: evidence,
            injection: .init(epoch: globalStep / m.stepsPerEpoch, step: globalStep % m.stepsPerEpoch, globalStep: globalStep, site: site.name,
                             role: role.rawValue, faultModel: armed.faultModel, replica: target.replica,
                             positions: positions, values: values, hardware: spec.hardware),
            firstDivergence: divergence, stoppedEarly: final.step < end ? stopped : nil, stepsRun: faultyRecords.count,
            golden: .init(trainAccuracy: mean(goldenPoints.suffix(window).map(\.accuracy)), testAccuracy: goldenTest),
            faulty: .init(trainAccuracy: mean(faultyPoints.suffix(window).map(\.accuracy)), testAccuracy: faultyTest),
            trace: out)
    }

    /// A fault ready to strike: its hook and what it has applied so far.
    struct ArmedFault {
        var hook: any OperandHook
        /// The fault model's name, or `hardware`.
        var faultModel: String
        /// Whether the spec listed what to write (nothing to record after the step).
        var verbatim: Bool
        /// Positions and values applied: in the operand (software) or in the product (hardware).
        var applied: () -> (positions: [[Int]], values: [Float])
    }

    /// Builds the hook of `spec`, checking it against the operand or operation it strikes.
    static func arm(_ spec: InjectionSpec, specName: String, target: InjectionTarget, shape: [Int],
                    config: TrainingConfig) throws -> ArmedFault {
        if let fault = spec.hardware {
            let name = target.site.name
            guard let gemm = config.workload.layers(scale: config.scale, phases: .training).first(where: { $0.name == name })?.gemm else {
                throw ReplayError.specMismatch("\(specName): \(name) is not an MXU operation of this workload")
            }
            do {
                try HardwareInjectionHook.validate(fault, site: target.site, shape: gemm, chip: config.chip, precision: config.precision)
            } catch {
                throw ReplayError.specMismatch("\(specName): \(error)")
            }
            let hook = HardwareInjectionHook(site: target.site, replica: target.replica, fault: fault, chip: config.chip)
            return ArmedFault(hook: hook, faultModel: "hardware", verbatim: false) {
                let e = hook.applied
                return (e.map { [$0.row, $0.column] }, e.map(\.faulty))
            }
        }
        guard let model = spec.faultModel else { throw ReplayError.specMismatch("\(specName): no fault model and no hardware fault") }
        let hook: InjectionHook
        if let positions = spec.positions, let values = spec.values {
            do {
                hook = InjectionHook(target: target, corruption: try InjectionHook.corruption(positions: positions, values: values, shape: shape,
                                                                                              operand: "the \(target.role.rawValue) of \(target.site.name)"))
            } catch {
                throw ReplayError.specMismatch("\(specName): \(error)")
            }
        } else {
            hook = InjectionHook(target: target, model: model, seed: spec.seed ?? 0)
        }
        return ArmedFault(hook: hook, faultModel: model.rawValue, verbatim: spec.positions != nil) {
            (hook.applied?.positions(in: shape) ?? [], hook.applied?.values ?? [])
        }
    }

    /// The hook of a fault a trace's manifest records, re-armed to strike again exactly as it
    /// did: a software fault's recorded positions and values verbatim, a hardware fault as
    /// specified (its mapping is deterministic).
    public static func rearm(_ recorded: TraceManifest.Injection, config: TrainingConfig,
                             model: ResNet18) throws -> (target: InjectionTarget, hook: any OperandHook) {
        let site = parseSite(recorded.site)
        guard let role = OperandRole(rawValue: recorded.role) else { throw ReplayError.specMismatch("unknown operand '\(recorded.role)'") }
        guard let shape = model.operandShape(site, role) else { throw ReplayError.specMismatch("unknown site '\(recorded.site)'") }
        let spec: InjectionSpec
        if let hardware = recorded.hardware {
            spec = InjectionSpec(workload: config.workload.rawValue, site: recorded.site, faultModel: nil, replica: recorded.replica,
                                 globalStep: recorded.globalStep, hardware: hardware)
        } else {
            guard let model = FaultModel(rawValue: recorded.faultModel) else {
                throw ReplayError.specMismatch("unknown fault model '\(recorded.faultModel)'")
            }
            spec = InjectionSpec(workload: config.workload.rawValue, site: recorded.site, faultModel: model, replica: recorded.replica,
                                 globalStep: recorded.globalStep, positions: recorded.positions, values: recorded.values, seed: recorded.seed)
        }
        let target = InjectionTarget(site: site, role: role, replica: recorded.replica, globalStep: recorded.globalStep)
        return (target, try arm(spec, specName: "the recorded injection", target: target, shape: shape, config: config).hook)
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
