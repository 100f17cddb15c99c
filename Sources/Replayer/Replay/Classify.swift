/// The outcome taxonomy of `docs/outcomes.md#outcome-classes`.
public enum Outcome: String, Sendable, Codable, CaseIterable {
    case masked = "Masked"
    case immediateINFsNaNs = "ImmediateINFsNaNs"
    case shortTermINFsNaNs = "ShortTermINFsNaNs"
    case sharpDegrade = "SharpDegrade"
    case sharpSlowDegrade = "SharpSlowDegrade"
    case slowDegrade = "SlowDegrade"
    case lowTestAccuracy = "LowTestAccuracy"
}

/// The numbers behind the classification, every one a named option.
public struct ClassifierThresholds: Sendable, Equatable, Codable {
    /// Accuracy band (fraction) within which the faulty run counts as matching golden.
    public var accuracyBand: Float = 0.02
    /// How close (fraction) to chance, 1/classes, counts as "near chance".
    public var chanceBand: Float = 0.05
    /// Steps at the end of both runs whose train accuracy is averaged as "final" (one
    /// batch's accuracy is noisy).
    public var finalWindow: Int = 10

    public init(accuracyBand: Float = 0.02, chanceBand: Float = 0.05, finalWindow: Int = 10) {
        self.accuracyBand = accuracyBand
        self.chanceBand = chanceBand
        self.finalWindow = finalWindow
    }

    /// Checks that every threshold means something: bands are fractions in [0, 1], the final
    /// window at least one step; the message names the option.
    public func validate() throws(ReplayError) {
        for (name, value) in [("--accuracy-band", accuracyBand), ("--chance-band", chanceBand)] where !(value >= 0 && value <= 1) {
            throw .specMismatch("\(name) must be a fraction in 0...1, got \(value)")
        }
        guard finalWindow >= 1 else { throw .specMismatch("--final-window must be at least 1, got \(finalWindow)") }
    }
}

/// One step's metrics as the classifier sees them (from a trace or a reference log).
public struct StepPoint: Sendable, Equatable, Codable {
    public var step: Int
    public var loss: Float
    public var accuracy: Float

    public init(step: Int, loss: Float, accuracy: Float) {
        self.step = step
        self.loss = loss
        self.accuracy = accuracy
    }
}

/// Classification: a pure function of the golden and faulty trajectories over the same
/// steps (faulty starting at the injected step), their final test accuracies, and the
/// thresholds. Returns the outcome and the evidence that decided it.
public enum Classifier {
    public static func classify(golden: [StepPoint], faulty: [StepPoint], goldenTest: Float?, faultyTest: Float?,
                                classes: Int, exact: Bool, thresholds t: ClassifierThresholds = .init()) -> (Outcome, [String]) {
        guard let first = faulty.first else { return (.masked, ["no faulty steps to compare"]) }
        let injected = first.step
        if let bad = faulty.first(where: { !$0.loss.isFinite }) {
            let when = bad.step - injected
            return when <= 1
                ? (.immediateINFsNaNs, ["loss \(bad.loss) at step \(bad.step), \(when) step(s) after the injection at \(injected)"])
                : (.shortTermINFsNaNs, ["first non-finite loss \(bad.loss) at step \(bad.step), \(when) steps after the injection at \(injected)"])
        }
        if exact { return (.masked, ["masked-exact: the training state became bit-identical to golden"]) }
        let goldenByStep = Dictionary(golden.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
        let paired = faulty.compactMap { f in goldenByStep[f.step].map { (g: $0, f: f) } }
        guard !paired.isEmpty else { return (.masked, ["no golden steps overlap the faulty run"]) }
        let window = paired.suffix(max(1, t.finalWindow))
        let goldenFinal = window.map(\.g.accuracy).reduce(0, +) / Float(window.count)
        let faultyFinal = window.map(\.f.accuracy).reduce(0, +) / Float(window.count)
        let chance = 1 / Float(classes)
        let early = paired.prefix(2)
        if let sharp = early.first(where: { abs($0.f.accuracy - chance) <= t.chanceBand && abs($0.g.accuracy - chance) > t.chanceBand }) {
            let evidence = "train accuracy \(sharp.f.accuracy) at step \(sharp.f.step) (chance \(chance), golden \(sharp.g.accuracy))"
            if faultyFinal < sharp.f.accuracy - t.accuracyBand {
                return (.sharpSlowDegrade, [evidence, "then down to \(faultyFinal) (mean of the last \(window.count) steps)"])
            }
            if goldenFinal - faultyFinal > t.accuracyBand { return (.sharpDegrade, [evidence, "final \(faultyFinal) vs golden \(goldenFinal)"]) }
        }
        let trainEvidence = "final train accuracy \(faultyFinal) vs golden \(goldenFinal) (mean of the last \(window.count) steps)"
        if goldenFinal - faultyFinal > t.accuracyBand { return (.slowDegrade, [trainEvidence]) }
        if let g = goldenTest, let f = faultyTest, g - f > t.accuracyBand {
            return (.lowTestAccuracy, [trainEvidence, "test accuracy \(f) vs golden \(g)"])
        }
        var evidence = [trainEvidence]
        if let g = goldenTest, let f = faultyTest { evidence.append("test accuracy \(f) vs golden \(g)") }
        return (.masked, evidence)
    }
}
