import CHostMemory
import Dispatch
import Foundation
import Synchronization

/// Operand precision of the functional MXU, as traces record it (the raw values are part of
/// the trace format). Each names a ``NumberFormat`` (``format``), which is what the MXU, the
/// register-level array and the hardware faults use.
public enum OperandPrecision: String, Sendable, CaseIterable, Codable {
    /// The TPU's: both operands rounded to bfloat16 (``BFloat16Format``), products exact in
    /// fp32, fp32 accumulation.
    case bfloat16
    /// For comparison with fp32 frameworks: operands used as they are (``Float32Format``),
    /// each term one fused multiply-add in fp32.
    case float32
}

/// A read-only strided view of a row-major or transposed matrix: element `(i, j)` is at
/// `base[i * rowStride + j * columnStride]`. Transposes cost nothing: swap the strides.
public struct MatrixView: @unchecked Sendable {
    public let base: UnsafePointer<Float>
    public let rowStride: Int
    public let columnStride: Int
    /// The caller promises every value is already rounded to the MXU's operand format
    /// (rounding is idempotent, so this only saves work): a row-major A is then read in place.
    public let isRounded: Bool

    public init(_ base: UnsafePointer<Float>, rowStride: Int, columnStride: Int = 1, isRounded: Bool = false) {
        self.base = base
        self.rowStride = rowStride
        self.columnStride = columnStride
        self.isRounded = isRounded
    }

}

/// A matrix operand whose rows are assembled as the MXU reads them, e.g. an implicit
/// im2col lowering that gathers each row from the tensor it lowers instead of storing the
/// lowered matrix first. The values are already in the MXU's operand format (the caller
/// rounds the source once). Rows are gathered concurrently by the MXU's workers.
public protocol GatheredOperand: Sendable {
    /// Writes terms `k0 ..< k0 + count` of rows `rows` to `dst`, row `rows.lowerBound + i`
    /// at `dst + i * stride`.
    func gather(rows: Range<Int>, k0: Int, count: Int, into dst: UnsafeMutablePointer<Float>, stride: Int)
}

/// The fast functional model of the MXUs: `C = A x B` with TPU numerics, in exactly the
/// accumulation order of the operation's ``Schedule`` (see there): fold sums of `rows`
/// terms (ws/is) or one running sum over all of K (os), each term a fused multiply-add.
///
/// The result does not depend on the thread count, the SIMD width or the cache blocking:
/// every output element is produced by one thread, in the fixed order above. With
/// bf16-rounded operands every product is exact, so the fused and an unfused multiply-add
/// would agree too.
///
/// Operands are rounded to ``format`` as they are packed: inline for the built-in formats
/// (see ``RoundingKind``), through the format's bulk ``NumberFormat/round(_:into:count:)``
/// for any other.
public struct MXU: Sendable {
    /// Terms per accumulation fold; nil accumulates the whole of K in one running sum.
    public let foldLength: Int?
    /// The operands' number format.
    public let format: any NumberFormat
    public let threads: Int
    /// `format.roundingKind`, read once: the packing loops switch on it.
    private let rounding: RoundingKind
    /// The micro-kernels used (speed only: every family gives the same bits).
    let kernels: KernelFamily
    /// Largest block of A rounded in one pass, in values, instead of ``Blocking``'s (speed
    /// only; tests make it small so that short products are cut into several spans of K).
    let aBlockFloats: Int?
    /// Packed B, in values, above which the 8-lane kernels prefetch its panels, instead of
    /// ``Blocking/prefetchBFloats`` (speed only; tests make it 0 to run that path everywhere).
    let prefetchBFloats: Int?

    /// The MXU of `config` (folds of `rows` terms under ws/is) with operands of `precision`.
    public init(config: ChipConfig, precision: OperandPrecision = .bfloat16, threads: Int = 1) {
        self.init(config: config, format: precision.format, threads: threads)
    }

    /// The MXU of `config` (folds of `rows` terms under ws/is) with operands of `format`.
    public init(config: ChipConfig, format: any NumberFormat, threads: Int = 1) {
        self.init(foldLength: config.dataflow.foldsReduction ? config.rows : nil,
                  format: format, threads: threads)
    }

    /// An MXU accumulating in folds of `foldLength` terms (nil: one running sum), operands of
    /// `precision`.
    public init(foldLength: Int?, precision: OperandPrecision = .bfloat16, threads: Int = 1) {
        self.init(foldLength: foldLength, format: precision.format, threads: threads)
    }

    /// An MXU accumulating in folds of `foldLength` terms (nil: one running sum), operands of
    /// `format`.
    public init(foldLength: Int?, format: any NumberFormat, threads: Int = 1) {
        precondition(foldLength.map { $0 > 0 } ?? true, "fold length must be positive")
        self.init(foldLength: foldLength, format: format, rounding: format.roundingKind, threads: max(1, threads), kernels: .target,
                  aBlockFloats: nil, prefetchBFloats: nil)
    }

