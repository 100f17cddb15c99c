import Testing
@testable import Sim

/// Products that leave out terms known to be exact zeros (``KeptTerms``,
/// ``MXU/multiply(_:_:into:shape:kept:)``) and the strided convolutions' reference-layout
/// gradients that use them (``Conv2D/gradientInputProductOmittingZeros(x:w:shape:mxu:)``):
/// the same bits as the full products, and the full products wherever a term could be other
/// than zero.
@Suite struct StrideZerosTests {
    /// Operands with negative zeros among the zeros, so that products of -0 are summed.
    static func signedOperands(_ count: Int, seed: UInt64) -> [Float] {
        operands(count, seed: seed).enumerated().map { i, v in v == 0 && i % 2 == 0 ? -0.0 : v }
    }

    @Test func keptTermsFollowTheFullProductsFolds() {
        var kept = KeptTerms(foldLength: 4)
        kept.keep(2..<6)      // folds 0 and 1
        kept.keep(6..<7)      // fold 1 again
        kept.keep(13..<14)    // fold 3 (fold 2 keeps nothing)
        kept.keep(16..<16)    // nothing
        kept.keep(17..<26)    // folds 4, 5 and 6
        #expect(kept.foldLengths == [2, 3, 1, 3, 4, 2] && kept.count == 15)
        var running = KeptTerms(foldLength: nil)
        running.keep(3..<5)
        running.keep(9..<12)
        #expect(running.foldLengths == [5] && running.count == 5)
        #expect(!kept.leavesOutNone && !running.leavesOutNone)
        var every = KeptTerms(foldLength: 4)
        every.keep(0..<6)
        every.keep(6..<9)
        #expect(every.leavesOutNone && every.foldLengths == [4, 4, 1])
    }

    /// The full product of A and B whose left-out terms have zero rows of B, against the
    /// product of the kept terms: every kernel family, one and two threads, folds that split
    /// kept runs, folds that keep nothing (the first among them), and a K long enough that A
    /// is rounded one block at a time.
    @Test(arguments: KernelFamily.allCases)
    func aProductOfTheKeptTermsHasTheFullProductsBits(family: KernelFamily) {
        for (m, k, n) in [(13, 40, 19), (30, 9, 8), (100, 1500, 24)] {
            for fold in [nil, 1, 3, 8, 128] as [Int?] {
                for threads in [1, 2] {
                    let mxu = MXU(foldLength: fold, precision: .bfloat16, threads: threads).using(family)
                    let a = Self.signedOperands(m * k, seed: UInt64(m * k))
                    var b = Self.signedOperands(k * n, seed: UInt64(k + n))
                    // Kept: runs of 1 to 5 terms with gaps of 0 to 6; none of the first 9.
                    var kept = KeptTerms(foldLength: fold), keptTerms: [Int] = []
                    var t = 9, run = 1
                    while t < k {
                        let end = min(k, t + run)
                        kept.keep(t..<end)
                        keptTerms += Array(t..<end)
                        t = end + (run * 3) % 7
                        run = run % 5 + 1
                    }
                    for term in 0..<k where !keptTerms.contains(term) {
                        for j in 0..<n { b[term * n + j] = term % 3 == 0 ? -0.0 : 0 }
                    }
                    let full = (try? mxu.multiply(a, b, shape: GEMMShape(m: m, k: k, n: n))) ?? []
                    let aKept = (0..<m).flatMap { i in keptTerms.map { a[i * k + $0] } }
                    let bKept = keptTerms.flatMap { b[$0 * n ..< ($0 + 1) * n] }
                    let c = [Float](unsafeUninitializedCapacity: m * n) { out, written in
                        aKept.withUnsafeBufferPointer { pa in bKept.withUnsafeBufferPointer { pb in
                            mxu.multiply(MatrixView(pa.baseAddress!, rowStride: kept.count), MatrixView(pb.baseAddress!, rowStride: n),
                                         into: out.baseAddress!, shape: GEMMShape(m: m, k: kept.count, n: n), kept: kept)
                        } }
                        written = m * n
                    }
                    #expect(full.count == m * n && differing(c, full) == 0, "\(m)x\(k)x\(n) fold \(String(describing: fold)) threads \(threads)")
                    // A rounded in spans of a few blocks of K (the longer product's folds, each a block).
                    let spans = [Float](unsafeUninitializedCapacity: m * n) { out, written in
                        aKept.withUnsafeBufferPointer { pa in bKept.withUnsafeBufferPointer { pb in
                            mxu.roundingA(inBlocksOf: 300).multiply(MatrixView(pa.baseAddress!, rowStride: kept.count), MatrixView(pb.baseAddress!, rowStride: n),
                                                                    into: out.baseAddress!, shape: GEMMShape(m: m, k: kept.count, n: n), kept: kept)
                        } }
                        written = m * n
                    }
                    #expect(differing(spans, c) == 0, "\(m)x\(k)x\(n) fold \(String(describing: fold)) threads \(threads), A in spans")
                }
            }
        }
    }

