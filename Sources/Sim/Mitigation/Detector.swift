/// A check for the necessary condition of a bad outcome, run after every training step on
/// what the step computed (its loss, gradients, MXU products) and on the state it would
/// leave (optimizer slots, parameters, batch-norm moving statistics).
///
/// Spelled on the command line as `NAME[@VARIABLES][=BOUND]` (``init(parsing:)``): `adam-m`,
/// `adam-m@all=1e5`, `moving-variance=1e4`, `non-finite`, `abft`.
public struct Detector: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// |Adam's first moment m| reaches the bound (the reference's released check: m < 20
        /// on the first conv's kernel; an earlier version bounded every variable by 1e5).
        case adamM = "adam-m"
        /// Adam's second moment v reaches the bound.
        case adamV = "adam-v"
        /// |the step's change of a parameter| reaches the bound (any optimizer: for SGD the
        /// update size lr x g, or with momentum the velocity).
        case updateSize = "update-size"
        /// A batch-norm moving variance reaches the bound (the reference's README describes
        /// this check; no released version of its code implements it).
        case movingVariance = "moving-variance"
        /// The loss or any reduced gradient is NaN or infinite.
        case nonFinite = "non-finite"
        /// Algorithm-based fault tolerance on every MXU product `C = A x B`: the column sums
        /// of C against (the column sums of A) x B, within the fp32 accumulation's error
        /// bound. Catches a corrupted product where it happens (a PE-register fault), which
        /// the state bounds see only once it has grown large; blind to corrupted operands,
        /// whose product is consistent with them.
        case productChecksum = "abft"

        /// The default bound (`nil`: the detector has none).
        public var defaultBound: Float? {
            switch self {
            case .adamM: return 20
            case .adamV: return 1e10
            case .updateSize: return 1
            case .movingVariance: return 1e4
            case .nonFinite, .productChecksum: return nil
            }
        }

        /// The default variables (`nil`: the detector does not look at parameters).
        public var defaultVariables: Variables? {
            switch self {
            case .adamM: return .first
            case .adamV, .updateSize: return .all
            case .movingVariance, .nonFinite, .productChecksum: return nil
            }
        }

        /// Why the detector can see nothing in `model` trained with `optimizer`, or nil when it
        /// can (Adam's moments need Adam; a moving-variance bound needs batch norm).
        public func blindSpot(optimizer: OptimizerConfig, model: any Model) -> String? {
            switch self {
            case .adamM where optimizer.kind != .adam, .adamV where optimizer.kind != .adam:
                return "detector \(rawValue) bounds Adam's moments; this run uses \(optimizer.kind.rawValue) (try update-size)"
            case .movingVariance where !model.modelState.contains(where: { $0.name.hasSuffix("moving_variance") }):
                return "detector moving-variance: \(model.title) has no batch-norm moving variances"
            default:
                return nil
            }
        }

        /// One line for `--help` and the docs.
        public var summary: String {
            switch self {
            case .adamM: return "|Adam m| >= bound (default 20, on the first kernel as the reference's released code)"
            case .adamV: return "Adam v >= bound (default 1e10, every variable)"
            case .updateSize: return "|parameter change in one step| >= bound (default 1, every variable)"
            case .movingVariance: return "a batch-norm moving variance >= bound (default 1e4)"
            case .nonFinite: return "loss or a gradient is NaN or infinite"
            case .productChecksum: return "checksums of every MXU product (ABFT) disagree beyond fp32 rounding"
            }
        }
    }

    /// Which parameter tensors a bound applies to.
    public enum Variables: String, Sendable, Codable, CaseIterable {
        /// The first trainable tensor: the first conv's kernel in every CNN, the embedding in
        /// the transformer.
        case first
        case all
    }

    public var kind: Kind
    public var bound: Float?
    public var variables: Variables?

    /// `kind` with its default bound and variables unless given.
    public init(_ kind: Kind, bound: Float? = nil, variables: Variables? = nil) {
        self.kind = kind
        self.bound = bound ?? kind.defaultBound
        self.variables = variables ?? kind.defaultVariables
    }

    /// Parses `NAME[@first|all][=BOUND]`.
    public init(parsing text: String) throws(MitigationError) {
        var rest = Substring(text)
        var bound: Float?
        if let eq = rest.firstIndex(of: "=") {
            let value = rest[rest.index(after: eq)...]
            guard let b = Float(value), b.isFinite, b > 0 else {
                throw .invalid("detector '\(text)': the bound '\(value)' is not a positive finite number")
            }
            bound = b
            rest = rest[..<eq]
        }
        var variables: Variables?
        if let at = rest.firstIndex(of: "@") {
            let value = String(rest[rest.index(after: at)...])
            guard let v = Variables(rawValue: value) else {
                throw .invalid("detector '\(text)': variables '\(value)' must be one of \(Variables.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            variables = v
            rest = rest[..<at]
        }
        guard let kind = Kind(rawValue: String(rest)) else {
            throw .invalid("unknown detector '\(rest)' (detectors: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if bound != nil, kind.defaultBound == nil { throw .invalid("detector '\(text)': \(kind.rawValue) takes no bound") }
        if variables != nil, kind.defaultVariables == nil { throw .invalid("detector '\(text)': \(kind.rawValue) does not look at parameters") }
        self.init(kind, bound: bound, variables: variables)
    }

    /// The spelling ``init(parsing:)`` reads back, every default made explicit.
    public var description: String {
        var s = kind.rawValue
        if let variables { s += "@\(variables.rawValue)" }
        if let bound { s += "=\(bound)" }
        return s
    }

    /// Whether the detector needs the MXU products checked while the step runs.
    public var checksProducts: Bool { kind == .productChecksum }

    /// What the detector found wrong with one step, or nil. `before` is the state the step
    /// started from, `after` the state it would leave; `failures` the product checksums that
    /// disagreed during the step (only gathered when ``checksProducts``).
    public func check(before: TrainingState, after: TrainingState, gradients: Trainer.Gradients, model: any Model,
                      optimizer: OptimizerConfig, failures: [ChecksumFailure]) -> Detection? {
        switch kind {
        case .nonFinite:
            if !gradients.metrics.loss.isFinite { return Detection(detector: self, variable: "loss", value: gradients.metrics.loss) }
            for (t, g) in gradients.gradients.enumerated() {
                if let bad = g.first(where: { !$0.isFinite }) {
                    return Detection(detector: self, variable: model.parameters[t].name + " (gradient)", value: bad)
                }
            }
            return nil
        case .productChecksum:
            guard let f = failures.first else { return nil }
            return Detection(detector: self, variable: "\(f.site.name) column \(f.column) (replica \(f.replica))", value: f.residual)
        case .movingVariance:
            let limit = bound ?? .infinity
            for (n, spec) in model.modelState.enumerated() where spec.name.hasSuffix("moving_variance") {
                if let v = Self.firstReaching(after.modelState[n], limit, magnitude: false) {
                    return Detection(detector: self, variable: spec.name, value: v)
                }
            }
            return nil
        case .adamM, .adamV, .updateSize:
            let limit = bound ?? .infinity
            let tensors = variables == .first ? Array(after.parameters.indices.prefix(1)) : Array(after.parameters.indices)
            for t in tensors {
                let name = model.parameters[t].name
                switch kind {
                case .adamM, .adamV:
                    // Only Adam keeps these slots; under another optimizer the check is vacuous
                    // (``Mitigation/validate(optimizer:)`` refuses it).
                    guard optimizer.kind == .adam else { return nil }
                    let slot = kind == .adamM ? 0 : 1
                    if let v = Self.firstReaching(after.slots[t][slot], limit, magnitude: kind == .adamM) {
                        return Detection(detector: self, variable: name + (kind == .adamM ? "/m" : "/v"), value: v)
                    }
                default:
                    let old = before.parameters[t], new = after.parameters[t]
                    for i in new.indices {
                        let change = new[i] - old[i]
                        if !(abs(change) < limit) { return Detection(detector: self, variable: name, value: change) }
                    }
                }
            }
            return nil
        }
    }

    /// The first value at or past `limit` (its magnitude if asked), NaN counting as past.
    static func firstReaching(_ values: [Float], _ limit: Float, magnitude: Bool) -> Float? {
        for v in values where !((magnitude ? abs(v) : v) < limit) { return v }
        return nil
    }

    /// Elementwise vector-unit operations the check costs per step (per replica for the
    /// product checksums, which run where the products are; once for the rest, which run on
    /// the reduced, replicated state). For the timing model.
    public func vectorWork(model: any Model) -> VectorWork {
        let sizes = model.parameters.map { $0.shape.reduce(1, *) }
        switch kind {
        case .nonFinite:
            return VectorWork(elements: sizes.reduce(0, +) + 1, opsPerElement: 1)
        case .adamM, .adamV:
            return VectorWork(elements: variables == .first ? sizes.prefix(1).reduce(0, +) : sizes.reduce(0, +), opsPerElement: 2)
        case .updateSize:
            return VectorWork(elements: variables == .first ? sizes.prefix(1).reduce(0, +) : sizes.reduce(0, +), opsPerElement: 3)
        case .movingVariance:
            let n = model.modelState.filter { $0.name.hasSuffix("moving_variance") }.map { $0.shape.reduce(1, *) }.reduce(0, +)
            return VectorWork(elements: n, opsPerElement: 1)
        case .productChecksum:
            // The checksums ride on the MXU (``mxuMACs(model:)``); the vector unit compares
            // one sum per output column of each product.
            let columns = model.operations.filter(\.isOnMXU).map { $0.products * $0.gemm.n }.reduce(0, +)
            return VectorWork(elements: columns, opsPerElement: 2)
        }
    }

    /// Extra MXU multiply-accumulates the check costs per step and replica: for the product
    /// checksums of each GEMM M x K x N, the checksum row of A (1^T A, M x K), its product with
    /// B ((1^T A) B, K x N) and the column sums of C (1^T C, M x N), all computed as extra
    /// rows streamed through the array; for an operation of several products, per product.
    /// (The simulator's verdict also uses a magnitude sum for a rigorous rounding bound;
    /// hardware would use a calibrated threshold instead, so that sum is not counted.)
    public func mxuMACs(model: any Model) -> Int {
        guard kind == .productChecksum else { return 0 }
        return model.operations.filter(\.isOnMXU).reduce(0) { $0 + $1.gemm.m * $1.gemm.k + $1.products * $1.gemm.k * $1.gemm.n + $1.gemm.m * $1.gemm.n }
    }
}

/// One detector's finding in one step: the variable (or product) and the offending value.
public struct Detection: Sendable, Equatable, Codable {
    public var detector: String
    public var variable: String
    public var value: Float

    public init(detector: Detector, variable: String, value: Float) {
        self.detector = detector.description
        self.variable = variable
        self.value = value
    }
}

/// Errors of mitigation settings.
public enum MitigationError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let m): return m
        }
    }
}
