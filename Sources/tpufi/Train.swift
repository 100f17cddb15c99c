import ArgumentParser
import Foundation
import Sim

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a workload on the simulated TPU (no trace), reporting accuracy per epoch.",
        discussion: """
        Runs the same deterministic data-parallel training that `record` will record: R \
        replicas, each with its share of the global batch and its own batch-norm statistics, \
        gradients averaged in replica order, every matrix product on the simulated MXU.

        Examples:
          tpufi train --workload resnet18 --scale small --dataset fashion-mnist --epochs 3
          tpufi train --workload resnet18_sgd --scale tiny --dataset synthetic --steps 50 --replicas 2
        """)

    @OptionGroup var training: TrainingOptions

    @OptionGroup(title: "Mitigation") var mitigation: MitigationOptions

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    func run() throws {
        let loaded = try training.makeRun()
        let run = loaded.run
        if let note = loaded.note {
            // In --json mode standard output holds the JSON object only.
            if json { FileHandle.standardError.write(Data((note + "\n").utf8)) } else { emit(note) }
        }
        let total = try training.totalSteps(run)
        let (config, data) = (run.config, run.data)
        if !json {
            emit("\(config.title) on \(data.train.name): \(config.replicas) replicas x \(run.model.input.examples(run.model.batchPerReplica)), \(config.optimizer.kind.rawValue), \(run.stepsPerEpoch) steps per epoch, \(total) steps")
        }
        let progress = ProgressLine(total: total)
        let start = Date()
        let settings = try mitigation.settings()
        do {
            try settings?.validate(optimizer: config.optimizer, model: run.model)
        } catch {
            throw ValidationError("--mitigation: \(error)")
        }
        var events: [MitigationEvent] = []
        let (final, epochs) = run.train(from: run.initialState(), steps: total, mitigation: settings) { event in
            switch event {
            case .step(let step, let m):
                progress.update(done: step + 1, detail: String(format: "loss %.4f acc %.3f", m.loss, m.accuracy))
            case .epoch(let e):
                progress.clear()
                if !json {
                    emit(String(format: "epoch %d (%d steps): train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f s",
                                 e.epoch, e.steps, e.trainLoss, e.trainAccuracy, e.testLoss, e.testAccuracy, Date().timeIntervalSince(start)))
                }
            case .mitigation(let m):
                events.append(m)
                progress.clear()
                if !json {
                    emit("step \(m.step): \(m.action.rawValue)\(m.restoredTo.map { " to step \($0)" } ?? "") after " + m.detections.map { "\($0.detector) on \($0.variable) = \($0.value)" }.joined(separator: "; "))
                }
            }
        }
        if !json { emit("state digest after step \(final.step): \(final.digest)") }
        if json {
            struct Output: Encodable {
                let workload, scale, dataset: String
                let steps: Int
                let seconds: Double
                let epochs: [EpochSummary]
                let stateDigest: String
                let mitigation: MitigationRecord?
            }
            let out = Output(workload: config.workload, scale: config.scaleName, dataset: data.train.name, steps: total,
                             seconds: Date().timeIntervalSince(start), epochs: epochs, stateDigest: final.digest.description,
                             mitigation: settings.map { MitigationRecord(settings: $0, events: events) })
            try printJSON(out)
        }
    }
}

/// Writes a line to standard output at once (print buffers when the output is a file, and a
/// long run's epoch lines should reach a log as they happen).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
