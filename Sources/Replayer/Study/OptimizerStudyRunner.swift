import Foundation
import Recorder
import Sim

/// Where the study's golden run comes from.
public enum StudyGolden: Sendable {
    /// A trace recorded with `tpufi record` (with the baseline optimizer).
    case trace(String)
    /// Recorded into `DIR/golden` from `run` (its optimizer the baseline) for `steps` steps,
    /// or reused from there when a complete trace of that run is already there.
    case record(run: TrainingRun, dataset: String, steps: Int)
}

/// Progress of a running study, for a progress line.
public struct OptimizerStudyProgress: Sendable {
    /// Experiments with a result (resumed ones included) and in all.
    public var done: Int
    public var total: Int
    /// Done in this invocation.
    public var ranNow: Int
}

/// What one experiment of this invocation cost (for stdout, never for `study.json`).
public struct ExperimentCost: Sendable {
    public var index: Int
    public var simulatedSteps: Int
    public var seconds: Double
}

/// What a study run did.
public struct OptimizerStudyReport: Sendable {
    public var directory: String
    public var result: StudyResult
    /// Experiments run now and found already done (`resume`).
    public var ranNow: Int
    public var resumed: Int
    /// The golden trace was recorded by this run (into `DIR/golden`).
    public var recordedGolden: Bool
    public var costs: [ExperimentCost]
}

/// Runs an optimizer study (see the decisions at the top of `OptimizerStudy.swift`).
///
/// Per experiment: restore the golden state before the injected step (``TraceRestorer``),
/// run that step with the fault (the baseline's update), then per optimizer train
/// `stepsAfterInjection` steps from the corrupted state and from the golden state. Costs:
/// the baseline's reference is read from the golden trace; a test optimizer's reference is
/// computed once per injection step and reused by experiments injecting into the same step;
/// a faulty run whose whole state becomes bit-identical to its reference stops there and
/// takes the rest of its curve from the reference; a run with a non-finite loss stops.
public enum OptimizerStudy {
    public static func manifestPath(_ directory: String) -> String { directory + "/study-manifest.json" }
    public static func experimentPath(_ directory: String, _ index: Int) -> String { "\(directory)/experiments/\(index).json" }

    /// `study-manifest.json`: what `resume` checks a directory against.
    struct Manifest: Codable, Equatable {
        var kind = "optimizer-study-manifest"
        var parameters: OptimizerStudyParameters
        var golden: GoldenIdentity
        var goldenPath: String
    }

    /// Runs (or with `resume`, continues) the study of `parameters` into `out`. Everything is
    /// checked before anything in `out` is written; each experiment's file is written as it
    /// finishes, `study.json`, the curves and the summary at the end.
    public static func run(golden: StudyGolden, parameters: OptimizerStudyParameters, out: String, resume: Bool, threads: Int = 1,
                           progress: (OptimizerStudyProgress) -> Void = { _ in }) throws -> OptimizerStudyReport {
        try parameters.validate()
        guard threads > 0 else { throw OptimizerStudyError.badParameter("--threads must be positive (got \(threads))") }
        let fm = FileManager.default
        if case .trace(let path) = golden, let reason = OutputGuard.conflict(out, with: [path]) {
            throw OptimizerStudyError.output(directory: out, reason: reason)
        }
        // One process at a time in a study directory (a second is refused, told the holder's
        // pid): taken before a resumed study's files are read, and for a new one before the
        // first write into it, after every check of the input.
        var lock: DirectoryLock?
        defer { withExtendedLifetime(lock) {} }
        func lockOut() throws {
            guard lock == nil else { return }
            do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                throw OptimizerStudyError.output(directory: out, reason: "cannot create: \(error.localizedDescription)")
            }
            do { lock = try DirectoryLock(directory: out) } catch { throw OptimizerStudyError.output(directory: out, reason: error.reason) }
            // Another process that also found a new study's directory empty got here first.
            if !resume { try refuseNonEmpty() }
        }
        // (A lock file alone is what a run killed before it wrote anything leaves.)
        func refuseNonEmpty() throws {
            if fm.fileExists(atPath: out), OutputGuard.files(in: out).contains(where: { !$0.hasSuffix("/" + DirectoryLock.fileName) }) {
                throw OptimizerStudyError.output(directory: out, reason: "already exists and is not empty (use --resume to continue the study in it, or another --out)")
            }
        }
        var previous: Manifest?
        if resume {
            if fm.fileExists(atPath: out) { try lockOut() }
            var st = stat()
            guard lstat(manifestPath(out), &st) == 0 else {
                throw OptimizerStudyError.output(directory: out, reason: "holds no optimizer study to resume (no study-manifest.json)")
            }
            let data: Data
            switch InputFile.read(manifestPath(out), limit: InputFile.logLimit) {
            case .success(let d): data = d
            case .failure(let e): throw OptimizerStudyError.badFile(file: manifestPath(out), reason: e.reason)
            }
            switch JSONInput.decode(Manifest.self, from: data, decoder: decoder) {
            case .success(let m): previous = m
            case .failure(let e): throw OptimizerStudyError.badFile(file: manifestPath(out), reason: "not a study manifest: \(e)")
            }
        } else {
            try refuseNonEmpty()
        }

