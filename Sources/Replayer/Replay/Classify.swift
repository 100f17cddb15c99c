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
    /// One-sided confidence with which a difference must clear the band, given the golden's
    /// own noise (its step-to-step train-accuracy variability, the test set's size), before
    /// a degrade class is assigned. 0 compares differences with the band alone.
    public var confidence: Float = ClassifierThresholds.defaultConfidence

    /// The default ``confidence``.
    public static let defaultConfidence: Float = 0.95
    /// The largest ``confidence`` accepted (its normal quantile is about 3.7).
    public static let maximumConfidence: Float = 0.9999

    public init(accuracyBand: Float = 0.02, chanceBand: Float = 0.05, finalWindow: Int = 10,
                confidence: Float = ClassifierThresholds.defaultConfidence) {
        self.accuracyBand = accuracyBand
        self.chanceBand = chanceBand
        self.finalWindow = finalWindow
        self.confidence = confidence
    }

    enum CodingKeys: String, CodingKey { case accuracyBand, chanceBand, finalWindow, confidence }

    /// Campaigns written before ``confidence`` existed compared with the band alone: they
    /// decode with confidence 0, so a resumed or merged shard classifies as it began.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        accuracyBand = try c.decode(Float.self, forKey: .accuracyBand)
        chanceBand = try c.decode(Float.self, forKey: .chanceBand)
        finalWindow = try c.decode(Int.self, forKey: .finalWindow)
        confidence = try c.decodeIfPresent(Float.self, forKey: .confidence) ?? 0
    }

    /// Checks that every threshold means something: bands are fractions in [0, 1], the final
    /// window at least one step, the confidence 0 or in [0.5, 0.9999]; the message names the
    /// option.
    public func validate() throws(ReplayError) {
        for (name, value) in [("--accuracy-band", accuracyBand), ("--chance-band", chanceBand)] where !(value >= 0 && value <= 1) {
            throw .specMismatch("\(name) must be a fraction in 0...1, got \(value)")
        }
        guard finalWindow >= 1 else { throw .specMismatch("--final-window must be at least 1, got \(finalWindow)") }
        guard confidence == 0 || (confidence >= 0.5 && confidence <= Self.maximumConfidence) else {
            throw .specMismatch("--confidence must be 0 (the band alone) or in 0.5...\(Self.maximumConfidence), got \(confidence)")
        }
    }

    /// The normal quantile of ``confidence`` (one-sided); 0 when confidence is 0. A value
    /// ``validate()`` would refuse is clamped into 0.5...0.9999 here (never a trap).
    public var z: Double {
        guard confidence != 0, !confidence.isNaN else { return 0 }
        return NormalQuantile.z(min(max(Double(confidence), 0.5), Double(Self.maximumConfidence)))
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

/// What the classifier decided and why.
public struct Classification: Sendable, Equatable {
    public var outcome: Outcome
    /// The numbers that decided it, in words.
    public var evidence: [String]
    /// The global step at which the outcome showed itself: the first non-finite loss, the
    /// collapse, the first step whose accuracy left the golden's noise band, or the step of
    /// the test evaluation; nil for Masked.
    public var onset: Int?
    /// False when the golden itself had not learned (train accuracy within noise of chance):
    /// no degrade class is then assigned, since there is nothing to degrade from.
    public var goldenLearned: Bool
}

/// The golden's own noise: how much its batch train accuracy moves from one step to the next
/// (batch-to-batch sampling plus one update), the scale against which a faulty run's paired
/// difference is judged.
public struct GoldenNoise: Sendable, Equatable {
    /// Standard deviation of consecutive golden train-accuracy differences.
    public var stepSD: Double
    /// Consecutive step pairs it was estimated from.
    public var pairs: Int

    /// Golden steps (at most) the estimate looks back from the last compared step.
    public static let lookback = 50

    /// Estimated from the golden steps up to `last` (the last `lookback` of them); nil when
    /// fewer than two consecutive pairs exist.
    public init?(golden: [StepPoint], upTo last: Int) {
        let byStep = Dictionary(golden.filter { $0.step <= last }.map { ($0.step, $0.accuracy) }, uniquingKeysWith: { a, _ in a })
        let steps = byStep.keys.sorted().suffix(Self.lookback)
        var differences: [Double] = []
        for s in steps {
            if let a = byStep[s], let b = byStep[s - 1], a.isFinite, b.isFinite { differences.append(Double(a) - Double(b)) }
        }
        guard differences.count >= 2 else { return nil }
        let mean = differences.reduce(0, +) / Double(differences.count)
        let variance = differences.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(differences.count - 1)
        stepSD = variance.squareRoot()
        pairs = differences.count
    }
}

/// Classification: a pure function of the golden and faulty trajectories (faulty starting at
/// the injected step; golden over any steps, the earlier ones giving its noise), their final
/// test accuracies and the test set's size, and the thresholds. Returns the outcome with the
/// evidence that decided it and its onset.
///
/// Faulty and golden are compared on the same steps, hence the same batches (paired). A
/// degrade class needs the difference to clear the accuracy band with the configured
/// confidence: for train accuracy against the golden's step-to-step variability over the
/// final window, for test accuracy against the binomial error of two evaluations on
/// `testCount` examples (unpaired: conservative).
public enum Classifier {
    public static func classify(golden: [StepPoint], faulty: [StepPoint], goldenTest: Float?, faultyTest: Float?,
                                testCount: Int? = nil, classes: Int, exact: Bool,
                                thresholds t: ClassifierThresholds = .init()) -> Classification {
        func result(_ o: Outcome, _ evidence: [String], onset: Int? = nil, learned: Bool = true) -> Classification {
            Classification(outcome: o, evidence: evidence, onset: onset, goldenLearned: learned)
        }
        guard let first = faulty.first else { return result(.masked, ["no faulty steps to compare"]) }
        let injected = first.step
        if let bad = faulty.first(where: { !$0.loss.isFinite }) {
            let when = bad.step - injected
            return when <= 1
                ? result(.immediateINFsNaNs, ["loss \(bad.loss) at step \(bad.step), \(when) step(s) after the injection at \(injected)"], onset: bad.step)
                : result(.shortTermINFsNaNs, ["first non-finite loss \(bad.loss) at step \(bad.step), \(when) steps after the injection at \(injected)"], onset: bad.step)
        }
        if exact { return result(.masked, ["masked-exact: the training state became bit-identical to golden"]) }
        let goldenByStep = Dictionary(golden.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
        let paired = faulty.compactMap { f in goldenByStep[f.step].map { (g: $0, f: f) } }
        guard let lastPaired = paired.last else { return result(.masked, ["no golden steps overlap the faulty run"]) }
        let z = t.z
        let band = Double(t.accuracyBand)
        let noise = GoldenNoise(golden: golden, upTo: lastPaired.f.step)
        let sd = noise?.stepSD ?? 0
        let window = paired.suffix(max(1, t.finalWindow))
        let n = Double(window.count)
        let goldenFinal = window.map(\.g.accuracy).reduce(0, +) / Float(window.count)
        let faultyFinal = window.map(\.f.accuracy).reduce(0, +) / Float(window.count)
        // The margin a mean over the window (or one step) must clear beyond the band.
        let windowMargin = z * sd / n.squareRoot()
        let stepMargin = z * sd
        let percent = (Double(t.confidence) * 10_000).rounded() / 100  // 95, 99.99
        let confidence = percent == percent.rounded() ? "\(Int(percent)) %" : "\(percent) %"
        let noiseEvidence: String
        if z == 0 {
            noiseEvidence = "noise not accounted for (--confidence 0): differences compared with the band \(t.accuracyBand) alone"
        } else if let noise {
            noiseEvidence = "golden step-to-step train-accuracy sd \(format(noise.stepSD)) (\(noise.pairs) step pairs): a difference must exceed the band \(t.accuracyBand) by \(format(windowMargin)) over \(window.count) step(s) (\(confidence) one-sided)"
        } else {
            noiseEvidence = "golden noise unknown (fewer than 3 consecutive golden steps): differences compared with the band \(t.accuracyBand) alone"
        }
        let chance = 1 / Float(classes)

        // A golden at chance has nothing to lose: no degrade class, say so.
        let learnedMargin = Double(t.chanceBand) + windowMargin
        guard Double(goldenFinal - chance) > learnedMargin else {
            return result(.masked, ["the golden has not learned: its train accuracy \(goldenFinal) (mean of the last \(window.count) steps) is within \(format(learnedMargin)) of chance \(chance); no degrade class is assigned",
                                    noiseEvidence], learned: false)
        }

        let early = paired.prefix(2)
        if let sharp = early.first(where: { abs($0.f.accuracy - chance) <= t.chanceBand && abs($0.g.accuracy - chance) > t.chanceBand
                                            && Double($0.g.accuracy - $0.f.accuracy) > band + stepMargin }) {
            let evidence = "train accuracy \(sharp.f.accuracy) at step \(sharp.f.step) (chance \(chance), golden \(sharp.g.accuracy))"
            if Double(sharp.f.accuracy - faultyFinal) > band + stepMargin {
                return result(.sharpSlowDegrade, [evidence, "then down to \(faultyFinal) (mean of the last \(window.count) steps)", noiseEvidence], onset: sharp.f.step)
            }
            if Double(goldenFinal - faultyFinal) > band + windowMargin {
                return result(.sharpDegrade, [evidence, "final \(faultyFinal) vs golden \(goldenFinal)", noiseEvidence], onset: sharp.f.step)
            }
        }
        let trainEvidence = "final train accuracy \(faultyFinal) vs golden \(goldenFinal) (mean of the last \(window.count) steps)"
        if Double(goldenFinal - faultyFinal) > band + windowMargin {
            // Onset: the first paired step whose own difference leaves the band by a step's noise
            // (else the window's first step: only the mean left it).
            let onset = paired.first { Double($0.g.accuracy - $0.f.accuracy) > band + stepMargin }?.f.step ?? window.first?.f.step
            return result(.slowDegrade, [trainEvidence, noiseEvidence], onset: onset)
        }
        var evidence = [trainEvidence, noiseEvidence]
        if let g = goldenTest, let f = faultyTest, g.isFinite, f.isFinite {
            let testMargin: Double
            let testEvidence: String
            if let count = testCount, count > 0, z > 0 {
                let (pg, pf, m) = (Double(g), Double(f), Double(count))
                testMargin = z * (pg * (1 - pg) / m + pf * (1 - pf) / m).squareRoot()
                testEvidence = "test accuracy \(f) vs golden \(g) on \(count) examples: a difference must exceed the band by \(format(testMargin)) (\(confidence) one-sided)"
            } else {
                testMargin = 0
                testEvidence = "test accuracy \(f) vs golden \(g)" + (z > 0 ? " (test set size unknown: band alone)" : "")
            }
            if Double(g - f) > band + testMargin {
                return result(.lowTestAccuracy, [trainEvidence, testEvidence, noiseEvidence], onset: lastPaired.f.step)
            }
            evidence.insert(testEvidence, at: 1)
        }
        return result(.masked, evidence)
    }

    static func format(_ x: Double) -> String {
        let scaled = (x * 10_000).rounded() / 10_000
        return "\(scaled)"
    }
}

/// The standard normal quantile, computed with IEEE arithmetic alone (no libm), so a
/// classification is the same on every host.
public enum NormalQuantile {
    /// `z` with Φ(z) = p, for p in [0.5, 0.9999] (bisection to 1e-12).
    public static func z(_ p: Double) -> Double {
        precondition(p >= 0.5 && p <= 0.99995, "NormalQuantile.z: p \(p) outside 0.5...0.99995")
        var (lo, hi) = (0.0, 4.5)
        for _ in 0..<60 {
            let mid = (lo + hi) / 2
            if cdf(mid) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// Φ(x) for 0 <= x <= 4.5: 1/2 + φ(x) Σ x^(2k+1) / (1·3···(2k+1)) (all terms positive).
    public static func cdf(_ x: Double) -> Double {
        precondition(x >= 0 && x <= 4.5, "NormalQuantile.cdf: x \(x) outside 0...4.5")
        var term = x, sum = x, k = 0.0
        while term > 1e-17 * sum {
            k += 1
            term *= x * x / (2 * k + 1)
            sum += term
        }
        return 0.5 + density(x) * sum
    }

    /// φ(x) = exp(-x²/2)/√(2π), exp by its Taylor series (x²/2 <= 10.2 here).
    static func density(_ x: Double) -> Double {
        let y = x * x / 2
        var term = 1.0, sum = 1.0, k = 0.0
        while term > 1e-17 * sum {
            k += 1
            term *= y / k
            sum += term
        }
        return 1 / (sum * 2.5066282746310002)
    }
}
