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

    @Option(help: "Accuracy band (fraction) within which faulty matches golden.")
    var accuracyBand: Float = 0.02

    @Option(help: "Band (fraction) around chance that counts as a collapse.")
    var chanceBand: Float = 0.05

    @Option(help: "Final steps averaged for the final train accuracy.")
    var finalWindow: Int = 10

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let (outcome, evidence) = ReferenceLog.classify(golden: try ReferenceLog.load(path: goldenLog), faulty: try ReferenceLog.load(path: faultyLog),
                                                        classes: classes,
                                                        thresholds: ClassifierThresholds(accuracyBand: accuracyBand, chanceBand: chanceBand, finalWindow: finalWindow))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Output: Encodable { let outcome: String; let evidence: [String] }
            print(String(decoding: try encoder.encode(Output(outcome: outcome.rawValue, evidence: evidence)), as: UTF8.self))
        } else {
            print(outcome.rawValue)
            for e in evidence { print("  \(e)") }
        }
    }
}
