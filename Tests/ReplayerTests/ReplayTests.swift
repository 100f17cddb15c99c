import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

@Suite(.serialized) struct ReplayTests {
    static func scratch(_ name: String) -> String {
        Scratch.path("replay-\(name)")
    }

    static var golden: TraceReader { TinyGolden.nobnSGD }

    static func spec(_ edit: (inout ReplaySpec) -> Void = { _ in }) -> ReplaySpec {
        var s = ReplaySpec(model: "resnet18_nobn", stage: .forward, faultModel: .RD, targetWorker: 1,
                           targetLayer: "basicblock_2_basic_0_conv2", targetEpoch: 1, targetStep: 2, positions: [[1, 2, 1, 5]],
                           values: [0.5], valueTexts: ["0.5"], learningRate: 0.1, seed: 1)
        edit(&s)
        return s
    }

    @Test func aFaultHiddenByReLUIsMaskedExactly() throws {
        let r = try FaultReplay.run(golden: Self.golden, spec: InjectionSpec(Self.spec()), specName: "s.csv", stepsAfterInjection: nil, out: Self.scratch("masked"))
        #expect(r.outcome == "Masked" && r.stoppedEarly == "masked-exact" && r.stepsRun == 1)
        // An early stop spends no test evaluation: the faulty trace's last summary has none.
        let lastSummary = try TraceReader(directory: r.trace).epochSummaries().last
        #expect(r.faulty.testAccuracy.isNaN && lastSummary?.testAccuracy.isNaN == true)
        #expect(r.firstDivergence == .init(globalStep: 10, site: "basicblock_2_basic_0_conv2", replica: 1))
        #expect(r.injection.globalStep == 10 && r.injection.positions == [[1, 2, 1, 5]])
        let trace = try TraceReader(directory: r.trace)
        #expect(trace.manifest.injection?.site == "basicblock_2_basic_0_conv2" && trace.completedSteps == 11)
        // Bisect sees the operation that differed although the states never did.
        let b = try Bisect.run(Self.golden, trace)
        #expect(b.firstDivergentStep == 10 && b.firstDivergentSite == "basicblock_2_basic_0_conv2" && b.replica == 1)
    }

    @Test func aLargeFaultRunsToTheEndAndDivergesAtItsSite() throws {
        let r = try FaultReplay.run(golden: Self.golden, spec: InjectionSpec(Self.spec { $0.values = [50]; $0.positions = [[1, 2, 2, 5]] }), specName: "s.csv",
                                    stepsAfterInjection: 5, out: Self.scratch("large"))
        #expect(r.stoppedEarly == nil && r.stepsRun == 6, "\(r.stoppedEarly ?? "-") after \(r.stepsRun)")
        #expect(r.firstDivergence?.site == "basicblock_2_basic_0_conv2" && r.firstDivergence?.replica == 1)
        #expect(Outcome(rawValue: r.outcome) != nil && !r.evidence.isEmpty)
        #expect(r.faulty.testAccuracy.isFinite && r.golden.testAccuracy.isFinite)
    }

    @Test func aReplayTraceStartingMidRunVerifies() throws {
        let spec = InjectionSpec(Self.spec { $0.targetEpoch = 0; $0.targetStep = 1; $0.values = [2.5e24] })
        let r = try FaultReplay.run(golden: Self.golden, spec: spec, specName: "s.csv", stepsAfterInjection: 5, out: Self.scratch("midrun"))
        let trace = try TraceReader(directory: r.trace)
        #expect(trace.snapshotSteps.first == 1 && trace.snapshotSteps.count >= 2)
        #expect(try trace.verify() == trace.frames.count)
    }

