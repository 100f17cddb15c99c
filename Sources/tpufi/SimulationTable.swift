import Foundation
import Sim

/// The human-readable form of a ``SimulationReport``.
struct SimulationTable {
    let report: SimulationReport
    /// For a workload: examples per replica and one example's forward multiply-accumulates.
    var examples: Int? = nil
    var forwardMACsPerExample: Int? = nil
    /// What one example is (`image`, `sequence`; ``InputSpec/exampleNoun``).
    var exampleNoun = "example"

    var text: String {
        let c = report.chip
        let other = report.timing == .overlapped ? "scalesim" : "tpu"
        var lines = [
            "\(report.source)",
            "chip \(c.name): \(c.mxuCount) x \(c.rows)x\(c.columns) MXU, \(c.dataflow.rawValue), \(fmt(c.clockMHz)) MHz, \(fmt(c.hbmGBps)) GB/s HBM, vector \(c.vectorSublanes)x\(c.vectorLanes); timing: \(report.timing.rawValue)",
            "",
        ]
        var rows = [["layer", "M", "K", "N", "passes", "cycles", "util%", "\(other) cycles", "vector", "memory", "bound"]]
        for l in report.layers {
            rows.append([l.name, "\(l.m)", "\(l.k)", "\(l.n)", "\(l.passes)", "\(l.computeCycles)",
                         String(format: "%.1f", 100 * l.utilization),
                         "\(report.timing == .overlapped ? l.scaleSimCycles : l.overlappedCycles)",
                         "\(l.vectorCycles)", "\(l.memoryCycles)", "\(l.boundCycles)\(l.memoryBound ? " (mem)" : "")"])
        }
        rows.append(["total", "", "", "", "", "\(report.totalCycles)", String(format: "%.1f", 100 * report.utilization),
                     "\(report.timing == .overlapped ? report.totalScaleSimCycles : report.totalOverlappedCycles)",
                     "\(report.totalVectorCycles)", "", "\(report.totalBoundCycles)"])
        lines += alignedTable(rows, rulesAfter: [rows.count - 2])
        lines.append("")
        lines.append(String(format: "step time at %.0f MHz: %.3f ms (roofline bound)", c.clockMHz, report.seconds * 1e3))
        let vector = report.vectorMACs > 0 ? " + \(report.vectorMACs) on the vector unit" : ""
        lines.append("multiply-accumulates: \(report.mxuMACs) on the MXU\(vector)")
        if let perExample = forwardMACsPerExample, let examples {
            lines.append("forward pass: \(perExample) multiply-accumulates per \(exampleNoun) (\(examples) per replica)")
        }
        return lines.joined(separator: "\n")
    }

    private func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(x) }
}
