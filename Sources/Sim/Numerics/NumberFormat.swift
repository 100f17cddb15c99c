/// A number format of the MXU's operands: how an fp32 value rounds to it, how wide it is in a
/// register and in memory, and how a held value maps to the bits a register holds.
///
/// Values of every format are kept in fp32 containers (every consumer computes in fp32): a
/// value the format *holds* is one that ``round(_:)`` leaves unchanged. The MXU rounds both
/// operands with ``round(_:)`` (or the bulk form), multiplies exactly and accumulates in fp32;
/// a hardware fault in an operand register flips or forces bit `b` of ``encode(_:)``'s pattern
/// (`decode(encode(x) ^ (1 << b))`), so faults work for any width. The partial-sum register is
/// fp32 whatever the operand format.
///
/// ``OperandPrecision`` (the enum traces record) names the built-in formats,
/// ``BFloat16Format`` and ``Float32Format``; other conforming types (e.g. a test-only
/// narrower format) flow through ``MXU``, ``ReferenceArray`` and the hardware-fault
/// functions, which all take a format value.
public protocol NumberFormat: Sendable {
    /// Name in messages and reports (the built-in formats use ``OperandPrecision``'s raw values).
    var name: String { get }
    /// Width in bits of an operand register holding a value of this format (at most 32).
    var bits: Int { get }
    /// Bytes one value occupies in memory (what the timing model counts for HBM traffic).
    var bytesPerElement: Int { get }
    /// Which rounding the MXU's hot loops may use inline instead of calling the format. A
    /// format other than the built-in two must answer ``RoundingKind/general`` (the default).
    var roundingKind: RoundingKind { get }
    /// `x` rounded to the nearest value of the format, returned as fp32.
    func round(_ x: Float) -> Float
    /// Rounds `count` values from `source` into `destination` (which may alias it); the same
    /// result as ``round(_:)`` on each value.
    func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int)
    /// The register pattern of a held value `x`: the low ``bits`` bits of the result (bit
    /// `bits - 1` the sign for the floating-point formats here). Defined for values the
    /// format holds; bits a held value cannot have are dropped.
    func encode(_ x: Float) -> UInt32
    /// The value a register pattern stands for (only the low ``bits`` bits of `bits` are read).
    /// Every pattern decodes, including ones ``round(_:)`` never produces (e.g. a subnormal
    /// that a flipped exponent bit makes): the MXU multiplies whatever the register holds.
    func decode(_ bits: UInt32) -> Float
}

/// How the MXU's packing loops round a format's operands: inline for the built-in formats
/// (no call per value, SIMD for bfloat16), through the format otherwise.
public enum RoundingKind: Sendable, Equatable, Hashable {
    /// Operands are used as they are (fp32, ``Float32Format``).
    case identity
    /// Exactly ``BFloat16/round(_:)`` (``BFloat16Format``).
    case bfloat16
    /// The format's own ``NumberFormat/round(_:)`` and bulk round.
    case general
}

extension NumberFormat {
    /// Whole bytes for ``bits``.
    public var bytesPerElement: Int { (bits + 7) / 8 }

    public var roundingKind: RoundingKind { .general }

    /// Value by value with ``round(_:)``.
    public func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { destination[i] = round(source[i]) }
    }
}

/// The TPU's operand format: bfloat16 as ``BFloat16`` rounds it (round to nearest even,
/// overflow to infinity, subnormals flushed, NaN quietened). A held value is the top 16 bits
/// of its fp32 pattern; the register holds those 16 bits (15 the sign, 14...7 the exponent,
/// 6...0 the mantissa).
public struct BFloat16Format: NumberFormat, Equatable, Hashable {
    public init() {}

    public var name: String { OperandPrecision.bfloat16.rawValue }
    public var bits: Int { 16 }
    public var bytesPerElement: Int { 2 }
    public var roundingKind: RoundingKind { .bfloat16 }

    @inlinable
    public func round(_ x: Float) -> Float { BFloat16.round(x) }

    /// ``BFloat16/round(_:into:count:)`` (16 values at a time in SIMD).
    @inlinable
    public func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        BFloat16.round(source, into: destination, count: count)
    }

    @inlinable
    public func encode(_ x: Float) -> UInt32 { x.bitPattern >> 16 }

    @inlinable
    public func decode(_ bits: UInt32) -> Float { Float(bitPattern: bits << 16) }
}

/// fp32 operands (the comparison mode for fp32 frameworks): rounding is the identity and the
/// register holds the IEEE single pattern.
public struct Float32Format: NumberFormat, Equatable, Hashable {
    public init() {}

    public var name: String { OperandPrecision.float32.rawValue }
    public var bits: Int { 32 }
    public var bytesPerElement: Int { 4 }
    public var roundingKind: RoundingKind { .identity }

    @inlinable
    public func round(_ x: Float) -> Float { x }

    /// A copy (`source` and `destination` may be the same).
    @inlinable
    public func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        if UnsafePointer(destination) != source { destination.update(from: source, count: count) }
    }

    @inlinable
    public func encode(_ x: Float) -> UInt32 { x.bitPattern }

    @inlinable
    public func decode(_ bits: UInt32) -> Float { Float(bitPattern: bits) }
}

extension OperandPrecision {
    /// The number format this precision names.
    public var format: any NumberFormat {
        switch self {
        case .bfloat16: return BFloat16Format()
        case .float32: return Float32Format()
        }
    }

    /// The precision that names `format`, if it is a built-in one (nil for any other format,
    /// which no trace can record).
    public init?(format: any NumberFormat) {
        switch format.roundingKind {
        case .bfloat16: self = .bfloat16
        case .identity: self = .float32
        case .general: return nil
        }
    }
}
