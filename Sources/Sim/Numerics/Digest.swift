/// A 64-bit digest of fp32 tensors' exact bits: any single changed bit changes it (each
/// 32-bit word goes through a multiply-xorshift chain; the final avalanche is SplitMix64's).
/// Not cryptographic; it detects divergence, it does not authenticate.
public struct Digest: Sendable, Equatable, Hashable, CustomStringConvertible {
    public private(set) var value: UInt64 = 0x6A09_E667_F3BC_C908

    public init() {}

    /// A digest with a known value (e.g. read back from a snapshot header).
    public init(value: UInt64) { self.value = value }

    public mutating func add(_ values: [Float]) {
        var h = value ^ UInt64(values.count) &* 0x9E37_79B9_7F4A_7C15
        values.withUnsafeBufferPointer { p in
            for v in p {
                h = (h ^ UInt64(v.bitPattern)) &* 0x0000_0100_0000_01B3
                h ^= h >> 29
            }
        }
        value = CounterRNG.mix(h)
    }

    public mutating func add(_ n: Int) {
        value = CounterRNG.mix(value ^ UInt64(bitPattern: Int64(n)) &* 0xBF58_476D_1CE4_E5B9)
    }

    public static func of(_ values: [Float]) -> Digest {
        var d = Digest()
        d.add(values)
        return d
    }

    /// 16 hex digits.
    public var description: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

extension TrainingState {
    /// Digest of the whole state: step, parameters, optimizer slots, moving statistics.
    public var digest: Digest {
        var d = Digest()
        d.add(step)
        for t in parameters { d.add(t) }
        for s in slots { for t in s { d.add(t) } }
        for t in moving { d.add(t) }
        return d
    }
}
