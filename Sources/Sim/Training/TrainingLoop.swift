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
        /// Whether mitigation changed this step: its update was skipped, or it was
        /// re-executed after a restore (then without the step's operand hook). Its state then
        /// does not follow from the previous one by the plain update and the fault.
        public var mitigated: Bool = false

        public var metrics: StepMetrics { gradients.metrics }
    }

    public let run: TrainingRun
    /// The trainer that computes the steps (the run's own unless a study switched optimizers).
    public var trainer: Trainer
    /// The step at which the optimizer's slots started (see ``Trainer/apply(_:to:slotOrigin:)``).
    public var slotOrigin: Int
    /// The operand hook of a global step, if any.
    public var inject: (Int) -> (any OperandHook)?
    /// Digest every MXU operation's output this way (``Trainer/Gradients/siteDigests``); nil: none.
    public var digests: OutputDigest?
    public var evaluation: TestEvaluation
    /// Detectors and the response to them, if any.
    public var mitigation: Mitigation?

    public init(run: TrainingRun, trainer: Trainer? = nil, slotOrigin: Int = 0, inject: @escaping (Int) -> (any OperandHook)? = { _ in nil },
                digests: OutputDigest? = nil, evaluation: TestEvaluation = .everyEpoch, mitigation: Mitigation? = nil) {
        self.run = run
        self.mitigation = mitigation
        self.trainer = trainer ?? run.trainer
        self.slotOrigin = slotOrigin
        self.inject = inject
        self.digests = digests
        self.evaluation = evaluation
    }

    /// Trains from `state` to global step `end` (or until `stop` says so) and returns the
    /// final state. `epochMetrics`: the metrics of the current epoch's steps before `state`
    /// (a recording resumed mid-epoch), so that its summary covers the whole epoch.
    ///
    /// With ``mitigation``, the detectors see every step as it is computed and `mitigated`
    /// hears what they found and what was done. Under a restore response the closures see a
    /// step only once the steps a restore could take back have passed (``Mitigation/restoreSteps``
    /// minus one later), so nothing reported is ever taken back; under the others at once.
    public func run(from state: TrainingState, to end: Int, epochMetrics: [StepMetrics] = [],
                    stop: (Step) throws -> Bool, step: (Step) throws -> Void,
                    epoch: (EpochSummary, Step) throws -> Void, stepEnd: (Step) throws -> Void,
                    mitigated: (MitigationEvent) throws -> Void) rethrows -> TrainingState {
        var epochMetrics = epochMetrics
        let perEpoch = run.stepsPerEpoch
        var state = state
        // Computed steps not yet committed, each with the state it started from.
        var pending: [(step: Step, before: TrainingState)] = []
        let window = mitigation?.response == .restore ? (mitigation?.restoreSteps ?? 1) - 1 : 0
        // Steps below this were taken back by a restore: they re-execute without their hook.
        var reexecuteBelow = 0
        var retries: [Int: Int] = [:]
        while state.step < end {
            let index = state.step
            let before = state
            let reexecuted = index < reexecuteBelow
            let g = trainer.gradients(state, batches: run.batches(step: index), hook: reexecuted ? nil : inject(index),
                                      digests: digests, checkProducts: mitigation?.checksProducts ?? false)
            var next = trainer.apply(g, to: state, slotOrigin: slotOrigin)
            var changed = reexecuted
            if let mitigation {
                let found = mitigation.check(before: before, after: next, gradients: g, model: run.model, optimizer: trainer.optimizer)
                if !found.isEmpty {
                    let retry = retries[index, default: 0]
                    switch mitigation.response {
                    case .detect:
                        try mitigated(MitigationEvent(step: index, detections: found, action: .detected))
                    case .restore where retry < mitigation.maxRetries:
                        retries[index] = retry + 1
                        let back = min(pending.count, window)
                        let target = back == 0 ? before : pending[pending.count - back].before
                        pending.removeLast(back)
                        try mitigated(MitigationEvent(step: index, detections: found, action: .restored, restoredTo: target.step, retry: retry))
                        reexecuteBelow = max(reexecuteBelow, index + 1)
                        state = target
                        continue
                    case .skip, .restore:
                        try mitigated(MitigationEvent(step: index, detections: found, action: .skipped, retry: retry))
                        next = Mitigation.skipped(before)
                        changed = true
                    }
                }
            }
            state = next
            pending.append((Step(index: index, gradients: g, state: next, last: false, mitigated: changed), before))
            while pending.count > window || (state.step == end && !pending.isEmpty) {
                // Commit the oldest computed step: the closures see it now.
                var current = pending.removeFirst().step
                epochMetrics.append(current.metrics)
                let stopped = try stop(current)
                let after = current.state.step
                current.last = stopped || after == end
                try step(current)
                if after % perEpoch == 0 || current.last {
                    let evaluate = switch evaluation {
                    case .everyEpoch: true
                    case .everyEpochUnlessStopped: !stopped || after == end
                    case .atEndOnly: after == end
                    case .never: false
                    }
                    let test = evaluate ? run.evaluate(current.state) : (loss: Float.nan, accuracy: Float.nan)
                    let n = Float(epochMetrics.count)
                    let summary = EpochSummary(epoch: current.index / perEpoch, steps: epochMetrics.count,
                                               trainLoss: Reduce.sum(epochMetrics.map(\.loss)) / n,
                                               trainAccuracy: Reduce.sum(epochMetrics.map(\.accuracy)) / n,
                                               testLoss: test.loss, testAccuracy: test.accuracy)
                    try epoch(summary, current)
                    epochMetrics = []
                }
                try stepEnd(current)
                if current.last { return current.state }
            }
        }
        return state
    }
}
