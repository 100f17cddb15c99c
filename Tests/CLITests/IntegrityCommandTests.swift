import Foundation
import Testing
import TestSupport

/// A tiny golden trace for the integrity tests (2 replicas, 4 steps), recorded once.
enum IntegrityGolden {
    static let dir: String = {
        let d = Scratch.path("integrity-golden")
        _ = try? tpufi(["record", "--workload", "resnet18", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16,shape=16x16x1",
                        "--steps", "4", "--replicas", "2", "--threads", "1", "--out", d])
        return d
    }()
}

/// Every regular file under `path` (or `path` itself) and its bytes: what must not change.
func fileTree(_ path: String) -> [String: Data] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [:] }
    guard isDirectory.boolValue else { return [path: FileManager.default.contents(atPath: path) ?? Data()] }
    var out: [String: Data] = [:]
    for name in (FileManager.default.subpaths(atPath: path) ?? []) {
        let full = path + "/" + name
        var dir: ObjCBool = false
        if FileManager.default.fileExists(atPath: full, isDirectory: &dir), !dir.boolValue { out[full] = FileManager.default.contents(atPath: full) }
    }
    return out
}

/// Polls `condition` until it holds; false if `child` ended first (or after a generous bound,
/// so a broken test cannot wait for ever).
func waitUntil(_ child: TpufiProcess, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(defaultTpufiTimeout)
    while Date() < deadline {
        if condition() { return true }
        if !child.isRunning { return condition() }
        usleep(20_000)
    }
    return false
}

/// Whole lines in a campaign directory's `results.jsonl` so far (0 before the first).
func finishedExperiments(_ directory: String) -> Int {
    (FileManager.default.contents(atPath: directory + "/results.jsonl") ?? Data()).filter { $0 == UInt8(ascii: "\n") }.count
}

/// The experiment indices of a campaign directory's `results.jsonl`, in file order.
func resultIndices(_ directory: String) throws -> [Int] {
    try String(contentsOfFile: directory + "/results.jsonl", encoding: .utf8).split(separator: "\n").map { line in
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["index"] as? Int ?? -1
    }
}

/// Campaign and optimizer-study directories take one process at a time; the lock goes with
/// the process, however it ends.
@Suite(.serialized) struct DirectoryInUseTests {
    static func campaign(_ dir: String, experiments: Int = 8) -> [String] {
        ["campaign", "--golden", IntegrityGolden.dir, "--experiments", "\(experiments)", "--seed", "5", "--steps-after-injection", "1",
         "--threads", "1", "--out", dir]
    }

    /// While a campaign runs, a second one on its directory (resumed or new) is refused naming
    /// the first's pid, and changes nothing; the first finishes with a directory that
    /// `summarize`, `--resume` and `report` accept, every experiment once.
    @Test func aSecondCampaignOnADirectoryInUseIsRefusedAndTheFirstFinishesCleanly() throws {
        let dir = Scratch.path("inuse-campaign")
        let first = try startTpufi(Self.campaign(dir))
        #expect(waitUntil(first) { FileManager.default.fileExists(atPath: dir + "/campaign.json") }, "the campaign never wrote campaign.json")
        let manifest = FileManager.default.contents(atPath: dir + "/campaign.json")
        let resumed = try tpufi(Self.campaign(dir) + ["--resume"])
        #expect(resumed.status == 1 && !resumed.signaled, "\(resumed.err)")
        #expect(resumed.err.contains("\(dir): in use by another tpufi process (pid \(first.pid)); wait for it to finish, or use another directory"),
                "\(resumed.err)")
        let fresh = try tpufi(Self.campaign(dir))
        #expect(fresh.status == 1 && (fresh.err.contains("in use by another tpufi process") || fresh.err.contains("not empty")), "\(fresh.err)")
        #expect(FileManager.default.contents(atPath: dir + "/campaign.json") == manifest)

