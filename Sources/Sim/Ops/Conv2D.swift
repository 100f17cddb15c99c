/// 2-D convolution on the MXU, lowered by im2col (see ``ConvShape``).
///
/// Shapes: x `[N, H, W, Cin]`, w `[Fh, Fw, Cin, Cout]`, y `[N, Ho, Wo, Cout]`. The im2col
/// matrix `X` is `[N*Ho*Wo, Fh*Fw*Cin]` with column `(fh * Fw + fw) * Cin + c`, which is the
/// row index of `w` seen as a `[Fh*Fw*Cin, Cout]` matrix.
public enum Conv2D {
    /// y = X w, one MXU operation (site `<layer>`; operands x, w, y). A fault in x strikes
    /// before the lowering, so it reaches every window the element is gathered into.
    public static func forward(x: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        unit.operation(SiteID(layer: layer, kind: .forward), input: x, inputShape: s.inputShape,
                       weight: w, weightShape: s.weightShape, outputShape: s.outputShape) { x, w, mxu in
            // Rounding x before the lowering rounds each value once instead of up to Fh*Fw times.
            mxu.multiply(lowering: mxu.operand(x), s, w)
        }
    }

    /// dL/dx = col2im(dL/dy w^T): the MXU computes `[M, Cout] x [Cout, K]`, then the columns
    /// are scattered back onto the input positions they were gathered from (site
    /// `<layer>_grad_in`; operands dL/dy, w, dL/dx).
    public static func backwardInput(dy: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        let g = s.gemm
        return unit.operation(SiteID(layer: layer, kind: .gradIn), input: dy, inputShape: s.outputShape,
                              weight: w, weightShape: s.weightShape, outputShape: s.inputShape, product: { dy, w, mxu in
            mxu.multiply(mxu.operand(dy), rows: g.m, inner: g.n, w, cols: g.k, transposeB: true, aIsRounded: true)
        }, unlower: { col2im($0, s) })
    }

    /// dL/dw = X^T dL/dy: the MXU computes `[K, M] x [M, Cout]`, reducing over every output
    /// position of every image (site `<layer>_grad_wt`; operands x, dL/dy, dL/dw).
    public static func backwardWeight(x: [Float], dy: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        let g = s.gemm
        return unit.operation(SiteID(layer: layer, kind: .gradWt), input: x, inputShape: s.inputShape,
                              weight: dy, weightShape: s.outputShape, outputShape: s.weightShape) { x, dy, mxu in
            mxu.multiply(im2col(x, s), rows: g.k, inner: g.m, dy, cols: g.n, transposeA: true)
        }
    }

    /// dL/dx in the reference layout (``ConvBackwardLayout/reference``): the stride-1 VALID
    /// convolution ``ConvShape/gradientInputConvolution`` of dL/dy dilated and padded, by the
    /// rotated kernel (site `<layer>_grad_in`; operands as that convolution has them).
    public static func backwardInputReference(dy: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(s.supportsReferenceBackward, "\(layer): the reference backward layout needs odd filters and SAME-style padding")
        let c = s.gradientInputConvolution, g = c.gemm
        // The operand: dL/dy[n, i, j, :] at [n, oh + i * strideH, ow + j * strideW, :], zeros
        // elsewhere; built only for a hook or a product that reads it.
        return unit.operation(SiteID(layer: layer, kind: .gradIn), input: { gradientInputOperand(dy, s) }, inputShape: c.inputShape,
                              weight: unit.derived("\(layer)_grad_in", of: w) { rotatedKernel($0, s) }, weightShape: c.weightShape, outputShape: c.outputShape) { operand, w, mxu in
            // Without a hook or checks, the operand would be dL/dy padded (at stride 1): the MXU
            // reads dL/dy itself and leaves the padding's terms out.
            if mxu.mayGatherOperands, let unpadded = s.gradientInputConvolutionOfUnpadded {
                return mxu.multiply(lowering: mxu.operand(dy), unpadded, w)
            }
            let x = operand()
            if let values = gradientInputProductOmittingZeros(x: x, w: w, shape: s, mxu: mxu) {
                return Product(values: values, rows: g.m, columns: g.n)
            }
            return mxu.multiply(lowering: mxu.operand(x), c, w)
        }
    }