    /// Strided convolutions (3x3, 1x1 and 5x5 filters, strides 2 and 3, even and odd sizes,
    /// SAME and VALID) under folds that cut the taps anywhere: both backward products
    /// without their zeros equal the full products, value for value.
    @Test(arguments: [nil, 5, 16, 128] as [Int?])
    func stridedGradientsWithoutTheirZerosHaveTheFullProductsBits(fold: Int?) {
        let shapes = [ConvShape.same(batch: 2, inH: 8, inW: 8, inChannels: 3, filter: 3, outChannels: 5, stride: 2),
                      .same(batch: 3, inH: 7, inW: 9, inChannels: 4, filter: 3, outChannels: 6, stride: 2),
                      .same(batch: 2, inH: 8, inW: 8, inChannels: 5, filter: 1, outChannels: 7, stride: 2),
                      .same(batch: 1, inH: 11, inW: 10, inChannels: 2, filter: 5, outChannels: 3, stride: 3),
                      .valid(batch: 2, inH: 9, inW: 9, inChannels: 3, filter: 3, outChannels: 4, stride: 2)]
        for s in shapes {
            #expect(s.supportsReferenceBackward)
            let mxu = OperationMXU(unit: MatrixUnit(mxu: MXU(foldLength: fold, precision: .bfloat16, threads: 2)),
                                   site: SiteID(layer: "c", kind: .gradIn), hook: nil)
            let dy = Self.signedOperands(s.outputShape.reduce(1, *), seed: 1)
            let w = Self.signedOperands(s.weightShape.reduce(1, *), seed: 2)
            let x = Self.signedOperands(s.inputShape.reduce(1, *), seed: 3)

            let gi = s.gradientInputConvolution
            let operand = Conv2D.gradientInputOperand(dy, s)
            let rotated = Conv2D.rotatedKernel(w, s)
            let fullIn = mxu.multiply(Conv2D.im2col(mxu.operand(operand), gi), rows: gi.gemm.m, inner: gi.gemm.k,
                                      rotated, cols: gi.gemm.n, aIsRounded: true).values
            let fastIn = Conv2D.gradientInputProductOmittingZeros(x: operand, w: rotated, shape: s, mxu: mxu)
            #expect(fastIn.map { differing($0, fullIn) } == 0, "\(s.inputShape) filter \(s.filterH) stride \(s.strideH) _grad_in")

            let gw = s.gradientWeightConvolution
            let input = mxu.operand(Conv2D.gradientWeightInput(x, s))
            let fullWt = mxu.multiply(Conv2D.im2col(input, gw), rows: gw.gemm.m, inner: gw.gemm.k,
                                      Conv2D.gradientWeightKernel(dy, s), cols: gw.gemm.n, aIsRounded: true).values
            let fastWt = Conv2D.gradientWeightProductOmittingZeros(x: input, dy: dy, shape: s, mxu: mxu, xIsRounded: true)
            #expect(fastWt.map { differing($0, fullWt) } == 0, "\(s.inputShape) filter \(s.filterH) stride \(s.strideH) _grad_wt")
        }
    }

