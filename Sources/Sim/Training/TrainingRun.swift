import Dispatch

/// Everything that defines a training run: with the data, it determines every bit of every
/// step. (How many host threads compute it is not part of it: results do not depend on it.)
public struct TrainingConfig: Sendable, Equatable, Codable {
    /// The workload's name in ``Workloads``.
    public var workload: String
    /// The model's configuration (its scale: widths, input shape, batch per replica, options),
    /// recorded under the manifest key `scale`.
    public var model: ModelConfiguration
    public var optimizer: OptimizerConfig
    public var schedule: LearningRateSchedule
    /// Simulated replicas (data-parallel TPU cores); the global batch is `replicas` times the
    /// model's batch per replica.
    public var replicas: Int
    public var seed: UInt64
    /// The chip whose MXU computes (its array rows set the accumulation folds).
    public var chip: ChipConfig
    public var precision: OperandPrecision
    public var augmentation: Augmentation

    enum CodingKeys: String, CodingKey {
        case workload, model = "scale", optimizer, schedule, replicas, seed, chip, precision, augmentation
    }

    /// The reference's setup for `workload` at the preset `scale`: its optimizer and
    /// learning-rate schedule (``WorkloadDefinition/schedule(for:)``), 8 replicas, a TPU v2 core's MXU with bf16 operands, and its
    /// augmentation unless `augmentation` says otherwise.
    public init(workload: String, scale: String, optimizer: OptimizerKind? = nil, replicas: Int = 8, seed: UInt64 = 0,
                chip: ChipConfig = .tpuV2, precision: OperandPrecision = .bfloat16, augmentation: Augmentation? = nil) throws(ModelError) {
        let definition = try Workloads.named(workload)
        try self.init(workload: workload, model: try definition.preset(scale), optimizer: optimizer, replicas: replicas, seed: seed,
                      chip: chip, precision: precision, augmentation: augmentation)
    }

    /// The same with a model configuration of its own (e.g. a custom scale).
    public init(workload: String, model: ModelConfiguration, optimizer: OptimizerKind? = nil, replicas: Int = 8, seed: UInt64 = 0,
                chip: ChipConfig = .tpuV2, precision: OperandPrecision = .bfloat16, augmentation: Augmentation? = nil) throws(ModelError) {
        let definition = try Workloads.named(workload)
        let defaultKind = definition.defaultOptimizer
        let kind = optimizer ?? defaultKind
        self.workload = workload
        self.model = model
        self.optimizer = definition.optimizer(kind)
        self.schedule = definition.schedule(for: kind)
        self.replicas = replicas
        self.seed = seed
        self.chip = chip
        self.precision = precision
        self.augmentation = augmentation ?? definition.defaultAugmentation
    }

    /// The model this configuration describes.
    public func makeModel() throws(ModelError) -> any Model {
        try Workloads.model(workload, model)
    }

    /// The scale preset's name, for messages.
    public var scaleName: String { model.name ?? "custom" }

    /// `workload scale`, for messages.
    public var title: String { "\(workload) \(scaleName)" }
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
    public let model: any Model
    public let trainer: Trainer
    public let data: DataSplit
    public let sampler: BatchSampler

    /// `threads`: host threads for the replicas and the functional MXU (results are identical
    /// for any count).
    public init(config: TrainingConfig, data: DataSplit, threads: Int = 1) throws {
        let model = try config.makeModel()
        let d = data.train
        switch model.input {
        case .images(let h, let w, let c, let classes):
            guard d.height == h, d.width == w, d.channels == c else {
                let adaptation = ImageAdaptation(height: h, width: w, channels: c)
                let hint = adaptation.fits(d) ? " (its images can be adapted: add @\(adaptation) after the data set's kind, as in fashion-mnist@\(adaptation))" : ""
                throw TrainingError.mismatch("data set \(d.name) has \(d.height)x\(d.width)x\(d.channels) images; \(model.title) expects \(h)x\(w)x\(c)\(hint)")
            }
            guard d.classes == classes else {
                throw TrainingError.mismatch("data set \(d.name) has \(d.classes) classes; the model has \(classes)")
            }
        case .tokens(let sourceLength, let targetLength, let vocabulary):
            guard let s = d.sequences else {
                throw TrainingError.mismatch("data set \(d.name) has images; \(model.title) reads token sequences (try --dataset fortunes)")
            }
            guard s.sourceLength == sourceLength, s.targetLength == targetLength, s.vocabulary == vocabulary else {
                throw TrainingError.mismatch("data set \(d.name) has \(s.sourceLength)-token sources, \(s.targetLength)-token targets and a vocabulary of \(s.vocabulary); \(model.title) expects \(sourceLength), \(targetLength) and \(vocabulary)")
            }
        }
        if case .images = model.input, d.sequences != nil {
            throw TrainingError.mismatch("data set \(d.name) holds token sequences; \(model.title) reads images")
        }
        guard config.replicas > 0, threads > 0 else {
            throw TrainingError.mismatch("replicas and threads must be positive (got \(config.replicas) and \(threads))")
        }
        self.config = config
        self.model = model
        trainer = Trainer(model: model, optimizer: config.optimizer, schedule: config.schedule,
                          mxu: MXU(config: config.chip, precision: config.precision, threads: threads))
        self.data = data
        let (global, overflow) = config.replicas.multipliedReportingOverflow(by: model.batchPerReplica)
        guard !overflow else { throw TrainingError.mismatch("\(config.replicas) replicas of \(model.batchPerReplica) examples overflow") }
        sampler = try BatchSampler(dataset: d, globalBatch: global, replicas: config.replicas,
                                   seed: config.seed, augmentation: config.augmentation)
    }

