import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

@Suite struct MitigationReplayTests {
    static let dataset = "synthetic:train=64,test=16,shape=16x16x1"

    /// `resnet18` at `tiny` with Adam and batch norm, 2 replicas, 8 steps, a snapshot every 2.
    static let golden: TraceReader = {
        do {
            let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), data: DatasetSource.parse(dataset).load())
            return try TraceRecorder.record(run: run, dataset: dataset, steps: 8, policy: .init(snapshotEvery: 2), to: Scratch.path("mitigation-golden"))
        } catch {
            fatalError("cannot record the mitigation tests' golden trace: \(error)")
        }
    }()

    /// A stuck exponent bit of a resident weight: without mitigation the run never comes back
    /// to golden (on this tiny golden, which has not learned, no degrade class is assigned).
    static let stuck = InjectionSpec(workload: "resnet18", site: "basicblock_1_basic_0_conv2", faultModel: nil, replica: 1, globalStep: 3,
                                     hardware: HardwareFault(row: 5, column: 2, register: .weight, bit: 14, kind: .stuckAt(value: 1)))

    static func replay(_ name: String, _ mitigation: Mitigation?, spec: InjectionSpec = stuck) throws -> (ReplayResult, TraceReader) {
        let out = Scratch.path("mitigation-\(name)")
        try? FileManager.default.removeItem(atPath: out)
        let golden = try GoldenReference(restorer: TraceRestorer(reader: Self.golden))
        let r = try FaultReplay.run(golden: golden, spec: spec, specName: name, options: .init(stepsAfterInjection: 3, mitigation: mitigation), out: out)
        return (r, try TraceReader(directory: out))
    }

    /// The product checksums catch the corrupted product in the injected step; the restore
    /// re-executes it without the fault and the run is bit-identical to golden again, as its
    /// digests prove; the trace records the event and verifies.
    @Test func aCorruptedProductIsCaughtWhereItHappensAndRestoredBitIdentical() throws {
        let (plain, _) = try Self.replay("plain", nil)
        #expect(plain.stoppedEarly != "masked-exact" && plain.firstDivergence?.globalStep == 3)
        #expect(plain.mitigation == nil)
        let (r, trace) = try Self.replay("restore", try Mitigation(parsing: "abft"))
        #expect(r.outcome == Outcome.masked.rawValue && r.stoppedEarly == "masked-exact")
        let m = try #require(r.mitigation)
        #expect(m.detected && m.detectors == ["abft"] && m.firstDetection == 3 && m.latency == 0)
        #expect(m.restores == 1 && m.skips == 0 && m.reexecutedSteps == 1)
        let events = try #require(trace.manifest.mitigation?.events)
        #expect(events.count == 1 && events[0].action == .restored && events[0].restoredTo == 3)
        #expect(events[0].detections.first?.variable.hasPrefix("basicblock_1_basic_0_conv2 column") == true)
        // The committed step is the clean re-execution: golden's digest, and the trace verifies.
        let golden = try Self.golden.stepRecords().first { $0.step == 3 }
        #expect(try trace.stepRecords().first?.stateDigest == golden?.stateDigest)
        _ = try trace.verify()
    }

    /// Detect only: the run is the plain faulty run, step for step, with the detections
    /// recorded beside it.
    @Test func detectOnlyRecordsWithoutChangingTheRun() throws {
        let (plain, plainTrace) = try Self.replay("plain-detect", nil)
        let (r, trace) = try Self.replay("detect", try Mitigation(parsing: "abft,non-finite,adam-m", response: .detect))
        #expect(r.outcome == plain.outcome)
        #expect(try trace.stepRecords().map(\.stateDigest) == plainTrace.stepRecords().map(\.stateDigest))
        #expect(r.mitigation?.detectors.first == "abft" && r.mitigation?.firstDetection == 3)
        #expect(trace.manifest.mitigation?.events.map(\.action) == [.detected])
    }

    /// Skip: the injected step's update is dropped and the run goes on (never bit-identical
    /// to golden again: its trajectory lost a step); the step is left out of the
    /// classification, and its state is stored whole.
    @Test func skippingTheUpdateDropsTheFaultyStep() throws {
        let (r, trace) = try Self.replay("skip", try Mitigation(parsing: "abft", response: .skip))
        #expect(r.stoppedEarly == nil)
        #expect(r.mitigation?.skips == 1 && r.stepsRun == 4)
        #expect(r.evidence.contains { $0.contains("skipped update") })
        #expect(trace.snapshotSteps.contains(4))
        _ = try trace.verify()
    }

    /// Over the fault-free golden the default detectors never fire, and the scan proves by
    /// the digests that it judged the golden run; a bound no step meets fires on every step.
    @Test func theGoldenScanFindsNoFalsePositivesAndIsNotVacuous() throws {
        let all = try Mitigation.applicable(optimizer: Self.golden.manifest.config.optimizer, model: Self.golden.manifest.config.makeModel())
        let clean = try GoldenScan.run(golden: Self.golden, mitigation: all, timedSteps: 1)
        #expect(clean.steps == 8 && clean.falsePositives.isEmpty)
        #expect(clean.detectorCycles > 0 && clean.cycleOverhead < 0.2)
        let tight = try GoldenScan.run(golden: Self.golden, mitigation: Mitigation(parsing: "update-size=1e-30"), range: 2..<5, timedSteps: 0)
        #expect(tight.falsePositives.map(\.step) == [2, 3, 4])
    }

    /// A campaign with mitigation runs each experiment twice and summarises coverage; a
    /// resume with other mitigation is refused, naming it.
    @Test func aCampaignWithMitigationReportsCoverageAndKeepsItsIdentity() throws {
        let out = Scratch.path("mitigation-campaign")
        try? FileManager.default.removeItem(atPath: out)
        let mitigation = try Mitigation(parsing: "abft,non-finite")
        let parameters = CampaignParameters(experiments: 4, seed: 3, stepsAfterInjection: 1, faultModels: [.INPUT, .WT], mitigation: mitigation)
        let report = try CampaignRunner.run(golden: Self.golden.directory, parameters: parameters, out: out, resume: false)
        #expect(report.results.allSatisfy { $0.mitigated?.mitigation.settings == mitigation.description })
        let coverage = try #require(report.summary.mitigation)
        #expect(coverage.experiments == 4)
        #expect(coverage.rows.first { $0.outcome == "all" && $0.detector == "any" }?.detected.total == 4)
        #expect(report.summary.text.contains("mitigation abft,non-finite"))
        var other = parameters
        other.mitigation = try Mitigation(parsing: "abft")
        #expect(throws: (any Error).self) { try CampaignRunner.run(golden: Self.golden.directory, parameters: other, out: out, resume: true) }
        do {
            _ = try CampaignRunner.run(golden: Self.golden.directory, parameters: other, out: out, resume: true)
        } catch {
            #expect("\(error)".contains("mitigation"))
        }
    }
}