        let done = try first.wait()
        #expect(done.status == 0 && done.out.contains("ran 8 experiment(s)"), "\(done.err)")
        #expect(try resultIndices(dir).sorted() == Array(0..<8))
        let summary = try tpufi(["campaign", "summarize", dir, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(summary.out.utf8)) as? [String: Any], "\(summary.err)")
        #expect(json["completed"] as? Int == 8 && (json["missing"] as? [Int])?.isEmpty == true)
        // Released at exit: a resume takes the directory and finds nothing to do.
        let again = try tpufi(Self.campaign(dir) + ["--resume"])
        #expect(again.status == 0 && again.out.contains("ran 0 experiment(s)"), "\(again.err)")
        let report = try tpufi(["report", dir])
        #expect(report.status == 0 && FileManager.default.fileExists(atPath: dir + "/report.html"), "\(report.err)")
        #expect(try resultIndices(dir).sorted() == Array(0..<8))
    }

    /// A campaign killed with SIGKILL holds nothing: the kernel dropped its lock, and a resume
    /// finishes the campaign (each experiment once) although the lock file still names the
    /// dead process.
    @Test func aCampaignKilledWithSIGKILLLeavesNoStaleLock() throws {
        let dir = Scratch.path("inuse-killed")
        let child = try startTpufi(Self.campaign(dir))
        #expect(waitUntil(child) { finishedExperiments(dir) >= 1 }, "no experiment finished")
        kill(child.pid, SIGKILL)
        let killed = try child.wait()
        #expect(killed.signaled && killed.status == SIGKILL, "the campaign ended before it could be killed: \(killed.status)")
        let lockFile = String(decoding: FileManager.default.contents(atPath: dir + "/.lock") ?? Data(), as: UTF8.self)
        #expect(lockFile.trimmingCharacters(in: .whitespacesAndNewlines) == "\(child.pid)", "\(lockFile)")
        let resumed = try tpufi(Self.campaign(dir) + ["--resume"])
        #expect(resumed.status == 0 && resumed.out.contains("resumed: "), "\(resumed.err)")
        #expect(try resultIndices(dir).sorted() == Array(0..<8))
    }

    /// The same for an optimizer study: a resume while it runs is refused naming its pid, and
    /// it finishes with a directory that `--resume` and `report` accept.
    @Test func aSecondOptimizerStudyOnADirectoryInUseIsRefused() throws {
        let dir = Scratch.path("inuse-study")
        let args = ["optimizer-study", "--golden", IntegrityGolden.dir, "--baseline", "adam", "--test-optimizers", "sgd", "--num-experiments", "8",
                    "--steps-after-injection", "1", "--seed", "2", "--threads", "1", "--out", dir]
        let first = try startTpufi(args)
        #expect(waitUntil(first) { FileManager.default.fileExists(atPath: dir + "/study-manifest.json") }, "the study never wrote its manifest")
        let resumed = try tpufi(args + ["--resume"])
        #expect(resumed.status == 1 && resumed.err.contains("\(dir): in use by another tpufi process (pid \(first.pid))"), "\(resumed.err)")
        let done = try first.wait()
        #expect(done.status == 0 && done.out.contains("ran 8 experiment(s)"), "\(done.err)")
        let again = try tpufi(args + ["--resume"])
        #expect(again.status == 0 && again.out.contains("resumed: 8 experiment(s) already done"), "\(again.err)")
        let report = try tpufi(["report", dir])
        #expect(report.status == 0, "\(report.err)")
    }
}

/// Only regular files are read as trace files, campaign files or specs: a FIFO (which would
/// block the open or the read), a directory or a link to `/dev/zero` (which never ends) in
/// their place is a clear error naming the file, at once.
@Suite struct NonRegularInputTests {
    /// `path` replaced by a FIFO, a directory or a symbolic link to /dev/zero.
    static func replace(_ path: String, with kind: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        switch kind {
        case "fifo": #expect(mkfifo(path, 0o644) == 0)
        case "directory": try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        default: try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/dev/zero")
        }
    }

    static let kinds = [("fifo", "a FIFO"), ("directory", "a directory"), ("zero", "a character device")]

