/// The terms of an MXU product that a lowering keeps when the others are known to be exact
/// zeros (the zeros a strided convolution's gradient dilates its operand with), in the order
/// of the full product, with the fold of the full product each falls in: what
/// ``MXU/multiply(_:_:into:shape:kept:)`` needs to sum them as the full product's schedule
/// would.
public struct KeptTerms: Sendable, Equatable {
    /// The MXU's fold length (nil: one running sum), which decides where folds end.
    public let foldLength: Int?
    /// Terms kept of each fold that keeps any, in order.
    public private(set) var foldLengths: [Int] = []
    /// Terms kept in all.
    public private(set) var count = 0
    /// The term of the full product after the last one kept.
    private var next = 0
    private var lastFold = -1

    /// Whether the kept terms are every term of the longer product up to the last one kept
    /// (then it is that product of `count` terms, summed by its own plan).
    public var leavesOutNone: Bool { count == next }

    public init(foldLength: Int?) {
        self.foldLength = foldLength
    }

    /// Keeps terms `terms` of the full product; calls come in ascending order.
    public mutating func keep(_ terms: Range<Int>) {
        precondition(terms.lowerBound >= next, "kept terms must ascend")
        next = terms.upperBound
        count += terms.count
        guard let f = foldLength else {
            if !terms.isEmpty { foldLengths = [count] }
            return
        }
        var t = terms.lowerBound
        while t < terms.upperBound {
            let fold = t / f, end = min(terms.upperBound, (fold + 1) * f)
            if fold == lastFold { foldLengths[foldLengths.count - 1] += end - t } else { foldLengths.append(end - t) }
            lastFold = fold
            t = end
        }
    }
}
