import Foundation
import Testing
@testable import Sim

/// The `nfnet` workload's structure: names, operand shapes, sites, MACs, configuration,
/// initialisation and SkipInit.
@Suite struct NFResNetStructureTests {
    /// The reference's blocks at `paper`: input size, input channels, output width, stride.
    static let paperBlocks = [(16, 64, 256, 1), (16, 256, 256, 1), (16, 256, 512, 2), (8, 512, 512, 1),
                              (8, 512, 1024, 2), (4, 1024, 1024, 1), (4, 1024, 2048, 2), (2, 2048, 2048, 1)]

    /// The reference's forward injection list (`inject_utils.py`'s `nfnet_fwrd_layers`).
    static let referenceForwardList: [String] = (0..<8).flatMap { k -> [String] in
        let convs = ["conv0", "conv1", "conv2"] + (k % 2 == 0 ? ["conv_shortcut"] : [])
        return convs.map { "NF_ResNet_block_\(k)_\($0)" }
    }

    @Test func paperScaleHasTheReferenceLayersAndOperandShapes() throws {
        let model = try Workloads.model("nfnet", scale: "paper")
        let n = 128
        var expected: [(String, [Int], [Int], [Int])] = [("NF_ResNet_init_conv", [n, 32, 32, 3], [3, 3, 3, 64], [n, 16, 16, 64])]
        for (k, (size, cin, width, stride)) in Self.paperBlocks.enumerated() {
            let out = size / stride, inner = width / 4, name = "NF_ResNet_block_\(k)"
            if stride != 1 || cin != width {
                expected.append((name + "_conv_shortcut", [n, size, size, cin], [1, 1, cin, width], [n, out, out, width]))
            }
            expected.append((name + "_conv0", [n, size, size, cin], [1, 1, cin, inner], [n, size, size, inner]))
            expected.append((name + "_conv1", [n, size, size, inner], [3, 3, inner, inner], [n, out, out, inner]))
            expected.append((name + "_conv2", [n, out, out, inner], [1, 1, inner, width], [n, out, out, width]))
        }
        expected.append(("dense", [n, 2048], [2048, 10], [n, 10]))
        let forward = model.operations.filter { $0.site.kind == .forward }
        #expect(forward.map(\.name) == expected.map(\.0))
        for (op, e) in zip(forward, expected) {
            #expect(op.inputShape == e.1 && op.weightShape == e.2 && op.outputShape == e.3, "\(op.name)")
        }
        // Backward: dense, then per block (last first) shortcut, conv2, conv1, conv0, then the stem's _grad_wt.
        let backward = model.operations.filter { $0.site.kind != .forward }
        var names = ["dense_grad_in", "dense_grad_wt"]
        for k in (0..<8).reversed() {
            for conv in (k % 2 == 0 ? ["conv_shortcut"] : []) + ["conv2", "conv1", "conv0"] {
                names += ["NF_ResNet_block_\(k)_\(conv)_grad_in", "NF_ResNet_block_\(k)_\(conv)_grad_wt"]
            }
        }
        names.append("NF_ResNet_init_conv_grad_wt")
        #expect(backward.map(\.name) == names)
        #expect(model.operations.count == 30 + 59)
        // Reference layouts: 16x16 -> 8x8 by a 3x3 stride-2 conv: dL/dy dilated to 15x15, padded to 18.
        let shape = { (name: String, role: OperandRole) in model.operandShape(SiteID(parsing: name), role) }
        #expect(shape("NF_ResNet_block_2_conv1_grad_in", .input) == [n, 18, 18, 128])
        #expect(shape("NF_ResNet_block_2_conv1_grad_in", .weight) == [3, 3, 128, 128])
        // The 1x1 stride-2 shortcut: dilated to 15x15, padded 0 before and 1 after.
        #expect(shape("NF_ResNet_block_2_conv_shortcut_grad_in", .input) == [n, 16, 16, 512])
        #expect(shape("NF_ResNet_block_2_conv_shortcut_grad_in", .output) == [n, 16, 16, 256])
        // The stem's _grad_wt: the input padded by (3 - 1) / 2 on every side, dL/dy dilated to 32x32.
        #expect(shape("NF_ResNet_init_conv_grad_wt", .input) == [3, 34, 34, n])
        #expect(shape("NF_ResNet_init_conv_grad_wt", .weight) == [32, 32, n, 64])
        #expect(shape("NF_ResNet_init_conv_grad_wt", .output) == [3, 3, 3, 64])
        #expect(shape("NF_ResNet_init_conv_grad_in", .input) == nil)

        // The reference's random campaigns: its 28 listed convs forward and their _grad_in.
        let sampling = model.referenceSamplingSites
        #expect(Set(sampling.filter { $0.kind == .forward }.map(\.name)) == Set(Self.referenceForwardList))
        #expect(Set(sampling.filter { $0.kind == .gradIn }.map(\.layer)) == Set(Self.referenceForwardList))
        #expect(sampling.count == 56 && Self.referenceForwardList.count == 28)

        // Parameters: kernel, bias, gain per conv (29), skip_gain per block, the dense layer; no state.
        #expect(model.parameters.count == 29 * 3 + 8 + 2 && model.modelState.isEmpty)
        #expect(model.parameterNames.prefix(3) == ["NF_ResNet_init_conv/kernel", "NF_ResNet_init_conv/bias", "NF_ResNet_init_conv/gain"])
        #expect(model.parameterNames.contains("NF_ResNet_block_7/skip_gain"))
    }

