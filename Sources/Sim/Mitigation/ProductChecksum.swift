/// Algorithm-based fault tolerance (Huang and Abraham's checksums) on one MXU product
/// `C = A x B` (`M x K` by `K x N`, operands as the array saw them, rounded to its format):
/// for every column j,
///
///     sum_i C[i, j]  =  sum_k (sum_i A[i, k]) B[k, j]
///
/// up to the rounding of C's fp32 accumulation, which is at most
/// `K * 2^-24 * sum_k (sum_i |A[i, k]|) |B[k, j]|` (every product of bf16 operands is exact in
/// fp32, each of the K additions rounds once). The sums here are in fp64, in index order, so
/// their own error is negligible and the verdict is the same on every host. A column whose
/// residual exceeds twice that bound, or whose sum is not finite while the operands are, has
/// a corrupted element.
public enum ProductChecksum {
    /// The columns of `c` that fail the check, at most `limit` of them.
    static func failures(a: MatrixView, b: MatrixView, c: UnsafePointer<Float>, shape: GEMMShape, format: any NumberFormat,
                         limit: Int = 4) -> [(column: Int, residual: Float)] {
        let (m, k, n) = (shape.m, shape.k, shape.n)
        guard m > 0, k > 0, n > 0 else { return [] }
        // The sums are in fp64 and in a fixed order; the loops only choose which operand
        // index runs contiguously (the order of each sum does not depend on it).
        var columnSums = [Double](repeating: 0, count: k), magnitudes = [Double](repeating: 0, count: k)
        if a.rowStride == 1 && a.columnStride != 1 {
            // A stored k-major (read transposed): column kk is contiguous.
            var column = [Float](repeating: 0, count: m)
            for kk in 0..<k {
                column.withUnsafeMutableBufferPointer { out in
                    guard let dst = out.baseAddress else { return }
                    let src = a.base + kk * a.columnStride
                    if a.isRounded { dst.update(from: src, count: m) } else { format.round(src, into: dst, count: m) }
                }
                var sum = 0.0, magnitude = 0.0
                for x in column { sum += Double(x); magnitude += abs(Double(x)) }
                columnSums[kk] = sum
                magnitudes[kk] = magnitude
            }
        } else {
            var row = [Float](repeating: 0, count: k)
            for i in 0..<m {
                load(a, row: i, count: k, into: &row, round: a.isRounded ? nil : format)
                for kk in 0..<k {
                    let x = Double(row[kk])
                    columnSums[kk] += x
                    magnitudes[kk] += abs(x)
                }
            }
        }
        var cSums = [Double](repeating: 0, count: n)
        for i in 0..<m {
            let r = c + i * n
            for j in 0..<n { cSums[j] += Double(r[j]) }
        }
        var expected = [Double](repeating: 0, count: n), magnitude = [Double](repeating: 0, count: n)
        var row = [Float](repeating: 0, count: n)
        for kk in 0..<k {
            load(b, row: kk, count: n, into: &row, round: format)
            let (s, g) = (columnSums[kk], magnitudes[kk])
            for j in 0..<n {
                let y = Double(row[j])
                expected[j] += s * y
                magnitude[j] += g * abs(y)
            }
        }
        let relative = 2 * Double(k) * 0x1p-24
        var found: [(column: Int, residual: Float)] = []
        for j in 0..<n {
            // Non-finite operands make a non-finite product legitimately: that is the
            // non-finite detector's business.
            guard expected[j].isFinite, magnitude[j].isFinite else { continue }
            let residual = cSums[j] - expected[j]
            if !(abs(residual) <= relative * magnitude[j]) {
                found.append((j, Float(residual)))
                if found.count == limit { break }
            }
        }
        return found
    }

    /// Row `row` of `view` (`count` values) into `out`, rounded to `round` if given.
    private static func load(_ view: MatrixView, row: Int, count: Int, into out: inout [Float], round: (any NumberFormat)?) {
        out.withUnsafeMutableBufferPointer { buffer in
            guard let dst = buffer.baseAddress else { return }
            let src = view.base + row * view.rowStride
            if view.columnStride == 1 {
                dst.update(from: src, count: count)
            } else {
                for j in 0..<count { dst[j] = src[j * view.columnStride] }
            }
            round?.round(dst, into: dst, count: count)
        }
    }
}

/// A product whose checksum disagreed.
public struct ChecksumFailure: Sendable, Equatable {
    public var replica: Int
    public var site: SiteID
    public var column: Int
    /// Column sum of the product minus its checksum (NaN or infinite if the product was).
    public var residual: Float
}

/// Gathers one replica's checksum failures during a step, filled by that replica's thread
/// only (like ``SiteDigests``).
public final class ProductChecks: @unchecked Sendable {
    public private(set) var failures: [ChecksumFailure] = []
    let replica: Int

    public init(replica: Int) { self.replica = replica }

    func check(_ site: SiteID, a: MatrixView, b: MatrixView, c: UnsafePointer<Float>, shape: GEMMShape, format: any NumberFormat) {
        for f in ProductChecksum.failures(a: a, b: b, c: c, shape: shape, format: format) {
            failures.append(ChecksumFailure(replica: replica, site: site, column: f.column, residual: f.residual))
        }
    }
}