    /// dL/dw in the reference layout: the stride-1 VALID convolution
    /// ``ConvShape/gradientWeightConvolution`` of the padded, transposed forward input by the
    /// dilated dL/dy (site `<layer>_grad_wt`; its output, the operation's, is
    /// `[Cin, Fh, Fw, Cout]`). Returns dL/dw as `[Fh, Fw, Cin, Cout]`.
    public static func backwardWeightReference(x: [Float], dy: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(s.supportsReferenceBackward, "\(layer): the reference backward layout needs odd filters and SAME-style padding")
        let c = s.gradientWeightConvolution, g = c.gemm
        let input = gradientWeightInput(x, s), kernel = gradientWeightKernel(dy, s)
        let dw = unit.operation(SiteID(layer: layer, kind: .gradWt), input: input, inputShape: c.inputShape,
                                weight: kernel, weightShape: c.weightShape, outputShape: c.outputShape) { x, w, mxu in
            let rounded = mxu.operand(x)
            if let values = gradientWeightProductOmittingZeros(x: rounded, dy: dy, shape: s, mxu: mxu, xIsRounded: true) {
                return Product(values: values, rows: g.m, columns: g.n)
            }
            return mxu.multiply(lowering: rounded, c, w)
        }
        // [Cin, Fh, Fw, Cout] -> [Fh, Fw, Cin, Cout]: runs of Cout values.
        let taps = s.filterH * s.filterW, (cin, cout) = (s.inChannels, s.outChannels)
        return [Float](unsafeUninitializedCapacity: dw.count) { out, written in
            dw.withUnsafeBufferPointer { p in
                guard let src = p.baseAddress, let dst = out.baseAddress else { return }
                for ci in 0..<cin {
                    for t in 0..<taps { (dst + (t * cin + ci) * cout).initialize(from: src + (ci * taps + t) * cout, count: cout) }
                }
            }
            written = dw.count
        }
    }

    /// The `_grad_in` weight of the reference layout: `w[fh, fw, ci, co]` at
    /// `[Fh-1-fh, Fw-1-fw, co, ci]`.
    static func rotatedKernel(_ w: [Float], _ s: ConvShape) -> [Float] {
        let (cin, cout) = (s.inChannels, s.outChannels), taps = s.filterH * s.filterW
        precondition(w.count == taps * cin * cout, "kernel of another convolution")
        return [Float](unsafeUninitializedCapacity: w.count) { out, written in
            w.withUnsafeBufferPointer { pw in
                guard let src = pw.baseAddress, let dst = out.baseAddress else { return }
                // Tap t's [Cin, Cout] block to tap (taps - 1 - t)'s [Cout, Cin] block.
                for t in 0..<taps { transpose(src + t * cin * cout, rows: cin, columns: cout, into: dst + (taps - 1 - t) * cout * cin) }
            }
            written = w.count
        }
    }

    /// dL/dy (`[N, Ho, Wo, Cout]`) dilated by the stride into a zeroed tensor of `count`
    /// values: pixel `(n, i, j)`'s `Cout` values go, contiguous, to
    /// `index(n, offset.h + i * strideH, offset.w + j * strideW)`.
    /// The `_grad_wt` input of the reference layout: `x[n, h, w, ci]` at
    /// `[ci, qh + h, qw + w, n]` of ``ConvShape/gradientWeightConvolution``'s input, zeros around.
    static func gradientWeightInput(_ x: [Float], _ s: ConvShape) -> [Float] {
        let c = s.gradientWeightConvolution, (qh, qw) = s.gradientWeightPadding
        let (n, h, w, channels) = (s.batch, s.inH, s.inW, s.inChannels)
        let (hp, wp) = (c.inH, c.inW)
        let count = channels * hp * wp * n
        return [Float](unsafeUninitializedCapacity: count) { out, written in
            x.withUnsafeBufferPointer { px in
                guard let dst = out.baseAddress, let src = px.baseAddress else { return }
                // The zeros around each channel's image: whole rows above and below, the
                // columns left and right of every row in between.
                for ci in 0..<channels {
                    let plane = dst + ci * hp * wp * n
                    plane.initialize(repeating: 0, count: qh * wp * n)
                    (plane + (qh + h) * wp * n).initialize(repeating: 0, count: (hp - qh - h) * wp * n)
                    for row in qh ..< qh + h {
                        (plane + row * wp * n).initialize(repeating: 0, count: qw * n)
                        (plane + (row * wp + qw + w) * n).initialize(repeating: 0, count: (wp - qw - w) * n)
                    }
                }
                // Sixteen images at a time, pixel by pixel, their [16, Cin] block of x
                // transposed to [Cin, 16]: each channel's 16 values are one cache line written
                // whole, read from 16 rows of x that stay in cache while the channels advance
                // and that are each read in order across the pixels (prefetched).
                let pixelStride = h * w * channels, planeStride = hp * wp * n
                for b0 in stride(from: 0, to: n, by: 16) {
                    let images = min(16, n - b0)
                    for ih in 0..<h {
                        for iw in 0..<w {
                            transpose(src + b0 * pixelStride + (ih * w + iw) * channels, rowStride: pixelStride, rows: images, columns: channels,
                                      into: dst + ((qh + ih) * wp + qw + iw) * n + b0, rowStride: planeStride)
                        }
                    }
                }
            }
            written = count
        }
    }

