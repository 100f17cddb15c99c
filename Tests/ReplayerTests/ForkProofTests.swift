import Testing
@testable import Replayer
@testable import Recorder
import Sim

@Suite struct ForkProofTests {
    static let sites = ["a", "b", "c"].map { SiteID(layer: $0, kind: .forward) }

    static func record(_ digests: [[String]]) -> StepRecord {
        StepRecord(step: 4, epoch: 0, stepInEpoch: 4, loss: 1, accuracy: 0.5, learningRate: 1e-3, stateDigest: "s", siteDigests: digests)
    }

    static func prove(_ faulty: [[String]], site: String = "b", replica: Int = 1) throws {
        try FaultReplay.proveFork(record(faulty), record([["1", "2", "3"], ["4", "5", "6"]]), injectedSite: SiteID(layer: site, kind: .forward),
                                  replica: replica, sites: sites, specName: "spec", golden: "g")
    }

    /// The fault may change the struck operation and everything after it on its replica;
    /// anything else that differs means the replay is not the golden run plus the fault.
    @Test func aReplayMayDifferOnlyWhereTheFaultReaches() throws {
        try Self.prove([["1", "2", "3"], ["4", "5", "6"]])
        try Self.prove([["1", "2", "3"], ["4", "x", "y"]])
        #expect(throws: ReplayError.self) { try Self.prove([["1", "2", "3"], ["x", "5", "6"]]) }
        #expect(throws: ReplayError.self) { try Self.prove([["1", "2", "x"], ["4", "x", "y"]]) }
        // A whole-step fault reaches every operation of its replica, none of the others.
        try Self.prove([["1", "2", "3"], ["x", "y", "z"]], site: FaultReplay.wholeStepSite)
        #expect(throws: ReplayError.self) { try Self.prove([["x", "2", "3"], ["x", "y", "z"]], site: FaultReplay.wholeStepSite) }
    }
}
