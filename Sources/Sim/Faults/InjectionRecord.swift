/// One injected fault as it happened: where it struck (operation, operand, replica, step),
/// which fault (a software fault model or a fault in a processing element's register), and
/// what it wrote. Trace manifests record it, replay results report it, bisect re-arms it.
///
/// In JSON (a faulty trace's `manifest.json`, key `injection`) its fields keep the names of
/// trace format 2: `site`, `role`, `replica`, `globalStep`, `faultModel` (`hardware` for a
/// hardware fault, which then has `hardware`), `seed`, `positions`, `values`, `limitedReach`,
/// and `golden`. Decoding checks them against each other and names the field that does not fit.
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

    /// The site of a hardware fault stuck for the whole step.
    public static let wholeStepSite = "all"

    public init(golden: String, site: String, role: OperandRole, replica: Int, globalStep: Int, fault: Fault,
                seed: UInt64? = nil, positions: Positions, values: [Float], limitedReach: Bool? = nil) {
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
    }
}