    @Test func paperScaleRunsAbout182MMACsPerImageForward() throws {
        let model = try Workloads.model("nfnet", scale: "paper")
        let macs = model.operations.filter { $0.site.kind == .forward }.reduce(0) { $0 + $1.gemm.m * $1.gemm.k * $1.gemm.n } / model.batchPerReplica
        print("nfnet paper: \(macs) MACs per image forward")
        #expect((180_000_000...184_000_000).contains(macs))
    }

    @Test func betasFollowTheReferenceExpectedStd() throws {
        let model = try #require(try Workloads.model("nfnet", scale: "tiny") as? NFResNet)
        let r2 = Float(1 / 2.0.squareRoot()), r3 = Float(1 / 3.0.squareRoot())
        #expect(model.blocks.map(\.beta) == [1, r2, r3, r2, r3, r2, r3, r2])
        #expect(model.blocks.map { $0.shortcut != nil } == [true, false, true, false, true, false, true, false])
        #expect(model.activationGain == Float(1.7139588594436646))
    }

    @Test func presetsAreRecordedAndValidated() throws {
        let definition = try Workloads.named("nfnet")
        #expect(definition.defaultOptimizer == .adam && definition.defaultAugmentation == .reference)
        #expect(definition.schedule(for: .adam) == LearningRateSchedule(initial: 0.01, final: 1e-4, decaySteps: 5000))
        for scale in definition.scales {
            let model = try #require(try Workloads.model("nfnet", scale: scale) as? NFResNet)
            let rebuilt = try #require(try Workloads.model("nfnet", model.configuration) as? NFResNet)
            #expect(rebuilt.scale == model.scale && rebuilt.configuration == model.configuration)
        }
        let small = try #require(try Workloads.model("nfnet", scale: "small") as? NFResNet)
        #expect(small.scale.stageWidths == [64, 128, 256, 512] && small.input == .images(height: 28, width: 28, channels: 1, classes: 10))
        func error(_ edit: (inout [String: JSONValue]) -> Void) -> String {
            guard case .object(var fields) = NFResNet.Configuration.tiny.recorded.value else { return "not an object" }
            edit(&fields)
            do {
                _ = try Workloads.model("nfnet", ModelConfiguration(.object(fields)))
                return "built"
            } catch { return error.description }
        }
        #expect(error { $0["stageWidths"] = .array([.integer(16), .integer(32), .integer(64)]) }.contains("'stageWidths'"))
        #expect(error { $0["stageWidths"] = .array([.integer(16), .integer(30), .integer(64), .integer(128)]) }.contains("'stageWidths[1]'"))
        #expect(error { $0["stemWidth"] = .integer(0) }.contains("'stemWidth'"))
        #expect(error { $0["batchPerReplica"] = nil }.contains("'batchPerReplica'"))
        #expect(error { _ in } == "built")
    }

