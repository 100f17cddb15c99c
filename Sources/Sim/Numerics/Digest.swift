/// A 64-bit digest of fp32 tensors' exact bits: any single changed bit changes it. Values
/// are spread over 32 independent lanes (element `i` feeds lane `i mod 32`); each lane step,
/// `lane = xorshift((lane ^ bits) * P)`, is a bijection of the lane, so a change survives to
/// the end, where the lanes are folded in order through SplitMix64's finaliser (also a
/// bijection per step). The lanes make it run at memory speed (it digests every MXU output
/// of every step). Not cryptographic: it detects divergence, it does not authenticate.
public struct Digest: Sendable, Equatable, Hashable, CustomStringConvertible {
    public private(set) var value: UInt64 = 0x6A09_E667_F3BC_C908

    public init() {}

    /// A digest with a known value (e.g. read back from a snapshot header).
    public init(value: UInt64) { self.value = value }

    public mutating func add(_ values: [Float]) {
        values.withUnsafeBufferPointer { add($0) }
    }

    public mutating func add(_ values: UnsafeBufferPointer<Float>) {
        let prime: UInt64 = 0x0000_0100_0000_01B3
        let seed = SIMD8<UInt64>(repeating: value ^ UInt64(values.count) &* 0x9E37_79B9_7F4A_7C15)
        let index = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7)
        var l0 = seed ^ index, l1 = seed ^ (index &+ 8), l2 = seed ^ (index &+ 16), l3 = seed ^ (index &+ 24)
        @inline(__always) func step(_ lane: inout SIMD8<UInt64>, _ bits: SIMD8<UInt32>) {
            lane = (lane ^ SIMD8<UInt64>(truncatingIfNeeded: bits)) &* prime
            lane ^= lane &>> 29
        }
        let n = values.count
        var i = 0
        if let base = values.baseAddress {
            let raw = UnsafeRawPointer(base)
            while i + 32 <= n {
                step(&l0, raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self))
                step(&l1, raw.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<UInt32>.self))
                step(&l2, raw.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD8<UInt32>.self))
                step(&l3, raw.loadUnaligned(fromByteOffset: 4 * i + 96, as: SIMD8<UInt32>.self))
                i += 32
            }
        }
        var lanes = [l0, l1, l2, l3].flatMap { v in (0..<8).map { v[$0] } }
        while i < n {
            let l = i % 32
            lanes[l] = (lanes[l] ^ UInt64(values[i].bitPattern)) &* prime
            lanes[l] ^= lanes[l] >> 29
            i += 1
        }
        var h = value
        for lane in lanes { h = CounterRNG.mix(h ^ lane) }
        value = h
    }

    /// What ``add(_:)-(UnsafeBufferPointer<Float>)`` of the concatenation of `chunks` gives,
    /// without building it (a state's flat layout digested from its tensors where they lie).
    public mutating func add(concatenationOf chunks: [[Float]]) {
        let prime: UInt64 = 0x0000_0100_0000_01B3
        let count = chunks.reduce(0) { $0 + $1.count }
        let seed = value ^ UInt64(count) &* 0x9E37_79B9_7F4A_7C15
        // Lane l takes elements l, l + 32, ... of the whole sequence, as in `add(_:)`.
        var lanes = (0..<32).map { seed ^ UInt64($0) }
        var position = 0
        @inline(__always) func step(_ lane: inout SIMD8<UInt64>, _ bits: SIMD8<UInt32>) {
            lane = (lane ^ SIMD8<UInt64>(truncatingIfNeeded: bits)) &* prime
            lane ^= lane &>> 29
        }
        for chunk in chunks {
            chunk.withUnsafeBufferPointer { values in
                let n = values.count
                var i = 0
                // Up to the next multiple of 32 in the whole sequence, value by value.
                while i < n && (position + i) % 32 != 0 {
                    let l = (position + i) % 32
                    lanes[l] = (lanes[l] ^ UInt64(values[i].bitPattern)) &* prime
                    lanes[l] ^= lanes[l] >> 29
                    i += 1
                }
                if let base = values.baseAddress, i + 32 <= n {
                    func load(_ o: Int) -> SIMD8<UInt64> { SIMD8<UInt64>((0..<8).map { lanes[o + $0] }) }
                    var l0 = load(0), l1 = load(8), l2 = load(16), l3 = load(24)
                    let raw = UnsafeRawPointer(base)
                    while i + 32 <= n {
                        step(&l0, raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self))
                        step(&l1, raw.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<UInt32>.self))
                        step(&l2, raw.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD8<UInt32>.self))
                        step(&l3, raw.loadUnaligned(fromByteOffset: 4 * i + 96, as: SIMD8<UInt32>.self))
                        i += 32
                    }
                    lanes = [l0, l1, l2, l3].flatMap { v in (0..<8).map { v[$0] } }
                }
                while i < n {
                    let l = (position + i) % 32
                    lanes[l] = (lanes[l] ^ UInt64(values[i].bitPattern)) &* prime
                    lanes[l] ^= lanes[l] >> 29
                    i += 1
                }
                position += n
            }
        }
        var h = value
        for lane in lanes { h = CounterRNG.mix(h ^ lane) }
        value = h
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
    /// Digest of the whole state: step, parameters, optimizer slots, model state.
    public var digest: Digest {
        var d = Digest()
        d.add(step)
        for t in parameters { d.add(t) }
        for s in slots { for t in s { d.add(t) } }
        for t in modelState { d.add(t) }
        return d
    }
}
