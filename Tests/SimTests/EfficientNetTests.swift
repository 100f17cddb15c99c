import Foundation
import Testing
@testable import Sim

/// The `effnet` workload: the reference's EfficientNet-B0 (block order depthwise, BN, SE, then
/// swish), its shapes at paper scale, its ops' gradients, and one tiny step against PyTorch.
///
/// `scripts/reference/torch_effnet_step.py` wrote `Fixtures/effnet_tiny_step.safetensors`
/// (random parameters and moving statistics, 2 replicas x 4 images at 16x16x1, float64).
/// Tolerances are ``ReferenceStepTests/Tolerance/tiny`` but for the updates (measured worst in
/// brackets): loss [1.8e-6], gradients 2e-4 relative L2 [1.2e-4, a depthwise kernel], moving
/// statistics [2.3e-6], the analytically zero `_bn3/beta` gradients 1e-5 of their terms
/// [1.9e-7]; updates 5e-2 [2.0e-2, an SE reduce kernel]: Adam's first update is about
/// `lr * sign(g)` wherever `|g|` is well above its epsilon 1e-7, so it carries no error there,
/// but the few entries whose gradient is within fp32 rounding of zero (3 of 5184 below 1e-5
/// in that kernel) move by a fraction of `lr` that their rounding decides.
@Suite struct EfficientNetTests {
    static let fixture = ReferenceStepTests.fixtures.appendingPathComponent("effnet_tiny_step.safetensors").path
    static let tolerance = ReferenceStepTests.Tolerance(loss: 1e-5, gradient: 2e-4, update: 5e-2, moving: 1e-5, zeroGradient: 1e-5)

    @Test func paperScaleHasTheReferenceLayersAndShapes() throws {
        let model = try Workloads.model("effnet", scale: "paper")
        guard let net = model as? EfficientNetB0 else { Issue.record("effnet is not an EfficientNetB0"); return }
        #expect(net.blocks.count == 16 && net.blocks.map(\.name).last == "block7_mbconv_0")
        // The reference's random campaigns: 66 forward sites (stem, 4 per block, head) and
        // their 65 `_grad_in` (the stem has none); no depthwise, no dense.
        let reference = model.referenceSamplingSites
        #expect(reference.filter { $0.kind == .forward }.count == 66 && reference.filter { $0.kind == .gradIn }.count == 65)
        #expect(!reference.contains { $0.layer.hasSuffix("_depthwise") || $0.layer == "dense" })
        // Every layer has its three operations (the stem two): 16 depthwise convs on the vector unit.
        #expect(model.operations.count == 3 * (66 + 16 + 1) - 1)
        #expect(model.operations.filter { !$0.isOnMXU }.count == 48 && model.operations.filter { !$0.isOnMXU }.allSatisfy { $0.name.contains("_depthwise") })
        // WORKLOADS: the SE expand conv's `_grad_in` output of block 4 is [128, 1, 1, 60].
        #expect(model.operandShape(SiteID(parsing: "block4_mbconv_0_se_expand_conv_grad_in"), .output) == [128, 1, 1, 60])
        #expect(model.operandShape(SiteID(parsing: "block2_mbconv_0_conv1_grad_in"), .input) == [128, 16, 16, 96])
        #expect(model.operandShape(SiteID(parsing: "block6_mbconv_0_depthwise"), .weight) == [5, 5, 672, 1])
        #expect(model.operandShape(SiteID(parsing: "block6_mbconv_0_depthwise_grad_in"), .input) == [128, 6, 6, 672])
        #expect(model.operandShape(SiteID(parsing: "block6_mbconv_0_depthwise_grad_wt"), .output) == [672, 5, 5, 1])
        // Multiply-accumulates per image, forward: about 12 M in the reference's count.
        let forward = model.operations.filter { $0.site.kind == .forward }
        let mxu = forward.filter(\.isOnMXU).reduce(0) { $0 + $1.gemm.macs } / 128
        let depthwise = forward.filter { !$0.isOnMXU }.reduce(0) { $0 + $1.gemm.macs } / 128
        print("effnet paper: \(mxu) MXU + \(depthwise) depthwise = \(mxu + depthwise) multiply-accumulates per image, forward")
        #expect((9_000_000...15_000_000).contains(mxu + depthwise))
    }

    @Test func configurationRoundTripsAndIsChecked() throws {
        let definition = try Workloads.named("effnet")
        for scale in definition.scales {
            let c = try definition.preset(scale)
            let model = try definition.build(c)
            #expect(model.configuration == c)
        }
        let bad = try definition.preset("tiny").setting("stemWidth", to: .integer(0), workload: "effnet")
        #expect(throws: ModelError.self) { try definition.build(bad) }
        #expect(definition.schedule(for: .adam) == LearningRateSchedule(initial: 0.002, final: 5e-4, decaySteps: 2000))
    }

