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

    @Option(help: "Workload: \(Workload.allCases.map(\.rawValue).joined(separator: ", ")).")
    var workload: String = "resnet18"

    @Option(help: "Scale: tiny (8x8x1), small (28x28x1, Fashion-MNIST) or paper (32x32x3, CIFAR-10).")
    var scale: String = "small"

    @Option(help: "Data: fashion-mnist[:DIR], cifar10:PATH, or synthetic[:train=N,test=N,shape=HxWxC,classes=K,seed=S].")
    var dataset: String = "fashion-mnist"

    @Option(help: "Optimizer: adam, sgd, rmsprop or adagrad (default: the workload's).")
    var optimizer: String?

    @Option(help: "Epochs to train (ignored when --steps is given).")
    var epochs: Int = 1

    @Option(help: "Steps to train.")
    var steps: Int?

    @Option(help: "Simulated replicas (data-parallel cores).")
    var replicas: Int = 8

    @Option(help: "Seed of initialisation, data order and augmentation.")
    var seed: UInt64 = 0

    @Option(help: "Host threads for the MXU model (results are identical for any count).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Chip preset whose MXU computes: \(ChipConfig.presets.map(\.name).joined(separator: ", ")).")
    var chip: String = "tpu-v2"

    @Flag(help: "Use fp32 operands instead of the MXU's bfloat16 (for comparison with fp32 frameworks).")
    var fp32 = false

    @Flag(help: "Augment with random horizontal flips and pad-2 crops.")
    var augment = false

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    func run() throws {
        guard let w = Workload(rawValue: workload) else {
            throw ValidationError("unknown workload '\(workload)'; expected one of \(Workload.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let s = ResNetScale.named(scale) else { throw ValidationError("unknown scale '\(scale)'; expected tiny, small or paper") }
        let kind = try optimizer.map { name in
            guard let k = OptimizerKind(rawValue: name) else { throw ValidationError("unknown optimizer '\(name)'; expected adam, sgd, rmsprop or adagrad") }
            return k
        }
        guard let c = ChipConfig.preset(named: chip) else { throw ValidationError("unknown chip '\(chip)'") }
        let config = TrainingConfig(workload: w, scale: s, optimizer: kind, replicas: replicas, seed: seed, chip: c,
                                    precision: fp32 ? .float32 : .bfloat16,
                                    augmentation: augment ? Augmentation(flip: true, pad: 2) : .none, threads: threads)
        let data = try DatasetSource.parse(dataset).load()
        let run = try TrainingRun(config: config, data: data)
        let total = steps ?? epochs * run.stepsPerEpoch
        guard total > 0 else { throw ValidationError("nothing to train: \(total) steps") }
        if !json {
            emit("\(w.rawValue) \(s.name) on \(data.train.name): \(config.replicas) replicas x \(s.batchPerReplica) images, \(config.optimizer.kind.rawValue), \(run.stepsPerEpoch) steps per epoch, \(total) steps")
        }
        let progress = ProgressLine(total: total)
        let start = Date()
        let (final, epochs) = run.train(from: run.initialState(), steps: total) { event in
            switch event {
            case .step(let step, let m):
                progress.update(done: step + 1, detail: String(format: "loss %.4f acc %.3f", m.loss, m.accuracy))
            case .epoch(let e):
                progress.clear()
                if !json {
                    emit(String(format: "epoch %d (%d steps): train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f s",
                                 e.epoch, e.steps, e.trainLoss, e.trainAccuracy, e.testLoss, e.testAccuracy, Date().timeIntervalSince(start)))
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
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let out = Output(workload: w.rawValue, scale: s.name, dataset: data.train.name, steps: total,
                             seconds: Date().timeIntervalSince(start), epochs: epochs, stateDigest: final.digest.description)
            print(String(decoding: try encoder.encode(out), as: UTF8.self))
        }
    }
}

/// Writes a line to standard output at once (print buffers when the output is a file, and a
/// long run's epoch lines should reach a log as they happen).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
