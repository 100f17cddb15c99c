import Testing
@testable import Sim

@Suite struct HardwareFaultTests {
    /// The fast path (functional MXU, then the schedule's fault mapping) equals the
    /// register-level array run with the same fault, bit for bit: every dataflow, both timing
    /// modes, one and two MXUs, bf16 and fp32 operands, every register, flips in many cycles
    /// (busy and idle ones) and stuck-at 0 and 1, on corner, padding and inner PEs.
    @Test(arguments: Dataflow.allCases, TimingMode.allCases)
    func mappedFaultEqualsRegisterLevelArray(dataflow: Dataflow, mode: TimingMode) throws {
        var rng = CounterRNG(seed: 11, purpose: .faultSampling)
        var changed = 0, total = 0
        for mxus in [1, 2] {
            let chip = ChipConfig(name: "t", rows: 6, columns: 5, mxuCount: mxus, dataflow: dataflow)
            for (i, shape) in [GEMMShape(m: 9, k: 14, n: 12), GEMMShape(m: 7, k: 5, n: 3)].enumerated() {
                let a = operands(shape.m * shape.k, seed: UInt64(31 * i)), b = operands(shape.k * shape.n, seed: UInt64(31 * i + 1))
                let schedule = try Schedule(shape: shape, config: chip, mode: mode)
                let precision: OperandPrecision = (i + mxus) % 2 == 0 ? .bfloat16 : .float32
                let golden = try MXU(config: chip, precision: precision).multiply(a, b, shape: shape)
                let round: (Float) -> Float = precision == .bfloat16 ? BFloat16.round : { $0 }
                let (A, B) = (a.map(round), b.map(round))
                let pes = [(0, 0), (5, 4), (2, 3), (4, 1)]
                for register in HardwareFault.Register.allCases {
                    for (row, column) in pes {
                        let width = HardwareFault.width(of: register, precision: precision)
                        var kinds: [HardwareFault.Kind] = [.stuckAt(value: 0), .stuckAt(value: 1)]
                        for _ in 0..<6 { kinds.append(.transient(cycle: Int(rng.next() % UInt64(schedule.cycles)))) }
                        for kind in kinds {
                            // Exponent bits change values visibly; any bit must map exactly.
                            let bit = Int(rng.next() % UInt64(width))
                            let fault = HardwareFault(mxu: Int(rng.next() % UInt64(mxus)), row: row, column: column,
                                                      register: register, bit: bit, kind: kind)
                            try fault.validate(schedule: schedule, precision: precision)
                            let reference = try ReferenceArray(schedule: schedule, precision: precision).run(a: a, b: b, fault: fault).output
                            let mapped = schedule.faultyElements(of: fault, precision: precision,
                                                                 a: { A[$0 * shape.k + $1] }, b: { B[$0 * shape.n + $1] },
                                                                 golden: { golden[$0 * shape.n + $1] })
                            var patched = golden
                            for e in mapped { patched[e.row * shape.n + e.column] = e.faulty }
                            #expect(differing(reference, patched) == 0, "\(fault) \(shape) \(precision) mxus=\(mxus)")
                            #expect(mapped.count == differing(reference, golden), "\(fault) \(shape)")
                            total += 1
                            if !mapped.isEmpty { changed += 1 }
                        }
                    }
                }
            }
        }
        // Many faults flip an idle cycle or force a bit to the value it has; enough must change
        // the output for the comparison above to prove something (about a third do).
        #expect(changed * 5 > total, "only \(changed) of \(total) faults changed the output")
    }

    /// Weight-stationary, as `docs/faults.md#mapping-through-the-schedule` describes it: a stuck weight register bit
    /// corrupts one weight for every streamed row (a column of outputs), an input register
    /// fault one activation on its way right (part of one output row), a partial-sum fault one
    /// output.
    @Test func weightStationaryFootprints() throws {
        let chip = ChipConfig(name: "t", rows: 4, columns: 4, dataflow: .weightStationary)
        let shape = GEMMShape(m: 6, k: 4, n: 4)
        let schedule = try Schedule(shape: shape, config: chip)
        let a = [Float](repeating: 1, count: 24), b = [Float](repeating: 1, count: 16)
        let golden = try MXU(config: chip).multiply(a, b, shape: shape)
        func footprint(_ register: HardwareFault.Register, _ kind: HardwareFault.Kind) -> [[Int]] {
            schedule.faultyElements(of: HardwareFault(row: 1, column: 2, register: register, bit: 14, kind: kind), precision: .bfloat16,
                                    a: { a[$0 * 4 + $1] }, b: { b[$0 * 4 + $1] }, golden: { golden[$0 * 4 + $1] })
                .map { [$0.row, $0.column] }
        }
        // Bit 14 is the top exponent bit: 1.0 becomes 2^128 = inf when it is set.
        #expect(footprint(.weight, .stuckAt(value: 1)) == (0..<6).map { [$0, 2] })
        // Vector t = 3 passes PE(1, 2) in cycle streamStart + 3 + 1 + 2 and then PE(1, 3).
        let t3 = schedule.passes[0].streamStart + 6
        #expect(footprint(.input, .transient(cycle: t3)) == [[3, 2], [3, 3]])
        #expect(footprint(.partialSum, .transient(cycle: t3)).map { $0 } == [[3, 2]])
        // A flip in a cycle when nothing passes PE(1, 2) changes nothing.
        #expect(footprint(.input, .transient(cycle: 0)).isEmpty)
        // A flipped resident weight corrupts the rows streamed after the flip only.
        #expect(footprint(.weight, .transient(cycle: t3)) == (3..<6).map { [$0, 2] })
    }

    @Test func rejectsFaultsOutsideTheArrayOrOperation() throws {
        let schedule = try Schedule(shape: GEMMShape(m: 4, k: 4, n: 4), config: .tiny)
        let ok = HardwareFault(row: 0, column: 0, register: .weight, bit: 3, kind: .transient(cycle: 1))
        #expect(throws: Never.self) { try ok.validate(schedule: schedule, precision: .bfloat16) }
        var bad = ok; bad.row = 8
        #expect(throws: HardwareError.self) { try bad.validate(schedule: schedule, precision: .bfloat16) }
        bad = ok; bad.mxu = 1
        #expect(throws: HardwareError.self) { try bad.validate(schedule: schedule, precision: .bfloat16) }
        bad = ok; bad.bit = 16
        #expect(throws: HardwareError.self) { try bad.validate(schedule: schedule, precision: .bfloat16) }
        bad.register = .partialSum
        #expect(throws: Never.self) { try bad.validate(schedule: schedule, precision: .bfloat16) }
        bad = ok; bad.kind = .transient(cycle: schedule.cycles)
        #expect(throws: HardwareError.self) { try bad.validate(schedule: schedule, precision: .bfloat16) }
        bad = ok; bad.kind = .stuckAt(value: 2)
        #expect(throws: HardwareError.self) { try bad.validate(schedule: schedule, precision: .bfloat16) }
    }
}
