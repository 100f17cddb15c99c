import Foundation
import Testing
import TestSupport

/// No command writes over its own inputs: an output that is an input, lies inside one or
/// contains one (symbolic links resolved) is refused with a message naming both, and every
/// input stays byte-identical.
@Suite struct OutputGuardTests {
    /// Runs `args`, expects a refusal whose message contains `message`, and checks that
    /// `inputs` (files or whole directories) did not change.
    static func refused(_ args: [String], _ message: String, inputs: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = inputs.map(fileTree)
        let r = try tpufi(args)
        #expect(r.status == 1 && !r.signaled && r.err.contains(message), "\(args): \(r.err)", sourceLocation: sourceLocation)
        #expect(inputs.map(fileTree) == before && before.allSatisfy { !$0.isEmpty }, "\(args): an input changed", sourceLocation: sourceLocation)
    }

    /// A scratch directory with a symbolic link `link` to `target` in it.
    static func link(_ name: String, to target: String) throws -> String {
        let dir = Scratch.path("guard-links-\(name)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: target)
        return dir + "/link"
    }

    static func parent(_ path: String) -> String { (path as NSString).deletingLastPathComponent }

    @Test func exportRefusesToWriteOverTheTraceItReads() throws {
        let golden = ReplayCommandTests.golden
        let frames = golden + "/frames.tpf"
        let before = FileManager.default.contents(atPath: frames)
        for out in [frames, golden + "/./manifest.json", golden + "/../" + URL(fileURLWithPath: golden).lastPathComponent + "/frames.tpf"] {
            let r = try tpufi(["export", golden, "--step", "1", "--out", out])
            #expect(r.status == 1 && r.err.contains("is an input of this command"), "\(out): \(r.err)")
        }
        #expect(FileManager.default.contents(atPath: frames) == before && before != nil)
        let missing = try tpufi(["export", golden, "--step", "1", "--out", "/nonexistent-dir/state.safetensors"])
        #expect(missing.status == 1 && missing.err.contains("/nonexistent-dir/state.safetensors: cannot write:") && !missing.err.contains("NSCocoaErrorDomain"), "\(missing.err)")
    }

    @Test func exportRefusesAPathInsideOrContainingItsTrace() throws {
        let golden = IntegrityGolden.dir
        let export = { (out: String) in ["export", golden, "--step", "1", "--out", out] }
        try Self.refused(export(golden + "/state.safetensors"), "\(golden)/state.safetensors: is inside \(golden), an input of this command", inputs: [golden])
        try Self.refused(export(golden), "\(golden): is an input of this command (\(golden))", inputs: [golden])
        try Self.refused(export(Self.parent(golden)), "contains \(golden)", inputs: [golden])
        let link = try Self.link("export", to: golden + "/frames.tpf")
        try Self.refused(export(link), "\(link): is an input of this command (\(golden)/frames.tpf)", inputs: [golden])
    }

    @Test func replayRefusesAnOutputOnItsGoldenTraceOrSpec() throws {
        let golden = IntegrityGolden.dir
        let specDir = Scratch.path("guard-replay-spec")
        try FileManager.default.createDirectory(atPath: specDir, withIntermediateDirectories: true)
        let spec = specDir + "/zero.csv"
        try ReplayCommandTests.spec.write(toFile: spec, atomically: true, encoding: .utf8)
        let replay = { (out: String) in ["replay", "--golden", golden, "--spec", spec, "--steps-after-injection", "1", "--out", out] }
        try Self.refused(replay(golden), "\(golden): is an input of this command (\(golden))", inputs: [golden, spec])
        try Self.refused(replay(golden + "/faulty"), "is inside \(golden), an input of this command", inputs: [golden, spec])
        try Self.refused(replay(specDir), "\(specDir): contains \(spec), an input of this command", inputs: [golden, spec])
        let link = try Self.link("replay", to: golden)
        try Self.refused(replay(link + "/faulty"), "\(link)/faulty: is inside \(golden), an input of this command", inputs: [golden, spec])
        #expect(!FileManager.default.fileExists(atPath: golden + "/faulty"))
    }

    @Test func campaignRefusesADirectoryOnItsGoldenTrace() throws {
        let golden = IntegrityGolden.dir
        let campaign = { (out: String, resume: Bool) in
            ["campaign", "--golden", golden, "--experiments", "1", "--steps-after-injection", "0", "--out", out] + (resume ? ["--resume"] : [])
        }
        for resume in [false, true] {
            try Self.refused(campaign(golden + "/campaign", resume), "\(golden)/campaign: is inside \(golden), an input of this command", inputs: [golden])
            try Self.refused(campaign(golden, resume), "is an input of this command (\(golden))", inputs: [golden])
            try Self.refused(campaign(Self.parent(golden), resume), "contains \(golden), an input of this command", inputs: [golden])
        }
        #expect(!FileManager.default.fileExists(atPath: golden + "/campaign"))
    }

    @Test func mergeRefusesAnOutputOnItsShards() throws {
        let shard = Scratch.path("guard-merge-shard")
        let c = try tpufi(["campaign", "--golden", IntegrityGolden.dir, "--experiments", "1", "--steps-after-injection", "0", "--out", shard])
        #expect(c.status == 0, "\(c.err)")
        try Self.refused(["merge", shard, "--out", shard + "/merged"], "\(shard)/merged: is inside \(shard), an input of this command", inputs: [shard])
        try Self.refused(["merge", shard, "--out", shard], "is an input of this command (\(shard))", inputs: [shard])
        try Self.refused(["merge", shard, "--out", Self.parent(shard)], "contains \(shard), an input of this command", inputs: [shard])
        #expect(!FileManager.default.fileExists(atPath: shard + "/merged"))
    }

    /// `summarize` (and a campaign's last step) writes summary.json and summary.csv next to
    /// the results they are computed from: a summary file that is a link to an input is refused.
    @Test func summarizeRefusesSummaryFilesThatAreItsInputs() throws {
        let dir = Scratch.path("guard-summarize")
        let c = try tpufi(["campaign", "--golden", IntegrityGolden.dir, "--experiments", "1", "--steps-after-injection", "0", "--out", dir])
        #expect(c.status == 0, "\(c.err)")
        for (summary, input) in [("summary.json", "results.jsonl"), ("summary.csv", "campaign.json")] {
            try FileManager.default.removeItem(atPath: dir + "/" + summary)
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + summary, withDestinationPath: dir + "/" + input)
            try Self.refused(["campaign", "summarize", dir], "\(dir)/\(summary): is an input of this command (\(dir)/\(input))",
                             inputs: [dir + "/results.jsonl", dir + "/campaign.json"])
            try Self.refused(["campaign", "--golden", IntegrityGolden.dir, "--experiments", "1", "--steps-after-injection", "0", "--resume", "--out", dir],
                             "\(dir)/\(summary): is an input of this command (\(dir)/\(input))", inputs: [dir + "/results.jsonl", dir + "/campaign.json"])
            try FileManager.default.removeItem(atPath: dir + "/" + summary)
        }
        let fine = try tpufi(["campaign", "summarize", dir])
        #expect(fine.status == 0, "\(fine.err)")
    }

