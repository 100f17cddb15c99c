import Foundation
import Testing
@testable import Sim

/// One training step of `densenet` at the tiny scale (16x16x1, initial 8, growth 4, blocks
/// 2/2/2/2, 2 replicas x 4 images), in fp32-operand mode, against PyTorch in float64:
/// `scripts/reference/torch_densenet_step.py` wrote `Fixtures/densenet_tiny_step.safetensors`
/// (random parameters and moving statistics, images, labels, the batch origin, the expected
/// loss, gradients, Adam updates and moving statistics, the dropout keys). The comparison is
/// ``ReferenceStepTests/compare(_:workload:scale:model:threads:alter:)`` with the ResNet-18
/// tolerances (``ReferenceStepTests/Tolerance/tiny``); the conv biases whose gradient is
/// analytically zero (the script finds them in float64: the stem conv's, every `_conv1`'s,
/// the `conv_p`s and the 2x2 -> 1x1 `transition_2_conv` whose output only batch norms
/// consume) are compared through their terms. Measured worst: loss 9.9e-8 relative,
/// gradients 4.3e-6 (a block-1 `_conv2` bias), updates 4.0e-5 (a `_bn1` gamma), moving
/// statistics 1.1e-7, zero gradients 1.1e-6 of their terms, dropout inputs 7.2e-7 from float64.
///
/// The batches carry the fixture's origin, so the model draws its data-seeded dropout masks
/// from the script's streams; ``dropoutKeysMatchTheScript`` first checks that every
/// bottleneck forms the script's keys from its `_conv2` output.
///
/// ``checksCanFail``: without dropout, or with the conv biases zeroed, the comparison fails.
@Suite struct DenseNetReferenceStepTests {
    static let path = ReferenceStepTests.fixture("densenet")

    @Test func dropoutKeysMatchTheScript() throws {
        let f = try ReferenceStepTests.Fixture(path: Self.path)
        let model = try #require(try Workloads.model("densenet", scale: "tiny") as? DenseNet121)
        let params = try model.parameterNames.map { try f.floats("param/" + $0) }
        let keys = try f.ints("dropout/keys"), inputs = try f.floats("dropout/inputs")
        let bottlenecks = model.blocks.reduce(0) { $0 + $1.count }
        #expect(keys.shape == [2, bottlenecks, 2])
        let images = try f.floats("images"), origin = try f.ints("origin").values
        let per = model.batchPerReplica, pixels = images.count / (2 * per)
        let unit = MatrixUnit(mxu: MXU(config: .tiny, precision: .float32))
        var worst = 0.0
        for r in 0..<2 {
            let o = BatchOrigin(seed: UInt64(origin[4 * r]), epoch: Int(origin[4 * r + 1]), step: Int(origin[4 * r + 2]), replica: r)
            let tape = model.forward(params, images: Array(images[r * per * pixels ..< (r + 1) * per * pixels]), batch: per,
                                     normalization: .batch, origin: o, unit: unit).tape
            for layer in 0..<bottlenecks {
                for e in 0..<2 {
                    let v = tape.dropoutInputs[layer][e], at = (r * bottlenecks + layer) * 2 + e
                    worst = max(worst, abs(Double(v) - Double(inputs[at])))
                    #expect(Dropout.truncatingInt32(1000 * v) == keys.values[at], "replica \(r) bottleneck \(layer) x[\(e)] = \(v)")
                }
            }
        }
        // The script keeps every 1000 x at least 0.05 from a nonzero integer (5e-5 in x).
        #expect(worst < 1.5e-5)
        print("densenet reference step: dropout inputs within \(worst) of float64")
    }

    @Test func oneStepMatchesPyTorchInFp32OperandMode() throws {
        let c = try ReferenceStepTests.compare(ReferenceStepTests.Fixture(path: Self.path), workload: "densenet", scale: "tiny")
        #expect(c.within(.tiny), "\(c.summary)")
        print("reference step densenet: \(c.summary)")
    }

    /// The comparison fails for a model without dropout and for zeroed conv biases.
    @Test func checksCanFail() throws {
        let f = try ReferenceStepTests.Fixture(path: Self.path)
        let noDropout = DenseNet121(scale: .tiny, dropout: 0)
        let c = try ReferenceStepTests.compare(f, workload: "densenet", scale: "tiny", model: noDropout)
        #expect(c.gradient.error > 100 * ReferenceStepTests.Tolerance.tiny.gradient, "without dropout: \(c.summary)")
        print("reference step densenet without dropout: gradients \(c.gradient)")
        let noBias = try ReferenceStepTests.compare(f, workload: "densenet", scale: "tiny") { name, p in
            if name.hasSuffix("/bias") && name != "dense/bias" { p = p.map { _ in 0 } }
        }
        #expect(max(noBias.gradient.error, noBias.moving.error) > 100 * ReferenceStepTests.Tolerance.tiny.moving,
                "without conv biases: \(noBias.summary)")
        print("reference step densenet without conv biases: gradients \(noBias.gradient), moving statistics \(noBias.moving)")
    }
}
