import Testing
@testable import Sim

/// Deterministic operands with every awkward feature: mixed signs and magnitudes, values
/// that are not bf16-representable, exact zeros.
func operands(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<count).map { i in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        if i % 11 == 5 { return 0 }
        let mantissa = Float(Int64(bitPattern: s >> 20) % 1_000_003) / 1_000_003
        let scale: Float = [1, 1e-3, 37, 1e4][Int(s >> 62)]
        return mantissa * scale
    }
}

/// The documented accumulation order, written as the plainest possible loop.
func scalarReference(_ a: [Float], _ b: [Float], _ shape: GEMMShape, fold: Int?, bf16: Bool) -> [Float] {
    scalarReference(a, b, shape, fold: fold, round: bf16 ? BFloat16.round : { $0 })
}

/// The same with operands rounded by `r` (any number format): fold sums of `fold` terms from
/// +0, added in fold order; nil: one running sum.
func scalarReference(_ a: [Float], _ b: [Float], _ shape: GEMMShape, fold: Int?, round r: (Float) -> Float) -> [Float] {
    let (M, K, N) = (shape.m, shape.k, shape.n)
    let f = fold ?? K
    var c = [Float](repeating: 0, count: M * N)
    for m in 0..<M {
        for n in 0..<N {
            var acc: Float = 0
            for k0 in stride(from: 0, to: K, by: f) {
                var s: Float = 0
                for k in k0..<min(K, k0 + f) { s = s.addingProduct(r(a[m * K + k]), r(b[k * N + n])) }
                acc += s
            }
            c[m * N + n] = acc
        }
    }
    return c
}

func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }

/// How many elements differ in their bits (0 when identical); keeps failure messages short.
func differing(_ x: [Float], _ y: [Float]) -> Int {
    x.count != y.count ? max(x.count, y.count) : zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count
}

@Suite struct MXUTests {
    static let shapes = [GEMMShape(m: 1, k: 1, n: 1), GEMMShape(m: 13, k: 21, n: 19), GEMMShape(m: 8, k: 8, n: 8),
                         GEMMShape(m: 37, k: 300, n: 70), GEMMShape(m: 100, k: 129, n: 33), GEMMShape(m: 3, k: 520, n: 2)]

    @Test(arguments: [8, 128], [Dataflow.weightStationary, .outputStationary])
    func matchesTheDocumentedAccumulationOrder(rows: Int, dataflow: Dataflow) throws {
        let chip = ChipConfig(name: "t", rows: rows, columns: rows, dataflow: dataflow)
        for precision in OperandPrecision.allCases {
            for (i, shape) in Self.shapes.enumerated() {
                let a = operands(shape.m * shape.k, seed: UInt64(i)), b = operands(shape.k * shape.n, seed: UInt64(i + 100))
                let fast = try MXU(config: chip, precision: precision).multiply(a, b, shape: shape)
                let slow = scalarReference(a, b, shape, fold: dataflow.foldsReduction ? rows : nil, bf16: precision == .bfloat16)
                #expect(differing(fast, slow) == 0, "\(shape) \(precision)")
            }
        }
    }

    @Test func resultsAreBitIdenticalForAnyThreadCount() throws {
        let shape = GEMMShape(m: 203, k: 300, n: 170)
        let a = operands(shape.m * shape.k, seed: 1), b = operands(shape.k * shape.n, seed: 2)
        let one = try MXU(config: .tpuV3, threads: 1).multiply(a, b, shape: shape)
        for t in [2, 3, 8] {
            #expect(differing(try MXU(config: .tpuV3, threads: t).multiply(a, b, shape: shape), one) == 0)
        }
    }

    @Test func foldOrderIsObservable() throws {
        // The fold structure is not a formality: with cancellation, folding changes the bits.
        let shape = GEMMShape(m: 1, k: 16, n: 1)
        var a = [Float](repeating: 1, count: 16)
        a[0] = 1e8; a[8] = -1e8
        let b = [Float](repeating: 1, count: 16)
        let folded = try MXU(foldLength: 8, precision: .float32).multiply(a, b, shape: shape)
        let running = try MXU(foldLength: nil, precision: .float32).multiply(a, b, shape: shape)
        #expect(folded != running)
    }

