/// Keras's kernel initialisers, drawn from a ``CounterRNG`` stream so that every machine
/// draws the same values. Fans follow Keras: for a kernel `[..., in, out]` the receptive
/// field is the product of the leading dimensions, `fanIn = receptive * in`,
/// `fanOut = receptive * out`.
public enum Initializer: String, Sendable, Codable {
    /// Uniform in `[-limit, limit]`, `limit = sqrt(6 / (fanIn + fanOut))` (Keras's default).
    case glorotUniform
    /// Truncated normal: standard normal draws outside `[-2, 2]` are redrawn, then scaled by
    /// `sqrt(2 / (fanIn + fanOut)) / 0.87962566103423978` (the standard deviation of the
    /// truncated distribution, as Keras's `GlorotNormal` corrects for it). Normals come from
    /// Marsaglia's polar method with ``DeterministicMath/log(_:)`` and IEEE square roots.
    case glorotNormal
    /// Untruncated normal with standard deviation `sqrt(1 / fanIn)` (Keras's
    /// `VarianceScaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')`, the
    /// kernel initialiser of NF-ResNet's weight-standardised convolutions). Normals as for
    /// ``glorotNormal``, without the truncation.
    case varianceScalingFanInNormal

    /// `count(shape)` values for a kernel of `shape` from `rng`.
    public func kernel(shape: [Int], rng: inout CounterRNG) -> [Float] {
        precondition(shape.count >= 2, "a kernel has at least two dimensions")
        let count = shape.reduce(1, *)
        let receptive = shape.dropLast(2).reduce(1, *)
        let fanIn = receptive * shape[shape.count - 2], fanOut = receptive * shape[shape.count - 1]
        switch self {
        case .glorotUniform:
            let limit = Float((6 / Double(fanIn + fanOut)).squareRoot())
            return (0..<count).map { _ in (rng.nextUniform() * 2 - 1) * limit }
        case .glorotNormal:
            let scale = Float((2 / Double(fanIn + fanOut)).squareRoot() / 0.87962566103423978)
            return (0..<count).map { _ in Self.truncatedNormal(&rng) * scale }
        case .varianceScalingFanInNormal:
            let scale = Float((1 / Double(fanIn)).squareRoot())
            return (0..<count).map { _ in Self.normal(&rng) * scale }
        }
    }

    /// A standard normal draw in `[-2, 2]`: normal draws, redrawn while outside.
    static func truncatedNormal(_ rng: inout CounterRNG) -> Float {
        while true {
            let z = normal(&rng)
            if abs(z) <= 2 { return z }
        }
    }

    /// A standard normal draw (Marsaglia's polar method, one value per accepted pair).
    static func normal(_ rng: inout CounterRNG) -> Float {
        while true {
            let u = rng.nextUniform() * 2 - 1, v = rng.nextUniform() * 2 - 1
            let s = u * u + v * v
            guard s > 0, s < 1 else { continue }
            return u * (-2 * DeterministicMath.log(s) / s).squareRoot()
        }
    }
}
