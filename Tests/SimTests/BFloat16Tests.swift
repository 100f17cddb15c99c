import Testing
@testable import Sim

@Suite struct BFloat16Tests {
    @Test func roundsToNearestWithTiesToEven() {
        // 1 + 2^-8 lies exactly halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        #expect(BFloat16.round(Float(bitPattern: 0x3F80_8000)) == 1.0)
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
        #expect(BFloat16.round(Float(bitPattern: 0x3F81_8000)).bitPattern == 0x3F82_0000)
        // Just above halfway rounds up, just below rounds down.
        #expect(BFloat16.round(Float(bitPattern: 0x3F80_8001)).bitPattern == 0x3F81_0000)
        #expect(BFloat16.round(Float(bitPattern: 0x3F80_7FFF)).bitPattern == 0x3F80_0000)
        #expect(BFloat16.round(-1.0) == -1.0)
    }

    @Test func overflowsToInfinityAndFlushesSubnormals() {
        #expect(BFloat16.round(.greatestFiniteMagnitude) == .infinity)
        #expect(BFloat16.round(-.greatestFiniteMagnitude) == -.infinity)
        #expect(BFloat16.round(.leastNormalMagnitude) == .leastNormalMagnitude)
        let sub = BFloat16.round(.leastNonzeroMagnitude)
        #expect(sub == 0 && sub.sign == .plus)
        let negSub = BFloat16.round(-Float.leastNonzeroMagnitude * 1000)
        #expect(negSub == 0 && negSub.sign == .minus)
        #expect(BFloat16.round(.infinity) == .infinity)
        #expect(BFloat16.round(Float.nan).isNaN)
        // A signalling NaN whose payload lies only in the low bits must stay NaN, not become inf.
        #expect(BFloat16.round(Float(bitPattern: 0x7F80_0001)).isNaN)
    }

    @Test func vectorRoundingMatchesScalarOnEveryClassOfBitPattern() {
        var state: UInt64 = 12345
        var patterns: [UInt32] = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001,
                                  0x0000_0001, 0x807F_FFFF, 0x7F7F_FFFF, 0x3F80_8000, 0x3F81_8000]
        for _ in 0..<20_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            patterns.append(UInt32(truncatingIfNeeded: state >> 32))
        }
        while patterns.count % 16 != 0 { patterns.append(0x3F80_8000) }
        for start in stride(from: 0, to: patterns.count, by: 16) {
            var v = SIMD16<Float>()
            for l in 0..<16 { v[l] = Float(bitPattern: patterns[start + l]) }
            let r = BFloat16.round(v)
            for l in 0..<16 {
                #expect(r[l].bitPattern == BFloat16.roundBits(patterns[start + l]),
                        "pattern \(String(patterns[start + l], radix: 16))")
            }
        }
        #expect(patterns.allSatisfy { BFloat16.roundBits($0) & 0xFFFF == 0 })
    }
}