    @Test func initialisationIsVarianceScalingWithUnitGainsAndZeroSkipGains() throws {
        let model = try #require(try Workloads.model("nfnet", scale: "tiny") as? NFResNet)
        let (p, state) = model.initialState(seed: 3)
        #expect(state.isEmpty && p.count == model.parameters.count)
        for (i, spec) in model.parameters.enumerated() where !spec.name.hasSuffix("/kernel") {
            let expected: Float = spec.name.hasSuffix("/gain") ? 1 : 0
            #expect(p[i].allSatisfy { $0 == expected }, "\(spec.name)")
        }
        // NF_ResNet_block_7_conv1: 3x3x32 fan-in, 9216 values of an untruncated normal with
        // std sqrt(1 / 288) (the sample std's own std is 0.7 %).
        let i = try #require(model.parameterNames.firstIndex(of: "NF_ResNet_block_7_conv1/kernel"))
        let w = p[i].map(Double.init), sigma = (1 / 288.0).squareRoot()
        let std = (w.reduce(0) { $0 + $1 * $1 } / Double(w.count)).squareRoot()
        #expect(abs(std / sigma - 1) < 0.03, "std \(std)")
        let tails = w.filter { abs($0) > 2 * sigma }.count
        #expect(Double(tails) / Double(w.count) > 0.03, "an untruncated normal has 4.6 % beyond 2 sigma")
        #expect(model.initialState(seed: 3).parameters == p)
    }

    /// SkipInit: at initialisation (every `skip_gain` 0) the residual branches get no gradient,
    /// `skip_gain` does, and so do the stem, the shortcuts and the head.
    @Test func atInitialisationOnlySkipGainsShortcutsStemAndHeadLearn() throws {
        let model = try #require(try Workloads.model("nfnet", scale: "tiny") as? NFResNet)
        let (p, state) = model.initialState(seed: 1)
        let images = GradientCheckTests.values(4 * 16 * 16, seed: 2)
        let batch = Batch(images: images, labels: [0, 1, 2, 3], indices: [], origin: nil)
        let r = model.trainReplica(parameters: p, modelState: state, batch: batch, unit: GradientCheckTests.unit)
        for (i, name) in model.parameterNames.enumerated() {
            let zero = r.gradients[i].allSatisfy { $0 == 0 }
            let branch = ["_conv0/", "_conv1/", "_conv2/"].contains { name.contains($0) }
            #expect(zero == branch, "\(name)")
        }
    }
}

extension NFResNetStructureTests {
    /// A bf16 step of `tiny` gives the same bits on one MXU thread as on two, and from
    /// nonzero skip gains every parameter gets a gradient.
    @Test func aStepIsTheSameForOneAndTwoThreads() throws {
        let model = try #require(try Workloads.model("nfnet", scale: "tiny") as? NFResNet)
        var (p, state) = model.initialState(seed: 4)
        for b in model.blocks { p[b.skipGain] = [0.5] }
        let batch = Batch(images: GradientCheckTests.values(4 * 16 * 16, seed: 5), labels: [3, 1, 4, 1], indices: [], origin: nil)
        let results = [1, 2].map { threads in
            model.trainReplica(parameters: p, modelState: state, batch: batch,
                               unit: MatrixUnit(mxu: MXU(config: .tiny, precision: .bfloat16, threads: threads)))
        }
        #expect(results[0].loss.bitPattern == results[1].loss.bitPattern)
        #expect(results[0].gradients.map { $0.map(\.bitPattern) } == results[1].gradients.map { $0.map(\.bitPattern) })
        for (i, name) in model.parameterNames.enumerated() {
            #expect(results[0].gradients[i].contains { $0 != 0 }, "\(name)")
        }
    }
}

/// Finite-difference checks of the NF-ResNet ops, as ``GradientCheckTests``: the weight
/// standardisation (into the raw kernel and the gain, clamped and unclamped channels), the
/// scaled activation and the scalar gain.
@Suite struct NFResNetGradientCheckTests {
    typealias G = GradientCheckTests

    /// A `[fanIn, outChannels]` kernel whose channel 0 is nearly constant (values 2e-4 +- 1e-4,
    /// var * fanIn ~ 6e-8, clamped at epsilon 1e-4) and the others are not.
    static let (fanIn, channels) = (18, 3)
    static var kernel: [Float] {
        G.values(fanIn * channels, seed: 21).enumerated().map { i, v in i % channels == 0 ? 2e-4 + v * 1e-4 : v }
    }