    @Test func badSpecsFailNamingWhatIsWrong() throws {
        func error(_ s: ReplaySpec) -> String {
            do {
                _ = try FaultReplay.run(golden: Self.golden, spec: InjectionSpec(s), specName: "bad.csv", stepsAfterInjection: 1, out: Self.scratch("bad"))
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(error(Self.spec { $0.model = "resnet18" }).contains("the spec is for workload 'resnet18'"))
        #expect(error(Self.spec { $0.targetLayer = "basicblock_9_basic_0_conv2" }).contains("unknown layer 'basicblock_9_basic_0_conv2'"))
        #expect(error(Self.spec { $0.positions = [[4, 2, 1, 5]] }).contains("position 4/2/1/5 is outside the output of basicblock_2_basic_0_conv2"))
        #expect(error(Self.spec { $0.targetWorker = 2 }).contains("target_worker 2 does not exist"))
        #expect(error(Self.spec { $0.targetEpoch = 9 }).contains("the golden trace has steps 0...15"))
        #expect(error(Self.spec { $0.targetEpoch = Int.max }).contains("epoch 9223372036854775807 is past the end of the golden trace"))
        do {
            _ = try FaultReplay.run(golden: Self.golden, spec: InjectionSpec(Self.spec()), specName: "s.csv", stepsAfterInjection: -5, out: Self.scratch("negative"))
            Issue.record("a negative --steps-after-injection was accepted")
        } catch {
            #expect("\(error)".contains("--steps-after-injection must be non-negative (got -5)"))
        }
        #expect(error(Self.spec { $0.targetStep = 8 }).contains("past the end of an epoch"))
        #expect(error(Self.spec { $0.targetLayer = "conv1_grad_in" }).contains("unknown layer 'conv1_grad_in'"))
    }

    @Test func aSeededJSONSpecDrawsItsFaultAndRecordsIt() throws {
        let path = Self.scratch("seeded") + ".json"
        try Data(#"{"workload": "resnet18_nobn", "site": "basicblock_1_basic_0_conv1_grad_in", "faultModel": "N16_RD", "replica": 0, "globalStep": 6, "seed": 42}"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        let spec = try InjectionSpec.load(path: path)
        let a = try FaultReplay.run(golden: Self.golden, spec: spec, specName: path, stepsAfterInjection: 2, out: Self.scratch("seeded-a"))
        let b = try FaultReplay.run(golden: Self.golden, spec: spec, specName: path, stepsAfterInjection: 2, out: Self.scratch("seeded-b"))
        #expect(a.injection.values.count == 16 && a.injection == b.injection)
        #expect(a.firstDivergence?.site == "basicblock_1_basic_0_conv1_grad_in" && a.firstDivergence?.replica == 0)
        let recorded = try #require(try TraceReader(directory: a.trace).manifest.injection)
        #expect(recorded.positions == .operand(a.injection.positions) && recorded.values == a.injection.values && recorded.seed == 42)
        // The recorded injection replays verbatim to the same faulty trace.
        var verbatim = spec
        (verbatim.positions, verbatim.values, verbatim.seed) = (recorded.positions.indices, recorded.values, nil)
        let c = try FaultReplay.run(golden: Self.golden, spec: verbatim, specName: path, stepsAfterInjection: 2, out: Self.scratch("seeded-c"))
        // (State digests, not whole records: this fault drives the loss to NaN, and NaN != NaN.)
        #expect(try TraceReader(directory: c.trace).stepRecords().map(\.stateDigest) == (try TraceReader(directory: a.trace).stepRecords().map(\.stateDigest)))
        #expect(c.outcome == a.outcome)
    }

    @Test func malformedJSONSpecsAreRejected() throws {
        func error(_ json: String) -> String {
            let path = Self.scratch("bad-spec") + ".json"
            try? Data(json.utf8).write(to: URL(fileURLWithPath: path))
            do { _ = try InjectionSpec.load(path: path); return "no error" } catch { return "\(error)" }
        }
        #expect(error(#"{"workload": "resnet18", "site": "conv1", "faultModel": "RD", "replica": 0, "seed": 1}"#).contains("globalStep or both epoch and step"))
        #expect(error(#"{"workload": "resnet18", "site": "conv1", "faultModel": "RD", "replica": 0, "globalStep": 3}"#).contains("positions and values, or a seed"))
        #expect(error(#"{"workload": "resnet18", "site": "conv1", "faultModel": "RDX", "replica": 0, "globalStep": 3, "seed": 1}"#).contains(".json"))
        #expect(error(#"{"site": "conv1"}"#).contains("replay-bad-spec.json: field 'replica': missing"))
        #expect(error(#"{"workload": "resnet18", "site": "conv1", "faultModel": "RBFLIP", "replica": 0, "globalStep": 3, "seed": 1, "bit": 30}"#)
            .contains("unknown field 'bit' (expected workload, site, faultModel, hardware,"))
        #expect(error(#"{"workload": "resnet18", "site": "conv1", "replica": 0, "globalStep": 3, "hardware": {"row": 0, "column": 0, "register": "weight", "bit": 3, "stuckat": 1}}"#)
            .contains("unknown field 'hardware.stuckat'"))
        #expect(error("not json").contains("not valid JSON"))
    }

    @Test func sitesParseFromReferenceNames() {
        #expect(SiteID(parsing: "conv1") == SiteID(layer: "conv1", kind: .forward))
        #expect(SiteID(parsing: "basicblock_1_basic_0_conv1_grad_in") == SiteID(layer: "basicblock_1_basic_0_conv1", kind: .gradIn))
        #expect(SiteID(parsing: "dense_grad_wt") == SiteID(layer: "dense", kind: .gradWt))
    }
}

@Suite struct ClassifierTests {
    static func points(_ acc: [Float], from: Int = 10, loss: [Float]? = nil) -> [StepPoint] {
        acc.enumerated().map { StepPoint(step: from + $0.offset, loss: loss?[$0.offset] ?? 1, accuracy: $0.element) }
    }
    static let golden = points([Float](repeating: 0.8, count: 12))

