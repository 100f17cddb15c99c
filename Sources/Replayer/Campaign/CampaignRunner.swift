import Foundation
import Recorder
import Sim

/// Progress of a running campaign, for a progress line.
public struct CampaignProgress: Sendable {
    /// Experiments of this run's shard with a result (resumed ones included) and in all.
    public var done: Int
    public var total: Int
    /// Done in this invocation (the rate's numerator).
    public var ranNow: Int
    /// Outcome counts so far, in the order of docs/outcomes.md, zero counts left out.
    public var counts: [(outcome: String, count: Int)]
}

/// How a campaign runs (none of it changes the results).
public struct CampaignOptions: Sendable {
    /// Experiments run at once, each on its own thread.
    public var workers: Int
    /// Host threads per experiment (replicas and the MXU).
    public var threads: Int
    /// Keep each experiment's faulty trace under `traces/<index>` (sparse: the fork state,
    /// the last state, every step record).
    public var keepTraces: Bool
    /// Where listed experiments (``CampaignParameters/specs``) were read, to name it in errors.
    public var specsFile: String?

    public init(workers: Int = 1, threads: Int = 1, keepTraces: Bool = false, specsFile: String? = nil) {
        self.workers = workers
        self.threads = threads
        self.keepTraces = keepTraces
        self.specsFile = specsFile
    }
}

/// What a campaign run did.
public struct CampaignReport: Sendable {
    /// The campaign directory.
    public var directory: String
    public var manifest: CampaignManifest
    /// All results of the directory, sorted by index.
    public var results: [ExperimentResult]
    public var ranNow: Int
    /// Results already there on `--resume`, and the bytes of a torn last line dropped.
    public var resumed: Int
    public var tornBytesDropped: Int
    /// Golden test-set evaluations this run needed (steps the golden trace has no record of).
    public var goldenEvaluations: Int
    public var summary: CampaignSummary
}

