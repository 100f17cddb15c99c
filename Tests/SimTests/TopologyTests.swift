import Foundation
import Testing
@testable import Sim

@Suite struct TopologyTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func readsSCALESimConvAndGEMMTopologies() throws {
        let cifar = try SCALESimTopology.load(path: Self.repo.appendingPathComponent("Benchmarks/scalesim/resnet18_cifar.csv").path)
        #expect(cifar.count == 20)
        #expect(cifar[0].name == "conv1" && cifar[0].gemm == GEMMShape(m: 1024, k: 27, n: 64))
        // Stride 2 on a 33x33 padded input: SCALE-Sim's ceil((33 - 3 + 2) / 2) = 16.
        #expect(cifar[5].name == "l2b0c1" && cifar[5].gemm == GEMMShape(m: 256, k: 576, n: 128))
        let gemms = try SCALESimTopology.parse("Layer Name, M, N, K,\r\ng, 1000, 10, 512,\r\n", file: "g.csv")
        #expect(gemms.map(\.gemm) == [GEMMShape(m: 1000, k: 512, n: 10)])
    }

    func topologyError(_ text: String) -> String? {
        do { _ = try SCALESimTopology.parse(text, file: "t.csv"); return nil } catch { return error.description }
    }

    @Test func malformedTopologiesNameFileAndLine() {
        let header = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        #expect(topologyError(header + "c, 8, 8, 3, 3, 4, 8, 1,") == nil)
        #expect(topologyError(header + "c, 8, 8, 3, 3, 4, 8, 1,\nd, 8, x, 3, 3, 4, 8, 1,")?.hasPrefix("t.csv:3: IFMAP Width is 'x'") == true)
        #expect(topologyError(header + "c, 8, 8, 3, 3, 0, 8, 1,")?.hasPrefix("t.csv:2: Channels must be positive") == true)
        #expect(topologyError(header + "c, 8, 8, 3, 3, -4, 8, 1,")?.hasPrefix("t.csv:2:") == true)
        #expect(topologyError(header + "c, 2, 2, 3, 3, 4, 8, 1,")?.contains("does not fit input 2x2") == true)
        #expect(topologyError(header + "c, 8, 8, 3")?.hasPrefix("t.csv:2: expected 8 fields, found 4") == true)
        #expect(topologyError("name, a, b\nc, 1, 2")?.hasPrefix("t.csv:1: unrecognised header") == true)
        #expect(topologyError("")?.hasPrefix("t.csv:1: empty topology") == true)
        #expect(topologyError("Layer Name, M, N, K,\n")?.contains("no layers") == true)
        // Sizes near 2^32 are refused by name instead of overflowing.
        #expect(topologyError("Layer Name, M, N, K,\ng, 4294967296, 4, 4,")?.hasPrefix("t.csv:2: M is 4294967296; at most 16777216") == true)
        #expect(topologyError(header + "c, 4294967296, 8, 3, 3, 4, 8, 1,")?.hasPrefix("t.csv:2: IFMAP Height is 4294967296; at most 1048576") == true)
        #expect(throws: HardwareError.self) { try Schedule(shape: GEMMShape(m: 4, k: 1 << 28, n: 1 << 20), config: .tiny) }
    }

    /// A layer's GEMM is bounded before it is costed: no dimension above 2^24 (a GEMM of 2^31
    /// rows took most of a minute of tile passes), at most 2^40 multiply-accumulates; the
    /// error names the file, the line and the field.
    @Test func gemmsBeyondTheTopologyBoundsAreRefusedNamingTheField() {
        let gemm = "Layer Name, M, N, K,\n"
        #expect(topologyError(gemm + "g, 16777216, 64, 64,") == nil)
        #expect(topologyError(gemm + "g, 64, 64, 64,\nbig, 2147483648, 64, 64,") == "t.csv:3: M is 2147483648; at most 16777216")
        #expect(topologyError(gemm + "g, 64, 16777217, 64,") == "t.csv:2: N is 16777217; at most 16777216")
        #expect(topologyError(gemm + "g, 64, 64, 16777217,") == "t.csv:2: K is 16777217; at most 16777216")
        #expect(topologyError(gemm + "g, 16777216, 16777216, 4097,")
                == "t.csv:2: layer g: M x K x N = 16777216 x 4097 x 16777216 is more than 1099511627776 (2^40) multiply-accumulates")
        #expect(topologyError(gemm + "g, 1048576, 1024, 1024,") == nil)  // exactly 2^40
        // A convolution's implied GEMM: its output pixels and its reduction.
        let conv = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        #expect(topologyError(conv + "c, 8192, 8192, 1, 1, 1, 1, 1,")
                == "t.csv:2: layer c: IFMAP Height, IFMAP Width and Strides give 8192 x 8192 output pixels (the GEMM's M); at most 16777216 (2^24)")
        #expect(topologyError(conv + "c, 1024, 1024, 1024, 1024, 32, 1, 1,")
                == "t.csv:2: layer c: Filter Height x Filter Width x Channels is 33554432 (the GEMM's K); at most 16777216 (2^24)")
        #expect(topologyError(conv + "c, 4096, 4096, 3, 3, 1024, 1024, 1,")?.hasPrefix("t.csv:2: layer c: M x K x N = 16760836 x 9216 x 1024 is more than") == true)
    }

    func configError(_ text: String) -> String? {
        do { _ = try SCALESimConfig.parse(text, file: "a.cfg"); return nil } catch { return error.description }
    }

    @Test func readsSCALESimConfigsAndRejectsBadOnes() throws {
        let good = "[general]\nrun_name = r\n\n[architecture_presets]\nArrayHeight:    32\nArrayWidth:     16\nDataflow : os\nBandwidth : 10\n"
        let cfg = try SCALESimConfig.parse(good, file: "a.cfg")
        #expect(cfg == SCALESimConfig(runName: "r", rows: 32, columns: 16, dataflow: .outputStationary))
        #expect(cfg.applied(to: .tpuV4).mxuCount == 1)
        #expect(configError(good.replacingOccurrences(of: "os", with: "xs")) == "a.cfg:7: unknown dataflow 'xs' (expected ws, is or os)")
        #expect(configError(good.replacingOccurrences(of: "32", with: "0")) == "a.cfg:5: ArrayHeight must be a positive integer, got '0'")
        #expect(configError(good.replacingOccurrences(of: "ArrayWidth:     16\n", with: ""))?.contains("missing ArrayWidth") == true)
        #expect(configError(good + "garbage line\n") == "a.cfg:9: expected 'key : value', found 'garbage line'")
        #expect(throws: TopologyError.unreadable(file: "/nonexistent.cfg", reason: "no such file")) {
            try SCALESimConfig.load(path: "/nonexistent.cfg")
        }
    }

    @Test func resnet18TopologyHasTheReferenceLayerNames() throws {
        let paper = try Workloads.model("resnet18", scale: "paper")
        let fwd = paper.layers(phases: .forward)
        #expect(fwd.count == 21)                                   // stem, 16 block convs, 3 downsamples, dense
        #expect(fwd.map(\.name).contains("basicblock_3_basic_0_downsample"))
        #expect(fwd[0].gemm == GEMMShape(m: 128 * 16 * 16, k: 7 * 7 * 3, n: 64))   // 7x7 stride-2 stem
        #expect(fwd.last?.gemm == GEMMShape(m: 128, k: 512, n: 10))
        let step = paper.layers(phases: .training)
        #expect(step.count == 21 + 20 + 21)                        // no conv1_grad_in
        // The reference layout: [Cin, 3, 3] rows, a [2, 2, N] kernel window of dL/dy, Cout columns.
        #expect(step.contains { $0.name == "basicblock_4_basic_1_conv2_grad_wt" && $0.gemm == GEMMShape(m: 4608, k: 2 * 2 * 128, n: 512) })
        #expect(!step.contains { $0.name == "conv1_grad_in" })
        let nobn = try Workloads.model("resnet18_nobn", scale: "paper").layers(phases: .forward)
        #expect(nobn[1].vector.reductions == 0 && fwd[1].vector.reductions == 2)
    }
}
