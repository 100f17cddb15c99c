import ArgumentParser
import Foundation
import Recorder
import Replayer
import Sim

struct Detect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run mitigation detectors over a fault-free golden run: every trigger is a false positive.",
        discussion: """
        Re-executes the golden trace's steps with the detectors on (recording only; nothing \
        changes the run), checks each step's state digest against the golden's, and lists \
        every detection. Also reports what the detectors cost: vector-unit cycles per step \
        next to the step's cycles in the timing model, and wall time on this host over \
        --timed-steps steps computed without and with the detectors, alternately.

        Example:
          tpufi detect --golden golden/resnet18-small --mitigation adam-m,moving-variance,non-finite,abft
        """)

    @Option(help: "Golden trace directory.")
    var golden: String

    @Option(help: ArgumentHelp("Detectors, comma-separated, each NAME[@first|all][=BOUND] (default: every detector that applies to the workload): "
                               + Detector.Kind.allCases.map(\.rawValue).joined(separator: ", ") + ".", valueName: "detectors"))
    var mitigation: String?

    @Option(help: "Global steps to scan, A-B inclusive (default: every recorded step).")
    var scanSteps: String?

    /// The old spelling of --scan-steps (a range, while --steps elsewhere is a count).
    @Option(name: .customLong("steps"), help: .hidden)
    var legacySteps: String?

    @Option(help: "Steps timed without and with the detectors for the wall-time overhead (0: none).")
    var timedSteps: Int = 8

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let reader = try TraceReader(directory: golden)
        let config = reader.manifest.config
        let settings: Mitigation
        do {
            if let mitigation {
                settings = try Mitigation(parsing: mitigation, response: .detect)
            } else {
                settings = try Mitigation.applicable(optimizer: config.optimizer, model: try config.makeModel())
            }
        } catch {
            throw ValidationError("--mitigation: \(error)")
        }
        guard scanSteps == nil || legacySteps == nil else { throw ValidationError("--steps is the old spelling of --scan-steps: give one of them") }
        let range = try (scanSteps ?? legacySteps).map { s -> Range<Int> in
            guard let r = StepRange(argument: s), r.first <= r.last, r.last < Int.max else { throw ValidationError("--scan-steps '\(s)': give A-B, e.g. 0-99") }
            return r.first..<(r.last + 1)
        }
        let first = range?.lowerBound ?? 0
        let progress = ProgressLine(total: range?.count ?? reader.completedSteps)
        let result = try GoldenScan.run(golden: reader, mitigation: settings, range: range, timedSteps: timedSteps, threads: threads) { step in
            progress.update(done: step - first + 1, detail: "scanning")
        }
        progress.clear()
        if json { return try printJSON(result) }
        print("\(result.workload), golden \(result.golden): detectors \(result.settings) over \(result.steps) step(s) from step \(result.firstStep)")
        if result.falsePositives.isEmpty {
            print("false positives: none")
        } else {
            print("false positives: \(result.falsePositives.count) step(s)")
            for e in result.falsePositives {
                print("  step \(e.step): " + e.detections.map { "\($0.detector) on \($0.variable) = \($0.value)" }.joined(separator: "; "))
            }
        }
        print(String(format: "cost in the timing model: %d cycles per step of %d (%.4f%%)", result.detectorCycles, result.stepCycles, 100 * result.cycleOverhead))
        if result.overheadSteps > 0 {
            print(String(format: "cost on this host: %.3f s with, %.3f s without the detectors over %d step(s) (%+.2f%%)",
                         result.secondsWith, result.secondsWithout, result.overheadSteps, 100 * result.wallOverhead))
        }
    }
}