    static func loss(_ w: [Float], _ gain: [Float], _ r: [Float]) -> Double {
        G.dot(WeightStandardization.forward(w: w, gain: gain, fanIn: fanIn, outChannels: channels, epsilon: 1e-4, order: .pairwise).y, r)
    }

    @Test func weightStandardizationGradientsMatchFiniteDifferences() {
        let w = Self.kernel, gain = G.values(Self.channels, seed: 22).map { $0 + 1.5 }, r = G.values(w.count, seed: 23)
        let fwd = WeightStandardization.forward(w: w, gain: gain, fanIn: Self.fanIn, outChannels: Self.channels, epsilon: 1e-4, order: .pairwise)
        #expect(fwd.cache.unclamped == [false, true, true])
        let (dw, dgain) = WeightStandardization.backward(dy: r, cache: fwd.cache, gain: gain, fanIn: Self.fanIn,
                                                         outChannels: Self.channels, order: .pairwise)
        // The clamped channel's values are 1e-4 apart: finite differences a tenth of that (it is linear there).
        let clamped = stride(from: 0, to: w.count, by: Self.channels).map { $0 }
        let other = (0..<w.count).filter { $0 % Self.channels != 0 }
        func worst(_ indices: [Int], eps: Float) -> Double {
            let sub = indices.map { w[$0] }
            return G.worstError(sub, analytic: indices.map { dw[$0] }, eps: eps) { v in
                var x = w
                for (k, i) in indices.enumerated() { x[i] = v[k] }
                return Self.loss(x, gain, r)
            }
        }
        let unclampedError = worst(other, eps: 1e-3), clampedError = worst(clamped, eps: 1e-5)
        #expect(unclampedError < 1e-2, "kernel, unclamped channels: \(unclampedError)")
        #expect(clampedError < 1e-2, "kernel, clamped channel: \(clampedError)")
        #expect(G.worstError(gain, analytic: dgain) { Self.loss(w, $0, r) } < 1e-3)

        // Sensitivity: without the path through the variance the analytic gradient is far off.
        var noVariance = fwd.cache
        noVariance.unclamped = [false, false, false]
        let dwNoVariance = WeightStandardization.backward(dy: r, cache: noVariance, gain: gain, fanIn: Self.fanIn,
                                                          outChannels: Self.channels, order: .pairwise).dw
        #expect(G.worstError(other.map { w[$0] }, analytic: other.map { dwNoVariance[$0] }, eps: 1e-3) { v in
            var x = w
            for (k, i) in other.enumerated() { x[i] = v[k] }
            return Self.loss(x, gain, r)
        } > 0.1)
    }

    @Test func scaledActivationAndScalarGainGradientsMatchFiniteDifferences() {
        let x = G.values(60, seed: 24, scale: 3).map { $0 + ($0 < 0 ? -0.1 : 0.1) }, r = G.values(60, seed: 25)
        let gain = ScaledReLU.nfGain
        let dx = ScaledReLU.backward(dy: r, x: x, gain: gain)
        #expect(G.worstError(x, analytic: dx, eps: 1e-3) { G.dot(ScaledReLU.forward($0, gain: gain), r) } < 1e-3)
        #expect(ScaledReLU.forward([-1, 0, 2], gain: gain) == [0, 0, 2 * gain])

        let s: Float = -0.7
        let (dxs, ds) = ScalarGain.backward(dy: r, x: x, gain: s, order: .pairwise)
        #expect(G.worstError(x, analytic: dxs) { G.dot(ScalarGain.forward($0, gain: s), r) } < 1e-3)
        #expect(G.worstError([s], analytic: [ds]) { G.dot(ScalarGain.forward(x, gain: $0[0]), r) } < 1e-3)
    }

    /// The fused block passes the model runs give, bit for bit, the chains of unfused ops they
    /// stand for (whose gradients the test above checks), NaN and signed zeros included.
    @Test func fusedBlockPassesEqualTheUnfusedOpsBitForBit() {
        var x = G.values(64, seed: 26, scale: 3), dy = G.values(64, seed: 27), other = G.values(64, seed: 28)
        (x[0], x[1], dy[2], other[3]) = (.nan, -0.0, .infinity, -0.0)
        let (gain, beta, skip, alpha, order): (Float, Float, Float, Float, ReductionOrder) = (ScaledReLU.nfGain, 0.9806, -0.37, 0.2, .pairwise)
        func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }
        #expect(bits(NFBlockPasses.entry(x, gain: gain, beta: beta)) == bits(ScalarGain.forward(ScaledReLU.forward(x, gain: gain), gain: beta)))
        let dEntry = ScaledReLU.backward(dy: ScalarGain.backward(dy: dy, gain: beta), x: x, gain: gain)
        #expect(bits(NFBlockPasses.entryBackward(dy: dy, x: x, gain: gain, beta: beta, adding: nil)) == bits(dEntry))
        #expect(bits(NFBlockPasses.entryBackward(dy: dy, x: x, gain: gain, beta: beta, adding: other)) == bits(zip(dEntry, other).map { $0 + $1 }))
        #expect(bits(NFBlockPasses.exit(main: x, skip: skip, alpha: alpha, shortcut: other))
                == bits(zip(ScalarGain.forward(ScalarGain.forward(x, gain: skip), gain: alpha), other).map { $0 + $1 }))
        let fused = NFBlockPasses.exitBackward(dy: dy, main: other, skip: skip, alpha: alpha, order: order)
        let unfused = ScalarGain.backward(dy: ScalarGain.backward(dy: dy, gain: alpha), x: other, gain: skip, order: order)
        #expect(bits(fused.dmain) == bits(unfused.dx) && fused.dskip.bitPattern == unfused.dgain.bitPattern)
    }
}

