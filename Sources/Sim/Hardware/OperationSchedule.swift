/// How one MXU operation occupies the arrays: `products` independent products of one shape,
/// run one after another, each with its own ``Schedule``. Most operations are one product;
/// attention's `_scores` and `_context` are one per batch item and head (their operands
/// differ per head, so no stationary tile is shared between them).
///
/// Product `p` runs in cycles `p * product.cycles ..< (p + 1) * product.cycles` of the
/// operation: the next product's first stationary tile starts loading once the previous
/// product's last MAC is done (no overlap across products, in either timing mode). Its rows
/// are rows `p * product.shape.m ..< (p + 1) * product.shape.m` of the stacked product
/// (``shape``, `M = products * product.shape.m`), which is how the operation's output and a
/// fault's positions index them.
///
/// A hardware fault's `cycle` counts from the operation's first cycle: a flip strikes the
/// one product running then, at that product's own cycle (``fault(_:inProduct:)``); a
/// stuck-at bit strikes every product.
public struct OperationSchedule: Sendable, Equatable {
    /// The schedule of one product.
    public let product: Schedule
    /// Products run in turn.
    public let products: Int

    /// The schedule of an operation of `products` products whose stacked shape is `shape`
    /// (`shape.m` a multiple of `products`).
    public init(shape: GEMMShape, products: Int = 1, config: ChipConfig, mode: TimingMode = .overlapped) throws(HardwareError) {
        guard products >= 1, shape.m % products == 0 else {
            throw .invalidShape("\(shape) does not split into \(products) products of equal rows")
        }
        let one = try Schedule(shape: GEMMShape(m: shape.m / products, k: shape.k, n: shape.n), config: config, mode: mode)
        guard !one.cycles.multipliedReportingOverflow(by: products).overflow else {
            throw .invalidShape("\(shape) as \(products) products of \(one.cycles) cycles overflows the cycle count")
        }
        self.product = one
        self.products = products
    }

    /// The stacked product's shape.
    public var shape: GEMMShape { GEMMShape(m: product.shape.m * products, k: product.shape.k, n: product.shape.n) }
    /// Cycles from the first product's first load to the last product's last MAC.
    public var cycles: Int { product.cycles * products }
    /// Tile passes over all products.
    public var passCount: Int { product.passes.count * products }
    /// Cycles the stationary tiles spend shifting in, over all products.
    public var loadCycles: Int { product.loadCycles * products }
    /// The same for every product, so the operation's too.
    public var utilization: Double { product.utilization }
    public var mappingEfficiency: Double { product.mappingEfficiency }
    /// The largest tile's rows and columns.
    public var tileRows: Int { product.passes.map(\.rowRange.count).max() ?? 0 }
    public var tileColumns: Int { product.passes.map(\.columnRange.count).max() ?? 0 }

    /// `fault` as product `index` sees it: a stuck-at bit unchanged, a flip at the product's
    /// own cycle if the flip falls in that product's cycles, else nil (it strikes another).
    public func fault(_ fault: HardwareFault, inProduct index: Int) -> HardwareFault? {
        Self.fault(fault, inProduct: index, productCycles: product.cycles)
    }

    /// ``fault(_:inProduct:)`` for products of `productCycles` cycles each.
    public static func fault(_ fault: HardwareFault, inProduct index: Int, productCycles: Int) -> HardwareFault? {
        guard case .transient(let cycle) = fault.kind else { return fault }
        let (p, local) = cycle.quotientAndRemainder(dividingBy: productCycles)
        guard p == index else { return nil }
        var f = fault
        f.kind = .transient(cycle: local)
        return f
    }

    /// Whether `fault`'s PE register holds data of this operation (for a flip, in its cycle).
    public func uses(_ fault: HardwareFault) -> Bool {
        guard case .transient(let cycle) = fault.kind else { return product.uses(fault) }
        guard (0..<cycles).contains(cycle) else { return false }
        return self.fault(fault, inProduct: cycle / product.cycles).map(product.uses) ?? false
    }

    /// The PEs whose `register` holds data of some pass (every product uses the same).
    public func usedPEs(_ register: HardwareFault.Register) -> [UsedPERow] { product.usedPEs(register) }

    /// The cycles of the operation in which a flip of `register` in PE(`row`, `column`) of MXU
    /// `mxu` is in use: each product's (``Schedule/usedCycles(_:mxu:row:column:)``) at its
    /// offset, ascending and disjoint.
    public func usedCycles(_ register: HardwareFault.Register, mxu: Int, row: Int, column: Int) -> [ClosedRange<Int>] {
        let one = product.usedCycles(register, mxu: mxu, row: row, column: column)
        var out: [ClosedRange<Int>] = []
        out.reserveCapacity(one.count * products)
        for p in 0..<products {
            let offset = p * product.cycles
            for r in one {
                let shifted = (r.lowerBound + offset)...(r.upperBound + offset)
                // A product's last used cycle may abut the next one's first.
                if let top = out.last, shifted.lowerBound <= top.upperBound + 1 {
                    out[out.count - 1] = top.lowerBound...shifted.upperBound
                } else {
                    out.append(shifted)
                }
            }
        }
        return out
    }

    /// Checks `fault` against the arrays, the operation's cycles and its register's width
    /// (``HardwareFault/validate(schedule:format:)``, over all products' cycles).
    public func validate(_ fault: HardwareFault, format: any NumberFormat) throws(HardwareError) {
        // Every check but the cycle's is the product schedule's; the cycle is the operation's.
        guard case .transient(let cycle) = fault.kind else { return try fault.validate(schedule: product, format: format) }
        guard (0..<cycles).contains(cycle) else {
            throw .invalidFault("cycle \(cycle) is outside the operation (\(describe), \(cycles) cycles: 0...\(cycles - 1))")
        }
        try self.fault(fault, inProduct: cycle / product.cycles)?.validate(schedule: product, format: format)
    }

    /// The shape as messages name it: `MxKxN`, or `P x mxKxN` for several products.
    public var describe: String { Self.describe(shape, products: products) }

    /// `stacked` (`products` products of `stacked.m / products` rows) as messages name it.
    public static func describe(_ stacked: GEMMShape, products: Int) -> String {
        products == 1 ? stacked.description : "\(products) x \(GEMMShape(m: stacked.m / products, k: stacked.k, n: stacked.n))"
    }
}
