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
        var lanes = Lanes(seed: value, count: values.count)
        lanes.feed(values)
        value = lanes.fold(into: value)
    }

    /// What ``add(_:)-(UnsafeBufferPointer<Float>)`` gives for `bytes` taken as 32-bit words
    /// in the host's byte order, the last one padded with zero bytes: a byte string (a frame's
    /// payload) digested where it lies, without copying it into whole words first.
    public mutating func add(bytes: UnsafeRawBufferPointer) {
        let whole = bytes.count / 4, words = (bytes.count + 3) / 4
        var lanes = Lanes(seed: value, count: words)
        if let base = bytes.baseAddress {
            lanes.feed(words: base, count: whole)
            if whole < words {
                var tail: UInt32 = 0
                withUnsafeMutableBytes(of: &tail) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[(4 * whole)...])) }
                lanes.step(bits: tail)
            }
        }
        value = lanes.fold(into: value)
    }

    /// Like ``add(_:)-(UnsafeBufferPointer<Float>)`` but two elements to a lane step: element
    /// pair `j` (the 64-bit word `bits(2j) | bits(2j+1) << 32`, an odd count's last element
    /// alone in its word's low half) steps lane `j mod 32`. Half the 64-bit multiplies, so
    /// about twice as fast (the multiplies are emulated without AVX-512). Still a bijection of
    /// the lane per step, so any single changed bit changes the digest; a collision needs
    /// changes in two or more words of one lane, and for unstructured changes has a chance
    /// of about 2^-64. (A few exact multi-bit patterns, such as a word whose odd element's
    /// sign flips and, 32 words later, the word whose odd element's sign and bit 2 flip,
    /// cancel for any data; the one-element-per-step form has no such pattern.) The
    /// per-operation output digest of trace format 3 (``OutputDigest/pairLanes``).
    public mutating func add(pairsOf values: UnsafeBufferPointer<Float>) {
        add(pairBytes: UnsafeRawBufferPointer(values))
    }

    /// What ``add(pairsOf:)`` gives for `bytes` taken as 32-bit words in the host's byte order,
    /// the last one padded with zero bytes, without copying them into whole words first (a
    /// format-3 frame's payload checksum).
    public mutating func add(pairBytes bytes: UnsafeRawBufferPointer) {
        let pairs = bytes.count / 8
        var lanes = Lanes(seed: value, count: (bytes.count + 3) / 4)
        if let base = bytes.baseAddress {
            lanes.feed(pairs: base, count: pairs)
            if 8 * pairs < bytes.count {
                var tail: UInt64 = 0
                withUnsafeMutableBytes(of: &tail) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[(8 * pairs)...])) }
                lanes.step(word: tail)
            }
        }
        value = lanes.fold(into: value)
    }

    /// What ``add(_:)-(UnsafeBufferPointer<Float>)`` of the concatenation of `chunks` gives,
    /// without building it (a state's flat layout digested from its tensors where they lie).
    public mutating func add(concatenationOf chunks: [[Float]]) {
        var lanes = Lanes(seed: value, count: chunks.reduce(0) { $0 + $1.count })
        for chunk in chunks { chunk.withUnsafeBufferPointer { lanes.feed($0) } }
        value = lanes.fold(into: value)
    }

    /// The 32 lanes of one ``add(_:)-(UnsafeBufferPointer<Float>)``: element `i` of the
    /// sequence fed (over any number of ``feed(_:)`` calls) steps lane `i mod 32`.
    private struct Lanes {
        static let prime: UInt64 = 0x0000_0100_0000_01B3
        var l0: SIMD8<UInt64>, l1: SIMD8<UInt64>, l2: SIMD8<UInt64>, l3: SIMD8<UInt64>
        /// Elements fed so far.
        var position = 0

        init(seed value: UInt64, count: Int) {
            let seed = SIMD8<UInt64>(repeating: value ^ UInt64(count) &* 0x9E37_79B9_7F4A_7C15)
            let index = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7)
            (l0, l1, l2, l3) = (seed ^ index, seed ^ (index &+ 8), seed ^ (index &+ 16), seed ^ (index &+ 24))
        }

        @inline(__always) static func step(_ lane: inout SIMD8<UInt64>, _ bits: SIMD8<UInt32>) {
            step(&lane, words: SIMD8<UInt64>(truncatingIfNeeded: bits))
        }

        @inline(__always) static func step(_ lane: inout SIMD8<UInt64>, words: SIMD8<UInt64>) {
            lane = (lane ^ words) &* prime
            lane ^= lane &>> 29
        }

        /// One element's bits into lane `position mod 32` (the ragged ends of a chunk).
        mutating func step(bits: UInt32) { step(word: UInt64(bits)) }

        /// One word into lane `position mod 32`.
        mutating func step(word: UInt64) {
            let (v, e) = (position % 32).quotientAndRemainder(dividingBy: 8)
            func one(_ lane: inout SIMD8<UInt64>) {
                lane[e] = (lane[e] ^ word) &* Self.prime
                lane[e] ^= lane[e] >> 29
            }
            switch v {
            case 0: one(&l0)
            case 1: one(&l1)
            case 2: one(&l2)
            default: one(&l3)
            }
            position += 1
        }

        mutating func feed(_ values: UnsafeBufferPointer<Float>) {
            guard let base = values.baseAddress else { return }
            feed(words: UnsafeRawPointer(base), count: values.count)
        }

        /// `n` 32-bit words from `raw` (any alignment), element by element as ``feed(_:)``.
        mutating func feed(words raw: UnsafeRawPointer, count n: Int) {
            @inline(__always) func word(_ i: Int) -> UInt32 { raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) }
            var i = 0
            while i < n && position % 32 != 0 { step(bits: word(i)); i += 1 }
            if i + 32 <= n {
                var (a, b, c, d) = (l0, l1, l2, l3)
                while i + 32 <= n {
                    Self.step(&a, raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self))
                    Self.step(&b, raw.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<UInt32>.self))
                    Self.step(&c, raw.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD8<UInt32>.self))
                    Self.step(&d, raw.loadUnaligned(fromByteOffset: 4 * i + 96, as: SIMD8<UInt32>.self))
                    i += 32
                    position += 32
                }
                (l0, l1, l2, l3) = (a, b, c, d)
            }
            while i < n { step(bits: word(i)); i += 1 }
        }

        /// `n` 64-bit words from `raw` (any alignment; each the host-order pair of 32-bit
        /// words, low one first on the little-endian hosts tpufi runs on), word `j` into lane
        /// `(position + j) mod 32`.
        mutating func feed(pairs raw: UnsafeRawPointer, count n: Int) {
            var i = 0
            while i < n && position % 32 != 0 { step(word: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)); i += 1 }
            if i + 32 <= n {
                var (a, b, c, d) = (l0, l1, l2, l3)
                while i + 32 <= n {
                    Self.step(&a, words: raw.loadUnaligned(fromByteOffset: 8 * i, as: SIMD8<UInt64>.self))
                    Self.step(&b, words: raw.loadUnaligned(fromByteOffset: 8 * i + 64, as: SIMD8<UInt64>.self))
                    Self.step(&c, words: raw.loadUnaligned(fromByteOffset: 8 * i + 128, as: SIMD8<UInt64>.self))
                    Self.step(&d, words: raw.loadUnaligned(fromByteOffset: 8 * i + 192, as: SIMD8<UInt64>.self))
                    i += 32
                    position += 32
                }
                (l0, l1, l2, l3) = (a, b, c, d)
            }
            while i < n { step(word: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)); i += 1 }
        }

        /// The lanes folded in order into `value` through SplitMix64's finaliser.
        func fold(into value: UInt64) -> UInt64 {
            var h = value
            // Lane by lane, in order (no array of the four: a digest is taken per MXU output).
            for e in 0..<8 { h = CounterRNG.mix(h ^ l0[e]) }
            for e in 0..<8 { h = CounterRNG.mix(h ^ l1[e]) }
            for e in 0..<8 { h = CounterRNG.mix(h ^ l2[e]) }
            for e in 0..<8 { h = CounterRNG.mix(h ^ l3[e]) }
            return h
        }
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

/// How a trace digests every MXU operation's output (its manifest's `outputDigest`): one
/// fact per trace, so that a replay, a bisect or a comparison of two traces digests the way
/// the trace it compares with did.
public enum OutputDigest: String, Codable, Sendable, CaseIterable {
    /// Trace formats 1 and 2: ``Digest/add(_:)-(UnsafeBufferPointer<Float>)``, one element a
    /// lane step.
    case elementLanes = "element-lanes"
    /// Trace format 3: ``Digest/add(pairsOf:)``, two elements a lane step (half the work).
    case pairLanes = "pair-lanes"

    /// What new traces use.
    public static let current = OutputDigest.pairLanes

    public func of(_ values: [Float]) -> Digest {
        var d = Digest()
        values.withUnsafeBufferPointer { p in
            switch self {
            case .elementLanes: d.add(p)
            case .pairLanes: d.add(pairsOf: p)
            }
        }
        return d
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