/// Runs a campaign: draws its experiments (``CampaignPlan``), replays each against the
/// golden trace (``FaultReplay``), appends each result to `results.jsonl`, and writes the
/// summary at the end.
///
/// Cost decisions:
/// - the golden side (data, records, test accuracies) is loaded once and shared
///   (``GoldenReference``): golden test accuracy comes from the trace's epoch summaries
///   where recorded, else is evaluated once per distinct step for the whole campaign;
/// - test sets are evaluated only at a run's planned end (`.atEndOnly`): an experiment that
///   stops early (masked-exact, non-finite) evaluates nothing;
/// - each experiment writes its faulty trace sparsely (the fork state, the last state and
///   the step records) into `scratch/<index>`, deleted once its result line is on disk
///   (kept under `traces/<index>` with `keepTraces`): the campaign keeps only results.
public enum CampaignRunner {
    /// Runs (or with `resume`, continues) the campaign of `parameters` on the golden trace
    /// in `golden`, this `shard` of it, into `out`.
    public static func run(golden goldenPath: String, parameters: CampaignParameters, shard: Shard = .all, out: String,
                           resume: Bool, options: CampaignOptions = .init(),
                           progress: @Sendable (CampaignProgress) -> Void = { _ in }) throws -> CampaignReport {
        guard options.workers > 0, options.threads > 0 else {
            throw CampaignError.badParameter("--workers and --threads must be positive (got \(options.workers) and \(options.threads))")
        }
        // The golden trace is read, the directory written: neither may hold the other.
        if let reason = OutputGuard.conflict(out, with: [goldenPath]) { throw CampaignError.output(directory: out, reason: reason) }
        try CampaignSummary.checkOutputs(directory: out)
        let reader = try TraceReader(directory: goldenPath)
        let identity = try GoldenIdentity(reader)
        let plan = try CampaignPlan(parameters: parameters, golden: identity, specsFile: options.specsFile)
        if let mitigation = parameters.mitigation {
            do {
                try mitigation.validate(optimizer: reader.manifest.config.optimizer, model: try reader.manifest.config.makeModel())
            } catch {
                throw CampaignError.badParameter("--mitigation: \(error)")
            }
        }
        let manifest = CampaignManifest(golden: identity, parameters: plan.parameters, shard: shard == .all ? nil : shard)
        let fm = FileManager.default

        // Everything is checked before anything in `out` changes.
        var existing: [ExperimentResult] = []
        var truncateTo: Int?
        var tornBytes = 0
        var lock: DirectoryLock?
        defer { withExtendedLifetime(lock) {} }
        func takeLock() throws {
            do { lock = try DirectoryLock(directory: out) } catch { throw CampaignError.output(directory: out, reason: error.reason) }
        }
        if resume {
            // Held before reading: a second process resuming at the same time is refused.
            if fm.fileExists(atPath: out) { try takeLock() }
            let previous = try CampaignManifest.load(directory: out)
            let differences = manifest.differences(from: previous)
            guard differences.isEmpty && previous.shard == manifest.shard else {
                let shardNote = previous.shard == manifest.shard ? [] : ["shard: \(manifest.shard?.description ?? "all") vs \(previous.shard?.description ?? "all")"]
                throw CampaignError.mismatch("\(out) holds another campaign; resuming with these parameters would mix them (this run vs the directory's): "
                                             + (differences + shardNote).joined(separator: "; "))
            }
            if let conflict = manifest.scheduleRulesConflict(with: previous, drawsOnProductsInTurn: plan.drawsOnProductsInTurn) {
                throw CampaignError.mismatch("\(out): resuming would mix \(conflict) (this run vs the directory's). Run the campaign again into a new --out")
            }
            let log = try ResultsLog.read(directory: out, campaign: manifest.id)
            if let stray = log.results.first(where: { !shard.contains($0.index) || $0.index >= parameters.experiments }) {
                throw CampaignError.badFile(file: ResultsLog.path(out), line: nil, reason: "experiment \(stray.index) is not one of shard \(shard) of \(parameters.experiments) experiments")
            }
            existing = log.results
            if log.tornBytes > 0 { (truncateTo, tornBytes) = (log.validLength, log.tornBytes) }
        } else {
            // (A lock file alone is what a run killed before it wrote anything leaves.)
            func refuseNonEmpty() throws {
                if ((try? fm.contentsOfDirectory(atPath: out)) ?? []).contains(where: { $0 != DirectoryLock.fileName }) {
                    throw CampaignError.output(directory: out, reason: "already exists and is not empty (use --resume to continue the campaign in it, or another --out)")
                }
            }
            try refuseNonEmpty()
            do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                throw CampaignError.io(file: out, reason: "cannot create: \(error.localizedDescription)")
            }
            try takeLock()
            try refuseNonEmpty()  // another process that also found it empty got here first
            try writeFileAtomically(try CampaignJSON.encode(manifest, pretty: true) + [UInt8(ascii: "\n")], to: CampaignManifest.path(out))
        }

        let appender = try ResultsLog.Appender(directory: out, truncateTo: truncateTo)
        let scratch = out + "/scratch"
        try? fm.removeItem(atPath: scratch)  // what a crashed run left
        let done = Set(existing.map(\.index))
        let total = shard.count(of: parameters.experiments)
        let goldenReference = try GoldenReference(restorer: TraceRestorer(reader: reader, threads: options.threads))
        let replayOptions = FaultReplay.Options(stepsAfterInjection: parameters.stepsAfterInjection, thresholds: parameters.thresholds,
                                                snapshotEvery: Int.max, testEvaluation: .atEndOnly, earlyStop: parameters.earlyStop)