    @Test func bf16OperandsDifferFromFp32Operands() throws {
        let shape = GEMMShape(m: 4, k: 64, n: 4)
        let a = operands(256, seed: 9), b = operands(256, seed: 10)
        let lo = try MXU(config: .tiny, precision: .bfloat16).multiply(a, b, shape: shape)
        let hi = try MXU(config: .tiny, precision: .float32).multiply(a, b, shape: shape)
        #expect(bits(lo) != bits(hi))
        for (x, y) in zip(lo, hi) { #expect(abs(x - y) <= 0.02 * max(abs(y), 1)) }
    }

    @Test func transposedViewsNeedNoCopies() throws {
        let shape = GEMMShape(m: 9, k: 40, n: 35)
        let a = operands(shape.m * shape.k, seed: 3), b = operands(shape.k * shape.n, seed: 4)
        let expected = try MXU(config: .tiny).multiply(a, b, shape: shape)
        // Store A as K x M and B as N x K, then read them through swapped strides.
        var at = [Float](repeating: 0, count: a.count), bt = [Float](repeating: 0, count: b.count)
        for m in 0..<shape.m { for k in 0..<shape.k { at[k * shape.m + m] = a[m * shape.k + k] } }
        for k in 0..<shape.k { for n in 0..<shape.n { bt[n * shape.k + k] = b[k * shape.n + n] } }
        var c = [Float](repeating: .nan, count: shape.m * shape.n)
        at.withUnsafeBufferPointer { pa in bt.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            MXU(config: .tiny).multiply(MatrixView(pa.baseAddress!, rowStride: 1, columnStride: shape.m),
                                        MatrixView(pb.baseAddress!, rowStride: 1, columnStride: shape.k),
                                        into: pc.baseAddress!, shape: shape)
        } } }
        #expect(differing(c, expected) == 0)
    }

    @Test func preRoundedOperandsReadInPlaceGiveTheSameBits() throws {
        for shape in [GEMMShape(m: 96, k: 40, n: 33), GEMMShape(m: 203, k: 300, n: 70), GEMMShape(m: 7, k: 5, n: 16)] {
            let a = operands(shape.m * shape.k, seed: 21).map(BFloat16.round), b = operands(shape.k * shape.n, seed: 22)
            let expected = try MXU(config: .tpuV3).multiply(a, b, shape: shape)
            for threads in [1, 2] {
                var c = [Float](repeating: .nan, count: shape.m * shape.n)
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    MXU(config: .tpuV3, threads: threads).multiply(MatrixView(pa.baseAddress!, rowStride: shape.k, isRounded: true),
                                                                   MatrixView(pb.baseAddress!, rowStride: shape.n),
                                                                   into: pc.baseAddress!, shape: shape)
                } } }
                #expect(differing(c, expected) == 0, "\(shape) threads=\(threads)")
            }
        }
    }

    /// Every kernel family (the AVX-512 and the AVX2 one, whichever this build uses), every
    /// row and column remainder of their tiles, K not a multiple of the fold, one running sum,
    /// and K long enough to be cut into several cache blocks, with and without prefetching B's
    /// panels (the 8-lane family's path for a large B): all against the scalar loop.
    @Test(arguments: KernelFamily.allCases)
    func everyKernelAndTileRemainderMatchesTheScalarLoop(family: KernelFamily) throws {
        var shapes = (1...13).map { GEMMShape(m: $0, k: 150, n: 17) }             // every M remainder of 6, 4, 12 (and 24's first)
        shapes += (1...49).map { GEMMShape(m: 13, k: 150, n: $0) }               // every N remainder, each kernel chosen
        shapes += [GEMMShape(m: 30, k: 150, n: 65), GEMMShape(m: 25, k: 150, n: 72), GEMMShape(m: 49, k: 40, n: 96)]
        let severalBlocks = [GEMMShape(m: 110, k: 700, n: 23), GEMMShape(m: 100, k: 520, n: 40)]  // several M and K blocks
        shapes += severalBlocks
        for shape in shapes {
            let a = operands(shape.m * shape.k, seed: UInt64(shape.m * 1000 + shape.n)), b = operands(shape.k * shape.n, seed: UInt64(shape.k + shape.n))
            // A rounded all of K at once, and (the long shapes) in spans of one and of two blocks of K.
            let aBlocks = severalBlocks.contains(shape) ? [nil, 2048, 60000] : [nil] as [Int?]
            for fold in [128, nil] as [Int?] {
                for precision in OperandPrecision.allCases {
                    let expected = scalarReference(a, b, shape, fold: fold, bf16: precision == .bfloat16)
                    for aBlock in aBlocks {
                        for prefetching in family == .narrow ? [false, true] : [false] {
                            var mxu = MXU(foldLength: fold, precision: precision).using(family)
                            if let aBlock { mxu = mxu.roundingA(inBlocksOf: aBlock) }
                            if prefetching { mxu = mxu.prefetchingB(above: 0) }
                            let product = try mxu.multiply(a, b, shape: shape)
                            #expect(differing(product, expected) == 0, "\(family) \(shape) fold=\(String(describing: fold)) \(precision) A block \(String(describing: aBlock)) prefetching B \(prefetching)")
                        }
                    }
                }
            }
        }
    }

    /// Transposed and pre-rounded operand views (a transposed A packs into k-major panels)
    /// through every kernel family, one and two threads, against the scalar loop.
    @Test(arguments: KernelFamily.allCases)
    func everyKernelFamilyReadsEveryOperandLayout(family: KernelFamily) throws {
        // Between them the shapes make every kernel of both families the choice (wide: 6x64 for
        // 30x50x64, 24x16 for 240x50x16, 12x16 for the first three and 36x40x32; narrow:
        // 4x24 for 31x300x41 and 32x20x24, 12x8 for 7x20x8, 6x16 for the rest).
        for shape in [GEMMShape(m: 31, k: 300, n: 41), GEMMShape(m: 203, k: 130, n: 16), GEMMShape(m: 7, k: 20, n: 8),
                      GEMMShape(m: 30, k: 50, n: 64), GEMMShape(m: 36, k: 40, n: 32), GEMMShape(m: 240, k: 50, n: 16),
                      GEMMShape(m: 32, k: 20, n: 24)] {
            let a = operands(shape.m * shape.k, seed: 31).map(BFloat16.round), b = operands(shape.k * shape.n, seed: 32)
            let expected = scalarReference(a, b, shape, fold: 128, bf16: true)
            var at = [Float](repeating: 0, count: a.count), bt = [Float](repeating: 0, count: b.count)
            for m in 0..<shape.m { for k in 0..<shape.k { at[k * shape.m + m] = a[m * shape.k + k] } }
            for k in 0..<shape.k { for n in 0..<shape.n { bt[n * shape.k + k] = b[k * shape.n + n] } }
            for threads in [1, 2] {
                let mxu = MXU(config: .tpuV3, threads: threads).using(family)
                for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
                    var c = [Float](repeating: .nan, count: shape.m * shape.n)
                    a.withUnsafeBufferPointer { pa in at.withUnsafeBufferPointer { pat in
                    b.withUnsafeBufferPointer { pb in bt.withUnsafeBufferPointer { pbt in c.withUnsafeMutableBufferPointer { pc in
                        // A transposed A flagged as rounded (with two threads) is copied, not rounded.
                        let va = transposeA ? MatrixView(pat.baseAddress!, rowStride: 1, columnStride: shape.m, isRounded: threads == 2)
                                            : MatrixView(pa.baseAddress!, rowStride: shape.k, isRounded: true)
                        let vb = transposeB ? MatrixView(pbt.baseAddress!, rowStride: 1, columnStride: shape.k)
                                            : MatrixView(pb.baseAddress!, rowStride: shape.n)
                        mxu.multiply(va, vb, into: pc.baseAddress!, shape: shape)
                    } } } } }
                    #expect(differing(c, expected) == 0, "\(family) \(shape) threads=\(threads) tA=\(transposeA) tB=\(transposeB)")
                }
            }
        }
    }

    @Test func rejectsOperandsOfTheWrongSize() {
        #expect(throws: HardwareError.self) { try MXU(config: .tiny).multiply([1, 2], [1], shape: GEMMShape(m: 1, k: 2, n: 1)) }
    }
}

