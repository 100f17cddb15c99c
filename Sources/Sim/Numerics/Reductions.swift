/// The order in which a reduction adds. Each is one fixed order, so results never depend on
/// thread count or SIMD width; they differ in rounding error.
public enum ReductionOrder: String, Sendable, Codable, CaseIterable {
    /// fp32 from +0, ascending index order: error grows with the length (up to ~n ulps).
    /// The first networks' order, kept so that their traces replay bit for bit.
    case sequential
    /// Blocks of ``Reduce/blockLength`` consecutive elements summed in ascending order, then
    /// the block sums combined by a pairwise tree over adjacent pairs (block 0 + block 1,
    /// block 2 + block 3, ...; an odd last one carried up a level), as a vector unit that
    /// holds eight rows per register and folds registers pairwise would: error grows with
    /// `8 + log2(n / 8)`.
    case pairwise
}

/// The simulator's reductions, in a ``ReductionOrder``. Sums over the rows of a row-major
/// matrix (per-channel statistics of NHWC data, bias gradients) run the same order for
/// every column at once, which vectorises across columns without changing any column's order.
public enum Reduce {
    /// Rows summed sequentially before the pairwise tree (one register of eight sublanes).
    public static let blockLength = 8

    /// `out[c] = sum over r of x[r * columns + c]`, in `order`.
    public static func columnSums(_ x: UnsafePointer<Float>, rows: Int, columns: Int, order: ReductionOrder = .sequential,
                                  into out: UnsafeMutablePointer<Float>) {
        // A row pointer, not `r * columns + c` per value: checked index arithmetic in the
        // inner loop would keep it from vectorising.
        columnSums(rows: rows, columns: columns, order: order, into: out) { r, c in (x + r * columns)[c] }
    }

    /// `out[c] = sum over r of value(r, c)`, in `order`: the sums of
    /// ``columnSums(_:rows:columns:order:into:)`` over values formed as they are added (a
    /// product, a centred square), so that no array of them is stored first.
    @inline(__always)
    static func columnSums(rows: Int, columns: Int, order: ReductionOrder, into out: UnsafeMutablePointer<Float>,
                           _ value: (_ row: Int, _ column: Int) -> Float) {
        out.update(repeating: 0, count: columns)
        let blocks = (rows + blockLength - 1) / blockLength
        // One block of the pairwise order is the sequential sum.
        if order == .sequential || blocks <= 1 {
            for r in 0..<rows {
                for c in 0..<columns { out[c] += value(r, c) }
            }
            return
        }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: blocks * columns)
        defer { p.deallocate() }
        p.initialize(repeating: 0, count: blocks * columns)
        var b = 0
        if columns < 8 {
            // Few columns: eight whole blocks side by side, one per lane (each lane's sum in
            // its block's order), where the loop over columns would leave the vector idle.
            while (b + 8) * blockLength <= rows {
                for c in 0..<columns {
                    var sums = SIMD8<Float>()
                    for k in 0..<blockLength {
                        let r = b * blockLength + k
                        sums = sums + SIMD8<Float>(value(r, c), value(r + blockLength, c), value(r + 2 * blockLength, c),
                                                   value(r + 3 * blockLength, c), value(r + 4 * blockLength, c),
                                                   value(r + 5 * blockLength, c), value(r + 6 * blockLength, c),
                                                   value(r + 7 * blockLength, c))
                    }
                    for l in 0..<8 { p[(b + l) * columns + c] = sums[l] }
                }
                b += 8
            }
        }
        while b < blocks {
            let sums = p + b * columns
            for row in b * blockLength ..< min(rows, (b + 1) * blockLength) {
                for c in 0..<columns { sums[c] += value(row, c) }
            }
            b += 1
        }
        var count = blocks
        while count > 1 {
            let pairs = count / 2
            for i in 0..<pairs {
                let d = p + i * columns, left = p + 2 * i * columns, right = p + (2 * i + 1) * columns
                for c in 0..<columns { d[c] = left[c] + right[c] }
            }
            if count % 2 == 1 { (p + pairs * columns).update(from: p + (count - 1) * columns, count: columns) }
            count = pairs + count % 2
        }
        out.update(from: p, count: columns)
    }

    /// ``columnSums(rows:columns:order:into:_:)`` into a new array.
    @inline(__always)
    static func columnSums(rows: Int, columns: Int, order: ReductionOrder, _ value: (_ row: Int, _ column: Int) -> Float) -> [Float] {
        // Not `[Float](unsafeUninitializedCapacity:)`: its closure is compiled apart, and
        // `value` inside it became a call per element.
        var sums = [Float](repeating: 0, count: columns)
        sums.withUnsafeMutableBufferPointer { out in
            if let o = out.baseAddress { columnSums(rows: rows, columns: columns, order: order, into: o, value) }
        }
        return sums
    }

    public static func columnSums(_ x: [Float], rows: Int, columns: Int, order: ReductionOrder = .sequential) -> [Float] {
        precondition(x.count == rows * columns)
        var out = [Float](repeating: 0, count: columns)
        x.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                guard let base = px.baseAddress, let o = po.baseAddress else { return }
                columnSums(base, rows: rows, columns: columns, order: order, into: o)
            }
        }
        return out
    }

    /// The sum of `x` in `order`.
    public static func sum(_ x: [Float], order: ReductionOrder = .sequential) -> Float {
        columnSums(x, rows: x.count, columns: 1, order: order).first ?? 0
    }
}
