import Testing
@testable import Sim

/// A test-only operand format: bfloat16 with its mantissa cut to 4 bits (1 sign, 8 exponent,
/// 4 mantissa bits: 13 bits, the top 13 of the fp32 pattern), with bfloat16's rules (round to
/// nearest even, overflow to infinity, subnormals flushed to a signed zero, NaN quietened).
/// No production code knows it: it reaches the MXU, the register-level array and the
/// hardware faults only as a `NumberFormat` value.
struct TruncatedBFloat16: NumberFormat {
    /// fp32 mantissa bits the format drops.
    static let dropped: UInt32 = 19
    static let kept: UInt32 = ~((1 << dropped) - 1)

    var name: String { "bf13" }
    var bits: Int { 13 }

    func round(_ x: Float) -> Float {
        let b = x.bitPattern
        if b & 0x7FFF_FFFF > 0x7F80_0000 { return Float(bitPattern: (b | 0x0040_0000) & Self.kept) }   // NaN
        if b & 0x7F80_0000 == 0 { return Float(bitPattern: b & 0x8000_0000) }                         // zero, subnormal
        let lsb = (b >> Self.dropped) & 1
        return Float(bitPattern: (b &+ ((1 << (Self.dropped - 1)) - 1) &+ lsb) & Self.kept)
    }

    func encode(_ x: Float) -> UInt32 { x.bitPattern >> Self.dropped }
    func decode(_ bits: UInt32) -> Float { Float(bitPattern: bits << Self.dropped) }
}

/// The documented accumulation order with operands rounded by `round` (MXUTests' reference).
private func reference(_ a: [Float], _ b: [Float], _ shape: GEMMShape, fold: Int?, round r: (Float) -> Float) -> [Float] {
    scalarReference(a, b, shape, fold: fold, round: r)
}

/// fp32 values with every awkward feature: zeros of both signs, subnormals, the smallest and
/// largest normals, values on and next to rounding ties, values that round to infinity,
/// infinities, quiet and signalling NaNs with assorted payloads, and a sweep of patterns.
private func awkwardValues() -> [Float] {
    var patterns: [UInt32] = [0, 0x8000_0000, 1, 0x8000_0001, 0x007F_FFFF, 0x807F_FFFF, 0x0040_0000,
                              0x0080_0000, 0x8080_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F7F_8000, 0x7F7F_7FFF,
                              0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001,
                              0x7FBF_FFFF, 0x7F80_8000, 0x7FFF_FFFF, 0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF,
                              0x3F80_8001, 0xBF80_8000, 0xBF81_8000, 0x3F7F_FFFF]
    var s: UInt64 = 0x2545_F491_4F6C_DD1D
    for _ in 0..<200_000 {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        patterns.append(UInt32(truncatingIfNeeded: s >> 32))
    }
    // Every bfloat16 pattern, and each with the tie and the half-ulp either side below it.
    for hi in UInt32(0)...0xFFFF {
        patterns += [hi << 16, hi << 16 | 0x8000, hi << 16 | 0x7FFF, hi << 16 | 0x8001]
    }
    return patterns.map { Float(bitPattern: $0) }
}

