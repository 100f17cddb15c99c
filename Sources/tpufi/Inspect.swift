import ArgumentParser
import Foundation
import Recorder
import Sim

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise a trace and check the integrity of every frame.",
        discussion: """
        Prints the run's settings, the metrics curve, the snapshot policy and the sizes (raw \
        state bytes versus stored), after reading every frame: checksums, snapshot decoding, \
        and each snapshot's digest against its step record. A damaged trace fails naming the \
        frame, its byte offset and its step.
        """)

    @Argument(help: "Trace directory.")
    var trace: String

    @Flag(help: "Print one JSON object.")
    var json = false

    struct Summary: Encodable {
        var workload: String
        var scale: String
        var dataset: String
        var complete: Bool
        var steps: Int
        var plannedSteps: Int
        var snapshotEvery: Int
        var keyframeEvery: Int
        var snapshots: Int
        var framesChecked: Int
        var tornBytes: Int
        var rawStateBytes: Int
        var storedBytes: Int
        /// Per snapshot encoding (keyframe, delta for XOR deltas, update): count and bytes.
        var snapshotKinds: [KindSizes]
        var traceBytes: Int
        var stateDigests: [String]
        var trainLoss: [Float]
        var trainAccuracy: [Float]
        var testAccuracy: [Float]
        /// The global steps the trace holds records for (a faulty run holds those from its
        /// injected step on; a golden run all of them).
        var firstStep: Int?
        var lastStep: Int?
        /// Global steps with a snapshot.
        var snapshotSteps: [Int]
        /// A faulty run's fault, as injected (absent in golden traces).
        var injection: TraceManifest.Injection?
        /// What mitigation found and did (absent when the run had none).
        var mitigation: MitigationRecord?
    }

    struct KindSizes: Encodable {
        var kind: String
        var snapshots: Int
        var rawStateBytes: Int
        var storedBytes: Int
    }

    func run() throws {
        let reader = try TraceReader(directory: trace)
        let checked = try reader.verify()
        let records = try reader.stepRecords()
        let epochs = try reader.epochSummaries()
        let sizes = try reader.snapshotSizes()
        let m = reader.manifest
        let kinds: [KindSizes] = ["keyframe", "delta", "update", "unknown"].compactMap { name in
            let of = sizes.filter { ($0.kind.map { "\($0)" } ?? "unknown") == name }
            return of.isEmpty ? nil : KindSizes(kind: name, snapshots: of.count, rawStateBytes: of.reduce(0) { $0 + $1.raw },
                                                storedBytes: of.reduce(0) { $0 + $1.stored })
        }
        let summary = Summary(workload: m.config.workload, scale: m.config.scaleName, dataset: m.dataset,
                              complete: m.complete, steps: reader.completedSteps, plannedSteps: m.plannedSteps,
                              snapshotEvery: m.snapshotEvery, keyframeEvery: m.keyframeEvery, snapshots: sizes.count,
                              framesChecked: checked, tornBytes: reader.tornBytes,
                              rawStateBytes: sizes.reduce(0) { $0 + $1.raw }, storedBytes: sizes.reduce(0) { $0 + $1.stored }, snapshotKinds: kinds,
                              traceBytes: reader.fileBytes, stateDigests: records.map(\.stateDigest),
                              trainLoss: records.map(\.loss), trainAccuracy: records.map(\.accuracy), testAccuracy: epochs.map(\.testAccuracy),
                              firstStep: records.first?.step, lastStep: records.last?.step, snapshotSteps: reader.snapshotSteps,
                              injection: m.injection, mitigation: m.mitigation)
        if json { return try printJSON(summary) }
        let c = m.config
        print("\(trace): \(c.workload) \(c.scaleName), \(c.replicas) replicas x \(try c.makeModel().batchPerReplica), \(c.optimizer.kind.rawValue), seed \(c.seed), \(c.chip.name) \(c.precision.rawValue)")
        print("data: \(m.dataset) (\(m.trainCount) train, \(m.testCount) test, digest \(m.dataDigest))")
        if let i = m.injection {
            // A faulty run holds the steps from its injection on, not the golden's first ones.
            let held = records.first.flatMap { a in records.last.map { "global steps \(a.step)-\($0.step) (\(records.count) step(s))" } } ?? "no steps"
            print("faulty run forked from \(i.golden) at global step \(i.globalStep) (epoch \(i.globalStep / m.stepsPerEpoch), step \(i.globalStep % m.stepsPerEpoch))")
            let what = i.hardware.map { "\($0) into \(i.site)" } ?? "\(i.faultName) into the \(i.role.rawValue) of \(i.site)"
            print("injection: \(what), replica \(i.replica), global step \(i.globalStep): \(i.factsText)")
            print("steps: \(held), \(m.complete ? "run complete" : "INCOMPLETE (the replay was interrupted)"), \(m.stepsPerEpoch) per epoch")
        } else {
            print("steps: \(reader.completedSteps) of \(m.plannedSteps) (\(m.complete ? "complete" : "INCOMPLETE: resume with tpufi record --resume --out \(trace)")), \(m.stepsPerEpoch) per epoch")
        }
        if let r = m.mitigation {
            let detected = r.events.filter { !$0.detections.isEmpty }.map(\.step)
            print("mitigation \(r.settings): \(r.events.count) event(s)" + (detected.isEmpty ? ", nothing detected" : " at global step(s) \(detected.map(String.init).joined(separator: ", "))"))
        }
        if reader.tornBytes > 0 { print("torn tail: \(reader.tornBytes) bytes after the last whole frame (ignored)") }
        if let first = records.first, let last = records.last {
            print(String(format: "train loss %.4f -> %.4f, accuracy %.4f -> %.4f", first.loss, last.loss, first.accuracy, last.accuracy))
        }
        for e in epochs { print(String(format: "  epoch %d: test loss %.4f accuracy %.4f", e.epoch, e.testLoss, e.testAccuracy)) }
        let raw = summary.rawStateBytes, stored = summary.storedBytes
        print("snapshots: \(sizes.count) (every \(m.snapshotEvery) steps, keyframe every \(m.keyframeEvery)), raw \(raw) bytes, stored \(stored) bytes (\(String(format: "%.2f", Double(raw) / Double(max(stored, 1))))x)")
        let names = ["keyframe": "keyframes", "delta": "XOR deltas", "update": "update deltas", "unknown": "unreadable headers"]
        for k in kinds {
            // Interpolated, not %d: byte counts pass 2^31 (a %d of an Int prints its low 32 bits).
            let ratio = String(format: "%.2fx, %.0f bytes each", Double(k.rawStateBytes) / Double(max(k.storedBytes, 1)),
                               Double(k.storedBytes) / Double(max(k.snapshots, 1)))
            print("  \(names[k.kind] ?? k.kind): \(k.snapshots), raw \(k.rawStateBytes) bytes, stored \(k.storedBytes) bytes (\(ratio))")
        }
        if m.injection != nil {
            print("snapshot steps: \(TraceReader.ranges(reader.snapshotSteps))")
        }
        print("format: version \(m.formatVersion)" + (m.outputDigest.map { ", operation digests \($0.rawValue)" } ?? ""))
        print("integrity: \(checked) frames checked, all checksums and snapshot digests match")
    }
}