    static func outcome(_ faulty: [StepPoint], test: (Float, Float) = (0.8, 0.8), exact: Bool = false) -> Outcome {
        Classifier.classify(golden: golden, faulty: faulty, goldenTest: test.0, faultyTest: test.1, classes: 10, exact: exact).outcome
    }

    @Test func eachOutcomeHasItsTrajectory() {
        #expect(Self.outcome(Self.points([0.8, 0.8], loss: [.nan, .nan])) == .immediateINFsNaNs)
        #expect(Self.outcome(Self.points([0.8, 0.7], loss: [1, .infinity])) == .immediateINFsNaNs)
        #expect(Self.outcome(Self.points([0.8, 0.8, 0.8, 0.7], loss: [1, 1, 1, .nan])) == .shortTermINFsNaNs)
        #expect(Self.outcome(Self.points([Float](repeating: 0.79, count: 12))) == .masked)
        #expect(Self.outcome(Self.points([0.8]), exact: true) == .masked)
        #expect(Self.outcome(Self.points([0.1] + [Float](repeating: 0.11, count: 11))) == .sharpDegrade)
        #expect(Self.outcome(Self.points([0.12] + [Float](repeating: 0.02, count: 11))) == .sharpSlowDegrade)
        #expect(Self.outcome(Self.points([0.8, 0.78, 0.75, 0.72, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7])) == .slowDegrade)
        #expect(Self.outcome(Self.points([Float](repeating: 0.8, count: 12)), test: (0.8, 0.6)) == .lowTestAccuracy)
    }

    @Test func thresholdsAreOptions() {
        let faulty = Self.points([Float](repeating: 0.77, count: 12))
        #expect(Classifier.classify(golden: Self.golden, faulty: faulty, goldenTest: nil, faultyTest: nil, classes: 10, exact: false).outcome == .slowDegrade)
        #expect(Classifier.classify(golden: Self.golden, faulty: faulty, goldenTest: nil, faultyTest: nil, classes: 10, exact: false,
                                    thresholds: .init(accuracyBand: 0.05)).outcome == .masked)
    }
}

/// The classifier against noise: a golden whose batch accuracy moves a few points from step to
/// step, a golden that never learned, test sets of different sizes.
@Suite struct NoiseAwareClassifierTests {
    /// A golden learning nothing more, its batch accuracy alternating 0.76 / 0.84 (sd of the
    /// step-to-step change about 0.08).
    static let noisy = (0..<60).map { StepPoint(step: $0, loss: 1, accuracy: $0 % 2 == 0 ? 0.76 : 0.84) }

    static func classify(_ faulty: [StepPoint], golden: [StepPoint] = noisy, test: (Float, Float)? = nil, testCount: Int? = nil,
                         _ t: ClassifierThresholds = .init()) -> Classification {
        Classifier.classify(golden: golden, faulty: faulty, goldenTest: test?.0, faultyTest: test?.1, testCount: testCount,
                            classes: 10, exact: false, thresholds: t)
    }

    /// The faulty run `drop` below the golden at every step from 50 on.
    static func below(_ drop: Float, steps: Int, golden: [StepPoint] = noisy) -> [StepPoint] {
        golden.filter { $0.step >= 50 && $0.step < 50 + steps }.map { StepPoint(step: $0.step, loss: 1, accuracy: $0.accuracy - drop) }
    }

    @Test func aDifferenceWithinTheGoldensNoiseIsMasked() {
        // 4 points below over two steps: beyond the 2-point band, within the noise.
        let c = Self.classify(Self.below(0.04, steps: 2))
        #expect(c.outcome == .masked, "\(c.evidence)")
        #expect(c.onset == nil && c.goldenLearned)
        #expect(c.evidence.contains { $0.contains("golden step-to-step train-accuracy sd 0.08") })
        // The band alone (the old rule) calls the same run a SlowDegrade.
        #expect(Self.classify(Self.below(0.04, steps: 2), .init(confidence: 0)).outcome == .slowDegrade)
    }