        // The golden trace: given, reused from DIR/golden, or recorded there.
        let goldenPath: String
        var recorded = false
        switch golden {
        case .trace(let path):
            goldenPath = path
        case .record(let run, let dataset, let steps):
            goldenPath = out + "/golden"
            guard run.config.optimizer.kind == parameters.baseline else {
                throw OptimizerStudyError.badParameter("the golden run to record trains with \(run.config.optimizer.kind.rawValue), not the baseline \(parameters.baseline.rawValue)")
            }
            if let existing = try? TraceReader(directory: goldenPath), existing.manifest.complete {
                guard existing.manifest.config == run.config else {
                    throw OptimizerStudyError.golden(trace: goldenPath, reason: "exists but was recorded with other settings than this study's (give it with --golden, or another --out)")
                }
            } else {
                let first = parameters.steps?.first ?? 0
                // Checked: both come from the command line and may be as large as Int.max.
                let (sum, o1) = first.addingReportingOverflow(parameters.stepsAfterInjection)
                let (needed, o2) = sum.addingReportingOverflow(1)
                guard !o1, !o2, steps >= needed else {
                    throw OptimizerStudyError.badParameter("--steps \(steps): --steps-after-injection \(parameters.stepsAfterInjection) after the earliest injection step \(first) needs a golden run of at least \(o1 || o2 ? "more than \(Int.max)" : "\(needed)") steps")
                }
                try lockOut()
                try? fm.removeItem(atPath: goldenPath)  // an interrupted recording
                do {
                    _ = try TraceRecorder.record(run: run, dataset: dataset, steps: steps, policy: .init(snapshotEvery: 1), to: goldenPath)
                } catch {
                    throw OptimizerStudyError.golden(trace: goldenPath, reason: "recording failed: \(error)")
                }
                recorded = true
            }
        }
        let reader: TraceReader
        let restorer: TraceRestorer
        do {
            reader = try TraceReader(directory: goldenPath)
            restorer = try TraceRestorer(reader: reader, threads: threads)
        } catch {
            throw OptimizerStudyError.golden(trace: goldenPath, reason: "\(error)")
        }
        // An interrupted golden recording is usable for the steps it has.
        guard reader.completedSteps > 0 else {
            throw OptimizerStudyError.golden(trace: goldenPath, reason: "has no recorded step")
        }
        let plan = try OptimizerStudyPlan(parameters: parameters, golden: reader, model: restorer.run.model)
        let identity = try GoldenIdentity(reader)
        let manifest = Manifest(parameters: parameters, golden: identity, goldenPath: goldenPath)

