/// Rectified linear unit. NaN passes through (a fault that produced NaN stays visible).
public enum ReLU {
    public static func forward(_ x: [Float]) -> [Float] {
        elementwise(x, x) { v, _ in v < 0 ? 0 : v }
    }

    /// dL/dx = dL/dy where x > 0, else 0.
    public static func backward(dy: [Float], x: [Float]) -> [Float] {
        elementwise(dy, x) { g, v in v > 0 ? g : 0 }
    }
}

/// `out[i] = f(a[i], b[i])` over two arrays of equal length, without per-element bounds or
/// uniqueness checks (the vector unit's elementwise passes).
@inline(__always)
func elementwise(_ a: [Float], _ b: [Float], _ f: (Float, Float) -> Float) -> [Float] {
    precondition(a.count == b.count, "elementwise operands differ in length")
    return [Float](unsafeUninitializedCapacity: a.count) { out, written in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<pa.count { out[i] = f(pa[i], pb[i]) }
            }
        }
        written = a.count
    }
}

/// Inverted dropout: keeps each element with probability `keep` and scales it by `1 / keep`;
/// the mask is drawn from a ``CounterRNG`` keyed by the caller (seed, step, replica, layer),
/// so re-executing a step redraws the same mask.
public enum Dropout {
    public static func mask(count: Int, keep: Float, rng: CounterRNG) -> [Float] {
        var rng = rng
        let scale = 1 / keep
        return (0..<count).map { _ in rng.nextUniform() < keep ? scale : 0 }
    }

    public static func forward(_ x: [Float], mask: [Float]) -> [Float] { elementwise(x, mask, *) }

    /// dL/dx = dL/dy * mask.
    public static func backward(dy: [Float], mask: [Float]) -> [Float] { elementwise(dy, mask, *) }
}
