import ArgumentParser
import Recorder
import Sim

@main
struct Tpufi: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tpufi",
        abstract: "Record-and-replay fault injection into DNN training on a simulated TPU.",
        discussion: """
        The simulated TPU has systolic matrix units with TPU numerics (bfloat16 multiplies,
        fp32 accumulation in a documented order) and a cycle-approximate timing model.
        Start with `tpufi simulate --workload resnet18 --scale small` to see where the
        cycles of a training step go.
        """,
        version: TraceManifest.toolVersion + " (trace format \(TraceManifest.currentFormatVersion))",
        subcommands: [Simulate.self, Sites.self, Train.self, Record.self, Inspect.self, Export.self, Replay.self, Classify.self, BisectCommand.self,
                      CampaignCommand.self, Detect.self, Merge.self, ReportCommand.self, OptimizerStudyCommand.self])

    /// Keeps freed training buffers for reuse (``HostMemory``), then runs the command.
    static func main() {
        HostMemory.keepFreedMemory()
        main(nil)
    }
}
