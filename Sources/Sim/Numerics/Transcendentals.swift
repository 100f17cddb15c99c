/// Transcendental functions whose results do not depend on the platform's libm.
///
/// Every value that lands in a trace must be bit-identical on every machine, so the
/// simulator never calls `exp`/`log` from the C library (their last-bit rounding differs
/// between glibc versions, musl and Apple's libm). These use only IEEE 754 operations that are
/// correctly rounded everywhere (+, -, *, /, sqrt, conversions), in a fixed order, computed
/// in double precision and rounded once to fp32.
///
/// Accuracy (checked by the tests against the platform's double-precision libm over dense
/// sweeps): `exp` and `log` within 1 ulp of the correctly rounded fp32 result; `rsqrt` is
/// `1 / sqrt(x)` in double, rounded once.
public enum DeterministicMath {
    static let ln2Hi: Double = 6.93147180369123816490e-01   // high bits of ln 2 (exact product with small n)
    static let ln2Lo: Double = 1.90821492927058770002e-10   // ln 2 - ln2Hi
    static let invLn2: Double = 1.44269504088896338700e+00

    /// e^x for fp32 `x`. Overflows to +inf above ~88.72, underflows to +0 below ~-103.97.
    ///
    /// Branch-free (the special cases are selected after the arithmetic, which runs on a
    /// clamped argument), so loops over arrays vectorise; the bits are those of the plain
    /// branching form, which a test keeps as the definition.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let clamped = x.isNaN ? 0 : min(max(x, -104), 88.73)
        let xd = Double(clamped)
        // x = n ln2 + r with |r| <= ln2 / 2.
        let n = (xd * invLn2).rounded(.toNearestOrEven)
        let r = (xd - n * ln2Hi) - n * ln2Lo
        // 2^n from n's bits: n + 1.5 * 2^52 holds n in its low mantissa bits (|n| < 2^51).
        let power = Double(bitPattern: ((n + 0x1.8p52).bitPattern &- 0x4338_0000_0000_0000 &+ 1023) << 52)
        let e = Float(expPolynomial(r) * power)
        return x.isNaN ? x : x > 88.73 ? .infinity : x < -104 ? 0 : e
    }

    /// ``exp(_:)`` of 16 values at once, lane by lane the same operations and so the same
    /// bits. The 16 lanes are four independent vectors of doubles on AVX2 (two on AVX-512),
    /// which keeps the multiply-add units busy through the polynomial's dependent chain.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let nan = x .!= x
        // min(max(x, -104), 88.73) with NaN as 0, by selects (the library's lane-wise min and
        // max are not vectorised).
        var clamped = x.replacing(with: 0, where: nan)
        clamped = clamped.replacing(with: -104, where: clamped .< -104)
        clamped = clamped.replacing(with: 88.73, where: clamped .> 88.73)
        let xd = widened(clamped)
        let n = (xd * invLn2).rounded(.toNearestOrEven)
        let r = (xd - n * ln2Hi) - n * ln2Lo
        let biased = unsafeBitCast(n + 0x1.8p52, to: SIMD16<UInt64>.self) &- 0x4338_0000_0000_0000 &+ 1023
        let power = unsafeBitCast(biased &<< 52, to: SIMD16<Double>.self)
        let e = narrowed(expPolynomial(r) * power)
        return e.replacing(with: 0, where: x .< -104).replacing(with: .infinity, where: x .> 88.73).replacing(with: x, where: nan)
    }

    /// `SIMD16<Double>(x)` and `SIMD16<Float>(x)` lane by lane (exact, and rounded to nearest
    /// as every fp64-to-fp32 conversion is), written as loops the optimiser turns into vector
    /// conversions: the library's generic initialisers were called, not inlined, in an
    /// AVX-512 build (4 % of an `effnet` step).
    @inline(__always)
    static func widened(_ x: SIMD16<Float>) -> SIMD16<Double> {
        var d = SIMD16<Double>()
        for i in 0..<16 { d[i] = Double(x[i]) }
        return d
    }

    @inline(__always)
    static func narrowed(_ x: SIMD16<Double>) -> SIMD16<Float> {
        var f = SIMD16<Float>()
        for i in 0..<16 { f[i] = Float(x[i]) }
        return f
    }

    /// Natural logarithm for fp32 `x`: -inf at 0, NaN below 0, +inf at +inf.
    public static func log(_ x: Float) -> Float {
        if x.isNaN || x < 0 { return .nan }
        if x == 0 { return -.infinity }
        if x == .infinity { return x }
        // x = m 2^e with m in [sqrt(1/2), sqrt(2)).
        let bits = Double(x).bitPattern                  // fp32 subnormals are normal in double
        var e = Int((bits >> 52) & 0x7FF) - 1023
        var m = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
        if m > 1.4142135623730951 {
            m /= 2
            e += 1
        }
        // log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716: series to s^23.
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var sum = 1.0 / 23
        for k in stride(from: 21, through: 1, by: -2) { sum = sum * s2 + 1 / Double(k) }
        let logm = 2 * s * sum
        return Float(Double(e) * ln2Hi + (Double(e) * ln2Lo + logm))
    }

    /// 1 / sqrt(x): +inf at +0, NaN below 0.
    public static func rsqrt(_ x: Float) -> Float {
        Float(1 / Double(x).squareRoot())
    }

    /// 1/k! for k = 0...13, each from the previous by one IEEE division.
    static let inverseFactorials: [Double] = (1...13).reduce(into: [1.0]) { c, k in c.append(c[k - 1] / Double(k)) }

    /// e^r for |r| <= ln2 / 2: the Taylor series to r^13/13! in Horner form (truncation error
    /// below 2^-60 relative).
    /// The coefficients are ``inverseFactorials`` written out (a test pins them equal), so the
    /// hot loop reads no array.
    /// Generic so that the scalar and the 16-lane ``exp(_:)`` share the one written-out form
    /// (each lane performs the scalar's operations).
    @inline(__always)
    static func expPolynomial<T: ExpPolynomialOperand>(_ r: T) -> T {
        var p = T(coefficient: 0x1.6124613a86d0ap-33)  // 1/13!
        p = p * r + 0x1.1eed8eff8d898p-29
        p = p * r + 0x1.ae64567f544e4p-26
        p = p * r + 0x1.27e4fb7789f5dp-22
        p = p * r + 0x1.71de3a556c734p-19
        p = p * r + 0x1.a01a01a01a01ap-16
        p = p * r + 0x1.a01a01a01a01ap-13
        p = p * r + 0x1.6c16c16c16c17p-10
        p = p * r + 0x1.1111111111111p-7
        p = p * r + 0x1.5555555555555p-5
        p = p * r + 0x1.5555555555555p-3
        p = p * r + 0x1.0000000000000p-1
        p = p * r + 1
        return p * r + 1                                // 1/0!
    }

    /// ``expPolynomial(_:)`` as the Horner loop over ``inverseFactorials`` (the definition the
    /// written-out form must equal; tests compare them).
    static func expPolynomialFromTable(_ r: Double) -> Double {
        var p = inverseFactorials[13]
        for k in stride(from: 12, through: 0, by: -1) { p = p * r + inverseFactorials[k] }
        return p
    }

    /// y * 2^n for the exponent range exp can reach, exactly (two steps keep it exact when the
    /// result is subnormal in fp32, which is still normal in double).
    @inline(__always)
    static func scaleByPowerOfTwo(_ y: Double, _ n: Int) -> Double {
        y * Double(bitPattern: UInt64(1023 + n) << 52)
    }
}

/// What ``DeterministicMath/expPolynomial(_:)`` evaluates on: one double, or 16 lanes of them.
protocol ExpPolynomialOperand {
    init(coefficient: Double)
    static func * (a: Self, b: Self) -> Self
    static func + (a: Self, b: Double) -> Self
}

extension Double: ExpPolynomialOperand {
    init(coefficient: Double) { self = coefficient }
}

extension SIMD16<Double>: ExpPolynomialOperand {
    init(coefficient: Double) { self.init(repeating: coefficient) }
}
