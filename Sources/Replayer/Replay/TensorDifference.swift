import Foundation
import Sim

/// How one tensor of run B differs from the same tensor of run A, element by element. An
/// element differs when its fp32 bit pattern does (what the digests see); the errors are
/// measured against A's value.
public struct TensorDifference: Sendable, Codable, Equatable {
    /// One differing element: where, and both values.
    public struct Element: Sendable, Codable, Equatable {
        /// Multi-index in ``TensorDifference/shape``.
        public var position: [Int]
        public var a: Float
        public var b: Float
    }

    /// The MXU operation (`conv1`, `dense_grad_wt`, ...); `update` for a tensor of the state
    /// after the step; `state` for one of the state before it (only when the two runs entered
    /// the step in different states).
    public var site: String
    /// The replica that computed it (nil for `update` and `state`).
    public var replica: Int?
    /// For `update` and `state`: the state tensor (`conv1/kernel`, `conv1/kernel/m`,
    /// `conv1_bn/moving_mean`, ...).
    public var tensor: String?
    /// For `update` and `state`: what the tensor holds (`weights`, `slot:<name>` for an
    /// optimizer slot, `bn-stats` for batch-norm moving statistics).
    public var kind: String?
    public var shape: [Int]
    public var elements: Int
    public var differing: Int
    /// Max `|b - a|` over the differing elements finite on both sides (0 if none is).
    public var maxAbsError: Double
    /// Max `|b - a| / |a|` over the same elements; infinite where `a` is 0 and `b` is not.
    public var maxRelError: Double
    /// Max distance in units in the last place over the differing elements that are NaN on
    /// neither side: how many fp32 values lie between them (+0 and -0 are the same point, an
    /// infinity is one step past the largest finite value of its sign).
    public var maxULP: UInt64
    /// NaN and infinite elements of the whole tensor, on each side.
    public var nanA: Int
    public var nanB: Int
    public var infA: Int
    public var infB: Int
    /// The first differing elements in row-major order, at most ``shown``.
    public var firstDifferences: [Element]

    /// How many differing elements are listed.
    public static let shown = 5

    /// The difference of `b` from `a` (both laid out as `shape`), or nil when they are
    /// bit-identical.
    public static func compare(_ a: [Float], _ b: [Float], shape: [Int], site: String, replica: Int? = nil,
                               tensor: String? = nil, kind: String? = nil) -> TensorDifference? {
        precondition(a.count == b.count, "\(site): comparing tensors of \(a.count) and \(b.count) elements")
        let identical = a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return true }    // both empty
                return memcmp(x, y, pa.count) == 0
            }
        }
        if identical { return nil }
        var d = TensorDifference(site: site, replica: replica, tensor: tensor, kind: kind, shape: shape, elements: a.count, differing: 0,
                                 maxAbsError: 0, maxRelError: 0, maxULP: 0, nanA: 0, nanB: 0, infA: 0, infB: 0, firstDifferences: [])
        for i in a.indices {
            let x = a[i], y = b[i]
            if x.isNaN { d.nanA += 1 } else if x.isInfinite { d.infA += 1 }
            if y.isNaN { d.nanB += 1 } else if y.isInfinite { d.infB += 1 }
            guard x.bitPattern != y.bitPattern else { continue }
            d.differing += 1
            if d.firstDifferences.count < shown {
                d.firstDifferences.append(Element(position: Tensor.index(ofOffset: i, in: shape), a: x, b: y))
            }
            if !x.isNaN && !y.isNaN { d.maxULP = max(d.maxULP, ulpDistance(x, y)) }
            if x.isFinite && y.isFinite {
                // In double: the difference of two finite floats may overflow fp32.
                let abs = Swift.abs(Double(y) - Double(x))
                d.maxAbsError = max(d.maxAbsError, abs)
                d.maxRelError = max(d.maxRelError, x == 0 ? (abs == 0 ? 0 : .infinity) : abs / Swift.abs(Double(x)))
            }
        }
        return d
    }

    /// Fp32 values from `x` to `y` (neither NaN): the distance of their sign-magnitude bit
    /// patterns mapped onto one ordered integer line.
    public static func ulpDistance(_ x: Float, _ y: Float) -> UInt64 {
        func ordered(_ v: Float) -> Int64 {
            let magnitude = Int64(v.bitPattern & 0x7FFF_FFFF)
            return v.sign == .minus ? -magnitude : magnitude
        }
        return UInt64(ordered(x).distance(to: ordered(y)).magnitude)
    }
}
