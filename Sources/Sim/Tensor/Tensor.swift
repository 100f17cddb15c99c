/// A dense fp32 tensor, row-major. Activations are NHWC, convolution weights HWIO
/// (height, width, input channels, output channels), dense weights (in, out).
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "tensor of shape \(shape) cannot hold \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public static func zeros(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }

    /// Flat offset of a multi-index, or nil if it lies outside the tensor.
    public func offset(of index: [Int]) -> Int? {
        guard index.count == shape.count else { return nil }
        var flat = 0
        for (i, n) in zip(index, shape) {
            guard i >= 0 && i < n else { return nil }
            flat = flat * n + i
        }
        return flat
    }

    /// The multi-index of flat (row-major) offset `offset` in a tensor of `shape`.
    public static func index(ofOffset offset: Int, in shape: [Int]) -> [Int] {
        var rest = offset
        return shape.reversed().map { n -> Int in
            defer { rest /= n }
            return rest % n
        }.reversed()
    }
}
