/// The complete state of a data-parallel training run between steps: what a snapshot holds.
/// (The data order and every random draw come from counter-based generators keyed by step,
/// so no generator state is needed.)
public struct TrainingState: Sendable, Equatable {
    /// Trainable tensors, in the model's ``ResNet18/parameterNames`` order.
    public var parameters: [[Float]]
    /// Per parameter tensor, the optimizer's slots (``OptimizerConfig/slotNames``).
    public var slots: [[[Float]]]
    /// Per batch-norm layer: moving mean, then moving variance.
    public var moving: [[Float]]
    /// Updates applied so far (the global step of the next update).
    public var step: Int

    public init(model: ResNet18, optimizer: OptimizerConfig, seed: UInt64) {
        let (p, m) = model.initialParameters(seed: seed)
        parameters = p
        moving = m
        slots = p.map { t in optimizer.slotNames.map { _ in [Float](repeating: optimizer.slotInitialValue, count: t.count) } }
        step = 0
    }
}

/// One replica's share of a step's global batch.
public struct ReplicaBatch: Sendable {
    public var images: [Float]
    public var labels: [Int32]

    public init(images: [Float], labels: [Int32]) {
        self.images = images
        self.labels = labels
    }
}

/// Metrics of one training step.
public struct StepMetrics: Sendable, Equatable, Codable {
    /// Mean over replicas of each replica's mean loss (replica order).
    public var loss: Float
    /// Correct predictions over the global batch.
    public var accuracy: Float
    public var learningRate: Float
}

/// A data-parallel training step on R simulated replicas.
public struct Trainer: Sendable {
    public let model: ResNet18
    public let optimizer: OptimizerConfig
    public let schedule: LearningRateSchedule
    public let mxu: MXU

    public init(model: ResNet18, optimizer: OptimizerConfig, schedule: LearningRateSchedule, mxu: MXU) {
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.mxu = mxu
    }

    /// Runs forward and backward on every replica (each with its own batch-norm statistics),
    /// averages the gradients over replicas in replica order (`(g0 + g1 + ...) / R`), updates
    /// the moving statistics with the replica-mean batch statistics, and applies the
    /// optimizer. `hook`, if given, may corrupt MXU operands of any replica.
    public func step(_ state: TrainingState, batches: [ReplicaBatch], hook: (any OperandHook)? = nil) -> (TrainingState, StepMetrics) {
        let replicas = batches.count
        precondition(replicas > 0, "a step needs at least one replica")
        var results: [ResNet18.ReplicaResult] = []
        for (r, batch) in batches.enumerated() {
            let unit = MatrixUnit(mxu: mxu, replica: r, hook: hook)
            results.append(model.trainReplica(parameters: state.parameters, images: batch.images, labels: batch.labels, unit: unit))
        }
        let scale = 1 / Float(replicas)
        var next = state
        let lr = schedule.rate(at: state.step)
        for t in state.parameters.indices {
            var g = results[0].gradients[t]
            for r in 1..<replicas {
                let other = results[r].gradients[t]
                for i in g.indices { g[i] += other[i] }
            }
            for i in g.indices { g[i] *= scale }
            optimizer.apply(parameters: &next.parameters[t], gradients: g, slots: &next.slots[t], learningRate: lr, step: state.step)
        }
        for n in model.norms.indices {
            var mean = results[0].batchStatistics[n].mean, variance = results[0].batchStatistics[n].variance
            for r in 1..<replicas {
                for c in mean.indices {
                    mean[c] += results[r].batchStatistics[n].mean[c]
                    variance[c] += results[r].batchStatistics[n].variance[c]
                }
            }
            BatchNorm.updateMoving(&next.moving[2 * n], batch: mean.map { $0 * scale }, momentum: model.bnMomentum)
            BatchNorm.updateMoving(&next.moving[2 * n + 1], batch: variance.map { $0 * scale }, momentum: model.bnMomentum)
        }
        next.step += 1
        let loss = Reduce.sum(results.map(\.loss)) * scale
        let correct = results.reduce(0) { $0 + $1.correct }
        let total = batches.reduce(0) { $0 + $1.labels.count }
        return (next, StepMetrics(loss: loss, accuracy: Float(correct) / Float(total), learningRate: lr))
    }
}
