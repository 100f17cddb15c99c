import ArgumentParser
import Foundation
import Replayer
import Sim

struct CampaignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign",
        abstract: "Run a random fault-injection campaign against a golden trace (or summarize one).",
        discussion: """
        `tpufi campaign --golden TRACE --experiments N --out DIR` runs `tpufi campaign run`; \
        `tpufi campaign summarize DIR` rewrites and prints a campaign directory's summary.
        """,
        subcommands: [CampaignRun.self, CampaignSummarize.self],
        defaultSubcommand: CampaignRun.self)
}

struct CampaignRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Draw N experiments from a seed, replay each against the golden trace, classify, summarize.",
        discussion: """
        Experiment i draws, from its own random stream keyed by (seed, i): a global step \
        (leaving room for --steps-after-injection), a site (from --sampling's sites, after \
        --phases/--layers), a fault model, a replica and a seed for the \
        fault's positions and values. So any shard, worker count or resumed run gives the \
        same experiments and results as one serial run. --sampling all (the default) draws \
        from every MXU operation (forward, _grad_in and _grad_wt of every layer); --sampling \
        reference from the reference study's random-campaign sites: the convolutions' forward \
        operations (the stem included) and their _grad_in operations, never a _grad_wt \
        operation nor the dense layer. With --kinds hardware an experiment \
        instead draws a register (--registers), a PE (MXU, row, column), a bit, and a cycle of \
        the site's operation (flip) or a stuck-at value (--hardware-faults); by default \
        (--hardware-draw used) the PE among those whose register holds data of the operation \
        and the cycle among those in which it does, with --hardware-draw array over the whole \
        array and operation. A resumed campaign must use the draw it started with.

        DIR gets campaign.json (golden identity, parameters), results.jsonl (one JSON object \
        per experiment, appended and synced as each finishes; its `spec` field replays the \
        experiment alone with `tpufi replay --spec`), and summary.json/summary.csv (outcome \
        shares with 95 % Wilson intervals, overall and by fault model, phase and layer). \
        Experiments stop early when the state is bit-identical to golden again or the loss is \
        non-finite; no per-experiment trace is kept unless --keep-traces.

        --specs FILE runs listed experiments instead (one JSON spec per line): controls, \
        a reference study's spec files, or the misses of another campaign \
        (`jq -c .spec DIR/results.jsonl`).

        --shard i/n runs the experiments with index % n == i (merge the shards with `tpufi \
        merge`); --resume continues an interrupted campaign in DIR.

        Example:
          tpufi campaign --golden golden/resnet18-small --experiments 1000 --seed 1 --steps-after-injection 20 --workers 2 --out campaigns/c1
        """)

    @Option(help: "Golden trace directory.")
    var golden: String

    @Option(help: "Experiments in the whole campaign (all shards); with --specs, the specs' count if given.")
    var experiments: Int?

    @Option(help: ArgumentHelp("Run the experiments listed in FILE instead of drawing them: one native JSON spec per line (as `tpufi replay --spec` reads, and as each campaign result's `spec` field holds); experiment i is line i + 1. The draw's options (--seed, --fault-models, --kinds, filters) do not apply.", valueName: "file"))
    var specs: String?

    @Option(help: "Campaign seed.")
    var seed: UInt64 = 0

    @Option(help: "Steps to train after the injected one (default: to the end of the golden run).")
    var stepsAfterInjection: Int?

    @Option(parsing: .upToNextOption, help: "Fault models to draw from (space- or comma-separated; default: all 18).")
    var faultModels: [String] = []

    @Option(parsing: .upToNextOption, help: "Experiment kinds: software (the 18 fault models), hardware (a PE register of the site's MXU operation), or both: software,hardware (default: software).")
    var kinds: [String] = []

    @Option(parsing: .upToNextOption, help: "Hardware experiments: registers to draw from: weight, input, partial-sum (default: all).")
    var registers: [String] = []

    @Option(parsing: .upToNextOption, help: "Hardware experiments: fault classes: flip (one bit in one cycle), stuck-at (for the whole operation) (default: both).")
    var hardwareFaults: [String] = []

    @Option(help: "Hardware experiments: draw the PE and a flip's cycle among those the operation uses (used: its schedule puts data of the operation in that register then) or over the whole array and operation (array: most such faults change nothing on an operation smaller than the array; campaigns before this option drew so) (default: used).")
    var hardwareDraw: HardwareDraw?

    @Option(help: "Sites to draw from: all (every MXU operation) or reference (the convolutions' forward and _grad_in operations, as the reference study's random campaigns) (default: all).")
    var sampling: SiteSampling?

    @Option(parsing: .upToNextOption, help: "Phases to draw sites from: forward, backward (or fwd, bwd; default: both).")
    var phases: [String] = []

    @Option(parsing: .upToNextOption, help: "Layers (conv1, dense, ...) or sites (dense_grad_wt) to draw from (default: all).")
    var layers: [String] = []

    @Option(name: .customLong("target-replicas"), parsing: .upToNextOption, help: "Replicas to inject into (default: all).")
    var targetReplicas: [String] = []

    /// The old spelling of --target-replicas (a filter, while --replicas elsewhere is a count).
    @Option(name: .customLong("replicas"), parsing: .upToNextOption, help: .hidden)
    var legacyReplicas: [String] = []

    @Option(help: "Global steps A-B (inclusive) to inject into (default: all that leave room for --steps-after-injection).")
    var injectionSteps: String?

    /// The old spelling of --injection-steps (a range, while --steps elsewhere is a count).
    @Option(name: .customLong("steps"), help: .hidden)
    var legacySteps: String?

    @Option(help: "Run only shard i of n: the experiments whose index is i modulo n.")
    var shard: String?

    @Flag(help: "Continue the interrupted campaign in --out (same parameters).")
    var resume = false

    @Option(help: "Experiments run at once (threads; results are identical for any count).")
    var workers: Int = 1

    @Option(help: "Host threads per experiment (results are identical for any count; default: the host's cores divided among the workers).")
    var threads: Int?

    @Flag(help: "Run every experiment to its planned end (to measure what early stopping saves; outcomes are the same).")
    var noEarlyStop = false

    @Flag(help: "Keep each experiment's (sparse) faulty trace under DIR/traces/<index>.")
    var keepTraces = false

    @OptionGroup var classifier: ClassifierOptions

    @OptionGroup(title: "Mitigation (each experiment runs twice: without and with)") var mitigation: MitigationOptions

    @Option(help: "Campaign directory.")
    var out: String

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    static func list(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
    }

    func run() throws {
        let replicaList = try Self.list(targetReplicas + legacyReplicas).map { r in
            guard let n = Int(r) else { throw ValidationError("--target-replicas: '\(r)' is not a replica number") }
            return n
        }
        guard injectionSteps == nil || legacySteps == nil else {
            throw ValidationError("--steps is the old spelling of --injection-steps: give one of them")
        }
        let stepRange = try (injectionSteps ?? legacySteps).map { s in
            guard let r = StepRange(argument: s) else { throw ValidationError("--injection-steps '\(s)': give A-B, e.g. 10-40") }
            return r
        }
        let models = Self.list(faultModels), phaseNames = Self.list(phases), layerNames = Self.list(layers)
        // `both` is software and hardware.
        let kindNames = Self.list(kinds).flatMap { $0 == "both" ? ["software", "hardware"] : [$0] }
        let registerNames = Self.list(registers), classNames = Self.list(hardwareFaults)
        let threads = self.threads ?? ThreadDefault.perWorker(workers)
        let parameters: CampaignParameters
        if let specs {
            // What would steer a draw means nothing for listed experiments: refused, not ignored.
            let drawOptions: [(String, Bool)] = [
                ("--seed", seed != 0), ("--fault-models", !models.isEmpty), ("--kinds", !kindNames.isEmpty),
                ("--registers", !registerNames.isEmpty), ("--hardware-faults", !classNames.isEmpty),
                ("--hardware-draw", hardwareDraw != nil), ("--sampling", sampling != nil), ("--phases", !phaseNames.isEmpty),
                ("--layers", !layerNames.isEmpty), ("--target-replicas", !replicaList.isEmpty), ("--injection-steps", stepRange != nil)]
            if let given = drawOptions.first(where: \.1) {
                throw ValidationError("\(given.0) steers the draw; with --specs the experiments are listed, not drawn: leave it out")
            }
            let list = try InjectionSpec.loadList(path: specs)
            if let experiments, experiments != list.count {
                throw ValidationError("--experiments \(experiments) but \(specs) lists \(list.count) spec(s)")
            }
            parameters = CampaignParameters(specs: list, stepsAfterInjection: stepsAfterInjection, thresholds: classifier.thresholds,
                                            earlyStop: !noEarlyStop, mitigation: try mitigation.settings())
        } else {
            guard let experiments else { throw ValidationError("give --experiments N (or --specs FILE to run listed experiments)") }
            parameters = CampaignParameters(
                experiments: experiments, seed: seed, stepsAfterInjection: stepsAfterInjection,
                faultModels: models.isEmpty ? FaultModel.allCases : try CampaignParameters.faultModels(models),
                phases: phaseNames.isEmpty ? Phase.allCases : try CampaignParameters.phases(phaseNames), sampling: sampling ?? .all,
                layers: layerNames.isEmpty ? nil : layerNames, replicas: replicaList.isEmpty ? nil : replicaList,
                steps: stepRange, kinds: kindNames.isEmpty ? [.software] : try CampaignParameters.named(kindNames, "experiment kind"),
                registers: registerNames.isEmpty ? HardwareFault.Register.allCases : try CampaignParameters.named(registerNames, "register"),
                hardwareFaults: classNames.isEmpty ? HardwareFaultClass.allCases : try CampaignParameters.named(classNames, "hardware fault class"),
                hardwareDraw: hardwareDraw ?? .used,
                thresholds: classifier.thresholds, earlyStop: !noEarlyStop, mitigation: try mitigation.settings())
        }
        let shard = try self.shard.map { try Shard(argument: $0) } ?? .all
        let line = SharedProgressLine()
        let report = try CampaignRunner.run(golden: golden, parameters: parameters, shard: shard, out: out, resume: resume,
                                            options: .init(workers: workers, threads: threads, keepTraces: keepTraces, specsFile: specs)) { p in
            line.update(p)
        }
        line.clear()
        if json { return try printJSON(report.summary) }
        if report.resumed > 0 { print("resumed: \(report.resumed) experiment(s) already done\(report.tornBytesDropped > 0 ? ", a torn last line (\(report.tornBytesDropped) bytes) dropped" : "")") }
        print("ran \(report.ranNow) experiment(s)\(shard == .all ? "" : " of shard \(shard)"); golden test evaluations: \(report.goldenEvaluations)")
        print(report.summary.text)
        print("results: \(out)/results.jsonl, summary: \(out)/summary.csv, \(out)/summary.json")
    }
}

