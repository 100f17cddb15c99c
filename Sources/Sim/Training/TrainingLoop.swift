/// The one training loop: `train`, `record` (and its resume), `replay` and the optimizer study
/// all run it, each adding what it needs through the closures of ``run(from:to:epochMetrics:stop:step:epoch:stepEnd:)``.
///
/// Per step, in this order: the replicas' forward and backward (with the step's operand hook,
/// if any) and the update; `stop` (may end the run after this step); `step` (knows whether the
/// step is the last); at an epoch end or the last step, the test evaluation (as
/// ``evaluation`` says) and `epoch`; then `stepEnd`. A recorder writes snapshots in `step`,
/// epoch summaries in `epoch` and step records in `stepEnd`, so frames keep that order.
public struct TrainingLoop {
    /// When the loop evaluates the test set (each evaluation is a full pass over it).
    public enum TestEvaluation: Sendable, Equatable {
        /// At every epoch end and at the last step, however the run ended.
        case everyEpoch
        /// At every epoch end and at the last step, except when `stop` ended the run before
        /// `end`: a replay that stopped early (bit-identical to golden again, or a non-finite
        /// loss) is classified without a test accuracy, so it spends no evaluation on one.
        case everyEpochUnlessStopped
        /// Only when the run reaches `end`; epoch summaries otherwise carry NaN test metrics.
        /// For fault campaigns, whose classification needs only the final test accuracy and
        /// none at all for a run that stopped early.
        case atEndOnly
        /// Never (summaries carry NaN test metrics).
        case never
    }

    /// One step as the loop ran it.
    public struct Step {
        /// The global step (0-based) whose update this was.
        public var index: Int
        /// What the replicas computed, reduced (with metrics and, if asked, site digests).
        public var gradients: Trainer.Gradients
        /// The state after the update.
        public var state: TrainingState
        /// Whether the run ends after this step (false while `stop` decides).
        public var last: Bool

        public var metrics: StepMetrics { gradients.metrics }
    }

    public let run: TrainingRun
    /// The trainer that computes the steps (the run's own unless a study switched optimizers).
    public var trainer: Trainer
    /// The step at which the optimizer's slots started (see ``Trainer/apply(_:to:slotOrigin:)``).
    public var slotOrigin: Int
    /// The operand hook of a global step, if any.
    public var inject: (Int) -> (any OperandHook)?
    /// Record every MXU operation's output digest (``Trainer/Gradients/siteDigests``).
    public var recordDigests: Bool
    public var evaluation: TestEvaluation

    public init(run: TrainingRun, trainer: Trainer? = nil, slotOrigin: Int = 0, inject: @escaping (Int) -> (any OperandHook)? = { _ in nil },
                recordDigests: Bool = false, evaluation: TestEvaluation = .everyEpoch) {
        self.run = run
        self.trainer = trainer ?? run.trainer
        self.slotOrigin = slotOrigin
        self.inject = inject
        self.recordDigests = recordDigests
        self.evaluation = evaluation
    }

    /// Trains from `state` to global step `end` (or until `stop` says so) and returns the
    /// final state. `epochMetrics`: the metrics of the current epoch's steps before `state`
    /// (a recording resumed mid-epoch), so that its summary covers the whole epoch.
    public func run(from state: TrainingState, to end: Int, epochMetrics: [StepMetrics] = [],
                    stop: (Step) throws -> Bool, step: (Step) throws -> Void,
                    epoch: (EpochSummary, Step) throws -> Void, stepEnd: (Step) throws -> Void) rethrows -> TrainingState {
        var state = state
        var epochMetrics = epochMetrics
        let perEpoch = run.stepsPerEpoch
        while state.step < end {
            let index = state.step
            let g = trainer.gradients(state, batches: run.batches(step: index), hook: inject(index), recordDigests: recordDigests)
            state = trainer.apply(g, to: state, slotOrigin: slotOrigin)
            epochMetrics.append(g.metrics)
            var current = Step(index: index, gradients: g, state: state, last: false)
            let stopped = try stop(current)
            current.last = stopped || state.step == end
            try step(current)
            if state.step % perEpoch == 0 || current.last {
                let evaluate = switch evaluation {
                case .everyEpoch: true
                case .everyEpochUnlessStopped: !stopped || state.step == end
                case .atEndOnly: state.step == end
                case .never: false
                }
                let test = evaluate ? run.evaluate(state) : (loss: Float.nan, accuracy: Float.nan)
                let n = Float(epochMetrics.count)
                let summary = EpochSummary(epoch: index / perEpoch, steps: epochMetrics.count,
                                           trainLoss: Reduce.sum(epochMetrics.map(\.loss)) / n,
                                           trainAccuracy: Reduce.sum(epochMetrics.map(\.accuracy)) / n,
                                           testLoss: test.loss, testAccuracy: test.accuracy)
                try epoch(summary, current)
                epochMetrics = []
            }
            try stepEnd(current)
            if current.last { break }
        }
        return state
    }
}
