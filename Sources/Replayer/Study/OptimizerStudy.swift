import Foundation
import Recorder
import Sim

// The optimizer study (`docs/study.md`): one fault per experiment, then training
// continues with the baseline optimizer and with each test optimizer from the same corrupted
// state, and from the uncorrupted state as each optimizer's fault-free reference.
//
// Decisions of this project (the reference README states the experiment in words only):
// - The injected step runs as the golden run trained: with the baseline optimizer (the
//   golden trace's). "The same corrupted state" is the state after that step: parameters,
//   batch-norm moving statistics and the step count. The baseline keeps its own slots (its
//   continuation is exactly what `FaultReplay` produces for the same spec); a test optimizer
//   drops them and starts fresh slots (``OptimizerConfig/slotInitialValue``) at the first step
//   after the injection, its slot age (Adam's bias-correction count) counted from there.
// - Learning rate per optimizer: the workload's schedule for it (``WorkloadDefinition/schedule(for:)``)
//   at the global step, so the switched run trains as if it had used that schedule all along.
// - The reference of an optimizer: the same switch made from the golden state after the
//   injected step, over the same steps; the baseline's reference is the golden trace itself.
// - The fault: N16_RD into the output of a random forward MXU operation (every conv and the
//   dense layer), 16 aligned elements of the flattened NHWC output, all 16 set to one value
//   drawn log-uniform in [3.6e2, 1.2e8] (the reference study's description says "a value";
//   the generic N16_RD of docs/faults.md draws one per element), on a random replica, at a random step.
// - Accuracy is the train accuracy of each step's global batch (what the golden trace
//   records); test accuracy at the end only with ``OptimizerStudyParameters/testAccuracy``.

/// What an optimizer study is: everything that determines its results.
public struct OptimizerStudyParameters: Codable, Sendable, Equatable {
    /// The golden run's optimizer.
    public var baseline: OptimizerKind
    /// The other optimizers, in the order given.
    public var testOptimizers: [OptimizerKind]
    /// Experiments in the study.
    public var experiments: Int
    /// Steps trained after the injected one.
    public var stepsAfterInjection: Int
    public var seed: UInt64
    /// Global steps to inject into (nil: epochs 0-3, as the reference, limited to steps that
    /// leave room for ``stepsAfterInjection``).
    public var steps: StepRange?
    /// Range of the log-uniform faulty value.
    public var valueLow: Float
    public var valueHigh: Float
    /// Evaluate the test set at the end of every faulty and reference run.
    public var testAccuracy: Bool

    public init(baseline: OptimizerKind, testOptimizers: [OptimizerKind], experiments: Int, stepsAfterInjection: Int, seed: UInt64 = 0,
                steps: StepRange? = nil, valueLow: Float = 3.6e2, valueHigh: Float = 1.2e8, testAccuracy: Bool = false) {
        self.baseline = baseline
        self.testOptimizers = testOptimizers
        self.experiments = experiments
        self.stepsAfterInjection = stepsAfterInjection
        self.seed = seed
        self.steps = steps
        self.valueLow = valueLow
        self.valueHigh = valueHigh
        self.testAccuracy = testAccuracy
    }

    /// Baseline first, then the test optimizers.
    public var optimizers: [OptimizerKind] { [baseline] + testOptimizers }

    /// Checks what needs no golden trace.
    public func validate() throws(OptimizerStudyError) {
        guard experiments > 0 else { throw .badParameter("--experiments must be positive (got \(experiments))") }
        guard stepsAfterInjection > 0 else { throw .badParameter("--steps-after-injection must be positive (got \(stepsAfterInjection))") }
        guard !testOptimizers.isEmpty else { throw .badParameter("--test-optimizers: give at least one optimizer besides the baseline") }
        if testOptimizers.contains(baseline) {
            throw .badParameter("--test-optimizers repeats the baseline '\(baseline.rawValue)': each optimizer is run once")
        }
        if let twice = testOptimizers.first(where: { o in testOptimizers.filter { $0 == o }.count > 1 }) {
            throw .badParameter("--test-optimizers lists '\(twice.rawValue)' twice")
        }
        guard valueLow > 0, valueHigh >= valueLow, valueHigh.isFinite else {
            throw .badParameter("the value range must be positive and finite, low <= high (got \(valueLow)...\(valueHigh))")
        }
        if let s = steps, s.first < 0 || s.last < s.first {
            throw .badParameter("--injection-steps \(s): give A-B with 0 <= A <= B")
        }
    }

