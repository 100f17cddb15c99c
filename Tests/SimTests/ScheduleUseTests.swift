import Testing
@testable import Sim

/// Which PEs, registers and cycles an operation uses (`Schedule.uses`, `usedPEs`,
/// `usedCycles`), checked against the fault mapping itself: a fault is in use exactly when it
/// changes some output.
@Suite struct ScheduleUseTests {
    /// Operands in [0.5, 1.5), bfloat16: flipping or forcing bit 14 (the exponent's top bit)
    /// of any of them, or bit 30 of any partial sum, changes every output it reaches.
    static func operands(_ n: Int, seed: UInt64) -> [Float] {
        var rng = CounterRNG(seed: seed, purpose: .faultSampling)
        return (0..<n).map { _ in BFloat16.round(0.5 + Float(rng.next() % 1000) / 1000) }
    }

    /// Every PE, every register, every cycle (flips) and both stuck-at values, on arrays that
    /// the operation fills only partly (folds with partial tiles in every dimension), for
    /// every dataflow, both timing modes and one or two MXUs.
    @Test(arguments: Dataflow.allCases, TimingMode.allCases)
    func aFaultIsInUseExactlyWhenItChangesAnOutput(dataflow: Dataflow, mode: TimingMode) throws {
        let shape = GEMMShape(m: 5, k: 6, n: 7)
        let a = Self.operands(shape.m * shape.k, seed: 1), b = Self.operands(shape.k * shape.n, seed: 2)
        for mxus in [1, 2] {
            let chip = ChipConfig(name: "t", rows: 4, columns: 4, mxuCount: mxus, dataflow: dataflow)
            let schedule = try Schedule(shape: shape, config: chip, mode: mode)
            let golden = try MXU(config: chip, precision: .bfloat16).multiply(a, b, shape: shape)
            func changes(_ fault: HardwareFault) -> Bool {
                !schedule.faultyElements(of: fault, precision: .bfloat16, a: { a[$0 * shape.k + $1] }, b: { b[$0 * shape.n + $1] },
                                         golden: { golden[$0 * shape.n + $1] }).isEmpty
            }
            var inUse = 0, notInUse = 0
            for register in HardwareFault.Register.allCases {
                let bit = register == .partialSum ? 30 : 14
                let used = schedule.usedPEs(register)
                for mxu in 0..<mxus {
                    for row in 0..<chip.rows {
                        for column in 0..<chip.columns {
                            let listed = used.contains { $0.mxu == mxu && $0.row == row && column < $0.columns }
                            let stuck = [0, 1].map { HardwareFault(mxu: mxu, row: row, column: column, register: register, bit: bit, kind: .stuckAt(value: $0)) }
                            #expect(stuck.allSatisfy { schedule.uses($0) == listed }, "\(register) PE(\(row),\(column)) MXU \(mxu)")
                            // One of the two stuck values differs from every value's bit.
                            #expect(stuck.contains(where: changes) == listed, "\(stuck[0]) \(dataflow) \(mode) mxus=\(mxus)")
                            let cycles = schedule.usedCycles(register, mxu: mxu, row: row, column: column)
                            #expect(cycles.isEmpty != listed)
                            for cycle in 0..<schedule.cycles {
                                let flip = HardwareFault(mxu: mxu, row: row, column: column, register: register, bit: bit, kind: .transient(cycle: cycle))
                                let uses = schedule.uses(flip)
                                #expect(uses == cycles.contains { $0.contains(cycle) })
                                #expect(changes(flip) == uses, "\(flip) \(dataflow) \(mode) mxus=\(mxus): in use \(uses)")
                                if uses { inUse += 1 } else { notInUse += 1 }
                            }
                        }
                    }
                }
            }
            // Both kinds occur: the check above is not vacuous.
            #expect(inUse > 0 && notInUse > 0)
        }
    }