    /// This MXU with the micro-kernels of `family` (tests run every family on any host).
    func using(_ family: KernelFamily) -> MXU {
        MXU(foldLength: foldLength, format: format, rounding: rounding, threads: threads, kernels: family, aBlockFloats: aBlockFloats,
            prefetchBFloats: prefetchBFloats)
    }

    /// This MXU rounding A in blocks of at most `floats` values (at least one block of K).
    func roundingA(inBlocksOf floats: Int) -> MXU {
        MXU(foldLength: foldLength, format: format, rounding: rounding, threads: threads, kernels: kernels, aBlockFloats: floats,
            prefetchBFloats: prefetchBFloats)
    }

    /// This MXU prefetching packed B of more than `floats` values (8-lane kernels only).
    func prefetchingB(above floats: Int) -> MXU {
        MXU(foldLength: foldLength, format: format, rounding: rounding, threads: threads, kernels: kernels, aBlockFloats: aBlockFloats,
            prefetchBFloats: floats)
    }

    private init(foldLength: Int?, format: any NumberFormat, rounding: RoundingKind, threads: Int, kernels: KernelFamily,
                 aBlockFloats: Int?, prefetchBFloats: Int?) {
        self.foldLength = foldLength
        self.format = format
        self.rounding = rounding
        self.threads = threads
        self.kernels = kernels
        self.aBlockFloats = aBlockFloats
        self.prefetchBFloats = prefetchBFloats
    }

    /// The micro-kernels this build uses, for benchmark output (speed only: every family
    /// gives the same bits).
    public static var kernelsDescription: String { KernelFamily.target.description }

    /// The operand precision as traces record it; nil for a format that is not a built-in
    /// one (e.g. a test's), which no trace can record.
    public var precision: OperandPrecision? { OperandPrecision(format: format) }

