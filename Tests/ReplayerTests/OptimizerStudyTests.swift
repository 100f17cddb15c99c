import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// The optimizer study on a tiny golden run (resnet18 with Adam, synthetic data, 2
/// replicas, 8 steps): short studies, run once and shared by the tests.
@Suite(.serialized) struct OptimizerStudyTests {
    /// Shared by the tests; under the test process's scratch directory, removed at exit.
    static let root: String = {
        let d = Scratch.path("optstudy")
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func scratch(_ name: String) -> String {
        let d = root + "/" + name
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    static let dataset = "synthetic:train=64,test=16,shape=16x16x1"

    static let golden: String = {
        let data = try! DatasetSource.parse(dataset).load()
        let run = try! TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", optimizer: .adam, replicas: 2), data: data)
        return try! TraceRecorder.record(run: run, dataset: dataset, steps: 8, policy: .init(snapshotEvery: 4), to: scratch("golden")).directory
    }()

    static let parameters = OptimizerStudyParameters(baseline: .adam, testOptimizers: [.sgd, .rmsprop], experiments: 2,
                                                     stepsAfterInjection: 2, seed: 5)

    /// The reference study, one thread.
    static let first: OptimizerStudyReport = try! OptimizerStudy.run(golden: .trace(golden), parameters: parameters, out: scratch("first"), resume: false)

    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    static func error(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    // MARK: Pure parts

    @Test func statusThresholdsAreOnePointEitherWay() {
        #expect(RecoveryStatus.classify(change: 0.0101) == .Recovered)
        #expect(RecoveryStatus.classify(change: 0.5) == .Recovered)
        #expect(RecoveryStatus.classify(change: 0.01) == .Stable)
        #expect(RecoveryStatus.classify(change: 0) == .Stable)
        #expect(RecoveryStatus.classify(change: -0.01) == .Stable)
        #expect(RecoveryStatus.classify(change: -0.0101) == .Degraded)
        #expect(RecoveryStatus.classify(change: .nan) == .Degraded)
        #expect(RecoveryStatus.classify(change: 0.03, threshold: 0.05) == .Stable)
    }

    @Test func degradationRateIsTheLeastSquaresSlopeOfTheLast100Points() {
        // Exact line: the slope itself.
        let x = Array(10..<20)
        #expect(abs(CurveFit.slope(x: x, y: x.map { 0.9 - 0.002 * Float($0) }) - -0.002) < 1e-6)
        // Hand-made: (0,0), (1,1), (2,0), (3,1): Sxy = 1, Sxx = 5, slope 0.2.
        #expect(abs(CurveFit.slope(x: [0, 1, 2, 3], y: [0, 1, 0, 1]) - 0.2) < 1e-6)
        // 150 points: a jump in the first 50, a line of slope 0.001 in the last 100 only.
        let steps = Array(0..<150)
        let acc = steps.map { $0 < 50 ? Float($0 % 2) : 0.5 + 0.001 * Float($0) }
        #expect(abs(CurveFit.degradationRate(steps: steps, accuracy: acc) - 0.001) < 1e-6)
        #expect(abs(CurveFit.degradationRate(steps: steps, accuracy: acc, window: 150) - 0.001) > 1e-4)
        // Fewer than 100: all of them; non-finite points left out; one point: 0.
        #expect(abs(CurveFit.degradationRate(steps: [5, 6, 7], accuracy: [0.5, .nan, 0.3]) - -0.1) < 1e-6)
        #expect(CurveFit.degradationRate(steps: [5], accuracy: [0.5]) == 0)
    }

    @Test func aRunWithANonFiniteLossDivergesThere() {
        let r = OptimizerRun(optimizer: .sgd, steps: [10, 11, 12, 13], accuracy: [0.5, 0.4, 0.1, .nan], loss: [1, 2, .infinity, .nan],
                             referenceAccuracy: [0.5, 0.52, 0.55, 0.56], referenceLoss: [1, 1, 1, 1], accuracyAtInjection: 0.5)
        #expect(r.status == .Diverged && r.divergenceStep == 12 && r.finalAccuracy == 0.1)
        #expect(r.referenceStatus == .Recovered && r.referenceDivergenceStep == nil && abs(r.referenceAccuracyChange - 0.06) < 1e-6)
        let s = OptimizerSummary(optimizer: .sgd, runs: [r])
        #expect(s.diverged == 1 && s.recovered + s.stable + s.degraded == 0 && s.meanAccuracyChange.isNaN)
    }

    /// A fault-free reference with batch noise: a slow rise plus a fixed zig-zag of a few
    /// points (21 steps: the injected one and 20 after it).
    static let steps = Array(100...120)
    static let noise: [Float] = [0.03, -0.02, 0.01, -0.04, 0.02, 0.0, -0.01, 0.04, -0.03, 0.02, -0.02, 0.01, 0.03, -0.01, -0.03, 0.02, 0.0, -0.02, 0.04, -0.01, 0.01]
    static let reference: [Float] = zip(0..<21, noise).map { i, n in 0.6 + 0.002 * Float(i) + n }
    static let flat = [Float](repeating: 1, count: 21)

    /// The standard deviation of consecutive differences, as the test computes it.
    static func stepSD(_ xs: [Float]) -> Double {
        let d = zip(xs.dropFirst(), xs).map { Double($0) - Double($1) }
        let mean = d.reduce(0, +) / Double(d.count)
        return (d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d.count - 1)).squareRoot()
    }

    @Test func effectStatusJudgesFaultyMinusItsReferenceAgainstTheReferencesNoise() throws {
        let z = NormalQuantile.z(0.95)
        let sd = Self.stepSD(Self.reference)
        // Faulty = reference + a little noise of its own: Unaffected, although the reference-
        // defined status calls it Recovered or Degraded (the batch noise at the last step).
        let jitter: [Float] = (0..<21).map { [0.004, -0.003, 0.002, -0.005, 0.001][$0 % 5] }
        let same = OptimizerRun(optimizer: .adam, steps: Self.steps, accuracy: zip(Self.reference, jitter).map(+), loss: Self.flat,
                                referenceAccuracy: Self.reference, referenceLoss: Self.flat, accuracyAtInjection: 0.6)
        #expect(same.effectStatus == .Unaffected)
        #expect(same.status != .Stable && same.referenceStatus == same.status, "the reference-defined rule calls a fault-free run \(same.referenceStatus)")
        // The reference's noise is estimated from its own curve, and sets the margin.
        let noise = try #require(same.referenceNoise)
        #expect(abs(Double(noise) - sd) < 1e-6 && sd > 0.02)
        #expect(abs(Double(same.effectMargin) - (0.01 + z * sd / 10.0.squareRoot())) < 1e-6)
        let lastTen = zip(Self.reference, jitter).map(+).suffix(10).enumerated().map { Double($1) - Double(Self.reference[11 + $0]) }
        #expect(abs(Double(same.smoothedFaultEffect) - lastTen.reduce(0, +) / 10) < 1e-6)

        // Ten points lower: Degraded; ten higher: Improved; a non-finite loss: Diverged.
        let lower = OptimizerRun(optimizer: .adam, steps: Self.steps, accuracy: Self.reference.map { $0 - 0.1 }, loss: Self.flat,
                                 referenceAccuracy: Self.reference, referenceLoss: Self.flat, accuracyAtInjection: 0.6)
        #expect(lower.effectStatus == .Degraded && abs(lower.smoothedFaultEffect + 0.1) < 1e-6)
        let higher = FaultEffect(steps: Self.steps, accuracy: Self.reference.map { $0 + 0.1 }, loss: Self.flat, referenceAccuracy: Self.reference, referenceLoss: Self.flat)
        #expect(higher.status == .Improved)
        var loss = Self.flat
        loss[5] = .nan
        #expect(FaultEffect(steps: Self.steps, accuracy: Self.reference, loss: loss, referenceAccuracy: Self.reference, referenceLoss: Self.flat).status == .Diverged)

        // The same 3-point drop: within a noisy reference's margin, beyond a quiet one's.
        let drop = FaultEffect(steps: Self.steps, accuracy: Self.reference.map { $0 - 0.03 }, loss: Self.flat, referenceAccuracy: Self.reference, referenceLoss: Self.flat)
        #expect(drop.status == .Unaffected && drop.margin > 0.03)
        let quiet: [Float] = (0..<21).map { 0.6 + 0.002 * Float($0) + ($0 % 2 == 0 ? 0.002 : -0.002) }
        let quietDrop = FaultEffect(steps: Self.steps, accuracy: quiet.map { $0 - 0.03 }, loss: Self.flat, referenceAccuracy: quiet, referenceLoss: Self.flat)
        #expect(quietDrop.status == .Degraded && quietDrop.margin < 0.02)

        // Smoothed over the last 10 steps only: an early dip that recovered is Unaffected.
        let dip = FaultEffect(steps: Self.steps, accuracy: (0..<21).map { Self.reference[$0] - ($0 < 11 ? 0.3 : 0) }, loss: Self.flat,
                              referenceAccuracy: Self.reference, referenceLoss: Self.flat)
        #expect(dip.status == .Unaffected && dip.averaged == 10)
        let curve = FaultEffect.smoothedCurve(FaultEffect.differences(accuracy: lower.accuracy, loss: Self.flat, referenceAccuracy: Self.reference, referenceLoss: Self.flat))
        #expect(curve.count == 21 && abs((curve.last ?? 0) - lower.smoothedFaultEffect) < 1e-7)
        // Two steps: the noise is unknown and the threshold alone decides.
        let short = FaultEffect(steps: [5, 6], accuracy: [0.5, 0.49], loss: [1, 1], referenceAccuracy: [0.5, 0.5], referenceLoss: [1, 1])
        #expect(short.referenceNoise == nil && short.margin == FaultEffect.threshold && short.status == .Unaffected)

        // Counted per optimizer next to the reference-defined statuses.
        let summary = OptimizerSummary(optimizer: .adam, runs: [same, lower])
        #expect(summary.unaffected == 1 && summary.effectDegraded == 1 && summary.improved == 0 && summary.diverged == 0)
        #expect(OptimizerStudy.summaryCSV([summary]).hasPrefix("optimizer,experiments,recovered,stable,degraded,diverged,mean_accuracy_change,mean_degradation_rate,mean_fault_effect,effect_degraded,unaffected,improved,mean_smoothed_fault_effect\n"))
    }

    @Test func runsWrittenBeforeTheEffectFieldsGetThemComputedWhenRead() throws {
        let run = OptimizerRun(optimizer: .sgd, steps: Self.steps, accuracy: Self.reference.map { $0 - 0.1 }, loss: Self.flat,
                               referenceAccuracy: Self.reference, referenceLoss: Self.flat, accuracyAtInjection: 0.6)
        var object = try #require(try JSONSerialization.jsonObject(with: OptimizerStudy.encoder.encode(run)) as? [String: Any])
        #expect(object["effectStatus"] as? String == "Degraded" && object["smoothedFaultEffect"] != nil && object["effectMargin"] != nil)
        for key in ["effectStatus", "smoothedFaultEffect", "effectMargin", "referenceNoise"] { object[key] = nil }
        let old = try OptimizerStudy.decoder.decode(OptimizerRun.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(old == run)
    }

    // MARK: Studies

    @Test func sameSeedGivesByteIdenticalStudyWhateverTheThreads() throws {
        let a = Self.first
        #expect(a.ranNow == 2 && a.resumed == 0)
        #expect(a.result.experiments.map(\.index) == [0, 1])
        #expect(a.result.experiments.allSatisfy { $0.runs.map(\.optimizer) == [.adam, .sgd, .rmsprop] && $0.faultModel == "N16_RD" })
        #expect(a.result.experiments.allSatisfy { e in e.runs.allSatisfy { $0.steps == Array(e.globalStep...(e.globalStep + 2)) && $0.accuracy.count == 3 } })
        #expect(a.result.experiments.allSatisfy { ($0.spec.values ?? []).allSatisfy { v in v >= 3.6e2 && v <= 1.2e8 } && $0.spec.positions?.count == 16 })
        let b = try OptimizerStudy.run(golden: .trace(Self.golden), parameters: Self.parameters, out: Self.scratch("second"), resume: false, threads: 2)
        #expect(try Self.bytes(a.directory + "/study.json") == Self.bytes(b.directory + "/study.json"))
        for name in ["summary.csv", "curves_adam.csv", "curves_sgd.csv", "curves_rmsprop.csv", "experiments/1.json"] {
            #expect(try Self.bytes(a.directory + "/" + name) == Self.bytes(b.directory + "/" + name), "\(name)")
        }
        // The agreed schema's fields are all there.
        let json = try #require(try JSONSerialization.jsonObject(with: Self.bytes(a.directory + "/study.json")) as? [String: Any])
        for key in ["kind", "baseline", "optimizers", "stepsAfterInjection", "seed", "golden", "workload", "scale", "experiments", "summary"] {
            #expect(json[key] != nil, "\(key)")
        }
        #expect(json["kind"] as? String == "optimizer-study" && json["optimizers"] as? [String] == ["adam", "sgd", "rmsprop"])
        let run = try #require(((json["experiments"] as? [[String: Any]])?.first?["runs"] as? [[String: Any]])?.first)
        #expect(run["divergenceStep"] is NSNull)
        let csv = try String(contentsOfFile: a.directory + "/curves_sgd.csv", encoding: .utf8)
        #expect(csv.hasPrefix("experiment,step,accuracy,loss,reference_accuracy,reference_loss\n") && csv.split(separator: "\n").count == 1 + 2 * 3)
    }

    @Test func baselineContinuationIsTheReplayOfTheSameSpec() throws {
        let e = Self.first.result.experiments[0]
        let study = e.runs[0]
        let replay = try FaultReplay.run(golden: TraceReader(directory: Self.golden), spec: e.spec, specName: "experiment 0",
                                         stepsAfterInjection: 2, out: Self.scratch("replay"))
        let records = try TraceReader(directory: Self.root + "/replay").stepRecords()
        #expect(replay.stoppedEarly == nil, "the fault should not be masked, or the test shows nothing")
        #expect(records.map(\.step) == study.steps)
        #expect(records.map(\.loss) == study.loss && records.map(\.accuracy) == study.accuracy)
        #expect(records.last?.stateDigest == study.finalStateDigest)
        // The fault changed something, and the baseline's reference is the golden trace.
        let golden = try TraceReader(directory: Self.golden).stepRecords().filter { study.steps.contains($0.step) }
        #expect(golden.map(\.accuracy) == study.referenceAccuracy && golden.map(\.loss) == study.referenceLoss)
        #expect(study.loss != study.referenceLoss && golden.last?.stateDigest != study.finalStateDigest)
    }

    @Test func faultFreeExperimentHasReferenceEqualToFaultyCurves() throws {
        let reader = try TraceReader(directory: Self.golden)
        let spec = InjectionSpec(workload: "resnet18", site: "conv1", faultModel: .N16_RD, replica: 0, globalStep: 3, positions: [], values: [])
        for shortcut in [false, true] {
            let context = try OptimizerStudy.Context(restorer: TraceRestorer(reader: reader), parameters: Self.parameters, shortcutIdentical: shortcut)
            let (e, simulated) = try context.experiment(0, spec: spec)
            for r in e.runs {
                #expect(r.accuracy == r.referenceAccuracy && r.loss == r.referenceLoss, "\(r.optimizer)")
                #expect(r.faultEffect == 0 && r.status == r.referenceStatus)
                #expect(r.effectStatus == .Unaffected && r.smoothedFaultEffect == 0)
                #expect(r.identicalFromStep == (shortcut ? 4 : nil))
            }
            // Computed in full: 3 to restore step 3 (snapshot 0), 1 injected, 1 golden, adam 2, (sgd, rmsprop) x
            // (2 reference + 2 faulty); with the shortcut the faulty runs take their references' curves.
            #expect(simulated == (shortcut ? 3 + 2 + 4 : 3 + 2 + 2 + 8))
        }
    }

    @Test func resumeDoesNotRedoFinishedExperiments() throws {
        let fm = FileManager.default
        let dir = Self.scratch("resume")
        try fm.copyItem(atPath: Self.first.directory, toPath: dir)
        try fm.removeItem(atPath: dir + "/experiments/1.json")
        try fm.removeItem(atPath: dir + "/study.json")
        // A recognisable mark in experiment 0: a redone experiment would lose it.
        var zero = try OptimizerStudy.decoder.decode(StudyExperiment.self, from: Self.bytes(dir + "/experiments/0.json"))
        zero.value = 999_999
        try OptimizerStudy.write(try OptimizerStudy.encoder.encode(zero), to: dir + "/experiments/0.json")

        let r = try OptimizerStudy.run(golden: .trace(Self.golden), parameters: Self.parameters, out: dir, resume: true)
        #expect(r.ranNow == 1 && r.resumed == 1 && r.costs.map(\.index) == [1])
        #expect(r.result.experiments[0].value == 999_999)
        #expect(r.result.experiments[1] == Self.first.result.experiments[1])

        // Another study's parameters: refused, nothing changed.
        var other = Self.parameters
        other.seed = 6
        let before = try Self.bytes(dir + "/study.json")
        #expect(Self.error { _ = try OptimizerStudy.run(golden: .trace(Self.golden), parameters: other, out: dir, resume: true) }.contains("holds another study"))
        #expect(try Self.bytes(dir + "/study.json") == before)
    }

    @Test func badInputIsRefusedBeforeAnythingIsWritten() throws {
        let out = Self.scratch("bad")
        func run(_ p: OptimizerStudyParameters, out: String = out) -> String {
            Self.error { _ = try OptimizerStudy.run(golden: .trace(Self.golden), parameters: p, out: out, resume: false) }
        }
        #expect(Self.error { _ = try OptimizerStudyParameters.optimizer("adamw") }.contains("unknown optimizer 'adamw'"))
        var p = Self.parameters
        p.testOptimizers = [.sgd, .adam]
        #expect(run(p).contains("repeats the baseline 'adam'"))
        p = Self.parameters
        p.experiments = 0
        #expect(run(p).contains("--experiments must be positive"))
        p = Self.parameters
        p.stepsAfterInjection = 8
        #expect(run(p).contains("has 8 steps; --steps-after-injection 8 after the earliest injection step 0 needs at least 9"))
        p = Self.parameters
        p.steps = StepRange(first: 6, last: 7)
        #expect(run(p).contains("needs at least 9"))
        p = Self.parameters
        p.baseline = .sgd
        p.testOptimizers = [.adam]
        #expect(run(p).contains("was trained with adam, not the baseline sgd"))
        #expect(!FileManager.default.fileExists(atPath: out))
        // A finished study is not overwritten without --resume.
        let before = try Self.bytes(Self.first.directory + "/study.json")
        #expect(run(Self.parameters, out: Self.first.directory).contains("not empty (use --resume"))
        #expect(try Self.bytes(Self.first.directory + "/study.json") == before)
    }
}
