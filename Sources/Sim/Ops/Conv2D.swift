/// 2-D convolution on the MXU, lowered by im2col (see ``ConvShape``).
///
/// Shapes: x `[N, H, W, Cin]`, w `[Fh, Fw, Cin, Cout]`, y `[N, Ho, Wo, Cout]`. The im2col
/// matrix `X` is `[N*Ho*Wo, Fh*Fw*Cin]` with column `(fh * Fw + fw) * Cin + c`, which is the
/// row index of `w` seen as a `[Fh*Fw*Cin, Cout]` matrix.
public enum Conv2D {
    /// y = X w, one MXU operation (site `<layer>`). The hook may corrupt x before the
    /// lowering, w (this operation's copy only) and y.
    public static func forward(x: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .forward)
        var xf = x, wf = w
        let hook = unit.corruptOperands(site, input: &xf, inputShape: s.inputShape, weight: &wf, weightShape: s.weightShape)
        let g = s.gemm
        // Rounding x before the lowering rounds each value once instead of up to Fh*Fw times.
        let cols = im2col(unit.operand(xf), s)
        var y = unit.product(site, cols, rows: g.m, inner: g.k, wf, cols: g.n, aIsRounded: true, hook: hook)
        unit.limitReach(site, hook: hook, product: &y, rows: g.m, columns: g.n) {
            unit.product(site, im2col(unit.operand(x), s), rows: g.m, inner: g.k, w, cols: g.n, aIsRounded: true, hook: nil)
        }
        unit.finish(site, output: &y, shape: s.outputShape, hook: hook)
        return y
    }

    /// dL/dx = col2im(dL/dy w^T): the MXU computes `[M, Cout] x [Cout, K]`, then the columns
    /// are scattered back onto the input positions they were gathered from (site
    /// `<layer>_grad_in`; operands dL/dy, w, dL/dx).
    public static func backwardInput(dy: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .gradIn)
        var dyf = dy, wf = w
        let hook = unit.corruptOperands(site, input: &dyf, inputShape: s.outputShape, weight: &wf, weightShape: s.weightShape)
        let g = s.gemm
        var dcols = unit.product(site, unit.operand(dyf), rows: g.m, inner: g.n, wf, cols: g.k, transposeB: true, aIsRounded: true, hook: hook)
        unit.limitReach(site, hook: hook, product: &dcols, rows: g.m, columns: g.k) {
            unit.product(site, unit.operand(dy), rows: g.m, inner: g.n, w, cols: g.k, transposeB: true, aIsRounded: true, hook: nil)
        }
        var dx = col2im(dcols, s)
        unit.finish(site, output: &dx, shape: s.inputShape, hook: hook)
        return dx
    }

    /// dL/dw = X^T dL/dy: the MXU computes `[K, M] x [M, Cout]`, reducing over every output
    /// position of every image (site `<layer>_grad_wt`; operands x, dL/dy, dL/dw).
    public static func backwardWeight(x: [Float], dy: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .gradWt)
        var xf = x, dyf = dy
        let hook = unit.corruptOperands(site, input: &xf, inputShape: s.inputShape, weight: &dyf, weightShape: s.outputShape)
        let g = s.gemm
        var dw = unit.product(site, im2col(xf, s), rows: g.k, inner: g.m, dyf, cols: g.n, transposeA: true, hook: hook)
        unit.limitReach(site, hook: hook, product: &dw, rows: g.k, columns: g.n) {
            unit.product(site, im2col(x, s), rows: g.k, inner: g.m, dy, cols: g.n, transposeA: true, hook: nil)
        }
        unit.finish(site, output: &dw, shape: s.weightShape, hook: hook)
        return dw
    }

    /// Gathers every filter window of x into one row (zeros where the window hangs over the
    /// padding).
    static func im2col(_ x: [Float], _ s: ConvShape) -> [Float] {
        var cols = [Float](repeating: 0, count: s.batch * s.outH * s.outW * s.filterH * s.filterW * s.inChannels)
        x.withUnsafeBufferPointer { px in
            cols.withUnsafeMutableBufferPointer { pc in
                forEachWindowTap(s) { colOffset, inputOffset in
                    (pc.baseAddress! + colOffset).update(from: px.baseAddress! + inputOffset, count: s.inChannels)
                }
            }
        }
        return cols
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
