/// Concatenation along the channel axis of two NHWC tensors with the same `N, H, W`, and its
/// backward, the split. Data are seen as `rows` rows (`rows = N * H * W`), channel fastest:
/// `a` is `[rows, channelsA]`, `b` is `[rows, channelsB]`, the result `[rows, channelsA +
/// channelsB]` with each row `a`'s channels first, then `b`'s (TensorFlow's
/// `tf.concat([a, b], axis=-1)`). Pure data movement on the vector unit: no arithmetic, so no
/// rounding and nothing order-dependent.
public enum ChannelConcat {
    /// `[a | b]` per row.
    public static func forward(_ a: [Float], channelsA: Int, _ b: [Float], channelsB: Int, rows: Int) -> [Float] {
        precondition(channelsA >= 0 && channelsB >= 0 && rows >= 0, "negative concatenation sizes")
        precondition(a.count == rows * channelsA && b.count == rows * channelsB,
                     "concatenation operands \(a.count) and \(b.count) do not fit \(rows) rows of \(channelsA) + \(channelsB) channels")
        let width = channelsA + channelsB
        return [Float](unsafeUninitializedCapacity: rows * width) { out, written in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    for r in 0..<rows {
                        for c in 0..<channelsA { out[r * width + c] = pa[r * channelsA + c] }
                        for c in 0..<channelsB { out[r * width + channelsA + c] = pb[r * channelsB + c] }
                    }
                }
            }
            written = rows * width
        }
    }

    /// The split of dL/d[a | b] (`[rows, channelsA + channelsB]`) into dL/da and dL/db: the
    /// adjoint of ``forward(_:channelsA:_:channelsB:rows:)``. Nothing is cached by the forward.
    public static func backward(dy: [Float], channelsA: Int, channelsB: Int, rows: Int) -> (da: [Float], db: [Float]) {
        let width = channelsA + channelsB
        precondition(channelsA >= 0 && channelsB >= 0 && rows >= 0 && dy.count == rows * width,
                     "gradient of \(dy.count) values does not fit \(rows) rows of \(channelsA) + \(channelsB) channels")
        var da = [Float](repeating: 0, count: rows * channelsA), db = [Float](repeating: 0, count: rows * channelsB)
        dy.withUnsafeBufferPointer { pd in
            for r in 0..<rows {
                for c in 0..<channelsA { da[r * channelsA + c] = pd[r * width + c] }
                for c in 0..<channelsB { db[r * channelsB + c] = pd[r * width + channelsA + c] }
            }
        }
        return (da, db)
    }
}
