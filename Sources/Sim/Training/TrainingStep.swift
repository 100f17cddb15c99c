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

    /// What all replicas' forward and backward passes produced, reduced over replicas.
    public struct Gradients: Sendable {
        /// Per trainable tensor, the replica average `(g0 + g1 + ...) / R` (replica order).
        public var gradients: [[Float]]
        /// Per batch-norm layer, the replica means of the batch mean and variance.
        public var statistics: [(mean: [Float], variance: [Float])]
        public var metrics: StepMetrics
    }

    /// Forward and backward on every replica (each normalising with its own batch
    /// statistics), then the all-reduce. `hook`, if given, may corrupt MXU operands of any
    /// replica.
    public func gradients(_ state: TrainingState, batches: [ReplicaBatch], hook: (any OperandHook)? = nil) -> Gradients {
        let replicas = batches.count
        precondition(replicas > 0, "a step needs at least one replica")
        var results: [ResNet18.ReplicaResult] = []
        for (r, batch) in batches.enumerated() {
            let unit = MatrixUnit(mxu: mxu, replica: r, hook: hook)
            results.append(model.trainReplica(parameters: state.parameters, images: batch.images, labels: batch.labels, unit: unit))
        }
        let scale = 1 / Float(replicas)
        func average(_ tensors: [[Float]]) -> [Float] {
            var sum = tensors[0]
            for t in tensors.dropFirst() { for i in sum.indices { sum[i] += t[i] } }
            return sum.map { $0 * scale }
        }
        let grads = state.parameters.indices.map { t in average(results.map { $0.gradients[t] }) }
        let stats = model.norms.indices.map { n in
            (mean: average(results.map { $0.batchStatistics[n].mean }), variance: average(results.map { $0.batchStatistics[n].variance }))
        }
        let correct = results.reduce(0) { $0 + $1.correct }
        let total = batches.reduce(0) { $0 + $1.labels.count }
        let metrics = StepMetrics(loss: Reduce.sum(results.map(\.loss)) * scale, accuracy: Float(correct) / Float(total),
                                  learningRate: schedule.rate(at: state.step))
        return Gradients(gradients: grads, statistics: stats, metrics: metrics)
    }

    /// The update: the optimizer on every tensor, the moving statistics, the step count.
    public func apply(_ g: Gradients, to state: TrainingState) -> TrainingState {
        var next = state
        let lr = schedule.rate(at: state.step)
        for t in state.parameters.indices {
            optimizer.apply(parameters: &next.parameters[t], gradients: g.gradients[t], slots: &next.slots[t], learningRate: lr, step: state.step)
        }
        for (n, s) in g.statistics.enumerated() {
            BatchNorm.updateMoving(&next.moving[2 * n], batch: s.mean, momentum: model.bnMomentum)
            BatchNorm.updateMoving(&next.moving[2 * n + 1], batch: s.variance, momentum: model.bnMomentum)
        }
        next.step += 1
        return next
    }

    /// One training step: ``gradients(_:batches:hook:)`` then ``apply(_:to:)``.
    public func step(_ state: TrainingState, batches: [ReplicaBatch], hook: (any OperandHook)? = nil) -> (TrainingState, StepMetrics) {
        let g = gradients(state, batches: batches, hook: hook)
        return (apply(g, to: state), g.metrics)
    }
}
