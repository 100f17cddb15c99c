import Foundation
import Testing
import TestSupport

func temporaryFile(_ name: String, _ contents: String) throws -> String {
    let dir = URL(fileURLWithPath: Scratch.root + "/cli-files")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try contents.write(to: url, atomically: true, encoding: .utf8)
    return url.path
}

@Suite struct SimulateCommandTests {
    @Test func jsonHasPerLayerCyclesAndTotals() throws {
        let r = try tpufi(["simulate", "--workload", "resnet18", "--scale", "tiny", "--chip", "tiny", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let layers = try #require(json["layers"] as? [[String: Any]])
        #expect(layers.count == 62)
        #expect(layers.first?["name"] as? String == "conv1")
        let cycles = layers.compactMap { $0["computeCycles"] as? Int }
        #expect(cycles.count == 62 && cycles.allSatisfy { $0 > 0 })
        #expect(layers.allSatisfy { ($0["utilization"] as? Double).map { $0 > 0 && $0 <= 1 } ?? false })
        #expect(json["totalCycles"] as? Int == cycles.reduce(0, +))
    }

    /// The forward multiply-accumulates are per example of the workload's kind.
    @Test func forwardPassIsPerImageOrPerSequence() throws {
        let cnn = try tpufi(["simulate", "--workload", "resnet18", "--scale", "tiny", "--chip", "tiny"])
        #expect(cnn.status == 0 && cnn.out.contains("multiply-accumulates per image (4 per replica)"), "\(cnn.out)\(cnn.err)")
        let transformer = try tpufi(["simulate", "--workload", "transformer", "--scale", "tiny", "--chip", "tiny"])
        #expect(transformer.status == 0 && transformer.out.contains("multiply-accumulates per sequence (2 per replica)"), "\(transformer.out)\(transformer.err)")
    }

    @Test func topologyWithConfigMatchesSCALESimMode() throws {
        let topo = try temporaryFile("g.csv", "Layer Name, M, N, K,\ng64, 64, 64, 64,\n")
        let cfg = try temporaryFile("a.cfg", "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nDataflow: ws\n")
        let r = try tpufi(["simulate", "--topology", topo, "--config", cfg, "--timing", "scalesim", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(json["totalCycles"] as? Int == 5504)      // SCALE-Sim 3.0 reports 5503
        let text = try tpufi(["simulate", "--topology", topo, "--config", cfg])
        #expect(text.status == 0 && text.out.contains("g64") && text.out.contains("scalesim cycles"))
    }

    @Test func badInputFailsWithFileAndLine() throws {
        let topo = try temporaryFile("bad.csv", "Layer Name, M, N, K,\ng64, 64, 0, 64,\n")
        let r = try tpufi(["simulate", "--topology", topo])
        #expect(r.status != 0)
        #expect(r.err.contains("bad.csv:2: N must be positive"))
        let cfg = try temporaryFile("bad.cfg", "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nDataflow: diagonal\n")
        let good = try temporaryFile("good.csv", "Layer Name, M, N, K,\ng, 4, 4, 4,\n")
        let c = try tpufi(["simulate", "--topology", good, "--config", cfg])
        #expect(c.status != 0 && c.err.contains("bad.cfg:4: unknown dataflow 'diagonal'"))
        let d = try tpufi(["simulate", "--workload", "resnet18", "--dataflow", "zigzag"])
        #expect(d.status != 0 && d.err.contains("unknown dataflow 'zigzag'"))
        let z = try tpufi(["simulate", "--workload", "resnet18", "--rows", "0"])
        #expect(z.status != 0 && z.err.contains("rows must be 1...16384, got 0"))
        // A detector that cannot see the workload is refused before anything is printed.
        let blind = try tpufi(["simulate", "--workload", "transformer", "--scale", "tiny", "--mitigation", "moving-variance"])
        #expect(blind.status != 0 && blind.out.isEmpty && blind.err.contains("has no batch-norm moving variances"), "\(blind.out)\(blind.err)")
        let seen = try tpufi(["simulate", "--workload", "transformer", "--scale", "tiny", "--mitigation", "adam-m,abft"])
        #expect(seen.status == 0 && seen.out.contains("detectors adam-m@first=20.0,abft:"), "\(seen.err)")
        let huge = try tpufi(["simulate", "--workload", "resnet18", "--mxus", "1000000000"])
        #expect(huge.status != 0 && huge.err.contains("mxuCount must be 1...1024, got 1000000000"), "\(huge.err)")
        let both = try tpufi(["simulate", "--workload", "resnet18", "--topology", good])
        #expect(both.status != 0 && both.err.contains("exactly one of"))
        let missing = try tpufi(["simulate", "--topology", "/nonexistent/topology.csv"])
        #expect(missing.status != 0 && missing.err.contains("/nonexistent/topology.csv: no such file"))
    }
}