    /// `C[M x N] = A[M x K] x B[K x N]` on arrays (row-major, contiguous).
    public func multiply(_ a: [Float], _ b: [Float], shape: GEMMShape) throws(HardwareError) -> [Float] {
        try shape.validate()
        guard a.count == shape.m * shape.k, b.count == shape.k * shape.n else {
            throw .invalidShape("operands hold \(a.count) and \(b.count) values; \(shape) needs \(shape.m * shape.k) and \(shape.k * shape.n)")
        }
        // `multiply(_:_:into:shape:)` writes every element; no need to zero them first.
        return [Float](unsafeUninitializedCapacity: shape.m * shape.n) { pc, count in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    multiply(MatrixView(pa.baseAddress!, rowStride: shape.k),
                             MatrixView(pb.baseAddress!, rowStride: shape.n),
                             into: pc.baseAddress!, shape: shape)
                }
            }
            count = shape.m * shape.n
        }
    }

    /// `C = A x B` on strided views; `c` is row-major M x N with leading dimension N and is
    /// overwritten.
    ///
    /// With `kept`, A's columns and B's rows are the kept terms of a longer product whose
    /// other terms are all exact zeros (`shape.k == kept.count`): the same bits as that
    /// product, in a fraction of the work. Each fold of the longer product sums its kept terms
    /// from +0 and is then added to C, as the full product does; a fold that keeps none is left
    /// out. That changes nothing: a running sum from +0 is never -0, and adding +0 or -0 to a
    /// value other than -0 leaves it as it is. The caller vouches that every term left out is
    /// an exact zero: a zero operand value times a value that is finite once rounded to
    /// ``format`` (0 x inf is NaN).
    public func multiply(_ a: MatrixView, _ b: MatrixView, into c: UnsafeMutablePointer<Float>, shape: GEMMShape, kept: KeptTerms? = nil) {
        multiply(.view(a), b, into: c, shape: shape, plan: plan(kept, k: shape.k))
    }

    /// ``multiply(_:_:into:shape:kept:)`` with A's rows (the kept terms only, with `kept`)
    /// gathered as they are read, already rounded. The same bits as the product of the stored
    /// matrix: only where A's values come from differs.
    public func multiply(gathered a: some GatheredOperand, _ b: MatrixView, into c: UnsafeMutablePointer<Float>, shape: GEMMShape,
                         kept: KeptTerms? = nil) {
        multiply(.gathered(a), b, into: c, shape: shape, plan: plan(kept, k: shape.k))
    }

    /// The blocks of K: whole folds over all of K for a full product (one running sum is the
    /// same as a single fold; folds only matter when K exceeds one), and for `kept` terms
    /// the longer product's folds, each summing its kept terms, unless none is left out.
    private func plan(_ kept: KeptTerms?, k: Int) -> KPlan {
        precondition(kept.map { $0.count == k && $0.foldLength == foldLength } ?? true, "the kept terms are not this product's")
        guard let kept, !kept.leavesOutNone else { return .uniform(fold: foldLength.flatMap { $0 < k ? $0 : nil }, k: k) }
        // One running sum, or one fold: the kept terms summed as one product of K terms.
        return foldLength == nil || kept.foldLengths.count <= 1 ? .uniform(fold: nil, k: k) : .folds(kept.foldLengths)
    }

    /// Where the kernels' A comes from.
    private enum AOperand {
        case view(MatrixView)
        case gathered(any GatheredOperand)
    }

    /// The product with K cut into blocks as `plan` says.
    private func multiply(_ a: AOperand, _ b: MatrixView, into c: UnsafeMutablePointer<Float>, shape: GEMMShape, plan: KPlan) {
        let (M, K, N) = (shape.m, shape.k, shape.n)
        guard M > 0, N > 0 else { return }
        guard K > 0 else { c.update(repeating: 0, count: M * N); return }
        // The kernel that computes the fewest values of C padded to whole tiles, give or take
        // 5 % (so that a long product keeps the earlier kernel, whose taller or wider tile
        // loads fewer values per multiply-add, over a few rows of padding saved).
        let padded = { (mr: Int, nr: Int) in ceilDiv(M, mr) * mr * ceilDiv(N, nr) * nr }
        func best(_ kernels: [any MicroKernel.Type]) -> ObjectIdentifier {
            var least = Int.max
            for k in kernels { least = min(least, padded(k.mr, k.nr)) }
            return ObjectIdentifier(kernels.first { padded($0.mr, $0.nr) * 20 <= least * 21 } ?? kernels[0])
        }
        // Each kernel's own case, so that the product is specialised for its tile.
        func run<Kern: MicroKernel>(_ kernel: Kern.Type) { multiply(kernel, a, b, c, M: M, K: K, N: N, plan: plan) }
        switch best(kernels.kernels) {
        case ObjectIdentifier(Kernel6x64.self): run(Kernel6x64.self)
        case ObjectIdentifier(Kernel24x16.self): run(Kernel24x16.self)
        case ObjectIdentifier(Kernel12x16.self): run(Kernel12x16.self)
        case ObjectIdentifier(Kernel6x16.self): run(Kernel6x16.self)
        case ObjectIdentifier(Kernel4x24.self): run(Kernel4x24.self)
        case ObjectIdentifier(Kernel12x8.self): run(Kernel12x8.self)
        default: preconditionFailure("a micro-kernel without a case here")
        }
    }

    /// The blocked product with micro-kernel `Kern`.
    ///
    /// B is rounded and packed once per call, into `nr`-column panels over all of K that every
    /// thread shares. Then C is computed in blocks of at most `mc` rows (whole `mr`-row tiles),
    /// each by one thread: it rounds a span of A's block into a row-major
    /// buffer (as many whole blocks of K as fit ``Blocking/aBlockFloats``, or
    /// ``Blocking/aRowsFloats`` for a row-major A), then for every block of K in the span
    /// (`plan`) and every B panel runs the kernel down the block's tiles, the B panel staying
    /// in cache while A's tiles stream past it.
    ///
    /// Threads claim the parts of B to pack and then the blocks of C as they come
    /// (``ClaimedWork``) instead of being dealt equal shares: the calling thread starts at once
    /// and a helper that wakes late takes what is left, rather than the call waiting for it
    /// twice. Which thread computes a block changes nothing in its bits.
    private func multiply<Kern: MicroKernel>(_: Kern.Type, _ operand: AOperand, _ b: MatrixView,
                                             _ c: UnsafeMutablePointer<Float>, M: Int, K: Int, N: Int, plan: KPlan) {
        let mr = Kern.mr, nr = Kern.nr
        let mc = max(mr, Blocking.mc / mr * mr)
        let panels = ceilDiv(N, nr), tiles = ceilDiv(M, mr)
        let workers = min(threads, tiles)
        // Blocks of C of `mc` rows; with several threads smaller where M is short, so that
        // each thread gets about four and they end together (one thread walks whole blocks:
        // a shorter one streams all of B's panels again for fewer rows).
        let blockRows = workers == 1 ? mc : min(mc, ceilDiv(tiles, 4 * workers) * mr)
        // A transposed A (rows contiguous) packs into k-major micro-panels, no transpose needed.
        // A gathered A is packed like a row-major one, row by row as the operand assembles it.
        // A row-major A that needs rounding is packed row by row.
        let readsAInPlace: Bool, panelA: Bool, packsRowMajorA: Bool
        switch operand {
        case .view(let a):
            let rowMajor = a.columnStride == 1
            readsAInPlace = rowMajor && (rounding == .identity || a.isRounded)
            panelA = !rowMajor && a.rowStride == 1
            packsRowMajorA = rowMajor && !readsAInPlace
        case .gathered:
            (readsAInPlace, panelA, packsRowMajorA) = (false, false, false)
        }
        // A's block is rounded a span of whole blocks of K at a time, spans of at most
        // `spanLimit` terms: all of K when the block fits the budget; else, for a row-major A
        // that needs rounding, as many blocks as fit (each row one long read), for any other
        // one block.
        let blocks = plan.blocks
        let budget = aBlockFloats ?? (packsRowMajorA ? Blocking.aRowsFloats : Blocking.aBlockFloats)
        let spanLimit = mc * K <= budget ? K : packsRowMajorA ? max(plan.longestBlock, budget / mc) : plan.longestBlock
        let lda = spanLimit + Blocking.rowPadding
        // Packed B, then (one thread) the thread's own space for A's block, the edge tile and
        // a transposed A's runs: one buffer, not two (thousands of small products a step).
        let bFloats = panels * nr * K, aFloats = mc * lda + mr * nr + Blocking.panelTerms * mc
        let bBuffer = PackBuffers.shared.take(workers == 1 ? bFloats + aFloats : bFloats)
        defer { PackBuffers.shared.give(bBuffer) }
        let bOut = SendablePointer(bBuffer.baseAddress!), cOut = SendablePointer(c)
        // Row-major B is packed in runs of rows (each read in order across all panels), a
        // transposed B panel by panel.
        let bRows = Blocking.bRowsPerPart
        // A B larger than `Blocking.prefetchBFloats` comes from memory each time a block of
        // rows reads it, and the block's first tile over a panel would read that panel's block
        // of K faster than memory delivers it; so each tile prefetches a share of the next one
        // (8-lane kernels only: the 16-lane ones measured slower with it).
        let prefetchB = kernels == .narrow && panels * nr * K > (prefetchBFloats ?? Blocking.prefetchBFloats)
        let work = ClaimedWork(first: b.columnStride == 1 ? ceilDiv(K, bRows) : panels, then: ceilDiv(M, blockRows))

        parallel(workers) { [self] _ in
            while let part = work.claimFirst() {
                if b.columnStride == 1 {
                    packB(b, rows: part * bRows ..< min(K, (part + 1) * bRows), nr: nr, k: K, n: N, into: bOut.pointer)
                } else {
                    packB(b, panel: part, nr: nr, k: K, n: N, into: bOut.pointer + part * nr * K)
                }
                work.finishFirst()
            }
            work.waitForFirst()
            let own = workers == 1 ? nil : PackBuffers.shared.take(aFloats)
            defer { if let own { PackBuffers.shared.give(own) } }
            let aBlock = own?.baseAddress ?? bOut.pointer + bFloats, edge = aBlock + mc * lda, columns = edge + mr * nr
            while let block = work.claimThen() {
                let rows = block * blockRows ..< min(M, (block + 1) * blockRows)
                var firstBlock = 0
                while firstBlock < blocks {
                    var end = firstBlock + 1
                    while end < blocks && plan.start(end + 1) - plan.start(firstBlock) <= spanLimit { end += 1 }
                    let span = firstBlock ..< end
                    firstBlock = end
                    let span0 = plan.start(span.lowerBound), spanLen = plan.start(span.upperBound) - span0
                    // A row-major A that needs no rounding is read where it lies, unless the
                    // block ends in a partial tile (the kernel reads whole tiles).
                    let inPlace = readsAInPlace && rows.count % mr == 0
                    var (aRows, aStride) = (aBlock, lda)
                    switch operand {
                    case .view(let a) where inPlace:
                        (aRows, aStride) = (UnsafeMutablePointer(mutating: a.base + rows.lowerBound * a.rowStride + span0), a.rowStride)
                    case .view(let a) where panelA:
                        packAPanels(Kern.self, a, rows: rows, k0: span0, kLen: spanLen, into: aBlock, columns: columns)
                    case .view(let a):
                        packA(a, rows: rows, mr: mr, k0: span0, kLen: spanLen, lda: lda, into: aBlock)
                    case .gathered(let a):
                        a.gather(rows: rows, k0: span0, count: spanLen, into: aBlock, stride: lda)
                        zeroPadding(rows: rows.count, mr: mr, kLen: spanLen, lda: lda, of: aBlock)
                    }
                    for block in span {
                        let k0 = plan.start(block), kLen = plan.start(block + 1) - k0, fold = plan.fold(block)
                        for p in 0..<panels {
                            let bPanel = UnsafePointer(bOut.pointer + p * nr * K + k0 * nr)
                            let nValid = min(nr, N - p * nr)
                            // What this panel's tiles prefetch: the next panel's block of K, or
                            // the next block's first panel.
                            var ahead: UnsafePointer<Float>?, aheadCount = 0, aheadPerTile = 0
                            if prefetchB {
                                let (aheadPanel, aheadBlock) = p + 1 < panels ? (p + 1, block) : (0, block + 1)
                                if aheadBlock < plan.blocks {
                                    let start = plan.start(aheadBlock)
                                    ahead = UnsafePointer(bOut.pointer + aheadPanel * nr * K + start * nr)
                                    aheadCount = (plan.start(aheadBlock + 1) - start) * nr
                                    aheadPerTile = ceilDiv(aheadCount, ceilDiv(rows.count, mr))
                                }
                            }
                            var ir = 0
                            while ir < rows.count {
                                if let ahead {
                                    let from = min(aheadCount, ir / mr * aheadPerTile)
                                    prefetch(ahead + from, count: min(aheadPerTile, aheadCount - from))
                                }
                                let aTile = panelA ? UnsafePointer(aBlock + ir * spanLen + (k0 - span0) * mr)
                                                   : UnsafePointer(aRows + ir * aStride + (k0 - span0))
                                let mValid = min(mr, rows.count - ir)
                                let cTile = cOut.pointer + (rows.lowerBound + ir) * N + p * nr
                                // The first block of K writes C rather than adding to it.
                                // Edge tile: run the same kernel on a full-size copy.
                                let full = mValid == mr && nValid == nr
                                let (cRun, ldc) = full ? (cTile, N) : (edge, nr)
                                if !full && k0 > 0 {
                                    for i in 0..<mValid { (edge + i * nr).update(from: cTile + i * N, count: nValid) }
                                }
                                if panelA {
                                    Kern.runPanel(kLen: kLen, fold: fold, overwrite: k0 == 0,
                                                  a: aTile, b: bPanel, c: cRun, ldc: ldc)
                                } else {
                                    Kern.run(kLen: kLen, fold: fold, overwrite: k0 == 0,
                                             a: aTile, lda: aStride, b: bPanel, c: cRun, ldc: ldc)
                                }
                                if !full {
                                    for i in 0..<mValid { (cTile + i * N).update(from: edge + i * nr, count: nValid) }
                                }
                                ir += mr
                            }
                        }
                    }
                }
            }
        }
    }

    /// Prefetches the cache lines of `count` values from `values` (speed only).
    @inline(__always)
    private func prefetch(_ values: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i < count {
            tpufi_prefetch(values + i)
            i += 16
        }
    }

    /// Runs `body` for workers `0..<workers`, on the calling thread when there is one.
    private func parallel(_ workers: Int, _ body: @Sendable (Int) -> Void) {
        if workers == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: body) }
    }

    /// `count` contiguous values rounded to the operand format (`out` does not alias `src`).
    @inline(__always)
    private func round(_ src: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        switch rounding {
        case .identity: out.update(from: src, count: count)
        case .bfloat16: BFloat16.round(src, into: out, count: count)
        case .general: format.round(src, into: out, count: count)
        }
    }

    /// Whether every one of `values` is finite once rounded to the operand format (bfloat16
    /// rounds the largest fp32 values up to infinity): then a zero times any of them is an
    /// exact zero.
    public func allFiniteOnceRounded(_ values: UnsafeBufferPointer<Float>) -> Bool {
        guard let base = values.baseAddress else { return true }
        // The smallest magnitude (fp32 bits without the sign) that is not finite once rounded.
        let limit: Int32
        switch rounding {
        case .identity: limit = 0x7F80_0000
        case .bfloat16: limit = 0x7F7F_8000
        case .general: return values.allSatisfy { format.round($0).isFinite }
        }
        // Branch-free: a lane's sign bit is set where its magnitude reaches the limit.
        var over = SIMD16<Int32>(), i = 0
        while i + 16 <= values.count {
            let bits = unsafeBitCast(UnsafeRawPointer(base + i).loadUnaligned(as: SIMD16<Float>.self), to: SIMD16<Int32>.self)
            over |= (limit &- 1) &- (bits & 0x7FFF_FFFF)
            i += 16
        }
        var any: Int32 = 0
        for lane in 0..<16 { any |= over[lane] }
        while i < values.count {
            any |= (limit &- 1) &- (Int32(bitPattern: base[i].bitPattern) & 0x7FFF_FFFF)
            i += 1
        }
        return any >= 0
    }

    /// One value rounded to the operand format.
    @inline(__always)
    private func round(_ x: Float) -> Float {
        switch rounding {
        case .identity: return x
        case .bfloat16: return BFloat16.round(x)
        case .general: return format.round(x)
        }
    }

    /// Rounds rows `rows` x terms `k0 ..< k0 + kLen` of A to the operand format into a
    /// row-major block with leading dimension `lda`, zero rows padding it to whole `mr` tiles.
    private func packA(_ a: MatrixView, rows: Range<Int>, mr: Int, k0: Int, kLen: Int, lda: Int,
                       into dst: UnsafeMutablePointer<Float>) {
        let (rs, cs) = (a.rowStride, a.columnStride)
        let first = a.base + rows.lowerBound * rs + k0 * cs
        if cs == 1 {
            for i in 0..<rows.count {
                round(first + i * rs, into: dst + i * lda, count: kLen)
            }
        } else {
            // Strided rows (a transposed view): k outermost, so a column-major A is read in order,
            // 16 rows at a time where they are contiguous (built-in formats; any other value by value).
            for kk in 0..<kLen {
                let src = first + kk * cs, out = dst + kk
                var i = 0
                if rs == 1 && rounding != .general {
                    while i + 16 <= rows.count {
                        var v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
                        if rounding == .bfloat16 { v = BFloat16.round(v) }
                        for l in 0..<16 { out[(i + l) * lda] = v[l] }
                        i += 16
                    }
                }
                while i < rows.count {
                    out[i * lda] = round(src[i * rs])
                    i += 1
                }
            }
        }
        zeroPadding(rows: rows.count, mr: mr, kLen: kLen, lda: lda, of: dst)
    }

    /// Zeroes the rows after the first `rows` of a row-major block (leading dimension `lda`,
    /// `kLen` terms a row) up to whole `mr`-row tiles: the kernels read whole tiles.
    private func zeroPadding(rows: Int, mr: Int, kLen: Int, lda: Int, of block: UnsafeMutablePointer<Float>) {
        for i in rows ..< ceilDiv(rows, mr) * mr { (block + i * lda).update(repeating: 0, count: kLen) }
    }

    /// Rounds rows `rows` x terms `k0 ..< k0 + kLen` of an A whose rows are contiguous (row
    /// stride 1: a transposed view) into k-major micro-panels of `mr` rows (tile `t` at
    /// `dst + t * mr * kLen`, element `(i, k)` of a tile at `[k * mr + i]`), zero rows padding
    /// the last tile. Each term's rows are one contiguous run in the source, rounded in bulk
    /// into `columns` (room for ``Blocking/panelTerms`` runs of the block's rows), then copied
    /// `mr` at a time: no transpose. A group of terms at a time, so that each tile's panel is
    /// written in runs of several cache lines. Term by term, every tile's write was 24 bytes
    /// into a line of its own, the tiles' lines `mr * kLen` values apart and so in the same few
    /// L1 sets: packing a transposed A took 7-10 % of a `haswell` `transformer` step, most of
    /// it in those writes (paired steps 0.94x with the groups).
    private func packAPanels<Kern: MicroKernel>(_: Kern.Type, _ a: MatrixView, rows: Range<Int>, k0: Int, kLen: Int,
                                                into dst: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Float>) {
        let mr = Kern.mr
        let tiles = ceilDiv(rows.count, mr), height = tiles * mr
        for c in 0..<Blocking.panelTerms { (columns + c * height + rows.count).update(repeating: 0, count: height - rows.count) }
        var kk0 = 0
        while kk0 < kLen {
            let terms = min(Blocking.panelTerms, kLen - kk0)
            for c in 0..<terms {
                let src = a.base + rows.lowerBound + (k0 + kk0 + c) * a.columnStride, column = columns + c * height
                if a.isRounded { column.update(from: src, count: rows.count) } else { round(src, into: column, count: rows.count) }
            }
            for t in 0..<tiles {
                var out = dst + t * mr * kLen + kk0 * mr, from = columns + t * mr
                for _ in 0..<terms {
                    copyTileRows(Kern.self, from, to: out)
                    out += mr
                    from += height
                }
            }
            kk0 += terms
        }
    }

    /// Copies `Kern.mr` values, in vectors of 8 and 4 where they fit (`mr` is a constant
    /// here; a copy loop with a run-time count, one per tile and term, cost about 2 % of a
    /// `transformer` step).
    @inline(__always)
    private func copyTileRows<Kern: MicroKernel>(_: Kern.Type, _ from: UnsafePointer<Float>, to out: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= Kern.mr {
            UnsafeMutableRawPointer(out + i).storeBytes(of: UnsafeRawPointer(from + i).loadUnaligned(as: SIMD8<Float>.self),
                                                        as: SIMD8<Float>.self)
            i += 8
        }
        if i + 4 <= Kern.mr {
            UnsafeMutableRawPointer(out + i).storeBytes(of: UnsafeRawPointer(from + i).loadUnaligned(as: SIMD4<Float>.self),
                                                        as: SIMD4<Float>.self)
            i += 4
        }
        while i < Kern.mr {
            out[i] = from[i]
            i += 1
        }
    }

    /// Packs rows `rows` of a B with unit column stride into every `nr`-column panel (panel
    /// `p` at `dst + p * nr * k`, k-major: `[kk * nr + j]`), zero-padded past N, rounded to the
    /// operand format. Row by row, so that B is read in order.
    private func packB(_ b: MatrixView, rows: Range<Int>, nr: Int, k: Int, n: Int, into dst: UnsafeMutablePointer<Float>) {
        for kk in rows {
            let src = b.base + kk * b.rowStride
            var j0 = 0
            while j0 < n {
                let nValid = min(nr, n - j0)
                let out = dst + j0 * k + kk * nr
                round(src + j0, into: out, count: nValid)
                (out + nValid).update(repeating: 0, count: nr - nValid)
                j0 += nr
            }
        }
    }

    /// Packs columns `panel * nr ..< panel * nr + nr` of a transposed B (column stride other
    /// than 1), all K rows, k-major (`dst[k * nr + j]`), zero-padded past N, rounded to the
    /// operand format.
    private func packB(_ b: MatrixView, panel: Int, nr: Int, k: Int, n: Int, into dst: UnsafeMutablePointer<Float>) {
        let (rs, cs) = (b.rowStride, b.columnStride)
        let first = b.base + panel * nr * cs
        let nValid = min(nr, n - panel * nr)
        // Column by column, so a column-major B is read in order, 16 terms at a time where they
        // are contiguous (built-in formats; any other value by value).
        for j in 0..<nr {
            let src = first + j * cs, out = dst + j
            guard j < nValid else {
                for kk in 0..<k { out[kk * nr] = 0 }
                continue
            }
            var kk = 0
            if rs == 1 && rounding != .general {
                while kk + 16 <= k {
                    var v = UnsafeRawPointer(src + kk).loadUnaligned(as: SIMD16<Float>.self)
                    if rounding == .bfloat16 { v = BFloat16.round(v) }
                    for l in 0..<16 { out[(kk + l) * nr] = v[l] }
                    kk += 16
                }
            }
            while kk < k {
                out[kk * nr] = round(src[kk * rs])
                kk += 1
            }
        }
    }
}