/// One tiny-scale training step of `nfnet` (2 replicas x 4 images, Adam at 0.01) in
/// fp32-operand mode against PyTorch float64 autograd: `scripts/reference/torch_nfnet_step.py`
/// wrote `Fixtures/nfnet_tiny_step.safetensors` (random parameters with nonzero `skip_gain`s,
/// one clamped standardisation channel, images, labels, the expected loss, gradients and
/// updates), compared by ``ReferenceStepTests/compare(_:workload:scale:model:threads:alter:)``.
///
/// Tolerances: loss 1e-5 relative; every gradient 2e-4 relative L2; every update 1e-3
/// relative L2 (as the ResNet-18 fixtures; the measured worst is printed).
@Suite struct NFResNetReferenceStepTests {
    static let tolerance = ReferenceStepTests.Tolerance(loss: 1e-5, gradient: 2e-4, update: 1e-3, moving: 0, zeroGradient: 0)

    static var fixture: ReferenceStepTests.Fixture {
        get throws { try ReferenceStepTests.Fixture(path: ReferenceStepTests.fixture("nfnet")) }
    }

    @Test func oneStepMatchesPyTorchInFp32OperandMode() throws {
        let c = try ReferenceStepTests.compare(Self.fixture, workload: "nfnet", scale: "tiny")
        print("reference step nfnet: \(c.summary)")
        #expect(c.within(Self.tolerance), "\(c.summary)")
    }

    /// The comparison fails without the backward through the weight standardisation, with the
    /// activation's gain wrong (the plain ReLU's 1), and with a `skip_gain` zeroed.
    @Test func checksCanFail() throws {
        let f = try Self.fixture
        let scale = NFResNet.Configuration.tiny
        let noStandardization = NFResNet(workload: "nfnet", scale: scale, activationGain: ScaledReLU.nfGain, standardizationBackward: false)
        let a = try ReferenceStepTests.compare(f, workload: "nfnet", scale: "tiny", model: noStandardization)
        #expect(a.gradient.error > 100 * Self.tolerance.gradient, "without the standardisation backward: \(a.summary)")
        let plainReLU = NFResNet(workload: "nfnet", scale: scale, activationGain: 1, standardizationBackward: true)
        let b = try ReferenceStepTests.compare(f, workload: "nfnet", scale: "tiny", model: plainReLU)
        #expect(b.gradient.error > 100 * Self.tolerance.gradient && b.loss > 100 * Self.tolerance.loss, "gain 1: \(b.summary)")
        let c = try ReferenceStepTests.compare(f, workload: "nfnet", scale: "tiny") { name, p in
            if name == "NF_ResNet_block_5/skip_gain" { p = [0] }
        }
        #expect(c.gradient.error > 100 * Self.tolerance.gradient, "skip_gain zeroed: \(c.summary)")
        print("nfnet sensitivity: no standardisation backward \(a.gradient), gain 1 \(b.gradient) loss \(b.loss), skip_gain 0 \(c.gradient)")
    }
}