    public var stepsPerEpoch: Int { sampler.stepsPerEpoch }

    /// Examples per step over all replicas.
    public var globalBatch: Int { config.replicas * model.batchPerReplica }

    /// What one replica's training step costs on the run's chip (the timing model, operands
    /// at the run's precision).
    public func stepCost() throws(HardwareError) -> StepCost {
        let layers = model.layers(phases: .training, bytesPerOperand: config.precision.format.bytesPerElement)
        return try TimingModel(config: config.chip).cost(of: layers)
    }

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
    /// the per-replica size (at least 64 examples). The mean loss weights batches by their
    /// predictions (images, or target tokens), and the accuracy is over predictions.
    ///
    /// With several host threads the batches run side by side on single-threaded MXUs (as a
    /// step's replicas do); the sums are taken in batch order either way, so the bits do not
    /// depend on the thread count.
    public func evaluate(_ state: TrainingState) -> (loss: Float, accuracy: Float) {
        let batches = data.test.testBatches(batchSize: max(model.batchPerReplica, 64))
        let mxu = trainer.mxu
        let workers = min(mxu.threads, batches.count)
        let unitMXU = workers > 1 ? MXU(foldLength: mxu.foldLength, format: mxu.format, threads: 1) : mxu
        let slots = ResultSlots<(loss: Float, correct: Int, count: Int)>(count: batches.count)
        let work: @Sendable (Int) -> Void = { [model] worker in
            let unit = MatrixUnit(mxu: unitMXU)
            var b = worker
            while b < batches.count {
                let batch = batches[batches.startIndex + b]
                let r = model.evaluate(parameters: state.parameters, modelState: state.modelState, batch: batch, unit: unit)
                slots.set(b, (r.loss, r.correct, batch.count))
                b += workers
            }
        }
        if workers > 1 { DispatchQueue.concurrentPerform(iterations: workers, execute: work) } else { work(0) }
        var lossSum: Float = 0, correct = 0
        for r in slots.values {
            lossSum += r.loss * Float(r.count)
            correct += r.correct
        }
        let predictions = Float(data.test.predictionCount)
        return (lossSum / predictions, Float(correct) / predictions)
    }
}

extension TrainingRun {
    /// A run set up from a data set's spelling, and the spelling that reproduces its data.
    public struct Loaded: Sendable {
        public let run: TrainingRun
        /// The data set as a trace records it: the spelling as given, or the fitted source's
        /// (``DatasetSource/fitted(to:)``, e.g. `fashion-mnist@32x32x3`) when one was fitted.
        public let dataset: String
        /// The adaptation fitted to the model's input without being spelled out, if any.
        public let fitted: ImageAdaptation?
        /// One line saying what was fitted and how it is recorded, if anything was: the
        /// caller prints it.
        public let note: String?
    }

    /// Parses `spelling` (``DatasetSource/parse(_:)``), fits it to the model's input
    /// (``DatasetSource/fitted(to:)``), loads it and sets up the run. Errors: those of the
    /// model, the data set and ``init(config:data:threads:)``.
    public static func load(config: TrainingConfig, dataset spelling: String, threads: Int = 1) throws -> Loaded {
        let given = try DatasetSource.parse(spelling)
        let source = given.fitted(to: try config.makeModel().input)
        let run = try TrainingRun(config: config, data: try source.load(), threads: threads)
        guard source != given else { return Loaded(run: run, dataset: spelling, fitted: nil, note: nil) }
        let title = run.model.title
        switch source {
        case .adapted(_, let adaptation):
            return Loaded(run: run, dataset: source.description, fitted: adaptation,
                          note: "data: \(spelling) adapted to \(title)'s \(adaptation) input as \(source.description) (centred on a black border, one channel repeated)")
        default:
            return Loaded(run: run, dataset: source.description, fitted: nil,
                          note: "data: \(spelling) generated at \(title)'s input shape as \(source.description)")
        }
    }
}

/// What a run reports as it goes.
public enum TrainingEvent: Sendable {
    case step(globalStep: Int, metrics: StepMetrics)
    case epoch(EpochSummary)
    /// A detector fired and mitigation acted (only in runs with ``Mitigation``).
    case mitigation(MitigationEvent)
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
    /// epoch as it completes. With `mitigation`, its detectors check every step and `report`
    /// hears what they did.
    public func train(from state: TrainingState, steps: Int, mitigation: Mitigation? = nil,
                      report: (TrainingEvent) -> Void = { _ in }) -> (TrainingState, [EpochSummary]) {
        var summaries: [EpochSummary] = []
        let final = TrainingLoop(run: self, mitigation: mitigation).run(from: state, to: state.step + steps, stop: { _ in false }, step: { s in
            report(.step(globalStep: s.index, metrics: s.metrics))
        }, epoch: { summary, _ in
            summaries.append(summary)
            report(.epoch(summary))
        }, stepEnd: { _ in }, mitigated: { report(.mitigation($0)) })
        return (final, summaries)
    }
}