    @Test func reportRefusesAnOutputOnTheFilesItReads() throws {
        let dir = Scratch.path("guard-report")
        let c = try tpufi(["campaign", "--golden", IntegrityGolden.dir, "--experiments", "1", "--steps-after-injection", "0", "--out", dir])
        #expect(c.status == 0, "\(c.err)")
        let inputs = [dir + "/campaign.json", dir + "/results.jsonl"]
        try Self.refused(["report", dir, "--out", dir + "/results.jsonl"], "\(dir)/results.jsonl: is an input of this command (\(dir)/results.jsonl)", inputs: inputs)
        try Self.refused(["report", dir, "--out", dir], "\(dir): contains \(dir)/campaign.json, an input of this command", inputs: inputs)
        let link = try Self.link("report", to: dir + "/campaign.json")
        try Self.refused(["report", dir, "--out", link], "\(link): is an input of this command (\(dir)/campaign.json)", inputs: inputs)
        let r = try tpufi(["report", dir])
        #expect(r.status == 0 && FileManager.default.fileExists(atPath: dir + "/report.html"), "\(r.err)")
    }

    /// `record` reads its data set: a trace directory in (or around) a data set's directory
    /// is refused before the data is loaded.
    @Test func recordRefusesATraceInsideItsDataSet() throws {
        let data = Scratch.path("guard-record-data")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try Data("not CIFAR-10".utf8).write(to: URL(fileURLWithPath: data + "/data_batch_1.bin"))
        let record = { (out: String) in
            ["record", "--workload", "resnet18", "--scale", "paper", "--dataset", "cifar10:\(data)", "--steps", "1", "--out", out]
        }
        try Self.refused(record(data + "/trace"), "\(data)/trace: is inside \(data), an input of this command", inputs: [data])
        try Self.refused(record(Self.parent(data)), "contains \(data), an input of this command", inputs: [data])
        #expect(!FileManager.default.fileExists(atPath: data + "/trace"))
    }

    @Test func optimizerStudyRefusesADirectoryOnItsGoldenTrace() throws {
        let golden = IntegrityGolden.dir
        let study = { (out: String) in
            ["optimizer-study", "--golden", golden, "--baseline", "adam", "--test-optimizers", "sgd", "--num-experiments", "1",
             "--steps-after-injection", "1", "--out", out]
        }
        try Self.refused(study(golden + "/study"), "\(golden)/study: is inside \(golden), an input of this command", inputs: [golden])
        try Self.refused(study(golden), "is an input of this command (\(golden))", inputs: [golden])
        try Self.refused(study(Self.parent(golden)) + [], "contains \(golden), an input of this command", inputs: [golden])
        try Self.refused(study(golden + "/study") + ["--resume"], "is inside \(golden), an input of this command", inputs: [golden])
        #expect(!FileManager.default.fileExists(atPath: golden + "/study"))
    }
}