    /// An optimizer name as the command line gives it.
    public static func optimizer(_ name: String) throws(OptimizerStudyError) -> OptimizerKind {
        guard let k = OptimizerKind(rawValue: name.lowercased()) else {
            throw .badParameter("unknown optimizer '\(name)'; expected one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return k
    }
}

/// Errors of a study; each names the file, experiment or option at fault.
public enum OptimizerStudyError: Error, CustomStringConvertible, Equatable {
    case badParameter(String)
    case golden(trace: String, reason: String)
    case output(directory: String, reason: String)
    case badFile(file: String, reason: String)
    case experiment(index: Int, reason: String)

    public var description: String {
        switch self {
        case .badParameter(let m): return m
        case .golden(let trace, let reason): return "golden trace \(trace): \(reason)"
        case .output(let directory, let reason): return "\(directory): \(reason)"
        case .badFile(let file, let reason): return "\(file): \(reason)"
        case .experiment(let index, let reason): return "experiment \(index): \(reason)"
        }
    }
}

/// How a run ended relative to the accuracy at the injection (docs/outcomes.md#optimizer-study-statuses), or
/// `Diverged` when its loss went non-finite (the run stopped there; the other three do not
/// apply). The four partition the runs.
public enum RecoveryStatus: String, Codable, Sendable, CaseIterable {
    case Recovered, Stable, Degraded, Diverged

    /// Recovered when `change > threshold`, Degraded when `change < -threshold`, else Stable
    /// (a NaN change is Degraded: nothing was recovered).
    public static func classify(change: Float, threshold: Float = 0.01) -> RecoveryStatus {
        if change > threshold { return .Recovered }
        if change < -threshold || change.isNaN { return .Degraded }
        return .Stable
    }

    /// The status of a curve that starts at the injected step: Diverged at its first
    /// non-finite loss, else by the change of its last accuracy from `accuracyAtInjection`
    /// (what ``OptimizerRun`` records as ``OptimizerRun/status`` and
    /// ``OptimizerRun/referenceStatus``).
    public static func of(accuracy: [Float], loss: [Float], accuracyAtInjection: Float, threshold: Float = 0.01) -> RecoveryStatus {
        if loss.contains(where: { !$0.isFinite }) { return .Diverged }
        let n = min(accuracy.count, loss.count)
        return classify(change: (n > 0 ? accuracy[n - 1] : .nan) - accuracyAtInjection, threshold: threshold)
    }
}

/// How a run after a fault ended relative to its own fault-free reference (the same
/// optimizer from the uncorrupted state over the same batches): the study's primary status
/// (docs/outcomes.md#optimizer-study-statuses). The four partition the runs.
public enum EffectStatus: String, Codable, Sendable, CaseIterable {
    /// The faulty run's loss became non-finite.
    case Diverged
    /// The smoothed fault effect is below `-margin`.
    case Degraded
    /// Within `±margin`.
    case Unaffected
    /// Above `+margin`.
    case Improved
}

/// The fault's effect on one optimizer's run: per step, the faulty run's train accuracy minus
/// its reference's (paired: the same batches), smoothed over the last steps and judged
/// against the reference's own step-to-step noise plus a fixed threshold
/// (docs/outcomes.md#optimizer-study-statuses).
public struct FaultEffect: Sendable, Equatable {
    /// The accuracy difference that counts regardless of noise (one point, as the
    /// reference-defined statuses).
    public static let threshold: Float = 0.01
    /// Steps at the end averaged into ``smoothed`` (all paired steps when fewer).
    public static let window = 10
    /// One-sided confidence with which the effect must clear the threshold given the
    /// reference's noise (``ClassifierThresholds/defaultConfidence``).
    public static let confidence: Float = ClassifierThresholds.defaultConfidence

    public var status: EffectStatus
    /// Mean of faulty minus reference accuracy over the last `min(window, n)` paired steps;
    /// NaN when no step is paired.
    public var smoothed: Float
    /// `threshold + z * sd / sqrt(k)`, `k` the steps averaged, `sd` ``referenceNoise``;
    /// the threshold alone when the noise is unknown.
    public var margin: Float
    /// Standard deviation of the reference's consecutive train-accuracy differences
    /// (``GoldenNoise`` of the reference's curve); nil with fewer than two such differences.
    public var referenceNoise: Float?
    /// Paired steps averaged into ``smoothed``.
    public var averaged: Int

    /// From a run's curves, parallel to `steps` (NaN where a run no longer trains). A step
    /// is paired when both runs have a finite loss and accuracy there.
    public init(steps: [Int], accuracy: [Float], loss: [Float], referenceAccuracy: [Float], referenceLoss: [Float],
                confidence: Float = FaultEffect.confidence) {
        let differences = Self.differences(accuracy: accuracy, loss: loss, referenceAccuracy: referenceAccuracy, referenceLoss: referenceLoss)
        let paired = differences.filter(\.isFinite).suffix(Self.window)
        averaged = paired.count
        // Summed in double, in step order: deterministic.
        smoothed = paired.isEmpty ? .nan : Float(paired.reduce(0.0) { $0 + Double($1) } / Double(paired.count))
        let n = min(steps.count, referenceAccuracy.count, referenceLoss.count)
        let points = (0..<n).map { StepPoint(step: steps[$0], loss: referenceLoss[$0], accuracy: referenceAccuracy[$0]) }
        let noise = GoldenNoise(golden: points, upTo: steps.prefix(n).last ?? 0)
        referenceNoise = noise.map { Float($0.stepSD) }
        let z = confidence == 0 ? 0 : NormalQuantile.z(Double(confidence))
        margin = Self.threshold + (noise.map { Float(z * $0.stepSD / Double(max(1, paired.count)).squareRoot()) } ?? 0)
        if loss.contains(where: { !$0.isFinite }) {
            status = .Diverged
        } else if smoothed.isNaN || smoothed < -margin {
            status = .Degraded
        } else if smoothed > margin {
            status = .Improved
        } else {
            status = .Unaffected
        }
    }

    /// Per step: faulty minus reference train accuracy, NaN where either run has no finite
    /// loss and accuracy.
    public static func differences(accuracy: [Float], loss: [Float], referenceAccuracy: [Float], referenceLoss: [Float]) -> [Float] {
        let n = min(accuracy.count, loss.count, referenceAccuracy.count, referenceLoss.count)
        return (0..<n).map { i in
            [accuracy[i], loss[i], referenceAccuracy[i], referenceLoss[i]].allSatisfy(\.isFinite) ? accuracy[i] - referenceAccuracy[i] : .nan
        }
    }

    /// The smoothed effect at every step: the mean of the last `min(window, k)` finite
    /// differences up to it (NaN at a step whose own difference is not finite), so its last
    /// value is ``smoothed``.
    public static func smoothedCurve(_ differences: [Float], window: Int = FaultEffect.window) -> [Float] {
        var recent: [Float] = []
        return differences.map { d in
            guard d.isFinite else { return .nan }
            recent.append(d)
            let last = recent.suffix(max(1, window))
            return Float(last.reduce(0.0) { $0 + Double($1) } / Double(last.count))
        }
    }
}

/// Least squares on curves.
public enum CurveFit {
    /// The slope of the ordinary least-squares line through `(x, y)`, points with a
    /// non-finite `y` left out; 0 with fewer than two points or when all `x` are equal.
    /// Computed in double precision in index order (deterministic).
    public static func slope(x: [Int], y: [Float]) -> Float {
        let points = zip(x, y).filter { $0.1.isFinite }
        guard points.count >= 2 else { return 0 }
        let n = Double(points.count)
        let mx = points.reduce(0.0) { $0 + Double($1.0) } / n
        let my = points.reduce(0.0) { $0 + Double($1.1) } / n
        var sxy = 0.0, sxx = 0.0
        for (a, b) in points {
            sxy += (Double(a) - mx) * (Double(b) - my)
            sxx += (Double(a) - mx) * (Double(a) - mx)
        }
        return sxx == 0 ? 0 : Float(sxy / sxx)
    }

    /// Section 7's degradation rate: the least-squares slope of accuracy per step over the
    /// last `window` points of the curve (all of them when it is shorter).
    public static func degradationRate(steps: [Int], accuracy: [Float], window: Int = 100) -> Float {
        let k = min(window, steps.count, accuracy.count)
        return slope(x: Array(steps.prefix(accuracy.count).suffix(k)), y: Array(accuracy.prefix(steps.count).suffix(k)))
    }
}

/// One optimizer's continuation after one fault, and its fault-free reference.
public struct OptimizerRun: Codable, Sendable, Equatable {
    public var optimizer: OptimizerKind
    /// Train accuracy of the last step run (the divergence step when the run diverged).
    public var finalAccuracy: Float
    /// The golden train accuracy of the injected step: where every optimizer starts from.
    public var accuracyAtInjection: Float
    /// `finalAccuracy - accuracyAtInjection`.
    public var accuracyChange: Float
    /// Least-squares slope of accuracy per step over the last 100 points run.
    public var degradationRate: Float
    public var status: RecoveryStatus
    /// The global step whose loss was non-finite; the run stopped there.
    public var divergenceStep: Int?
    /// Global steps: the injected one, then `stepsAfterInjection` more.
    public var steps: [Int]
    /// Per step of ``steps``: train accuracy and loss of the faulty run (NaN after
    /// ``divergenceStep``, where the run no longer trains).
    public var accuracy: [Float]
    public var loss: [Float]
    /// The same optimizer's fault-free continuation over the same steps (NaN after
    /// ``referenceDivergenceStep``).
    public var referenceAccuracy: [Float]
    public var referenceLoss: [Float]
    // Added beyond the agreed schema.
    /// Train accuracy at the reference's last step run.
    public var referenceFinalAccuracy: Float
    /// The reference's own change and status: what the optimizer switch alone does.
    public var referenceAccuracyChange: Float
    public var referenceStatus: RecoveryStatus
    public var referenceDivergenceStep: Int?
    /// `finalAccuracy - referenceFinalAccuracy`: the fault's effect under this optimizer.
    public var faultEffect: Float
    /// The step from which the faulty run's whole state was bit-identical to the reference
    /// (the rest of its curve is the reference's); nil when it never was.
    public var identicalFromStep: Int?
    /// Digest of the whole training state after the faulty run's last step (the state
    /// after the injected step when the run diverged there): the trace digest of `tpufi
    /// replay` for the baseline.
    public var finalStateDigest: String
    /// Test accuracy after the last step run (only when the study evaluates it).
    public var finalTestAccuracy: Float?
    public var referenceFinalTestAccuracy: Float?
    /// The primary status: the fault's effect against the reference's own noise
    /// (``FaultEffect``), where ``status`` compares with the golden accuracy at the injection.
    public var effectStatus: EffectStatus
    /// ``FaultEffect/smoothed``: faulty minus reference accuracy, mean of the last steps.
    public var smoothedFaultEffect: Float
    /// ``FaultEffect/margin``: what ``smoothedFaultEffect`` must exceed (either way).
    public var effectMargin: Float
    /// ``FaultEffect/referenceNoise``: the reference's step-to-step accuracy noise.
    public var referenceNoise: Float?

    enum CodingKeys: String, CodingKey {
        case optimizer, finalAccuracy, accuracyAtInjection, accuracyChange, degradationRate, status, divergenceStep, steps, accuracy, loss,
             referenceAccuracy, referenceLoss, referenceFinalAccuracy, referenceAccuracyChange, referenceStatus, referenceDivergenceStep,
             faultEffect, identicalFromStep, finalStateDigest, finalTestAccuracy, referenceFinalTestAccuracy,
             effectStatus, smoothedFaultEffect, effectMargin, referenceNoise
    }

    /// Decodes a run; one written before the effect fields existed gets them computed from
    /// its curves (``FaultEffect``), so an older study resumes.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        optimizer = try c.decode(OptimizerKind.self, forKey: .optimizer)
        finalAccuracy = try c.decode(Float.self, forKey: .finalAccuracy)
        accuracyAtInjection = try c.decode(Float.self, forKey: .accuracyAtInjection)
        accuracyChange = try c.decode(Float.self, forKey: .accuracyChange)
        degradationRate = try c.decode(Float.self, forKey: .degradationRate)
        status = try c.decode(RecoveryStatus.self, forKey: .status)
        divergenceStep = try c.decodeIfPresent(Int.self, forKey: .divergenceStep)
        steps = try c.decode([Int].self, forKey: .steps)
        accuracy = try c.decode([Float].self, forKey: .accuracy)
        loss = try c.decode([Float].self, forKey: .loss)
        referenceAccuracy = try c.decode([Float].self, forKey: .referenceAccuracy)
        referenceLoss = try c.decode([Float].self, forKey: .referenceLoss)
        referenceFinalAccuracy = try c.decode(Float.self, forKey: .referenceFinalAccuracy)
        referenceAccuracyChange = try c.decode(Float.self, forKey: .referenceAccuracyChange)
        referenceStatus = try c.decode(RecoveryStatus.self, forKey: .referenceStatus)
        referenceDivergenceStep = try c.decodeIfPresent(Int.self, forKey: .referenceDivergenceStep)
        faultEffect = try c.decode(Float.self, forKey: .faultEffect)
        identicalFromStep = try c.decodeIfPresent(Int.self, forKey: .identicalFromStep)
        finalStateDigest = try c.decode(String.self, forKey: .finalStateDigest)
        finalTestAccuracy = try c.decodeIfPresent(Float.self, forKey: .finalTestAccuracy)
        referenceFinalTestAccuracy = try c.decodeIfPresent(Float.self, forKey: .referenceFinalTestAccuracy)
        if let status = try c.decodeIfPresent(EffectStatus.self, forKey: .effectStatus) {
            effectStatus = status
            smoothedFaultEffect = try c.decode(Float.self, forKey: .smoothedFaultEffect)
            effectMargin = try c.decode(Float.self, forKey: .effectMargin)
            referenceNoise = try c.decodeIfPresent(Float.self, forKey: .referenceNoise)
        } else {
            let e = FaultEffect(steps: steps, accuracy: accuracy, loss: loss, referenceAccuracy: referenceAccuracy, referenceLoss: referenceLoss)
            (effectStatus, smoothedFaultEffect, effectMargin, referenceNoise) = (e.status, e.smoothed, e.margin, e.referenceNoise)
        }
    }

    // Written by hand so that absent optionals appear as `null` (the agreed schema has
    // `"divergenceStep": null`), not as missing keys.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(finalAccuracy, forKey: .finalAccuracy)
        try c.encode(accuracyAtInjection, forKey: .accuracyAtInjection)
        try c.encode(accuracyChange, forKey: .accuracyChange)
        try c.encode(degradationRate, forKey: .degradationRate)
        try c.encode(status, forKey: .status)
        try c.encode(divergenceStep, forKey: .divergenceStep)
        try c.encode(steps, forKey: .steps)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(loss, forKey: .loss)
        try c.encode(referenceAccuracy, forKey: .referenceAccuracy)
        try c.encode(referenceLoss, forKey: .referenceLoss)
        try c.encode(referenceFinalAccuracy, forKey: .referenceFinalAccuracy)
        try c.encode(referenceAccuracyChange, forKey: .referenceAccuracyChange)
        try c.encode(referenceStatus, forKey: .referenceStatus)
        try c.encode(referenceDivergenceStep, forKey: .referenceDivergenceStep)
        try c.encode(faultEffect, forKey: .faultEffect)
        try c.encode(identicalFromStep, forKey: .identicalFromStep)
        try c.encode(finalStateDigest, forKey: .finalStateDigest)
        try c.encode(finalTestAccuracy, forKey: .finalTestAccuracy)
        try c.encode(referenceFinalTestAccuracy, forKey: .referenceFinalTestAccuracy)
        try c.encode(effectStatus, forKey: .effectStatus)
        try c.encode(smoothedFaultEffect, forKey: .smoothedFaultEffect)
        try c.encode(effectMargin, forKey: .effectMargin)
        try c.encode(referenceNoise, forKey: .referenceNoise)
    }