@Suite struct ReferenceArrayTests {
    static let shapes = [GEMMShape(m: 5, k: 3, n: 2), GEMMShape(m: 13, k: 21, n: 19), GEMMShape(m: 8, k: 16, n: 8),
                         GEMMShape(m: 20, k: 9, n: 17), GEMMShape(m: 1, k: 30, n: 3)]

    /// The register-level array and the fast functional MXU agree bit for bit, and the array's
    /// cycle count is the schedule's, for every dataflow, both timing modes, one and two MXUs,
    /// and shapes that are not multiples of the array.
    @Test(arguments: Dataflow.allCases, TimingMode.allCases)
    func agreesWithFunctionalMXUAndTimingModel(dataflow: Dataflow, mode: TimingMode) throws {
        for mxus in [1, 2] {
            let chip = ChipConfig(name: "t", rows: 8, columns: 6, mxuCount: mxus, dataflow: dataflow)
            for (i, shape) in Self.shapes.enumerated() {
                let a = operands(shape.m * shape.k, seed: UInt64(7 * i)), b = operands(shape.k * shape.n, seed: UInt64(7 * i + 1))
                let schedule = try Schedule(shape: shape, config: chip, mode: mode)
                for precision in OperandPrecision.allCases {
                    let array = try ReferenceArray(schedule: schedule, precision: precision).run(a: a, b: b)
                    let fast = try MXU(config: chip, precision: precision).multiply(a, b, shape: shape)
                    #expect(differing(array.output, fast) == 0, "\(shape) \(precision) mxus=\(mxus)")
                    #expect(array.cycles == schedule.cycles, "\(shape) mxus=\(mxus)")
                }
            }
        }
    }

    @Test func nonFiniteValuesPropagateIdentically() throws {
        let shape = GEMMShape(m: 6, k: 11, n: 5)
        var a = operands(66, seed: 5)
        let b = operands(55, seed: 6)
        a[7] = .infinity; a[20] = .nan; a[40] = 3e38
        for df in Dataflow.allCases {
            let chip = ChipConfig(name: "t", rows: 4, columns: 4, dataflow: df)
            let array = try ReferenceArray(schedule: Schedule(shape: shape, config: chip)).run(a: a, b: b)
            let fast = try MXU(config: chip).multiply(a, b, shape: shape)
            #expect(zip(array.output, fast).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
        }
    }
}
