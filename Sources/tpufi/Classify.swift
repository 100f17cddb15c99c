import ArgumentParser
import Foundation
import Replayer

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a reference-artifact replay log against its fault-free log.",
        discussion: """
        Reads two training logs of the original TensorFlow artifact (`Epoch: E/80, step: S/49, \
        loss: L, accuracy: A` lines, `End of epoch: ...` lines, `Inject to epoch/step` at the \
        top of a replay) and applies the same classifier and thresholds as `replay`, over the \
        steps both logs cover from the injection on.

        Example:
          tpufi classify --golden-log resnet18__fault_free.txt --faulty-log resnet18__replay_inj_masked.txt
        """)

    @Option(help: "The fault-free run's log.")
    var goldenLog: String

    @Option(help: "The replay's log.")
    var faultyLog: String

    @Option(help: "Number of classes (chance is 1/classes).")
    var classes: Int = 10

    @Option(help: "Test set size, for the noise of the test accuracies (default: unknown, the band alone; the reference's CIFAR-10 test set has 10000).")
    var testCount: Int?

    @OptionGroup var classifier: ClassifierOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        if let n = testCount, n < 1 { throw ValidationError("--test-count must be at least 1, got \(n)") }
        let c = try ReferenceLog.classify(golden: try ReferenceLog.load(path: goldenLog), faulty: try ReferenceLog.load(path: faultyLog),
                                          classes: classes, testCount: testCount, thresholds: classifier.thresholds)
        if json {
            struct Output: Encodable { let outcome: String; let evidence: [String]; let onset: Int?; let goldenLearned: Bool }
            try printJSON(Output(outcome: c.outcome.rawValue, evidence: c.evidence, onset: c.onset, goldenLearned: c.goldenLearned))
        } else {
            print(c.outcome.rawValue)
            for e in c.evidence { print("  \(e)") }
            if let onset = c.onset { print("  onset: global step \(onset)") }
        }
    }
}
