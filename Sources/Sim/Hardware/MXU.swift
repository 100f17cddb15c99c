import Dispatch

/// Operand precision of the functional MXU.
public enum OperandPrecision: String, Sendable, CaseIterable, Codable {
    /// The TPU's: both operands rounded to bfloat16 (``BFloat16``), products exact in fp32,
    /// fp32 accumulation.
    case bfloat16
    /// For comparison with fp32 frameworks: operands used as they are, each term one fused
    /// multiply-add in fp32.
    case float32
}

/// A read-only strided view of a row-major or transposed matrix: element `(i, j)` is at
/// `base[i * rowStride + j * columnStride]`. Transposes cost nothing: swap the strides.
public struct MatrixView: @unchecked Sendable {
    public let base: UnsafePointer<Float>
    public let rowStride: Int
    public let columnStride: Int

    public init(_ base: UnsafePointer<Float>, rowStride: Int, columnStride: Int = 1) {
        self.base = base
        self.rowStride = rowStride
        self.columnStride = columnStride
    }

    @inline(__always) func at(_ i: Int, _ j: Int) -> Float { base[i * rowStride + j * columnStride] }
}

/// The fast functional model of the MXUs: `C = A x B` with TPU numerics, in exactly the
/// accumulation order of the operation's ``Schedule`` (see there): fold sums of `rows`
/// terms (ws/is) or one running sum over all of K (os), each term a fused multiply-add.
///
/// The result does not depend on the thread count, the SIMD width or the cache blocking:
/// every output element is produced by one thread, in the fixed order above. With
/// bf16-rounded operands every product is exact, so the fused and an unfused multiply-add
/// would agree too.
public struct MXU: Sendable {
    /// Terms per accumulation fold; nil accumulates the whole of K in one running sum.
    public let foldLength: Int?
    public let precision: OperandPrecision
    public let threads: Int

    public init(config: ChipConfig, precision: OperandPrecision = .bfloat16, threads: Int = 1) {
        self.init(foldLength: config.dataflow.foldsReduction ? config.rows : nil,
                  precision: precision, threads: threads)
    }

    public init(foldLength: Int?, precision: OperandPrecision = .bfloat16, threads: Int = 1) {
        precondition(foldLength.map { $0 > 0 } ?? true, "fold length must be positive")
        self.foldLength = foldLength
        self.precision = precision
        self.threads = max(1, threads)
    }