/// The two families of micro-kernels (see ``MicroKernel``), sized for the vector registers
/// of the build's target.
enum KernelFamily: Sendable, CaseIterable {
    /// The family's kernels in order of preference (``MXU``'s choice takes the first of
    /// those that pad C the least).
    var kernels: [any MicroKernel.Type] {
        switch self {
        case .wide: Self.wideKernels
        case .narrow: Self.narrowKernels
        }
    }
    private static let wideKernels: [any MicroKernel.Type] = [Kernel6x64.self, Kernel24x16.self, Kernel12x16.self]
    private static let narrowKernels: [any MicroKernel.Type] = [Kernel6x16.self, Kernel4x24.self, Kernel12x8.self]

    /// 16-lane vectors for AVX-512's 32 registers.
    case wide
    /// 8-lane vectors for AVX2's 16 registers (and any other target: with 16-lane vectors
    /// the accumulators would not fit in 16 registers, nor in NEON's 32 of 4 lanes).
    case narrow

    /// What benchmarks print about the family the build uses.
    var description: String {
        switch self {
        case .wide: return "16-lane micro-kernels (AVX-512 build)"
        case .narrow: return "8-lane micro-kernels"
        }
    }

    /// The family of the build's target: `TPUFI_AVX512` is defined by Package.swift when the
    /// target CPU has AVX-512.
    static var target: KernelFamily {
        #if TPUFI_AVX512
        return .wide
        #else
        return .narrow
        #endif
    }
}

