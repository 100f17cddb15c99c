import ArgumentParser
import Foundation
import Sim

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-layer MXU cycles, utilisation and roofline bounds of a topology or workload.",
        discussion: """
        Reads a SCALE-Sim topology CSV (conv or GEMM format), optionally with a SCALE-Sim .cfg \
        for the array size and dataflow, or lists the MXU operations of a built-in workload's \
        training step (one replica).

        Two timing modes: `tpu` (default) double-buffers stationary tiles so that passes \
        stream back to back; `scalesim` serialises passes as SCALE-Sim 3.0 does (its "Total \
        Cycles" is this mode's figure minus one). The table shows both.

        Examples:
          tpufi simulate --workload resnet18 --scale small --chip tpu-v3
          tpufi simulate --topology Benchmarks/scalesim/gemms.csv --rows 32 --columns 32
          tpufi simulate --topology net.csv --config scale.cfg --timing scalesim
          tpufi simulate --topology gemms.csv --rows 8 --columns 8 --dataflow os --json
          tpufi simulate --workload resnet18 --scale paper --precision fp32
        """)

    @Option(help: "SCALE-Sim topology CSV (conv or GEMM).")
    var topology: String?

    @Option(help: "SCALE-Sim .cfg file: sets the array size and dataflow (one MXU).")
    var config: String?

    @Option(help: "Workload: \(Workloads.names.joined(separator: ", ")).")
    var workload: String?

    @Option(help: "Workload scale: tiny, small or paper.")
    var scale: String = "small"

    @Option(help: "Chip preset: \(ChipConfig.presets.map(\.name).joined(separator: ", ")).")
    var chip: String = "tpu-v2"

    @Option(help: "Override the array rows (SCALE-Sim's ArrayHeight).")
    var rows: Int?

    @Option(help: "Override the array columns (ArrayWidth).")
    var columns: Int?

    @Option(help: "Override the dataflow: ws, is or os.")
    var dataflow: String?

    @Option(help: "Override the number of MXUs per core.")
    var mxus: Int?

    @Option(help: "Timing mode: tpu (overlapped, double-buffered) or scalesim (serialised passes).")
    var timing: String = "tpu"

    @Option(help: "Operations of a workload: forward (forward only, what SCALE-Sim topologies describe) or training (forward and backward; also fwd, train).")
    var operations: String?

    /// The old spelling of --operations (--phases elsewhere filters forward and backward sites).
    @Option(name: .customLong("phases"), help: .hidden)
    var legacyPhases: String?

    @Option(help: ArgumentHelp("MXU operand precision: bf16 or fp32 (sets the operand bytes HBM traffic counts).",
                               valueName: "bf16|fp32"))
    var precision: PrecisionOption = .bf16

    @Option(help: ArgumentHelp("With --workload: also count what these mitigation detectors cost per step on the vector unit (NAME[@first|all][=BOUND], comma-separated; see `tpufi detect`).",
                               valueName: "detectors"))
    var mitigation: String?

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        if mitigation != nil && workload == nil { throw ValidationError("--mitigation applies to --workload only") }
        guard (topology == nil) != (workload == nil) else {
            throw ValidationError("give exactly one of --topology FILE.csv or --workload NAME")
        }
        if config != nil && topology == nil { throw ValidationError("--config applies to --topology only") }
    }

    func run() throws {
        guard var chipConfig = ChipConfig.preset(named: chip) else {
            throw ValidationError("unknown chip '\(chip)'; expected one of \(ChipConfig.presets.map(\.name).joined(separator: ", "))")
        }
        guard let mode = TimingMode(rawValue: timing) else {
            throw ValidationError("unknown timing mode '\(timing)'; expected tpu or scalesim")
        }
        let layers: [LayerWork]
        let source: String
        var examples: Int?, forwardMACs: Int?, exampleNoun = "example"
        var workloadModel: (any Model)?
        let operandBytes = precision.precision.format.bytesPerElement
        if let topology {
            if let config { chipConfig = try SCALESimConfig.load(path: config).applied(to: chipConfig) }
            layers = try SCALESimTopology.load(path: topology, bytesPerOperand: operandBytes)
            source = topology
        } else {
            let model: any Model
            do {
                model = try Workloads.model(workload ?? "", scale: scale)
            } catch {
                throw ValidationError(error.description)
            }
            guard operations == nil || legacyPhases == nil else {
                throw ValidationError("--phases is the old spelling of --operations: give one of them")
            }
            let name = operations ?? legacyPhases ?? "training"
            let spellings: [String: StepPhases] = ["forward": .forward, "fwd": .forward, "training": .training, "train": .training]
            guard let p = spellings[name] else {
                throw ValidationError("unknown --operations '\(name)'; expected forward or training (fwd, train)")
            }
            layers = model.layers(phases: p, bytesPerOperand: operandBytes)
            source = "\(model.workload) (\(model.scaleName), \(p == .training ? "training step" : "forward"), one replica)"
            examples = model.batchPerReplica
            exampleNoun = model.input.exampleNoun
            forwardMACs = model.forwardMACsPerExample
            workloadModel = model
        }
        if let rows { chipConfig.rows = rows }
        if let columns { chipConfig.columns = columns }
        if let mxus { chipConfig.mxuCount = mxus }
        if let dataflow {
            guard let d = Dataflow(name: dataflow) else {
                throw ValidationError("unknown dataflow '\(dataflow)'; expected ws, is or os")
            }
            chipConfig.dataflow = d
        }
        // Detectors are checked before anything is printed: one that cannot see this
        // workload's run (moving-variance without batch norm) is refused as replay and
        // campaign refuse it, not costed.
        var detectors: Mitigation?
        if let mitigation, let workloadModel {
            do {
                let settings = try Mitigation(parsing: mitigation, response: .detect)
                let definition = try Workloads.named(workloadModel.workload)
                try settings.validate(optimizer: definition.optimizer(definition.defaultOptimizer), model: workloadModel)
                detectors = settings
            } catch { throw ValidationError("--mitigation: \(error)") }
        }
        let report = SimulationReport(source: source, cost: try TimingModel(config: chipConfig, mode: mode).cost(of: layers))
        if json {
            try printJSON(report)
        } else {
            print(SimulationTable(report: report, examples: examples, forwardMACsPerExample: forwardMACs, exampleNoun: exampleNoun).text)
        }
        if let settings = detectors, let workloadModel, !json {
            let cycles = settings.cycles(model: workloadModel, chip: chipConfig)
            print(String(format: "detectors %@: %d cycles per step (vector unit and checksum rows on the MXU), %.4f%% of the step's %d", settings.detectors.map(\.description).joined(separator: ","),
                         cycles, 100 * Double(cycles) / Double(max(1, report.totalBoundCycles)), report.totalBoundCycles))
        }
    }
}
