import Foundation
import Recorder
import Sim

/// Detectors run over a fault-free golden run: every trigger is a false positive. The scan
/// re-executes the golden's steps from a snapshot with the detectors on (detect only, so
/// nothing changes the run), checks every step's state digest against the golden's record
/// (so it is the golden run it judged, bit for bit), and counts what the detectors cost: in
/// the timing model's vector-unit cycles, and in wall time on this host.
public enum GoldenScan {
    public struct Result: Sendable, Codable, Equatable {
        public var golden: String
        public var workload: String
        /// The detectors (``Mitigation/description``).
        public var settings: String
        public var firstStep: Int
        public var steps: Int
        /// Every detection: each is a false positive.
        public var falsePositives: [MitigationEvent]
        /// Vector-unit cycles of the detectors per step, the step's cycles in the timing
        /// model, and their ratio.
        public var detectorCycles: Int
        public var stepCycles: Int
        public var cycleOverhead: Double
        /// Wall time of `overheadSteps` steps computed without and with the detectors,
        /// alternately, on this host.
        public var overheadSteps: Int
        public var secondsWithout: Double
        public var secondsWith: Double
        public var wallOverhead: Double { secondsWithout > 0 ? secondsWith / secondsWithout - 1 : .nan }
    }

    /// Scans global steps `range` (default: all) of the golden trace `reader`; `timedSteps`
    /// of them (from the first) are computed twice more, without and with the detectors, for
    /// the wall-time overhead. `progress` sees each scanned step.
    public static func run(golden reader: TraceReader, mitigation: Mitigation, range: Range<Int>? = nil, timedSteps: Int = 8,
                           threads: Int = 1, progress: (Int) -> Void = { _ in }) throws -> Result {
        let restorer = try TraceRestorer(reader: reader, threads: threads)
        let run = restorer.run
        var detect = mitigation
        detect.response = .detect
        try detect.validate(optimizer: run.config.optimizer, model: run.model)
        let all = 0..<reader.completedSteps
        let steps = range ?? all
        guard !steps.isEmpty, steps.lowerBound >= 0, steps.upperBound <= all.upperBound else {
            throw ReplayError.specMismatch("steps \(steps.lowerBound)..<\(steps.upperBound) are not inside the golden trace's \(all.lowerBound)..<\(all.upperBound)")
        }
        guard timedSteps >= 0 else { throw ReplayError.specMismatch("timed steps must be non-negative (got \(timedSteps))") }
        var events: [MitigationEvent] = []
        let loop = TrainingLoop(run: run, evaluation: .never, mitigation: detect)
        var failure: String?
        _ = loop.run(from: try restorer.state(at: steps.lowerBound), to: steps.upperBound, stop: { s in
            guard let recorded = restorer.records[s.index]?.stateDigest, recorded == s.state.digest.description else {
                failure = "step \(s.index) re-executed to state digest \(s.state.digest), the golden recorded \(restorer.records[s.index]?.stateDigest ?? "nothing")"
                return true
            }
            return false
        }, step: { s in progress(s.index) }, epoch: { _, _ in }, stepEnd: { _ in }, mitigated: { events.append($0) })
        if let failure { throw TraceError.mismatch("\(reader.directory): \(failure): the scan would not judge the golden run") }

        // Wall time: the same steps without and with the detectors, alternately, so that a
        // busy host slows both alike.
        let timed = min(timedSteps, steps.count)
        var without = Duration.zero, with = Duration.zero
        let clock = ContinuousClock()
        var state = try restorer.state(at: steps.lowerBound)
        for _ in 0..<timed {
            let batches = run.batches(step: state.step)
            let t0 = clock.now
            let plain = run.trainer.gradients(state, batches: batches)
            let plainNext = run.trainer.apply(plain, to: state)
            let t1 = clock.now
            let checked = run.trainer.gradients(state, batches: batches, checkProducts: detect.checksProducts)
            let checkedNext = run.trainer.apply(checked, to: state)
            _ = detect.check(before: state, after: checkedNext, gradients: checked, model: run.model, optimizer: run.config.optimizer)
            let t2 = clock.now
            without += t1 - t0
            with += t2 - t1
            state = plainNext
        }
        let seconds = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        let detectorCycles = detect.cycles(model: run.model, chip: run.config.chip)
        // The step's cycles from the same timing model as the detectors' (the golden's manifest
        // holds the model of the build that recorded it).
        let stepCycles = try run.stepCost().totalBoundCycles
        return Result(golden: reader.directory, workload: run.config.title, settings: detect.detectors.map(\.description).joined(separator: ","),
                      firstStep: steps.lowerBound, steps: steps.count, falsePositives: events,
                      detectorCycles: detectorCycles, stepCycles: stepCycles,
                      cycleOverhead: stepCycles > 0 ? Double(detectorCycles) / Double(stepCycles) : .nan,
                      overheadSteps: timed, secondsWithout: seconds(without), secondsWith: seconds(with))
    }
}
