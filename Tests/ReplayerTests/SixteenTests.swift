import Testing
@testable import Replayer
import Sim

/// The `_16` fault models (`docs/faults.md#sixteen-output-variants`): under FIdelity's semantics the
/// corrupted operand reaches only 16 outputs of the operation, under the released reference
/// code's it is a plain alias of the model without `_16`.
@Suite struct SixteenTests {
    static let shape = ConvShape.same(batch: 2, inH: 6, inW: 6, inChannels: 24, filter: 3, outChannels: 40, stride: 1)
    static let x = (0..<shape.inputShape.reduce(1, *)).map { Float(($0 * 37) % 23) / 23 - 0.4 }
    static let w = (0..<shape.weightShape.reduce(1, *)).map { Float(($0 * 29) % 31) / 31 - 0.5 }

    /// The forward output of the conv with `model` injected by seed, and the fault-free one.
    static func outputs(_ model: FaultModel, seed: UInt64, _ sixteen: SixteenSemantics) -> (faulty: [Float], golden: [Float], hook: InjectionHook) {
        let site = SiteID(layer: "c", kind: .forward)
        let hook = InjectionHook(target: InjectionTarget(site: site, role: model.tensor, replica: 0, globalStep: 0),
                                 model: model, seed: seed, sixteen: sixteen)
        let mxu = MXU(config: .tpuV2)
        let faulty = Conv2D.forward(x: x, w: w, shape: shape, layer: "c", unit: MatrixUnit(mxu: mxu, hook: hook))
        let golden = Conv2D.forward(x: x, w: w, shape: shape, layer: "c", unit: MatrixUnit(mxu: mxu))
        return (faulty, golden, hook)
    }

    static func changed(_ a: [Float], _ b: [Float]) -> [Int] {
        a.indices.filter { a[$0].bitPattern != b[$0].bitPattern }
    }

    @Test(arguments: [FaultModel.INPUT_16, .N64_INPUT_16, .WT_16, .N64_WT_16])
    func fidelityReachesSixteenOutputsTheAliasReachesAll(model: FaultModel) throws {
        let columns = Self.shape.outChannels
        var compared = 0
        for seed: UInt64 in 1...12 {
            let released = Self.outputs(model, seed: seed, .released)
            let all = Self.changed(released.faulty, released.golden)
            // Bit flips below bf16's mantissa vanish in the MXU's rounding; look at faults that show.
            guard all.count > 16 else { continue }
            let fidelity = Self.outputs(model, seed: seed, .fidelity)
            let some = Self.changed(fidelity.faulty, fidelity.golden)
            let block = try #require(fidelity.hook.reachedOutputs)
            #expect(block.rows.count * block.columns.count <= 16)
            #expect(!some.isEmpty && some.count <= 16, "\(model) seed \(seed): \(some.count) outputs changed")
            // Inside the drawn block, with exactly the values the full corruption gives there.
            for i in some {
                #expect(block.rows.contains(i / columns) && block.columns.contains(i % columns))
                #expect(fidelity.faulty[i].bitPattern == released.faulty[i].bitPattern)
            }
            if model.tensor == .input {
                #expect(block.rows.count == 1 && block.columns.lowerBound % 16 == 0)
            } else {
                #expect(block.columns.count == 1 && block.rows.lowerBound % 16 == 0)
            }
            // The same corruption, listed verbatim with the same seed, reaches the same outputs.
            let corruption = try #require(fidelity.hook.applied)
            let verbatim = InjectionHook(target: fidelity.hook.target, corruption: corruption, limitReachSeed: seed)
            let again = Conv2D.forward(x: Self.x, w: Self.w, shape: Self.shape, layer: "c", unit: MatrixUnit(mxu: MXU(config: .tpuV2), hook: verbatim))
            #expect(Self.changed(again, fidelity.faulty).isEmpty)
            compared += 1
        }
        #expect(compared >= 3, "too few seeds of \(model) changed more than 16 outputs to compare")
    }

    @Test func modelsWithout16AndOutputModelsReachEverything() {
        let site = SiteID(layer: "c", kind: .forward)
        let input = InjectionHook(target: InjectionTarget(site: site, role: .input, replica: 0, globalStep: 0), model: .INPUT, seed: 1)
        #expect(!input.limitsReach(site, replica: 0))
        let sixteen = InjectionHook(target: InjectionTarget(site: site, role: .input, replica: 0, globalStep: 0), model: .INPUT_16, seed: 1)
        #expect(sixteen.limitsReach(site, replica: 0) && !sixteen.limitsReach(site, replica: 1))
        #expect(FaultModel.allCases.filter(\.reachesSixteen) == [.INPUT_16, .WT_16, .N64_INPUT_16, .N64_WT_16])
    }
}
