import Foundation
import Testing
import TestSupport

/// One vocabulary across subcommands: counts, ranges and filters have distinct names, old
/// spellings still work as aliases (and clash with their new names), and options that would
/// be ignored are refused.
@Suite(.serialized) struct VocabularyTests {
    static let root = Scratch.path("cli-vocabulary")
    static let golden: String = {
        let d = root + "/golden"
        _ = try? tpufi(["record", "--workload", "resnet18_nobn", "--optimizer", "sgd", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16",
                        "--steps", "6", "--replicas", "2", "--out", d])
        return d
    }()

    /// results.jsonl without the wall times, which are the only field that differs.
    static func results(_ dir: String) throws -> [String] {
        try String(contentsOfFile: dir + "/results.jsonl", encoding: .utf8).split(separator: "\n").map {
            String($0).replacing(/"seconds":[0-9.e+-]+/, with: "")
        }
    }

    @Test func campaignFiltersHaveTheirOwnNamesAndTheOldOnesStillWork() throws {
        let common = ["campaign", "--golden", Self.golden, "--experiments", "3", "--seed", "5", "--steps-after-injection", "0",
                      "--fault-models", "ZERO", "--threads", "1"]
        let new = try tpufi(common + ["--injection-steps", "1-3", "--target-replicas", "1", "--out", Self.root + "/new"])
        #expect(new.status == 0, "\(new.err)")
        let old = try tpufi(common + ["--steps", "1-3", "--replicas", "1", "--out", Self.root + "/old"])
        #expect(old.status == 0, "\(old.err)")
        let newResults = try Self.results(Self.root + "/new")
        let oldResults = try Self.results(Self.root + "/old")
        #expect(newResults.count == 3 && newResults == oldResults)
        #expect(newResults.allSatisfy { $0.contains("\"replica\":1,") })
        let both = try tpufi(common + ["--injection-steps", "1-3", "--steps", "1-3", "--out", Self.root + "/both"])
        #expect(both.status != 0 && both.err.contains("--steps is the old spelling of --injection-steps"), "\(both.err)")
        // `both`, as --help offers it, is software and hardware.
        let kinds = try tpufi(common + ["--kinds", "both", "--out", Self.root + "/kinds"])
        #expect(kinds.status == 0, "\(kinds.err)")
        let help = try tpufi(["campaign", "run", "--help"])
        #expect(help.out.contains("--injection-steps") && help.out.contains("--target-replicas"))
        #expect(!help.out.contains("  --steps <") && !help.out.contains("  --replicas <"))
    }

    @Test func theStudyTakesExperimentsAndRefusesRecordingOptionsWithAGolden() throws {
        let common = ["optimizer-study", "--golden", Self.golden, "--baseline", "sgd", "--test-optimizers", "adam", "--steps-after-injection", "5"]
        let ignored = try tpufi(common + ["--experiments", "1", "--steps", "40", "--scale", "small", "--out", Self.root + "/study-x"])
        #expect(ignored.status != 0 && ignored.err.contains("--scale, --steps describe a golden run to record; with --golden the run is the trace's"), "\(ignored.err)")
        let twice = try tpufi(common + ["--experiments", "1", "--num-experiments", "1", "--out", Self.root + "/study-y"])
        #expect(twice.status != 0 && twice.err.contains("--num-experiments is the old spelling of --experiments"), "\(twice.err)")
        let missing = try tpufi(common + ["--out", Self.root + "/study-z"])
        #expect(missing.status != 0 && missing.err.contains("--experiments"), "\(missing.err)")
        #expect(!FileManager.default.fileExists(atPath: Self.root + "/study-x") && !FileManager.default.fileExists(atPath: Self.root + "/study-y"))
    }

    @Test func simulateNamesItsOperationsNotPhases() throws {
        let new = try tpufi(["simulate", "--workload", "resnet18", "--scale", "tiny", "--operations", "forward", "--json"])
        let old = try tpufi(["simulate", "--workload", "resnet18", "--scale", "tiny", "--phases", "fwd", "--json"])
        #expect(new.status == 0 && old.status == 0 && new.out == old.out, "\(new.err)\(old.err)")
        let training = try tpufi(["simulate", "--workload", "resnet18", "--scale", "tiny", "--json"])
        let train = try tpufi(["simulate", "--workload", "resnet18", "--scale", "tiny", "--operations", "train", "--json"])
        #expect(training.out != new.out && training.out == train.out)
        let bad = try tpufi(["simulate", "--workload", "resnet18", "--operations", "bwd"])
        #expect(bad.status != 0 && bad.err.contains("expected forward or training"), "\(bad.err)")
    }

    @Test func everyThreadsOptionHasTheSameDefault() throws {
        for command in [["train"], ["record"], ["replay"], ["bisect"], ["export"], ["detect"], ["optimizer-study"]] {
            let help = try tpufi(command + ["--help"]).out.replacingOccurrences(of: "\n", with: " ").replacing(/\ +/, with: " ")
            #expect(help.contains("default: the host's cores"), "\(command): \(help)")
        }
        let campaign = try tpufi(["campaign", "run", "--help"]).out.replacingOccurrences(of: "\n", with: " ").replacing(/\ +/, with: " ")
        #expect(campaign.contains("default: the host's cores divided among the workers"))
    }
}
