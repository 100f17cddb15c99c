/// The reference layout's backward products of a strided convolution without the zeros of
/// the dilation.
///
/// In the reference layout (``ConvBackwardLayout/reference``) dL/dy enters both backward
/// operations dilated by the stride: of a stride-2 convolution's `_grad_in` input and
/// `_grad_wt` weight, three values in four are zeros, and so are three of every four terms
/// the array sums. Those terms are exact zeros when the other operand is finite, and a sum
/// that leaves them out has the same bits (``MXU/multiply(_:_:into:shape:kept:)``). So where
/// nothing watches the operation's terms (``OperationMXU/mayOmitZeroTerms``) and the other
/// operand is finite once rounded, these products compute only the terms that can be other
/// than zero; otherwise the operation computes every term. The operation's operands, GEMM,
/// schedule and timing are the full convolution's either way.
extension Conv2D {
    /// The `_grad_in` product of ``backwardInputReference(dy:w:shape:layer:unit:)`` (raw,
    /// `[N*H*W, Cin]`) from its input `x` as ``gradientInputOperand(_:_:)`` built it (dL/dy
    /// dilated and padded) and its rotated kernel `w` (`[Fh, Fw, Cout, Cin]`), or nil where
    /// every term must be computed.
    ///
    /// Output pixel `(h, w)` sees dL/dy through the filter taps congruent to it modulo the
    /// stride, so the rows fall into `strideH x strideW` classes by `(h mod strideH,
    /// w mod strideW)`, each one product over its taps; a tap that lands in the padding or
    /// past dL/dy's edge contributes zeros, as in the full product.
    static func gradientInputProductOmittingZeros(x: [Float], w: [Float], shape s: ConvShape, mxu: OperationMXU) -> [Float]? {
        guard s.strideH > 1 || s.strideW > 1, mxu.mayOmitZeroTerms, mxu.allFiniteOnceRounded(w) else { return nil }
        let c = s.gradientInputConvolution, (eh, ew) = s.gradientInputOffset
        let cout = s.outChannels, cin = s.inChannels
        precondition(x.count == c.inputShape.reduce(1, *) && w.count == c.weightShape.reduce(1, *), "operands of another convolution")
        var out = [Float](repeating: 0, count: c.gemm.m * cin)
        // The taps of a class: filter positions whose input position is on dL/dy's grid.
        func congruentTaps(_ p: Int, filter: Int, offset: Int, stride: Int) -> [Int] {
            (0..<filter).filter { f in ((p + f - offset) % stride + stride) % stride == 0 }
        }
        for ph in 0..<min(s.strideH, s.inH) {
            for pw in 0..<min(s.strideW, s.inW) {
                let tapsH = congruentTaps(ph, filter: s.filterH, offset: eh, stride: s.strideH)
                let tapsW = congruentTaps(pw, filter: s.filterW, offset: ew, stride: s.strideW)
                let hs = Array(stride(from: ph, to: s.inH, by: s.strideH)), ws = Array(stride(from: pw, to: s.inW, by: s.strideW))
                let rows = s.batch * hs.count * ws.count
                // B: each kept tap's [Cout, Cin] block of the rotated kernel. A: each row's kept
                // terms, `Cout` values per tap from the dilated input. (No taps, a 1x1 filter's
                // odd rows at stride 2: no terms, sums of +0.)
                let taps = tapsH.flatMap { fh in tapsW.map { fw in (fh, fw) } }
                var kept = KeptTerms(foldLength: mxu.foldLength)
                for (fh, fw) in taps { kept.keep((fh * s.filterW + fw) * cout ..< (fh * s.filterW + fw + 1) * cout) }
                let b = gatherRuns(of: w, length: cout * cin, runs: taps.count) { emit in
                    for (fh, fw) in taps { emit((fh * s.filterW + fw) * cout * cin) }
                }
                let a = gatherRuns(of: x, length: cout, runs: rows * taps.count) { emit in
                    for n in 0..<s.batch { for h in hs { for wo in ws { for (fh, fw) in taps {
                        emit(((n * c.inH + h + fh) * c.inW + wo + fw) * cout)
                    } } } }
                }
                let product = mxu.multiply(a, rows: rows, b, cols: cin, kept: kept)
                // The class's rows back to their pixels.
                out.withUnsafeMutableBufferPointer { po in
                    product.withUnsafeBufferPointer { pp in
                        guard let to = po.baseAddress, var from = pp.baseAddress else { return }
                        for n in 0..<s.batch {
                            for h in hs {
                                for wo in ws {
                                    (to + ((n * s.inH + h) * s.inW + wo) * cin).update(from: from, count: cin)
                                    from += cin
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The `_grad_wt` product of ``backwardWeightReference(x:dy:shape:layer:unit:)`` (raw,
    /// `[Cin*Fh*Fw, Cout]`) from its input `x` as ``gradientWeightInput(_:_:)`` built it (the
    /// padded, transposed forward input, rounded or not) and dL/dy undilated, or nil where
    /// every term must be computed.
    ///
    /// The weight's rows that are not on dL/dy's grid are zeros for every output, so the
    /// product keeps the terms of dL/dy's own pixels: `Ho*Wo*N` of them.
    static func gradientWeightProductOmittingZeros(x: [Float], dy: [Float], shape s: ConvShape, mxu: OperationMXU, xIsRounded: Bool) -> [Float]? {
        guard s.strideH > 1 || s.strideW > 1, mxu.mayOmitZeroTerms, mxu.allFiniteOnceRounded(x) else { return nil }
        let c = s.gradientWeightConvolution, (gh, gw) = s.gradientWeightOffset
        let n = s.batch, cout = s.outChannels
        precondition(x.count == c.inputShape.reduce(1, *) && dy.count == s.outputShape.reduce(1, *), "operands of another convolution")
        var kept = KeptTerms(foldLength: mxu.foldLength)
        for i in 0..<s.outH {
            for j in 0..<s.outW {
                let first = ((gh + i * s.strideH) * c.filterW + gw + j * s.strideW) * n
                kept.keep(first ..< first + n)
            }
        }
        let rows = c.gemm.m, pixels = s.outH * s.outW
        // A: row (ci, oh, ow), terms (i, j, n): x[ci, oh + gh + i*sH, ow + gw + j*sW, 0..<N].
        let a = gatherRuns(of: x, length: n, runs: rows * pixels) { emit in
            for ci in 0..<s.inChannels { for oh in 0..<s.filterH { for ow in 0..<s.filterW {
                for i in 0..<s.outH { for j in 0..<s.outW {
                    emit(((ci * c.inH + oh + gh + i * s.strideH) * c.inW + ow + gw + j * s.strideW) * n)
                } }
            } } }
        }
        // B: term (i, j, n) is dL/dy[n, i, j, :].
        let b = gatherRuns(of: dy, length: cout, runs: pixels * n) { emit in
            for i in 0..<s.outH { for j in 0..<s.outW { for image in 0..<n { emit(((image * s.outH + i) * s.outW + j) * cout) } } }
        }
        return mxu.multiply(a, rows: rows, b, cols: cout, kept: kept, aIsRounded: xIsRounded)
    }
}
