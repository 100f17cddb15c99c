import Dispatch
import Foundation

/// The complete state of a data-parallel training run between steps: what a snapshot holds.
/// (The data order and every random draw come from counter-based generators keyed by step,
/// so no generator state is needed.)
public struct TrainingState: Sendable, Equatable {
    /// Trainable tensors, in the model's ``Model/parameters`` order.
    public var parameters: [[Float]]
    /// Per parameter tensor, the optimizer's slots (``OptimizerConfig/slotNames``).
    public var slots: [[[Float]]]
    /// The model's own state (``Model/modelState``: e.g. batch-norm moving statistics).
    public var modelState: [[Float]]
    /// Updates applied so far (the global step of the next update).
    public var step: Int

    /// A state from its parts (e.g. restored from a snapshot); sizes are not checked here.
    public init(parameters: [[Float]], slots: [[[Float]]], modelState: [[Float]], step: Int) {
        self.parameters = parameters
        self.slots = slots
        self.modelState = modelState
        self.step = step
    }

    public init(model: any Model, optimizer: OptimizerConfig, seed: UInt64) {
        let (p, m) = model.initialState(seed: seed)
        parameters = p
        modelState = m
        slots = p.map { t in optimizer.slotNames.map { _ in [Float](repeating: optimizer.slotInitialValue, count: t.count) } }
        step = 0
    }
}

/// Metrics of one training step.
public struct StepMetrics: Sendable, Equatable, Codable {
    /// Mean over replicas of each replica's mean loss (replica order).
    public var loss: Float
    /// Correct predictions over the global batch.
    public var accuracy: Float
    public var learningRate: Float

    public init(loss: Float, accuracy: Float, learningRate: Float) {
        self.loss = loss
        self.accuracy = accuracy
        self.learningRate = learningRate
    }
}

/// A data-parallel training step on R simulated replicas.
public struct Trainer: Sendable {
    public let model: any Model
    public let optimizer: OptimizerConfig
    public let schedule: LearningRateSchedule
    public let mxu: MXU

    public init(model: any Model, optimizer: OptimizerConfig, schedule: LearningRateSchedule, mxu: MXU) {
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.mxu = mxu
    }

    /// What all replicas' forward and backward passes produced, reduced over replicas.
    public struct Gradients: Sendable {
        /// Per trainable tensor, the replica average `(g0 + g1 + ...) / R` (replica order).
        public var gradients: [[Float]]
        /// Per model-state tensor, the replica mean of the replicas' statistics (for batch
        /// norm: the batch mean and variance).
        public var statistics: [[Float]]
        public var metrics: StepMetrics
        /// Per replica, the digest of every MXU operation's output in execution order (empty
        /// unless asked for).
        public var siteDigests: [[(site: SiteID, digest: Digest)]]
        /// Products whose checksums disagreed, replica by replica (empty unless asked for).
        public var checksumFailures: [ChecksumFailure] = []

        /// A step's reduced gradients and batch statistics, e.g. read back from a trace to
        /// re-apply the update (``Trainer/apply(_:to:)`` uses only these two; the metrics and
        /// digests default to NaN and none).
        public init(gradients: [[Float]], statistics: [[Float]],
                    metrics: StepMetrics = StepMetrics(loss: .nan, accuracy: .nan, learningRate: .nan),
                    siteDigests: [[(site: SiteID, digest: Digest)]] = []) {
            self.gradients = gradients
            self.statistics = statistics
            self.metrics = metrics
            self.siteDigests = siteDigests
        }
    }

