import ArgumentParser
import Foundation
import Recorder
import Replayer
import Sim

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fork a golden trace, inject a fault, continue training and classify the outcome.",
        discussion: """
        Reads an injection spec in the reference artifact's replay CSV format (model, stage, \
        fmodel, target_worker, target_layer, target_epoch, target_step, inj_pos, inj_values, \
        learning_rate, seed), restores the golden state before the target step (re-executing \
        from the nearest snapshot and checking every step against the golden digests), runs \
        that step with the listed elements replaced, continues, and writes the faulty run as a \
        trace. It stops early when the state is bit-identical to golden again (masked-exact) \
        or the loss is non-finite, and prints the outcome with its evidence and the first \
        MXU operation whose output differed.

        A native JSON spec says the same and more: {"workload": "resnet18", "site": \
        "basicblock_2_basic_0_conv1_grad_in", "faultModel": "N16_RD", "replica": 3, \
        "globalStep": 120, "seed": 42} draws the positions and values from the seed; the faulty \
        trace's manifest records what was drawn.

        A hardware fault replaces the fault model with the processing element it strikes in \
        the site's MXU operation: {"workload": "resnet18", "site": "basicblock_1_basic_0_conv1", \
        "replica": 0, "globalStep": 120, "hardware": {"mxu": 0, "row": 3, "column": 5, \
        "register": "weight", "bit": 14, "stuckAt": 1}}. Registers: weight, input, \
        partial-sum; "cycle": C (counted from the operation's first cycle) flips the bit once, \
        "stuckAt": 0|1 holds it for the whole operation, or, with "site": "all", for every MXU \
        operation of the replica's step (a permanent fault of the PE). The schedule of each \
        operation maps the fault onto the output elements it corrupts.

        Example:
          tpufi replay --golden golden/resnet18-small --spec traces/resnet18-small/slow_degrade__grad_in_spike.json --steps-after-injection 20
        """)

    @Option(help: "Golden trace directory.")
    var golden: String

    @Option(help: "Injection spec: a reference replay CSV, or a native .json spec (which may give a seed instead of positions and values).")
    var spec: String

    @Option(help: "Steps to train after the injected one (default: to the end of the golden run).")
    var stepsAfterInjection: Int?

    @Option(help: "Directory for the faulty run's trace (default: traces/replay-<golden>-<spec>).")
    var out: String?

    @Option(help: "Host threads (results are identical for any count; default: the host's cores).")
    var threads: Int = ThreadDefault.all

    @Option(help: "What the _16 fault models mean: fidelity (the corruption reaches only 16 outputs of the operation, FIdelity's definition) or released (the reference code's alias of the model without _16).")
    var sixteen: SixteenSemantics = .fidelity

    @OptionGroup var classifier: ClassifierOptions

    @OptionGroup(title: "Mitigation") var mitigation: MitigationOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let clock = ContinuousClock(), start = clock.now
        let name = { (p: String) in URL(fileURLWithPath: p).deletingPathExtension().lastPathComponent }
        let directory = out ?? "traces/replay-\(name(golden))-\(name(spec))"
        // The golden trace and the spec are read, the faulty trace written.
        try OutputGuard.check(directory, against: [golden, spec])
        let reader = try TraceReader(directory: golden)
        let parsed = try InjectionSpec.load(path: spec)
        let progress = ProgressLine(total: max(1, reader.completedSteps))
        var toInjectedStep: Duration?
        let result = try FaultReplay.run(golden: reader, spec: parsed, specName: spec, stepsAfterInjection: stepsAfterInjection, out: directory,
                                         threads: threads, thresholds: classifier.thresholds, sixteen: sixteen,
                                         mitigation: try mitigation.settings()) { event in
            if case .step(let step, let m) = event {
                // The replay's first step is the injected one.
                if toInjectedStep == nil { toInjectedStep = clock.now - start }
                progress.update(done: step + 1, detail: String(format: "loss %.4f acc %.3f", m.loss, m.accuracy))
            }
        }
        progress.clear()
        if json {
            return try printJSON(TimedReplay(result: result, timing: .init(secondsToInjectedStep: toInjectedStep.map(seconds),
                                                                           seconds: seconds(clock.now - start))))
        }
        let i = result.injection
        print("\(result.outcome)")
        let when = "replica \(i.replica), epoch \(i.epoch) step \(i.step) (global step \(i.globalStep))"
        let facts = i.factsText
        if let h = i.hardware {
            print("injected \(h) into \(i.site), \(when): \(facts)")
        } else {
            print("injected \(i.faultModel) into the \(i.role) of \(i.site), \(when): \(facts)")
        }
        if let d = result.firstDivergence {
            print("first divergence: \(d.site) on replica \(d.replica) at global step \(d.globalStep)")
        } else {
            print("first divergence: none (no MXU output differed)")
        }
        for e in result.evidence { print("  \(e)") }
        if let onset = result.onset { print("onset: global step \(onset) (\(onset - result.injection.globalStep) step(s) after the injection)") }
        if let m = result.mitigation {
            if let first = m.firstDetection {
                print("mitigation \(m.settings): detected at global step \(first) (\(m.latency ?? 0) step(s) after the injection) by \(m.detectors.joined(separator: ", ")); \(m.restores) restore(s), \(m.skips) skipped update(s), \(m.reexecutedSteps) step(s) re-executed")
            } else {
                print("mitigation \(m.settings): nothing detected")
            }
        }
        print("ran \(result.stepsRun) step(s)\(result.stoppedEarly.map { ", stopped early: \($0)" } ?? "")")
        let test = result.faulty.testAccuracy.isNaN
            ? "test accuracy not evaluated (an early stop needs none)"
            : String(format: "test accuracy %.4f (golden %.4f)", result.faulty.testAccuracy, result.golden.testAccuracy)
        print(String(format: "final train accuracy %.4f (golden %.4f), ", result.faulty.trainAccuracy, result.golden.trainAccuracy) + test)
        print("faulty trace: \(result.trace)")
    }
}

extension SixteenSemantics: ExpressibleByArgument {}

/// The replay's result and how long it took (wall clock: the JSON's `timing`, never a trace).
struct TimedReplay: Encodable {
    struct Timing: Encodable {
        /// From the command's start to the end of the injected step: opening the trace, loading
        /// the data, restoring the state before the step and running it.
        var secondsToInjectedStep: Double?
        var seconds: Double
    }

    var result: ReplayResult
    var timing: Timing

    private enum Key: String, CodingKey { case timing }

    func encode(to encoder: any Encoder) throws {
        try result.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(timing, forKey: .timing)
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
