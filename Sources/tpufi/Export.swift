import ArgumentParser
import Foundation
import Recorder
import Sim

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the training state of a recorded step as safetensors.",
        discussion: """
        Restores the state after --step updates (the nearest snapshot, then re-execution \
        checked against the recorded digests) and writes parameters (param/<name>), optimizer \
        slots (slot/<slot>/<name>) and batch-norm moving statistics (moving/<norm>/mean|variance).
        In Python: `from safetensors.numpy import load_file; load_file("state.safetensors")`.
        """)

    @Argument(help: "Trace directory.")
    var trace: String

    @Option(help: "Global step: the state after this many updates (0: the initial state).")
    var step: Int

    @Option(help: "Output file (.safetensors).")
    var out: String

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    func run() throws {
        let state = try StateExport.export(try TraceReader(directory: trace), step: step, to: out, threads: threads)
        print("wrote \(out): state after step \(step), digest \(state.digest)")
    }
}
