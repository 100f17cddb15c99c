/// Everything that defines a training run: with the data, it determines every bit of every
/// step. (How many host threads compute it is not part of it: results do not depend on it.)
public struct TrainingConfig: Sendable, Equatable, Codable {
    public var workload: Workload
    public var scale: ResNetScale
    public var optimizer: OptimizerConfig
    public var schedule: LearningRateSchedule
    /// Simulated replicas (data-parallel TPU cores); the global batch is
    /// `replicas x scale.batchPerReplica`.
    public var replicas: Int
    public var seed: UInt64
    /// The chip whose MXU computes (its array rows set the accumulation folds).
    public var chip: ChipConfig
    public var precision: OperandPrecision
    public var augmentation: Augmentation

    /// The reference's setup for `workload`: its optimizer and learning-rate schedule,
    /// 8 replicas, a TPU v2 core's MXU with bf16 operands.
    public init(workload: Workload, scale: ResNetScale, optimizer: OptimizerKind? = nil, replicas: Int = 8, seed: UInt64 = 0,
                chip: ChipConfig = .tpuV2, precision: OperandPrecision = .bfloat16, augmentation: Augmentation = .none) {
        let kind = optimizer ?? workload.defaultOptimizer
        self.workload = workload
        self.scale = scale
        self.optimizer = OptimizerConfig(kind: kind)
        self.schedule = .reference(for: kind)
        self.replicas = replicas
        self.seed = seed
        self.chip = chip
        self.precision = precision
        self.augmentation = augmentation
    }

    public var globalBatch: Int { replicas * scale.batchPerReplica }
}

/// Errors setting up a run: a data set that does not fit the model, impossible sizes.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case mismatch(String)

    public var description: String {
        switch self {
        case .mismatch(let m): return m
        }
    }
}

/// A training run: the model, the trainer and the data order. Pure: the batches of any global
/// step and the result of any step depend only on the configuration, the data and the state.
public struct TrainingRun: Sendable {
    public let config: TrainingConfig
    public let model: ResNet18
    public let trainer: Trainer
    public let data: DataSplit
    public let sampler: BatchSampler

    /// `threads`: host threads for the replicas and the functional MXU (results are identical
    /// for any count).
    public init(config: TrainingConfig, data: DataSplit, threads: Int = 1) throws {
        let s = config.scale, d = data.train
        guard d.height == s.inputH, d.width == s.inputW, d.channels == s.inputChannels else {
            throw TrainingError.mismatch("data set \(d.name) has \(d.height)x\(d.width)x\(d.channels) images; the \(s.name) scale expects \(s.inputH)x\(s.inputW)x\(s.inputChannels)")
        }
        guard d.classes == s.classes else {
            throw TrainingError.mismatch("data set \(d.name) has \(d.classes) classes; the model has \(s.classes)")
        }
        guard config.replicas > 0, threads > 0 else {
            throw TrainingError.mismatch("replicas and threads must be positive (got \(config.replicas) and \(threads))")
        }
        self.config = config
        model = ResNet18(scale: s, batchNorm: config.workload.hasBatchNorm)
        trainer = Trainer(model: model, optimizer: config.optimizer, schedule: config.schedule,
                          mxu: MXU(config: config.chip, precision: config.precision, threads: threads))
        self.data = data
        sampler = try BatchSampler(dataset: d, globalBatch: config.globalBatch, replicas: config.replicas,
                                   seed: config.seed, augmentation: config.augmentation)
    }

    public var stepsPerEpoch: Int { sampler.stepsPerEpoch }

    public func initialState() -> TrainingState {
        TrainingState(model: model, optimizer: config.optimizer, seed: config.seed)
    }

    /// The replicas' batches of global step `step` (epoch `step / stepsPerEpoch`).
    public func batches(step: Int) -> [Batch] {
        sampler.batches(epoch: step / stepsPerEpoch, step: step % stepsPerEpoch)
    }

    /// One training step from `state` (whose ``TrainingState/step`` says which).
    public func step(_ state: TrainingState, hook: (any OperandHook)? = nil) -> (TrainingState, StepMetrics) {
        trainer.step(state, batches: batches(step: state.step), hook: hook)
    }

    /// Loss and accuracy on the whole test split with the moving statistics, in batches of
    /// the per-replica size. The mean loss weights batches by their size.
    public func evaluate(_ state: TrainingState) -> (loss: Float, accuracy: Float) {
        let unit = MatrixUnit(mxu: trainer.mxu)
        var lossSum: Float = 0, correct = 0
        for batch in data.test.testBatches(batchSize: max(config.scale.batchPerReplica, 64)) {
            let r = model.evaluate(parameters: state.parameters, moving: state.moving, images: batch.images, labels: batch.labels, unit: unit)
            lossSum += r.loss * Float(batch.count)
            correct += r.correct
        }
        return (lossSum / Float(data.test.count), Float(correct) / Float(data.test.count))
    }
}

extension Workload {
    /// The optimizer the reference trained this workload with.
    public var defaultOptimizer: OptimizerKind { self == .resnet18_sgd ? .sgd : .adam }
}

/// What a run reports as it goes.
public enum TrainingEvent: Sendable {
    case step(globalStep: Int, metrics: StepMetrics)
    case epoch(EpochSummary)
}

/// Means of the training metrics over an epoch's steps, and the test metrics after it.
public struct EpochSummary: Sendable, Codable, Equatable {
    public var epoch: Int
    public var steps: Int
    public var trainLoss: Float
    public var trainAccuracy: Float
    public var testLoss: Float
    public var testAccuracy: Float

    public init(epoch: Int, steps: Int, trainLoss: Float, trainAccuracy: Float, testLoss: Float, testAccuracy: Float) {
        self.epoch = epoch
        self.steps = steps
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
    }
}

extension TrainingRun {
    /// Trains from `state` for `steps` steps, evaluating on the test split at the end of every
    /// epoch (and after the last step if it ends mid-epoch); `report` sees every step and
    /// epoch as it completes.
    public func train(from state: TrainingState, steps: Int, report: (TrainingEvent) -> Void = { _ in }) -> (TrainingState, [EpochSummary]) {
        var state = state
        var summaries: [EpochSummary] = []
        var epochMetrics: [StepMetrics] = []
        let end = state.step + steps
        while state.step < end {
            let (next, metrics) = step(state)
            state = next
            epochMetrics.append(metrics)
            report(.step(globalStep: state.step - 1, metrics: metrics))
            if state.step % stepsPerEpoch == 0 || state.step == end {
                let test = evaluate(state)
                let n = Float(epochMetrics.count)
                let summary = EpochSummary(epoch: (state.step - 1) / stepsPerEpoch, steps: epochMetrics.count,
                                           trainLoss: Reduce.sum(epochMetrics.map(\.loss)) / n,
                                           trainAccuracy: Reduce.sum(epochMetrics.map(\.accuracy)) / n,
                                           testLoss: test.loss, testAccuracy: test.accuracy)
                summaries.append(summary)
                report(.epoch(summary))
                epochMetrics = []
            }
        }
        return (state, summaries)
    }
}
