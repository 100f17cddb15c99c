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

/// `runs` runs of `length` values of `source`, one after another, starting at the offsets
/// `starts` emits in order (the kept terms of the zero-skipping products, heads split or
/// merged).
func gatherRuns(of source: [Float], length: Int, runs: Int, _ starts: (_ emit: (Int) -> Void) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: runs * length) { out, written in
        var emitted = 0
        source.withUnsafeBufferPointer { p in
            guard let base = out.baseAddress, let src = p.baseAddress else { return }
            starts { start in
                precondition(emitted < runs && start >= 0 && start + length <= p.count, "a run outside its source")
                // Runs are short (a tap's channels, a head's depth): a plain loop, no call per run.
                let (from, to) = (src + start, base + emitted * length)
                for j in 0..<length { to[j] = from[j] }
                emitted += 1
            }
        }
        precondition(emitted == runs || runs * length == 0, "\(emitted) runs gathered of \(runs)")
        written = emitted * length
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

/// `rows x columns` row-major at `from` to `columns x rows` at `to` (not overlapping it).
func transpose(_ from: UnsafePointer<Float>, rows: Int, columns: Int, into to: UnsafeMutablePointer<Float>) {
    transpose(from, rowStride: columns, rows: rows, columns: columns, into: to, rowStride: rows)
}

/// The `rows x columns` matrix at `from` (row `r` at `from + r * fromStride`, its values
/// contiguous) transposed to `to` (row `c` at `to + c * toStride`), not overlapping it: 8 x 8
/// blocks moved as 8 vector loads, three rounds of interleaves and 8 vector stores, the ragged
/// edges value by value. Only values move, so the bits are the same as any other order.
func transpose(_ from: UnsafePointer<Float>, rowStride fromStride: Int, rows: Int, columns: Int,
               into to: UnsafeMutablePointer<Float>, rowStride toStride: Int) {
    var r0 = 0
    while r0 + 8 <= rows {
        var c0 = 0
        while c0 + 8 <= columns {
            transposeBlock8(from + r0 * fromStride + c0, fromStride, into: to + c0 * toStride + r0, toStride)
            c0 += 8
        }
        for c in c0 ..< columns {
            for r in r0 ..< r0 + 8 { to[c * toStride + r] = from[r * fromStride + c] }
        }
        r0 += 8
    }
    for r in r0 ..< rows {
        let row = from + r * fromStride
        for c in 0..<columns { to[c * toStride + r] = row[c] }
    }
}

/// One 8 x 8 block of ``transpose(_:rowStride:rows:columns:into:rowStride:)``: after three
/// rounds of `S[2i] = zip(R[i], R[i + 4]).low`, `S[2i + 1] = ….high`, row `c` holds column `c`.
@inline(__always)
private func transposeBlock8(_ from: UnsafePointer<Float>, _ fromStride: Int, into to: UnsafeMutablePointer<Float>, _ toStride: Int) {
    @inline(__always) func load(_ r: Int) -> SIMD8<Float> {
        UnsafeRawPointer(from + r * fromStride).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func low(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3])
    }
    @inline(__always) func high(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        SIMD8(a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
    }
    var (x0, x1, x2, x3, x4, x5, x6, x7) = (load(0), load(1), load(2), load(3), load(4), load(5), load(6), load(7))
    for _ in 0..<3 {
        (x0, x1, x2, x3, x4, x5, x6, x7) = (low(x0, x4), high(x0, x4), low(x1, x5), high(x1, x5),
                                            low(x2, x6), high(x2, x6), low(x3, x7), high(x3, x7))
    }
    @inline(__always) func store(_ c: Int, _ v: SIMD8<Float>) {
        UnsafeMutableRawPointer(to + c * toStride).storeBytes(of: v, as: SIMD8<Float>.self)
    }
    store(0, x0); store(1, x1); store(2, x2); store(3, x3); store(4, x4); store(5, x5); store(6, x6); store(7, x7)
}
