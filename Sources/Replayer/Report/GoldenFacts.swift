import Foundation
import Recorder

/// What a campaign report knows of the golden run beyond its identity: its final train and
/// test accuracy and the test set's size (recorded in `campaign.json` by campaigns since
/// these fields exist), and its per-step metrics (read from the golden trace, for the context
/// before the injection of results that predate ``ExperimentResult/Curve/goldenBefore``).
public struct GoldenFacts: Sendable, Equatable {
    /// Mean batch train accuracy over the golden's last steps (``GoldenIdentity/finalTrainAccuracy``).
    public var finalTrainAccuracy: Float?
    /// The golden's last test accuracy and the step count after which it was measured.
    public var finalTestAccuracy: Float?
    public var finalTestStep: Int?
    /// Examples in the test set.
    public var testCount: Int?
    /// The data set's name as the golden run recorded it.
    public var dataset: String?
    /// The golden's step points by global step; empty unless read from the trace.
    public var points: [Int: StepPoint]
    /// Where the facts come from, or why some are unknown (for the report's header).
    public var source: String

    /// What `campaign.json`'s golden identity records.
    public init(identity g: GoldenIdentity) {
        finalTrainAccuracy = g.finalTrainAccuracy
        finalTestAccuracy = g.finalTestAccuracy
        finalTestStep = g.finalTestStep
        testCount = g.testCount
        dataset = g.dataset
        points = [:]
        source = g.finalTrainAccuracy == nil ? "campaign.json does not record the golden's accuracies (written before they were recorded)" : "campaign.json"
    }

    /// `campaign.json`'s facts, completed from the golden trace at `identity.directory` (as
    /// the campaign read it, relative to the current directory) when it is there and is this
    /// campaign's golden run (same identity). A missing or different trace is not an error:
    /// ``source`` says why the facts it would give are unknown.
    public static func load(identity: GoldenIdentity) -> GoldenFacts {
        var facts = GoldenFacts(identity: identity)
        let reader: TraceReader
        do { reader = try TraceReader(directory: identity.directory) } catch {
            facts.source += "; golden trace \(identity.directory) not readable (\(error))"
            return facts
        }
        let read: GoldenIdentity
        let records: [StepRecord]
        do {
            read = try GoldenIdentity(reader)
            records = try reader.stepRecords()
        } catch {
            facts.source += "; golden trace \(identity.directory) not readable (\(error))"
            return facts
        }
        guard read.located == identity.located else {
            facts.source += "; the trace at \(identity.directory) is not this campaign's golden run (its identity differs)"
            return facts
        }
        if facts.finalTrainAccuracy == nil {
            facts.finalTrainAccuracy = read.finalTrainAccuracy
            facts.finalTestAccuracy = read.finalTestAccuracy
            facts.finalTestStep = read.finalTestStep
            facts.testCount = read.testCount
            facts.dataset = read.dataset
            facts.source = "golden trace \(identity.directory)"
        } else {
            facts.source = "campaign.json; context before the injection from the golden trace \(identity.directory)"
        }
        facts.points = Dictionary(records.map { ($0.step, StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy)) },
                                  uniquingKeysWith: { a, _ in a })
        return facts
    }

    /// The golden points in the ``ExperimentResult/Curve/contextSteps`` steps before `step`
    /// that ``points`` holds, in step order.
    func context(before step: Int) -> [StepPoint] {
        (max(0, step - ExperimentResult.Curve.contextSteps)..<max(0, step)).compactMap { points[$0] }
    }
}
