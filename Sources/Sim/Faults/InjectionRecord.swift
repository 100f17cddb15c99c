/// One injected fault as it happened: where it struck (operation, operand, replica, step),
/// which fault (a software fault model or a fault in a processing element's register), and
/// what it wrote. Trace manifests record it, replay results report it, bisect re-arms it.
///
/// In JSON (a faulty trace's `manifest.json`, key `injection`) its fields keep the names of
/// trace format 2: `site`, `role`, `replica`, `globalStep`, `faultModel` (`hardware` for a
/// hardware fault, which then has `hardware`), `seed`, `positions`, `values`, `limitedReach`,
/// and `golden`. What the fault found and changed is recorded in optional fields that records
/// written before them lack (read as nil): `goldenValues`, `bits`, `bitFormat`, `activated`
/// and `peInUse`. Decoding checks the fields against each other and names the one that does
/// not fit.
public struct InjectionRecord: Sendable, Equatable, Codable {
    /// The fault.
    public enum Fault: Sendable, Equatable {
        case software(FaultModel)
        case hardware(HardwareFault)
    }

    /// Where the fault struck, typed by what the indices index.
    public enum Positions: Sendable, Equatable {
        /// A software fault: indices into the corrupted operand (one per dimension).
        case operand([[Int]])
        /// A hardware fault in one operation: `[row, column]` of its product.
        case product([[Int]])
        /// A hardware fault stuck for the whole step: `[operation index (execution order),
        /// row, column]`.
        case stepProduct([[Int]])

        public var indices: [[Int]] {
            switch self {
            case .operand(let p), .product(let p), .stepProduct(let p): return p
            }
        }
    }

    /// The golden trace the faulty run forked from (as given to `replay`).
    public var golden: String
    /// The MXU operation struck; for a hardware fault stuck for the whole step,
    /// ``wholeStepSite``.
    public var site: String
    /// The operand corrupted (a hardware fault shows in the output).
    public var role: OperandRole
    public var replica: Int
    public var globalStep: Int
    public var fault: Fault
    /// The seed a software fault was drawn from, if it was drawn.
    public var seed: UInt64?
    public var positions: Positions
    /// The values written at ``positions``.
    public var values: [Float]
    /// True when a `_16` model's corruption reached only 16 outputs (FIdelity's semantics).
    public var limitedReach: Bool?
    /// The values at ``positions`` before the fault, one per position: a software fault's
    /// operand elements as the hook saw them (fp32, before the MXU rounds its operands), a
    /// hardware fault's fault-free product elements. Nil in records written before it existed.
    public var goldenValues: [Float]?
    /// A bit-flip model's flipped bit at each position (``FaultModel/flipsBit``): the one bit
    /// in which the value written differs from the golden one, an index into ``bitFormat``'s
    /// encoding (0 the least significant). Nil for other faults, and when some value differs
    /// from its golden value in more or fewer than one bit (a verbatim spec may write any
    /// value). A hardware fault's bit is its ``HardwareFault/bit``.
    public var bits: [Int]?
    /// The number format whose encoding the flipped bit indexes: `float32` for the bit-flip
    /// models (they flip a bit of the fp32 value before the MXU rounds it); for a hardware
    /// fault, its register's (the operand format for `weight` and `input`, `float32` for
    /// `partial-sum`).
    public var bitFormat: OperandPrecision?
    /// How many elements the fault changed. A software fault: the positions whose value, as the
    /// operation consumes it, differs in its bit pattern from the golden one (an MXU input or
    /// weight is compared after rounding to the operand format, so a flip that bfloat16
    /// rounding discards does not count, nor does zero written over zero). A hardware fault:
    /// the product elements it changed (every recorded position).
    public var activated: Int?
    /// A hardware fault: whether the struck PE's register holds data of the operation under
    /// its schedule (``Schedule/uses(_:)``; for a flip, in the struck cycle): false means the
    /// fault could change nothing. For a fault stuck for the whole step: of any operation.
    public var peInUse: Bool?

    /// The site of a hardware fault stuck for the whole step.
    public static let wholeStepSite = "all"

    public init(golden: String, site: String, role: OperandRole, replica: Int, globalStep: Int, fault: Fault,
                seed: UInt64? = nil, positions: Positions, values: [Float], limitedReach: Bool? = nil,
                goldenValues: [Float]? = nil, bits: [Int]? = nil, bitFormat: OperandPrecision? = nil,
                activated: Int? = nil, peInUse: Bool? = nil) {
        self.goldenValues = goldenValues
        self.bits = bits
        self.bitFormat = bitFormat
        self.activated = activated
        self.peInUse = peInUse
        self.golden = golden
        self.site = site
        self.role = role
        self.replica = replica
        self.globalStep = globalStep
        self.fault = fault
        self.seed = seed
        self.positions = positions
        self.values = values
        self.limitedReach = limitedReach
    }

    /// The fault model's name, or `hardware`.
    public var faultName: String {
        switch fault {
        case .software(let m): return m.rawValue
        case .hardware: return "hardware"
        }
    }

    public var hardware: HardwareFault? {
        if case .hardware(let h) = fault { return h }
        return nil
    }

    public var faultModel: FaultModel? {
        if case .software(let m) = fault { return m }
        return nil
    }

