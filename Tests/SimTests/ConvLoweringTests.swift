import Testing
@testable import Sim

/// The im2col lowering (``Conv2D/im2col(_:_:)``) and the MXU reading it gathered row by row
/// (``Conv2D/Im2colRows``, ``MXU/multiply(gathered:_:into:shape:)``) instead of stored.
@Suite struct ConvLoweringTests {
    /// Shapes with padding on every side, strides 1-3, filters 1-7 (one wider than the
    /// input), channel counts that are not multiples of a vector, and VALID ones.
    static let shapes: [ConvShape] = [
        .same(batch: 2, inH: 7, inW: 6, inChannels: 3, filter: 3, outChannels: 5, stride: 1),
        .same(batch: 1, inH: 9, inW: 9, inChannels: 5, filter: 5, outChannels: 7, stride: 2),
        .same(batch: 3, inH: 5, inW: 8, inChannels: 2, filter: 7, outChannels: 4, stride: 3),
        .same(batch: 2, inH: 4, inW: 4, inChannels: 17, filter: 1, outChannels: 3, stride: 2),
        .valid(batch: 2, inH: 6, inW: 7, inChannels: 4, filter: 3, outChannels: 6, stride: 1),
        .same(batch: 2, inH: 12, inW: 12, inChannels: 40, filter: 3, outChannels: 24, stride: 1),
    ]

    /// im2col's element `(row, column)` from its definition: output position `row`, filter
    /// tap and channel `column`, zero where the tap falls on the padding.
    static func lowered(_ x: [Float], _ s: ConvShape, row: Int, column: Int) -> Float {
        let (n, oh, ow) = (row / (s.outH * s.outW), row / s.outW % s.outH, row % s.outW)
        let (fh, fw, c) = (column / (s.filterW * s.inChannels), column / s.inChannels % s.filterW, column % s.inChannels)
        let (ih, iw) = (oh * s.strideH + fh - s.padTop, ow * s.strideW + fw - s.padLeft)
        guard ih >= 0, ih < s.inH, iw >= 0, iw < s.inW else { return 0 }
        return x[((n * s.inH + ih) * s.inW + iw) * s.inChannels + c]
    }

    @Test func im2colPutsEveryTapWhereItsDefinitionDoes() {
        for s in Self.shapes {
            let x = operands(s.inputShape.reduce(1, *), seed: UInt64(s.inChannels))
            let g = s.gemm, cols = Conv2D.im2col(x, s)
            #expect(cols.count == g.m * g.k)
            let wrong = (0..<g.m * g.k).filter { cols[$0].bitPattern != Self.lowered(x, s, row: $0 / g.k, column: $0 % g.k).bitPattern }
            #expect(wrong.isEmpty, "\(s): \(wrong.count) values differ")
        }
    }

    /// The reference backward's operands, which are transposes moved 8 x 8 values at a
    /// time: the `_grad_in` kernel is `w[fh, fw, ci, co]` at `[Fh-1-fh, Fw-1-fw, co, ci]`, the
    /// `_grad_wt` input `x[n, h, w, ci]` at `[ci, qh + h, qw + w, n]` with zeros around, for
    /// batches and channel counts on both sides of a block (1, 5, 8, 17, 40).
    @Test func referenceBackwardOperandsMoveEveryValueWhereTheirDefinitionsDo() {
        let shapes = Self.shapes + [.same(batch: 17, inH: 3, inW: 2, inChannels: 8, filter: 3, outChannels: 16, stride: 1),
                                    .same(batch: 9, inH: 4, inW: 4, inChannels: 1, filter: 3, outChannels: 9, stride: 2)]
        for s in shapes where s.supportsReferenceBackward {
            let taps = s.filterH * s.filterW, (cin, cout) = (s.inChannels, s.outChannels)
            let w = operands(taps * cin * cout, seed: 3)
            let rotated = Conv2D.rotatedKernel(w, s)
            var wrong = 0
            for t in 0..<taps { for ci in 0..<cin { for co in 0..<cout where rotated[((taps - 1 - t) * cout + co) * cin + ci] != w[(t * cin + ci) * cout + co] { wrong += 1 } } }
            #expect(wrong == 0, "\(s): \(wrong) kernel values misplaced")

            let x = operands(s.inputShape.reduce(1, *), seed: 4)
            let c = s.gradientWeightConvolution, (qh, qw) = s.gradientWeightPadding
            let input = Conv2D.gradientWeightInput(x, s)
            var expected = [Float](repeating: 0, count: cin * c.inH * c.inW * s.batch)
            for n in 0..<s.batch { for h in 0..<s.inH { for iw in 0..<s.inW { for ci in 0..<cin {
                expected[((ci * c.inH + qh + h) * c.inW + qw + iw) * s.batch + n] = x[((n * s.inH + h) * s.inW + iw) * cin + ci]
            } } } }
            #expect(input.map(\.bitPattern) == expected.map(\.bitPattern), "\(s): the _grad_wt input differs")
        }
    }

