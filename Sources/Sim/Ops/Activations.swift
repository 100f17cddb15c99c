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

/// ReLU times a constant gain, `max(x, 0) * gain` (NF-ResNet's scaled activation: the gain
/// makes the output of a unit Gaussian input have unit variance again). Forward rounds the ReLU
/// and then the product, as `relu(x) * gain` does in fp32. NaN passes through.
public enum ScaledReLU {
    /// NF-ResNet's gain for ReLU, `1.7139588594436646` (the reference's `nonlinearities["relu"]`).
    public static let nfGain: Float = 1.7139588594436646

    public static func forward(_ x: [Float], gain: Float) -> [Float] {
        elementwise(x, x) { v, _ in (v < 0 ? 0 : v) * gain }
    }

    /// dL/dx = gain * dL/dy where x > 0, else 0 (`x` is the forward input).
    public static func backward(dy: [Float], x: [Float], gain: Float) -> [Float] {
        elementwise(dy, x) { g, v in v > 0 ? gain * g : 0 }
    }
}

/// Multiplication by a scalar: a trainable one (NF-ResNet's SkipInit `skip_gain`) or a
/// constant (its `alpha` and `beta`). Shapes: any, `x` and `dy` the same length.
public enum ScalarGain {
    public static func forward(_ x: [Float], gain: Float) -> [Float] {
        elementwise(x, x) { v, _ in v * gain }
    }

    /// dL/dx = gain * dL/dy.
    public static func backward(dy: [Float], gain: Float) -> [Float] {
        forward(dy, gain: gain)
    }

    /// dL/dx = gain * dL/dy and, for a trainable gain, dL/dgain = sum(dL/dy * x) over every
    /// element (`x` is the forward input), summed in `order`.
    public static func backward(dy: [Float], x: [Float], gain: Float, order: ReductionOrder) -> (dx: [Float], dgain: Float) {
        precondition(dy.count == x.count, "scalar gain backward: dy and x differ in length")
        let dgain = dy.withUnsafeBufferPointer { pdy in
            x.withUnsafeBufferPointer { px in
                Reduce.columnSums(rows: pdy.count, columns: 1, order: order) { r, _ in pdy[r] * px[r] }.first ?? 0
            }
        }
        return (forward(dy, gain: gain), dgain)
    }
}

/// NF-ResNet's block entry and exit as single passes: each computes, element by element, the
/// same chain of rounded fp32 operations as the unfused ops it names (so the same values), in
/// one pass over memory and without the intermediate arrays.
public enum NFBlockPasses {
    /// Block entry, `h = beta * act(x)`: `ScalarGain.forward(ScaledReLU.forward(x, gain:), gain: beta)`.
    public static func entry(_ x: [Float], gain: Float, beta: Float) -> [Float] {
        elementwise(x, x) { v, _ in ((v < 0 ? 0 : v) * gain) * beta }
    }

    /// Backward of ``entry(_:gain:beta:)`` for `dy` (`x` the forward input), plus `adding`
    /// (the identity shortcut's gradient) when given: `ScaledReLU.backward(ScalarGain.backward(dy,
    /// beta), x, gain) + adding`.
    public static func entryBackward(dy: [Float], x: [Float], gain: Float, beta: Float, adding: [Float]?) -> [Float] {
        guard let adding else { return elementwise(dy, x) { g, v in v > 0 ? gain * (g * beta) : 0 } }
        precondition(dy.count == x.count && adding.count == x.count, "block entry backward: operands differ in length")
        return [Float](unsafeUninitializedCapacity: x.count) { out, written in
            dy.withUnsafeBufferPointer { pdy in
                x.withUnsafeBufferPointer { px in
                    adding.withUnsafeBufferPointer { pa in
                        for i in 0..<px.count { out[i] = (px[i] > 0 ? gain * (pdy[i] * beta) : 0) + pa[i] }
                    }
                }
            }
            written = x.count
        }
    }

