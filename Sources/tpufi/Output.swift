import ArgumentParser
import Foundation
import Recorder
import Replayer

/// Prints `value` as pretty, key-sorted JSON (non-finite numbers as "nan"/"inf" strings).
func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try JSONCoding.encoder(pretty: true).encode(value), as: UTF8.self))
}

/// `rows` as aligned columns (the first left-aligned, the others right-aligned, two spaces
/// apart), with a rule under the header and after each row index in `rulesAfter`.
func alignedTable(_ rows: [[String]], rulesAfter: Set<Int> = []) -> [String] {
    guard let header = rows.first else { return [] }
    let widths = header.indices.map { i in rows.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
    var lines: [String] = []
    for (n, row) in rows.enumerated() {
        let cells = row.enumerated().map { i, cell in
            i == 0 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                   : String(repeating: " ", count: max(0, widths[i] - cell.count)) + cell
        }
        lines.append(cells.joined(separator: "  "))
        if n == 0 || rulesAfter.contains(n) { lines.append(String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))) }
    }
    return lines
}

/// The classifier's thresholds, shared by `replay` and `classify`.
struct ClassifierOptions: ParsableArguments {
    @Option(help: "Accuracy band (fraction) within which the faulty run matches golden.")
    var accuracyBand: Float = 0.02

    @Option(help: "Band (fraction) around chance, 1/classes, that counts as a collapse.")
    var chanceBand: Float = 0.05

    @Option(help: "Final steps averaged for the final train accuracy.")
    var finalWindow: Int = 10

    @Option(help: "One-sided confidence with which a difference must clear the accuracy band, given the golden's own noise (its step-to-step train-accuracy variability, the test set's size), before a degrade class is assigned; 0 compares with the band alone.")
    var confidence: Float = ClassifierThresholds.defaultConfidence

    var thresholds: ClassifierThresholds {
        ClassifierThresholds(accuracyBand: accuracyBand, chanceBand: chanceBand, finalWindow: finalWindow, confidence: confidence)
    }

    func validate() throws {
        do { try thresholds.validate() } catch { throw ValidationError(error.description) }
    }
}
