import Foundation
import Testing

/// `--precision bf16|fp32`, one vocabulary for `train`/`record` and `simulate`; `--fp32` is an
/// alias of `--precision fp32`.
@Suite struct PrecisionOptionTests {
    private static func stateDigest(_ extra: [String]) throws -> String? {
        let r = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic:train=32,test=8", "--steps", "2", "--replicas", "2",
                           "--threads", "1", "--json"] + extra)
        #expect(r.status == 0, "\(r.err)")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        return json?["stateDigest"] as? String
    }

    @Test func trainPrecisionOptionAndItsAlias() throws {
        let bf16 = try #require(try Self.stateDigest([]))
        #expect(try Self.stateDigest(["--precision", "bf16"]) == bf16)
        let fp32 = try #require(try Self.stateDigest(["--precision", "fp32"]))
        #expect(fp32 != bf16)
        #expect(try Self.stateDigest(["--fp32"]) == fp32)
        #expect(try Self.stateDigest(["--fp32", "--precision", "fp32"]) == fp32)

        let contradiction = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic", "--fp32", "--precision", "bf16"])
        #expect(contradiction.status != 0 && contradiction.err.contains("--fp32 is an alias of --precision fp32"))
        let unknown = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic", "--precision", "fp16"])
        #expect(unknown.status != 0 && unknown.err.contains("fp16") && unknown.err.contains("bf16"))
    }

    @Test func simulateCountsTheOperandBytes() throws {
        let topo = try temporaryFile("precision.csv", "Layer Name, M, N, K,\ng, 64, 32, 16,\n")
        func hbmBytes(_ extra: [String]) throws -> Int? {
            let r = try tpufi(["simulate", "--topology", topo, "--json"] + extra)
            #expect(r.status == 0, "\(r.err)")
            let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
            return (json?["layers"] as? [[String: Any]])?.first?["hbmBytes"] as? Int
        }
        let (operands, results) = (64 * 16 + 16 * 32, 64 * 32)
        #expect(try hbmBytes([]) == 2 * operands + 4 * results)
        #expect(try hbmBytes(["--precision", "bf16"]) == 2 * operands + 4 * results)
        #expect(try hbmBytes(["--precision", "fp32"]) == 4 * operands + 4 * results)
        let unknown = try tpufi(["simulate", "--topology", topo, "--precision", "float32"])
        #expect(unknown.status != 0)
    }
}