    /// Forward and backward on every replica (each normalising with its own batch
    /// statistics), then the all-reduce. `hook`, if given, may corrupt MXU operands of any
    /// replica. `digests`, if given, digests every MXU output that way (``Gradients/siteDigests``);
    /// `capture`, if given, sees every MXU output. `checkProducts`: check every MXU product's
    /// checksums (``ProductChecksum``).
    public func gradients(_ state: TrainingState, batches: [Batch], hook: (any OperandHook)? = nil,
                          digests: OutputDigest? = nil, capture: OutputCapture? = nil, checkProducts: Bool = false) -> Gradients {
        let replicas = batches.count
        precondition(replicas > 0, "a step needs at least one replica")
        // Replicas are independent until the all-reduce: with several host threads they run
        // side by side on single-threaded MXUs; the reduction below is in replica order
        // either way, so the bits do not change.
        let workers = min(mxu.threads, replicas)
        let unitMXU = workers > 1 ? MXU(foldLength: mxu.foldLength, format: mxu.format, threads: 1) : mxu
        let slots = ResultSlots<(ReplicaResult, SiteDigests?, ProductChecks?)>(count: replicas)
        // What the replicas derive alike from the parameters, computed once for the step.
        let derived = DerivedOperands()
        let work: @Sendable (Int) -> Void = { [model] worker in
            var r = worker
            while r < replicas {
                let siteDigests = digests != nil || capture != nil ? SiteDigests(digests, replica: r, capture: capture) : nil
                let checks = checkProducts ? ProductChecks(replica: r) : nil
                let unit = MatrixUnit(mxu: unitMXU, replica: r, hook: hook, digests: siteDigests, checks: checks, derivedOperands: derived)
                slots.set(r, (model.trainReplica(parameters: state.parameters, modelState: state.modelState, batch: batches[r], unit: unit),
                              siteDigests, checks))
                r += workers
            }
        }
        if workers > 1 { DispatchQueue.concurrentPerform(iterations: workers, execute: work) } else { work(0) }
        let results = slots.values.map(\.0)
        let siteDigests = slots.values.map { $0.1?.entries ?? [] }
        let scale = 1 / Float(replicas)
        // Replica by replica in order, then the scale: each element's sum is the plain loop's,
        // the elements side by side in vectors (a checked index per element kept this serial
        // part of the step scalar).
        func average(_ tensors: [[Float]]) -> [Float] {
            var sum = tensors[0]
            sum.withUnsafeMutableBufferPointer { total in
                for t in tensors.dropFirst() {
                    precondition(t.count == total.count, "replicas' tensors differ in size")
                    t.withUnsafeBufferPointer { values in for i in 0..<total.count { total[i] += values[i] } }
                }
                for i in 0..<total.count { total[i] *= scale }
            }
            return sum
        }
        let grads = state.parameters.indices.map { t in average(results.map { $0.gradients[t] }) }
        let stats = state.modelState.indices.map { n in average(results.map { $0.statistics[n] }) }
        let correct = results.reduce(0) { $0 + $1.correct }
        let total = batches.reduce(0) { $0 + $1.labels.count }
        let metrics = StepMetrics(loss: Reduce.sum(results.map(\.loss)) * scale, accuracy: Float(correct) / Float(total),
                                  learningRate: schedule.rate(at: state.step))
        var result = Gradients(gradients: grads, statistics: stats, metrics: metrics, siteDigests: siteDigests)
        result.checksumFailures = slots.values.flatMap { $0.2?.failures ?? [] }
        return result
    }

    /// The update: the optimizer on every tensor, the model state, the step count.
    /// A pure function of `g.gradients`, `g.statistics`, the configuration and `state`: traces
    /// store just those two as update deltas and re-apply them to restore a step.
    /// `slotOrigin`: the step at which the optimizer's slots started (0: with the run; the
    /// optimizer study switches optimizers mid-run, and Adam's bias correction must see fresh
    /// moments as fresh); the learning rate follows the global step either way.
    public func apply(_ g: Gradients, to state: TrainingState, slotOrigin: Int = 0) -> TrainingState {
        var next = state
        let lr = schedule.rate(at: state.step)
        for t in state.parameters.indices {
            optimizer.apply(parameters: &next.parameters[t], gradients: g.gradients[t], slots: &next.slots[t], learningRate: lr,
                            step: state.step - slotOrigin)
        }
        model.updateModelState(&next.modelState, statistics: g.statistics)
        next.step += 1
        return next
    }

    /// One training step: ``gradients(_:batches:hook:)`` then ``apply(_:to:)``.
    public func step(_ state: TrainingState, batches: [Batch], hook: (any OperandHook)? = nil) -> (TrainingState, StepMetrics) {
        let g = gradients(state, batches: batches, hook: hook)
        return (apply(g, to: state), g.metrics)
    }
}

/// Results written by worker threads into their own slots, read after all have finished.
final class ResultSlots<T: Sendable>: @unchecked Sendable {
    private var slots: [T?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ value: T) {
        lock.lock()
        slots[i] = value
        lock.unlock()
    }

    /// Every slot, in index order (all must have been set).
    var values: [T] { slots.map { $0! } }
}