    @Test func aDifferenceBeyondTheNoiseIsADegradeWithItsOnset() {
        let c = Self.classify(Self.below(0.3, steps: 10))
        #expect(c.outcome == .slowDegrade, "\(c.evidence)")
        #expect(c.onset == 50)
        // More confidence asks for more: the same 12 points over two steps pass at 95 % and
        // not at 99.99 %.
        #expect(Self.classify(Self.below(0.12, steps: 2)).outcome == .slowDegrade)
        let strict = Self.classify(Self.below(0.12, steps: 2), .init(confidence: 0.9999))
        #expect(strict.outcome == .masked && strict.evidence.contains { $0.contains("(99.99 % one-sided)") }, "\(strict.evidence)")
        #expect(Self.classify(Self.below(0.12, steps: 2)).evidence.contains { $0.contains("(95 % one-sided)") })
    }

    @Test func aGoldenThatNeverLearnedGetsNoDegradeClass() {
        let chance = (0..<60).map { StepPoint(step: $0, loss: 2.3, accuracy: $0 % 2 == 0 ? 0.09 : 0.12) }
        let c = Self.classify(Self.below(0.05, steps: 5, golden: chance), golden: chance, test: (0.11, 0.05), testCount: 128)
        #expect(c.outcome == .masked && !c.goldenLearned, "\(c.evidence)")
        #expect(c.evidence.first?.contains("the golden has not learned") == true)
        // A non-finite loss needs no learned golden.
        let nan = [StepPoint(step: 50, loss: .nan, accuracy: 0.1)]
        #expect(Self.classify(nan, golden: chance).outcome == .immediateINFsNaNs)
        #expect(Self.classify(nan, golden: chance).onset == 50)
    }

    @Test func testAccuracyIsJudgedAgainstTheTestSetsSize() {
        let same = Self.noisy.filter { $0.step >= 50 && $0.step < 52 }
        // 3 points on 128 images: a handful of images, noise.
        #expect(Self.classify(same, test: (0.50, 0.47), testCount: 128).outcome == .masked)
        // 5 points on 10 000 images: far beyond it.
        let c = Self.classify(same, test: (0.85, 0.80), testCount: 10_000)
        #expect(c.outcome == .lowTestAccuracy && c.onset == 51, "\(c.evidence)")
        #expect(c.evidence.contains { $0.contains("on 10000 examples") })
        // Unknown size: the band alone, and the evidence says so.
        let unknown = Self.classify(same, test: (0.50, 0.47))
        #expect(unknown.outcome == .lowTestAccuracy && unknown.evidence.contains { $0.contains("test set size unknown") })
    }

    @Test func theNormalQuantileNeedsNoLibm() {
        #expect(abs(NormalQuantile.z(0.95) - 1.6448536269514722) < 1e-9)
        #expect(abs(NormalQuantile.z(0.975) - 1.959963984540054) < 1e-9)
        #expect(abs(NormalQuantile.z(0.9999) - 3.719016485455709) < 1e-9)
        #expect(NormalQuantile.cdf(0) == 0.5)
    }