    @Test(arguments: ["manifest.json", "frames.tpf"])
    func aTraceFileThatIsNotARegularFileIsNamed(_ file: String) throws {
        let spec = try temporaryFile("nonregular-\(file).csv", ReplayCommandTests.spec)
        for (kind, words) in Self.kinds {
            let dir = Scratch.path("nonregular-\(file)-\(kind)")
            try FileManager.default.copyItem(atPath: IntegrityGolden.dir, toPath: dir)
            try Self.replace(dir + "/" + file, with: kind)
            for args in [["inspect", dir], ["replay", "--golden", dir, "--spec", spec, "--out", dir + "-faulty"],
                         ["export", dir, "--step", "1", "--out", dir + "-state.safetensors"]] {
                let r = try tpufi(args, timeout: 120)
                #expect(r.status == 1 && !r.signaled && r.err.contains("\(dir)/\(file): not a regular file (\(words))"), "\(args): \(r.err)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "-faulty") && !FileManager.default.fileExists(atPath: dir + "-state.safetensors"))
        }
    }

    /// Data set files too (a CIFAR-10 batch here): loading one that is not a regular file
    /// fails naming it instead of blocking.
    @Test func aDataFileThatIsNotARegularFileIsNamed() throws {
        for (kind, words) in Self.kinds {
            let dir = Scratch.path("nonregular-cifar-\(kind)")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Self.replace(dir + "/data_batch_1.bin", with: kind)
            let r = try tpufi(["train", "--workload", "resnet18", "--scale", "paper", "--dataset", "cifar10:\(dir)", "--steps", "1"], timeout: 120)
            #expect(r.status == 1 && !r.signaled && r.err.contains("\(dir)/data_batch_1.bin: not a regular file (\(words))"), "\(r.err)")
        }
    }

    @Test func campaignFilesAndSpecsThatAreNotRegularFilesAreNamed() throws {
        let source = Scratch.path("nonregular-campaign-source")
        let c = try tpufi(["campaign", "--golden", IntegrityGolden.dir, "--experiments", "1", "--steps-after-injection", "0", "--out", source])
        #expect(c.status == 0, "\(c.err)")
        for file in ["campaign.json", "results.jsonl"] {
            for (kind, words) in Self.kinds {
                let dir = Scratch.path("nonregular-\(file)-\(kind)")
                try FileManager.default.copyItem(atPath: source, toPath: dir)
                try Self.replace(dir + "/" + file, with: kind)
                for args in [["campaign", "summarize", dir], ["report", dir], ["merge", dir, "--out", dir + "-merged"]] {
                    let r = try tpufi(args, timeout: 120)
                    #expect(r.status == 1 && !r.signaled && r.err.contains("\(dir)/\(file): not a regular file (\(words))"), "\(args): \(r.err)")
                }
            }
        }
        for (kind, words) in Self.kinds {
            let spec = Scratch.path("nonregular-spec-\(kind).json")
            try Self.replace(spec, with: kind)
            let r = try tpufi(["replay", "--golden", IntegrityGolden.dir, "--spec", spec, "--out", spec + "-faulty"], timeout: 120)
            #expect(r.status == 1 && r.err.contains("\(spec): not a regular file (\(words))"), "\(r.err)")
        }
    }
}

/// A spec is bounded before it can cost memory: its file size, then its positions against the
/// operand's elements (duplicates named). Each case runs under `ulimit -v` and must end with a
/// clear error, never by a signal.
@Suite(.serialized) struct SpecSizeBoundTests {
    /// 1 GB of address space: a debug tpufi refuses the largest spec the file bound lets
    /// through in about 0.7 GB; checking a JSON spec's field names through a whole
    /// `JSONSerialization` tree, as tpufi once did, took more and was killed by the limit.
    static let memoryKB = 1_000_000

    /// Writes `head`, `count` copies of `item` joined by `separator`, then `tail`, in chunks.
    static func write(_ path: String, head: String, item: String, separator: String, count: Int, tail: String) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.write(contentsOf: Data(head.utf8))
        let chunk = Array(repeating: item, count: 100_000).joined(separator: separator)
        var left = count
        while left > 0 {
            let n = min(left, 100_000)
            let text = (left == count ? "" : separator) + (n == 100_000 ? chunk : Array(repeating: item, count: n).joined(separator: separator))
            try handle.write(contentsOf: Data(text.utf8))
            left -= n
        }
        try handle.write(contentsOf: Data(tail.utf8))
    }

