/// Arrays that a vector pass writes whole.
extension Array where Element == Float {
    /// `count` floats of undefined value for a pass that writes every one before any is
    /// read: no zeroing pass first. The pass then runs in the caller's
    /// `withUnsafeMutableBufferPointer`, which the optimiser inlines with the element function
    /// it is given; a pass written inside `init(unsafeUninitializedCapacity:)` instead was
    /// compiled apart and called that function once per element.
    @inline(__always)
    static func uninitialized(_ count: Int) -> [Float] {
        // Float is a trivial type: its storage holds no references to initialise.
        [Float](unsafeUninitializedCapacity: count) { _, written in written = count }
    }
}

/// `y[r, c] += v[c]` over the rows of a row-major `[rows, v.count]` matrix (a bias).
func addToEveryRow(_ y: inout [Float], _ v: [Float]) {
    let columns = v.count
    precondition(columns > 0 && y.count % columns == 0, "a row vector of \(columns) values added to \(y.count) values")
    y.withUnsafeMutableBufferPointer { py in
        v.withUnsafeBufferPointer { pv in
            guard let base = py.baseAddress, let add = pv.baseAddress else { return }
            for r in 0 ..< py.count / columns {
                // A row pointer: the checked index arithmetic of `r * columns + c` per value
                // would keep the loop from vectorising.
                let row = base + r * columns
                for c in 0..<columns { row[c] += add[c] }
            }
        }
    }
}

/// `rows x columns` row-major to `columns x rows`.
func transpose(_ x: [Float], rows: Int, columns: Int) -> [Float] {
    precondition(x.count == rows * columns, "transpose: shape does not match")
    var out = [Float].uninitialized(x.count)
    out.withUnsafeMutableBufferPointer { po in
        x.withUnsafeBufferPointer { px in
            guard let to = po.baseAddress, let from = px.baseAddress else { return }
            transpose(from, rows: rows, columns: columns, into: to)
        }
    }
    return out
}

/// `rows x columns` row-major at `from` to `columns x rows` at `to` (not overlapping it), in
/// 16 x 16 tiles with pointers stepped: both sides stay in cache, no checked index per value.
func transpose(_ from: UnsafePointer<Float>, rows: Int, columns: Int, into to: UnsafeMutablePointer<Float>) {
    for r0 in stride(from: 0, to: rows, by: 16) {
        for c0 in stride(from: 0, to: columns, by: 16) {
            let cs = min(columns, c0 + 16) - c0
            for r in r0 ..< min(rows, r0 + 16) {
                let row = from + r * columns + c0
                var column = to + c0 * rows + r
                for c in 0..<cs {
                    column.pointee = row[c]
                    column += rows
                }
            }
        }
    }
}