    @Test func oneTinyStepMatchesPyTorch() throws {
        let c = try ReferenceStepTests.compare(.init(path: Self.fixture), workload: "effnet", scale: "tiny")
        print("reference step effnet: \(c.summary)")
        #expect(c.within(Self.tolerance), "\(c.summary)")
    }

    /// The comparison notices a depthwise kernel applied rotated, and SE biases left out.
    @Test func stepComparisonCatchesAWrongDepthwiseOrSqueezeExcite() throws {
        let f = try ReferenceStepTests.Fixture(path: Self.fixture)
        let rotated = try ReferenceStepTests.compare(f, workload: "effnet", scale: "tiny") { name, p in
            if name == "block3_mbconv_0_depthwise/kernel" { p.reverse() }
        }
        let noBias = try ReferenceStepTests.compare(f, workload: "effnet", scale: "tiny") { name, p in
            if name.contains("_se_") && name.hasSuffix("/bias") { p = p.map { _ in 0 } }
        }
        for c in [rotated, noBias] {
            #expect(c.gradient.error > 100 * ReferenceStepTests.Tolerance.tiny.gradient, "\(c.summary)")
        }
    }

    @Test(arguments: [(3, 1), (3, 2), (5, 1), (5, 2)])
    func depthwiseGradientsMatchFiniteDifferences(kernel: Int, stride: Int) {
        typealias G = GradientCheckTests
        let s = ConvShape.same(batch: 2, inH: 6, inW: 5, inChannels: 3, filter: kernel, outChannels: 3, stride: stride)
        let x = G.values(s.inputShape.reduce(1, *), seed: 1), w = G.values(kernel * kernel * 3, seed: 2)
        let r = G.values(s.outputShape.reduce(1, *), seed: 3)
        let f = { (x: [Float], w: [Float]) in G.dot(DepthwiseConv2D.forward(x: x, w: w, shape: s, layer: "d", unit: G.unit), r) }
        let dx = DepthwiseConv2D.backwardInput(dy: r, w: w, shape: s, layer: "d", unit: G.unit)
        let dw = DepthwiseConv2D.backwardWeight(x: x, dy: r, shape: s, layer: "d", unit: G.unit)
        #expect(G.worstError(x, analytic: dx, samples: 40) { f($0, w) } < 1e-3)
        #expect(G.worstError(w, analytic: dw, samples: 40) { f(x, $0) } < 1e-3)
    }

    @Test func swishSigmoidAndGateGradientsMatchFiniteDifferences() {
        typealias G = GradientCheckTests
        let (n, pixels, c) = (2, 3, 4)
        let x = G.values(n * pixels * c, seed: 1, scale: 3), gate = G.values(n * c, seed: 2), r = G.values(n * pixels * c, seed: 3)
        #expect(G.worstError(x, analytic: Swish.backward(dy: r, x: x, sigmoid: Swish.forward(x).sigmoid)) { G.dot(Swish.forward($0).y, r) } < 1e-3)
        #expect(G.worstError(x, analytic: Sigmoid.backward(dy: r, y: Sigmoid.forward(x))) { G.dot(Sigmoid.forward($0), r) } < 1e-3)
        let g = ChannelGate.backward(dy: r, x: x, gate: gate, batch: n, pixels: pixels, channels: c, order: .pairwise)
        let f = { (x: [Float], gate: [Float]) in G.dot(ChannelGate.forward(x: x, gate: gate, batch: n, pixels: pixels, channels: c), r) }
        #expect(G.worstError(x, analytic: g.dx) { f($0, gate) } < 1e-3)
        #expect(G.worstError(gate, analytic: g.dgate) { f(x, $0) } < 1e-3)
        // Saturation: no NaN for large inputs.
        #expect(Sigmoid.forward([-200, 200]) == [0, 1] && Swish.forward([-200, 200]).y == [-0.0, 200])
    }

    /// A padding tap multiplies zero by the weight, as the MXU's convolutions do: an infinite
    /// weight spreads NaN to the border outputs, not only to the interior.
    @Test func depthwisePaddingTapsMultiplyTheWeight() {
        let s = ConvShape.same(batch: 1, inH: 3, inW: 3, inChannels: 1, filter: 3, outChannels: 1, stride: 1)
        var w = [Float](repeating: 0.5, count: 9)
        w[0] = .infinity  // the top-left tap: reads padding for the first output row and column
        let y = DepthwiseConv2D.forward(x: [Float](repeating: 1, count: 9), w: w, shape: s, layer: "d", unit: GradientCheckTests.unit)
        #expect(y[0].isNaN && y[8] == .infinity)
    }
}
