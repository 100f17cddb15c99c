/// Fully connected layer on the MXU. Shapes: x `[N, Din]`, w `[Din, Dout]`, b `[Dout]`,
/// y `[N, Dout]`.
public enum Dense {
    /// y = x w + b. The MXU operation (site `<layer>`) produces x w; the hook sees that
    /// product as the output, before the vector unit adds the bias.
    public static func forward(x: [Float], w: [Float], b: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                               layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .forward)
        var x = x, w = w
        let hook = unit.corruptOperands(site, input: &x, inputShape: [batch, inFeatures], weight: &w, weightShape: [inFeatures, outFeatures])
        var y = unit.product(site, x, rows: batch, inner: inFeatures, w, cols: outFeatures, hook: hook)
        unit.finish(site, output: &y, shape: [batch, outFeatures], hook: hook)
        for n in 0..<batch { for j in 0..<outFeatures { y[n * outFeatures + j] += b[j] } }
        return y
    }

    /// dL/dx = dL/dy w^T (site `<layer>_grad_in`; operands dL/dy, w, dL/dx).
    public static func backwardInput(dy: [Float], w: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                                     layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .gradIn)
        var dy = dy, w = w
        let hook = unit.corruptOperands(site, input: &dy, inputShape: [batch, outFeatures], weight: &w, weightShape: [inFeatures, outFeatures])
        var dx = unit.product(site, dy, rows: batch, inner: outFeatures, w, cols: inFeatures, transposeB: true, hook: hook)
        unit.finish(site, output: &dx, shape: [batch, inFeatures], hook: hook)
        return dx
    }

    /// dL/dw = x^T dL/dy (site `<layer>_grad_wt`; operands x, dL/dy, dL/dw) and dL/db, the
    /// column sums of dL/dy on the vector unit.
    public static func backwardWeight(x: [Float], dy: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                                      layer: String, unit: MatrixUnit) -> (dw: [Float], db: [Float]) {
        let site = SiteID(layer: layer, kind: .gradWt)
        var x = x, dy = dy
        let hook = unit.corruptOperands(site, input: &x, inputShape: [batch, inFeatures], weight: &dy, weightShape: [batch, outFeatures])
        var dw = unit.product(site, x, rows: inFeatures, inner: batch, dy, cols: outFeatures, transposeA: true, hook: hook)
        unit.finish(site, output: &dw, shape: [inFeatures, outFeatures], hook: hook)
        return (dw, Reduce.columnSums(dy, rows: batch, columns: outFeatures))
    }
}