    /// Block exit, `alpha * skip * main + shortcut`: `ScalarGain.forward(ScalarGain.forward(main,
    /// gain: skip), gain: alpha) + shortcut`.
    public static func exit(main: [Float], skip: Float, alpha: Float, shortcut: [Float]) -> [Float] {
        elementwise(main, shortcut) { m, s in ((m * skip) * alpha) + s }
    }

    /// Backward of ``exit(main:skip:alpha:shortcut:)`` to `main` and the trainable `skip`
    /// (`main` the forward input; the shortcut's gradient is `dy` itself):
    /// `ScalarGain.backward(dy: ScalarGain.backward(dy, alpha), x: main, gain: skip, order:)`,
    /// the `skip` gradient summed in `order`.
    public static func exitBackward(dy: [Float], main: [Float], skip: Float, alpha: Float, order: ReductionOrder) -> (dmain: [Float], dskip: Float) {
        precondition(dy.count == main.count, "block exit backward: dy and main differ in length")
        let dskip = dy.withUnsafeBufferPointer { pdy in
            main.withUnsafeBufferPointer { pm in
                Reduce.columnSums(rows: pdy.count, columns: 1, order: order) { r, _ in (pdy[r] * alpha) * pm[r] }.first ?? 0
            }
        }
        return (elementwise(dy, dy) { g, _ in (g * alpha) * skip }, dskip)
    }
}

/// `out[i] = f(a[i], b[i])` over two arrays of equal length, without per-element bounds or
/// uniqueness checks (the vector unit's elementwise passes).
@inline(__always)
func elementwise(_ a: [Float], _ b: [Float], _ f: (Float, Float) -> Float) -> [Float] {
    precondition(a.count == b.count, "elementwise operands differ in length")
    var result = [Float].uninitialized(a.count)
    result.withUnsafeMutableBufferPointer { out in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<pa.count { out[i] = f(pa[i], pb[i]) }
            }
        }
    }
    return result
}

/// Inverted dropout at rate `rate`: an element is kept when its uniform draw `u` satisfies
/// `u >= rate` (the reference's comparison) and then scaled by `1 / (1 - rate)`.
///
/// Where the draws come from (``DropoutKeying``):
/// - ``DropoutKeying/dataSeeded``, the reference's rule: the stream is keyed by the run's
///   seed and by `int32(1000 * x[0])` and `int32(1000 * x[1])`, the first two values of the
///   layer's input, so an upstream change of those two values redraws every later mask
///   (``dataSeededStream(seed:input:)``);
/// - ``DropoutKeying/counter``: keyed by seed, step, replica and the layer's index, so a
///   mask never depends on the data.
public enum Dropout {
    /// The mask: `1 / (1 - rate)` where kept, 0 where dropped; `count` draws of `rng`.
    public static func mask(count: Int, rate: Float, rng: CounterRNG) -> [Float] {
        precondition(rate >= 0 && rate < 1, "dropout rate must be in [0, 1)")
        let scale = 1 / (1 - rate)
        // Draw i is the stream's value at `rng.counter + i` (``CounterRNG/value(at:)``), so
        // eight are formed side by side; `(value >> 40) * 2^-24` is exact in fp32, as in
        // ``CounterRNG/nextUniform()``. Two shortcuts with the same bits (64-bit vector
        // multiplies are costly without AVX-512): the mix's input advances by 8 * golden a
        // round instead of being multiplied out, and its last step `z ^= z >> 31` leaves the
        // top 24 bits as they are, so it is skipped.
        return [Float](unsafeUninitializedCapacity: count) { out, written in
            written = count
            guard let base = out.baseAddress else { return }
            let golden: UInt64 = 0x9E37_79B9_7F4A_7C15
            var input = SIMD8<UInt64>(repeating: rng.key) &+ (SIMD8<UInt64>(repeating: rng.counter) &+ SIMD8(1, 2, 3, 4, 5, 6, 7, 8)) &* golden
            let advance = SIMD8<UInt64>(repeating: 8 &* golden)
            let kept = SIMD8<Float>(repeating: scale), dropped = SIMD8<Float>()
            var i = 0
            while i + 8 <= count {
                var z = input
                input &+= advance
                z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
                let u = SIMD8<Float>(SIMD8<UInt32>(truncatingIfNeeded: z &>> 40)) * 0x1p-24
                let draw = dropped.replacing(with: kept, where: u .>= rate)
                UnsafeMutableRawPointer(base + i).storeBytes(of: draw, as: SIMD8<Float>.self)
                i += 8
            }
            while i < count {
                base[i] = Float(rng.value(at: rng.counter &+ UInt64(i)) >> 40) * 0x1p-24 >= rate ? scale : 0
                i += 1
            }
        }
    }