/// Cache blocking of the functional MXU (affects speed only, never results). Tuned on a
/// 2-core AVX-512 machine (32 KiB L1d, 1 MiB L2 per core), where `kc` from 128 to 512 and
/// `mc` from 48 to 96 measured the same within noise.
enum Blocking {
    /// Terms of K per kernel call (rounded to whole folds).
    static let kc = 256
    /// Rows of C per block of A.
    static let mc = 96
    /// Largest block of A (`mc` rows x span of K), in values, rounded in one pass: a quarter
    /// of L2.
    static let aBlockFloats = 65536
    /// The same for a row-major A that is rounded as it is packed (2 MB), whose rows are then
    /// read as one stream per span. A quarter of L2 measured 3-9 % slower on products with K
    /// of 2304 and 4608 (both builds): their rows were read in pieces of one block of K, 1 KB
    /// each, from rows 9-18 KB apart. The block outgrows L2, but each block of K of it is read
    /// back once per B panel, the first time from L3. A transposed or gathered A is read in
    /// order either way, and an A read in place is not copied.
    static let aRowsFloats = 1 << 19
    /// Padding of each packed row of A (one cache line), so that the rows a kernel reads do
    /// not all fall into the same cache sets when K is a power of two.
    static let rowPadding = 16
    /// Rows of a row-major B per part that one thread claims to pack.
    static let bRowsPerPart = 64
    /// Terms of a transposed A rounded together before they are copied into the tiles'
    /// micro-panels (each tile's panel is then written `panelTerms * mr` values at a time).
    static let panelTerms = 16
    /// Packed B, in values, above which the 8-lane kernels prefetch its panels (8 MB, a
    /// quarter of a 32 MB L3 that A's stream and the other cores share). Paired one-thread
    /// runs (`haswell` build, Zen 4): 2048 x 4608 x 512 (9.4 MB of B) 1.10x, 1.12x on two
    /// threads; with B of 4.7 MB (2048 x 2304 x 512) 0.98x and of 2.4 MB (8192 x 2304 x 256)
    /// 0.95x, where B stays in L3 and the hardware's own prefetch keeps up. The 16-lane
    /// kernels ran 0.89x with it on 2048 x 4608 x 512 (their panel's block of K, 64 KB, is
    /// twice L1).
    static let prefetchBFloats = 1 << 21
}

