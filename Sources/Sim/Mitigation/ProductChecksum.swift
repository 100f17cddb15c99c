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
        let round: (Float) -> Float = a.isRounded ? { $0 } : { format.round($0) }
        var columnSums = [Double](repeating: 0, count: k), magnitudes = [Double](repeating: 0, count: k)
        for i in 0..<m {
            for kk in 0..<k {
                let x = Double(round(a.base[i * a.rowStride + kk * a.columnStride]))
                columnSums[kk] += x
                magnitudes[kk] += abs(x)
            }
        }
        var cSums = [Double](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { cSums[j] += Double(c[i * n + j]) } }
        let relative = 2 * Double(k) * 0x1p-24
        var found: [(column: Int, residual: Float)] = []
        for j in 0..<n {
            var expected = 0.0, magnitude = 0.0
            for kk in 0..<k {
                let y = Double(format.round(b.base[kk * b.rowStride + j * b.columnStride]))
                expected += columnSums[kk] * y
                magnitude += magnitudes[kk] * abs(y)
            }
            // Non-finite operands make a non-finite product legitimately: that is the
            // non-finite detector's business.
            guard expected.isFinite, magnitude.isFinite else { continue }
            let residual = cSums[j] - expected
            if !(abs(residual) <= relative * magnitude) {
                found.append((j, Float(residual)))
                if found.count == limit { break }
            }
        }
        return found
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
