/// Errors in setting up a `BatchSampler`.
public enum BatchSamplerError: Error, CustomStringConvertible, Equatable {
    case invalid(dataset: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let dataset, let reason): return "batch sampler over \(dataset): \(reason)"
        }
    }
}

/// Training-time augmentation. Two recipes:
///
/// - per image (``CropScope/perImage``, torchvision's): zero-pad by `pad` pixels on every
///   side and crop a random `height x width` window, then mirror left-right with
///   probability 1/2 (`RandomCrop(padding:)`, `RandomHorizontalFlip`);
/// - the reference study's (``reference``, Keras layers inside its model): mirror
///   left-right and, independently, top-bottom, each with probability 1/2 per image, then
///   pad by `pad` and crop ONE random window for the whole replica batch (its `RandomCrop`
///   crops every image of a batch at the same place).
///
/// Padding is the normalised value of a black pixel (``PadFill/black``, as when padding comes
/// before normalisation) or 0 (``PadFill/zero``: padding after normalisation, the reference's
/// `ZeroPadding2D`).
public struct Augmentation: Sendable, Equatable, Codable {
    /// Where a crop window is drawn.
    public enum CropScope: String, Sendable, Codable {
        /// One window per image, before the flip.
        case perImage = "per-image"
        /// One window per replica batch, after the flips.
        case perBatch = "per-batch"
    }

    /// What the padding holds.
    public enum PadFill: String, Sendable, Codable {
        /// The normalised value of a black pixel.
        case black
        /// Zero, i.e. the data set's mean.
        case zero
    }

    /// Mirror left-right with probability 1/2.
    public var flip: Bool
    /// Mirror top-bottom with probability 1/2 (independently of ``flip``).
    public var flipVertical: Bool
    public var pad: Int
    public var fill: PadFill
    public var crop: CropScope

    public init(flip: Bool, flipVertical: Bool = false, pad: Int, fill: PadFill = .black, crop: CropScope = .perImage) {
        self.flip = flip
        self.flipVertical = flipVertical
        self.pad = pad
        self.fill = fill
        self.crop = crop
    }

    public static let none = Augmentation(flip: false, pad: 0)
    /// The usual CIFAR-10 recipe: flip, pad 4 and crop back.
    public static let cifar = Augmentation(flip: true, pad: 4)
    /// The reference study's: flips both ways, zero padding 6, one crop per replica batch.
    public static let reference = Augmentation(flip: true, flipVertical: true, pad: 6, fill: .zero, crop: .perBatch)

    public var isNone: Bool { !flip && !flipVertical && pad == 0 }

    enum CodingKeys: String, CodingKey { case flip, flipVertical, pad, fill, crop }

    /// Manifests written before the reference recipe hold only `flip` and `pad`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(flip: try c.decode(Bool.self, forKey: .flip), flipVertical: try c.decodeIfPresent(Bool.self, forKey: .flipVertical) ?? false,
                  pad: try c.decode(Int.self, forKey: .pad), fill: try c.decodeIfPresent(PadFill.self, forKey: .fill) ?? .black,
                  crop: try c.decodeIfPresent(CropScope.self, forKey: .crop) ?? .perImage)
    }

    /// Writes the newer fields only when they differ from the defaults, so that an older
    /// recipe is recorded as it always was.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(flip, forKey: .flip)
        if flipVertical { try c.encode(flipVertical, forKey: .flipVertical) }
        try c.encode(pad, forKey: .pad)
        if fill != .black { try c.encode(fill, forKey: .fill) }
        if crop != .perImage { try c.encode(crop, forKey: .crop) }
    }
}

/// What the augmentation did to one image.
public struct AugmentationDraw: Sendable, Hashable {
    /// Mirrored left-right.
    public var flipped: Bool
    /// Mirrored top-bottom.
    public var flippedVertically: Bool = false
    /// Top-left corner of the crop window in the padded image, each in `0...2 x pad`;
    /// `(pad, pad)` is the original image.
    public var offsetY: Int
    public var offsetX: Int
}

/// The examples of one replica's share of a step, with where they came from: images, or
/// token sequences (``tokens``).
public struct Batch: Sendable, Equatable {
    /// `count x height x width x channels` (NHWC); empty for token sequences.
    public var images: [Float]
    /// One per prediction: an image's class, or (token sequences) every target token,
    /// `examples x targetLength`.
    public var labels: [Int32]
    /// The dataset index of each image, for tracing a result back to its inputs.
    public var indices: [Int]
    /// Which training step and replica it feeds (nil for evaluation batches): keys the
    /// random draws a model makes during training, such as counter-keyed dropout masks.
    public var origin: BatchOrigin?
    /// The sources of a batch of token sequences (nil for images).
    public var tokens: TokenBatch?

    public init(images: [Float], labels: [Int32], indices: [Int], origin: BatchOrigin? = nil, tokens: TokenBatch? = nil) {
        self.images = images
        self.labels = labels
        self.indices = indices
        self.origin = origin
        self.tokens = tokens
    }

    /// Predictions: images, or target tokens.
    public var count: Int { labels.count }
}

