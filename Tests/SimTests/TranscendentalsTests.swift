import Foundation
import Testing
@testable import Sim

/// Distance in units in the last place between two finite fp32 values of the same sign.
func ulps(_ a: Float, _ b: Float) -> Int {
    func ordered(_ x: Float) -> Int { let b = Int(Int32(bitPattern: x.bitPattern)); return b < 0 ? Int(Int32.min) - b : b }
    return abs(ordered(a) - ordered(b))
}

@Suite struct TranscendentalsTests {
    @Test func expIsWithinOneUlpOverItsWholeRange() {
        var worst = 0
        var x: Float = -103.9
        while x < 88.7 {
            let want = Float(Foundation.exp(Double(x)))
            worst = max(worst, ulps(DeterministicMath.exp(x), want))
            x += 0.0137
        }
        for x: Float in [0, -0.0, 1e-30, -1e-30, 1, -1, 88.72, -87.3, 20.5] {
            worst = max(worst, ulps(DeterministicMath.exp(x), Float(Foundation.exp(Double(x)))))
        }
        #expect(worst <= 1)
        #expect(DeterministicMath.exp(0) == 1)
        #expect(DeterministicMath.exp(89) == .infinity && DeterministicMath.exp(.infinity) == .infinity)
        #expect(DeterministicMath.exp(-105) == 0 && DeterministicMath.exp(-.infinity) == 0)
        #expect(DeterministicMath.exp(.nan).isNaN)
    }

    /// exp as first written (branches, then `Int(n)` for the power of two): the definition the
    /// branch-free form must equal bit for bit.
    static func branchingExp(_ x: Float) -> Float {
        if x.isNaN { return x }
        if x > 88.73 { return .infinity }
        if x < -104 { return 0 }
        let xd = Double(x)
        let n = (xd * DeterministicMath.invLn2).rounded(.toNearestOrEven)
        let r = (xd - n * DeterministicMath.ln2Hi) - n * DeterministicMath.ln2Lo
        return Float(DeterministicMath.scaleByPowerOfTwo(DeterministicMath.expPolynomialFromTable(r), Int(n)))
    }

    @Test func branchFreeExpEqualsTheBranchingDefinition() {
        var mismatches: [Float] = []
        var x: Float = -110
        while x < 95 {
            for v in [x, x.nextUp, -x] where DeterministicMath.exp(v).bitPattern != Self.branchingExp(v).bitPattern { mismatches.append(v) }
            x += 0.000_731
        }
        for v: Float in [.nan, .infinity, -.infinity, 88.73, (88.73 as Float).nextUp, -104, (-104 as Float).nextDown, 0, -0.0, .leastNonzeroMagnitude,
                         .greatestFiniteMagnitude, -.greatestFiniteMagnitude] {
            let a = DeterministicMath.exp(v), b = Self.branchingExp(v)
            if a.bitPattern != b.bitPattern && !(a.isNaN && b.isNaN) { mismatches.append(v) }
        }
        // Through an array loop too (the vectorised path).
        let xs = (0..<4096).map { Float($0) * 0.05 - 110 }
        let ys = Swish.forward(xs).y
        for (v, y) in zip(xs, ys) where y.bitPattern != (v * (1 / (1 + Self.branchingExp(-v)))).bitPattern { mismatches.append(v) }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }

    /// The 16-lane exp gives each lane the scalar exp's bits, special values included; so do
    /// sigmoid, which runs 16 at a time (and the remainder scalar), and swish and its gradient,
    /// built on it.
    @Test func vectorExpEqualsTheScalarOne() {
        var values: [Float] = [.nan, -.nan, .infinity, -.infinity, 88.73, (88.73 as Float).nextUp, (88.73 as Float).nextDown, -104,
                               (-104 as Float).nextDown, (-104 as Float).nextUp, 0, -0.0, .leastNonzeroMagnitude,
                               .greatestFiniteMagnitude, -.greatestFiniteMagnitude, Float(bitPattern: 0x7FC0_1234)]
        var x: Float = -110
        while x < 95 {
            values += [x, x.nextUp, -x]
            x += 0.000_913
        }
        values += Array(repeating: 1, count: (16 - values.count % 16) % 16)
        var mismatches: [Float] = []
        for start in stride(from: 0, to: values.count, by: 16) {
            var v = SIMD16<Float>()
            for l in 0..<16 { v[l] = values[start + l] }
            let e = DeterministicMath.exp(v)
            for l in 0..<16 where e[l].bitPattern != DeterministicMath.exp(v[l]).bitPattern { mismatches.append(v[l]) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        // Lengths that leave a scalar remainder.
        let xs = Array(values.prefix(4099)), gs = xs.reversed().map { $0 * 0.5 }
        let (swish, sigmoid) = Swish.forward(xs), grad = Swish.backward(dy: Array(gs), x: xs, sigmoid: sigmoid)
        for i in xs.indices {
            let v = xs[i], s = 1 / (1 + DeterministicMath.exp(-v))
            let want = [v * s, gs[i] * (s * (1 + v * (1 - s))), s]
            for (got, w) in zip([swish[i], grad[i], sigmoid[i]], want) where got.bitPattern != w.bitPattern && !(got.isNaN && w.isNaN) {
                mismatches.append(v)
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }

    /// The written-out polynomial is the table's Horner loop, bit for bit, over the whole
    /// reduced range (so exp's results did not change when it was written out).
    @Test func expPolynomialWrittenOutEqualsTheTableLoop() {
        var mismatches = 0, r = -0.3466
        while r <= 0.3466 {
            if DeterministicMath.expPolynomial(r).bitPattern != DeterministicMath.expPolynomialFromTable(r).bitPattern { mismatches += 1 }
            r += 0.3466 / 50_000
        }
        #expect(mismatches == 0)
    }

    @Test func logIsWithinOneUlpIncludingSubnormals() {
        var worst = 0
        var bits: UInt32 = 1
        while bits < 0x7F80_0000 {
            let x = Float(bitPattern: bits)
            worst = max(worst, ulps(DeterministicMath.log(x), Float(Foundation.log(Double(x)))))
            bits &+= 40_009
        }
        #expect(worst <= 1)
        #expect(DeterministicMath.log(1) == 0)
        #expect(DeterministicMath.log(0) == -.infinity && DeterministicMath.log(-0.0) == -.infinity)
        #expect(DeterministicMath.log(-1).isNaN && DeterministicMath.log(.nan).isNaN)
        #expect(DeterministicMath.log(.infinity) == .infinity)
    }

    @Test func rsqrtIsCorrectlyRoundedReciprocalRoot() {
        for x: Float in [1, 4, 2, 1e-3, 3.5e30, Float(bitPattern: 0x0001_1DB9)] {
            #expect(ulps(DeterministicMath.rsqrt(x), Float(1 / Double(x).squareRoot())) == 0)
        }
        #expect(DeterministicMath.rsqrt(0) == .infinity && DeterministicMath.rsqrt(-1).isNaN)
    }
}
