/// An explicit change of a data set's image shape, so that data of one shape can feed a model
/// that expects another (Fashion-MNIST's 28x28x1 images for the `paper` ResNet-18's 32x32x3):
/// each image is centred on a `height x width` canvas whose border is the normalised value of
/// a black pixel (``Normalization/black(channel:)``, what augmentation's padding fills in, as
/// when padding comes before normalisation), and a one-channel image is repeated over every
/// channel. Nothing is scaled or interpolated: every value of the result is a value of the
/// source or a black pixel's.
///
/// Spelled `@HxWxC` after a data set's kind (``DatasetSource``: `fashion-mnist@32x32x3`,
/// `fashion-mnist@32x32x3:DIR`); the adapted data set's name gets the same suffix
/// (`fashion-mnist-train@32x32x3`) and its normalisation the source's per channel (repeated
/// with the image), so a trace that records the spelling reloads exactly the data that fed it.
public struct ImageAdaptation: Sendable, Equatable, CustomStringConvertible {
    public var height: Int
    public var width: Int
    public var channels: Int

    public init(height: Int, width: Int, channels: Int) {
        self.height = height
        self.width = width
        self.channels = channels
    }

    /// `HxWxC`, e.g. `32x32x3`.
    public init(parsing text: Substring) throws(DatasetError) {
        let dims = text.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard dims.count == 3, let h = dims[0], let w = dims[1], let c = dims[2], h > 0, w > 0, c > 0 else {
            throw .invalidShape("adaptation '@\(text)': expected @HxWxC with positive sizes, e.g. @32x32x3")
        }
        self.init(height: h, width: w, channels: c)
    }

    /// `HxWxC`.
    public var description: String { "\(height)x\(width)x\(channels)" }

    /// Pixels of border above and left of the source image (the same below and right).
    func margins(of d: Dataset) -> (top: Int, left: Int) { ((height - d.height) / 2, (width - d.width) / 2) }

    /// Checks that `d` can be adapted: the canvas is at least as large as its images with the
    /// same margin on both sides (an even difference), and its images have one channel or
    /// already `channels`.
    public func check(_ d: Dataset) throws(DatasetError) {
        guard height > 0, width > 0, channels > 0 else { throw .invalidShape("\(d.name): cannot adapt to \(self): sizes must be positive") }
        guard height >= d.height, width >= d.width, (height - d.height) % 2 == 0, (width - d.width) % 2 == 0 else {
            throw .invalidShape("\(d.name): cannot adapt \(d.height)x\(d.width) images to \(height)x\(width): the canvas must be at least as large, with the same border on both sides (an even difference)")
        }
        guard d.channels == channels || d.channels == 1 else {
            throw .invalidShape("\(d.name): cannot adapt \(d.channels)-channel images to \(channels) channels (only one channel is repeated)")
        }
        try Dataset.validate(height: height, width: width, channels: channels, classes: d.classes, count: d.count)
    }

    /// Whether ``check(_:)`` accepts `d`.
    public func fits(_ d: Dataset) -> Bool {
        do { try check(d) } catch { return false }
        return true
    }

    /// `d` with every image adapted (see the type's documentation).
    public func apply(to d: Dataset) throws(DatasetError) -> Dataset {
        try check(d)
        let (top, left) = margins(of: d)
        let (sh, sw, sc) = (d.height, d.width, d.channels)
        let size = height * width * channels, sourceSize = d.imageSize
        // Channel c of the result reads channel `c` of the source, or its only one.
        let from = (0..<channels).map { sc == 1 ? 0 : $0 }
        let black = from.map { d.normalization.black(channel: $0) }
        let total = d.count * size
        let images = [Float](unsafeUninitializedCapacity: total) { out, initialized in
            d.images.withUnsafeBufferPointer { src in
                for i in 0..<d.count {
                    let image = i * size, source = i * sourceSize
                    for y in 0..<height {
                        let sy = y - top
                        for x in 0..<width {
                            let sx = x - left
                            let pixel = image + (y * width + x) * channels
                            if sy >= 0 && sy < sh && sx >= 0 && sx < sw {
                                let s = source + (sy * sw + sx) * sc
                                for c in 0..<channels { out[pixel + c] = src[s + from[c]] }
                            } else {
                                for c in 0..<channels { out[pixel + c] = black[c] }
                            }
                        }
                    }
                }
            }
            initialized = total
        }
        let normalization = Normalization(mean: from.map { d.normalization.mean[$0] }, std: from.map { d.normalization.std[$0] })
        return try Dataset(name: "\(d.name)@\(self)", height: height, width: width, channels: channels, classes: d.classes,
                           images: images, labels: d.labels, normalization: normalization)
    }

    /// Both halves of `split`, adapted.
    public func apply(to split: DataSplit) throws(DatasetError) -> DataSplit {
        DataSplit(train: try apply(to: split.train), test: try apply(to: split.test))
    }
}
