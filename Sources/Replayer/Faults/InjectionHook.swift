import Foundation
import Sim

/// Where and how a software fault strikes: one operand of one MXU operation, on one replica,
/// in one training step.
public struct InjectionTarget: Sendable, Equatable, Codable {
    public var site: SiteID
    public var role: OperandRole
    public var replica: Int
    /// Global step (0-based) whose update the fault corrupts.
    public var globalStep: Int

    public init(site: SiteID, role: OperandRole, replica: Int, globalStep: Int) {
        self.site = site
        self.role = role
        self.replica = replica
        self.globalStep = globalStep
    }
}

/// Errors setting up an injection; each says what does not fit.
public enum InjectionError: Error, CustomStringConvertible, Equatable {
    case unknownSite(String)
    case positionOutOfRange(position: [Int], shape: [Int], operand: String)
    case replicaOutOfRange(Int, replicas: Int)
    case countMismatch(positions: Int, values: Int)
    case tooManyPositions(positions: Int, elements: Int, operand: String)
    case duplicatePosition(position: [Int], operand: String)

    public var description: String {
        switch self {
        case .unknownSite(let m): return m
        case .positionOutOfRange(let p, let s, let op):
            return "position \(p.map(String.init).joined(separator: "/")) is outside \(op), shape \(s.map(String.init).joined(separator: "x"))"
        case .replicaOutOfRange(let r, let n): return "replica \(r) does not exist (the run has \(n): 0...\(n - 1))"
        case .countMismatch(let p, let v): return "\(p) positions but \(v) values"
        case .tooManyPositions(let p, let n, let op): return "\(p) positions for \(op), which has \(n) elements"
        case .duplicatePosition(let p, let op): return "position \(p.map(String.init).joined(separator: "/")) of \(op) is listed twice"
        }
    }
}

/// The hook that injects a fault: at its target it either applies a given corruption (a
/// replay spec's verbatim positions and values) or draws one from a fault model and a seed
/// when it first sees the golden operand. What it applied is kept, so a seeded injection can
/// be written back as a reproducible spec.
public final class InjectionHook: OperandHook, @unchecked Sendable {
    public let target: InjectionTarget
    private let model: FaultModel?
    private var rng: CounterRNG
    private let lock = NSLock()
    private var corruption: Corruption?
    /// The operand's values at the corruption's offsets before it was first applied.
    private var goldenAtOffsets: [Float]?
    /// For a `_16` model under ``SixteenSemantics/fidelity``: the stream that picks the 16
    /// outputs the corruption reaches.
    private var reachRNG: CounterRNG?
    private var reached: (rows: Range<Int>, columns: Range<Int>)?

    /// Applies exactly `corruption`; `limitReachSeed` (a `_16` model's spec seed) limits its
    /// reach to 16 outputs drawn from that seed.
    public init(target: InjectionTarget, corruption: Corruption, limitReachSeed: UInt64? = nil) {
        self.target = target
        self.model = nil
        self.rng = CounterRNG(seed: 0, purpose: .faultSampling)
        self.corruption = corruption
        self.reachRNG = limitReachSeed.map { Self.reachStream($0, target) }
    }

    /// Draws the corruption of `model` from the golden operand, keyed by `seed` and the target
    /// (and, for a `_16` model under `sixteen` = `.fidelity`, the 16 outputs it reaches).
    public init(target: InjectionTarget, model: FaultModel, seed: UInt64, sixteen: SixteenSemantics = .fidelity) {
        self.target = target
        self.model = model
        self.rng = CounterRNG(seed: seed, purpose: .faultSampling, target.globalStep, target.replica)
        self.corruption = nil
        self.reachRNG = model.reachesSixteen && sixteen == .fidelity ? Self.reachStream(seed, target) : nil
    }

    /// Its own stream, so that a verbatim replay of a drawn corruption picks the same outputs.
    private static func reachStream(_ seed: UInt64, _ target: InjectionTarget) -> CounterRNG {
        CounterRNG(seed: seed, purpose: .faultSampling, target.globalStep, target.replica, 16)
    }

    /// The product block (rows, columns of `C`) a `_16` corruption reached, once applied.
    public var reachedOutputs: (rows: Range<Int>, columns: Range<Int>)? {
        lock.lock()
        defer { lock.unlock() }
        return reached
    }