    /// The run's figures from its curves (the faulty and the reference arrays parallel to
    /// `steps`, NaN after a divergence).
    public init(optimizer: OptimizerKind, steps: [Int], accuracy: [Float], loss: [Float], referenceAccuracy: [Float], referenceLoss: [Float],
                accuracyAtInjection: Float, identicalFromStep: Int? = nil, finalStateDigest: String = "", finalTestAccuracy: Float? = nil,
                referenceFinalTestAccuracy: Float? = nil, threshold: Float = 0.01, window: Int = 100) {
        func summary(_ acc: [Float], _ loss: [Float]) -> (final: Float, change: Float, rate: Float, status: RecoveryStatus, diverged: Int?) {
            let stop = loss.firstIndex { !$0.isFinite }
            let run = stop.map { $0 + 1 } ?? loss.count
            let final = run > 0 ? acc[run - 1] : .nan
            let change = final - accuracyAtInjection
            let rate = CurveFit.degradationRate(steps: Array(steps.prefix(run)), accuracy: Array(acc.prefix(run)), window: window)
            return (final, change, rate, stop == nil ? RecoveryStatus.classify(change: change, threshold: threshold) : .Diverged, stop.map { steps[$0] })
        }
        let f = summary(accuracy, loss), r = summary(referenceAccuracy, referenceLoss)
        self.optimizer = optimizer
        self.steps = steps
        self.accuracy = accuracy
        self.loss = loss
        self.referenceAccuracy = referenceAccuracy
        self.referenceLoss = referenceLoss
        self.accuracyAtInjection = accuracyAtInjection
        finalAccuracy = f.final
        accuracyChange = f.change
        degradationRate = f.rate
        status = f.status
        divergenceStep = f.diverged
        referenceFinalAccuracy = r.final
        referenceAccuracyChange = r.change
        referenceStatus = r.status
        referenceDivergenceStep = r.diverged
        faultEffect = f.final - r.final
        self.identicalFromStep = identicalFromStep
        self.finalStateDigest = finalStateDigest
        self.finalTestAccuracy = finalTestAccuracy
        self.referenceFinalTestAccuracy = referenceFinalTestAccuracy
        let e = FaultEffect(steps: steps, accuracy: accuracy, loss: loss, referenceAccuracy: referenceAccuracy, referenceLoss: referenceLoss)
        (effectStatus, smoothedFaultEffect, effectMargin, referenceNoise) = (e.status, e.smoothed, e.margin, e.referenceNoise)
    }
}

