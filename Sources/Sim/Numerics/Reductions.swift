/// The simulator's reductions. One order everywhere, so that results never depend on thread
/// count or SIMD width: fp32, starting from +0, adding in ascending index order. Sums over
/// the rows of a row-major matrix (per-channel statistics of NHWC data, bias gradients) run
/// the rows in order for every column at once, which vectorises across columns without
/// changing any column's order.
public enum Reduce {
    /// `out[c] = sum over r ascending of x[r * columns + c]`.
    public static func columnSums(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(repeating: 0, count: columns)
        for r in 0..<rows {
            let row = x + r * columns
            for c in 0..<columns { out[c] += row[c] }
        }
    }

    public static func columnSums(_ x: [Float], rows: Int, columns: Int) -> [Float] {
        precondition(x.count == rows * columns)
        var out = [Float](repeating: 0, count: columns)
        x.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in columnSums(px.baseAddress!, rows: rows, columns: columns, into: po.baseAddress!) }
        }
        return out
    }

    /// Sum in ascending order.
    public static func sum(_ x: [Float]) -> Float {
        var s: Float = 0
        for v in x { s += v }
        return s
    }
}
