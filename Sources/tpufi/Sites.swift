import ArgumentParser
import Foundation
import Replayer
import Sim

struct Sites: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a workload's injection sites, or check specs against them, without a golden trace.",
        discussion: """
        Every MXU operation of one replica's training step, in execution order: its name (the \
        `site` of a spec), phase, the shapes of its input, weight and output operands (what a \
        spec's positions index), the GEMM the MXU runs (M x K x N), and on the chip's arrays \
        the rows and columns its operands occupy, its tile passes and cycles (a hardware fault \
        in a PE outside those columns cannot reach the operation, nor one outside those rows \
        in a weight or input register; a partial-sum register below them can, since the \
        weight- and input-stationary dataflows pass the sums down every row of the array).         An operation of several equal products run one after another (the transformer's         attention, one product per sequence and head) shows its GEMM as P x MxKxN and the         cycles of all P; a flip's cycle counts from the first product's first cycle.

        --check validates spec files (reference replay CSV or native JSON) against the \
        workload and scale: the workload, the site, the replica, every position against the \
        operand it indexes, a hardware fault's PE, register, bit and cycle against the \
        operation's schedule. The step is checked when a spec is replayed against a golden run.

        Examples:
          tpufi sites --workload resnet18 --scale tiny
          tpufi sites --workload resnet18 --scale paper --json
          tpufi sites --workload resnet18 --scale small --check traces/resnet18-small/masked__bn_outlier.csv
        """)

    @Option(help: "Workload: \(Workloads.names.joined(separator: ", ")).")
    var workload: String = "resnet18"

    @Option(help: "Scale: tiny, small or paper.")
    var scale: String = "small"

    @Option(help: "Chip preset whose arrays run the operations: \(ChipConfig.presets.map(\.name).joined(separator: ", ")).")
    var chip: String = "tpu-v2"

    @Option(help: "Simulated replicas (for checking a spec's replica).")
    var replicas: Int = 8

    @Option(help: PrecisionOption.help)
    var precision: PrecisionOption = .bf16

    @Option(parsing: .upToNextOption, help: "Spec files to check instead of listing the sites.")
    var check: [String] = []

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        guard let chipConfig = ChipConfig.preset(named: chip) else {
            throw ValidationError("unknown chip '\(chip)'; expected one of \(ChipConfig.presets.map(\.name).joined(separator: ", "))")
        }
        let config = try TrainingOptions.config(workload: workload, scale: scale, optimizer: nil, replicas: replicas, chip: chipConfig,
                                                precision: precision.precision)
        guard check.isEmpty else {
            var failed = 0
            for path in check {
                do {
                    print(try FaultReplay.check(try InjectionSpec.load(path: path), specName: path, config: config))
                } catch {
                    failed += 1
                    FileHandle.standardError.write(Data("\(error)\n".utf8))
                }
            }
            if failed > 0 { throw ExitCode(1) }
            return
        }
        let listing = try SiteListing(model: try config.makeModel(), chip: chipConfig)
        if json { return try printJSON(listing) }
        func shape(_ s: [Int]) -> String { s.map(String.init).joined(separator: "x") }
        print("\(listing.workload) \(listing.scale): \(listing.sites.count) sites on \(listing.chip) (\(listing.mxus) MXU of \(listing.arrayRows)x\(listing.arrayColumns), \(listing.dataflow))")
        let rows = [["site", "phase", "input", "weight", "output", "M x K x N", "rows", "cols", "passes", "cycles"]]
            + listing.sites.map { s in
                s.unit == .vector
                    ? [s.name, s.phase, shape(s.input), shape(s.weight), shape(s.output), s.gemm.description, "vector unit", "", "", ""]
                    : [s.name, s.phase, shape(s.input), shape(s.weight), shape(s.output),
                       OperationSchedule.describe(s.gemm, products: s.products),
                       String(s.rows), String(s.columns), String(s.passes), String(s.cycles)]
            }
        alignedTable(rows).forEach { print($0) }
        if listing.sites.contains(where: { $0.products > 1 }) {
            print("P x MxKxN: P products of that shape in turn (one per batch item and head), rows stacked in that order; a flip's cycle counts from the first, and strikes the one running then")
        }
        if listing.sites.contains(where: { $0.unit == .vector }) {
            print("vector unit: runs on the vector unit in fp32 (M x K x N counts its multiply-adds); software fault models reach it, PE faults do not")
        }
    }
}