/// One experiment: the fault and every optimizer's run after it.
public struct StudyExperiment: Codable, Sendable, Equatable {
    public var index: Int
    /// The native spec, positions and values verbatim: `tpufi replay --spec` replays the
    /// baseline's run alone.
    public var spec: InjectionSpec
    public var globalStep: Int
    public var site: String
    public var faultModel: String
    /// The value written to all 16 elements.
    public var value: Float
    /// In the order of ``OptimizerStudyParameters/optimizers``.
    public var runs: [OptimizerRun]
    // Added beyond the agreed schema.
    public var replica: Int
}

/// Per optimizer, over all experiments.
public struct OptimizerSummary: Codable, Sendable, Equatable {
    public var optimizer: OptimizerKind
    public var recovered: Int
    public var stable: Int
    public var degraded: Int
    public var diverged: Int
    /// Means over the runs that did not diverge (NaN when all did).
    public var meanAccuracyChange: Float
    public var meanDegradationRate: Float
    // Added beyond the agreed schema.
    public var meanFaultEffect: Float
    public var experiments: Int
    /// Counts of the effect statuses (``OptimizerRun/effectStatus``; their `Diverged` is
    /// ``diverged``).
    public var effectDegraded: Int
    public var unaffected: Int
    public var improved: Int
    /// Mean ``OptimizerRun/smoothedFaultEffect`` over the runs that did not diverge.
    public var meanSmoothedFaultEffect: Float

