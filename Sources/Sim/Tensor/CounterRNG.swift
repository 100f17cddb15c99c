/// What a random stream is for; part of its key, so streams for different purposes never
/// overlap.
public enum RandomPurpose: UInt64, Sendable, Codable {
    case initialization = 1
    case dataOrder = 2
    case augmentation = 3
    case dropout = 4
    case synthetic = 5
    case faultSampling = 6
    /// Text tasks: their splits and corruptions (``FortunesText``).
    case text = 7
}

/// A keyed, counter-based random generator: the `i`-th value of the stream
/// `(seed, purpose, a, b, c)` is a pure function of those six numbers, so any step can be
/// re-executed on its own and nothing about the generator needs to be saved in a snapshot.
///
/// The mixing function is SplitMix64's finaliser (Steele, Lea and Flood, OOPSLA 2014)
/// applied to the key folded with the counter; it passes BigCrush as a counter-based
/// generator and costs a few multiplications per value.
public struct CounterRNG: Sendable, Equatable {
    public let key: UInt64
    public private(set) var counter: UInt64 = 0

    /// A stream for `purpose`, further keyed by up to three integers (for example epoch, step
    /// and replica).
    public init(seed: UInt64, purpose: RandomPurpose, _ a: Int = 0, _ b: Int = 0, _ c: Int = 0) {
        var k = Self.mix(seed ^ 0x243F_6A88_85A3_08D3)
        for part in [purpose.rawValue, UInt64(bitPattern: Int64(a)), UInt64(bitPattern: Int64(b)), UInt64(bitPattern: Int64(c))] {
            k = Self.mix(k ^ Self.mix(part &+ 0x9E37_79B9_7F4A_7C15))
        }
        key = k
    }

    /// The value at `index` of this stream, without advancing it.
    public func value(at index: UInt64) -> UInt64 {
        Self.mix(key &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    public mutating func next() -> UInt64 {
        defer { counter &+= 1 }
        return value(at: counter)
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable in fp32).
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform integer in `0..<bound` (unbiased: Lemire's multiply-and-reject).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        while true {
            let (high, low) = next().multipliedFullWidth(by: b)
            if low >= (0 &- b) % b { return Int(high) }
        }
    }

    /// A uniformly random permutation of `0..<count` (Fisher-Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var p = Array(0..<count)
        if count < 2 { return p }
        for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) }
        return p
    }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
