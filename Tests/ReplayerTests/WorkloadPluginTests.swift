import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// A workload that exists only in the test target (``TwoConvNet``) goes through every library
/// call a built-in one does: record, restore, replay into each of its sites, bisect, campaign.
@Suite(.serialized) struct WorkloadPluginTests {
    static let dataset = "synthetic:train=64,test=16,shape=8x8x1"

    static func scratch(_ name: String) -> String { Scratch.path("plugin-\(name)") }

    static let run: TrainingRun = {
        TwoConvNet.register()
        let config = try! TrainingConfig(workload: TwoConvNet.name, scale: "tiny", replicas: 2)
        return try! TrainingRun(config: config, data: try! DatasetSource.parse(dataset).load())
    }()

    static let golden: TraceReader = {
        try! TraceRecorder.record(run: run, dataset: dataset, steps: 12, policy: .init(snapshotEvery: 4), to: scratch("golden"))
    }()

    @Test func theRegisteredWorkloadIsBuiltFromItsRecordedConfiguration() throws {
        let m = Self.golden.manifest
        #expect(m.config.workload == TwoConvNet.name && m.config.scaleName == "tiny")
        #expect(m.sites == ["c1", "c2", "fc", "fc_grad_in", "fc_grad_wt", "c2_grad_in", "c2_grad_wt", "c1_grad_wt"])
        #expect(m.timing.layers.map(\.name) == m.sites)
        let rebuilt = try m.config.makeModel()
        #expect(rebuilt.sites == Self.run.model.sites && rebuilt.parameters == Self.run.model.parameters)
        // The default reference sampling, read from the operation table: the convolutions'
        // forward and `_grad_in` operations (`fc` is dense: its operands are matrices).
        #expect(rebuilt.referenceSamplingSites.map(\.name) == ["c1", "c2", "c2_grad_in"])
        #expect(Workloads.names.contains(TwoConvNet.name) && Workloads.names.prefix(3) == ["resnet18", "resnet18_sgd", "resnet18_nobn"])
        // A configuration that does not fit names the field.
        #expect(throws: ModelError.invalidConfiguration("the test_twoconv configuration has no field 'side'")) {
            try Workloads.model(TwoConvNet.name, ModelConfiguration(.object(["name": .string("x")])))
        }
    }

    @Test func restoredStatesEqualTrainedOnesModelStateIncluded() throws {
        var state = Self.run.initialState()
        for _ in 0..<7 { state = Self.run.step(state).0 }
        #expect(state.modelState[0].contains { $0 != 0 })
        let restored = try TraceRestorer(reader: Self.golden).state(at: 7)
        #expect(restored == state)
    }

    @Test func aFaultInEachSiteDivergesThereAndBisectFindsIt() throws {
        for (i, operation) in Self.run.model.operations.enumerated() {
            let position = operation.outputShape.map { _ in 0 }
            let spec = InjectionSpec(workload: TwoConvNet.name, site: operation.name, faultModel: .RD, replica: 1, globalStep: 5,
                                     positions: [position], values: [1e4])
            let r = try FaultReplay.run(golden: Self.golden, spec: spec, specName: "\(operation.name).json", stepsAfterInjection: 2,
                                        out: Self.scratch("faulty-\(i)"))
            #expect(r.injection.site == operation.name && r.injection.positions == [position])
            #expect(r.firstDivergence == .init(globalStep: 5, site: operation.name, replica: 1), "\(operation.name)")
            #expect(Outcome(rawValue: r.outcome) != nil && !r.evidence.isEmpty)
            let b = try Bisect.run(Self.golden, try TraceReader(directory: r.trace))
            #expect(b.firstDivergentStep == 5 && b.firstDivergentSite == operation.name && b.replica == 1, "\(operation.name)")
        }
    }

    @Test func aCampaignDrawsFromTheModelsSites() throws {
        let out = Self.scratch("campaign")
        try? FileManager.default.removeItem(atPath: out)
        _ = Self.golden
        let report = try CampaignRunner.run(golden: Self.golden.directory, parameters: CampaignParameters(experiments: 10, seed: 5, stepsAfterInjection: 1),
                                            out: out, resume: false)
        #expect(report.results.map(\.index) == Array(0..<10))
        let sites = Set(Self.run.model.sites.map(\.name))
        #expect(report.results.allSatisfy { sites.contains($0.site) && Outcome(rawValue: $0.outcome) != nil })
        #expect(report.summary.completed == 10)
    }
}