    /// The `_grad_wt` weight of the reference layout: `dy[n, i, j, :]` at
    /// `[oh + i * strideH, ow + j * strideW, n, :]` (``ConvShape/gradientWeightOffset``).
    static func gradientWeightKernel(_ dy: [Float], _ s: ConvShape) -> [Float] {
        let c = s.gradientWeightConvolution
        return dilated(dy, s, offset: s.gradientWeightOffset, count: c.weightShape.reduce(1, *)) { n, h, w in
            ((h * c.filterW + w) * s.batch + n) * s.outChannels
        }
    }

    /// The `_grad_in` input of the reference layout: dL/dy dilated and padded
    /// (``ConvShape/gradientInputConvolution``, ``ConvShape/gradientInputOffset``).
    static func gradientInputOperand(_ dy: [Float], _ s: ConvShape) -> [Float] {
        let c = s.gradientInputConvolution
        // A 1x1 stride-1 convolution without padding: no dilation, no padding, dL/dy itself.
        if s.filterH == 1 && s.filterW == 1 && s.strideH == 1 && s.strideW == 1 && s.padTop == 0 && s.padLeft == 0
            && c.inH == s.outH && c.inW == s.outW {
            return dy
        }
        return dilated(dy, s, offset: s.gradientInputOffset, count: c.inputShape.reduce(1, *)) { n, h, w in
            ((n * c.inH + h) * c.inW + w) * s.outChannels
        }
    }

