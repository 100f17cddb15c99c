import ArgumentParser
import Foundation
import Sim

/// The options that define a training run, shared by `train` and `record`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Workload: \(Workloads.names.joined(separator: ", ")).")
    var workload: String = "resnet18"

    @Option(help: "Scale: tiny (16x16x1), small (28x28x1, Fashion-MNIST) or paper (32x32x3, CIFAR-10 or Fashion-MNIST padded to it).")
    var scale: String = "small"

    @Option(help: "Data: fashion-mnist[:DIR], cifar10:PATH, synthetic[:train=N,test=N,shape=HxWxC,classes=K,seed=S], or (token models: transformer) fortunes[:length=N,seed=S,dir=PATH]; @HxWxC after the kind pads and repeats channels (fashion-mnist@32x32x3, chosen by itself for a 32x32x3 model on fashion-mnist). Default: the workload's (\(TrainingOptions.defaultDatasets)).")
    var dataset: String?

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

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    @Option(help: "Chip preset whose MXU computes: \(ChipConfig.presets.map(\.name).joined(separator: ", ")).")
    var chip: String = "tpu-v2"

    @Option(help: PrecisionOption.help)
    var precision: PrecisionOption?

    @Flag(help: "Alias of --precision fp32 (kept for existing scripts).")
    var fp32 = false

    @Option(help: "Dropout masks: data-seeded (the reference's: keyed by the seed and the first two values of the layer's input, so an upstream change redraws them) or counter (keyed by step, replica and layer). Default: the workload's (data-seeded).")
    var dropoutMasks: DropoutKeying?

    @Option(help: "Training-time augmentation: reference (the reference study's, the default for its workloads: flips both ways, zero padding 6, one crop per replica batch), flip-crop (left-right flips and pad-2 crops per image) or none.")
    var augmentation: AugmentationChoice?

    /// The configuration of `workload` at `scale` (`--workload`, `--scale`), checked.
    static func config(workload: String, scale: String, optimizer: OptimizerKind?, replicas: Int, seed: UInt64 = 0,
                       chip: ChipConfig = .tpuV2, precision: OperandPrecision = .bfloat16,
                       augmentation: Augmentation? = nil) throws -> TrainingConfig {
        do {
            return try TrainingConfig(workload: workload, scale: scale, optimizer: optimizer, replicas: replicas, seed: seed,
                                      chip: chip, precision: precision, augmentation: augmentation)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The operand precision: `--precision`, or fp32 for the `--fp32` alias, else bf16.
    func operandPrecision() throws -> OperandPrecision {
        switch (precision, fp32) {
        case (nil, false): return .bfloat16
        case (nil, true): return .float32
        case (.some(let p), false): return p.precision
        case (.some(let p), true):
            guard p == .fp32 else { throw ValidationError("--fp32 is an alias of --precision fp32; it contradicts --precision \(p.rawValue)") }
            return .float32
        }
    }

    /// The run these options describe, with its data loaded (fitted to the model's input:
    /// ``TrainingRun/load(config:dataset:threads:)``), and the data set's spelling to record.
    func makeRun() throws -> TrainingRun.Loaded {
        let kind = try optimizer.map { name in
            guard let k = OptimizerKind(rawValue: name) else { throw ValidationError("unknown optimizer '\(name)'; expected adam, sgd, rmsprop or adagrad") }
            return k
        }
        guard let c = ChipConfig.preset(named: chip) else { throw ValidationError("unknown chip '\(chip)'") }
        let config = try Self.config(workload: workload, scale: scale, optimizer: kind, replicas: replicas, seed: seed, chip: c,
                                     precision: try operandPrecision(),
                                     augmentation: augmentation?.recipe)
        var configured = config
        if let keying = dropoutMasks {
            do {
                configured.model = try config.model.setting("dropoutMasks", to: .string(keying.rawValue), workload: workload)
            } catch {
                throw ValidationError("--dropout-masks: \(error.description)")
            }
        }
        return try TrainingRun.load(config: configured, dataset: try datasetSpelling(), threads: threads)
    }

    /// `--dataset`, else the workload's default data set.
    func datasetSpelling() throws -> String {
        if let dataset { return dataset }
        do {
            return try Workloads.defaultDataset(workload)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// Each default data set and the workloads that train on it, for `--help`
    /// (`fashion-mnist for resnet18, ...; fortunes for transformer`).
    static var defaultDatasets: String {
        var groups: [(dataset: String, workloads: [String])] = []
        for w in Workloads.all {
            let d = w.defaultDataset.description
            if let i = groups.firstIndex(where: { $0.dataset == d }) { groups[i].workloads.append(w.name) } else { groups.append((d, [w.name])) }
        }
        return groups.map { "\($0.dataset) for \($0.workloads.joined(separator: ", "))" }.joined(separator: "; ")
    }


    /// Steps to train: `--steps`, else `--epochs` whole epochs.
    func totalSteps(_ run: TrainingRun) throws -> Int {
        let total: Int
        if let steps {
            total = steps
        } else {
            let (product, overflow) = epochs.multipliedReportingOverflow(by: run.stepsPerEpoch)
            guard !overflow else { throw ValidationError("--epochs \(epochs) of \(run.stepsPerEpoch) steps each is more steps than fit in an Int") }
            total = product
        }
        guard total > 0 else { throw ValidationError("nothing to train: \(total) steps") }
        return total
    }
}

/// `--augmentation`: a named recipe (absent: the workload's own).
enum AugmentationChoice: String, ExpressibleByArgument, CaseIterable {
    case reference
    case flipCrop = "flip-crop"
    case none

    var recipe: Augmentation {
        switch self {
        case .reference: return .reference
        case .flipCrop: return Augmentation(flip: true, pad: 2)
        case .none: return .none
        }
    }
}

extension DropoutKeying: ExpressibleByArgument {}

/// The one default for `--threads` in every subcommand: all of the host's cores (divided
/// among a campaign's workers). Results never depend on it.
enum ThreadDefault {
    static var all: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
    static func perWorker(_ workers: Int) -> Int { max(1, all / max(1, workers)) }
}
