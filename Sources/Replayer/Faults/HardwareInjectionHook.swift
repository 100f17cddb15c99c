import Foundation
import Sim

/// The hook that injects a hardware fault: in its target operation, on its target replica, it
/// lets the MXU compute the product, then maps the fault through that operation's
/// ``Schedule`` onto the output elements it corrupts (``Schedule/faultyElements(of:format:a:b:golden:)``)
/// and writes their faulty values. What it changed is kept for the report and the trace.
public final class HardwareInjectionHook: OperandHook, @unchecked Sendable {
    /// The operation struck; nil: every MXU operation of the step (a permanent fault of the
    /// PE, stuck for the whole step).
    public let site: SiteID?
    public let replica: Int
    public let fault: HardwareFault
    public let chip: ChipConfig
    public let mode: TimingMode
    private let lock = NSLock()
    private var changed: [(site: SiteID, elements: [FaultyElement], peInUse: Bool)] = []
    private var unmapped: [String] = []

    public init(site: SiteID?, replica: Int, fault: HardwareFault, chip: ChipConfig, mode: TimingMode = .overlapped) {
        self.site = site
        self.replica = replica
        self.fault = fault
        self.chip = chip
        self.mode = mode
    }

    /// The product elements the fault changed (row-major), per operation in execution order,
    /// once the operations have run, and whether the struck PE's register held data of that
    /// operation (``Schedule/uses(_:)``; for a flip, in its cycle).
    public var applied: [(site: SiteID, elements: [FaultyElement], peInUse: Bool)] {
        lock.lock()
        defer { lock.unlock() }
        return changed
    }

    /// Operations the fault should have struck but could not be mapped onto (their schedule
    /// failed), with the reason: a replay with any is an error, never a silent miss.
    public var failures: [String] {
        lock.lock()
        defer { lock.unlock() }
        return unmapped
    }

    /// Checks the fault against the operation it strikes (`shape` stacking `products`
    /// products, from the operation table) before anything runs; the message names the
    /// operation.
    public static func validate(_ fault: HardwareFault, site: SiteID, shape: GEMMShape, products: Int = 1, chip: ChipConfig,
                                precision: OperandPrecision, mode: TimingMode = .overlapped) throws(HardwareError) {
        try validate(fault, site: site, shape: shape, products: products, chip: chip, format: precision.format, mode: mode)
    }

    /// ``validate(_:site:shape:products:chip:precision:mode:)`` with operands of any number
    /// format (the operand registers are `format.bits` wide).
    public static func validate(_ fault: HardwareFault, site: SiteID, shape: GEMMShape, products: Int = 1, chip: ChipConfig,
                                format: any NumberFormat, mode: TimingMode = .overlapped) throws(HardwareError) {
        let schedule = try OperationSchedule(shape: shape, products: products, config: chip, mode: mode)
        do {
            try schedule.validate(fault, format: format)
        } catch {
            let reason: String
            switch error {
            case .invalidFault(let m), .invalidConfig(let m), .invalidShape(let m): reason = m
            }
            throw .invalidFault("\(site.name) (\(schedule.describe) on \(chip.rows)x\(chip.columns) \(chip.dataflow.rawValue), \(chip.mxuCount) MXU): \(reason)")
        }
    }

    public func wants(_ site: SiteID, replica: Int) -> Bool {
        (self.site == nil || site == self.site) && replica == self.replica
    }

    /// Maps the fault onto product `product` of the operation (its rows are rows
    /// `product * shape.m ..<` of the stacked product, which the recorded elements use): a
    /// flip at the operation's cycle C strikes the product running then, at its own cycle
    /// (``OperationSchedule``); a stuck-at bit strikes every product.
    public func corruptProduct(_ site: SiteID, product: Int, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                               shape: GEMMShape, mxu: MXU, replica: Int) {
        guard wants(site, replica: replica) else { return }
        let schedule: Schedule
        do {
            schedule = try Schedule(shape: shape, config: chip, mode: mode)
        } catch {
            lock.lock()
            unmapped.append("\(site.name) (\(shape)): \(error)")
            lock.unlock()
            return
        }
        guard let fault = OperationSchedule.fault(fault, inProduct: product, productCycles: schedule.cycles) else {
            // A flip in another product's cycles: this one runs untouched.
            lock.lock()
            changed.append((site, [], false))
            lock.unlock()
            return
        }
        let format = mxu.format
        // The operands as the PEs hold them (rounding is idempotent, so rounded views are fine).
        func held(_ v: Float) -> Float { format.round(v) }
        let elements = schedule.faultyElements(
            of: fault, format: format,
            a: { m, k in held(a.base[m * a.rowStride + k * a.columnStride]) },
            b: { k, n in held(b.base[k * b.rowStride + n * b.columnStride]) },
            golden: { m, n in c[m * shape.n + n] })
        for e in elements { c[e.row * shape.n + e.column] = e.faulty }
        let offset = product * shape.m
        let stacked = elements.map { FaultyElement(row: $0.row + offset, column: $0.column, golden: $0.golden, faulty: $0.faulty) }
        lock.lock()
        changed.append((site, stacked, schedule.uses(fault)))
        lock.unlock()
    }
}
