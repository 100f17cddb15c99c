import Foundation
import Testing
@testable import Sim

/// One training step of the tiny ResNet-18 (2 replicas x 4 images, Adam) against PyTorch in
/// float64 (`scripts/reference/torch_resnet18_step.py` wrote the fixture), in fp32-operand
/// mode. Tolerance: every tensor within 1e-4 relative L2 error (measured worst: 3.4e-5, the
/// gradient of a batch-norm beta, a small sum with cancellation).
@Suite struct ReferenceStepTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/resnet18_tiny_step.safetensors").path

    static func floats(_ t: [String: Safetensors.Entry], _ name: String) throws -> [Float] {
        guard case .float(_, let v)? = t[name] else { throw SafetensorsError.malformed(file: fixture, reason: "no tensor \(name)") }
        return v
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let diff = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        let norm = b.reduce(0.0) { $0 + Double($1) * Double($1) }
        return (diff / max(norm, 1e-30)).squareRoot()
    }

    @Test func oneStepMatchesPyTorchInFp32OperandMode() throws {
        let (t, _) = try Safetensors.read(path: Self.fixture)
        let model = ResNet18(scale: .tiny)
        let trainer = Trainer(model: model, optimizer: OptimizerConfig(kind: .adam),
                              schedule: LearningRateSchedule(initial: 1e-3, final: 1e-3, decaySteps: 1),
                              mxu: MXU(config: .tiny, precision: .float32))
        var state = TrainingState(model: model, optimizer: trainer.optimizer, seed: 0)
        state.parameters = try model.parameterNames.map { try Self.floats(t, "param/" + $0) }
        let images = try Self.floats(t, "images")
        guard case .int(_, let labels)? = t["labels"] else { Issue.record("labels missing"); return }
        let per = images.count / 2
        let batches = (0..<2).map { r in
            Batch(images: Array(images[r * per ..< (r + 1) * per]), labels: Array(labels[r * 4 ..< r * 4 + 4]), indices: [])
        }
        let g = trainer.gradients(state, batches: batches)
        #expect(abs(g.metrics.loss - (try Self.floats(t, "loss"))[0]) < 1e-5)
        var worst = (0.0, "")
        for (i, name) in model.parameterNames.enumerated() {
            let e = Self.relativeError(g.gradients[i], try Self.floats(t, "grad/" + name))
            if e > worst.0 { worst = (e, "grad/" + name) }
        }
        let next = trainer.apply(g, to: state)
        for (i, name) in model.parameterNames.enumerated() {
            let e = Self.relativeError(next.parameters[i], try Self.floats(t, "updated/" + name))
            if e > worst.0 { worst = (e, "updated/" + name) }
        }
        for (n, norm) in model.norms.enumerated() {
            for (k, stat) in ["mean", "variance"].enumerated() {
                let e = Self.relativeError(next.modelState[2 * n + k], try Self.floats(t, "moving/\(norm.name)/\(stat)"))
                if e > worst.0 { worst = (e, "moving/\(norm.name)/\(stat)") }
            }
        }
        #expect(worst.0 < 1e-4, "worst tensor \(worst.1): relative error \(worst.0)")
        print("reference step: worst relative L2 error \(worst.0) (\(worst.1))")
    }
}