    /// The reference's data-seeded stream for a layer whose input is `x`.
    public static func dataSeededStream(seed: UInt64, input x: [Float]) -> CounterRNG {
        let a = x.count > 0 ? truncatingInt32(1000 * x[0]) : 0, b = x.count > 1 ? truncatingInt32(1000 * x[1]) : 0
        return CounterRNG(seed: seed, purpose: .dropout, Int(a), Int(b), -1)
    }

    /// The counter-keyed stream of dropout layer `layer` (its index in the model, below 2^16).
    public static func counterStream(origin: BatchOrigin, layer: Int) -> CounterRNG {
        CounterRNG(seed: origin.seed, purpose: .dropout, origin.epoch, origin.step, origin.replica << 16 | layer)
    }

    /// The mask of dropout layer `layer` (its index in the network) for its input `x`, drawn
    /// from the stream `keying` names: the reference's data-seeded one, or the counter-keyed
    /// one. Nil when there is nothing to drop: no `origin` (inference) or rate 0.
    public static func mask(for x: [Float], rate: Float, keying: DropoutKeying, origin: BatchOrigin?, layer: Int) -> [Float]? {
        guard rate > 0, let origin else { return nil }
        let rng = switch keying {
        case .dataSeeded: dataSeededStream(seed: origin.seed, input: x)
        case .counter: counterStream(origin: origin, layer: layer)
        }
        return mask(count: x.count, rate: rate, rng: rng)
    }

    /// A float cast to int32 as TensorFlow's cast does on x86: truncation toward zero; NaN and
    /// values outside the int32 range give `Int32.min` (the instruction's "integer
    /// indefinite"), so a fault's NaN or infinity keys a definite stream.
    public static func truncatingInt32(_ v: Float) -> Int32 {
        guard v >= -0x1p31, v < 0x1p31 else { return .min }  // false for NaN too
        return Int32(v.rounded(.towardZero))
    }

    public static func forward(_ x: [Float], mask: [Float]) -> [Float] { elementwise(x, mask, *) }

    /// dL/dx = dL/dy * mask.
    public static func backward(dy: [Float], mask: [Float]) -> [Float] { elementwise(dy, mask, *) }
}

/// Where dropout masks come from (see ``Dropout``).
public enum DropoutKeying: String, Sendable, Codable, CaseIterable {
    case dataSeeded = "data-seeded"
    case counter
}

/// The logistic sigmoid, `1 / (1 + exp(-x))`, with the deterministic exp
/// (``DeterministicMath/exp(_:)``): the same bits on every machine.
public enum Sigmoid {
    public static func forward(_ x: [Float]) -> [Float] {
        map16(x, x) { v, _ in value(v) } scalar: { v, _ in value(v) }
    }

    /// dL/dx from dL/dy and the forward output `y`: `dy * y * (1 - y)`.
    public static func backward(dy: [Float], y: [Float]) -> [Float] {
        elementwise(dy, y) { g, s in g * (s * (1 - s)) }
    }

