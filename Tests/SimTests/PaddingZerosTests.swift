import Testing
@testable import Sim

/// Convolution products without the padding's terms (``Conv2D/productOmittingPadding(x:w:shape:mxu:)``)
/// and the stride-1 `_grad_in` read from dL/dy itself (``ConvShape/gradientInputConvolutionOfUnpadded``).
@Suite struct PaddingZerosTests {
    /// Padded shapes of every kind the networks use (3x3 SAME at strides 1 and 2, the 7x7
    /// stride-2 stem, outputs of 2x2 and 1x1 where no window is whole, 5x5 stride 3, wide
    /// channel counts), and a VALID one with no padding at all.
    static let shapes: [ConvShape] = ConvLoweringTests.shapes + [
        .same(batch: 2, inH: 14, inW: 14, inChannels: 1, filter: 7, outChannels: 16, stride: 2),
        .same(batch: 3, inH: 2, inW: 2, inChannels: 20, filter: 3, outChannels: 9, stride: 1),
        .same(batch: 2, inH: 4, inW: 4, inChannels: 8, filter: 3, outChannels: 6, stride: 2),
        .same(batch: 1, inH: 1, inW: 3, inChannels: 4, filter: 3, outChannels: 5, stride: 1),
        .same(batch: 2, inH: 8, inW: 8, inChannels: 64, filter: 3, outChannels: 16, stride: 1),
    ]

    static func hasPadding(_ s: ConvShape) -> Bool {
        let padBottom = (s.outH - 1) * s.strideH + s.filterH - s.inH - s.padTop
        let padRight = (s.outW - 1) * s.strideW + s.filterW - s.inW - s.padLeft
        return s.padTop > 0 || s.padLeft > 0 || padBottom > 0 || padRight > 0
    }

    /// Every output position in exactly one class, with the taps that land inside the input.
    @Test func tapClassesHoldEveryPositionWithItsTapsInsideTheInput() {
        for (outputs, inputs, filter, stride, pad) in [(14, 28, 7, 2, 2), (7, 7, 3, 1, 1), (2, 2, 3, 1, 1), (1, 1, 3, 1, 1),
                                                       (4, 8, 3, 2, 0), (3, 5, 5, 2, 2), (6, 6, 1, 1, 0), (4, 3, 7, 1, 3)] {
            let classes = Conv2D.tapClasses(outputs: outputs, inputs: inputs, filter: filter, stride: stride, pad: pad)
            #expect(classes.flatMap { Array($0.positions) } == Array(0..<outputs))
            for c in classes {
                for o in c.positions {
                    let inside = (0..<filter).filter { o * stride + $0 - pad >= 0 && o * stride + $0 - pad < inputs }
                    #expect(Array(c.taps) == inside, "position \(o) of \(outputs), filter \(filter), stride \(stride), pad \(pad)")
                }
            }
        }
    }

    /// The product class by class without the padding's terms against the full im2col
    /// product: the same bits under folds that cut filter rows anywhere, one and two threads,
    /// both kernel families, signed zeros in the input; nil only where nothing is padded.
    @Test(arguments: KernelFamily.allCases)
    func aProductWithoutThePaddingsTermsHasTheFullProductsBits(family: KernelFamily) {
        for s in Self.shapes {
            let g = s.gemm
            let x = StrideZerosTests.signedOperands(s.inputShape.reduce(1, *), seed: UInt64(g.k)).map(BFloat16.round)
            let w = StrideZerosTests.signedOperands(g.k * g.n, seed: UInt64(g.n))
            for fold in [nil, 5, 16, 128] as [Int?] {
                for threads in [1, 2] {
                    let unit = MatrixUnit(mxu: MXU(foldLength: fold, precision: .bfloat16, threads: threads).using(family))
                    let mxu = OperationMXU(unit: unit, site: SiteID(layer: "c", kind: .forward), hook: nil)
                    let full = mxu.multiply(Conv2D.im2col(x, s), rows: g.m, inner: g.k, w, cols: g.n, aIsRounded: true).values
                    let fast = x.withUnsafeBufferPointer { Conv2D.productOmittingPadding(x: $0.baseAddress!, w: w, shape: s, mxu: mxu) }
                    let label = "\(s.inputShape) filter \(s.filterH) stride \(s.strideH), fold \(String(describing: fold)), \(threads) threads"
                    if Self.hasPadding(s) {
                        #expect(fast.map { differing($0, full) } == 0, "\(label)")
                    } else {
                        #expect(fast == nil, "\(label)")
                    }
                    // The operation's own path (which takes the shortcut) gives the same.
                    #expect(differing(mxu.multiply(lowering: x, s, w).values, full) == 0, "\(label)")
                }
            }
        }
    }