    /// Where a left-out term could be NaN (an infinite weight, a value bf16 rounds to
    /// infinity, an injection hook that may have changed a zero, a checksum check that reads
    /// every term), or the stride dilates nothing, every term is computed; the operation's
    /// output is then the full product's, NaNs included.
    @Test func aGradientComputesEveryTermWhereALeftOutTermCouldBeOtherThanZero() {
        let s = ConvShape.same(batch: 2, inH: 6, inW: 6, inChannels: 2, filter: 3, outChannels: 3, stride: 2)
        let unit = MatrixUnit(mxu: MXU(foldLength: 8, precision: .bfloat16))
        let plain = OperationMXU(unit: unit, site: SiteID(layer: "c", kind: .gradIn), hook: nil)
        let dy = Self.signedOperands(s.outputShape.reduce(1, *), seed: 4)
        let finite = Self.signedOperands(s.weightShape.reduce(1, *), seed: 5)
        var w = finite
        var x = Self.signedOperands(s.inputShape.reduce(1, *), seed: 6)
        let operand = Conv2D.gradientInputOperand(dy, s), input = Conv2D.gradientWeightInput(x, s)
        #expect(Conv2D.gradientInputProductOmittingZeros(x: operand, w: Conv2D.rotatedKernel(w, s), shape: s, mxu: plain) != nil)
        #expect(Conv2D.gradientWeightProductOmittingZeros(x: input, dy: dy, shape: s, mxu: plain, xIsRounded: false) != nil)

        w[7] = .infinity
        x[11] = 3.4e38  // finite in fp32, infinite in bf16
        #expect(Conv2D.gradientInputProductOmittingZeros(x: operand, w: Conv2D.rotatedKernel(w, s), shape: s, mxu: plain) == nil)
        #expect(Conv2D.gradientWeightProductOmittingZeros(x: Conv2D.gradientWeightInput(x, s), dy: dy, shape: s, mxu: plain, xIsRounded: false) == nil)
        // The operation's output: NaN where an infinite value met a dilation zero, as the
        // full product (a checked unit computes every term) has it.
        let checked = MatrixUnit(mxu: unit.mxu, checks: ProductChecks(replica: 0))
        let dx = Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: unit)
        #expect(dx.contains { $0.isNaN } && differing(dx, Conv2D.backwardInputReference(dy: dy, w: w, shape: s, layer: "c", unit: checked)) == 0)
        let dw = Conv2D.backwardWeightReference(x: x, dy: dy, shape: s, layer: "c", unit: unit)
        #expect(dw.contains { $0.isNaN } && differing(dw, Conv2D.backwardWeightReference(x: x, dy: dy, shape: s, layer: "c", unit: checked)) == 0)

        let watched = [OperationMXU(unit: checked, site: plain.site, hook: nil),
                       OperationMXU(unit: unit, site: plain.site, hook: NoChangeHook())]
        for mxu in watched {
            #expect(!mxu.mayOmitZeroTerms)
            #expect(Conv2D.gradientInputProductOmittingZeros(x: operand, w: Conv2D.rotatedKernel(finite, s), shape: s, mxu: mxu) == nil)
        }
        let unstrided = ConvShape.same(batch: 1, inH: 4, inW: 4, inChannels: 2, filter: 3, outChannels: 2, stride: 1)
        #expect(Conv2D.gradientWeightProductOmittingZeros(x: Conv2D.gradientWeightInput(Self.signedOperands(32, seed: 7), unstrided),
                                                          dy: Self.signedOperands(32, seed: 8), shape: unstrided, mxu: plain, xIsRounded: false) == nil)
    }
}

/// A hook that wants every site and changes nothing.
struct NoChangeHook: OperandHook {
    func wants(_ site: SiteID, replica: Int) -> Bool { true }
    func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {}
}
