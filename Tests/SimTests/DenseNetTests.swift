import Foundation
import Testing
@testable import Sim

/// The `densenet` workload's structure: names, operand shapes and MACs at the reference's
/// shapes, the operation table against what a step runs, and its configuration.
@Suite struct DenseNetTests {
    static let paper: DenseNet121 = {
        guard let m = try? Workloads.model("densenet", scale: "paper") as? DenseNet121 else { preconditionFailure("densenet paper") }
        return m
    }()

    static func op(_ model: any Model, _ name: String) throws -> MXUOperation {
        try #require(model.operation(named: name), "no operation \(name)")
    }

    /// Every layer name and its numbering as the reference's `densenet.py` forms them: blocks
    /// and transitions from 1, bottlenecks from 0; batch norms before the convs.
    @Test func paperScaleHasTheReferencesLayersAndNames() throws {
        let m = Self.paper
        let forward = m.operations.filter { $0.site.kind == .forward }.map(\.name)
        var expected = ["densenet_conv", "densenet_conv_p"]
        var norms = ["densenet_bn"]
        for (b, layers) in [6, 12, 24, 16].enumerated() {
            if b > 0 {
                expected += ["densenet_transition_\(b)_conv", "densenet_transition_\(b)_conv_p"]
                norms.append("densenet_transition_\(b)_bn")
            }
            for i in 0..<layers {
                let p = "densenet_dense_block_\(b + 1)_bottleneck_\(i)"
                expected += [p + "_conv1", p + "_conv2"]
                norms += [p + "_bn1", p + "_bn2"]
            }
        }
        expected.append("dense")
        #expect(forward == expected)
        #expect(m.norms.map(\.name) == norms)
        // 124 convs and the dense layer: forward, `_grad_in` (not the stem's), `_grad_wt`.
        #expect(m.convs.count == 124 && m.operations.count == 3 * 125 - 1)
        let backward = m.operations.filter { $0.site.kind != .forward }.map(\.name)
        #expect(backward.prefix(4) == ["dense_grad_in", "dense_grad_wt", "densenet_dense_block_4_bottleneck_15_conv2_grad_in",
                                       "densenet_dense_block_4_bottleneck_15_conv2_grad_wt"])
        #expect(backward.suffix(3) == ["densenet_conv_p_grad_in", "densenet_conv_p_grad_wt", "densenet_conv_grad_wt"])
        // Every conv has a bias; 120 batch norms; parameters in the reference's creation order.
        #expect(m.parameters.count == 124 * 2 + 120 * 2 + 2 && m.modelState.count == 240)
        #expect(m.parameterNames.prefix(7) == ["densenet_conv/kernel", "densenet_conv/bias", "densenet_bn/gamma", "densenet_bn/beta",
                                               "densenet_conv_p/kernel", "densenet_conv_p/bias", "densenet_dense_block_1_bottleneck_0_bn1/gamma"])
        #expect(m.parameterNames.suffix(2) == ["dense/kernel", "dense/bias"])
        #expect(Set(m.parameterNames).count == m.parameters.count)
        #expect(m.features == 1024 && m.dropoutRate == 0.5 && m.bnMomentum == 0.9 && m.bnEpsilon == 1e-3)
    }

    /// Shapes along the network (32 -> 16 -> 8 -> 4 -> 2 -> 1; channels 64, 256 -> 128,
    /// 512 -> 256, 1024 -> 512, 1024), and at the positions of the reference's example specs.
    @Test func paperScaleOperandShapes() throws {
        let m = Self.paper
        let shapes: [(String, [Int], [Int], [Int])] = [
            ("densenet_conv", [128, 32, 32, 3], [7, 7, 3, 64], [128, 16, 16, 64]),
            ("densenet_conv_p", [128, 16, 16, 64], [3, 3, 64, 64], [128, 8, 8, 64]),
            ("densenet_dense_block_1_bottleneck_0_conv1", [128, 8, 8, 64], [1, 1, 64, 128], [128, 8, 8, 128]),
            ("densenet_dense_block_1_bottleneck_5_conv1", [128, 8, 8, 224], [1, 1, 224, 128], [128, 8, 8, 128]),
            ("densenet_dense_block_1_bottleneck_5_conv2", [128, 8, 8, 128], [3, 3, 128, 32], [128, 8, 8, 32]),
            ("densenet_transition_1_conv", [128, 8, 8, 256], [1, 1, 256, 128], [128, 8, 8, 128]),
            ("densenet_transition_1_conv_p", [128, 8, 8, 128], [3, 3, 128, 128], [128, 4, 4, 128]),
            ("densenet_transition_2_conv", [128, 4, 4, 512], [1, 1, 512, 256], [128, 4, 4, 256]),
            ("densenet_transition_3_conv", [128, 2, 2, 1024], [1, 1, 1024, 512], [128, 2, 2, 512]),
            ("densenet_transition_3_conv_p", [128, 2, 2, 512], [3, 3, 512, 512], [128, 1, 1, 512]),
            // The forward example: OUTPUT at 89/0/0/112..127.
            ("densenet_dense_block_4_bottleneck_9_conv1", [128, 1, 1, 800], [1, 1, 800, 128], [128, 1, 1, 128]),
            ("densenet_dense_block_4_bottleneck_15_conv2", [128, 1, 1, 128], [3, 3, 128, 32], [128, 1, 1, 32]),
            // The backward example: OUTPUT (dL/dx) at 97/6/6/64..79; its input is dL/dy padded by 1.
            ("densenet_dense_block_1_bottleneck_5_conv2_grad_in", [128, 10, 10, 32], [3, 3, 32, 128], [128, 8, 8, 128]),
            // A stride-2 conv_p's input gradient: dL/dy 4x4 dilated to 7x7, padded 1 before and 2 after.
            ("densenet_transition_1_conv_p_grad_in", [128, 10, 10, 128], [3, 3, 128, 128], [128, 8, 8, 128]),
            ("dense", [128, 1024], [1024, 10], [128, 10]),
        ]
        for (name, input, weight, output) in shapes {
            let o = try Self.op(m, name)
            #expect(o.inputShape == input && o.weightShape == weight && o.outputShape == output, "\(name): \(o)")
        }
    }

    /// About 67 M multiply-accumulates per image forward (convs and dense, im2col GEMMs, SAME
    /// padding taps included): 67 266 560, as computed independently from the layer list of
    /// `scripts/reference/densenet_net.py` (stem 4.77 M, blocks 21.23, 14.55, 11.21 and 2.13 M,
    /// transitions 13.37 M, dense 10 k).
    @Test func paperScaleForwardMACsPerImage() {
        let m = Self.paper
        let macs = m.operations.filter { $0.site.kind == .forward }.reduce(0) { $0 + $1.gemm.macs } / m.batchPerReplica
        print("densenet paper: \(macs) MACs per image forward")
        #expect(macs == 67_266_560)
        #expect((66_000_000...68_000_000).contains(macs))
    }

    /// The reference draws from 120 forward convs (no `conv_p`) and their 119 `_grad_in`
    /// (the stem has none); never `_grad_wt`, never the dense layer.
    @Test func referenceSamplingLeavesOutConvPAndDense() {
        let sites = Self.paper.referenceSamplingSites
        #expect(sites.filter { $0.kind == .forward }.count == 120)
        #expect(sites.filter { $0.kind == .gradIn }.count == 119)
        #expect(sites.allSatisfy { !$0.layer.hasSuffix("_conv_p") && $0.layer != "dense" && $0.kind != .gradWt })
        #expect(sites.first?.name == "densenet_conv" && sites.contains { $0.name == "densenet_transition_2_conv_grad_in" })
    }

    /// A tiny step runs exactly the table's operations, in its order, with its output shapes,
    /// and every parameter gets a gradient of its size.
    @Test func aStepRunsTheOperationTableInOrder() throws {
        let model = try #require(try Workloads.model("densenet", scale: "tiny") as? DenseNet121)
        let seen = Seen()
        let digests = SiteDigests(.current) { _, site, shape, values in seen.append((site, shape, values.count)) }
        let unit = MatrixUnit(mxu: MXU(config: .tiny, precision: .float32), digests: digests)
        let (params, moving) = model.initialState(seed: 3)
        let images = GradientCheckTests.values(4 * 16 * 16, seed: 9)
        let batch = Batch(images: images, labels: [1, 2, 3, 4], indices: [], origin: BatchOrigin(seed: 5, epoch: 0, step: 0, replica: 0))
        let r = model.trainReplica(parameters: params, modelState: moving, batch: batch, unit: unit)
        let ran = seen.all
        #expect(ran.map(\.0) == model.sites)
        for ((site, shape, count), o) in zip(ran, model.operations) {
            #expect(shape == o.outputShape && count == o.outputShape.reduce(1, *), "\(site.name)")
        }
        #expect(r.loss.isFinite && r.gradients.map(\.count) == model.parameters.map(\.count))
        #expect(r.statistics.map(\.count) == model.modelState.map(\.count))
        // Tiny: 16 -> 8 -> 4, blocks at 4, 2, 1, 1; channels 8 + 2*4 = 16 -> 8 -> 16 -> 8 -> 16 -> 8 -> 16.
        #expect(model.features == 16 && model.operation(named: "densenet_transition_3_conv_p")?.outputShape == [4, 1, 1, 8])
    }

    /// Presets are recorded and rebuilt; every number is validated with the field named; the
    /// counter-keyed masks are an option.
    @Test func configurationIsRecordedAndValidated() throws {
        for scale in ["tiny", "small", "paper"] {
            let m = try #require(try Workloads.model("densenet", scale: scale) as? DenseNet121)
            let rebuilt = try #require(try Workloads.model("densenet", m.configuration) as? DenseNet121)
            #expect(rebuilt.scale == m.scale && rebuilt.sites == m.sites && m.scaleName == scale)
        }
        #expect(DenseNet121.Configuration.small.blockLayers == [6, 12, 24, 16] && DenseNet121.Configuration.small.growthRate == 12)
        let tiny = try Workloads.configuration("densenet", scale: "tiny")
        func rejects(_ field: String, _ value: JSONValue) throws {
            let c = try tiny.setting(field, to: value, workload: "densenet")
            do {
                _ = try Workloads.model("densenet", c)
                Issue.record("\(field) = \(value) was accepted")
            } catch {
                #expect(error.description.contains("'\(field)'"), "\(error)")
            }
        }
        try rejects("growthRate", .integer(0))
        try rejects("initialFeatures", .integer(-1))
        try rejects("batchPerReplica", .integer(0))
        try rejects("blockLayers", .array([]))
        try rejects("blockLayers", .array([.integer(2), .integer(0)]))
        try rejects("compression", .number(0))
        try rejects("compression", .number(1.5))
        try rejects("compression", .number(0.01))  // int(0.01 * 16) = 0 channels
        try rejects("dropout", .number(1))
        try rejects("dropout", .number(-0.1))
        let counter = try tiny.setting("dropoutMasks", to: .string("counter"), workload: "densenet")
        #expect((try Workloads.model("densenet", counter) as? DenseNet121)?.scale.dropoutMasks == .counter)
        #expect(throws: ModelError.self) { try Workloads.model("densenet", scale: "huge") }
        let definition = try Workloads.named("densenet")
        #expect(definition.defaultOptimizer == .adam && definition.defaultAugmentation == .reference)
    }
}

/// The operations a step ran (filled on the replica's thread, read after it).
private final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(SiteID, [Int], Int)] = []
    func append(_ e: (SiteID, [Int], Int)) { lock.withLock { entries.append(e) } }
    var all: [(SiteID, [Int], Int)] { lock.withLock { entries } }
}