        let state = RunState(indices: shard.stride(of: parameters.experiments), done: done, existing: existing)
        progress(state.progress(total: total))  // before the first experiment: starts the clock of the rate
        let workers = min(options.workers, max(1, total - done.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = state.next() {
                do {
                    let experiment = plan.experiment(index)
                    let dir = "\(scratch)/\(index)"
                    let start = Date()
                    let replay: ReplayResult
                    do {
                        replay = try FaultReplay.run(golden: goldenReference, spec: experiment.spec, specName: "experiment \(index)",
                                                     options: replayOptions, out: dir)
                    } catch {
                        throw CampaignError.experiment(index: index, reason: "\(error) (spec: \(String(decoding: (try? CampaignJSON.encode(experiment.spec)) ?? [], as: UTF8.self)))")
                    }
                    var result = ExperimentResult(campaign: manifest.id, experiment: experiment, replay: replay, seconds: Date().timeIntervalSince(start),
                                                  goldenBefore: ExperimentResult.Curve.context(before: replay.injection.globalStep, records: goldenReference.records))
                    if let mitigation = parameters.mitigation {
                        // The same experiment with mitigation, into a trace of its own.
                        var options = replayOptions
                        options.mitigation = mitigation
                        let mitigatedStart = Date()
                        let mitigatedReplay: ReplayResult
                        do {
                            mitigatedReplay = try FaultReplay.run(golden: goldenReference, spec: experiment.spec, specName: "experiment \(index) (mitigated)",
                                                                  options: options, out: dir + "-mitigated")
                        } catch {
                            throw CampaignError.experiment(index: index, reason: "with mitigation: \(error)")
                        }
                        result.mitigated = ExperimentResult.Mitigated(replay: mitigatedReplay, seconds: Date().timeIntervalSince(mitigatedStart))
                        try? fm.removeItem(atPath: dir + "-mitigated")
                    }
                    try appender.append(result)
                    if options.keepTraces {
                        try? fm.createDirectory(atPath: out + "/traces", withIntermediateDirectories: true)
                        try? fm.removeItem(atPath: "\(out)/traces/\(index)")
                        try? fm.moveItem(atPath: dir, toPath: "\(out)/traces/\(index)")
                    } else {
                        try? fm.removeItem(atPath: dir)
                    }
                    progress(state.finished(result, total: total))
                } catch {
                    state.fail(index, error)
                }
            }
        }
        try? fm.removeItem(atPath: scratch)
        if let error = state.firstError { throw error }

        let all = existing + state.results
        let summary = CampaignSummary(manifest: manifest, results: all)
        try summary.write(to: out)
        return CampaignReport(directory: out, manifest: manifest, results: all.sorted { $0.index < $1.index }, ranNow: state.results.count,
                              resumed: existing.count, tornBytesDropped: tornBytes,
                              goldenEvaluations: goldenReference.evaluations, summary: summary)
    }

    /// The work queue and what the workers found, behind one lock.
    final class RunState: @unchecked Sendable {
        private let lock = NSLock()
        /// The shard's indices, walked once; those already done are skipped.
        private var indices: StrideTo<Int>.Iterator
        private let done: Set<Int>
        private var counts: [String: Int]
        private var doneCount: Int
        private(set) var results: [ExperimentResult] = []
        private var errors: [(Int, Error)] = []

        init(indices: StrideTo<Int>, done: Set<Int>, existing: [ExperimentResult]) {
            self.indices = indices.makeIterator()
            self.done = done
            counts = Dictionary(existing.map { ($0.outcome, 1) }, uniquingKeysWith: +)
            doneCount = existing.count
        }

        /// The next experiment to run; nil when none is left or one failed (no new work
        /// after a failure: the campaign stops, and `--resume` continues it).
        func next() -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard errors.isEmpty else { return nil }
            while let i = indices.next() {
                if !done.contains(i) { return i }
            }
            return nil
        }

        func finished(_ r: ExperimentResult, total: Int) -> CampaignProgress {
            lock.lock()
            defer { lock.unlock() }
            results.append(r)
            counts[r.outcome, default: 0] += 1
            doneCount += 1
            return current(total: total)
        }

        func progress(total: Int) -> CampaignProgress {
            lock.lock()
            defer { lock.unlock() }
            return current(total: total)
        }

        private func current(total: Int) -> CampaignProgress {
            CampaignProgress(done: doneCount, total: total, ranNow: results.count,
                             counts: Outcome.allCases.compactMap { o in counts[o.rawValue].map { (o.rawValue, $0) } })
        }

        func fail(_ index: Int, _ error: Error) {
            lock.lock()
            defer { lock.unlock() }
            errors.append((index, error))
        }

        /// The failure of the lowest-numbered experiment (deterministic for one failing
        /// experiment whatever the scheduling).
        var firstError: Error? {
            lock.lock()
            defer { lock.unlock() }
            return errors.min { $0.0 < $1.0 }?.1
        }
    }
}