    public init(optimizer: OptimizerKind, runs: [OptimizerRun]) {
        self.optimizer = optimizer
        func count(_ s: RecoveryStatus) -> Int { runs.filter { $0.status == s }.count }
        recovered = count(.Recovered)
        stable = count(.Stable)
        degraded = count(.Degraded)
        diverged = count(.Diverged)
        effectDegraded = runs.filter { $0.effectStatus == .Degraded }.count
        unaffected = runs.filter { $0.effectStatus == .Unaffected }.count
        improved = runs.filter { $0.effectStatus == .Improved }.count
        let kept = runs.filter { $0.status != .Diverged }
        // Sums in double, in experiment order: deterministic.
        func mean(_ xs: [Float]) -> Float { xs.isEmpty ? .nan : Float(xs.reduce(0.0) { $0 + Double($1) } / Double(xs.count)) }
        meanAccuracyChange = mean(kept.map(\.accuracyChange))
        meanDegradationRate = mean(kept.map(\.degradationRate))
        meanFaultEffect = mean(kept.map(\.faultEffect))
        meanSmoothedFaultEffect = mean(kept.map(\.smoothedFaultEffect).filter(\.isFinite))
        experiments = runs.count
    }
}

/// `study.json`: the whole study.
public struct StudyResult: Codable, Sendable, Equatable {
    public var kind = "optimizer-study"
    public var baseline: OptimizerKind
    public var optimizers: [OptimizerKind]
    public var stepsAfterInjection: Int
    public var seed: UInt64
    /// The golden trace as it was given.
    public var golden: String
    public var workload: String
    public var scale: String
    public var experiments: [StudyExperiment]
    public var summary: [OptimizerSummary]
    // Added beyond the agreed schema.
    public var parameters: OptimizerStudyParameters

