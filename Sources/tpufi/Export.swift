import ArgumentParser
import Foundation
import Recorder
import Replayer
import Sim

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the training state of a recorded step, or one operation's operands, as safetensors.",
        discussion: """
        Restores the state after --step updates (the nearest snapshot, then re-execution \
        checked against the recorded digests) and writes parameters (param/<name>), optimizer \
        slots (slot/<slot>/<name>) and batch-norm moving statistics (moving/<norm>/mean|variance).

        With --operation SITE, writes instead what that MXU operation received and produced in \
        global step --step on --replica: tensors `input`, `weight` (as the operation received \
        them, a software fault already applied) and `output` (as the next operation sees it), \
        shaped as the fault models index them. The step is re-executed (a faulty trace's \
        recorded fault re-applied) and checked against the trace's digests first, so a faulty \
        trace gives the faulty operands and the golden trace the golden ones.

        In Python: `from safetensors.numpy import load_file; load_file("state.safetensors")`.

        Examples:
          tpufi export golden/resnet18-small --step 120 --out state.safetensors
          tpufi export golden/resnet18-small --step 150 --operation dense_grad_in --replica 3 --out golden_op.safetensors
        """)

    @Argument(help: "Trace directory.")
    var trace: String

    @Option(help: "Global step: the state after this many updates (0: the initial state); with --operation, the step the operation ran in.")
    var step: Int

    @Option(help: "An MXU operation (`tpufi sites` lists them): write its operands and output in --step instead of the state.")
    var operation: String?

    @Option(help: "With --operation: the replica whose operation to write.")
    var replica: Int = 0

    @Option(help: "Output file (.safetensors).")
    var out: String

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    func run() throws {
        if let operation {
            let o = try OperationExport.export(try TraceReader(directory: trace), step: step, site: operation, replica: replica, to: out, threads: threads)
            let shapes = o.tensors.map { "\($0.name) \($0.shape.map(String.init).joined(separator: "x"))" }.joined(separator: ", ")
            print("wrote \(out): \(operation) on replica \(replica) in global step \(step) (\(shapes)), digests checked")
            return
        }
        let state = try StateExport.export(try TraceReader(directory: trace), step: step, to: out, threads: threads)
        print("wrote \(out): state after step \(step), digest \(state.digest)")
    }
}