    /// Any block of rows and any span of terms, starting and ending inside a filter row, as
    /// the MXU asks for them one block of K at a time.
    @Test func gatheredRowsAreTheLoweredMatrixsRows() {
        for s in Self.shapes {
            let x = operands(s.inputShape.reduce(1, *), seed: UInt64(s.inChannels) + 1)
            let g = s.gemm, cols = Conv2D.im2col(x, s)
            for (rows, k0, count) in [(0..<g.m, 0, g.k), (1..<min(g.m, 8), 1, g.k - 1), (g.m / 2 ..< g.m, g.k / 3, g.k / 2)] {
                let stride = count + 3
                var out = [Float](repeating: .nan, count: rows.count * stride)
                x.withUnsafeBufferPointer { px in
                    out.withUnsafeMutableBufferPointer { po in
                        Conv2D.Im2colRows(x: px.baseAddress!, shape: s)
                            .gather(rows: rows, k0: k0, count: count, into: po.baseAddress!, stride: stride)
                    }
                }
                for (i, row) in rows.enumerated() {
                    let got = out[i * stride ..< i * stride + count].map(\.bitPattern)
                    let want = cols[row * g.k + k0 ..< row * g.k + k0 + count].map(\.bitPattern)
                    #expect(got == want, "\(s): row \(row), terms \(k0) + \(count)")
                    let past = out[i * stride + count ..< (i + 1) * stride].filter { !$0.isNaN }
                    #expect(past.isEmpty, "\(s): wrote past the span")
                }
            }
        }
    }

    /// The product of the gathered rows against the product of the stored matrix: every
    /// kernel family, one and two threads, folds that cut filter rows, and a K long enough
    /// that the MXU gathers A one block of K at a time.
    @Test(arguments: KernelFamily.allCases)
    func aGatheredLoweringHasTheStoredLoweringsBits(family: KernelFamily) {
        let long = ConvShape.same(batch: 1, inH: 6, inW: 6, inChannels: 300, filter: 3, outChannels: 9, stride: 1)
        for s in Self.shapes + [long] {
            let g = s.gemm
            for fold in [nil, 5, 128] as [Int?] {
                for threads in [1, 2] {
                    let mxu = MXU(foldLength: fold, precision: .bfloat16, threads: threads).using(family)
                    let x = operands(s.inputShape.reduce(1, *), seed: UInt64(g.k)).map(BFloat16.round)
                    let w = operands(g.k * g.n, seed: UInt64(g.n))
                    let stored = (try? mxu.multiply(Conv2D.im2col(x, s), w, shape: g)) ?? []
                    let gathered = [Float](unsafeUninitializedCapacity: g.m * g.n) { out, written in
                        x.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in
                            mxu.multiply(gathered: Conv2D.Im2colRows(x: px.baseAddress!, shape: s), MatrixView(pw.baseAddress!, rowStride: g.n),
                                         into: out.baseAddress!, shape: g)
                        } }
                        written = g.m * g.n
                    }
                    #expect(stored.count == g.m * g.n)
                    #expect(gathered.map(\.bitPattern) == stored.map(\.bitPattern), "\(s), fold \(String(describing: fold)), \(threads) threads")
                }
            }
        }
    }
}
