import Testing
@testable import Replayer
import Sim

@Suite struct FaultModelTests {
    static let golden: [Float] = (0..<1000).map { Float($0 % 37) * 0.25 - 3 }

    static func resolve(_ m: FaultModel, seed: UInt64 = 1, golden: [Float] = golden) -> Corruption {
        var rng = CounterRNG(seed: seed, purpose: .faultSampling, 3, 1)
        return FaultResolution.resolve(m, golden: golden, rng: &rng)
    }

    @Test(arguments: FaultModel.allCases)
    func everyModelCorruptsWhatItShould(model: FaultModel) {
        let c = Self.resolve(model)
        #expect(c.offsets.count == c.values.count && !c.offsets.isEmpty)
        #expect(c.offsets == c.offsets.sorted() && Set(c.offsets).count == c.offsets.count)
        #expect(c.offsets.allSatisfy { $0 >= 0 && $0 < Self.golden.count })
        if let count = model.elementCount { #expect(c.offsets.count == count) }
        if let count = model.elementCount, count > 1 {
            #expect(c.offsets[0] % count == 0 && c.offsets.last! - c.offsets[0] == count - 1)
        }
        switch model {
        case .INPUT, .INPUT_16, .WT, .WT_16, .RBFLIP:
            let flipped = c.values[0].bitPattern ^ Self.golden[c.offsets[0]].bitPattern
            #expect(flipped.nonzeroBitCount == 1)
        case .RD, .N16_RD, .RD_GLB:
            #expect(c.values.allSatisfy { $0.isFinite })
        case .ZERO:
            #expect(c.values == [0])
        case .RD_CORRECT_GLB, .N64_INPUT_GLB, .N64_WT_GLB:
            break
        default:   // _CORRECT and N64: values the tensor holds
            #expect(c.values.allSatisfy { v in Self.golden.contains(v) })
        }
        if model == .RD_GLB || model == .RD_CORRECT_GLB || model == .N64_INPUT_GLB || model == .N64_WT_GLB {
            let size = model == .RD_GLB || model == .RD_CORRECT_GLB ? 16 : 64
            #expect(c.offsets[0] % size == 0 && (c.offsets.count % size == 0 || c.offsets.last == Self.golden.count - 1))
        }
        #expect(Self.resolve(model) == c)
    }

    @Test func seedsDecideEverything() {
        let a = (1...20).map { Self.resolve(.RD, seed: $0) }
        #expect(Set(a.map(\.offsets)).count > 15)
        #expect(Self.resolve(.N16_RD, seed: 7) != Self.resolve(.N16_RD, seed: 8))
        // Tensors smaller than one group are corrupted whole.
        #expect(Self.resolve(.N64_INPUT, golden: [1, 2, 3]).offsets == [0, 1, 2])
    }

    @Test func positionsAndOffsetsAgreeAndAreChecked() throws {
        let shape = [2, 3, 4, 5]
        let c = try InjectionHook.corruption(positions: [[1, 2, 3, 4], [0, 0, 0, 1]], values: [9, 8], shape: shape, operand: "x")
        #expect(c.offsets == [119, 1] && c.positions(in: shape) == [[1, 2, 3, 4], [0, 0, 0, 1]])
        #expect(throws: InjectionError.positionOutOfRange(position: [2, 0, 0, 0], shape: shape, operand: "x")) {
            try InjectionHook.corruption(positions: [[2, 0, 0, 0]], values: [1], shape: shape, operand: "x")
        }
        #expect(throws: InjectionError.self) { try InjectionHook.corruption(positions: [[0, 0, 0]], values: [1], shape: shape, operand: "x") }
        #expect(throws: InjectionError.countMismatch(positions: 1, values: 2)) {
            try InjectionHook.corruption(positions: [[0, 0, 0, 0]], values: [1, 2], shape: shape, operand: "x")
        }
        let err = InjectionError.positionOutOfRange(position: [2, 0, 0, 0], shape: shape, operand: "conv1 input")
        #expect(err.description == "position 2/0/0/0 is outside conv1 input, shape 2x3x4x5")
    }

    @Test func anInjectedFaultLandsAtItsSiteOnItsReplicaOnly() throws {
        let data = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1").load()
        let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), data: data)
        let state = run.initialState()
        let golden = run.trainer.gradients(state, batches: run.batches(step: 0), digests: .current)
        let site = SiteID(layer: "basicblock_2_basic_1_conv1", kind: .forward)
        #expect(run.model.operandShape(site, .output) == [4, 4, 4, 8])
        #expect(run.model.operandShape(SiteID(layer: "conv1", kind: .gradIn), .output) == nil)
        for model in [FaultModel.RD, .WT, .N16_RD_CORRECT] {
            let role = model.tensor
            let hook = InjectionHook(target: InjectionTarget(site: site, role: role, replica: 1, globalStep: 0), model: model, seed: 5)
            let faulty = run.trainer.gradients(state, batches: run.batches(step: 0), hook: hook, digests: .current)
            let applied = try #require(hook.applied)
            #expect(applied.offsets.count == (model == .N16_RD_CORRECT ? 16 : 1))
            #expect(faulty.siteDigests[0].map(\.digest) == golden.siteDigests[0].map(\.digest))
            let first = zip(faulty.siteDigests[1], golden.siteDigests[1]).first { $0.0.digest != $0.1.digest }?.0.site
            #expect(first == site, "\(model)")
            // Replaying the resolved corruption verbatim gives the same result.
            let verbatim = InjectionHook(target: InjectionTarget(site: site, role: role, replica: 1, globalStep: 0), corruption: applied)
            let again = run.trainer.gradients(state, batches: run.batches(step: 0), hook: verbatim, digests: .current)
            #expect(again.siteDigests[1].map(\.digest) == faulty.siteDigests[1].map(\.digest))
        }
    }
}
