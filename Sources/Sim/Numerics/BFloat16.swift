/// bfloat16 rounding as the TPU's MXU performs it on its operands.
///
/// A bfloat16 keeps the sign, the 8 exponent bits and the top 7 mantissa bits of an fp32
/// value. The conversion used here is the Cloud TPU one:
/// - round to nearest, ties to even;
/// - overflow rounds to infinity;
/// - subnormal inputs are flushed to a zero of the same sign (bf16 shares fp32's exponent
///   range, so a normal input never rounds to a subnormal);
/// - infinities pass through; NaNs stay NaN (quietened, sign and top payload kept).
///
/// Values are kept in fp32 containers whose low 16 bits are zero, because every consumer
/// (the MXU kernels, the register-level array) computes in fp32.
public enum BFloat16 {
    /// Rounds one fp32 value to the nearest bfloat16, returned as fp32.
    @inlinable
    public static func round(_ x: Float) -> Float {
        Float(bitPattern: roundBits(x.bitPattern))
    }

    /// The bit-level conversion behind ``round(_:)``.
    @inlinable
    public static func roundBits(_ bits: UInt32) -> UInt32 {
        if bits & 0x7FFF_FFFF > 0x7F80_0000 {           // NaN: quieten, truncate payload
            return (bits | 0x0040_0000) & 0xFFFF_0000
        }
        if bits & 0x7F80_0000 == 0 {                      // zero or subnormal: flush
            return bits & 0x8000_0000
        }
        let lsb = (bits >> 16) & 1
        return (bits &+ 0x7FFF &+ lsb) & 0xFFFF_0000      // carries into inf on overflow
    }

    /// Vectorised form of ``roundBits(_:)``: identical results lane by lane (branch-free:
    /// lane masks come from arithmetic shifts of a difference's sign bit; SIMD comparisons
    /// would be generic code, not vector compares). Always inlined: out of line, its argument
    /// travels in four registers and the call cost a fifth of a narrow MXU product's time in
    /// the packing loops.
    @inlinable @inline(__always)
    public static func round(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let bits = unsafeBitCast(x, to: SIMD16<Int32>.self)
        let magnitude = bits & 0x7FFF_FFFF
        let isNaN = (0x7F80_0000 &- magnitude) &>> 31               // all ones where magnitude > inf
        let isSubnormalOrZero = (magnitude &- 0x0080_0000) &>> 31   // all ones where magnitude < 2^-126
        let lsb = (bits &>> 16) & 1
        let nearest = bits &+ 0x7FFF &+ lsb                         // carries into inf on overflow
        // NaN: the quiet bit instead of the rounding increment; subnormal or zero: the sign only.
        let rounded = ((nearest & ~isNaN) | ((bits | 0x0040_0000) & isNaN)) & -0x1_0000
        let out = rounded & (~isSubnormalOrZero | Int32(bitPattern: 0x8000_0000))
        return unsafeBitCast(out, to: SIMD16<Float>.self)
    }

    /// Rounds `count` values from `source` into `destination` (which may alias it).
    @inlinable @inline(__always)
    public static func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(destination + i).storeBytes(of: round(v), as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            destination[i] = round(source[i])
            i += 1
        }
    }

    /// Whether `x` is exactly representable as a bfloat16 (low 16 bits zero, not subnormal).
    public static func isRepresentable(_ x: Float) -> Bool {
        x.bitPattern & 0xFFFF == 0 && (x.isZero || !x.isSubnormal)
    }
}