    /// The used PEs are the tiles' footprint on each MXU (for the partial sum under weight-
    /// and input-stationary, every row of the tiles' columns), row by row.
    @Test func usedPEsAreTheTilesFootprint() throws {
        // K = 6 on 4 rows: folds of 4 and 2 rows; N = 5 on 4 columns: tiles 4 and 1 wide.
        let chip = ChipConfig(name: "t", rows: 4, columns: 4, mxuCount: 2, dataflow: .weightStationary)
        let schedule = try Schedule(shape: GEMMShape(m: 3, k: 6, n: 5), config: chip)
        // Passes in order (column fold outer, row fold inner), round-robin over 2 MXUs:
        // MXU 0: 4x4 and 4x1 tiles; MXU 1: 2x4 and 2x1.
        #expect(schedule.passes.map { [$0.mxu, $0.rowRange.count, $0.columnRange.count] } == [[0, 4, 4], [1, 2, 4], [0, 4, 1], [1, 2, 1]])
        #expect(schedule.usedPEs(.weight) == (0..<4).map { UsedPERow(mxu: 0, row: $0, columns: 4) } + (0..<2).map { UsedPERow(mxu: 1, row: $0, columns: 4) })
        #expect(schedule.usedPEs(.partialSum) == [0, 1].flatMap { m in (0..<4).map { UsedPERow(mxu: m, row: $0, columns: 4) } })
        #expect(!schedule.uses(HardwareFault(mxu: 1, row: 3, column: 0, register: .weight, bit: 3, kind: .stuckAt(value: 1))))
        #expect(schedule.uses(HardwareFault(mxu: 1, row: 3, column: 0, register: .partialSum, bit: 3, kind: .stuckAt(value: 1))))
    }

    /// An operation of several products in turn: its cycles are the products' end to end, a
    /// flip is in use exactly when the product running in its cycle uses it at its own cycle,
    /// and the used cycles are each product's at its offset.
    @Test(arguments: Dataflow.allCases)
    func productsInTurnShareOutTheOperationsCycles(dataflow: Dataflow) throws {
        let chip = ChipConfig(name: "t", rows: 4, columns: 4, mxuCount: 2, dataflow: dataflow)
        let op = try OperationSchedule(shape: GEMMShape(m: 9, k: 6, n: 5), products: 3, config: chip)
        let one = try Schedule(shape: GEMMShape(m: 3, k: 6, n: 5), config: chip)
        #expect(op.product == one && op.cycles == 3 * one.cycles && op.passCount == 3 * one.passes.count && op.describe == "3 x 3x6x5")
        #expect(throws: HardwareError.self) { try OperationSchedule(shape: GEMMShape(m: 10, k: 6, n: 5), products: 3, config: chip) }
        for register in HardwareFault.Register.allCases {
            #expect(op.usedPEs(register) == one.usedPEs(register))
            for row in 0..<4 { for column in 0..<4 {
                let cycles = op.usedCycles(register, mxu: 1, row: row, column: column)
                for cycle in 0..<op.cycles {
                    let fault = HardwareFault(mxu: 1, row: row, column: column, register: register, bit: 3, kind: .transient(cycle: cycle))
                    let local = HardwareFault(mxu: 1, row: row, column: column, register: register, bit: 3, kind: .transient(cycle: cycle % one.cycles))
                    #expect(op.uses(fault) == one.uses(local))
                    #expect(cycles.contains { $0.contains(cycle) } == one.uses(local))
                    #expect((0..<3).map { op.fault(fault, inProduct: $0) } == (0..<3).map { $0 == cycle / one.cycles ? local : nil })
                }
            } }
        }
        let past = HardwareFault(mxu: 0, row: 0, column: 0, register: .input, bit: 3, kind: .transient(cycle: op.cycles))
        #expect(!op.uses(past))
        #expect(throws: HardwareError.self) { try op.validate(past, format: BFloat16Format()) }
        let stuck = HardwareFault(mxu: 0, row: 0, column: 0, register: .input, bit: 3, kind: .stuckAt(value: 1))
        #expect((0..<3).allSatisfy { op.fault(stuck, inProduct: $0) == stuck } && op.uses(stuck) == one.uses(stuck))
    }
}
