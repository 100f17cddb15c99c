import ArgumentParser
import Foundation
import Recorder
import Sim

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a golden (fault-free) training run as a trace.",
        discussion: """
        Trains like `train` and writes a trace directory: manifest.json (every setting, the \
        data set's digest, the timing model's per-layer cycles) and frames.tpf, an append-only \
        log of snapshots of the whole training state (zstd, deltas against keyframes), per-step \
        metrics with a digest of every MXU operation's output on every replica and of the \
        state, and per-epoch test metrics. Each step is written and synced to disk while the \
        next one trains: a killed recording keeps every step written (all but the last one \
        or two it ran) and continues with --resume.

        Examples:
          tpufi record --workload resnet18 --scale small --dataset fashion-mnist --epochs 1 --out golden/resnet18-small
          tpufi record --scale tiny --dataset synthetic --steps 40 --replicas 2 --out /tmp/t
          tpufi record --resume --out golden/resnet18-small
        """)

    @OptionGroup var training: TrainingOptions

    @Option(help: "Snapshot the state after every K updates (1: every step).")
    var snapshotEvery: Int = 1

    @Option(help: "Every K-th snapshot is a keyframe; the others store the step's gradients (update deltas; restoring applies up to K-1 of them) or, with --snapshot-every above 1, XOR deltas against the keyframe.")
    var keyframeEvery: Int = 8

    @Flag(help: "Continue the interrupted trace in --out (its own settings apply).")
    var resume = false

    @Option(help: "Trace directory (default: golden/<workload>-<scale>-seed<S>).")
    var out: String?

    func run() throws {
        let directory = out ?? "golden/\(training.workload)-\(training.scale)-seed\(training.seed)"
        let start = Date()
        var progress: ProgressLine?
        let report: (TrainingEvent) -> Void = { event in
            switch event {
            case .step(let step, let m):
                progress?.update(done: step + 1, detail: String(format: "loss %.4f acc %.3f", m.loss, m.accuracy))
            case .epoch(let e):
                progress?.clear()
                emit(String(format: "epoch %d (%d steps): train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f s",
                            e.epoch, e.steps, e.trainLoss, e.trainAccuracy, e.testLoss, e.testAccuracy, Date().timeIntervalSince(start)))
            case .mitigation:
                break  // a golden run has none (`tpufi detect` runs detectors over it)
            }
        }
        let reader: TraceReader
        if resume {
            let existing = try TraceReader(directory: directory)
            try OutputGuard.check(directory, against: try DatasetSource.parse(existing.manifest.dataset).inputPaths)
            emit("resuming \(directory) after step \(existing.completedSteps) of \(existing.manifest.plannedSteps)")
            progress = ProgressLine(total: existing.manifest.plannedSteps)
            reader = try TraceRecorder.resume(directory: directory, threads: training.threads, report: report)
        } else {
            // The data set is read, the trace written: neither may hold the other.
            try OutputGuard.check(directory, against: try DatasetSource.parse(try training.datasetSpelling()).inputPaths)
            let loaded = try training.makeRun()
            let run = loaded.run
            if let note = loaded.note { emit(note) }
            let steps = try training.totalSteps(run)
            emit("recording \(run.config.workload) \(run.config.scaleName) on \(run.data.train.name), \(steps) steps, into \(directory)")
            progress = ProgressLine(total: steps)
            reader = try TraceRecorder.record(run: run, dataset: loaded.dataset, steps: steps,
                                              policy: .init(snapshotEvery: snapshotEvery, keyframeEvery: keyframeEvery), to: directory,
                                              report: report)
        }
        progress?.clear()
        emit("recorded \(reader.completedSteps) steps in \(String(format: "%.0f", Date().timeIntervalSince(start))) s: \(directory)")
    }
}