/// Where a training batch belongs: the run's seed, the epoch, the step within it, the replica.
public struct BatchOrigin: Sendable, Equatable {
    public var seed: UInt64
    public var epoch: Int
    public var step: Int
    public var replica: Int

    public init(seed: UInt64, epoch: Int, step: Int, replica: Int) {
        self.seed = seed
        self.epoch = epoch
        self.step = step
        self.replica = replica
    }
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
        guard dataset.sequences == nil || augmentation.isNone else { throw fail("token sequences take no image augmentation") }
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
        return gather(indices, epoch: epoch, step: step, replica: replica)
    }

    /// All replicas' batches for one step (one permutation instead of one per replica).
    public func batches(epoch: Int, step: Int) -> [Batch] {
        let all = globalIndices(epoch: epoch, step: step)
        return (0..<replicas).map { r in
            gather(Array(all[r * perReplica ..< (r + 1) * perReplica]), epoch: epoch, step: step, replica: r)
        }
    }

    /// The augmentation drawn for the image `datasetIndex` at `(epoch, step)`, from
    /// `CounterRNG(seed:, purpose: .augmentation, epoch, step, datasetIndex)`: the first value
    /// decides the flips (lowest bit left-right, the next one top-bottom), the next two the
    /// crop offsets. All are drawn whether or not the augmentation uses them, so turning a
    /// flip off leaves the crops as they were. With a per-batch crop the offsets are
    /// ``batchCrop(epoch:step:replica:)``'s instead.
    public func draw(epoch: Int, step: Int, datasetIndex: Int) -> AugmentationDraw {
        var rng = CounterRNG(seed: seed, purpose: .augmentation, epoch, step, datasetIndex)
        let flips = rng.next()
        let span = 2 * augmentation.pad + 1
        let y = rng.nextInt(below: span), x = rng.nextInt(below: span)
        return AugmentationDraw(flipped: augmentation.flip && flips & 1 == 1, flippedVertically: augmentation.flipVertical && flips & 2 == 2,
                                offsetY: y, offsetX: x)
    }

    /// The crop window of replica `replica`'s batch at `(epoch, step)` when the crop is per
    /// batch: `CounterRNG(seed:, purpose: .augmentation, epoch, step, -1 - replica)`
    /// (negative, so it never shares a stream with an image's draw), rows then columns.
    public func batchCrop(epoch: Int, step: Int, replica: Int) -> (offsetY: Int, offsetX: Int) {
        var rng = CounterRNG(seed: seed, purpose: .augmentation, epoch, step, -1 - replica)
        let span = 2 * augmentation.pad + 1
        let y = rng.nextInt(below: span)
        return (y, rng.nextInt(below: span))
    }

    private func gather(_ indices: [Int], epoch: Int, step: Int, replica: Int) -> Batch {
        let origin = BatchOrigin(seed: seed, epoch: epoch, step: step, replica: replica)
        if augmentation.isNone {
            var b = dataset.batch(indices: indices)
            b.origin = origin
            return b
        }
        let (h, w, c) = (dataset.height, dataset.width, dataset.channels)
        let size = dataset.imageSize
        let pad = augmentation.pad
        let fill = (0..<c).map { augmentation.fill == .zero ? 0 : dataset.normalization.black(channel: $0) }
        let batchCrop = augmentation.crop == .perBatch ? self.batchCrop(epoch: epoch, step: step, replica: replica) : nil
        var images = [Float](repeating: 0, count: indices.count * size)
        images.withUnsafeMutableBufferPointer { out in
            dataset.images.withUnsafeBufferPointer { src in
                for (n, index) in indices.enumerated() {
                    let d = draw(epoch: epoch, step: step, datasetIndex: index)
                    let (oy, ox) = batchCrop ?? (d.offsetY, d.offsetX)
                    for y in 0..<h {
                        for x in 0..<w {
                            // Per image: output (y, x) is pixel (y + oy - pad, x' + ox - pad)
                            // of the original, x' mirroring x when flipped (crop, then flip).
                            // Per batch: the flips come first, so the window's pixel
                            // (y + oy - pad, x + ox - pad) is mirrored afterwards.
                            var sy = y + oy - pad, sx: Int
                            if batchCrop != nil {
                                sx = x + ox - pad
                                if d.flipped { sx = w - 1 - sx }
                                if d.flippedVertically { sy = h - 1 - sy }
                            } else {
                                sx = (d.flipped ? w - 1 - x : x) + ox - pad
                                if d.flippedVertically { sy = (h - 1 - y) + oy - pad }
                            }
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
        return Batch(images: images, labels: indices.map { dataset.labels[$0] }, indices: indices, origin: origin)
    }
}

extension Dataset {
    /// The images and labels (or token sequences) at `indices`, unaugmented.
    public func batch(indices: [Int]) -> Batch {
        if let s = sequences {
            let (sources, targets) = s.gather(indices)
            return Batch(images: [], labels: targets, indices: indices,
                         tokens: TokenBatch(sources: sources, sourceLength: s.sourceLength, targetLength: s.targetLength))
        }
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
