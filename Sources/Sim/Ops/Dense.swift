/// Fully connected layer on the MXU. Shapes: x `[N, Din]`, w `[Din, Dout]`, b `[Dout]`,
/// y `[N, Dout]`.
public enum Dense {
    /// y = x w + b. The MXU operation (site `<layer>`; operands x, w, y) produces x w; the
    /// vector unit adds the bias after it.
    public static func forward(x: [Float], w: [Float], b: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                               layer: String, unit: MatrixUnit) -> [Float] {
        var y = unit.operation(SiteID(layer: layer, kind: .forward), input: x, inputShape: [batch, inFeatures],
                               weight: w, weightShape: [inFeatures, outFeatures], outputShape: [batch, outFeatures]) { x, w, mxu in
            mxu.multiply(x, rows: batch, inner: inFeatures, w, cols: outFeatures)
        }
        addToEveryRow(&y, b)
        return y
    }

    /// dL/dx = dL/dy w^T (site `<layer>_grad_in`; operands dL/dy, w, dL/dx).
    public static func backwardInput(dy: [Float], w: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                                     layer: String, unit: MatrixUnit) -> [Float] {
        unit.operation(SiteID(layer: layer, kind: .gradIn), input: dy, inputShape: [batch, outFeatures],
                       weight: w, weightShape: [inFeatures, outFeatures], outputShape: [batch, inFeatures]) { dy, w, mxu in
            mxu.multiply(dy, rows: batch, inner: outFeatures, w, cols: inFeatures, transposeB: true)
        }
    }

    /// dL/dw = x^T dL/dy (site `<layer>_grad_wt`; operands x, dL/dy, dL/dw) and dL/db, the
    /// column sums of dL/dy on the vector unit (which reads dL/dy from memory, not from the
    /// MXU's operand copy that a fault corrupts).
    public static func backwardWeight(x: [Float], dy: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
                                      layer: String, unit: MatrixUnit) -> (dw: [Float], db: [Float]) {
        let dw = unit.operation(SiteID(layer: layer, kind: .gradWt), input: x, inputShape: [batch, inFeatures],
                                weight: dy, weightShape: [batch, outFeatures], outputShape: [inFeatures, outFeatures]) { x, dy, mxu in
            mxu.multiply(x, rows: inFeatures, inner: batch, dy, cols: outFeatures, transposeA: true)
        }
        return (dw, Reduce.columnSums(dy, rows: batch, columns: outFeatures))
    }
}
