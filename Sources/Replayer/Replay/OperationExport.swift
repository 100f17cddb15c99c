import Foundation
import Recorder
import Sim

/// The operands and output of one MXU operation in one recorded step, for Python: the step is
/// re-executed from the nearest snapshot (a faulty trace's recorded fault re-applied) and
/// checked against the trace's recorded digests before anything is written, so the tensors
/// are the ones the recorded run computed.
public enum OperationExport {
    /// What the operation received and produced on one replica.
    public struct Operands: Sendable, Equatable {
        public var site: String
        public var replica: Int
        /// The global step the operation ran in.
        public var step: Int
        /// Input and weight as the operation received them (a software fault already applied;
        /// before rounding to the MXU's operand format), and the output as the next operation
        /// sees it (after any fault), each with its shape as the fault models index it.
        public var tensors: [(name: String, shape: [Int], values: [Float])]

        public static func == (a: Operands, b: Operands) -> Bool {
            a.site == b.site && a.replica == b.replica && a.step == b.step && a.tensors.count == b.tensors.count
                && zip(a.tensors, b.tensors).allSatisfy { $0.name == $1.name && $0.shape == $1.shape && $0.values.map(\.bitPattern) == $1.values.map(\.bitPattern) }
        }
    }

    /// Re-executes global step `step` of `reader`'s trace and keeps `site`'s operands on
    /// `replica`. Errors name the site, replica or step that does not exist, and any digest
    /// the re-execution does not reproduce.
    public static func capture(_ reader: TraceReader, step: Int, site: String, replica: Int, threads: Int) throws -> Operands {
        let m = reader.manifest
        guard m.sites.contains(site) else {
            throw BisectError.differentRuns("\(reader.directory): no MXU operation '\(site)' in \(m.config.workload) \(m.config.scaleName) (`tpufi sites` lists them)")
        }
        guard replica >= 0 && replica < m.config.replicas else {
            throw BisectError.differentRuns("\(reader.directory): replica \(replica) does not exist; the run has \(m.config.replicas) (0...\(m.config.replicas - 1))")
        }
        let restorer = try TraceRestorer(reader: reader, threads: threads)
        guard restorer.records[step] != nil else {
            let held = restorer.records.keys.sorted()
            throw BisectError.notReproduced(directory: reader.directory, step: step,
                                            reason: "the trace holds no record of global step \(step) (it holds \(TraceReader.ranges(held)))")
        }
        let side = try Bisect.Side(reader: reader, run: restorer.run, records: restorer.records)
        let (before, _) = try side.state(before: step)
        let keeper = OperandKeeper(site: SiteID(parsing: site), replica: replica)
        _ = try side.execute(from: before, wrap: { inner in OperandKeeper.Hook(inner: inner, keeper: keeper) })
        let kept = keeper.kept
        // Every MXU operation passes its input, weight and output through the hook.
        guard kept.count == 3 else {
            throw BisectError.notReproduced(directory: reader.directory, step: step, reason: "\(site) on replica \(replica) did not run in this step")
        }
        return Operands(site: site, replica: replica, step: step, tensors: kept.map { ($0.role.rawValue, $0.shape, $0.values) })
    }

    /// ``capture(_:step:site:replica:threads:)``, then writes the tensors `input`, `weight`
    /// and `output` as safetensors to `path` (atomically; the trace's own files are refused).
    public static func export(_ reader: TraceReader, step: Int, site: String, replica: Int, to path: String, threads: Int) throws -> Operands {
        try OutputGuard.check(path, against: OutputGuard.files(in: reader.directory))
        let operands = try capture(reader, step: step, site: site, replica: replica, threads: threads)
        var tensors: [String: Safetensors.Entry] = [:]
        for t in operands.tensors { tensors[t.name] = .float(shape: t.shape, values: t.values) }
        let c = reader.manifest.config
        var metadata = ["workload": c.workload, "scale": c.scaleName, "site": site, "replica": String(replica), "step": String(step),
                        "trace": reader.directory, "tool": reader.manifest.tool]
        if let i = reader.manifest.injection { metadata["injection"] = "\(i.faultName) at \(i.site), replica \(i.replica), step \(i.globalStep)" }
        do {
            try Safetensors.write(tensors, metadata: metadata, to: path)
        } catch {
            throw TraceError.io(file: path, reason: "cannot write: \(OutputGuard.reason(error))")
        }
        return operands
    }
}

/// Keeps copies of one operation's operands as they pass through the hook; only reads, so the
/// numerics do not change.
final class OperandKeeper: @unchecked Sendable {
    let site: SiteID
    let replica: Int
    private let lock = NSLock()
    private var entries: [(role: OperandRole, shape: [Int], values: [Float])] = []

    init(site: SiteID, replica: Int) {
        self.site = site
        self.replica = replica
    }

    func keep(_ role: OperandRole, _ shape: [Int], _ values: [Float]) {
        lock.lock()
        entries.append((role, shape, values))
        lock.unlock()
    }

    var kept: [(role: OperandRole, shape: [Int], values: [Float])] {
        lock.lock()
        defer { lock.unlock() }
        return entries
    }

    /// The step's own hook (a recorded fault), then the keeper.
    struct Hook: OperandHook {
        let inner: (any OperandHook)?
        let keeper: OperandKeeper

        func wants(_ site: SiteID, replica: Int) -> Bool {
            (site == keeper.site && replica == keeper.replica) || inner?.wants(site, replica: replica) == true
        }

        func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {
            if let inner, inner.wants(site, replica: replica) { inner.apply(site, role: role, values: &values, shape: shape, replica: replica) }
            if site == keeper.site && replica == keeper.replica { keeper.keep(role, shape, values) }
        }

        func corruptProduct(_ site: SiteID, product: Int, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>, shape: GEMMShape, mxu: MXU, replica: Int) {
            if let inner, inner.wants(site, replica: replica) {
                inner.corruptProduct(site, product: product, a: a, b: b, c: c, shape: shape, mxu: mxu, replica: replica)
            }
        }

        func adjustProduct(_ site: SiteID, product: inout [Float], rows: Int, columns: Int, golden: () -> [Float], replica: Int) {
            if let inner, inner.wants(site, replica: replica) { inner.adjustProduct(site, product: &product, rows: rows, columns: columns, golden: golden, replica: replica) }
        }
    }
}