    static func dilated(_ dy: [Float], _ s: ConvShape, offset: (h: Int, w: Int), count: Int,
                        index: (_ n: Int, _ h: Int, _ w: Int) -> Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, written in
            dy.withUnsafeBufferPointer { pdy in
                guard let dst = out.baseAddress, let src = pdy.baseAddress else { return }
                dst.initialize(repeating: 0, count: count)
                for n in 0..<s.batch {
                    for i in 0..<s.outH {
                        for j in 0..<s.outW {
                            let from = src + ((n * s.outH + i) * s.outW + j) * s.outChannels
                            (dst + index(n, offset.h + i * s.strideH, offset.w + j * s.strideW)).update(from: from, count: s.outChannels)
                        }
                    }
                }
            }
            written = count
        }
    }

    /// Gathers every filter window of x into one row (zeros where the window hangs over the
    /// padding). A lowering that is a plain copy (a 1x1 stride-1 convolution without padding,
    /// or one window covering the whole input) returns x itself.
    static func im2col(_ x: [Float], _ s: ConvShape) -> [Float] {
        if s.lowersToItself { return x }
        let g = s.gemm, count = g.m * g.k
        return [Float](unsafeUninitializedCapacity: count) { cols, written in
            x.withUnsafeBufferPointer { px in
                guard let dst = cols.baseAddress, let src = px.baseAddress else { return }
                Im2colRows(x: src, shape: s).gather(rows: 0..<g.m, k0: 0, count: g.k, into: dst, stride: g.k)
            }
            written = count
        }
    }

    /// The rows of ``im2col(_:_:)``'s matrix, each gathered from x when asked for: the MXU
    /// reads them without the lowered matrix (Fh*Fw times x's size) being stored.
    struct Im2colRows: GatheredOperand, @unchecked Sendable {
        let x: UnsafePointer<Float>
        let shape: ConvShape

        func gather(rows: Range<Int>, k0: Int, count: Int, into dst: UnsafeMutablePointer<Float>, stride: Int) {
            guard !rows.isEmpty, count > 0 else { return }
            let s = shape, c = s.inChannels, rowLength = s.filterW * c
            // Row (n, oh, ow) of the lowered matrix, advanced row by row (no division per row).
            let first = rows.lowerBound
            var (n, oh, ow) = (first / (s.outW * s.outH), first / s.outW % s.outH, first % s.outW)
            let fh0 = k0 / rowLength, p0 = k0 % rowLength
            for i in 0..<rows.count {
                // Within a filter row, the taps inside the input are values begin ..< end of
                // it, one contiguous run of x; the taps over the padding are zeros.
                let left = ow * s.strideW - s.padLeft
                let begin = max(0, -left) * c, end = max(0, min(s.filterW, s.inW - left) * c)
                var (fh, p, out, remaining) = (fh0, p0, dst + i * stride, count)
                while remaining > 0 {
                    let segmentEnd = min(rowLength, p + remaining)
                    let ih = oh * s.strideH + fh - s.padTop
                    var (lo, hi) = (segmentEnd, segmentEnd)
                    if ih >= 0 && ih < s.inH {
                        lo = min(max(p, begin), segmentEnd)
                        hi = max(min(segmentEnd, end), lo)
                    }
                    // Runs are short (a few taps of a few channels): plain loops, no calls.
                    for j in 0 ..< lo - p { out[j] = 0 }
                    if hi > lo {
                        // lo >= begin, so the run starts inside x.
                        let from = x + (((n * s.inH + ih) * s.inW + left) * c + lo), to = out + (lo - p)
                        for j in 0 ..< hi - lo { to[j] = from[j] }
                    }
                    for j in hi - p ..< segmentEnd - p { out[j] = 0 }
                    out += segmentEnd - p
                    remaining -= segmentEnd - p
                    (fh, p) = (fh + 1, 0)
                }
                ow += 1
                if ow == s.outW { (ow, oh) = (0, oh + 1) }
                if oh == s.outH { (oh, n) = (0, n + 1) }
            }
        }
    }

    /// The adjoint of ``im2col(_:_:)``: adds every column back onto its input position, rows
    /// (output positions) ascending, then filter positions ascending.
    static func col2im(_ cols: [Float], _ s: ConvShape) -> [Float] {
        var dx = [Float](repeating: 0, count: s.batch * s.inH * s.inW * s.inChannels)
        cols.withUnsafeBufferPointer { pc in
            dx.withUnsafeMutableBufferPointer { pd in
                forEachWindowTap(s) { colOffset, inputOffset in
                    let src = pc.baseAddress! + colOffset, dst = pd.baseAddress! + inputOffset
                    for c in 0..<s.inChannels { dst[c] += src[c] }
                }
            }
        }
        return dx
    }

    /// Visits, in im2col order (output positions, then filter taps), every filter tap that
    /// lands inside the input: the offset of its `inChannels` values in the lowered matrix and
    /// in x.
    @inline(__always)
    static func forEachWindowTap(_ s: ConvShape, _ body: (_ colOffset: Int, _ inputOffset: Int) -> Void) {
        let K = s.filterH * s.filterW * s.inChannels
        var row = 0
        for n in 0..<s.batch {
            for oh in 0..<s.outH {
                for ow in 0..<s.outW {
                    for fh in 0..<s.filterH {
                        let ih = oh * s.strideH + fh - s.padTop
                        guard ih >= 0 && ih < s.inH else { continue }
                        for fw in 0..<s.filterW {
                            let iw = ow * s.strideW + fw - s.padLeft
                            guard iw >= 0 && iw < s.inW else { continue }
                            body(row + (fh * s.filterW + fw) * s.inChannels, ((n * s.inH + ih) * s.inW + iw) * s.inChannels)
                        }
                    }
                    row += K
                }
            }
        }
    }
}

extension OperationMXU {
    /// The product of x's im2col lowering by shape `s` (x already rounded to the operand
    /// format) and `w` (`[K, Cout]`): the MXU gathers the lowered rows as it reads them where
    /// nothing needs the lowered matrix itself; an injection hook or a checksum check sees the
    /// stored one. The same bits either way.
    func multiply(lowering x: [Float], _ s: ConvShape, _ w: [Float]) -> Product {
        let g = s.gemm
        guard mayGatherOperands, !s.lowersToItself, g.m > 0, g.k > 0, g.n > 0 else {
            return multiply(Conv2D.im2col(x, s), rows: g.m, inner: g.k, w, cols: g.n, aIsRounded: true)
        }
        precondition(x.count == s.inputShape.reduce(1, *) && w.count == g.k * g.n, "\(site.name): operand sizes do not match the product")
        let withoutPadding = x.withUnsafeBufferPointer { px in
            px.baseAddress.flatMap { Conv2D.productOmittingPadding(x: $0, w: w, shape: s, mxu: self) }
        }
        if let withoutPadding { return Product(values: withoutPadding, rows: g.m, columns: g.n) }
        let c = [Float](unsafeUninitializedCapacity: g.m * g.n) { out, written in
            x.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in
                guard let px = px.baseAddress, let pw = pw.baseAddress, let pc = out.baseAddress else { return }
                unit.mxu.multiply(gathered: Conv2D.Im2colRows(x: px, shape: s), MatrixView(pw, rowStride: g.n),
                                  into: pc, shape: g)
            } }
            written = g.m * g.n
        }
        return Product(values: c, rows: g.m, columns: g.n)
    }
}