        // Experiments already done (resume): each must be this study's.
        var results: [Int: StudyExperiment] = [:]
        if let previous {
            var a = previous.parameters, b = parameters
            (a.experiments, b.experiments) = (0, 0)  // a resumed study may grow or shrink
            guard a == b, previous.golden.located == identity.located else {
                throw OptimizerStudyError.output(directory: out, reason: "holds another study (parameters or golden trace differ); resuming would mix them")
            }
            for i in 0..<parameters.experiments {
                let path = experimentPath(out, i)
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }  // not done yet
                let data: Data
                switch InputFile.read(path, limit: InputFile.logLimit) {
                case .success(let d): data = d
                case .failure(let e): throw OptimizerStudyError.badFile(file: path, reason: e.reason)
                }
                let e: StudyExperiment
                switch JSONInput.decode(StudyExperiment.self, from: data, decoder: decoder) {
                case .success(let decoded): e = decoded
                case .failure(let error): throw OptimizerStudyError.badFile(file: path, reason: "not an experiment result: \(error)")
                }
                guard e.index == i, e.spec == plan.spec(i), e.runs.map(\.optimizer) == parameters.optimizers else {
                    throw OptimizerStudyError.badFile(file: path, reason: "is not experiment \(i) of this study")
                }
                results[i] = e
            }
        }
        try lockOut()
        do {
            try fm.createDirectory(atPath: out + "/experiments", withIntermediateDirectories: true)
        } catch {
            throw OptimizerStudyError.output(directory: out, reason: "cannot create: \(error.localizedDescription)")
        }
        try write(try encoder.encode(manifest), to: manifestPath(out))

        let resumed = results.count
        let context = try Context(restorer: restorer, parameters: parameters)
        var costs: [ExperimentCost] = []
        progress(.init(done: results.count, total: parameters.experiments, ranNow: 0))
        for i in 0..<parameters.experiments where results[i] == nil {
            let start = Date()
            let e: StudyExperiment, simulated: Int
            do { (e, simulated) = try context.experiment(i, spec: plan.spec(i)) } catch let error as OptimizerStudyError {
                throw error
            } catch {
                throw OptimizerStudyError.experiment(index: i, reason: "\(error)")
            }
            try write(try encoder.encode(e), to: experimentPath(out, i))
            results[i] = e
            costs.append(.init(index: i, simulatedSteps: simulated, seconds: Date().timeIntervalSince(start)))
            progress(.init(done: results.count, total: parameters.experiments, ranNow: costs.count))
        }

        let experiments = (0..<parameters.experiments).compactMap { results[$0] }
        let result = StudyResult(parameters: parameters, golden: goldenPath, config: reader.manifest.config, experiments: experiments)
        try write(try encoder.encode(result), to: out + "/study.json")
        for (k, o) in parameters.optimizers.enumerated() {
            try write(Array(curvesCSV(experiments, optimizer: k).utf8), to: "\(out)/curves_\(o.rawValue).csv")
        }
        try write(Array(summaryCSV(result.summary).utf8), to: out + "/summary.csv")
        return OptimizerStudyReport(directory: out, result: result, ranNow: costs.count, resumed: resumed, recordedGolden: recorded, costs: costs)
    }

    // MARK: - Files

    /// The project's JSON conventions (``JSONCoding``), pretty.
    static var encoder: JSONEncoder { JSONCoding.encoder(pretty: true) }

    static var decoder: JSONDecoder { JSONCoding.decoder }

    static func write(_ bytes: some Sequence<UInt8>, to path: String) throws {
        do { try writeFileAtomically(Array(bytes) + (path.hasSuffix(".json") ? [UInt8(ascii: "\n")] : []), to: path) } catch {
            throw OptimizerStudyError.output(directory: path, reason: "\(error)")
        }
    }

    static func number(_ x: Float) -> String {
        x.isNaN ? "nan" : x == .infinity ? "inf" : x == -.infinity ? "-inf" : "\(x)"
    }

    /// `curves_<optimizer>.csv`: one row per experiment and step.
    public static func curvesCSV(_ experiments: [StudyExperiment], optimizer k: Int) -> String {
        var s = "experiment,step,accuracy,loss,reference_accuracy,reference_loss\n"
        for e in experiments {
            let r = e.runs[k]
            for (j, step) in r.steps.enumerated() {
                s += "\(e.index),\(step),\(number(r.accuracy[j])),\(number(r.loss[j])),\(number(r.referenceAccuracy[j])),\(number(r.referenceLoss[j]))\n"
            }
        }
        return s
    }

    /// `summary.csv`: one row per optimizer: the reference-defined status counts, the means,
    /// then the effect status counts (`diverged` is common to both) and the mean smoothed
    /// fault effect.
    public static func summaryCSV(_ summary: [OptimizerSummary]) -> String {
        var s = "optimizer,experiments,recovered,stable,degraded,diverged,mean_accuracy_change,mean_degradation_rate,mean_fault_effect,"
            + "effect_degraded,unaffected,improved,mean_smoothed_fault_effect\n"
        for o in summary {
            s += "\(o.optimizer.rawValue),\(o.experiments),\(o.recovered),\(o.stable),\(o.degraded),\(o.diverged),\(number(o.meanAccuracyChange)),\(number(o.meanDegradationRate)),\(number(o.meanFaultEffect)),"
                + "\(o.effectDegraded),\(o.unaffected),\(o.improved),\(number(o.meanSmoothedFaultEffect))\n"
        }
        return s
    }

    // MARK: - Experiments

    /// A continuation's curve: per step after the injected one, its metrics and the digest
    /// of the state after it.
    struct Curve {
        var loss: [Float] = []
        var accuracy: [Float] = []
        var digests: [String] = []
        /// Index (into the curve) of the first step run from a state identical to the reference's.
        var identicalFrom: Int?
        var testAccuracy: Float?
        var simulated = 0
    }

    /// A trainer that continues a run with an optimizer whose slots started at `slotOrigin`
    /// (0: the golden run's own slots), for ``TrainingLoop``.
    struct Continuation {
        let trainer: Trainer
        let slotOrigin: Int

        /// `state` with this optimizer's fresh slots (the baseline's own are kept).
        func switched(_ state: TrainingState) -> TrainingState {
            guard slotOrigin > 0 else { return state }
            var s = state
            let o = trainer.optimizer
            s.slots = s.parameters.map { t in o.slotNames.map { _ in [Float](repeating: o.slotInitialValue, count: t.count) } }
            return s
        }
    }

    /// What every experiment shares: the golden run and the references computed so far.
    final class Context {
        let restorer: TraceRestorer
        let golden: GoldenReference
        let parameters: OptimizerStudyParameters
        /// Test optimizers' references by (optimizer, injection step).
        var references: [String: Curve] = [:]
        /// Take a faulty run's rest from its reference once their states are bit-identical
        /// (false: compute every step, for tests and for measuring what it saves).
        let shortcutIdentical: Bool
        /// The golden's workload: its learning-rate schedule for each optimizer.
        let workload: WorkloadDefinition

        init(restorer: TraceRestorer, parameters: OptimizerStudyParameters, shortcutIdentical: Bool = true) throws {
            self.restorer = restorer
            workload = try Workloads.named(restorer.run.config.workload)
            golden = try GoldenReference(restorer: restorer)
            self.parameters = parameters
            self.shortcutIdentical = shortcutIdentical
        }

        var run: TrainingRun { restorer.run }

        func continuation(_ kind: OptimizerKind, switchedAt step: Int) -> Continuation {
            if kind == parameters.baseline { return Continuation(trainer: run.trainer, slotOrigin: 0) }
            let t = run.trainer
            return Continuation(trainer: Trainer(model: t.model, optimizer: workload.optimizer(kind), schedule: workload.schedule(for: kind), mxu: t.mxu),
                                slotOrigin: step)
        }

        /// Trains `count` steps from `state`; stops at a non-finite loss; with a `reference`,
        /// stops as soon as the state is bit-identical to the reference's after the same step
        /// and takes the rest from it.
        func train(_ c: Continuation, from state: TrainingState, count: Int, reference: Curve?) -> Curve {
            var curve = Curve()
            var tookReference = false
            let loop = TrainingLoop(run: run, trainer: c.trainer, slotOrigin: c.slotOrigin, evaluation: .never)
            let state = loop.run(from: state, to: state.step + count, stop: { s in
                let j = curve.simulated
                curve.simulated += 1
                curve.loss.append(s.metrics.loss)
                curve.accuracy.append(s.metrics.accuracy)
                curve.digests.append(s.state.digest.description)
                if !s.metrics.loss.isFinite { return true }
                if shortcutIdentical, let reference, j < reference.digests.count, reference.digests[j] == curve.digests[j] {
                    // Identical from the next step on: the reference's curve is this run's.
                    curve.identicalFrom = j + 1
                    curve.loss += reference.loss[(j + 1)...]
                    curve.accuracy += reference.accuracy[(j + 1)...]
                    curve.digests += reference.digests[(j + 1)...]
                    curve.testAccuracy = reference.testAccuracy
                    tookReference = true
                    return true
                }
                return false
            }, step: { _ in }, epoch: { _, _ in }, stepEnd: { _ in }, mitigated: { _ in })
            if tookReference { return curve }
            if parameters.testAccuracy { curve.testAccuracy = run.evaluate(state).accuracy }
            return curve
        }

        /// Experiment `index` and the steps it simulated (restoring the golden state included;
        /// not part of the result: it depends on which references earlier experiments of this
        /// invocation computed).
        func experiment(_ index: Int, spec: InjectionSpec) throws -> (StudyExperiment, simulated: Int) {
            let reader = restorer.reader
            let model = run.model
            let s = parameters.stepsAfterInjection
            guard let g = spec.globalStep, let positions = spec.positions, let values = spec.values,
                  let operation = model.operation(named: spec.site) else {
                throw OptimizerStudyError.experiment(index: index, reason: "incomplete spec")
            }
            let shape = operation.outputShape
            let target = InjectionTarget(site: operation.site, role: .output, replica: spec.replica, globalStep: g)
            let hook = InjectionHook(target: target, corruption: try InjectionHook.corruption(positions: positions, values: values, shape: shape,
                                                                                              operand: "the output of \(spec.site)"))
            var simulated = g - (reader.snapshotSteps.last { $0 <= g } ?? 0)
            let before = try restorer.state(at: g)
            guard let goldenAtInjection = golden.records[g] else {
                throw OptimizerStudyError.golden(trace: reader.directory, reason: "has no record of step \(g)")
            }
            // The injected step, as the golden run trained: the baseline's update.
            let gr = run.trainer.gradients(before, batches: run.batches(step: g), hook: hook)
            let corrupted = run.trainer.apply(gr, to: before)
            simulated += 1
            let injectedDiverged = !gr.metrics.loss.isFinite
            let identicalAtOnce = corrupted.digest.description == goldenAtInjection.stateDigest

            // The baseline's reference: the golden trace.
            var baselineReference = Curve()
            for step in (g + 1)...(g + s) {
                guard let r = golden.records[step] else {
                    throw OptimizerStudyError.golden(trace: reader.directory, reason: "has no record of step \(step)")
                }
                baselineReference.loss.append(r.loss)
                baselineReference.accuracy.append(r.accuracy)
                baselineReference.digests.append(r.stateDigest)
            }
            if parameters.testAccuracy { baselineReference.testAccuracy = try golden.testAccuracy(at: g + s + 1) }

            // The golden state after the injected step, for the test optimizers' references.
            var goldenAfter: TrainingState?
            func goldenAfterInjection() throws -> TrainingState {
                if let goldenAfter { return goldenAfter }
                let next = run.trainer.step(before, batches: run.batches(step: g)).0
                simulated += 1
                guard next.digest.description == goldenAtInjection.stateDigest else {
                    throw OptimizerStudyError.golden(trace: reader.directory, reason: "re-executing step \(g) does not give the recorded state (other code or configuration)")
                }
                goldenAfter = next
                return next
            }

            var runs: [OptimizerRun] = []
            for kind in parameters.optimizers {
                let c = continuation(kind, switchedAt: g + 1)
                let reference: Curve
                if kind == parameters.baseline {
                    reference = baselineReference
                } else if let cached = references["\(kind.rawValue)@\(g)"] {
                    reference = cached
                } else {
                    let r = train(c, from: c.switched(try goldenAfterInjection()), count: s, reference: nil)
                    simulated += r.simulated
                    references["\(kind.rawValue)@\(g)"] = r
                    reference = r
                }
                var faulty: Curve
                if injectedDiverged {
                    faulty = Curve()
                } else if identicalAtOnce && shortcutIdentical {
                    faulty = reference
                    faulty.identicalFrom = 0
                    faulty.simulated = 0
                } else {
                    faulty = train(c, from: c.switched(corrupted), count: s, reference: reference)
                }
                simulated += faulty.simulated
                func padded(_ xs: [Float]) -> [Float] { xs + Array(repeating: .nan, count: s - xs.count) }
                runs.append(OptimizerRun(
                    optimizer: kind, steps: Array(g...(g + s)),
                    accuracy: [gr.metrics.accuracy] + padded(faulty.accuracy), loss: [gr.metrics.loss] + padded(faulty.loss),
                    referenceAccuracy: [goldenAtInjection.accuracy] + padded(reference.accuracy),
                    referenceLoss: [goldenAtInjection.loss] + padded(reference.loss),
                    accuracyAtInjection: goldenAtInjection.accuracy,
                    identicalFromStep: faulty.identicalFrom.map { g + 1 + $0 },
                    finalStateDigest: faulty.digests.last ?? corrupted.digest.description,
                    finalTestAccuracy: faulty.testAccuracy, referenceFinalTestAccuracy: reference.testAccuracy))
            }
            return (StudyExperiment(index: index, spec: spec, globalStep: g, site: spec.site, faultModel: spec.faultModel?.rawValue ?? "",
                                    value: values.first ?? .nan, runs: runs, replica: spec.replica), simulated)
        }
    }
}