@Suite struct NumberFormatTests {
    /// The bfloat16 format is today's ``BFloat16`` bit for bit: scalar and bulk rounding
    /// (NaN payloads and signs included), and the encoding the hardware faults used (the top
    /// 16 bits of the fp32 pattern: bit `b` of the register is bit `b + 16` of the pattern).
    @Test func bfloat16FormatIsBFloat16BitForBit() {
        let f = BFloat16Format()
        #expect(f.name == "bfloat16" && f.bits == 16 && f.bytesPerElement == 2 && f.roundingKind == .bfloat16)
        let values = awkwardValues()
        var mismatches = 0
        for x in values where f.round(x).bitPattern != BFloat16.round(x).bitPattern { mismatches += 1 }
        #expect(mismatches == 0)

        // Bulk rounding: not a multiple of 16 values, in place and out of place.
        let count = values.count - 5
        var viaFormat = [Float](repeating: 0, count: count), viaBFloat16 = viaFormat
        var inPlace = Array(values.prefix(count))
        values.withUnsafeBufferPointer { src in
            viaFormat.withUnsafeMutableBufferPointer { f.round(src.baseAddress!, into: $0.baseAddress!, count: count) }
            viaBFloat16.withUnsafeMutableBufferPointer { BFloat16.round(src.baseAddress!, into: $0.baseAddress!, count: count) }
        }
        inPlace.withUnsafeMutableBufferPointer { f.round(UnsafePointer($0.baseAddress!), into: $0.baseAddress!, count: count) }
        #expect(bits(viaFormat) == bits(viaBFloat16))
        #expect(bits(inPlace) == bits(viaBFloat16))
        #expect(bits(viaFormat) == bits(values.prefix(count).map(BFloat16.round)))

        // The encoding: every 16-bit pattern decodes to the fp32 pattern with it on top (no
        // flushing or quietening: a flipped register holds whatever it holds) and back.
        var codec = 0
        for p in UInt32(0)...0xFFFF {
            let x = f.decode(p)
            if x.bitPattern != p << 16 || f.encode(x) != p { codec += 1 }
        }
        #expect(codec == 0)
        // Held values (every rounded value above, and every bfloat16 pattern) encode to their
        // top 16 bits, and a fault's flip or forced bit through the encoding is the old
        // `bit + 16` on the fp32 pattern.
        var faults = 0
        for x in values.map(BFloat16.round) where f.encode(x) != x.bitPattern >> 16 || f.decode(f.encode(x)).bitPattern != x.bitPattern {
            faults += 1
        }
        for p in UInt32(0)...0xFFFF {
            let x = Float(bitPattern: p << 16)
            for b in 0..<16 {
                let mask = UInt32(1) << UInt32(b), old = UInt32(1) << UInt32(b + 16)
                if f.decode(f.encode(x) ^ mask).bitPattern != x.bitPattern ^ old { faults += 1 }
                if f.decode(f.encode(x) | mask).bitPattern != x.bitPattern | old { faults += 1 }
                if f.decode(f.encode(x) & ~mask).bitPattern != x.bitPattern & ~old { faults += 1 }
            }
        }
        #expect(faults == 0)
    }

