import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct OptimizerStudyCommandTests {
    @Test func studyFromTheCommandLineWithClearErrors() throws {
        let root = Scratch.path("cli-optstudy")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let golden = root + "/golden"
        let rec = try tpufi(["record", "--workload", "resnet18", "--optimizer", "adam", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16",
                             "--steps", "4", "--replicas", "2", "--threads", "1", "--out", golden])
        #expect(rec.status == 0, "\(rec.err)")
        let common = ["optimizer-study", "--golden", golden, "--baseline", "adam", "--steps-after-injection", "1", "--seed", "2"]
        let r = try tpufi(common + ["--test-optimizers", "sgd", "--num-experiments", "1", "--out", root + "/study"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("ran 1 experiment(s)") && r.out.contains("tpufi report \(root)/study") && r.err.isEmpty)
        for name in ["study.json", "summary.csv", "curves_adam.csv", "curves_sgd.csv", "experiments/0.json"] {
            #expect(FileManager.default.fileExists(atPath: root + "/study/" + name), "\(name)")
        }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/study/study.json"))) as? [String: Any])
        #expect(json["optimizers"] as? [String] == ["adam", "sgd"] && json["golden"] as? String == golden && json["scale"] as? String == "tiny")
        let help = try tpufi(["optimizer-study", "--help"])
        #expect(help.out.contains("tpufi report DIR"))

        // Errors: one line on stderr, non-zero exit, nothing written.
        let bad: [([String], String)] = [
            (["--test-optimizers", "sgd", "adamw", "--num-experiments", "1"], "unknown optimizer 'adamw'"),
            (["--test-optimizers", "sgd", "adam", "--num-experiments", "1"], "repeats the baseline 'adam'"),
            (["--test-optimizers", "sgd", "--experiments", "0"], "--experiments must be positive"),
            (["--test-optimizers", "sgd", "--num-experiments", "1", "--steps-after-injection", "4"], "needs at least 5"),
        ]
        for (i, (args, message)) in bad.enumerated() {
            let e = try tpufi(common + args + ["--out", root + "/bad\(i)"])
            #expect(e.status != 0 && e.err.contains(message), "\(args): \(e.err)")
            #expect(!FileManager.default.fileExists(atPath: root + "/bad\(i)"))
        }
        let again = try tpufi(common + ["--test-optimizers", "sgd", "--num-experiments", "1", "--out", root + "/study"])
        #expect(again.status != 0 && again.err.contains("not empty (use --resume"))
        let resumed = try tpufi(common + ["--test-optimizers", "sgd", "--num-experiments", "1", "--resume", "--out", root + "/study"])
        #expect(resumed.status == 0 && resumed.out.contains("resumed: 1 experiment(s) already done") && resumed.out.contains("ran 0 experiment(s)"),
                "\(resumed.err)")
    }
}
