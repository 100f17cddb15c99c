import Foundation
import Testing
@testable import Sim

@Suite struct ScheduleTests {
    static func chip(_ rows: Int, _ cols: Int, _ df: Dataflow, mxus: Int = 1) -> ChipConfig {
        ChipConfig(name: "t", rows: rows, columns: cols, mxuCount: mxus, dataflow: df)
    }

    /// Every row SCALE-Sim 3.0 produced for ResNet-18 (CIFAR and narrow) and plain GEMMs on
    /// 8x8, 32x32 and 128x128 arrays in all three dataflows: the compatible mode reproduces
    /// its "Total Cycles" (which counts the index of the last cycle, so ours is one more).
    @Test func scaleSimModeReproducesSCALESimOnAllRecordedLayers() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/scalesim_per_layer_cycles.csv")
        let rows = try String(contentsOf: url, encoding: .utf8).split(whereSeparator: \.isNewline).dropFirst()
        #expect(rows.count == 405)
        for row in rows {
            let f = row.split(separator: ",").map(String.init)
            let dims = f[1].split(separator: "x").compactMap { Int($0) }
            let shape = GEMMShape(m: Int(f[5])!, k: Int(f[7])!, n: Int(f[6])!)
            let s = try Schedule(shape: shape, config: Self.chip(dims[0], dims[1], Dataflow(name: f[2])!), mode: .scaleSim)
            #expect(s.cycles - 1 == Int(f[13])!, "\(f[0]) \(f[1]) \(f[2]) \(f[4])")
            #expect(s.passes.count == Int(f[12])!)
        }
    }

    @Test func overlappedModeNeverSlowerAndHidesWeightLoadsForLongStreams() throws {
        for df in Dataflow.allCases {
            for shape in [GEMMShape(m: 1, k: 512, n: 10), GEMMShape(m: 1024, k: 576, n: 64), GEMMShape(m: 4096, k: 1152, n: 256)] {
                let chip = Self.chip(128, 128, df)
                let tpu = try Schedule(shape: shape, config: chip, mode: .overlapped)
                let ss = try Schedule(shape: shape, config: chip, mode: .scaleSim)
                #expect(tpu.cycles <= ss.cycles)
                #expect(tpu.passes.count == ss.passes.count)
            }
        }
        // Weight-stationary with T = M = 4096 >= R + C: passes stream back to back, so the
        // total is one initial load, every pass's stream, and one fill/drain.
        let s = try Schedule(shape: GEMMShape(m: 4096, k: 1152, n: 256), config: Self.chip(128, 128, .weightStationary))
        #expect(s.cycles == 128 + s.passes.count * 4096 + 128 + 128 - 2)
        // Batch-1 dense layer: every pass waits for its weights (R cycles each).
        let fc = try Schedule(shape: GEMMShape(m: 1, k: 512, n: 10), config: Self.chip(128, 128, .weightStationary))
        #expect(fc.cycles == 128 * fc.passes.count + 1 + 128 + 128 - 2)
    }

    @Test func passesAreSpreadOverMXUsAndShortenTheOperation() throws {
        let shape = GEMMShape(m: 2048, k: 1152, n: 512)
        let one = try Schedule(shape: shape, config: Self.chip(128, 128, .weightStationary, mxus: 1))
        let four = try Schedule(shape: shape, config: Self.chip(128, 128, .weightStationary, mxus: 4))
        #expect(Set(four.passes.map(\.mxu)) == [0, 1, 2, 3])
        #expect(Double(four.cycles) < Double(one.cycles) / 3.5)
        #expect(four.utilization > 0.9 && one.utilization > 0.9)
    }

    @Test func rejectsEmptyShapesAndConfigurations() {
        #expect(throws: HardwareError.self) { try Schedule(shape: GEMMShape(m: 0, k: 4, n: 4), config: .tiny) }
        #expect(throws: HardwareError.self) { try Schedule(shape: GEMMShape(m: 4, k: -1, n: 4), config: .tiny) }
        var bad = ChipConfig.tiny
        bad.rows = 0
        #expect(throws: HardwareError.self) { try Schedule(shape: GEMMShape(m: 4, k: 4, n: 4), config: bad) }
    }

    @Test func timingModelBoundsByMemoryAndCountsVectorWork() throws {
        let model = TimingModel(config: .tpuV3)
        // Batch-1 dense: HBM traffic of the weights dominates.
        let fc = try model.cost(of: LayerWork(name: "fc", gemm: GEMMShape(m: 1, k: 4096, n: 4096)))
        #expect(fc.memoryBound && fc.boundCycles == fc.memoryCycles)
        let conv = try model.cost(of: LayerWork(name: "c", gemm: GEMMShape(m: 8192, k: 2304, n: 256),
                                                vector: VectorWork(elements: 8192 * 256, opsPerElement: 5)))
        #expect(!conv.memoryBound)
        #expect(conv.vectorCycles == 8192 * 256 / 1024 * 5)
        #expect(conv.boundCycles == conv.computeCycles + conv.vectorCycles)
    }
}