    static let csvHead = "model,resnet18\nstage,fwrd_inject\nfmodel,RD_GLB\ntarget_worker,0\ntarget_layer,dense\ntarget_epoch,0\ntarget_step,1\ninj_pos,"
    static func csvTail(values: Int) -> String {
        "\ninj_values," + Array(repeating: "1", count: values).joined(separator: ",") + "\nlearning_rate,0.001\nseed,1\n"
    }
    static let jsonHead = #"{"workload": "resnet18", "site": "dense", "faultModel": "RD_GLB", "replica": 0, "globalStep": 1, "positions": ["#
    static func jsonTail(values: Int) -> String { #"], "values": ["# + Array(repeating: "1", count: values).joined(separator: ",") + "]}" }

    static let check = ["sites", "--workload", "resnet18", "--scale", "tiny", "--replicas", "2", "--check"]

    /// 20 million (duplicate) positions: far past the spec size bound, refused before parsing.
    @Test func twentyMillionPositionsAreRefusedByTheFileBound() throws {
        let dir = Scratch.path("spec-bound-20m")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let csv = dir + "/many.csv", json = dir + "/many.json"
        try Self.write(csv, head: Self.csvHead, item: "0/0", separator: ",", count: 20_000_000, tail: Self.csvTail(values: 1))
        try Self.write(json, head: Self.jsonHead, item: "[0,0]", separator: ",", count: 20_000_000, tail: Self.jsonTail(values: 1))
        for spec in [csv, json] {
            let size = (try FileManager.default.attributesOfItem(atPath: spec)[.size] as? Int) ?? 0
            for args in [Self.check + [spec], ["replay", "--golden", IntegrityGolden.dir, "--spec", spec, "--out", dir + "/faulty"]] {
                let r = try tpufi(args, virtualMemoryKB: Self.memoryKB)
                #expect(r.status == 1 && !r.signaled, "\(args.prefix(2)): \(r.status) \(r.err.prefix(500))")
                #expect(r.err.contains("\(spec): \(size) bytes; at most 16777216 are read"), "\(r.err.prefix(500))")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/faulty"))
    }

    /// Within the file bound, as many positions as fit: refused by the operand's element count
    /// (or the fault model's) with the bound in the message, and a duplicate is named.
    @Test func positionsBeyondTheOperandAreRefusedNamingTheBound() throws {
        let dir = Scratch.path("spec-bound-operand")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let csv = dir + "/glb.csv", json = dir + "/glb.json", rd = dir + "/rd.json"
        try Self.write(csv, head: Self.csvHead, item: "0/0", separator: ",", count: 2_000_000, tail: Self.csvTail(values: 2_000_000))
        try Self.write(json, head: Self.jsonHead, item: "[0,0]", separator: ",", count: 1_900_000, tail: Self.jsonTail(values: 1_900_000))
        try Self.write(rd, head: Self.jsonHead.replacingOccurrences(of: "RD_GLB", with: "RD"), item: "[0,0]", separator: ",", count: 1_500_000,
                       tail: Self.jsonTail(values: 1_500_000))
        let cases = [
            (Self.check + [csv], "2000000 positions for the output of dense, which has 40 elements"),
            (["replay", "--golden", IntegrityGolden.dir, "--spec", json, "--out", dir + "/faulty"], "1900000 positions for the output of dense, which has 40 elements"),
            (Self.check + [rd], "RD corrupts at most 1 element(s), the spec lists 1500000 positions"),
        ]
        for (args, message) in cases {
            let r = try tpufi(args, virtualMemoryKB: Self.memoryKB)
            #expect(r.status == 1 && !r.signaled && r.err.contains(message), "\(args.prefix(2)): \(r.status) \(r.err.prefix(500))")
        }
        let duplicate = try temporaryFile("duplicate.json", Self.jsonHead + "[1,2],[3,4],[1,2],[3,4]" + Self.jsonTail(values: 4))
        let d = try tpufi(Self.check + [duplicate], virtualMemoryKB: Self.memoryKB)
        #expect(d.status == 1 && d.err.contains("position 1/2 of the output of dense is listed twice"), "\(d.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/faulty"))
    }
}
