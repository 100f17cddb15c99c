/// Arrays that a vector pass writes whole.
extension Array where Element == Float {
    /// `count` floats of undefined value for a pass that writes every one before any is
    /// read: no zeroing pass first. The pass then runs in the caller's
    /// `withUnsafeMutableBufferPointer`, which the optimiser inlines with the element function
    /// it is given; a pass written inside `init(unsafeUninitializedCapacity:)` instead was
    /// compiled apart and called that function once per element.
    @inline(__always)
    static func uninitialized(_ count: Int) -> [Float] {
        // Float is a trivial type: its storage holds no references to initialise.
        [Float](unsafeUninitializedCapacity: count) { _, written in written = count }
    }
}
