/// Rectified linear unit. NaN passes through (a fault that produced NaN stays visible).
public enum ReLU {
    public static func forward(_ x: [Float]) -> [Float] { x.map { $0 < 0 ? 0 : $0 } }

    /// dL/dx = dL/dy where x > 0, else 0.
    public static func backward(dy: [Float], x: [Float]) -> [Float] {
        var dx = dy
        for i in dx.indices where !(x[i] > 0) { dx[i] = 0 }
        return dx
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

    public static func forward(_ x: [Float], mask: [Float]) -> [Float] { zip(x, mask).map(*) }

    /// dL/dx = dL/dy * mask.
    public static func backward(dy: [Float], mask: [Float]) -> [Float] { zip(dy, mask).map(*) }
}
