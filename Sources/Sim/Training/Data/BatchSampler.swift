/// Errors in setting up a `BatchSampler`.
public enum BatchSamplerError: Error, CustomStringConvertible, Equatable {
    case invalid(dataset: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let dataset, let reason): return "batch sampler over \(dataset): \(reason)"
        }
    }
}

/// Training-time augmentation, applied per image: zero-pad by `pad` pixels on every side and
/// crop a random `height x width` window (torchvision's `RandomCrop(padding:)`), then mirror
/// left-right with probability 1/2 (`RandomHorizontalFlip`). Padding is the normalised value
/// of a black pixel, as when padding comes before normalisation.
public struct Augmentation: Sendable, Equatable, Codable {
    public var flip: Bool
    public var pad: Int

    public init(flip: Bool, pad: Int) {
        self.flip = flip
        self.pad = pad
    }

    public static let none = Augmentation(flip: false, pad: 0)
    /// The usual CIFAR-10 recipe: flip, pad 4 and crop back.
    public static let cifar = Augmentation(flip: true, pad: 4)

    public var isNone: Bool { !flip && pad == 0 }
}

/// What the augmentation did to one image.
public struct AugmentationDraw: Sendable, Hashable {
    /// Mirrored left-right.
    public var flipped: Bool
    /// Top-left corner of the crop window in the padded image, each in `0...2 x pad`;
    /// `(pad, pad)` is the original image.
    public var offsetY: Int
    public var offsetX: Int
}

/// The images of one replica's share of a step, with where they came from.
public struct Batch: Sendable, Equatable {
    /// `count x height x width x channels` (NHWC).
    public var images: [Float]
    public var labels: [Int32]
    /// The dataset index of each image, for tracing a result back to its inputs.
    public var indices: [Int]

    public init(images: [Float], labels: [Int32], indices: [Int]) {
        self.images = images
        self.labels = labels
        self.indices = indices
    }

    public var count: Int { labels.count }
}

/// Data-parallel batching of a training set. Epoch `e` visits the images in the order
/// `CounterRNG(seed:, purpose: .dataOrder, e).permutation(count)`; step `s` takes the `s`-th
/// run of `globalBatch` images of that order, and replica `r` the `r`-th contiguous slice of
/// `globalBatch / replicas` of those. The images left over at the end of an epoch (fewer than
/// a global batch) are skipped.
///
/// Every batch is a pure function of `(seed, epoch, step, replica)`: nothing is carried from
/// one call to the next, so any step can be re-executed on its own, and an image is augmented
/// the same way whatever the number of replicas.
public struct BatchSampler: Sendable {
    /// The training set.
    public let dataset: Dataset
    /// Images per step across all replicas.
    public let globalBatch: Int
    public let replicas: Int
    /// Keys the epoch orders and the augmentation.
    public let seed: UInt64
    public let augmentation: Augmentation

    /// Images per replica per step.
    public var perReplica: Int { globalBatch / replicas }
    /// Whole global batches in one epoch.
    public var stepsPerEpoch: Int { dataset.count / globalBatch }

    /// Fails unless `globalBatch` and `replicas` are positive, `globalBatch` divides evenly
    /// among the replicas and is at most the data set's size, and the padding is not negative.
    public init(dataset: Dataset, globalBatch: Int, replicas: Int, seed: UInt64,
                augmentation: Augmentation = .none) throws(BatchSamplerError) {
        func fail(_ reason: String) -> BatchSamplerError { .invalid(dataset: dataset.name, reason: reason) }
        guard replicas > 0 else { throw fail("replicas must be positive, got \(replicas)") }
        guard globalBatch > 0 else { throw fail("global batch must be positive, got \(globalBatch)") }
        guard globalBatch % replicas == 0 else {
            throw fail("global batch \(globalBatch) does not divide evenly among \(replicas) replicas")
        }
        guard globalBatch <= dataset.count else {
            throw fail("global batch \(globalBatch) is larger than the \(dataset.count) images of the data set")
        }
        guard augmentation.pad >= 0 else { throw fail("padding must not be negative, got \(augmentation.pad)") }
        guard augmentation.pad <= 1 << 16 else { throw fail("padding \(augmentation.pad) is implausibly large") }
        self.dataset = dataset
        self.globalBatch = globalBatch
        self.replicas = replicas
        self.seed = seed
        self.augmentation = augmentation
    }

    /// The order in which epoch `epoch` visits the data set.
    public func order(epoch: Int) -> [Int] {
        var rng = CounterRNG(seed: seed, purpose: .dataOrder, epoch)
        return rng.permutation(dataset.count)
    }

    /// The dataset indices of step `step`'s global batch, replica 0's first.
    public func globalIndices(epoch: Int, step: Int) -> [Int] {
        precondition(epoch >= 0, "epoch must not be negative")
        precondition((0..<stepsPerEpoch).contains(step), "step \(step) is outside 0..<\(stepsPerEpoch)")
        return Array(order(epoch: epoch)[step * globalBatch ..< (step + 1) * globalBatch])
    }

