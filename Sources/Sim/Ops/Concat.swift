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
        var out = [Float].uninitialized(rows * width)
        out.withUnsafeMutableBufferPointer { po in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    guard let o = po.baseAddress else { return }
                    // Row pointers: checked `r * width + c` per value kept the copies scalar.
                    for r in 0..<rows {
                        let row = o + r * width
                        if let from = pa.baseAddress { row.update(from: from + r * channelsA, count: channelsA) }
                        if let from = pb.baseAddress { (row + channelsA).update(from: from + r * channelsB, count: channelsB) }
                    }
                }
            }
        }
        return out
    }

    /// The split of dL/d[a | b] (`[rows, channelsA + channelsB]`) into dL/da and dL/db: the
    /// adjoint of ``forward(_:channelsA:_:channelsB:rows:)``. Nothing is cached by the forward.
    public static func backward(dy: [Float], channelsA: Int, channelsB: Int, rows: Int) -> (da: [Float], db: [Float]) {
        let width = channelsA + channelsB
        precondition(channelsA >= 0 && channelsB >= 0 && rows >= 0 && dy.count == rows * width,
                     "gradient of \(dy.count) values does not fit \(rows) rows of \(channelsA) + \(channelsB) channels")
        var da = [Float].uninitialized(rows * channelsA), db = [Float].uninitialized(rows * channelsB)
        dy.withUnsafeBufferPointer { pd in
            da.withUnsafeMutableBufferPointer { pa in
                db.withUnsafeMutableBufferPointer { pb in
                    guard let d = pd.baseAddress else { return }
                    for r in 0..<rows {
                        let row = d + r * width
                        pa.baseAddress?.advanced(by: r * channelsA).update(from: row, count: channelsA)
                        pb.baseAddress?.advanced(by: r * channelsB).update(from: row + channelsA, count: channelsB)
                    }
                }
            }
        }
        return (da, db)
    }
}
