import Foundation
import Testing
import TestSupport
@testable import Recorder
import Sim

func tinyRun(threads: Int = 1) throws -> TrainingRun {
    let data = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1").load()
    return try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), data: data, threads: threads)
}

func scratch(_ name: String) -> String {
    Scratch.path("trace-\(name)")
}

func fileBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

@Suite(.serialized) struct TraceTests {
    static let steps = 11
    static let policy = TraceRecorder.Policy(snapshotEvery: 1, keyframeEvery: 4)

    static func record(_ name: String, policy: TraceRecorder.Policy = policy, threads: Int = 1) throws -> TraceReader {
        try TraceRecorder.record(run: try tinyRun(threads: threads), dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: steps, policy: policy, to: scratch(name))
    }

    /// A manifest copied from another run of the same shape is refused by `verify` (inspect)
    /// and by restoring (replay, campaign, bisect), naming what gives it away: another seed
    /// starts from another initial state; another data set size puts the steps in other epochs.
    @Test func aManifestFromAnotherRunOfTheSameShapeIsRefused() throws {
        func record(_ name: String, seed: UInt64, train: Int) throws -> TraceReader {
            let dataset = "synthetic:train=\(train),test=16,shape=16x16x1"
            let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2, seed: seed),
                                      data: try DatasetSource.parse(dataset).load())
            return try TraceRecorder.record(run: run, dataset: dataset, steps: 6, policy: .init(snapshotEvery: 3), to: scratch(name))
        }
        let a = try record("binding-a", seed: 1, train: 64)
        #expect(try a.verify() > 0)
        _ = try TraceRestorer(reader: a)
        for (name, seed, train, clue) in [("binding-seed", UInt64(2), 64, "initial snapshot"), ("binding-epochs", UInt64(1), 32, "epoch")] {
            let b = try record(name, seed: seed, train: train)
            defer { try? FileManager.default.removeItem(atPath: b.directory) }
            // b's frames under a's manifest.
            try FileManager.default.removeItem(atPath: TraceWriter.manifestPath(b.directory))
            try FileManager.default.copyItem(atPath: TraceWriter.manifestPath(a.directory), toPath: TraceWriter.manifestPath(b.directory))
            let swapped = try TraceReader(directory: b.directory)
            for attempt in [{ _ = try swapped.verify() }, { _ = try TraceRestorer(reader: swapped) }] {
                do {
                    try attempt()
                    Issue.record("\(name): a swapped manifest was accepted")
                } catch {
                    #expect("\(error)".contains("belongs to another run") && "\(error)".contains(clue), "\(error)")
                }
            }
        }
        try? FileManager.default.removeItem(atPath: a.directory)
    }

    /// A run fed adapted data (``ImageAdaptation``) records the spelling that reproduces it;
    /// restoring reloads exactly that data, and a manifest naming other data is refused.
    @Test func aTraceRecordsTheAdaptedDataItWasFedAndRefusesOtherData() throws {
        let spelling = "synthetic@16x16x1:train=16,test=8,shape=4x4x1"
        let loaded = try TrainingRun.load(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), dataset: spelling)
        #expect(loaded.fitted == nil && loaded.dataset == spelling)
        let directory = scratch("adapted")
        let reader = try TraceRecorder.record(run: loaded.run, dataset: loaded.dataset, steps: 2, policy: .init(snapshotEvery: 2), to: directory)
        #expect(reader.manifest.dataset == spelling && reader.manifest.datasetName == "synthetic-train@16x16x1")
        // Step 1 is re-executed from the initial snapshot, checked against its recorded digest.
        #expect(try TraceRestorer(reader: reader).state(at: 1).step == 1)
        let manifest = try String(contentsOfFile: directory + "/manifest.json", encoding: .utf8)
        for other in ["synthetic:train=16,test=8,shape=16x16x1", "synthetic@16x16x1:train=16,test=8,shape=2x2x1"] {
            let copy = scratch("adapted-other")
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: directory, toPath: copy)
            try manifest.replacingOccurrences(of: "\"\(spelling)\"", with: "\"\(other)\"")
                .write(toFile: copy + "/manifest.json", atomically: true, encoding: .utf8)
            let message: String
            do { _ = try TraceRestorer(reader: TraceReader(directory: copy)); message = "no error" } catch { message = "\(error)" }
            #expect(message.contains("data set '\(other)' loads as digest") && message.contains("the trace was recorded on \(reader.manifest.dataDigest)"), "\(message)")
        }
    }

    @Test func recordsEveryStepAndRestoresAnyStepExactly() throws {
        let reader = try Self.record("full")
        #expect(reader.manifest.complete && reader.completedSteps == Self.steps && reader.tornBytes == 0)
        let records = try reader.stepRecords()
        #expect(records.map(\.step) == Array(0..<Self.steps))
        #expect(records.allSatisfy { $0.siteDigests.count == 2 && $0.siteDigests[0].count == reader.manifest.sites.count })
        #expect(try reader.epochSummaries().map(\.epoch) == [0, 1])
        #expect(reader.snapshotSteps == Array(0...Self.steps))
        #expect(try reader.verify() == reader.frames.count)

        let run = try tinyRun()
        var state = run.initialState()
        var direct = [state]
        for _ in 0..<Self.steps {
            state = run.step(state).0
            direct.append(state)
        }
        for s in [0, 3, 4, 7, 11] { #expect(try reader.snapshot(at: s) == direct[s]) }
        for (s, r) in records.enumerated() { #expect(r.stateDigest == direct[s + 1].digest.description) }
        // Sparse snapshots: restoring re-executes from the nearest one, checked step by step.
        let sparse = try Self.record("sparse", policy: .init(snapshotEvery: 4, keyframeEvery: 2))
        #expect(sparse.snapshotSteps == [0, 4, 8, 11])
        let restorer = try TraceRestorer(reader: sparse, run: run)
        #expect(try restorer.state(at: 6) == direct[6])
        #expect(throws: TraceError.self) { try sparse.snapshot(at: 6) }
    }

    @Test func sameInputsGiveByteIdenticalTracesForAnyThreadCount() throws {
        let a = try Self.record("same-a"), b = try Self.record("same-b", threads: 2)
        #expect(fileBytes(a.framesPath) == fileBytes(b.framesPath))
        #expect(fileBytes(TraceWriter.manifestPath(a.directory)) == fileBytes(TraceWriter.manifestPath(b.directory)))
    }

    /// A crash can leave the frame file cut anywhere: the reader keeps every complete step and
    /// resuming reproduces the uninterrupted trace byte for byte.
    @Test func truncatedTracesResumeToTheSameBytes() throws {
        let full = try Self.record("resume-full")
        let golden = fileBytes(full.framesPath)
        // 0 and 20: killed before the initial snapshot landed (nothing, or a torn first frame).
        for cut in [0, 20, golden.count / 7, golden.count / 2 + 13, golden.count - 5] {
            let dir = scratch("resume-\(cut)")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var manifest = full.manifest
            manifest.complete = false
            manifest.completedSteps = 0
            try Data(try JSONCoding.encode(manifest)).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(dir)))
            try Data(golden[..<cut]).write(to: URL(fileURLWithPath: TraceWriter.framesPath(dir)))
            let partial = try TraceReader(directory: dir)
            #expect(partial.completedSteps < Self.steps)
            _ = try partial.verify()
            let resumed = try TraceRecorder.resume(directory: dir)
            #expect(resumed.manifest.complete && resumed.completedSteps == Self.steps)
            #expect(fileBytes(resumed.framesPath) == golden, "cut at \(cut)")
        }
    }

    /// One writer per trace directory: while one holds it (here a lock taken as a running
    /// `record --resume` or replay would), a resume or a new trace there is refused before
    /// anything is read or written, naming the holder's pid; afterwards both proceed.
    @Test func aTraceDirectoryBeingWrittenIsRefusedToASecondWriter() throws {
        let full = try Self.record("locked-full")
        let dir = scratch("locked")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var manifest = full.manifest
        (manifest.complete, manifest.completedSteps) = (false, 0)
        try Data(try JSONCoding.encode(manifest)).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(dir)))
        let golden = fileBytes(full.framesPath)
        let cut = Array(golden[..<(golden.count / 2)])
        try Data(cut).write(to: URL(fileURLWithPath: TraceWriter.framesPath(dir)))
        let empty = scratch("locked-empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        do {
            let held = try TraceWriter.lock(dir), heldEmpty = try TraceWriter.lock(empty)
            let busy = "in use by another tpufi process (pid \(getpid()))"
            #expect(throws: TraceError.io(file: dir, reason: busy + "; wait for it to finish, or use another directory")) {
                try TraceRecorder.resume(directory: dir)
            }
            #expect(throws: TraceError.io(file: empty, reason: busy + "; wait for it to finish, or use another directory")) {
                try TraceWriter(creating: empty, manifest: manifest)
            }
            #expect(fileBytes(TraceWriter.framesPath(dir)) == cut)
            withExtendedLifetime((held, heldEmpty)) {}
        }
        let resumed = try TraceRecorder.resume(directory: dir)
        #expect(resumed.manifest.complete && fileBytes(resumed.framesPath) == golden)
        // The lock file a finished writer leaves behind does not make a directory non-empty.
        _ = try TraceWriter(creating: empty, manifest: manifest)
        // Resuming a directory that holds no trace creates nothing in it.
        let none = scratch("locked-none")
        try FileManager.default.createDirectory(atPath: none, withIntermediateDirectories: true)
        #expect(throws: TraceError.self) { try TraceRecorder.resume(directory: none) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: none).isEmpty)
    }

    /// A complete trace whose frame file was cut after some whole frames is refused, naming
    /// the file and both step counts (it used to read as complete and intact).
    @Test func aCompleteTraceCutShortIsRefused() throws {
        let full = try Self.record("cut-complete")
        let bytes = fileBytes(full.framesPath)
        let lastOfStep2 = try #require(full.frames.last { $0.header.step == 2 })
        let dir = scratch("cut-complete-copy")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(fileBytes(TraceWriter.manifestPath(full.directory))).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(dir)))
        try Data(bytes[..<lastOfStep2.end]).write(to: URL(fileURLWithPath: TraceWriter.framesPath(dir)))
        let error = #expect(throws: TraceError.self) { try TraceReader(directory: dir) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains(TraceWriter.framesPath(dir)) && text.contains("records \(Self.steps) steps") && text.contains("cut short"), "\(text)")
    }

    /// A recording killed while writing its first manifest leaves only the manifest's
    /// temporary file: a fresh recording into that directory proceeds; one with anything else
    /// in it is refused without a hint at a `--resume` the caller may not have.
    @Test func aDirectoryLeftBeforeTheFirstManifestCanBeRecordedInto() throws {
        let dir = scratch("killed-before-manifest")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("{\"formatVers".utf8).write(to: URL(fileURLWithPath: TraceWriter.manifestPath(dir) + ".tmp"))
        let reader = try TraceRecorder.record(run: try tinyRun(), dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: 1,
                                              policy: .init(), to: dir)
        #expect(reader.manifest.complete && !FileManager.default.fileExists(atPath: TraceWriter.manifestPath(dir) + ".tmp"))
        let error = #expect(throws: TraceError.self) {
            try TraceRecorder.record(run: try tinyRun(), dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: 1, policy: .init(), to: dir)
        }
        #expect(error.map { "\($0)" }?.contains("already exists and is not empty: choose another --out") == true)
        #expect(error.map { "\($0)" }?.contains("resume") == false)
    }

    @Test func damagedFramesAreReportedWithFrameAndStep() throws {
        let reader = try Self.record("damaged")
        var bytes = fileBytes(reader.framesPath)
        let victim = reader.frames.first { $0.header.kind == .snapshot && $0.header.step == 5 }!
        bytes[victim.payloadOffset + victim.header.length / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: reader.framesPath))
        let damaged = try TraceReader(directory: reader.directory)
        do {
            _ = try damaged.verify()
            Issue.record("a flipped byte went unnoticed")
        } catch {
            #expect(error.description.contains("frame \(victim.index)") && error.description.contains("step 5"))
        }
        // A damaged header in the middle is an error too, not a silently shorter trace.
        var header = fileBytes(reader.framesPath)
        header[reader.frames[3].offset + 9] ^= 1
        try Data(header).write(to: URL(fileURLWithPath: reader.framesPath))
        #expect(throws: TraceError.self) { try TraceReader(directory: reader.directory) }
        #expect(throws: TraceError.self) { try TraceReader(directory: "/nonexistent/trace") }
    }

    @Test func refusesToOverwriteOrResumeWhatItShouldNot() throws {
        let reader = try Self.record("refuse")
        #expect(throws: TraceError.self) {
            try TraceRecorder.record(run: try tinyRun(), dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: 2, policy: Self.policy, to: reader.directory)
        }
        #expect(throws: TraceError.self) { try TraceRecorder.resume(directory: reader.directory) }
    }
}

@Suite struct ExportTests {
    @Test func exportedStateReadsBackAsTheRecordedTensors() throws {
        let reader = try TraceRecorder.record(run: try tinyRun(), dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: 3,
                                              policy: .init(), to: scratch("export"))
        let state = try reader.snapshot(at: 2)
        let path = scratch("export-file") + ".safetensors"
        try StateExport.write(state, manifest: reader.manifest, to: path)
        let (tensors, metadata) = try Safetensors.read(path: path)
        #expect(metadata["step"] == "2" && metadata["stateDigest"] == state.digest.description)
        #expect(tensors["param/conv1/kernel"] == .float(shape: [7, 7, 1, 4], values: state.parameters[0]))
        #expect(tensors["slot/v/dense/bias"] != nil && tensors["moving/conv1_bn/variance"] != nil)
        #expect(tensors.count == reader.manifest.parameterNames.count * 3 + 2 * 20)
    }
}