    @Test func thresholdsWrittenBeforeTheConfidenceExistedKeepTheBandAlone() throws {
        let old = try JSONDecoder().decode(ClassifierThresholds.self, from: Data(#"{"accuracyBand":0.02,"chanceBand":0.05,"finalWindow":10}"#.utf8))
        #expect(old.confidence == 0)
        #expect(ClassifierThresholds().confidence == 0.95)
        func refusal(_ c: Float) -> String { do { try ClassifierThresholds(confidence: c).validate(); return "ok" } catch { return error.description } }
        #expect(refusal(0.3).contains("--confidence must be 0 (the band alone) or in 0.5...0.9999, got 0.3"))
        #expect(refusal(.nan).contains("--confidence"))
        #expect(refusal(0.99) == "ok" && refusal(0) == "ok")
        // Unvalidated values do not trap: clamped for the quantile.
        #expect(ClassifierThresholds(confidence: 0.3).z == 0 + NormalQuantile.z(0.5) && ClassifierThresholds(confidence: .nan).z == 0)
    }
}

@Suite struct ReferenceLogTests {
    static func log(_ name: String) throws -> ReferenceLog {
        try ReferenceLog.load(path: fixtures.appendingPathComponent(name).path)
    }

    @Test func theReferenceReplaysClassifyAsTheAuthorsReported() throws {
        let golden = try Self.log("resnet18__fault_free.txt")
        #expect(golden.steps.count == 50 * 49 && golden.stepsPerEpoch == 49 && golden.epochTestAccuracy[79] == 0.83220)
        let expected: [(String, Outcome)] = [("resnet18__replay_inj_masked.txt", .masked),
                                             ("resnet18__replay_inj_immediate_infs_nans.txt", .immediateINFsNaNs),
                                             ("resnet18__replay_inj_slow_degrade.txt", .slowDegrade)]
        for (file, outcome) in expected {
            let faulty = try Self.log(file)
            #expect(faulty.injectedStep != nil)
            let c = try ReferenceLog.classify(golden: golden, faulty: faulty, testCount: 10_000)
            #expect(c.outcome == outcome, "\(file): \(c.evidence)")
        }
        // The fault-free log against itself is masked, of course.
        #expect(try ReferenceLog.classify(golden: golden, faulty: golden).outcome == .masked)
        // No outcome without evidence: logs that share no step, an injection after the last
        // step, other steps per epoch, meaningless thresholds.
        func refusal(_ g: ReferenceLog, _ f: ReferenceLog, _ t: ClassifierThresholds = .init()) -> String {
            do { _ = try ReferenceLog.classify(golden: g, faulty: f, thresholds: t); return "no error" } catch { return "\(error)" }
        }
        let early = try ReferenceLog.parse("Epoch: 0/80, step: 1/49, loss: 1, accuracy: 0.5\n", file: "g.txt")
        let late = try ReferenceLog.parse("Inject to epoch: 70\nInject to step: 0\nEpoch: 70/80, step: 1/49, loss: 1, accuracy: 0.5\n", file: "f.txt")
        let after = try ReferenceLog.parse("Inject to epoch: 79\nInject to step: 0\nEpoch: 70/80, step: 1/49, loss: 1, accuracy: 0.5\n", file: "f.txt")
        let other = try ReferenceLog.parse("Epoch: 0/80, step: 1/50, loss: 1, accuracy: 0.5\n", file: "f.txt")
        #expect(refusal(early, late).contains("share no step"))
        #expect(refusal(early, after).contains("lies after the faulty log's last step"))
        #expect(refusal(early, other).contains("49 and 50 steps per epoch"))
        #expect(refusal(golden, golden, ClassifierThresholds(accuracyBand: .nan)).contains("--accuracy-band must be a fraction in 0...1, got nan"))
        #expect(refusal(golden, golden, ClassifierThresholds(accuracyBand: -1)).contains("--accuracy-band must be a fraction"))
    }

    @Test func malformedLogsFailNamingTheLine() {
        #expect(throws: ReplayError.self) { try ReferenceLog.parse("Epoch: 3/80, step: x/49, loss: 1, accuracy: 0.5\n", file: "l.txt") }
        #expect(throws: ReplayError.self) { try ReferenceLog.parse("nothing here\n", file: "l.txt") }
        do {
            _ = try ReferenceLog.parse("Epoch: 3/80, step: 1/49, loss: 1, accuracy: 0.5\nEpoch: 3/80, step: 2/49, loss: 1\n", file: "l.txt")
        } catch {
            #expect("\(error)".hasPrefix("l.txt:2:"))
        }
        func error(_ text: String) -> String {
            do { _ = try ReferenceLog.parse(text, file: "l.txt"); return "no error" } catch { return "\(error)" }
        }
        let step = "Epoch: 3/80, step: 1/49, loss: 1, accuracy: 0.5\n"
        #expect(error("Inject to epoch:\n" + step) == "l.txt:1: the injected epoch '' is not an integer in 0...1073741824")
        #expect(error("Inject to step: -3\n" + step).hasPrefix("l.txt:1: the injected step '-3'"))
        #expect(error("Epoch: 9223372036854775807/80, step: 1/49, loss: 1, accuracy: 0.5\n").hasPrefix("l.txt:1: epoch '9223372036854775807'"))
        #expect(error("Epoch: 3/80, step: 1/0, loss: 1, accuracy: 0.5\n") == "l.txt:1: step 1 of 0 per epoch in 'Epoch: 3/80, step: 1/0, loss: 1, accuracy: 0.5'")
        #expect(error(step + "Epoch: 3/80, step: 2/50, loss: 1, accuracy: 0.5\n").hasPrefix("l.txt:2: 50 steps per epoch; earlier lines say 49"))
    }
}
