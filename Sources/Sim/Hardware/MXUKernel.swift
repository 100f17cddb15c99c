/// The register-blocked micro-kernel of the functional MXU: an `mr x nr` tile of C held in
/// vector registers while `k` runs over packed panels of A (`mr` values per k) and B (`nr`
/// values per k). Each lane accumulates its own output element with one fused multiply-add
/// per term, k ascending, so the order is the scalar loop's.
/// (8 rows x 32 columns, written out so that every
/// accumulator stays in a register.)
enum Kernel {
    static let mr = 8
    static let nr = 32

    /// `fold == 0`: C += A x B as one running sum continuing from C's values.
    /// `fold > 0`: for each fold of `fold` terms, a sum from +0, then C += that fold sum.
    @inline(never)
    static func run(kLen: Int, fold: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                    c: UnsafeMutablePointer<Float>, ldc: Int) {
        var t = Tile()
        if fold == 0 {
            t.load(c, ldc)
            t.accumulate(a, b, 0..<kLen)
            t.store(c, ldc)
            return
        }
        var k0 = 0
        while k0 < kLen {
            t = Tile()
            t.accumulate(a, b, k0..<min(kLen, k0 + fold))
            t.addInto(c, ldc)
            k0 += fold
        }
    }

    struct Tile {
        var c00 = SIMD16<Float>(repeating: 0)
        var c01 = SIMD16<Float>(repeating: 0)
        var c10 = SIMD16<Float>(repeating: 0)
        var c11 = SIMD16<Float>(repeating: 0)
        var c20 = SIMD16<Float>(repeating: 0)
        var c21 = SIMD16<Float>(repeating: 0)
        var c30 = SIMD16<Float>(repeating: 0)
        var c31 = SIMD16<Float>(repeating: 0)
        var c40 = SIMD16<Float>(repeating: 0)
        var c41 = SIMD16<Float>(repeating: 0)
        var c50 = SIMD16<Float>(repeating: 0)
        var c51 = SIMD16<Float>(repeating: 0)
        var c60 = SIMD16<Float>(repeating: 0)
        var c61 = SIMD16<Float>(repeating: 0)
        var c70 = SIMD16<Float>(repeating: 0)
        var c71 = SIMD16<Float>(repeating: 0)

        @inline(__always)
        mutating func accumulate(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ks: Range<Int>) {
            for k in ks {
                let bp = UnsafeRawPointer(b + k * 32)
                let b0 = bp.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
                let b1 = bp.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
                let ap = a + k * 8
                let a0 = SIMD16<Float>(repeating: ap[0])
                c00 = c00.addingProduct(a0, b0)
                c01 = c01.addingProduct(a0, b1)
                let a1 = SIMD16<Float>(repeating: ap[1])
                c10 = c10.addingProduct(a1, b0)
                c11 = c11.addingProduct(a1, b1)
                let a2 = SIMD16<Float>(repeating: ap[2])
                c20 = c20.addingProduct(a2, b0)
                c21 = c21.addingProduct(a2, b1)
                let a3 = SIMD16<Float>(repeating: ap[3])
                c30 = c30.addingProduct(a3, b0)
                c31 = c31.addingProduct(a3, b1)
                let a4 = SIMD16<Float>(repeating: ap[4])
                c40 = c40.addingProduct(a4, b0)
                c41 = c41.addingProduct(a4, b1)
                let a5 = SIMD16<Float>(repeating: ap[5])
                c50 = c50.addingProduct(a5, b0)
                c51 = c51.addingProduct(a5, b1)
                let a6 = SIMD16<Float>(repeating: ap[6])
                c60 = c60.addingProduct(a6, b0)
                c61 = c61.addingProduct(a6, b1)
                let a7 = SIMD16<Float>(repeating: ap[7])
                c70 = c70.addingProduct(a7, b0)
                c71 = c71.addingProduct(a7, b1)
            }
        }

        @inline(__always)
        mutating func load(_ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
            let r0 = UnsafeMutableRawPointer(c)
            c00 = r0.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c01 = r0.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r1 = UnsafeMutableRawPointer(c + 1 * ldc)
            c10 = r1.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c11 = r1.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r2 = UnsafeMutableRawPointer(c + 2 * ldc)
            c20 = r2.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c21 = r2.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r3 = UnsafeMutableRawPointer(c + 3 * ldc)
            c30 = r3.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c31 = r3.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r4 = UnsafeMutableRawPointer(c + 4 * ldc)
            c40 = r4.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c41 = r4.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r5 = UnsafeMutableRawPointer(c + 5 * ldc)
            c50 = r5.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c51 = r5.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r6 = UnsafeMutableRawPointer(c + 6 * ldc)
            c60 = r6.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c61 = r6.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            let r7 = UnsafeMutableRawPointer(c + 7 * ldc)
            c70 = r7.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c71 = r7.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        }