/// Two lists of work items, numbered from 0, that threads claim one item at a time (the
/// first list's before the second's): whichever thread asks next gets the next item. The
/// second list waits until every item of the first is finished (what the first packs, the
/// second reads), not until every thread has arrived, so a thread that starts late only
/// takes what is left. Not copyable: the threads borrow the one instance (no allocation
/// per product).
struct ClaimedWork: ~Copyable, Sendable {
    let first: Int, then: Int
    private let claimedFirst = Atomic<Int>(0), finishedFirst = Atomic<Int>(0), claimedThen = Atomic<Int>(0)

    init(first: Int, then: Int) {
        (self.first, self.then) = (first, then)
    }

    /// The next item of the first list, nil when all are claimed.
    func claimFirst() -> Int? {
        let i = claimedFirst.wrappingAdd(1, ordering: .relaxed).oldValue
        return i < first ? i : nil
    }

    /// Marks a claimed item of the first list finished: its writes are visible to every
    /// thread past ``waitForFirst()``.
    func finishFirst() {
        finishedFirst.wrappingAdd(1, ordering: .releasing)
    }

    /// Returns once every item of the first list is finished (claimed ones by other threads
    /// take moments).
    func waitForFirst() {
        while finishedFirst.load(ordering: .acquiring) < first { sched_yield() }
    }