    /// Replica `replica`'s images for step `step` of epoch `epoch`, augmented.
    public func batch(epoch: Int, step: Int, replica: Int) -> Batch {
        precondition((0..<replicas).contains(replica), "replica \(replica) is outside 0..<\(replicas)")
        let indices = Array(globalIndices(epoch: epoch, step: step)[replica * perReplica ..< (replica + 1) * perReplica])
        return gather(indices, epoch: epoch, step: step)
    }

    /// All replicas' batches for one step (one permutation instead of one per replica).
    public func batches(epoch: Int, step: Int) -> [Batch] {
        let all = globalIndices(epoch: epoch, step: step)
        return (0..<replicas).map { r in
            gather(Array(all[r * perReplica ..< (r + 1) * perReplica]), epoch: epoch, step: step)
        }
    }

    /// The augmentation drawn for the image `datasetIndex` at `(epoch, step)`, from
    /// `CounterRNG(seed:, purpose: .augmentation, epoch, step, datasetIndex)`: the first value
    /// decides the flip (lowest bit), the next two the crop offsets. All three are drawn
    /// whether or not the augmentation uses them, so turning the flip off leaves the crops as
    /// they were.
    public func draw(epoch: Int, step: Int, datasetIndex: Int) -> AugmentationDraw {
        var rng = CounterRNG(seed: seed, purpose: .augmentation, epoch, step, datasetIndex)
        let flip = rng.next() & 1 == 1
        let span = 2 * augmentation.pad + 1
        let y = rng.nextInt(below: span), x = rng.nextInt(below: span)
        return AugmentationDraw(flipped: augmentation.flip && flip, offsetY: y, offsetX: x)
    }

    private func gather(_ indices: [Int], epoch: Int, step: Int) -> Batch {
        if augmentation.isNone { return dataset.batch(indices: indices) }
        let (h, w, c) = (dataset.height, dataset.width, dataset.channels)
        let size = dataset.imageSize
        let pad = augmentation.pad
        let fill = (0..<c).map { dataset.normalization.black(channel: $0) }
        var images = [Float](repeating: 0, count: indices.count * size)
        images.withUnsafeMutableBufferPointer { out in
            dataset.images.withUnsafeBufferPointer { src in
                for (n, index) in indices.enumerated() {
                    let d = draw(epoch: epoch, step: step, datasetIndex: index)
                    for y in 0..<h {
                        // Output pixel (y, x) is pixel (y + offsetY - pad, x' + offsetX - pad) of
                        // the original, where x' mirrors x when flipped.
                        let sy = y + d.offsetY - pad
                        for x in 0..<w {
                            let sx = (d.flipped ? w - 1 - x : x) + d.offsetX - pad
                            let to = n * size + (y * w + x) * c
                            if sy >= 0, sy < h, sx >= 0, sx < w {
                                let from = index * size + (sy * w + sx) * c
                                for ch in 0..<c { out[to + ch] = src[from + ch] }
                            } else {
                                for ch in 0..<c { out[to + ch] = fill[ch] }
                            }
                        }
                    }
                }
            }
        }
        return Batch(images: images, labels: indices.map { dataset.labels[$0] }, indices: indices)
    }
}

extension Dataset {
    /// The images and labels at `indices`, unaugmented.
    public func batch(indices: [Int]) -> Batch {
        let size = imageSize
        var out = [Float]()
        out.reserveCapacity(indices.count * size)
        for i in indices {
            precondition((0..<count).contains(i), "index \(i) is outside 0..<\(count)")
            out.append(contentsOf: images[i * size ..< (i + 1) * size])
        }
        return Batch(images: out, labels: indices.map { labels[$0] }, indices: indices)
    }

    /// The data set in order, in batches of `batchSize` (the last one smaller when
    /// `batchSize` does not divide the count), unaugmented: for evaluation.
    public func testBatches(batchSize: Int) -> TestBatches {
        TestBatches(dataset: self, batchSize: batchSize)
    }
}

/// Consecutive, unaugmented batches of a data set, in order; each computed when accessed.
public struct TestBatches: RandomAccessCollection, Sendable {
    public let dataset: Dataset
    public let batchSize: Int

    public init(dataset: Dataset, batchSize: Int) {
        precondition(batchSize > 0, "batch size must be positive")
        self.dataset = dataset
        self.batchSize = batchSize
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { (dataset.count + batchSize - 1) / batchSize }

    public subscript(position: Int) -> Batch {
        precondition(indices.contains(position), "batch \(position) is outside 0..<\(endIndex)")
        let start = position * batchSize
        return dataset.batch(indices: Array(start ..< Swift.min(start + batchSize, dataset.count)))
    }
}
