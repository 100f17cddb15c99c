import Dispatch

extension MXU {
    /// The rate of the build's main micro-kernel (the first of its family, ``KernelFamily``)
    /// on operands already packed and in cache, for benchmarks: the ceiling that a whole
    /// product's rate (packing, rounding, fold sums, memory) is measured against. A block of
    /// A as the products pack it (96 rows, 256 terms, in L2) runs against 32 B panels (in L2,
    /// each in L1 while the block's tiles pass it), folds of 128 terms, C rows 32 panels
    /// wide, for at least `seconds`. Only the rate is returned; the values are not checked
    /// (the MXU's tests check the kernels).
    public static func microKernelRate(seconds: Double) -> (tile: String, gflops: Double) {
        let kernel = KernelFamily.target.kernels[0]
        let (mr, nr, kLen, fold, panels) = (kernel.mr, kernel.nr, Blocking.kc, 128, 32)
        let tiles = max(1, Blocking.mc / mr), lda = kLen + Blocking.rowPadding, ldc = panels * nr
        // bf16-representable values that neither vanish nor overflow over many calls.
        let a = (0..<(tiles * mr * lda)).map { Float($0 % 7) * 0.125 }
        let b = (0..<(panels * kLen * nr)).map { Float($0 % 5) * 0.25 }
        var c = [Float](repeating: 0, count: tiles * mr * ldc)
        let start = DispatchTime.now().uptimeNanoseconds
        var calls = 0, elapsed = 0.0
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            guard let a = pa.baseAddress, let b = pb.baseAddress, let c = pc.baseAddress else { return }
            repeat {
                for p in 0..<panels {
                    for t in 0..<tiles {
                        kernel.run(kLen: kLen, fold: fold, overwrite: true, a: a + t * mr * lda, lda: lda,
                                   b: b + p * kLen * nr, c: c + t * mr * ldc + p * nr, ldc: ldc)
                    }
                }
                calls += panels * tiles
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            } while elapsed < seconds
        } } }
        return ("\(mr)x\(nr)", 2 * Double(calls * mr * nr * kLen) / elapsed / 1e9)
    }
}
