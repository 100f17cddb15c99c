import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// `tpufi export --operation`: one MXU operation's operands in one step, re-executed and
/// checked against the trace; the faulty trace gives the faulty operands.
@Suite(.serialized) struct OperationExportTests {
    static let spec = InjectionSpec(workload: "resnet18_nobn", site: "dense", faultModel: .INPUT, replica: 1, globalStep: 5,
                                    positions: [[1, 2]], values: [1000])

    @Test func theFaultyTraceGivesTheFaultyOperandsAndTheGoldenTheGoldenOnes() throws {
        let golden = TinyGolden.nobnSGD
        let out = Scratch.path("operation-export-faulty")
        try? FileManager.default.removeItem(atPath: out)
        let r = try FaultReplay.run(golden: golden, spec: Self.spec, specName: "input.json", stepsAfterInjection: 1, out: out)
        let faulty = try TraceReader(directory: r.trace)
        let g = try OperationExport.capture(golden, step: 5, site: "dense", replica: 1, threads: 2)
        let f = try OperationExport.capture(faulty, step: 5, site: "dense", replica: 1, threads: 1)
        #expect(g.tensors.map(\.name) == ["input", "weight", "output"])
        let (input, weight, output) = (g.tensors[0], g.tensors[1], g.tensors[2])
        #expect(input.shape.count == 2 && input.values.count == input.shape.reduce(1, *) && output.values.count == output.shape.reduce(1, *))
        // The input differs exactly where the spec wrote, by what it wrote.
        let at = 1 * input.shape[1] + 2
        let changed = input.values.indices.filter { input.values[$0].bitPattern != f.tensors[0].values[$0].bitPattern }
        #expect(changed == [at] && f.tensors[0].values[at] == 1000)
        #expect(weight.values.map(\.bitPattern) == f.tensors[1].values.map(\.bitPattern))
        #expect(output.values.map(\.bitPattern) != f.tensors[2].values.map(\.bitPattern))
        // The other replica's operation is golden's in both traces.
        let other = try OperationExport.capture(faulty, step: 5, site: "dense", replica: 0, threads: 1)
        #expect(other == (try OperationExport.capture(golden, step: 5, site: "dense", replica: 0, threads: 1)))
        // The golden trace's operands do not depend on the thread count.
        #expect(g == (try OperationExport.capture(golden, step: 5, site: "dense", replica: 1, threads: 1)))

        // Written as safetensors, read back bit for bit.
        let file = Scratch.path("operation-export.safetensors")
        _ = try OperationExport.export(faulty, step: 5, site: "dense", replica: 1, to: file, threads: 1)
        let read = try Safetensors.read(path: file)
        #expect(read.metadata["site"] == "dense" && read.metadata["step"] == "5" && read.metadata["injection"]?.hasPrefix("INPUT at dense") == true)
        guard case .float(let shape, let values)? = read.tensors["input"] else { Issue.record("no input tensor"); return }
        #expect(shape == input.shape && values.map(\.bitPattern) == f.tensors[0].values.map(\.bitPattern))
    }

    @Test func whatDoesNotExistIsNamed() throws {
        let golden = TinyGolden.nobnSGD
        func error(_ body: () throws -> Any) -> String { do { _ = try body(); return "no error" } catch { return "\(error)" } }
        #expect(error { try OperationExport.capture(golden, step: 5, site: "dense_grad_out", replica: 0, threads: 1) }.contains("no MXU operation 'dense_grad_out'"))
        #expect(error { try OperationExport.capture(golden, step: 5, site: "dense", replica: 2, threads: 1) }.contains("replica 2 does not exist; the run has 2"))
        #expect(error { try OperationExport.capture(golden, step: 16, site: "dense", replica: 0, threads: 1) }.contains("holds no record of global step 16"))
        // An output onto the trace's own files is refused before any work.
        #expect(error { try OperationExport.export(golden, step: 5, site: "dense", replica: 0, to: golden.framesPath, threads: 1) } != "no error")
    }
}