    /// The stride-1 `_grad_in` of dL/dy padded is dL/dy's own lowering with that padding:
    /// the same lowered matrix, and the operation's output the same as a checked unit's
    /// (which reads the padded operand stored).
    @Test func aStrideOneInputGradientReadsDyItselfWithTheSameBits() {
        let unit = MatrixUnit(mxu: MXU(foldLength: 16, precision: .bfloat16, threads: 2))
        let checked = MatrixUnit(mxu: unit.mxu, checks: ProductChecks(replica: 0))
        var tested = 0
        for s in Self.shapes where s.strideH == 1 && s.strideW == 1 && s.supportsReferenceBackward {
            guard let unpadded = s.gradientInputConvolutionOfUnpadded else { Issue.record("stride 1 without an unpadded form"); continue }
            let dy = StrideZerosTests.signedOperands(s.outputShape.reduce(1, *), seed: 9)
            let w = StrideZerosTests.signedOperands(s.weightShape.reduce(1, *), seed: 10)
            #expect(unpadded.gemm == s.gradientInputConvolution.gemm)
            #expect(differing(Conv2D.im2col(dy, unpadded), Conv2D.im2col(Conv2D.gradientInputOperand(dy, s), s.gradientInputConvolution)) == 0)
            let fast = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: unit)
            #expect(differing(fast, Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: checked)) == 0, "\(s.inputShape)")
            tested += 1
        }
        #expect(tested >= 4)
        #expect(ConvShape.same(batch: 1, inH: 4, inW: 4, inChannels: 1, filter: 3, outChannels: 1, stride: 2).gradientInputConvolutionOfUnpadded == nil)
    }

    /// An operation's lazily built input is built only when something reads it: never for a
    /// product that does not ask (the stride-1 `_grad_in` reading dL/dy itself), once for a
    /// hook that wants the site (which corrupts that copy and hands it to the product), and
    /// never for a hook that wants other sites.
    @Test func aLazyInputIsBuiltOnlyForWhatReadsIt() {
        final class Count: @unchecked Sendable { var builds = 0, productSawCorrupted = false }
        struct Negate: OperandHook {
            let site: SiteID
            func wants(_ s: SiteID, replica: Int) -> Bool { s == site }
            func apply(_ s: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {
                if role == .input { values = values.map { -$0 } }
            }
        }
        let site = SiteID(layer: "c", kind: .gradIn), other = SiteID(layer: "d", kind: .gradIn)
        let mxu = MXU(foldLength: 16, precision: .bfloat16)
        for (hook, expected) in [(nil, 0), (Negate(site: other), 0), (Negate(site: site), 1)] as [(Negate?, Int)] {
            let count = Count()
            let unit = MatrixUnit(mxu: mxu, hook: hook)
            let y = unit.operation(site, input: { count.builds += 1; return [1, 2] }, inputShape: [1, 2], weight: [1, 1], weightShape: [2, 1],
                                   outputShape: [1, 1]) { x, w, mxu in
                // Asks for the input only when a hook may have corrupted it (as backwardInputReference does).
                if !mxu.mayGatherOperands { count.productSawCorrupted = x() == [-1, -2] }
                return mxu.multiply([1, 2], rows: 1, inner: 2, w, cols: 1)
            }
            #expect(y == [3])
            #expect(count.builds == expected, "hook \(String(describing: hook))")
            #expect(count.productSawCorrupted == (expected == 1))
        }
        // Through the convolution: no hook, no build (dL/dy is read where it lies).
        let s = ConvShape.same(batch: 2, inH: 5, inW: 5, inChannels: 3, filter: 3, outChannels: 4, stride: 1)
        let dy = StrideZerosTests.signedOperands(s.outputShape.reduce(1, *), seed: 3), w = StrideZerosTests.signedOperands(s.weightShape.reduce(1, *), seed: 4)
        let plain = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: MatrixUnit(mxu: mxu))
        let hooked = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: MatrixUnit(mxu: mxu, hook: NoChangeHook()))
        #expect(differing(plain, hooked) == 0)
    }

    /// A weight that is infinite once rounded makes a padding term NaN: every term is then
    /// computed, and the output has the full product's NaNs. A hook or a checksum check that
    /// reads the terms gets them all too.
    @Test func aConvolutionComputesEveryTermWhereAPaddingTermCouldBeOtherThanZero() {
        let s = ConvShape.same(batch: 2, inH: 4, inW: 4, inChannels: 3, filter: 3, outChannels: 2, stride: 1)
        let unit = MatrixUnit(mxu: MXU(foldLength: 8, precision: .bfloat16))
        let plain = OperationMXU(unit: unit, site: SiteID(layer: "c", kind: .forward), hook: nil)
        let x = StrideZerosTests.signedOperands(s.inputShape.reduce(1, *), seed: 11).map(BFloat16.round)
        var w = StrideZerosTests.signedOperands(s.weightShape.reduce(1, *), seed: 12)
        #expect(x.withUnsafeBufferPointer { Conv2D.productOmittingPadding(x: $0.baseAddress!, w: w, shape: s, mxu: plain) } != nil)
        let watched = [OperationMXU(unit: MatrixUnit(mxu: unit.mxu, checks: ProductChecks(replica: 0)), site: plain.site, hook: nil),
                       OperationMXU(unit: unit, site: plain.site, hook: NoChangeHook())]
        for mxu in watched {
            #expect(x.withUnsafeBufferPointer { Conv2D.productOmittingPadding(x: $0.baseAddress!, w: w, shape: s, mxu: mxu) } == nil)
        }
        w[4] = 3.4e38  // finite in fp32, infinite in bf16
        #expect(x.withUnsafeBufferPointer { Conv2D.productOmittingPadding(x: $0.baseAddress!, w: w, shape: s, mxu: plain) } == nil)
        let y = Conv2D.forward(x: x, w: w, shape: s, layer: "c", unit: unit)
        let full = plain.multiply(Conv2D.im2col(x, s), rows: s.gemm.m, inner: s.gemm.k, w, cols: s.gemm.n, aIsRounded: true).values
        #expect(y.contains { $0.isNaN } && differing(y, full) == 0)
    }
}
