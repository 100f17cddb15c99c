import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct BisectCommandTests {
    static let base = Scratch.path("cli-bisect")

    /// A golden trace and a faulty replay of it: one element of `dense`'s output replaced at
    /// global step 4 on replica 1, then two more steps.
    static func traces() throws -> (golden: String, faulty: String) {
        let golden = base + "/golden", faulty = base + "/faulty"
        let record = try tpufi(["record", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16", "--steps", "8", "--replicas", "2",
                                "--snapshot-every", "4", "--out", golden])
        #expect(record.status == 0, "\(record.err)")
        let spec = try temporaryFile("bisect.json", #"{"workload": "resnet18", "site": "dense", "faultModel": "RD", "replica": 1, "globalStep": 4, "positions": [[2, 7]], "values": [-300]}"#)
        let replay = try tpufi(["replay", "--golden", golden, "--spec", spec, "--steps-after-injection", "2", "--out", faulty])
        #expect(replay.status == 0, "\(replay.err)")
        return (golden, faulty)
    }

    @Test func printsTheFirstDivergentTensorAndItsStatistics() throws {
        defer { try? FileManager.default.removeItem(atPath: Self.base) }
        let (golden, faulty) = try Self.traces()
        let r = try tpufi(["bisect", golden, faulty, "--json", "--threads", "1"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(json["firstDivergentStep"] as? Int == 4 && json["firstDivergentSite"] as? String == "dense" && json["replica"] as? Int == 1)
        let sites = try #require(json["sites"] as? [[String: Any]])
        let first = try #require(sites.first)
        #expect(first["site"] as? String == "dense" && first["differing"] as? Int == 1 && first["elements"] as? Int == 40)
        #expect(["maxAbsError", "maxRelError", "maxULP", "nanA", "nanB", "infA", "infB", "firstDifferences"].allSatisfy { first[$0] != nil })
        #expect((first["firstDifferences"] as? [[String: Any]])?.first?["position"] as? [Int] == [2, 7])
        #expect(sites.last?["site"] as? String == "update")
        let cost = try #require(json["cost"] as? [String: Any])
        #expect(cost["reexecutions"] as? Int == 2 && cost["linearSteps"] as? Int == 6 && json["comparisons"] is Int)

        let text = try tpufi(["bisect", golden, faulty, "--threads", "1"])
        #expect(text.status == 0, "\(text.err)")
        #expect(text.out.contains("first divergent step: 4") && text.out.contains("first divergent tensor: dense on replica 1"))
        #expect(text.out.contains("differing/total") && text.out.contains("max ULP") && text.out.contains("1/40"))
        #expect(text.out.contains("cost: 2 step re-executions") && text.out.contains("onset:"))

        let same = try tpufi(["bisect", golden, golden])
        #expect(same.status == 0 && same.out.hasPrefix("no divergence over the 8 common steps"))
        let missing = try tpufi(["bisect", golden, Self.base + "/nothing"])
        #expect(missing.status != 0 && missing.err.contains(Self.base + "/nothing"))
    }
}
