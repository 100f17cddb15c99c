import ArgumentParser
import Foundation
import Recorder
import Replayer

struct BisectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bisect",
        abstract: "Find the first step and tensor where two traces of the same run differ, and how the difference spreads.",
        discussion: """
        Binary search over the per-step state digests both traces recorded finds the first \
        step whose state differs. That one step is then re-executed on both sides from their \
        nearest snapshots (a faulty trace's recorded injection re-applied; both checked against \
        their recorded digests), and every MXU output of every replica, then the updated state \
        per tensor, is compared element by element: differing elements, max absolute, relative \
        and ULP error, NaN/Inf counts, the first positions. Also reports the onset step (the \
        first step where B's loss turns non-finite or its train accuracy leaves A's by more \
        than the accuracy band) and the cost against a linear replay of both runs. Works on \
        golden versus a replay, or two golden runs (other builds, thread counts) when \
        non-determinism is suspected.
        """)

    @Argument(help: "First trace directory (the reference, e.g. golden).")
    var traceA: String

    @Argument(help: "Second trace directory.")
    var traceB: String

    @Option(help: "Accuracy band (fraction) around A's train accuracy for the onset step.")
    var accuracyBand: Float = ClassifierThresholds().accuracyBand

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let r = try Bisect.run(try TraceReader(directory: traceA), try TraceReader(directory: traceB), threads: threads,
                               thresholds: ClassifierThresholds(accuracyBand: accuracyBand))
        if json { return try printJSON(r) }
        let c = r.cost
        guard let step = r.firstDivergentStep else {
            print("no divergence over the \(r.commonSteps.map { "\($0.count) common steps (\($0.lowerBound)...\($0.upperBound))" } ?? "no common steps") (\(r.comparisons) digest comparisons)")
            return
        }
        print("first divergent step: \(step) (\(r.comparisons) digest comparisons over common steps \(r.commonSteps.map { "\($0.lowerBound)...\($0.upperBound)" } ?? "-"))")
        print("first divergent tensor: \(r.firstDivergentSite ?? "?")\(r.firstDivergentTensor.map { " \($0)" } ?? "")\(r.replica.map { " on replica \($0)" } ?? "")")
        print("")
        var rows = [["site", "replica", "differing/total", "max abs", "max rel", "max ULP", "NaN A/B", "Inf A/B", "first at (A -> B)"]]
        // The optimizer slots and moving statistics follow their parameters; JSON lists them.
        let shown = r.sites.filter { $0.kind == nil || $0.kind == "weights" }
        for d in shown {
            let first = d.firstDifferences.first.map { "[\($0.position.map(String.init).joined(separator: ","))] \(number($0.a)) -> \(number($0.b))" } ?? ""
            rows.append([d.site + (d.tensor.map { " " + $0 } ?? ""), d.replica.map(String.init) ?? "-", "\(d.differing)/\(d.elements)",
                         number(d.maxAbsError), number(d.maxRelError), "\(d.maxULP)", "\(d.nanA)/\(d.nanB)", "\(d.infA)/\(d.infB)", first])
        }
        alignedTable(rows).forEach { print($0) }
        if shown.count < r.sites.count {
            print("update: \(r.sites.count - shown.count) more state tensors differ (optimizer slots, moving statistics; --json lists them)")
        }
        print("")
        print("onset: \(r.onsetStep.map { "step \($0): \(r.onsetEvidence ?? "")" } ?? "none in the common steps (band \(r.accuracyBand))")")
        let perStep = c.secondsPerStep.map { String(format: "%.3f s", $0) } ?? "-"
        print(String(format: "cost: %d step re-executions (restore %d + %d, divergent step %d) in %.2f s; ", c.reexecutions, c.restoreSteps.first ?? 0,
                     c.restoreSteps.last ?? 0, c.divergentStepExecutions, c.wallSeconds)
              + "a linear replay of both runs: \(c.linearSteps) steps, about \(c.estimatedLinearSeconds.map { String(format: "%.2f s", $0) } ?? "-") (estimate: \(perStep) a step)")
    }

    private func number<T: BinaryFloatingPoint & CVarArg>(_ x: T) -> String {
        String(format: "%.3g", Double(x))
    }
}