    @inline(__always)
    static func value(_ v: Float) -> Float { 1 / (1 + DeterministicMath.exp(-v)) }

    /// ``value(_:)`` of 16 values (the same bits lane by lane).
    @inline(__always)
    static func value(_ v: SIMD16<Float>) -> SIMD16<Float> { 1 / (1 + DeterministicMath.exp(-v)) }
}

/// Swish (SiLU), `x * sigmoid(x)`, TensorFlow's `tf.nn.swish`.
public enum Swish {
    /// `y = x * s` with `s = sigmoid(x)`, and `s`, which the backward reuses rather than
    /// taking every exponential again.
    public static func forward(_ x: [Float]) -> (y: [Float], sigmoid: [Float]) {
        let s = Sigmoid.forward(x)
        return (elementwise(x, s, *), s)
    }

    /// dL/dx from dL/dy, the forward input `x` and its sigmoid `s` (``forward(_:)``'s):
    /// `dy * (s * (1 + x * (1 - s)))` (TensorFlow's gradient of swish).
    public static func backward(dy: [Float], x: [Float], sigmoid s: [Float]) -> [Float] {
        precondition(dy.count == x.count && s.count == x.count, "swish backward: dy, x and sigmoid differ in length")
        return elementwise(dy, elementwise(x, s) { v, sv in sv * (1 + v * (1 - sv)) }, *)
    }
}

/// `out[i] = f(a[i], b[i])` over two arrays of equal length, 16 elements at a time through
/// `vector`, the rest through `scalar` (which must compute the same, lane for element).
@inline(__always)
func map16(_ a: [Float], _ b: [Float], _ vector: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>,
           scalar: (Float, Float) -> Float) -> [Float] {
    precondition(a.count == b.count, "elementwise operands differ in length")
    var result = [Float].uninitialized(a.count)
    result.withUnsafeMutableBufferPointer { out in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                guard let x = pa.baseAddress, let y = pb.baseAddress, let o = out.baseAddress else { return }
                var i = 0
                while i + 16 <= pa.count {
                    let r = vector(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self),
                                   UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self))
                    UnsafeMutableRawPointer(o + i).storeBytes(of: r, as: SIMD16<Float>.self)
                    i += 16
                }
                while i < pa.count {
                    o[i] = scalar(x[i], y[i])
                    i += 1
                }
            }
        }
    }
    return result
}

/// Channel gating (squeeze-and-excite's last step): `y[n, p, c] = x[n, p, c] * gate[n, c]`
/// over `pixels` positions per image.
public enum ChannelGate {
    public static func forward(x: [Float], gate: [Float], batch: Int, pixels: Int, channels: Int) -> [Float] {
        precondition(x.count == batch * pixels * channels && gate.count == batch * channels, "channel gate: shapes do not match")
        var y = x
        for n in 0..<batch {
            for p in 0..<pixels {
                let row = (n * pixels + p) * channels
                for c in 0..<channels { y[row + c] = x[row + c] * gate[n * channels + c] }
            }
        }
        return y
    }

    /// dL/dx (`dy * gate`) and dL/dgate (per image and channel, the sum over positions of
    /// `dy * x`, in `order`).
    public static func backward(dy: [Float], x: [Float], gate: [Float], batch: Int, pixels: Int, channels: Int,
                                order: ReductionOrder) -> (dx: [Float], dgate: [Float]) {
        let dx = forward(x: dy, gate: gate, batch: batch, pixels: pixels, channels: channels)
        let products = elementwise(dy, x, *)
        var dgate: [Float] = []
        dgate.reserveCapacity(batch * channels)
        for n in 0..<batch {
            let image = Array(products[n * pixels * channels ..< (n + 1) * pixels * channels])
            dgate += Reduce.columnSums(image, rows: pixels, columns: channels, order: order)
        }
        return (dx, dgate)
    }
}

