/// A fault in one register of one processing element (PE) of one MXU, during one MXU
/// operation (`docs/faults.md#hardware-faults`).
///
/// Registers are named by the operand they hold, so the names mean the same under every
/// dataflow (see ``Dataflow``):
///
/// | register | weight-stationary | input-stationary | output-stationary |
/// |---|---|---|---|
/// | `weight` (B) | stationary | moves right | moves down |
/// | `input` (A) | moves right | stationary | moves right |
/// | `partialSum` | moves down | moves down | the accumulator |
///
/// A moving register passes its content to the next PE each cycle, so a corrupted value
/// keeps travelling: an input-register fault under weight-stationary reaches every PE to the
/// right of the faulty one (one activation times every resident weight of its row), a
/// partial-sum fault every PE below it (one output). A stationary register keeps its content
/// until the next tile latches, so a flip there corrupts one weight for every vector streamed
/// after it and before the reload.
///
/// Operand registers hold operands in the MXU's operand format (``NumberFormat``), as its
/// ``NumberFormat/encode(_:)`` gives them: bit `b` of the register is bit `b` of that
/// pattern, and the corrupted value is its ``NumberFormat/decode(_:)``. Under bfloat16 that
/// is bits 0...15 of the bfloat16 pattern (15 is the sign, 14...7 the exponent); under float32
/// bits 0...31 of the IEEE single pattern. The partial-sum register is fp32 under every
/// format: bits 0...31 of the IEEE single pattern.
///
/// As JSON (specs, manifests, results), flat:
/// `{"mxu": 0, "row": 3, "column": 5, "register": "weight", "bit": 14, "cycle": 120}` or, for a
/// permanent fault, `"stuckAt": 1` in place of `"cycle"`.
public struct HardwareFault: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public enum Register: String, Sendable, Codable, CaseIterable {
        case weight, input
        case partialSum = "partial-sum"
    }

    public enum Kind: Sendable, Equatable, Hashable {
        /// The bit flips in `cycle` (counted from the operation's first cycle, as ``Schedule``
        /// counts). An operand register holds the operand its PE multiplies: the flip hits
        /// the value multiplied in `cycle`, which a moving register then passes on; a
        /// stationary register keeps it until the next tile latches (the flip lands in the
        /// register set the PE computes with at `cycle`, or, when the PE is idle then, in the
        /// set of the next pass it computes; a reload at or after `cycle` overwrites it). The
        /// partial-sum register holds the sum its PE produces: the flip hits the sum produced
        /// in `cycle`. A cycle in which the register holds nothing in use changes nothing.
        case transient(cycle: Int)
        /// The bit reads as `value` (0 or 1) in every value the register holds during the
        /// operation.
        case stuckAt(value: Int)
    }

    public var mxu: Int
    public var row: Int
    public var column: Int
    public var register: Register
    public var bit: Int
    public var kind: Kind

    public init(mxu: Int = 0, row: Int, column: Int, register: Register, bit: Int, kind: Kind) {
        self.mxu = mxu
        self.row = row
        self.column = column
        self.register = register
        self.bit = bit
        self.kind = kind
    }

    private enum CodingKeys: String, CodingKey { case mxu, row, column, register, bit, cycle, stuckAt }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mxu = try c.decodeIfPresent(Int.self, forKey: .mxu) ?? 0
        row = try c.decode(Int.self, forKey: .row)
        column = try c.decode(Int.self, forKey: .column)
        register = try c.decode(Register.self, forKey: .register)
        bit = try c.decode(Int.self, forKey: .bit)
        switch (try c.decodeIfPresent(Int.self, forKey: .cycle), try c.decodeIfPresent(Int.self, forKey: .stuckAt)) {
        case (.some(let cycle), nil): kind = .transient(cycle: cycle)
        case (nil, .some(let value)): kind = .stuckAt(value: value)
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath,
                                                    debugDescription: "a hardware fault needs either \"cycle\" (a flip) or \"stuckAt\" (0 or 1)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mxu, forKey: .mxu)
        try c.encode(row, forKey: .row)
        try c.encode(column, forKey: .column)
        try c.encode(register, forKey: .register)
        try c.encode(bit, forKey: .bit)
        switch kind {
        case .transient(let cycle): try c.encode(cycle, forKey: .cycle)
        case .stuckAt(let value): try c.encode(value, forKey: .stuckAt)
        }
    }

    public var description: String {
        let when: String
        switch kind {
        case .transient(let c): when = "flip at cycle \(c)"
        case .stuckAt(let v): when = "stuck at \(v)"
        }
        return "MXU \(mxu) PE(\(row),\(column)) \(register.rawValue) register bit \(bit) \(when)"
    }

    /// Width in bits of `register` at `precision`.
    public static func width(of register: Register, precision: OperandPrecision) -> Int {
        width(of: register, format: precision.format)
    }

    /// Width in bits of `register` with operands of `format`: the format's width for the
    /// operand registers, 32 for the (fp32) partial-sum register.
    public static func width(of register: Register, format: any NumberFormat) -> Int {
        register == .partialSum ? 32 : format.bits
    }

    /// Checks the fault against the arrays it strikes and the operation's length.
    public func validate(schedule: Schedule, precision: OperandPrecision) throws(HardwareError) {
        try validate(schedule: schedule, format: precision.format)
    }

    /// Checks the fault against the arrays it strikes, the operation's length and the width
    /// of its register with operands of `format`.
    public func validate(schedule: Schedule, format: any NumberFormat) throws(HardwareError) {
        let width = Self.width(of: register, format: format)
        guard (0..<schedule.mxuCount).contains(mxu) else {
            throw .invalidFault("MXU \(mxu) does not exist: the chip has \(schedule.mxuCount) (0...\(schedule.mxuCount - 1))")
        }
        guard (0..<schedule.rows).contains(row), (0..<schedule.columns).contains(column) else {
            throw .invalidFault("PE(\(row),\(column)) is outside the \(schedule.rows)x\(schedule.columns) array")
        }
        guard (0..<width).contains(bit) else {
            throw .invalidFault("bit \(bit) does not exist: the \(register.rawValue) register holds \(width) bits (0...\(width - 1)) at \(format.name) precision")
        }
        switch kind {
        case .transient(let cycle):
            guard (0..<schedule.cycles).contains(cycle) else {
                throw .invalidFault("cycle \(cycle) is outside the operation (\(schedule.shape), \(schedule.cycles) cycles: 0...\(schedule.cycles - 1))")
            }
        case .stuckAt(let value):
            guard value == 0 || value == 1 else { throw .invalidFault("stuck-at value \(value): give 0 or 1") }
        }
    }

    /// `value` as the faulty register holds it (flipped or with the bit forced): an operand
    /// register's `value` (one `format` holds) through `format`'s encoding, a partial sum
    /// through the fp32 pattern.
    @inline(__always)
    func corrupt(_ value: Float, format: any NumberFormat) -> Float {
        if register == .partialSum { return Float(bitPattern: corrupt(bits: value.bitPattern)) }
        return format.decode(corrupt(bits: format.encode(value)))
    }

    /// The register pattern `bits` with the fault's bit flipped or forced.
    @inline(__always)
    private func corrupt(bits: UInt32) -> UInt32 {
        let mask = UInt32(1) << UInt32(bit)
        switch kind {
        case .transient: return bits ^ mask
        case .stuckAt(let v): return v == 0 ? bits & ~mask : bits | mask
        }
    }

    /// Whether this fault is a flip at `cycle` or a stuck bit (the corruption applies to a
    /// value that is in the register at `cycle`).
    @inline(__always)
    func strikes(at cycle: Int) -> Bool {
        switch kind {
        case .transient(let c): return c == cycle
        case .stuckAt: return true
        }
    }

    /// Whether the fault corrupts what `register` of PE(`row`, `column`) holds in `cycle`.
    @inline(__always)
    func hits(_ register: Register, _ row: Int, _ column: Int, _ cycle: Int) -> Bool {
        self.register == register && self.row == row && self.column == column && strikes(at: cycle)
    }
}