    /// `C[M x N] = A[M x K] x B[K x N]` on arrays (row-major, contiguous).
    public func multiply(_ a: [Float], _ b: [Float], shape: GEMMShape) throws(HardwareError) -> [Float] {
        try shape.validate()
        guard a.count == shape.m * shape.k, b.count == shape.k * shape.n else {
            throw .invalidShape("operands hold \(a.count) and \(b.count) values; \(shape) needs \(shape.m * shape.k) and \(shape.k * shape.n)")
        }
        var c = [Float](repeating: 0, count: shape.m * shape.n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    multiply(MatrixView(pa.baseAddress!, rowStride: shape.k),
                             MatrixView(pb.baseAddress!, rowStride: shape.n),
                             into: pc.baseAddress!, shape: shape)
                }
            }
        }
        return c
    }

    /// `C = A x B` on strided views; `c` is row-major M x N with leading dimension N and is
    /// overwritten.
    public func multiply(_ a: MatrixView, _ b: MatrixView, into c: UnsafeMutablePointer<Float>, shape: GEMMShape) {
        let (M, K, N) = (shape.m, shape.k, shape.n)
        c.update(repeating: 0, count: M * N)
        guard M > 0, N > 0, K > 0 else { return }
        // One running sum is the same as a single fold; folds only matter when K exceeds one.
        let fold = foldLength.flatMap { $0 < K ? $0 : nil }
        let kc = fold.map { $0 * max(1, Blocking.kc / $0) } ?? Blocking.kc
        let mBlocks = ceilDiv(M, Blocking.mc), nBlocks = ceilDiv(N, Blocking.nc)
        let items = mBlocks * nBlocks
        let workers = min(threads, items)
        let out = SendablePointer(c)
        let job: @Sendable (Int) -> Void = { [self] worker in
            var scratch = PackBuffers(kc: kc)
            defer { scratch.deallocate() }
            var item = worker
            while item < items {
                let (mb, nb) = item.quotientAndRemainder(dividingBy: nBlocks)
                let rows = mb * Blocking.mc ..< min(M, (mb + 1) * Blocking.mc)
                let cols = nb * Blocking.nc ..< min(N, (nb + 1) * Blocking.nc)
                macroTile(a, b, out.pointer, ldc: N, rows: rows, cols: cols, k: K, kc: kc,
                          fold: fold ?? 0, scratch: &scratch)
                item += workers
            }
        }
        if workers == 1 { job(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: job) }
    }

    /// One M-block x N-block of C, over all of K in blocks of `kc` (whole folds).
    private func macroTile(_ a: MatrixView, _ b: MatrixView, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                           rows: Range<Int>, cols: Range<Int>, k: Int, kc: Int, fold: Int,
                           scratch: inout PackBuffers) {
        let mr = Kernel.mr, nr = Kernel.nr
        var k0 = 0
        while k0 < k {
            let kLen = min(kc, k - k0)
            packA(a, rows: rows, k0: k0, kLen: kLen, into: scratch.a)
            packB(b, cols: cols, k0: k0, kLen: kLen, into: scratch.b)
            var jr = 0
            while jr < cols.count {
                let bPanel = scratch.b + jr * kLen
                let nValid = min(nr, cols.count - jr)
                var ir = 0
                while ir < rows.count {
                    let aPanel = scratch.a + ir * kLen
                    let mValid = min(mr, rows.count - ir)
                    let cTile = c + (rows.lowerBound + ir) * ldc + cols.lowerBound + jr
                    if mValid == mr && nValid == nr {
                        Kernel.run(kLen: kLen, fold: fold, a: aPanel, b: bPanel, c: cTile, ldc: ldc)
                    } else {
                        // Edge tile: run the same kernel on a zero-padded copy.
                        let t = scratch.edge
                        t.update(repeating: 0, count: mr * nr)
                        for i in 0..<mValid { (t + i * nr).update(from: cTile + i * ldc, count: nValid) }
                        Kernel.run(kLen: kLen, fold: fold, a: aPanel, b: bPanel, c: t, ldc: nr)
                        for i in 0..<mValid { (cTile + i * ldc).update(from: t + i * nr, count: nValid) }
                    }
                    ir += mr
                }
                jr += nr
            }
            k0 += kLen
        }
    }

    /// Packs rows of A into `mr`-row panels, k-major (`panel[k * mr + i]`), zero-padded,
    /// rounded to the operand precision.
    private func packA(_ a: MatrixView, rows: Range<Int>, k0: Int, kLen: Int, into dst: UnsafeMutablePointer<Float>) {
        let mr = Kernel.mr
        let bf16 = precision == .bfloat16
        var ir = 0
        while ir < rows.count {
            let panel = dst + ir * kLen
            let mValid = min(mr, rows.count - ir)
            for i in 0..<mr {
                if i >= mValid {
                    for kk in 0..<kLen { panel[kk * mr + i] = 0 }
                    continue
                }
                let row = a.base + (rows.lowerBound + ir + i) * a.rowStride + k0 * a.columnStride
                let cs = a.columnStride
                var kk = 0
                if cs == 1 {
                    // Contiguous row: round 16 values at a time, then scatter into the panel.
                    while kk + 16 <= kLen {
                        var v = UnsafeRawPointer(row + kk).loadUnaligned(as: SIMD16<Float>.self)
                        if bf16 { v = BFloat16.round(v) }
                        let out = panel + kk * mr + i
                        for l in 0..<16 { out[l * mr] = v[l] }
                        kk += 16
                    }
                }
                if bf16 {
                    for kk in kk..<kLen { panel[kk * mr + i] = BFloat16.round(row[kk * cs]) }
                } else {
                    for kk in kk..<kLen { panel[kk * mr + i] = row[kk * cs] }
                }
            }
            ir += mr
        }
    }

    /// Packs columns of B into `nr`-column panels, k-major (`panel[k * nr + j]`),
    /// zero-padded, rounded to the operand precision.
    private func packB(_ b: MatrixView, cols: Range<Int>, k0: Int, kLen: Int, into dst: UnsafeMutablePointer<Float>) {
        let nr = Kernel.nr
        let bf16 = precision == .bfloat16
        var jr = 0
        while jr < cols.count {
            let panel = dst + jr * kLen
            let nValid = min(nr, cols.count - jr)
            for kk in 0..<kLen {
                let src = b.base + (k0 + kk) * b.rowStride + (cols.lowerBound + jr) * b.columnStride
                let out = panel + kk * nr
                if nValid == nr && b.columnStride == 1 {
                    var j = 0
                    while j < nr {
                        let v = UnsafeRawPointer(src + j).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(out + j).storeBytes(of: bf16 ? BFloat16.round(v) : v, as: SIMD16<Float>.self)
                        j += 16
                    }
                } else {
                    for j in 0..<nr {
                        let v = j < nValid ? src[j * b.columnStride] : 0
                        out[j] = bf16 ? BFloat16.round(v) : v
                    }
                }
            }
            jr += nr
        }
    }
}

/// Cache blocking of the functional MXU (affects speed only, never results).
import Foundation
enum Blocking {
    static let kc = Int(ProcessInfo.processInfo.environment["KC"] ?? "") ?? 256
    static let mc = Int(ProcessInfo.processInfo.environment["MC"] ?? "") ?? 96
    static let nc = Int(ProcessInfo.processInfo.environment["NC"] ?? "") ?? 512
}

/// Per-worker packing buffers.
struct PackBuffers {
    let a: UnsafeMutablePointer<Float>
    let b: UnsafeMutablePointer<Float>
    let edge: UnsafeMutablePointer<Float>

    init(kc: Int) {
        a = .allocate(capacity: kc * ceilDiv(Blocking.mc, Kernel.mr) * Kernel.mr)
        b = .allocate(capacity: kc * ceilDiv(Blocking.nc, Kernel.nr) * Kernel.nr)
        edge = .allocate(capacity: Kernel.mr * Kernel.nr)
    }

    func deallocate() {
        a.deallocate()
        b.deallocate()
        edge.deallocate()
    }
}

/// A raw pointer handed to worker threads that write disjoint parts of it.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}
