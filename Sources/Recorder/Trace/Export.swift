import Foundation
import Sim

/// Writes a recorded training state as safetensors, for Python (`safetensors.numpy.load_file`).
public enum StateExport {
    /// Tensors named `param/<name>`, `slot/<slot>/<name>` and `moving/<norm>/mean|variance`
    /// (a model-state tensor `<layer>/moving_mean` is written as `moving/<layer>/mean`; any
    /// other as `state/<name>`), with the run and the step in the metadata.
    public static func tensors(_ state: TrainingState, manifest: TraceManifest) throws -> [String: Safetensors.Entry] {
        let model = try manifest.config.makeModel()
        var out: [String: Safetensors.Entry] = [:]
        for (i, p) in model.parameters.enumerated() {
            out["param/" + p.name] = .float(shape: p.shape, values: state.parameters[i])
            for (j, slot) in manifest.config.optimizer.slotNames.enumerated() {
                out["slot/\(slot)/\(p.name)"] = .float(shape: p.shape, values: state.slots[i][j])
            }
        }
        for (k, t) in model.modelState.enumerated() {
            out[exportName(t.name)] = .float(shape: t.shape, values: state.modelState[k])
        }
        return out
    }

    /// `x_bn/moving_mean` -> `moving/x_bn/mean` (the names earlier versions wrote).
    static func exportName(_ name: String) -> String {
        for (suffix, stat) in [("/moving_mean", "mean"), ("/moving_variance", "variance")] where name.hasSuffix(suffix) {
            return "moving/\(name.dropLast(suffix.count))/\(stat)"
        }
        return "state/" + name
    }

    /// Restores the state after `step` updates of the trace and writes it to `path`; a path
    /// that is one of the trace's files or lies in (or contains) its directory is refused
    /// before any work.
    public static func export(_ reader: TraceReader, step: Int, to path: String, threads: Int) throws -> TrainingState {
        try OutputGuard.check(path, against: OutputGuard.files(in: reader.directory) + [reader.directory])
        let state = try TraceRestorer(reader: reader, threads: threads).state(at: step)
        try write(state, manifest: reader.manifest, to: path)
        return state
    }

    /// Writes the file atomically.
    public static func write(_ state: TrainingState, manifest: TraceManifest, to path: String) throws {
        let c = manifest.config
        let tensors = try tensors(state, manifest: manifest)
        do {
            try Safetensors.write(tensors,
                              metadata: ["workload": c.workload, "scale": c.scaleName, "optimizer": c.optimizer.kind.rawValue,
                                         "step": String(state.step), "stateDigest": state.digest.description, "tool": manifest.tool],
                              to: path)
        } catch {
            throw TraceError.io(file: path, reason: "cannot write: \(OutputGuard.reason(error))")
        }
    }
}
