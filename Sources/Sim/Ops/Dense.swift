/// Fully connected layer on the MXU. Shapes: x `[N, Din]`, w `[Din, Dout]`, b `[Dout]`,
/// y `[N, Dout]`.
public enum Dense {
    /// y = x w + b. The MXU operation (site `<layer>`) produces x w; the hook sees that
    /// product as the output, before the vector unit adds the bias.
    public static func forward(x: [Float], w: [Float], b: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                               layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .forward)
        var xf = x, wf = w
        let hook = unit.corruptOperands(site, input: &xf, inputShape: [batch, inFeatures], weight: &wf, weightShape: [inFeatures, outFeatures])
        var y = unit.product(site, xf, rows: batch, inner: inFeatures, wf, cols: outFeatures, hook: hook)
        unit.limitReach(site, hook: hook, product: &y, rows: batch, columns: outFeatures) {
            unit.product(site, x, rows: batch, inner: inFeatures, w, cols: outFeatures, hook: nil)
        }
        unit.finish(site, output: &y, shape: [batch, outFeatures], hook: hook)
        for n in 0..<batch { for j in 0..<outFeatures { y[n * outFeatures + j] += b[j] } }
        return y
    }

    /// dL/dx = dL/dy w^T (site `<layer>_grad_in`; operands dL/dy, w, dL/dx).
    public static func backwardInput(dy: [Float], w: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                                     layer: String, unit: MatrixUnit) -> [Float] {
        let site = SiteID(layer: layer, kind: .gradIn)
        var dyf = dy, wf = w
        let hook = unit.corruptOperands(site, input: &dyf, inputShape: [batch, outFeatures], weight: &wf, weightShape: [inFeatures, outFeatures])
        var dx = unit.product(site, dyf, rows: batch, inner: outFeatures, wf, cols: inFeatures, transposeB: true, hook: hook)
        unit.limitReach(site, hook: hook, product: &dx, rows: batch, columns: inFeatures) {
            unit.product(site, dy, rows: batch, inner: outFeatures, w, cols: inFeatures, transposeB: true, hook: nil)
        }
        unit.finish(site, output: &dx, shape: [batch, inFeatures], hook: hook)
        return dx
    }

    /// dL/dw = x^T dL/dy (site `<layer>_grad_wt`; operands x, dL/dy, dL/dw) and dL/db, the
    /// column sums of dL/dy on the vector unit (which reads dL/dy from memory, not from the
    /// MXU's operand copy that a fault corrupts).
    public static func backwardWeight(x: [Float], dy: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                                      layer: String, unit: MatrixUnit) -> (dw: [Float], db: [Float]) {
        let site = SiteID(layer: layer, kind: .gradWt)
        var xf = x, dyf = dy
        let hook = unit.corruptOperands(site, input: &xf, inputShape: [batch, inFeatures], weight: &dyf, weightShape: [batch, outFeatures])
        var dw = unit.product(site, xf, rows: inFeatures, inner: batch, dyf, cols: outFeatures, transposeA: true, hook: hook)
        unit.limitReach(site, hook: hook, product: &dw, rows: inFeatures, columns: outFeatures) {
            unit.product(site, x, rows: inFeatures, inner: batch, dy, cols: outFeatures, transposeA: true, hook: nil)
        }
        unit.finish(site, output: &dw, shape: [inFeatures, outFeatures], hook: hook)
        return (dw, Reduce.columnSums(dy, rows: batch, columns: outFeatures))
    }
}