/// `--sampling all|reference`.
extension SiteSampling: ExpressibleByArgument {}

/// `--hardware-draw used|array`.
extension HardwareDraw: ExpressibleByArgument {}

/// The campaign's progress line, fed from the worker threads.
final class SharedProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private var line: ProgressLine?

    func update(_ p: CampaignProgress) {
        lock.lock()
        defer { lock.unlock() }
        // Created at the first report (sent before the first experiment runs): the rate
        // counts experiments run now, not resumed ones.
        if line == nil { line = ProgressLine(total: p.total, alreadyDone: p.done - p.ranNow) }
        line?.update(done: p.done, detail: p.counts.map { "\($0.outcome) \($0.count)" }.joined(separator: " "))
    }

    func clear() {
        lock.lock()
        defer { lock.unlock() }
        line?.clear()
    }
}

struct CampaignSummarize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summarize",
        abstract: "Rewrite summary.json and summary.csv of a campaign directory from its results, and print them.")

    @Argument(help: "Campaign directory.")
    var directory: String

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    func run() throws {
        let summary = try CampaignSummary.summarize(directory: directory)
        if json { return try printJSON(summary) }
        print(summary.text)
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge the shard directories of one campaign.",
        discussion: """
        Checks that every directory holds the same campaign (golden trace identity and \
        parameters) and that no experiment is in two of them, writes DIR with campaign.json, \
        results.jsonl sorted by experiment index, and the summary, and reports experiments \
        no directory holds.

        Example:
          tpufi merge campaigns/c1-shard0 campaigns/c1-shard1 --out campaigns/c1
        """)

    @Argument(help: "Campaign (shard) directories.")
    var directories: [String]

    @Option(help: "Directory for the merged campaign (must not exist or be empty).")
    var out: String

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    func run() throws {
        let report = try CampaignMerge.merge(directories, out: out)
        if report.missingCount > 0 {
            // The first few indices name what to rerun; summary.json lists the first 1000.
            let shown = report.missing.prefix(20).map(String.init).joined(separator: ", ")
            let more = report.missingCount > 20 ? ", ... (the first \(report.missing.count) in summary.json)" : ""
            FileHandle.standardError.write(Data("warning: \(report.missingCount) experiment(s) missing: \(shown)\(more)\n".utf8))
        }
        if json { return try printJSON(report.summary) }
        print("merged \(directories.count) director\(directories.count == 1 ? "y" : "ies"): \(report.results) experiment(s)")
        print(report.summary.text)
    }
}
