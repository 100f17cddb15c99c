import ArgumentParser
import Foundation
import Recorder
import Replayer
import Sim

struct OptimizerStudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimizer-study",
        abstract: "Inject one fault per experiment, then compare how each optimizer trains on from the corrupted state.",
        discussion: """
        Each experiment injects one N16_RD fault: 16 aligned elements of the output of a random \
        forward layer (every conv and the dense layer), on a random replica, at a random global \
        step (default: epochs 0-3 that leave room for S steps), all 16 set to one value drawn \
        log-uniform in [3.6e2, 1.2e8]. Experiment i depends only on (--seed, i).

        The injected step runs as the golden run trained (with the baseline). From the state \
        after it, every optimizer trains S steps: the baseline with its own slots (exactly \
        `tpufi replay` of the experiment's spec), each test optimizer with fresh slots started \
        there (Adam's bias correction counted from the switch) and its reference learning-rate \
        schedule at the global step. Each optimizer also trains the same S steps from the \
        golden state (its fault-free reference; the baseline's is the golden trace), so the \
        fault's effect (faultEffect) is separated from the switch's.

        Per optimizer and experiment (train accuracy of each step's global batch): final \
        accuracy, change since the injection (against the golden accuracy of the injected \
        step), degradation rate (least-squares slope of accuracy per step over the last 100 \
        steps, or all steps run when fewer), and two statuses. effectStatus, the primary one, \
        judges the fault effect: faulty minus its own reference accuracy per step (the same \
        batches), the mean of the last min(10, steps) steps (smoothedFaultEffect), against \
        0.01 plus the reference's own step-to-step noise at 95 % one-sided confidence \
        (effectMargin): Degraded below -margin, Improved above +margin, else Unaffected. \
        status, as the reference study defines it, compares the final accuracy with the \
        golden accuracy of the injected step: Recovered (change > +0.01), Degraded \
        (< -0.01), Stable. Both are Diverged when the loss went non-finite (the run stops \
        there, divergenceStep says where). --test-accuracy adds the test accuracy at the end.

        DIR (default traces/optimizer-study-<seed>) gets experiments/<i>.json as each \
        experiment finishes (--resume continues without redoing them), then study.json, \
        curves_<optimizer>.csv and summary.csv. `tpufi report DIR` draws the recovery curves, \
        degradation rates and summary.

        Without --golden, a golden run of the baseline is recorded into DIR/golden (--workload, \
        --scale, --dataset, --steps, --replicas) or reused from there.

        Examples:
          tpufi optimizer-study --golden golden/resnet18-small --baseline adam --test-optimizers sgd rmsprop adagrad --experiments 2 --steps-after-injection 20
          tpufi optimizer-study --baseline adam --test-optimizers sgd --experiments 1 --steps-after-injection 20 --scale tiny --dataset synthetic
        """)

    @Option(help: "The golden run's optimizer: adam, sgd, rmsprop or adagrad.")
    var baseline: String = "adam"

    @Option(parsing: .upToNextOption, help: "Optimizers to compare with the baseline (space- or comma-separated).")
    var testOptimizers: [String] = ["sgd", "rmsprop", "adagrad"]

    @Option(help: "Experiments (faults) in the study.")
    var experiments: Int?

    /// The old spelling of --experiments.
    @Option(name: .customLong("num-experiments"), help: .hidden)
    var numExperiments: Int?

    @Option(help: "Steps each optimizer trains after the injected step.")
    var stepsAfterInjection: Int

    @Option(help: "Golden trace of the baseline (`tpufi record --optimizer <baseline>`); default: record one into DIR/golden.")
    var golden: String?

    @Option(help: "Global steps A-B (inclusive) to inject into (default: epochs 0-3 that leave room for the steps after injection).")
    var injectionSteps: String?

    @Option(help: "Study seed.")
    var seed: UInt64 = 0

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    @Flag(help: "Evaluate the test set after every faulty and reference run (a full pass each: costly on small and paper).")
    var testAccuracy = false

    @Flag(help: "Continue the interrupted study in --out (same parameters): finished experiments are not redone.")
    var resume = false

    @Option(help: "Golden run to record without --golden: workload (default: resnet18).")
    var workload: String?

    @Option(help: "Golden run to record without --golden: scale (tiny, small, paper; default: tiny).")
    var scale: String?

    @Option(help: "Golden run to record without --golden: data set (as `tpufi record`; default: synthetic).")
    var dataset: String?

    @Option(help: "Golden run to record without --golden: steps (default: steps after injection + 20).")
    var steps: Int?

    @Option(help: "Golden run to record without --golden: replicas (default: 8).")
    var replicas: Int?

    @Option(help: "Study directory (default: traces/optimizer-study-<seed>).")
    var out: String?

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    func run() throws {
        guard experiments == nil || numExperiments == nil else {
            throw ValidationError("--num-experiments is the old spelling of --experiments: give one of them")
        }
        guard let experiments = experiments ?? numExperiments else { throw ValidationError("Missing expected argument '--experiments <experiments>'") }
        // The recording options describe a golden run to record: with --golden they would be
        // ignored, so they are refused.
        let recording = [("--workload", workload != nil), ("--scale", scale != nil), ("--dataset", dataset != nil),
                         ("--steps", steps != nil), ("--replicas", replicas != nil)].filter(\.1).map(\.0)
        if golden != nil, !recording.isEmpty {
            throw ValidationError("\(recording.joined(separator: ", ")) describe\(recording.count == 1 ? "s" : "") a golden run to record; with --golden the run is the trace's: drop \(recording.count == 1 ? "it" : "them")")
        }
        let directory = out ?? "traces/optimizer-study-\(seed)"
        let tests = try CampaignRun.list(testOptimizers).map { try OptimizerStudyParameters.optimizer($0) }
        let range = try injectionSteps.map { s in
            guard let r = StepRange(argument: s) else { throw ValidationError("--injection-steps '\(s)': give A-B, e.g. 10-40") }
            return r
        }
        let parameters = OptimizerStudyParameters(baseline: try OptimizerStudyParameters.optimizer(baseline), testOptimizers: tests,
                                                  experiments: experiments, stepsAfterInjection: stepsAfterInjection, seed: seed,
                                                  steps: range, testAccuracy: testAccuracy)
        try parameters.validate()
        let source: StudyGolden
        if let golden {
            source = .trace(golden)
        } else {
            // The data set is read, the study (and its golden run) written.
            let dataset = self.dataset ?? "synthetic"
            try OutputGuard.check(directory, against: try DatasetSource.parse(dataset).inputPaths)
            let config = try TrainingOptions.config(workload: workload ?? "resnet18", scale: scale ?? "tiny", optimizer: parameters.baseline,
                                                    replicas: replicas ?? 8)
            let loaded = try TrainingRun.load(config: config, dataset: dataset, threads: threads)
            if let note = loaded.note, !json { print(note) }
            let (defaultSteps, overflow) = stepsAfterInjection.addingReportingOverflow(20)
            guard steps != nil || !overflow else {
                throw ValidationError("--steps-after-injection \(stepsAfterInjection): a golden run of that many steps and 20 more does not fit in an Int")
            }
            source = .record(run: loaded.run, dataset: loaded.dataset, steps: steps ?? defaultSteps)
        }
        let start = Date()
        var line: ProgressLine?
        let report = try OptimizerStudy.run(golden: source, parameters: parameters, out: directory, resume: resume, threads: threads) { p in
            if line == nil { line = ProgressLine(total: p.total, alreadyDone: p.done - p.ranNow) }
            line?.update(done: p.done, detail: "experiments")
        }
        line?.clear()
        if json { return try printJSON(report.result.summary) }
        if report.recordedGolden { print("recorded the golden run: \(report.result.golden)") }
        if report.resumed > 0 { print("resumed: \(report.resumed) experiment(s) already done") }
        let seconds = Date().timeIntervalSince(start)
        let steps = report.costs.reduce(0) { $0 + $1.simulatedSteps }
        // Per experiment: its own time (restoring, training, writing), not loading the golden run.
        let experimentSeconds = report.costs.reduce(0) { $0 + $1.seconds }
        print("ran \(report.ranNow) experiment(s): \(steps) simulated steps, \(String(format: "%.1f", seconds)) s in all"
              + (report.ranNow > 0 ? String(format: " (per experiment %.1f s, %d steps)", experimentSeconds / Double(report.ranNow), steps / report.ranNow) : ""))
        print("effect status (faulty vs its own reference, smoothed, against 0.01 + the reference's noise) | status as the reference study defines it (final vs golden at the injection)")
        var rows = [["optimizer", "diverged", "degraded", "unaffected", "improved", "mean smoothed effect", "|", "recovered", "stable", "degraded",
                     "mean change", "mean rate/step", "mean fault effect"]]
        for s in report.result.summary {
            rows.append([s.optimizer.rawValue, "\(s.diverged)", "\(s.effectDegraded)", "\(s.unaffected)", "\(s.improved)",
                         String(format: "%+.4f", s.meanSmoothedFaultEffect), "|", "\(s.recovered)", "\(s.stable)", "\(s.degraded)",
                         String(format: "%+.4f", s.meanAccuracyChange), String(format: "%+.6f", s.meanDegradationRate),
                         String(format: "%+.4f", s.meanFaultEffect)])
        }
        alignedTable(rows).forEach { print($0) }
        print("results: \(directory)/study.json, \(directory)/summary.csv, \(directory)/curves_<optimizer>.csv; plots: tpufi report \(directory)")
    }
}