        @inline(__always)
        func store(_ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
            let r0 = UnsafeMutableRawPointer(c)
            r0.storeBytes(of: c00, toByteOffset: 0, as: SIMD16<Float>.self)
            r0.storeBytes(of: c01, toByteOffset: 64, as: SIMD16<Float>.self)
            let r1 = UnsafeMutableRawPointer(c + 1 * ldc)
            r1.storeBytes(of: c10, toByteOffset: 0, as: SIMD16<Float>.self)
            r1.storeBytes(of: c11, toByteOffset: 64, as: SIMD16<Float>.self)
            let r2 = UnsafeMutableRawPointer(c + 2 * ldc)
            r2.storeBytes(of: c20, toByteOffset: 0, as: SIMD16<Float>.self)
            r2.storeBytes(of: c21, toByteOffset: 64, as: SIMD16<Float>.self)
            let r3 = UnsafeMutableRawPointer(c + 3 * ldc)
            r3.storeBytes(of: c30, toByteOffset: 0, as: SIMD16<Float>.self)
            r3.storeBytes(of: c31, toByteOffset: 64, as: SIMD16<Float>.self)
            let r4 = UnsafeMutableRawPointer(c + 4 * ldc)
            r4.storeBytes(of: c40, toByteOffset: 0, as: SIMD16<Float>.self)
            r4.storeBytes(of: c41, toByteOffset: 64, as: SIMD16<Float>.self)
            let r5 = UnsafeMutableRawPointer(c + 5 * ldc)
            r5.storeBytes(of: c50, toByteOffset: 0, as: SIMD16<Float>.self)
            r5.storeBytes(of: c51, toByteOffset: 64, as: SIMD16<Float>.self)
            let r6 = UnsafeMutableRawPointer(c + 6 * ldc)
            r6.storeBytes(of: c60, toByteOffset: 0, as: SIMD16<Float>.self)
            r6.storeBytes(of: c61, toByteOffset: 64, as: SIMD16<Float>.self)
            let r7 = UnsafeMutableRawPointer(c + 7 * ldc)
            r7.storeBytes(of: c70, toByteOffset: 0, as: SIMD16<Float>.self)
            r7.storeBytes(of: c71, toByteOffset: 64, as: SIMD16<Float>.self)
        }

        @inline(__always)
        func addInto(_ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
            let r0 = UnsafeMutableRawPointer(c)
            r0.storeBytes(of: r0.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c00, toByteOffset: 0, as: SIMD16<Float>.self)
            r0.storeBytes(of: r0.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c01, toByteOffset: 64, as: SIMD16<Float>.self)
            let r1 = UnsafeMutableRawPointer(c + 1 * ldc)
            r1.storeBytes(of: r1.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c10, toByteOffset: 0, as: SIMD16<Float>.self)
            r1.storeBytes(of: r1.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c11, toByteOffset: 64, as: SIMD16<Float>.self)
            let r2 = UnsafeMutableRawPointer(c + 2 * ldc)
            r2.storeBytes(of: r2.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c20, toByteOffset: 0, as: SIMD16<Float>.self)
            r2.storeBytes(of: r2.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c21, toByteOffset: 64, as: SIMD16<Float>.self)
            let r3 = UnsafeMutableRawPointer(c + 3 * ldc)
            r3.storeBytes(of: r3.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c30, toByteOffset: 0, as: SIMD16<Float>.self)
            r3.storeBytes(of: r3.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c31, toByteOffset: 64, as: SIMD16<Float>.self)
            let r4 = UnsafeMutableRawPointer(c + 4 * ldc)
            r4.storeBytes(of: r4.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c40, toByteOffset: 0, as: SIMD16<Float>.self)
            r4.storeBytes(of: r4.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c41, toByteOffset: 64, as: SIMD16<Float>.self)
            let r5 = UnsafeMutableRawPointer(c + 5 * ldc)
            r5.storeBytes(of: r5.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c50, toByteOffset: 0, as: SIMD16<Float>.self)
            r5.storeBytes(of: r5.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c51, toByteOffset: 64, as: SIMD16<Float>.self)
            let r6 = UnsafeMutableRawPointer(c + 6 * ldc)
            r6.storeBytes(of: r6.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c60, toByteOffset: 0, as: SIMD16<Float>.self)
            r6.storeBytes(of: r6.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c61, toByteOffset: 64, as: SIMD16<Float>.self)
            let r7 = UnsafeMutableRawPointer(c + 7 * ldc)
            r7.storeBytes(of: r7.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self) + c70, toByteOffset: 0, as: SIMD16<Float>.self)
            r7.storeBytes(of: r7.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self) + c71, toByteOffset: 64, as: SIMD16<Float>.self)
        }
    }
}