    @Test func float32FormatIsTheIdentity() {
        let f = Float32Format()
        #expect(f.name == "float32" && f.bits == 32 && f.bytesPerElement == 4 && f.roundingKind == .identity)
        let values = awkwardValues()
        #expect(values.allSatisfy { f.round($0).bitPattern == $0.bitPattern && f.encode($0) == $0.bitPattern
                && f.decode($0.bitPattern).bitPattern == $0.bitPattern })
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { f.round(src.baseAddress!, into: $0.baseAddress!, count: values.count) } }
        #expect(bits(out) == bits(values))
    }

    /// The enum traces record keeps its raw values and names the built-in formats.
    @Test func operandPrecisionNamesTheBuiltInFormats() {
        #expect(OperandPrecision.bfloat16.rawValue == "bfloat16" && OperandPrecision.float32.rawValue == "float32")
        for p in OperandPrecision.allCases {
            #expect(p.format.name == p.rawValue)
            #expect(OperandPrecision(format: p.format) == p)
        }
        #expect(OperandPrecision(format: TruncatedBFloat16()) == nil)
        #expect(MXU(foldLength: 4, format: BFloat16Format()).precision == .bfloat16)
        #expect(MXU(foldLength: 4, precision: .float32).format.bits == 32)
    }

    /// The test format itself: ties to even on its 4-bit mantissa, overflow to infinity.
    @Test func truncatedFormatRoundsToNearestEven() {
        let f = TruncatedBFloat16()
        #expect(f.bytesPerElement == 2 && f.roundingKind == .general)
        #expect(f.round(1 + 1.0 / 16) == 1 + 1.0 / 16)            // representable
        #expect(f.round(1 + 1.0 / 32) == 1)                       // tie, down to even
        #expect(f.round(1 + 3.0 / 32) == 1 + 2.0 / 16)            // tie, up to even
        #expect(f.round(1 + 1.0 / 32 + 1.0 / 1024) == 1 + 1.0 / 16)
        #expect(f.round(.greatestFiniteMagnitude) == .infinity)
        #expect(f.round(-Float.leastNormalMagnitude / 2).bitPattern == (-Float(0)).bitPattern)
        #expect(f.round(.nan).isNaN)
        let values = awkwardValues().prefix(50_000)
        #expect(values.allSatisfy { x in
            let r = f.round(x)
            return f.round(r).bitPattern == r.bitPattern && r.bitPattern & ~TruncatedBFloat16.kept == 0
                && (r.isNaN || f.decode(f.encode(r)).bitPattern == r.bitPattern)
        })
    }

    /// The functional MXU with the test format equals the documented accumulation order on
    /// operands rounded by it: both dataflows' orders, row-major, transposed (the strided
    /// packing path) and pre-rounded operands, one and two threads.
    @Test(arguments: [8, 128], [Dataflow.weightStationary, .outputStationary])
    func functionalMXUFollowsTheFormat(rows: Int, dataflow: Dataflow) throws {
        let f = TruncatedBFloat16()
        let chip = ChipConfig(name: "t", rows: rows, columns: rows, dataflow: dataflow)
        let fold = dataflow.foldsReduction ? rows : nil
        for (i, shape) in MXUTests.shapes.enumerated() {
            let a = operands(shape.m * shape.k, seed: UInt64(i + 40)), b = operands(shape.k * shape.n, seed: UInt64(i + 140))
            let expected = reference(a, b, shape, fold: fold, round: f.round)
            for threads in [1, 2] {
                let mxu = MXU(config: chip, format: f, threads: threads)
                #expect(differing(try mxu.multiply(a, b, shape: shape), expected) == 0, "\(shape) threads=\(threads)")

                // A stored K x M and B stored N x K, read through swapped strides.
                var at = [Float](repeating: 0, count: a.count), bt = [Float](repeating: 0, count: b.count)
                for m in 0..<shape.m { for k in 0..<shape.k { at[k * shape.m + m] = a[m * shape.k + k] } }
                for k in 0..<shape.k { for n in 0..<shape.n { bt[n * shape.k + k] = b[k * shape.n + n] } }
                // A pre-rounded with the format and read in place.
                let rounded = a.map(f.round)
                var strided = [Float](repeating: .nan, count: shape.m * shape.n), inPlace = strided
                at.withUnsafeBufferPointer { pa in bt.withUnsafeBufferPointer { pb in strided.withUnsafeMutableBufferPointer { pc in
                    mxu.multiply(MatrixView(pa.baseAddress!, rowStride: 1, columnStride: shape.m),
                                 MatrixView(pb.baseAddress!, rowStride: 1, columnStride: shape.k), into: pc.baseAddress!, shape: shape)
                } } }
                rounded.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in inPlace.withUnsafeMutableBufferPointer { pc in
                    mxu.multiply(MatrixView(pa.baseAddress!, rowStride: shape.k, isRounded: true),
                                 MatrixView(pb.baseAddress!, rowStride: shape.n), into: pc.baseAddress!, shape: shape)
                } } }
                #expect(differing(strided, expected) == 0, "transposed \(shape) threads=\(threads)")
                #expect(differing(inPlace, expected) == 0, "pre-rounded \(shape) threads=\(threads)")
            }
        }
        // The format is not bfloat16 in disguise: the results differ.
        let shape = GEMMShape(m: 13, k: 21, n: 19)
        let a = operands(shape.m * shape.k, seed: 1), b = operands(shape.k * shape.n, seed: 2)
        #expect(differing(try MXU(config: chip, format: f).multiply(a, b, shape: shape),
                          try MXU(config: chip).multiply(a, b, shape: shape)) > 0)
    }

    /// A model's operand rounding (``OperationMXU/operand(_:)``) uses the MXU's format.
    @Test func operationOperandsUseTheFormat() {
        let f = TruncatedBFloat16()
        let unit = MatrixUnit(mxu: MXU(foldLength: 4, format: f))
        let x = operands(6 * 10, seed: 7), w = operands(10 * 3, seed: 8)
        var seen: [Float] = []
        let out = unit.operation(SiteID(layer: "l", kind: .forward), input: x, inputShape: [6, 10], weight: w, weightShape: [10, 3],
                                 outputShape: [6, 3], product: { x, w, mxu in
            let rounded = mxu.operand(x)
            seen = rounded
            return mxu.multiply(rounded, rows: 6, inner: 10, w, cols: 3, aIsRounded: true)
        })
        #expect(bits(seen) == bits(x.map(f.round)))
        #expect(differing(out, reference(x, w, GEMMShape(m: 6, k: 10, n: 3), fold: 4, round: f.round)) == 0)
    }

    /// The register-level array with the test format equals the functional MXU with it, bit
    /// for bit, for every dataflow, both timing modes, one and two MXUs.
    @Test(arguments: Dataflow.allCases, TimingMode.allCases)
    func referenceArrayFollowsTheFormat(dataflow: Dataflow, mode: TimingMode) throws {
        let f = TruncatedBFloat16()
        for mxus in [1, 2] {
            let chip = ChipConfig(name: "t", rows: 8, columns: 6, mxuCount: mxus, dataflow: dataflow)
            for (i, shape) in ReferenceArrayTests.shapes.enumerated() {
                let a = operands(shape.m * shape.k, seed: UInt64(9 * i + 3)), b = operands(shape.k * shape.n, seed: UInt64(9 * i + 4))
                let schedule = try Schedule(shape: shape, config: chip, mode: mode)
                let array = try ReferenceArray(schedule: schedule, format: f).run(a: a, b: b)
                let fast = try MXU(config: chip, format: f).multiply(a, b, shape: shape)
                #expect(differing(array.output, fast) == 0, "\(shape) mxus=\(mxus)")
                #expect(array.cycles == schedule.cycles)
            }
        }
    }

    /// The weight register is 13 bits wide under the test format (the partial-sum register
    /// stays 32), and validation says so.
    @Test func faultWidthsFollowTheFormat() throws {
        let f = TruncatedBFloat16()
        #expect(HardwareFault.width(of: .weight, format: f) == 13)
        #expect(HardwareFault.width(of: .input, format: f) == 13)
        #expect(HardwareFault.width(of: .partialSum, format: f) == 32)
        #expect(HardwareFault.width(of: .weight, format: BFloat16Format()) == HardwareFault.width(of: .weight, precision: .bfloat16))
        let schedule = try Schedule(shape: GEMMShape(m: 4, k: 4, n: 4), config: .tiny)
        var fault = HardwareFault(row: 0, column: 0, register: .weight, bit: 12, kind: .stuckAt(value: 1))
        #expect(throws: Never.self) { try fault.validate(schedule: schedule, format: f) }
        fault.bit = 13
        #expect(throws: HardwareError.self) { try fault.validate(schedule: schedule, format: f) }
        #expect(throws: Never.self) { try fault.validate(schedule: schedule, format: BFloat16Format()) }
        fault.register = .partialSum
        #expect(throws: Never.self) { try fault.validate(schedule: schedule, format: f) }
    }

    /// A stuck bit of the 13-bit weight register under weight-stationary changes exactly the
    /// products the schedule maps it to: every weight the faulty PE holds in a pass on its MXU
    /// (`B[rowRange.lowerBound + row][columnRange.lowerBound + column]`) reads with the bit
    /// forced, in every product it takes part in. The fault mapping and the register-level
    /// array both give the documented order's result on those corrupted weights.
    @Test(arguments: [(bit: 0, value: 1), (bit: 3, value: 1), (bit: 4, value: 1), (bit: 10, value: 0), (bit: 12, value: 1)])
    func stuckWeightBitChangesTheMappedProducts(bit: Int, value: Int) throws {
        let f = TruncatedBFloat16()
        for mxus in [1, 2] {
            let chip = ChipConfig(name: "t", rows: 4, columns: 3, mxuCount: mxus, dataflow: .weightStationary)
            let shape = GEMMShape(m: 7, k: 10, n: 8)
            let a = operands(shape.m * shape.k, seed: 51).map(f.round), b = operands(shape.k * shape.n, seed: 52).map(f.round)
            let schedule = try Schedule(shape: shape, config: chip)
            let fault = HardwareFault(mxu: mxus - 1, row: 1, column: 2, register: .weight, bit: bit, kind: .stuckAt(value: value))
            try fault.validate(schedule: schedule, format: f)

            // The weights the faulty PE holds, with the bit forced in the 13-bit pattern.
            var corrupted = b
            var held = 0
            for p in schedule.passes where p.mxu == fault.mxu && fault.row < p.rowRange.count && fault.column < p.columnRange.count {
                let index = (p.rowRange.lowerBound + fault.row) * shape.n + p.columnRange.lowerBound + fault.column
                let pattern = f.encode(b[index]), mask = UInt32(1) << UInt32(bit)
                corrupted[index] = f.decode(value == 0 ? pattern & ~mask : pattern | mask)
                held += 1
            }
            #expect(held > 0)
            let expected = reference(a, corrupted, shape, fold: chip.rows, round: { $0 })
            let golden = try MXU(config: chip, format: f).multiply(a, b, shape: shape)
            #expect(differing(expected, golden) > 0, "bit \(bit) stuck at \(value) must change something")

            let mapped = schedule.faultyElements(of: fault, format: f, a: { a[$0 * shape.k + $1] }, b: { b[$0 * shape.n + $1] },
                                                 golden: { golden[$0 * shape.n + $1] })
            var patched = golden
            for e in mapped { patched[e.row * shape.n + e.column] = e.faulty }
            #expect(differing(patched, expected) == 0, "mxus=\(mxus)")
            #expect(mapped.count == differing(golden, expected))
            let array = try ReferenceArray(schedule: schedule, format: f).run(a: a, b: b, fault: fault).output
            #expect(differing(array, expected) == 0, "mxus=\(mxus)")
        }
    }

    /// The functional fault mapping equals the register-level array under the test format:
    /// every dataflow, both timing modes, every register, flips and stuck bits of all 13
    /// operand bits (and of the fp32 partial sum).
    @Test(arguments: Dataflow.allCases, TimingMode.allCases)
    func mappedFaultEqualsRegisterLevelArray(dataflow: Dataflow, mode: TimingMode) throws {
        let f = TruncatedBFloat16()
        var rng = CounterRNG(seed: 13, purpose: .faultSampling)
        var changed = 0, total = 0
        let chip = ChipConfig(name: "t", rows: 5, columns: 4, mxuCount: 2, dataflow: dataflow)
        let shape = GEMMShape(m: 8, k: 11, n: 9)
        let a = operands(shape.m * shape.k, seed: 61), b = operands(shape.k * shape.n, seed: 62)
        let (A, B) = (a.map(f.round), b.map(f.round))
        let schedule = try Schedule(shape: shape, config: chip, mode: mode)
        let golden = try MXU(config: chip, format: f).multiply(a, b, shape: shape)
        for register in HardwareFault.Register.allCases {
            for (row, column) in [(0, 0), (4, 3), (2, 1)] {
                let width = HardwareFault.width(of: register, format: f)
                var kinds: [HardwareFault.Kind] = [.stuckAt(value: 0), .stuckAt(value: 1)]
                for _ in 0..<5 { kinds.append(.transient(cycle: Int(rng.next() % UInt64(schedule.cycles)))) }
                for kind in kinds {
                    let fault = HardwareFault(mxu: Int(rng.next() % 2), row: row, column: column, register: register,
                                              bit: Int(rng.next() % UInt64(width)), kind: kind)
                    try fault.validate(schedule: schedule, format: f)
                    let array = try ReferenceArray(schedule: schedule, format: f).run(a: a, b: b, fault: fault).output
                    let mapped = schedule.faultyElements(of: fault, format: f, a: { A[$0 * shape.k + $1] }, b: { B[$0 * shape.n + $1] },
                                                         golden: { golden[$0 * shape.n + $1] })
                    var patched = golden
                    for e in mapped { patched[e.row * shape.n + e.column] = e.faulty }
                    #expect(differing(array, patched) == 0, "\(fault)")
                    #expect(mapped.count == differing(array, golden), "\(fault)")
                    total += 1
                    if !mapped.isEmpty { changed += 1 }
                }
            }
        }
        #expect(changed * 5 > total, "only \(changed) of \(total) faults changed the output")
    }

    /// Operand bytes in the timing model come from the format; bfloat16's are today's numbers.
    @Test func hbmTrafficCountsTheFormatsBytes() throws {
        let gemm = GEMMShape(m: 6, k: 5, n: 4)
        #expect(LayerWork(name: "g", gemm: gemm).hbmBytes == 2 * (6 * 5 + 5 * 4) + 4 * 6 * 4)
        #expect(LayerWork(name: "g", gemm: gemm, bytesPerOperand: Float32Format().bytesPerElement).hbmBytes
                == 4 * (6 * 5 + 5 * 4) + 4 * 6 * 4)
        let conv = ConvShape.scaleSim(inH: 10, inW: 10, filterH: 3, filterW: 3, channels: 2, filters: 5, stride: 1)
        let operands = 10 * 10 * 2 + 3 * 3 * 2 * 5, results = 8 * 8 * 5
        #expect(conv.hbmBytes() == 2 * operands + 4 * results)
        #expect(conv.hbmBytes(bytesPerOperand: 4) == 4 * operands + 4 * results)
        let model = try Workloads.model("resnet18", scale: "tiny")
        let bf16 = model.layers(phases: .training), fp32 = model.layers(phases: .training, bytesPerOperand: 4)
        #expect(zip(bf16, fp32).allSatisfy { $0.hbmBytes < $1.hbmBytes && $0.gemm == $1.gemm })
    }
}
