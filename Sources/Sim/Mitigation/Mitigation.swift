import Foundation

/// Detection and recovery during training: which detectors run after every step and what
/// the run does when one fires. Part of how a run is executed, not of what it is: a run
/// with mitigation that never fires is bit-identical to one without.
public struct Mitigation: Sendable, Equatable, Codable, CustomStringConvertible {
    /// What the run does when a detector fires on a step.
    public enum Response: String, Sendable, Equatable, Codable, CaseIterable {
        /// Record the detection and go on (for measuring detection alone, and false positives).
        case detect
        /// Do not apply the step's update (the reference's response): parameters, optimizer
        /// slots and moving statistics stay as they were; the step count (data order,
        /// learning rate) moves on.
        case skip
        /// Go back to the state of ``Mitigation/restoreSteps`` steps before (kept in memory,
        /// bit for bit) and re-execute them. The simulator's faults last one step, so the
        /// re-executed steps run without it; a detection that recurs ``Mitigation/maxRetries``
        /// times on the same step falls back to ``skip``.
        case restore
    }

    public var detectors: [Detector]
    public var response: Response
    /// How many of the most recent steps a restore re-executes, the detected one included
    /// (the reference's: 2). A run never goes back before the state it started from.
    public var restoreSteps: Int
    /// Restores of one step before falling back to skipping its update.
    public var maxRetries: Int

    public init(detectors: [Detector], response: Response = .restore, restoreSteps: Int = 2, maxRetries: Int = 2) throws(MitigationError) {
        guard !detectors.isEmpty else { throw .invalid("mitigation needs at least one detector (detectors: \(Detector.Kind.allCases.map(\.rawValue).joined(separator: ", ")))") }
        guard restoreSteps >= 1, restoreSteps <= 64 else { throw .invalid("--restore-steps must be 1...64 (got \(restoreSteps))") }
        guard maxRetries >= 0, maxRetries <= 16 else { throw .invalid("--max-retries must be 0...16 (got \(maxRetries))") }
        var seen = Set<String>()
        for d in detectors where !seen.insert(d.kind.rawValue + "@" + (d.variables?.rawValue ?? "")).inserted {
            throw .invalid("detector \(d.kind.rawValue) is listed twice")
        }
        self.detectors = detectors
        self.response = response
        self.restoreSteps = restoreSteps
        self.maxRetries = maxRetries
    }

    /// Detectors spelled as a comma-separated list (``Detector/init(parsing:)``).
    public init(parsing list: String, response: Response = .restore, restoreSteps: Int = 2, maxRetries: Int = 2) throws(MitigationError) {
        var detectors: [Detector] = []
        for name in list.split(separator: ",", omittingEmptySubsequences: false) {
            detectors.append(try Detector(parsing: String(name).trimmingCharacters(in: .whitespaces)))
        }
        try self.init(detectors: detectors, response: response, restoreSteps: restoreSteps, maxRetries: maxRetries)
    }

    /// Refuses detectors that cannot see anything under `optimizer` or in `model`.
    public func validate(optimizer: OptimizerConfig, model: any Model) throws(MitigationError) {
        for d in detectors {
            if let reason = d.kind.blindSpot(optimizer: optimizer, model: model) { throw .invalid(reason) }
        }
    }

    /// Every detector, with its defaults, that can see something in `model` trained with
    /// `optimizer`.
    public static func applicable(optimizer: OptimizerConfig, model: any Model, response: Response = .detect) throws(MitigationError) -> Mitigation {
        let kinds = Detector.Kind.allCases.filter { $0.blindSpot(optimizer: optimizer, model: model) == nil }
        return try Mitigation(detectors: kinds.map { Detector($0) }, response: response)
    }

    /// `detectors` joined, then the response.
    public var description: String {
        let names = detectors.map(\.description).joined(separator: ",")
        switch response {
        case .restore: return "\(names) -> restore \(restoreSteps) step(s), \(maxRetries) retries"
        default: return "\(names) -> \(response.rawValue)"
        }
    }

    /// Whether a step must check its MXU products while it runs.
    public var checksProducts: Bool { detectors.contains(where: \.checksProducts) }

    /// Every detector that fires on one step (see ``Detector/check(before:after:gradients:model:optimizer:failures:)``).
    public func check(before: TrainingState, after: TrainingState, gradients: Trainer.Gradients, model: any Model,
                      optimizer: OptimizerConfig) -> [Detection] {
        detectors.compactMap {
            $0.check(before: before, after: after, gradients: gradients, model: model, optimizer: optimizer, failures: gradients.checksumFailures)
        }
    }

    /// The state a skipped step leaves: `before` with the step count moved on.
    public static func skipped(_ before: TrainingState) -> TrainingState {
        var s = before
        s.step += 1
        return s
    }
}

/// What mitigation did on one step.
public struct MitigationEvent: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable {
        /// Recorded only (``Mitigation/Response/detect``).
        case detected
        /// The step's update was not applied.
        case skipped
        /// The run went back to ``MitigationEvent/restoredTo`` and re-executed from there.
        case restored
    }

    /// The global step whose results the detectors saw.
    public var step: Int
    /// The detectors that fired, in the order configured.
    public var detections: [Detection]
    public var action: Action
    /// For a restore: the global step the run went back to (its state before that step).
    public var restoredTo: Int?
    /// How many times this step had been detected before (0 the first time).
    public var retry: Int

    public init(step: Int, detections: [Detection], action: Action, restoredTo: Int? = nil, retry: Int = 0) {
        self.step = step
        self.detections = detections
        self.action = action
        self.restoredTo = restoredTo
        self.retry = retry
    }
}

/// What a run's mitigation was and did, as a trace's manifest records it.
public struct MitigationRecord: Sendable, Equatable, Codable {
    public var settings: Mitigation
    /// Every event, in the order it happened.
    public var events: [MitigationEvent]

    public init(settings: Mitigation, events: [MitigationEvent] = []) {
        self.settings = settings
        self.events = events
    }
}

extension Mitigation {
    /// Cycles the detectors cost per step on `chip` in the timing model: their vector-unit
    /// work (``Detector/vectorWork(model:)`` on ``VectorUnit``) and their extra MXU
    /// multiply-accumulates (``Detector/mxuMACs(model:)``) at the arrays' peak rate.
    public func cycles(model: any Model, chip: ChipConfig) -> Int {
        let unit = VectorUnit(config: chip)
        let perCycle = max(1, chip.rows * chip.columns * chip.mxuCount)
        return detectors.reduce(0) { sum, d in
            let w = d.vectorWork(model: model)
            let macs = d.mxuMACs(model: model)
            return sum + unit.elementwiseCycles(elements: w.elements, opsPerElement: w.opsPerElement) + (macs + perCycle - 1) / perCycle
        }
    }
}