    /// Whether this hook's operand corruption of `site` reaches only some of the product's
    /// elements (a `_16` model under FIdelity's semantics).
    func limitsReach(_ site: SiteID, replica: Int) -> Bool {
        reachRNG != nil && site == target.site && replica == target.replica && target.role != .output
    }

    /// A `_16` corruption under FIdelity's semantics: keeps the corrupted product in one row x
    /// 16 aligned columns (input corruption) or one column x 16 aligned rows (weight
    /// corruption), the row or column drawn among those the corruption changed; every other
    /// element is put back from the uncorrupted product.
    public func adjustProduct(_ site: SiteID, product: inout [Float], rows: Int, columns: Int, golden: () -> [Float], replica: Int) {
        guard limitsReach(site, replica: replica) else { return }
        let golden = golden()
        lock.lock()
        defer { lock.unlock() }
        guard var rng = reachRNG else { return }
        var changedRows = Set<Int>(), changedColumns = Set<Int>()
        for i in product.indices where product[i].bitPattern != golden[i].bitPattern {
            changedRows.insert(i / columns)
            changedColumns.insert(i % columns)
        }
        var kept = golden
        defer { product = kept }
        guard !changedRows.isEmpty else { return }
        let block: (rows: Range<Int>, columns: Range<Int>)
        if target.role == .input {
            let row = changedRows.sorted()[rng.nextInt(below: changedRows.count)]
            let start = 16 * rng.nextInt(below: (columns + 15) / 16)
            block = (row..<row + 1, start..<min(columns, start + 16))
        } else {
            let column = changedColumns.sorted()[rng.nextInt(below: changedColumns.count)]
            let start = 16 * rng.nextInt(below: (rows + 15) / 16)
            block = (start..<min(rows, start + 16), column..<column + 1)
        }
        for r in block.rows { for c in block.columns { kept[r * columns + c] = product[r * columns + c] } }
        reached = block
        reachRNG = rng
    }

    /// What was (or will be) applied; nil for a seeded hook that has not run yet.
    public var applied: Corruption? {
        lock.lock()
        defer { lock.unlock() }
        return corruption
    }

    /// The operand's values at the corrupted elements (``applied``'s offsets, in order) as the
    /// hook first saw them, before it wrote the fault's values; nil until it has applied.
    public var goldenValues: [Float]? {
        lock.lock()
        defer { lock.unlock() }
        return goldenAtOffsets
    }

    public func wants(_ site: SiteID, replica: Int) -> Bool {
        site == target.site && replica == target.replica
    }

    public func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {
        guard role == target.role, site == target.site, replica == target.replica else { return }
        lock.lock()
        defer { lock.unlock() }
        if corruption == nil, let model { corruption = FaultResolution.resolve(model, golden: values, rng: &rng) }
        guard let corruption else { return }
        // Offsets were checked against the operand's shape (verbatim) or drawn inside it.
        if goldenAtOffsets == nil { goldenAtOffsets = corruption.offsets.map { values[$0] } }
        corruption.apply(to: &values)
    }

    /// Checks a verbatim corruption against the operand's shape before anything runs, and
    /// turns multi-index positions into flat offsets.
    public static func corruption(positions: [[Int]], values: [Float], shape: [Int], operand: String) throws(InjectionError) -> Corruption {
        guard positions.count == values.count else { throw .countMismatch(positions: positions.count, values: values.count) }
        let elements = shape.reduce(1, *)
        guard positions.count <= elements else { throw .tooManyPositions(positions: positions.count, elements: elements, operand: operand) }
        var offsets: [Int] = []
        var seen = Set<Int>()
        for p in positions {
            guard p.count == shape.count, zip(p, shape).allSatisfy({ $0 >= 0 && $0 < $1 }) else {
                throw .positionOutOfRange(position: p, shape: shape, operand: operand)
            }
            let offset = zip(p, shape).reduce(0) { $0 * $1.1 + $1.0 }
            // Two values for one element: which one the fault wrote would be ambiguous.
            guard seen.insert(offset).inserted else { throw .duplicatePosition(position: p, operand: operand) }
            offsets.append(offset)
        }
        return Corruption(offsets: offsets, values: values)
    }
}