    /// The next item of the second list, nil when all are claimed.
    func claimThen() -> Int? {
        let i = claimedThen.wrappingAdd(1, ordering: .relaxed).oldValue
        return i < then ? i : nil
    }
}

/// How ``MXU`` cuts K into blocks for its kernels: block `i` is terms
/// `start(i) ..< start(i + 1)`, summed in folds of `fold(i)` terms (0: one running sum
/// continuing from C). Allocates nothing for the uniform plan (small products are many).
struct KPlan {
    let k: Int
    /// Uniform plan: terms per block and the fold of every block.
    private let block: Int, uniformFold: Int
    /// Per-fold plan: where each block starts (and K last).
    private let starts: [Int]
    let blocks: Int
    let longestBlock: Int

    /// Blocks of ``Blocking/kc`` terms rounded to whole folds of `fold` (nil: one running sum).
    static func uniform(fold: Int?, k: Int) -> KPlan {
        let kc = fold.map { $0 * max(1, Blocking.kc / $0) } ?? Blocking.kc
        return KPlan(k: k, block: kc, uniformFold: fold ?? 0, starts: [], blocks: ceilDiv(k, kc), longestBlock: min(k, kc))
    }

    /// One block per fold, of the given lengths.
    static func folds(_ lengths: [Int]) -> KPlan {
        var starts = [0]
        for length in lengths { starts.append(starts[starts.count - 1] + length) }
        return KPlan(k: starts[starts.count - 1], block: 0, uniformFold: 0, starts: starts, blocks: lengths.count,
                     longestBlock: lengths.max() ?? 0)
    }

