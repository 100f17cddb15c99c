import Foundation
import Testing
import TestSupport

@Suite struct SitesCommandTests {
    @Test func listsEverySiteWithItsOperandsAndArrayFootprint() throws {
        let r = try tpufi(["sites", "--workload", "resnet18", "--scale", "tiny", "--chip", "tiny", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let sites = try #require(json["sites"] as? [[String: Any]])
        #expect(sites.count == 62 && sites.first?["name"] as? String == "conv1" && sites.last?["name"] as? String == "conv1_grad_wt")
        let conv1 = sites[0]
        #expect(conv1["input"] as? [Int] == [4, 16, 16, 1] && conv1["weight"] as? [Int] == [7, 7, 1, 4] && conv1["output"] as? [Int] == [4, 8, 8, 4])
        // Weight-stationary on the tiny chip's 8x8 array: K = 49 rows fold onto 8 in 7 passes, N = 4 columns.
        #expect(conv1["rows"] as? Int == 8 && conv1["columns"] as? Int == 4 && conv1["passes"] as? Int == 7)
        #expect(!sites.contains { $0["name"] as? String == "conv1_grad_in" })
    }

    /// Attention's products per sequence and head are shown as what they are, `P x MxKxN`,
    /// with the cycles of all of them; a flip past their end is refused naming the shape.
    @Test func attentionProductsAreListedAsProductsInTurn() throws {
        let r = try tpufi(["sites", "--workload", "transformer", "--scale", "tiny", "--chip", "tiny"])
        #expect(r.status == 0, "\(r.err)")
        // tiny: 2 sequences x 2 heads, 8 queries and keys, depth 8.
        let line = try #require(r.out.split(separator: "\n").first { $0.hasPrefix("encoder_stack_attention_0_scores ") })
        #expect(line.contains("4 x 8x8x8"), "\(line)")
        #expect(r.out.contains("P x MxKxN: P products of that shape in turn"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(try tpufi(["sites", "--workload", "transformer", "--scale", "tiny", "--chip", "tiny", "--json"]).out.utf8)) as? [String: Any])
        let sites = try #require(json["sites"] as? [[String: Any]])
        let scores = try #require(sites.first { $0["name"] as? String == "encoder_stack_attention_0_scores" })
        let cycles = try #require(scores["cycles"] as? Int)
        #expect(scores["products"] as? Int == 4 && cycles % 4 == 0)
        let late = try temporaryFile("late.json", #"{"workload": "transformer", "site": "encoder_stack_attention_0_scores", "replica": 0, "globalStep": 1, "hardware": {"mxu": 0, "row": 0, "column": 0, "register": "weight", "bit": 3, "cycle": \#(cycles)}}"#)
        let bad = try tpufi(["sites", "--workload", "transformer", "--scale", "tiny", "--chip", "tiny", "--check", late])
        #expect(bad.status == 1 && bad.err.contains("cycle \(cycles) is outside the operation (4 x 8x8x8, \(cycles) cycles"), "\(bad.err)")
    }

    /// The example specs shipped in traces/<workload>-small (and their mitigation/ folders)
    /// are valid for their workload: a rule added to the spec checks cannot leave an example
    /// unreplayable unnoticed (three multi-element `RD` examples once were).
    @Test func everyShippedExampleSpecChecksAgainstItsWorkload() throws {
        let traces = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces")
        let fm = FileManager.default
        let workloads = try fm.contentsOfDirectory(atPath: traces.path).filter { $0.hasSuffix("-small") && !$0.hasPrefix("replay-") }.sorted()
        #expect(workloads == ["densenet-small", "effnet-small", "nfnet-small", "resnet18-small", "transformer-small"])
        for directory in workloads {
            let folders = [traces.appendingPathComponent(directory), traces.appendingPathComponent(directory + "/mitigation")]
            let specs = try folders.filter { fm.fileExists(atPath: $0.path) }.flatMap { folder in
                try fm.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".csv") || $0.hasSuffix(".json") }.sorted()
                    .map { folder.appendingPathComponent($0).path }
            }
            #expect(specs.count >= 8, "\(directory): \(specs.count) specs")
            let workload = String(directory.dropLast("-small".count))
            let r = try tpufi(["sites", "--workload", workload, "--scale", "small", "--check"] + specs)
            #expect(r.status == 0, "\(directory): \(r.err)")
        }
    }

    @Test func checksSpecsWithoutAGoldenTrace() throws {
        let good = try temporaryFile("good.json", #"{"workload": "resnet18", "site": "dense_grad_in", "faultModel": "RD", "replica": 1, "globalStep": 3, "positions": [[3, 31]], "values": [1e9]}"#)
        let r = try tpufi(["sites", "--scale", "tiny", "--replicas", "2", "--check", good])
        #expect(r.status == 0 && r.out.contains("RD into the output of dense_grad_in on replica 1 (resnet18 tiny): 1 position(s) inside 4x32"), "\(r.out)\(r.err)")
        let outside = try temporaryFile("outside.json", #"{"workload": "resnet18", "site": "dense_grad_in", "faultModel": "RD", "replica": 1, "globalStep": 3, "positions": [[4, 0]], "values": [1e9]}"#)
        let replica = try temporaryFile("replica.json", #"{"workload": "resnet18", "site": "dense", "faultModel": "RD", "replica": 2, "globalStep": 3, "seed": 1}"#)
        let site = try temporaryFile("site.json", #"{"workload": "resnet18", "site": "conv1_grad_in", "faultModel": "RD", "replica": 0, "globalStep": 3, "seed": 1}"#)
        let bit = try temporaryFile("bit.json", #"{"workload": "resnet18", "site": "conv1", "replica": 0, "globalStep": 3, "hardware": {"mxu": 0, "row": 0, "column": 0, "register": "weight", "bit": 16, "stuckAt": 1}}"#)
        let bad = try tpufi(["sites", "--scale", "tiny", "--replicas", "2", "--check", good, outside, replica, site, bit])
        #expect(bad.status == 1)
        #expect(bad.out.contains("good.json"))
        #expect(bad.err.contains("outside.json: position 4/0 is outside the output of dense_grad_in, shape 4x32"), "\(bad.err)")
        #expect(bad.err.contains("replica.json: target_worker 2 does not exist"))
        #expect(bad.err.contains("site.json: unknown layer 'conv1_grad_in'"))
        #expect(bad.err.contains("bit.json: ") && bad.err.contains("invalid hardware fault: ") && bad.err.contains("bit 16 does not exist") && !bad.err.contains("chip configuration"), "\(bad.err)")
    }
}