    public init(parameters: OptimizerStudyParameters, golden: String, config: TrainingConfig, experiments: [StudyExperiment]) {
        baseline = parameters.baseline
        optimizers = parameters.optimizers
        stepsAfterInjection = parameters.stepsAfterInjection
        seed = parameters.seed
        self.golden = golden
        workload = config.workload
        scale = config.scaleName
        self.experiments = experiments
        summary = parameters.optimizers.enumerated().map { i, o in OptimizerSummary(optimizer: o, runs: experiments.map { $0.runs[i] }) }
        self.parameters = parameters
    }
}

/// Draws the study's experiments: experiment i depends only on (seed, i) and the golden run.
public struct OptimizerStudyPlan: Sendable {
    public let parameters: OptimizerStudyParameters
    public let workload: String
    public let replicas: Int
    /// Forward MXU operations and their output shapes.
    public let sites: [(name: String, shape: [Int])]
    /// Global steps to inject into.
    public let steps: StepRange

    /// Checks the parameters against the golden run: the range of injection steps must leave
    /// `stepsAfterInjection` recorded steps after each.
    public init(parameters: OptimizerStudyParameters, golden reader: TraceReader, model: any Model) throws(OptimizerStudyError) {
        try parameters.validate()
        let m = reader.manifest
        guard m.config.optimizer.kind == parameters.baseline else {
            throw .golden(trace: reader.directory, reason: "was trained with \(m.config.optimizer.kind.rawValue), not the baseline \(parameters.baseline.rawValue) (give --baseline \(m.config.optimizer.kind.rawValue), or a golden trace recorded with --optimizer \(parameters.baseline.rawValue))")
        }
        let s = parameters.stepsAfterInjection
        // The last injection step whose continuation the golden trace covers: step g and
        // the S after it must all be recorded (the baseline's reference is the trace).
        let lastCovered = reader.completedSteps - 1 - s
        let range: StepRange
        if let given = parameters.steps {
            guard given.first <= lastCovered else {
                throw .golden(trace: reader.directory, reason: "has \(reader.completedSteps) steps; --steps-after-injection \(s) after the earliest injection step \(given.first) needs at least \(given.first + s + 1)")
            }
            guard given.last <= lastCovered else {
                throw .badParameter("--injection-steps \(given): the golden trace \(reader.directory) has \(reader.completedSteps) steps, so with --steps-after-injection \(s) the last injection step can be \(lastCovered)")
            }
            range = given
        } else {
            guard lastCovered >= 0 else {
                throw .golden(trace: reader.directory, reason: "has \(reader.completedSteps) steps; --steps-after-injection \(s) after the earliest injection step 0 needs at least \(s + 1)")
            }
            range = StepRange(first: 0, last: min(4 * m.stepsPerEpoch - 1, lastCovered))
        }
        self.parameters = parameters
        workload = m.config.workload
        replicas = m.config.replicas
        sites = model.operations.filter { $0.site.kind == .forward }.map { ($0.name, $0.outputShape) }
        steps = range
    }

