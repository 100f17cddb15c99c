/// The im2col product of a padded convolution without the zeros of the padding.
///
/// A window that hangs over the input's edge reads zeros there: of a 3x3 SAME convolution on
/// a 4x4 image, three terms in ten of the lowered matrix are zeros; on 2x2, five in nine.
/// Those terms are exact zeros when the weights are finite once rounded, and a sum that
/// leaves them out has the same bits (``MXU/multiply(_:_:into:shape:kept:)``). Output
/// positions fall into classes by which filter taps land inside the input (along each axis,
/// the positions near an edge, one class each, and the rest); each class is one product over
/// its own taps, its rows gathered from the input as the MXU reads them. Only where the
/// MXU may gather (``OperationMXU/mayGatherOperands``: no hook or check sees the terms) and
/// the weights are finite once rounded; the operation's operands, GEMM, schedule and timing
/// are the full convolution's either way.
extension Conv2D {
    /// Output positions along one axis with the same filter taps inside the input: positions
    /// `positions` read taps `taps` (possibly none).
    struct TapClass: Equatable {
        var positions: Range<Int>
        var taps: Range<Int>
    }

    /// The classes of one axis, in position order. Both ends of a position's tap range fall
    /// as the position grows, so positions with the same range are consecutive.
    static func tapClasses(outputs: Int, inputs: Int, filter: Int, stride: Int, pad: Int) -> [TapClass] {
        var classes: [TapClass] = []
        for o in 0..<outputs {
            let first = o * stride - pad
            let lo = min(filter, max(0, -first)), hi = max(lo, min(filter, inputs - first))
            if let last = classes.last, last.taps == lo..<hi {
                classes[classes.count - 1].positions = last.positions.lowerBound ..< o + 1
            } else {
                classes.append(TapClass(positions: o ..< o + 1, taps: lo..<hi))
            }
        }
        return classes
    }

    /// The rows of one class of ``tapClasses(outputs:inputs:filter:stride:pad:)`` pairs, only
    /// the taps inside the input: row `(n, oh, ow)` (images, then the class's rows and
    /// columns in order) holds, per kept filter row, the kept taps' `inChannels` values, one
    /// contiguous run of x.
    struct WindowClassRows: GatheredOperand, @unchecked Sendable {
        let x: UnsafePointer<Float>
        let shape: ConvShape
        let rows: TapClass, columns: TapClass

        /// Terms per row: the kept taps' values.
        var terms: Int { rows.taps.count * columns.taps.count * shape.inChannels }
        var count: Int { shape.batch * rows.positions.count * columns.positions.count }

        func gather(rows range: Range<Int>, k0: Int, count: Int, into dst: UnsafeMutablePointer<Float>, stride: Int) {
            guard !range.isEmpty, count > 0 else { return }
            let s = shape, segment = columns.taps.count * s.inChannels
            let (perImage, width) = (rows.positions.count * columns.positions.count, columns.positions.count)
            // Row (n, oh, ow) of the first asked for, then advanced row by row (no division per row).
            let first = range.lowerBound
            var (n, oh, ow) = (first / perImage, rows.positions.lowerBound + first % perImage / width, columns.positions.lowerBound + first % width)
            for i in 0..<range.count {
                defer {
                    ow += 1
                    if ow == columns.positions.upperBound { (ow, oh) = (columns.positions.lowerBound, oh + 1) }
                    if oh == rows.positions.upperBound { (oh, n) = (rows.positions.lowerBound, n + 1) }
                }
                let iw = ow * s.strideW + columns.taps.lowerBound - s.padLeft
                var (tap, p, out, remaining) = (rows.taps.lowerBound + k0 / segment, k0 % segment, dst + i * stride, count)
                while remaining > 0 {
                    let ih = oh * s.strideH + tap - s.padTop
                    let run = min(segment - p, remaining)
                    // Inside the input by the class's construction. Runs are short (a few taps
                    // of a few channels): a plain loop, no call.
                    let from = x + ((n * s.inH + ih) * s.inW + iw) * s.inChannels + p
                    for j in 0..<run { out[j] = from[j] }
                    (out, remaining, tap, p) = (out + run, remaining - run, tap + 1, 0)
                }
            }
        }
    }

    /// The product of ``OperationMXU/multiply(lowering:_:_:)`` (x rounded, `w` `[K, Cout]`),
    /// class by class without the padding's terms, or nil where there is no padding in any
    /// window or every term must be computed.
    static func productOmittingPadding(x: UnsafePointer<Float>, w: [Float], shape s: ConvShape, mxu: OperationMXU) -> [Float]? {
        let hs = tapClasses(outputs: s.outH, inputs: s.inH, filter: s.filterH, stride: s.strideH, pad: s.padTop)
        let ws = tapClasses(outputs: s.outW, inputs: s.inW, filter: s.filterW, stride: s.strideW, pad: s.padLeft)
        let full = { (c: TapClass, filter: Int) in c.taps.count == filter }
        guard hs.contains(where: { !full($0, s.filterH) }) || ws.contains(where: { !full($0, s.filterW) }),
              mxu.mayGatherOperands, mxu.allFiniteOnceRounded(w) else { return nil }
        let cout = s.outChannels
        var out = [Float].uninitialized(s.gemm.m * cout)
        out.withUnsafeMutableBufferPointer { po in
            guard let to = po.baseAddress else { return }
            for rows in hs {
                for columns in ws {
                    let a = WindowClassRows(x: x, shape: s, rows: rows, columns: columns)
                    let product = classProduct(a, w: w, mxu: mxu)
                    // The class's rows back to their pixels: per image and output row, one
                    // run of the class's columns.
                    product.withUnsafeBufferPointer { pp in
                        guard var from = pp.baseAddress else { return }
                        let run = columns.positions.count * cout
                        for n in 0..<s.batch {
                            for oh in rows.positions {
                                (to + ((n * s.outH + oh) * s.outW + columns.positions.lowerBound) * cout).update(from: from, count: run)
                                from += run
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// One class's product: its rows by the weights' rows of its kept taps (the sums of no
    /// terms, +0, where it keeps none).
    private static func classProduct(_ a: WindowClassRows, w: [Float], mxu: OperationMXU) -> [Float] {
        let s = a.shape, (cin, cout) = (s.inChannels, s.outChannels)
        guard a.terms > 0 else { return [Float](repeating: 0, count: a.count * cout) }
        var kept = KeptTerms(foldLength: mxu.foldLength)
        for fh in a.rows.taps {
            let first = (fh * s.filterW + a.columns.taps.lowerBound) * cin
            kept.keep(first ..< first + a.columns.taps.count * cin)
        }
        // B: the kept filter rows' taps, `[terms, Cout]`.
        let b = gatherRuns(of: w, length: a.columns.taps.count * cin * cout, runs: a.rows.taps.count) { emit in
            for fh in a.rows.taps { emit((fh * s.filterW + a.columns.taps.lowerBound) * cin * cout) }
        }
        let shape = GEMMShape(m: a.count, k: a.terms, n: cout)
        var c = [Float].uninitialized(a.count * cout)
        c.withUnsafeMutableBufferPointer { pc in
            b.withUnsafeBufferPointer { pb in
                guard let pc = pc.baseAddress, let pb = pb.baseAddress else { return }
                mxu.unit.mxu.multiply(gathered: a, MatrixView(pb, rowStride: cout), into: pc, shape: shape, kept: kept)
            }
        }
        return c
    }
}
