import ArgumentParser
import Foundation
import Replayer

/// Prints `value` as pretty, key-sorted JSON (non-finite numbers as "nan"/"inf" strings).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The classifier's thresholds, shared by `replay` and `classify`.
struct ClassifierOptions: ParsableArguments {
    @Option(help: "Accuracy band (fraction) within which the faulty run matches golden.")
    var accuracyBand: Float = 0.02

    @Option(help: "Band (fraction) around chance, 1/classes, that counts as a collapse.")
    var chanceBand: Float = 0.05

    @Option(help: "Final steps averaged for the final train accuracy.")
    var finalWindow: Int = 10

    var thresholds: ClassifierThresholds {
        ClassifierThresholds(accuracyBand: accuracyBand, chanceBand: chanceBand, finalWindow: finalWindow)
    }
}
