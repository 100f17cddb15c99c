/// Scaled weight standardisation with a learnable gain (NF-ResNet's `WSConv2D`), on the vector
/// unit: per output channel `o` of a kernel `w` seen as `[fanIn, O]` (HWIO with `fanIn = H * W * I`
/// rows, channel fastest),
///
///     mean[o]  = sum_i w[i, o] / fanIn
///     var[o]   = sum_i (w[i, o] - mean[o])^2 / fanIn          (biased, as tf.reduce_variance)
///     scale[o] = rsqrt(max(var[o] * fanIn, epsilon)) * gain[o]
///     out[i, o] = (w[i, o] - mean[o]) * scale[o]
///
/// in that order of fp32 operations (the reference's `standardize_weight`, epsilon 1e-4). The
/// sums run in a ``ReductionOrder`` (``Reduce/columnSums(_:rows:columns:order:)``) and the
/// reciprocal square root is ``DeterministicMath/rsqrt(_:)``. The standardised kernel is what
/// the MXU multiplies (the convolution's weight operand); the raw kernel and the gain never
/// reach the MXU.
public enum WeightStandardization {
    /// What the forward keeps for the backward.
    public struct Cache: Sendable {
        /// `w - mean`, `[fanIn, O]`.
        public var centered: [Float]
        /// `rsqrt(max(var * fanIn, epsilon))` per output channel (without the gain).
        public var rstd: [Float]
        /// Whether `var * fanIn > epsilon` per output channel: only then does the gradient
        /// flow through the variance (the reference's `w_max_bitmap`).
        public var unclamped: [Bool]
    }

    /// The standardised kernel `[fanIn, O]` (times `gain`) and the cache of the backward.
    public static func forward(w: [Float], gain: [Float], fanIn: Int, outChannels: Int, epsilon: Float,
                               order: ReductionOrder) -> (y: [Float], cache: Cache) {
        precondition(fanIn > 0 && outChannels > 0 && w.count == fanIn * outChannels, "kernel is not [fanIn, outChannels]")
        precondition(gain.count == outChannels, "one gain per output channel")
        let n = Float(fanIn)
        let mean = Reduce.columnSums(w, rows: fanIn, columns: outChannels, order: order).map { $0 / n }
        let centered = BatchNorm.perChannel(w, channels: outChannels) { v, o in v - mean[o] }
        let variance = Reduce.columnSums(elementwise(centered, centered, *), rows: fanIn, columns: outChannels, order: order).map { $0 / n }
        let scaledVariance = variance.map { $0 * n }
        let rstd = scaledVariance.map { DeterministicMath.rsqrt(max($0, epsilon)) }
        let scale = (0..<outChannels).map { rstd[$0] * gain[$0] }
        let y = BatchNorm.perChannel(centered, channels: outChannels) { v, o in v * scale[o] }
        return (y, Cache(centered: centered, rstd: rstd, unclamped: scaledVariance.map { $0 > epsilon }))
    }

    /// dL/dw and dL/dgain from `dy` = dL/d(standardised kernel), `[fanIn, O]`. With
    /// `c = w - mean`, `s = rstd`, `g = gain`, per output channel, as the reference's
    /// `backward_standardize_weight` computes it:
    ///
    ///     a      = sum_i dy[i] * c[i]
    ///     dgain  = a * s
    ///     t      = a * g * s^3        (0 where the variance was clamped at epsilon)
    ///     d1[i]  = dy[i] * g * s - c[i] * t
    ///     dw[i]  = d1[i] - sum_j d1[j] / fanIn
    ///
    /// (`-c * t` is the path through the variance, the last line the path through the mean.)
    public static func backward(dy: [Float], cache: Cache, gain: [Float], fanIn: Int, outChannels: Int,
                                order: ReductionOrder) -> (dw: [Float], dgain: [Float]) {
        precondition(dy.count == fanIn * outChannels && cache.centered.count == dy.count, "gradient is not [fanIn, outChannels]")
        precondition(gain.count == outChannels && cache.rstd.count == outChannels, "one gain per output channel")
        let a = Reduce.columnSums(elementwise(dy, cache.centered, *), rows: fanIn, columns: outChannels, order: order)
        let s = cache.rstd
        let dgain = (0..<outChannels).map { a[$0] * s[$0] }
        let gs = (0..<outChannels).map { gain[$0] * s[$0] }
        let t = (0..<outChannels).map { o in cache.unclamped[o] ? a[o] * gain[o] * s[o] * s[o] * s[o] : 0 }
        let direct = BatchNorm.perChannel(dy, channels: outChannels) { v, o in v * gs[o] }
        let throughVariance = BatchNorm.perChannel(cache.centered, channels: outChannels) { c, o in -c * t[o] }
        let first = elementwise(direct, throughVariance, +)
        let n = Float(fanIn)
        let mean = Reduce.columnSums(first, rows: fanIn, columns: outChannels, order: order).map { $0 / n }
        return (BatchNorm.perChannel(first, channels: outChannels) { v, o in v - mean[o] }, dgain)
    }
}
