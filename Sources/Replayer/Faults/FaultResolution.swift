import Sim

/// The elements a fault replaces in one operand tensor, and their new values
/// (`faulty = golden * mask + delta` with mask 0 and delta the value at each position).
public struct Corruption: Sendable, Equatable, Codable {
    /// Flat offsets into the operand (row-major), ascending.
    public var offsets: [Int]
    public var values: [Float]

    public init(offsets: [Int], values: [Float]) {
        self.offsets = offsets
        self.values = values
    }

    /// Offsets as multi-indices of `shape` (the reference CSV's `a/b/c/d` positions).
    public func positions(in shape: [Int]) -> [[Int]] {
        offsets.map { Tensor.index(ofOffset: $0, in: shape) }
    }

    /// Replaces the values in place.
    public func apply(to values: inout [Float]) {
        for (o, v) in zip(offsets, self.values) { values[o] = v }
    }
}

/// Draws the corruption of a software fault model (`docs/faults.md#seeded-resolution`) from the
/// golden operand tensor and a random stream, so that an injection is reproducible from its
/// seed alone.
///
/// Decisions of this project where the reference is silent:
/// - "innermost axis" groups (16 or 64 elements) are runs of the flattened tensor aligned to
///   the group size; when the innermost axis is shorter than the group (narrow layers), a
///   group spans several positions, as the flattened layout does;
/// - a tensor smaller than one group is corrupted whole;
/// - `_16` models draw their operand corruption as the model without `_16` does; which
///   outputs it reaches is decided in the product (``InjectionHook``, ``SixteenSemantics``).
public enum FaultResolution {
    public static func resolve(_ model: FaultModel, golden: [Float], rng: inout CounterRNG) -> Corruption {
        let n = golden.count
        precondition(n > 0, "cannot corrupt an empty tensor")
        switch model {
        case .INPUT, .INPUT_16, .WT, .WT_16, .RBFLIP:
            let i = rng.nextInt(below: n)
            return Corruption(offsets: [i], values: [bitFlip(golden[i], rng: &rng)])
        case .RD:
            return Corruption(offsets: [rng.nextInt(below: n)], values: [randomFinite(&rng)])
        case .RD_CORRECT:
            let i = rng.nextInt(below: n)
            return Corruption(offsets: [i], values: [golden[otherIndex(than: i, count: n, rng: &rng)]])
        case .ZERO:
            return Corruption(offsets: [rng.nextInt(below: n)], values: [0])
        case .N16_RD:
            return fill(group(16, count: n, rng: &rng)) { _ in randomFinite(&rng) }
        case .N16_RD_CORRECT:
            return fill(group(16, count: n, rng: &rng)) { i in golden[otherIndex(than: i, count: n, rng: &rng)] }
        case .RD_GLB:
            return fill(run(16, count: n, rng: &rng)) { _ in randomFinite(&rng) }
        case .RD_CORRECT_GLB:
            return fill(run(16, count: n, rng: &rng)) { i in golden[otherIndex(than: i, count: n, rng: &rng)] }
        case .N64_INPUT, .N64_WT, .N64_INPUT_16, .N64_WT_16:
            return fill(group(64, count: n, rng: &rng)) { i in golden[otherIndex(than: i, count: n, rng: &rng)] }
        case .N64_INPUT_GLB, .N64_WT_GLB:
            return fill(run(64, count: n, rng: &rng)) { i in golden[otherIndex(than: i, count: n, rng: &rng)] }
        }
    }

    /// One uniformly chosen bit of the fp32 encoding flipped.
    static func bitFlip(_ x: Float, rng: inout CounterRNG) -> Float {
        Float(bitPattern: x.bitPattern ^ (1 << UInt32(rng.nextInt(below: 32))))
    }

    /// A uniformly random 32-bit pattern, redrawn until finite.
    static func randomFinite(_ rng: inout CounterRNG) -> Float {
        while true {
            let v = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            if v.isFinite { return v }
        }
    }

    /// An index other than `i` (for the `_CORRECT` models: a value the tensor really holds).
    static func otherIndex(than i: Int, count n: Int, rng: inout CounterRNG) -> Int {
        guard n > 1 else { return i }
        let j = rng.nextInt(below: n - 1)
        return j >= i ? j + 1 : j
    }

    /// A random aligned group of `size` consecutive offsets.
    static func group(_ size: Int, count n: Int, rng: inout CounterRNG) -> Range<Int> {
        let groups = max(1, n / size)
        let start = rng.nextInt(below: groups) * size
        return start ..< min(n, start + size)
    }

    /// The GLB run: aligned groups of `size` from a random start group to a random end group,
    /// the end uniform in (start, last group] (the start group alone when it is the last).
    static func run(_ size: Int, count n: Int, rng: inout CounterRNG) -> Range<Int> {
        let groups = max(1, (n + size - 1) / size)
        let start = rng.nextInt(below: groups)
        let end = start + 1 < groups ? start + 1 + rng.nextInt(below: groups - start - 1) : start
        return start * size ..< min(n, (end + 1) * size)
    }

    static func fill(_ range: Range<Int>, _ value: (Int) -> Float) -> Corruption {
        Corruption(offsets: Array(range), values: range.map(value))
    }
}