    /// The fault of experiment `index`: its own random stream, keyed by (seed, index).
    public func spec(_ index: Int) -> InjectionSpec {
        var rng = CounterRNG(seed: parameters.seed, purpose: .faultSampling, index, 0, 0x4F50_5453)  // "OPTS"
        let step = steps.first + rng.nextInt(below: steps.last - steps.first + 1)
        let (site, shape) = sites[rng.nextInt(below: sites.count)]
        let replica = rng.nextInt(below: replicas)
        let count = shape.reduce(1, *)
        let groups = max(1, count / 16)
        let start = rng.nextInt(below: groups) * 16
        let offsets = start ..< min(count, start + 16)
        // Log-uniform: uniform in log space, with the simulator's platform-independent exp/log.
        let (lo, hi) = (DeterministicMath.log(parameters.valueLow), DeterministicMath.log(parameters.valueHigh))
        let value = min(parameters.valueHigh, max(parameters.valueLow, DeterministicMath.exp(lo + rng.nextUniform() * (hi - lo))))
        return InjectionSpec(workload: workload, site: site, faultModel: .N16_RD, replica: replica, globalStep: step,
                             positions: offsets.map { Tensor.index(ofOffset: $0, in: shape) },
                             values: Array(repeating: value, count: offsets.count))
    }
}
