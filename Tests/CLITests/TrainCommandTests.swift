import Foundation
import Testing

@Suite struct TrainCommandTests {
    @Test func trainsTinyOnSyntheticDataAndReportsJSON() throws {
        let r = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16", "--steps", "3", "--replicas", "2", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let epochs = try #require(json["epochs"] as? [[String: Any]])
        #expect(json["steps"] as? Int == 3 && epochs.count == 1 && epochs[0]["testAccuracy"] is Double)
        #expect(r.err.isEmpty)          // no progress line when stderr is not a terminal
    }

    @Test func badInputFailsClearly() throws {
        let w = try tpufi(["train", "--workload", "vgg16", "--scale", "tiny", "--dataset", "synthetic"])
        #expect(w.status != 0 && w.err.contains("unknown workload 'vgg16'"))
        let d = try tpufi(["train", "--scale", "small", "--dataset", "fashion-mnist:/nonexistent/fmnist"])
        #expect(d.status != 0 && d.err.contains("/nonexistent/fmnist") && d.err.contains("dataset-fashion-mnist"))
        let s = try tpufi(["train", "--scale", "small", "--dataset", "synthetic"])
        #expect(s.status != 0 && s.err.contains("expects 28x28x1"))
        let o = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic", "--optimizer", "lion"])
        #expect(o.status != 0 && o.err.contains("unknown optimizer 'lion'"))
    }
}
