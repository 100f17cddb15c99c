import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct CampaignCommandTests {
    @Test func shardsMergeAndSummarizeFromTheCommandLine() throws {
        let root = Scratch.path("cli-campaign")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let golden = root + "/golden"
        let rec = try tpufi(["record", "--workload", "resnet18_nobn", "--optimizer", "sgd", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16",
                             "--steps", "8", "--replicas", "2", "--out", golden])
        #expect(rec.status == 0, "\(rec.err)")
        let common = ["campaign", "--golden", golden, "--experiments", "4", "--seed", "3", "--steps-after-injection", "1",
                      "--fault-models", "ZERO", "RD,RBFLIP", "--phases", "fwd,bwd"]
        for i in 0..<2 {
            let r = try tpufi(common + ["--shard", "\(i)/2", "--out", root + "/shard\(i)"])
            #expect(r.status == 0, "\(r.err)")
            #expect(r.out.contains("ran 2 experiment(s) of shard \(i)/2") && r.err.isEmpty)  // no progress line in a pipe
        }
        let m = try tpufi(["merge", root + "/shard0", root + "/shard1", "--out", root + "/merged"])
        #expect(m.status == 0 && m.out.contains("4 experiment(s)"), "\(m.err)")
        // One shard of 30 alone: the warning names the first 20 missing, the summary all.
        let wide = try tpufi(["campaign", "--golden", golden, "--experiments", "30", "--seed", "3", "--steps-after-injection", "0",
                              "--fault-models", "ZERO", "--shard", "0/30", "--out", root + "/wide0"])
        #expect(wide.status == 0, "\(wide.err)")
        let partial = try tpufi(["merge", root + "/wide0", "--out", root + "/wide-merged"])
        #expect(partial.status == 0 && partial.err.contains("29 experiment(s) missing: 1, 2, 3,") && partial.err.contains(", 20, ... (the first 29 in summary.json)"),
                "\(partial.err)")
        let s = try tpufi(["campaign", "summarize", root + "/merged", "--json"])
        #expect(s.status == 0, "\(s.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(s.out.utf8)) as? [String: Any])
        #expect(json["completed"] as? Int == 4 && (json["missing"] as? [Int])?.isEmpty == true)
        let lines = try String(contentsOfFile: root + "/merged/results.jsonl", encoding: .utf8).split(separator: "\n")
        let indices = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["index"] as? Int }
        #expect(indices == [0, 1, 2, 3])
        let models = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["faultModel"] as? String }
        #expect(models.allSatisfy { ["ZERO", "RD", "RBFLIP"].contains($0 ?? "") })

        // --sampling reference: recorded in campaign.json, sites of its set only.
        let reference = try tpufi(common + ["--sampling", "reference", "--out", root + "/reference"])
        #expect(reference.status == 0, "\(reference.err)")
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/reference/campaign.json"))) as? [String: Any])
        #expect((manifest["parameters"] as? [String: Any])?["sampling"] as? String == "reference")
        let sites = try String(contentsOfFile: root + "/reference/results.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["site"] as? String ?? "" }
        #expect(sites.count == 4 && sites.allSatisfy { !$0.isEmpty && !$0.hasSuffix("_grad_wt") && !$0.hasPrefix("dense") }, "\(sites)")

        // Errors: one line on stderr, non-zero exit, nothing written.
        let typo = try tpufi(common + ["--fault-models", "ZER0", "--out", root + "/typo"])
        #expect(typo.status != 0 && typo.err.contains("unknown fault model 'ZER0'"))
        let full = try tpufi(common + ["--out", root + "/shard0"])
        #expect(full.status != 0 && full.err.contains("not empty (use --resume"))
        let other = try tpufi(common.map { $0 == "3" ? "4" : $0 } + ["--shard", "0/2", "--resume", "--out", root + "/shard0"])
        #expect(other.status != 0 && other.err.contains("seed: 4 vs 3"))
        let sampled = try tpufi(common + ["--sampling", "reference", "--shard", "0/2", "--resume", "--out", root + "/shard0"])
        #expect(sampled.status != 0 && sampled.err.contains("sampling: reference vs all"), "\(sampled.err)")
        let unknown = try tpufi(common + ["--sampling", "some", "--out", root + "/unknown"])
        #expect(unknown.status != 0 && unknown.err.contains("--sampling") && unknown.err.contains("reference"), "\(unknown.err)")
        // --hardware-draw: part of the campaign (resuming with the other is refused), checked.
        let hardware = ["campaign", "--golden", golden, "--experiments", "1", "--seed", "3", "--steps-after-injection", "0", "--kinds", "hardware"]
        let drawn = try tpufi(hardware + ["--out", root + "/hw"])
        #expect(drawn.status == 0, "\(drawn.err)")
        let array = try tpufi(hardware + ["--hardware-draw", "array", "--resume", "--out", root + "/hw"])
        #expect(array.status != 0 && array.err.contains("hardware-draw: array vs used"), "\(array.err)")
        let sideways = try tpufi(hardware + ["--hardware-draw", "sideways", "--out", root + "/sideways"])
        #expect(sideways.status != 0 && sideways.err.contains("--hardware-draw") && sideways.err.contains("used") && sideways.err.contains("array"), "\(sideways.err)")
        let help = try tpufi(["campaign", "run", "--help"])
        #expect(help.status == 0 && help.out.contains("--sampling <sampling>") && help.out.contains("reference"), "\(help.out)")
        let short = try tpufi(["campaign", "--golden", golden, "--experiments", "1", "--steps-after-injection", "8", "--out", root + "/short"])
        #expect(short.status != 0 && short.err.contains("needs at least 9"))
        #expect(!FileManager.default.fileExists(atPath: root + "/typo") && !FileManager.default.fileExists(atPath: root + "/short")
                && !FileManager.default.fileExists(atPath: root + "/unknown"))

        // --specs: the merged campaign's experiments listed again run as a campaign; what
        // would steer a draw is refused by name, as is a count that disagrees or neither given.
        let specs = root + "/specs.jsonl"
        let listedSpecs = try lines.map { line -> String in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return String(decoding: try JSONSerialization.data(withJSONObject: try #require(object["spec"])), as: UTF8.self)
        }
        try Data((listedSpecs.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: specs))
        let listed = try tpufi(["campaign", "--golden", golden, "--specs", specs, "--steps-after-injection", "1", "--out", root + "/listed"])
        #expect(listed.status == 0 && listed.out.contains("ran 4 experiment(s)"), "\(listed.err)")
        let relisted = try String(contentsOfFile: root + "/listed/results.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["outcome"] as? String }
        let merged = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["outcome"] as? String }
        #expect(relisted.sorted { ($0 ?? "") < ($1 ?? "") } == merged.sorted { ($0 ?? "") < ($1 ?? "") })
        let seeded = try tpufi(["campaign", "--golden", golden, "--specs", specs, "--seed", "3", "--out", root + "/seeded"])
        #expect(seeded.status != 0 && seeded.err.contains("--seed steers the draw"), "\(seeded.err)")
        let counted = try tpufi(["campaign", "--golden", golden, "--specs", specs, "--experiments", "5", "--out", root + "/counted"])
        #expect(counted.status != 0 && counted.err.contains("--experiments 5 but \(specs) lists 4 spec(s)"), "\(counted.err)")
        let neither = try tpufi(["campaign", "--golden", golden, "--out", root + "/neither"])
        #expect(neither.status != 0 && neither.err.contains("give --experiments N (or --specs FILE"), "\(neither.err)")
        #expect(!FileManager.default.fileExists(atPath: root + "/seeded") && !FileManager.default.fileExists(atPath: root + "/counted"))
    }
}
