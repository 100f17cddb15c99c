import Foundation
import Testing
@testable import Sim

/// Sets one element of one operand of one site (replica 0).
private struct SetElementHook: OperandHook {
    let site: SiteID
    let role: OperandRole
    let index: Int
    let value: Float
    func wants(_ s: SiteID, replica: Int) -> Bool { s == site && replica == 0 }
    func apply(_ s: SiteID, role r: OperandRole, values: inout [Float], shape: [Int], replica: Int) {
        if r == role { values[index] = value }
    }
}

/// The reference network's pieces: the backward operand layouts, the reductions, dropout,
/// the recorded configuration and the augmentation.
@Suite struct ReferenceNetworkTests {
    static let fp32 = MatrixUnit(mxu: MXU(config: .tiny, precision: .float32))

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let diff = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return (diff / max(b.reduce(0.0) { $0 + Double($1) * Double($1) }, 1e-30)).squareRoot()
    }

    /// Both layouts compute the same gradients (up to the accumulation order): 3x3 stride 1
    /// and 2 on even and odd sizes, the 1x1 stride-2 downsample and the 7x7 stride-2 stem.
    @Test(arguments: [(8, 3, 1), (8, 3, 2), (7, 3, 2), (8, 1, 2), (7, 1, 2), (16, 7, 2), (5, 3, 1)])
    func referenceBackwardLayoutComputesTheSameGradients(size: Int, filter: Int, stride: Int) {
        let s = ConvShape.same(batch: 3, inH: size, inW: size, inChannels: 5, filter: filter, outChannels: 6, stride: stride)
        #expect(s.supportsReferenceBackward)
        let x = GradientCheckTests.values(s.inputShape.reduce(1, *), seed: 1)
        let w = GradientCheckTests.values(s.weightShape.reduce(1, *), seed: 2)
        let dy = GradientCheckTests.values(s.outputShape.reduce(1, *), seed: 3)
        let dxLowered = Conv2D.backwardInput(dy: dy, w: w, shape: s, layer: "c", unit: Self.fp32)
        let dxReference = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: Self.fp32)
        #expect(Self.relativeError(dxReference, dxLowered) < 1e-6)
        let dwLowered = Conv2D.backwardWeight(x: x, dy: dy, shape: s, layer: "c", unit: Self.fp32)
        let dwReference = Conv2D.backwardWeightReference(x: x, dy: dy, shape: s, layer: "c", unit: Self.fp32)
        #expect(Self.relativeError(dwReference, dwLowered) < 1e-6)
    }

    /// The worked examples of the reference's spec files: backward positions index the
    /// dilated, padded upstream gradient.
    @Test func referenceSpecPositionsFitTheBackwardOperands() throws {
        let sgd = try Workloads.model("resnet18_sgd", scale: "paper")
        // 8x8 -> 4x4 by a 3x3 stride-2 conv: dL/dy dilated to 7x7, padded 2 before and 1 after.
        #expect(sgd.operandShape(SiteID(layer: "basicblock_3_basic_0_conv1", kind: .gradIn), .input) == [128, 10, 10, 256])
        // 4x4 -> 2x2 by the 1x1 stride-2 downsample: dilated to 3x3, padded 0 before and 1 after.
        #expect(sgd.operandShape(SiteID(layer: "basicblock_4_basic_0_downsample", kind: .gradIn), .input) == [128, 4, 4, 512])
        #expect(sgd.operandShape(SiteID(layer: "basicblock_1_basic_0_conv1", kind: .gradIn), .weight) == [3, 3, 64, 64])
        let nobn = try Workloads.model("resnet18_nobn", scale: "paper")
        #expect(nobn.operandShape(SiteID(layer: "basicblock_3_basic_1_conv1", kind: .gradIn), .input) == [128, 6, 6, 256])
        #expect(nobn.operandShape(SiteID(layer: "basicblock_2_basic_1_conv2", kind: .gradIn), .weight) == [3, 3, 128, 128])
        #expect(sgd.operandShape(SiteID(layer: "conv1", kind: .gradWt), .input) == [3, 38, 38, 128])
        #expect(sgd.operandShape(SiteID(layer: "conv1", kind: .gradWt), .weight) == [32, 32, 128, 64])
        #expect(sgd.operandShape(SiteID(layer: "conv1", kind: .gradWt), .output) == [3, 7, 7, 64])
    }

    /// A fault in a zero of the dilation or the padding changes dL/dx as the reference's
    /// explicit convolution would: by that value times the rotated kernel.
    @Test func aFaultInADilationZeroReachesTheGradient() {
        let s = ConvShape.same(batch: 1, inH: 4, inW: 4, inChannels: 1, filter: 3, outChannels: 1, stride: 2)
        let c = s.gradientInputConvolution
        #expect(c.inputShape == [1, 6, 6, 1] && s.gradientInputOffset == (2, 2))
        let w: [Float] = (1...9).map(Float.init)
        let dy: [Float] = [1, 2, 3, 4]
        let golden = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: Self.fp32)
        // Row 3, column 3 of the operand lies between dL/dy's elements: a dilation zero.
        let hook = SetElementHook(site: SiteID(layer: "c", kind: .gradIn), role: .input, index: 3 * 6 + 3, value: 1)
        let faulty = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c",
                                                   unit: MatrixUnit(mxu: MXU(config: .tiny, precision: .float32), hook: hook))
        // dx[h, w] gains operand[h + i, w + j] * rotated[i, j] = w[2 - i, 2 - j] for h + i = w + j = 3.
        var expected = golden
        for h in 1...3 { for x in 1...3 { expected[h * 4 + x] += w[(2 - (3 - h)) * 3 + (2 - (3 - x))] } }
        #expect(faulty == expected)
    }

    /// Replicas share a `_grad_in`'s rotated kernel (``DerivedOperands``); a hook that corrupts
    /// it on one replica corrupts that replica's copy, before or after the others use it.
    @Test func aCorruptedSharedKernelStaysWithItsReplica() {
        let s = ConvShape.same(batch: 2, inH: 5, inW: 5, inChannels: 3, filter: 3, outChannels: 4, stride: 1)
        let w: [Float] = (0..<(9 * 3 * 4)).map { Float($0 % 7) - 3 }
        let dy: [Float] = (0..<(2 * 5 * 5 * 4)).map { Float($0 % 5) - 2 }
        let golden = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: Self.fp32)
        let hook = SetElementHook(site: SiteID(layer: "c", kind: .gradIn), role: .weight, index: 5, value: 100)
        let mxu = MXU(config: .tiny, precision: .float32)
        for faultyFirst in [true, false] {
            let shared = DerivedOperands()
            let faultyUnit = MatrixUnit(mxu: mxu, replica: 0, hook: hook, derivedOperands: shared)
            let cleanUnit = MatrixUnit(mxu: mxu, replica: 1, derivedOperands: shared)
            func faulty() -> [Float] { Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: faultyUnit) }
            func clean() -> [Float] { Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: cleanUnit) }
            let (a, b) = faultyFirst ? (faulty(), clean()) : (clean(), faulty())
            let (f, c) = faultyFirst ? (a, b) : (b, a)
            #expect(f != golden && c == golden && clean() == golden, "faulty first: \(faultyFirst)")
        }
    }

    /// A derived operand is reused only for the very array it was made from.
    @Test func derivedOperandsAreReusedOnlyForTheirOwnArray() {
        let unit = MatrixUnit(mxu: MXU(config: .tiny), derivedOperands: DerivedOperands())
        var made = 0
        func double(_ v: [Float]) -> [Float] {
            made += 1
            return v.map { $0 * 2 }
        }
        let w: [Float] = [1, 2, 3]
        #expect(unit.derived("k", of: w, double) == [2, 4, 6] && made == 1)
        #expect(unit.derived("k", of: w, double) == [2, 4, 6] && made == 1)
        var changed = w
        changed[0] = 5
        #expect(unit.derived("k", of: changed, double) == [10, 4, 6] && made == 2)
        #expect(unit.derived("k", of: w.map { $0 }, double) == [2, 4, 6] && made == 3, "equal values elsewhere are made again")
        #expect(unit.derived("other", of: w, double) == [2, 4, 6] && made == 4)
        #expect(Self.fp32.derived("k", of: w, double) == [2, 4, 6] && made == 5, "no sharing without DerivedOperands")
    }

    /// The pairwise order is the documented tree, and it is accurate where a running sum is not.
    @Test func pairwiseColumnSumsFollowTheDocumentedTree() {
        func tree(_ x: [Float]) -> Float {
            var level = stride(from: 0, to: x.count, by: Reduce.blockLength).map { b in
                x[b..<min(x.count, b + Reduce.blockLength)].reduce(Float(0), +)
            }
            while level.count > 1 {
                level = stride(from: 0, to: level.count, by: 2).map { i in i + 1 < level.count ? level[i] + level[i + 1] : level[i] }
            }
            return level.first ?? 0
        }
        for rows in [1, 7, 8, 9, 17, 63, 100, 1000] {
            let x = GradientCheckTests.values(rows * 3, seed: UInt64(rows))
            let sums = Reduce.columnSums(x, rows: rows, columns: 3, order: .pairwise)
            for c in 0..<3 {
                #expect(sums[c].bitPattern == tree(stride(from: c, to: x.count, by: 3).map { x[$0] }).bitPattern, "rows \(rows)")
            }
        }
        let ones = [Float](repeating: 0.1, count: 25_088)
        let exact = 0.1 * 25_088 * Double(Float(0.1)) / 0.1
        let pairwise = Double(Reduce.sum(ones, order: .pairwise)), sequential = Double(Reduce.sum(ones, order: .sequential))
        #expect(abs(pairwise - exact) / exact < 1e-6)
        #expect(abs(sequential - exact) / exact > 1e-5)
    }

    /// The reference's rule: the mask is keyed by the first two input values (times 1000, cast
    /// to int32), so equal leading values give equal masks and a change there redraws it.
    @Test func dataSeededDropoutDependsOnTheFirstTwoInputs() {
        let x = GradientCheckTests.values(1000, seed: 4)
        var y = GradientCheckTests.values(1000, seed: 5)
        (y[0], y[1]) = (x[0] + 0.0001, x[1])
        let mask = { (v: [Float]) in Dropout.mask(count: v.count, rate: 0.15, rng: Dropout.dataSeededStream(seed: 7, input: v)) }
        if Dropout.truncatingInt32(1000 * y[0]) == Dropout.truncatingInt32(1000 * x[0]) { #expect(mask(x) == mask(y)) }
        y[1] = x[1] + 0.5
        #expect(mask(x) != mask(y))
        let kept = mask(x).filter { $0 != 0 }
        #expect(abs(kept.count - 850) < 60 && kept.allSatisfy { $0 == 1 / Float(0.85) })
        #expect(Dropout.truncatingInt32(2.9) == 2 && Dropout.truncatingInt32(-2.9) == -2)
        #expect(Dropout.truncatingInt32(.nan) == .min && Dropout.truncatingInt32(.infinity) == .min && Dropout.truncatingInt32(3e9) == .min)
    }

    /// Dropout runs in training only, and only for batches that know their origin.
    @Test func dropoutRunsOnlyWhereTheReferenceHasIt() throws {
        let model = ResNet18(scale: .tiny)
        let sgd = try #require(try Workloads.model("resnet18_sgd", scale: "tiny") as? ResNet18)
        #expect(model.dropoutRate == 0.15 && sgd.dropoutRate == 0 && model.bnMomentum == 0.9)
        let x = GradientCheckTests.values(64, seed: 8)
        let origin = BatchOrigin(seed: 1, epoch: 0, step: 0, replica: 0)
        #expect(model.dropoutMask(x, index: 0, origin: origin) != nil)
        #expect(model.dropoutMask(x, index: 0, origin: nil) == nil && sgd.dropoutMask(x, index: 0, origin: origin) == nil)
    }

    /// A configuration recorded before the reference network (no `network` field) builds the
    /// legacy one and is recorded again exactly as it was; presets record theirs.
    @Test func configurationsWithoutANetworkAreTheLegacyNetwork() throws {
        let old = ModelConfiguration(.object(["name": .string("tiny"), "inputH": .integer(8), "inputW": .integer(8), "inputChannels": .integer(1),
                                              "baseWidth": .integer(4), "batchPerReplica": .integer(4), "classes": .integer(10)]))
        let legacy = try #require(try Workloads.model("resnet18", old) as? ResNet18)
        #expect(legacy.scale.network == .legacy && legacy.configuration == old)
        #expect(legacy.convs[0].shape.filterH == 3 && legacy.bnMomentum == 0.99 && legacy.dropoutRate == 0 && legacy.convs[0].bias == nil)
        let preset = try #require(try Workloads.model("resnet18", scale: "tiny") as? ResNet18)
        #expect(preset.scale.network == .reference && preset.convs[0].shape.filterH == 7 && preset.convs[0].bias != nil)
        let rebuilt = try #require(try Workloads.model("resnet18", preset.configuration) as? ResNet18)
        #expect(rebuilt.scale == preset.scale)
        // An option is set only where the configuration has it.
        let counter = try preset.configuration.setting("dropoutMasks", to: .string("counter"), workload: "resnet18")
        #expect((try Workloads.model("resnet18", counter) as? ResNet18)?.scale.dropoutMasks == .counter)
        #expect(throws: ModelError.self) { try old.setting("dropoutMasks", to: .string("counter"), workload: "resnet18") }
    }

    /// The reference recipe: every image of a replica batch is cropped at the same place, the
    /// padding is 0, and images are flipped both ways independently.
    @Test func referenceAugmentationCropsOncePerBatchWithZeroPadding() throws {
        let data = try SyntheticData.generate(seed: 3, trainCount: 64, testCount: 1, height: 8, width: 8, channels: 1, classes: 10).train
        let sampler = try BatchSampler(dataset: data, globalBatch: 16, replicas: 2, seed: 9, augmentation: .reference)
        var sawFlip = (false, false)
        for step in 0..<sampler.stepsPerEpoch {
            for r in 0..<2 {
                let batch = sampler.batch(epoch: 0, step: step, replica: r)
                #expect(batch.origin == BatchOrigin(seed: 9, epoch: 0, step: step, replica: r))
                let (oy, ox) = sampler.batchCrop(epoch: 0, step: step, replica: r)
                for (n, index) in batch.indices.enumerated() {
                    let d = sampler.draw(epoch: 0, step: step, datasetIndex: index)
                    sawFlip = (sawFlip.0 || d.flipped, sawFlip.1 || d.flippedVertically)
                    for y in 0..<8 {
                        for x in 0..<8 {
                            var (sy, sx) = (y + oy - 6, x + ox - 6)
                            let inside = (0..<8).contains(sy) && (0..<8).contains(sx)
                            if d.flipped { sx = 7 - sx }
                            if d.flippedVertically { sy = 7 - sy }
                            let expected = inside ? data.images[index * 64 + sy * 8 + sx] : 0
                            #expect(batch.images[n * 64 + y * 8 + x] == expected)
                        }
                    }
                }
            }
        }
        #expect(sawFlip == (true, true))
    }
}
