import Foundation
import Sim

/// Writes a recorded training state as safetensors, for Python (`safetensors.numpy.load_file`).
public enum StateExport {
    /// Tensors named `param/<name>`, `slot/<slot>/<name>` and `moving/<norm>/mean|variance`,
    /// with the run and the step in the metadata.
    public static func tensors(_ state: TrainingState, manifest: TraceManifest) -> [String: Safetensors.Entry] {
        let model = ResNet18(scale: manifest.config.scale, batchNorm: manifest.config.workload.hasBatchNorm)
        var out: [String: Safetensors.Entry] = [:]
        for (i, name) in model.parameterNames.enumerated() {
            out["param/" + name] = .float(shape: model.parameterShapes[i], values: state.parameters[i])
            for (j, slot) in manifest.config.optimizer.slotNames.enumerated() {
                out["slot/\(slot)/\(name)"] = .float(shape: model.parameterShapes[i], values: state.slots[i][j])
            }
        }
        for (n, norm) in model.norms.enumerated() {
            out["moving/\(norm.name)/mean"] = .float(shape: [norm.channels], values: state.moving[2 * n])
            out["moving/\(norm.name)/variance"] = .float(shape: [norm.channels], values: state.moving[2 * n + 1])
        }
        return out
    }

    public static func write(_ state: TrainingState, manifest: TraceManifest, to path: String) throws {
        let c = manifest.config
        try Safetensors.write(tensors(state, manifest: manifest),
                              metadata: ["workload": c.workload.rawValue, "scale": c.scale.name, "optimizer": c.optimizer.kind.rawValue,
                                         "step": String(state.step), "stateDigest": state.digest.description, "tool": manifest.tool],
                              to: path)
    }
}