    enum CodingKeys: String, CodingKey {
        case golden, site, role, replica, globalStep, faultModel, seed, positions, values, hardware, limitedReach
        case goldenValues, bits, bitFormat, activated, peInUse
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func invalid(_ key: CodingKeys, _ reason: String) -> DecodingError {
            .dataCorruptedError(forKey: key, in: c, debugDescription: reason)
        }
        golden = try c.decode(String.self, forKey: .golden)
        site = try c.decode(String.self, forKey: .site)
        let roleName = try c.decode(String.self, forKey: .role)
        guard let role = OperandRole(rawValue: roleName) else {
            throw invalid(.role, "unknown operand '\(roleName)'; expected input, weight or output")
        }
        self.role = role
        replica = try c.decode(Int.self, forKey: .replica)
        globalStep = try c.decode(Int.self, forKey: .globalStep)
        guard replica >= 0 else { throw invalid(.replica, "replica \(replica) is negative") }
        guard globalStep >= 0 else { throw invalid(.globalStep, "step \(globalStep) is negative") }
        let name = try c.decode(String.self, forKey: .faultModel)
        let hardware = try c.decodeIfPresent(HardwareFault.self, forKey: .hardware)
        let indices = try c.decode([[Int]].self, forKey: .positions)
        values = try c.decode([Float].self, forKey: .values)
        guard indices.count == values.count else {
            throw invalid(.values, "\(values.count) values for \(indices.count) positions")
        }
        switch (name, hardware) {
        case ("hardware", .some(let h)):
            fault = .hardware(h)
            let wholeStep = site == Self.wholeStepSite
            let width = wholeStep ? 3 : 2
            guard indices.allSatisfy({ $0.count == width && $0.allSatisfy { $0 >= 0 } }) else {
                throw invalid(.positions, "a hardware fault's positions are \(wholeStep ? "[operation, row, column]" : "[row, column]"), non-negative")
            }
            positions = wholeStep ? .stepProduct(indices) : .product(indices)
        case ("hardware", nil):
            throw invalid(.hardware, "faultModel 'hardware' without the hardware fault")
        case (_, .some):
            throw invalid(.faultModel, "a hardware fault's faultModel is 'hardware', not '\(name)'")
        case (_, nil):
            guard let model = FaultModel(rawValue: name) else { throw invalid(.faultModel, "unknown fault model '\(name)'") }
            fault = .software(model)
            positions = .operand(indices)
        }
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        limitedReach = try c.decodeIfPresent(Bool.self, forKey: .limitedReach)
        goldenValues = try c.decodeIfPresent([Float].self, forKey: .goldenValues)
        if let g = goldenValues, g.count != indices.count {
            throw invalid(.goldenValues, "\(g.count) golden values for \(indices.count) positions")
        }
        bits = try c.decodeIfPresent([Int].self, forKey: .bits)
        if let b = bits {
            guard b.count == indices.count else { throw invalid(.bits, "\(b.count) bits for \(indices.count) positions") }
            guard b.allSatisfy({ (0..<32).contains($0) }) else { throw invalid(.bits, "a bit outside 0...31") }
        }
        if let name = try c.decodeIfPresent(String.self, forKey: .bitFormat) {
            guard let format = OperandPrecision(rawValue: name) else {
                throw invalid(.bitFormat, "unknown number format '\(name)'; expected \(OperandPrecision.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            bitFormat = format
        } else {
            bitFormat = nil
        }
        activated = try c.decodeIfPresent(Int.self, forKey: .activated)
        if let a = activated, !(0...indices.count).contains(a) {
            throw invalid(.activated, "\(a) elements changed of \(indices.count) positions")
        }
        peInUse = try c.decodeIfPresent(Bool.self, forKey: .peInUse)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(golden, forKey: .golden)
        try c.encode(site, forKey: .site)
        try c.encode(role.rawValue, forKey: .role)
        try c.encode(replica, forKey: .replica)
        try c.encode(globalStep, forKey: .globalStep)
        try c.encode(faultName, forKey: .faultModel)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encode(positions.indices, forKey: .positions)
        try c.encode(values, forKey: .values)
        try c.encodeIfPresent(hardware, forKey: .hardware)
        try c.encodeIfPresent(limitedReach, forKey: .limitedReach)
        try c.encodeIfPresent(goldenValues, forKey: .goldenValues)
        try c.encodeIfPresent(bits, forKey: .bits)
        try c.encodeIfPresent(bitFormat?.rawValue, forKey: .bitFormat)
        try c.encodeIfPresent(activated, forKey: .activated)
        try c.encodeIfPresent(peInUse, forKey: .peInUse)
    }
}

extension InjectionRecord {
    /// The bit each value differs from its golden value in, in the fp32 encoding (0 the least
    /// significant), one per position; nil when some value differs in more or fewer than one
    /// bit (then no single flipped bit describes it).
    public static func flippedBits(golden: [Float], values: [Float]) -> [Int]? {
        guard golden.count == values.count else { return nil }
        var bits: [Int] = []
        bits.reserveCapacity(values.count)
        for (g, v) in zip(golden, values) {
            let difference = g.bitPattern ^ v.bitPattern
            guard difference.nonzeroBitCount == 1 else { return nil }
            bits.append(difference.trailingZeroBitCount)
        }
        return bits
    }

    /// How many of `values` differ in their bit pattern from the `golden` value at the same
    /// position, both taken as the operation consumes them: rounded by `format` when given (an
    /// MXU operand), as they are otherwise (an output, or an operand of a vector-unit operation).
    public static func changedCount(golden: [Float], values: [Float], consumedAs format: (any NumberFormat)?) -> Int {
        zip(golden, values).reduce(0) { count, pair in
            let (g, v) = format.map { ($0.round(pair.0), $0.round(pair.1)) } ?? pair
            return count + (g.bitPattern != v.bitPattern ? 1 : 0)
        }
    }
}