    @inline(__always) func start(_ i: Int) -> Int { block > 0 ? min(k, i * block) : starts[i] }
    @inline(__always) func fold(_ i: Int) -> Int { block > 0 ? uniformFold : starts[i + 1] - starts[i] }
}

/// Packing buffers kept from one product to the next. Allocated afresh for every product,
/// buffers of a megabyte or so were mapped and unmapped by the C library each time, and the
/// page faults took a fifth of the time of a 512 x 512 x 512 product.
final class PackBuffers: @unchecked Sendable {
    static let shared = PackBuffers()
    /// Buffers kept at most; beyond that the smallest are freed.
    private static let limit = 8
    private let lock = NSLock()
    /// Only under `lock` (so the runtime's own exclusivity check, a cost per access, is off).
    @exclusivity(unchecked) private var kept: [UnsafeMutableBufferPointer<Float>] = []

    /// A buffer of at least `count` values: the smallest kept one that is large enough, else
    /// a new one. Hand it back with ``give(_:)``.
    func take(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        // The smallest that fits, by a plain loop (a filtered index array was an allocation
        // per product, and a transformer step runs thousands of small products).
        var best: Int?
        for i in kept.indices where kept[i].count >= count {
            if let b = best, kept[b].count <= kept[i].count { continue }
            best = i
        }
        if let best { return kept.remove(at: best) }
        return .allocate(capacity: count)
    }

    /// Keeps a buffer from ``take(_:)`` for reuse.
    func give(_ buffer: UnsafeMutableBufferPointer<Float>) {
        lock.lock()
        defer { lock.unlock() }
        kept.append(buffer)
        if kept.count > Self.limit {
            kept.remove(at: kept.indices.min { kept[$0].count < kept[$1].count }!).deallocate()
        }
    }
}

/// A raw pointer handed to worker threads that write disjoint parts of it.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}
