import Foundation

/// Errors in loading or describing a data set; file errors name the file (and the record
/// where one is at fault).
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    /// A file the data set needs is not there; `hint` says where it comes from.
    case missingFile(path: String, hint: String)
    case unreadable(file: String, reason: String)
    case malformed(file: String, reason: String)
    /// Sizes that cannot make a data set (zero or negative sizes, fewer than two classes, ...).
    case invalidShape(String)
    /// A `DatasetSource` spelling that does not parse.
    case invalidSpec(spec: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let path, let hint): return "\(path): no such file; \(hint)"
        case .unreadable(let file, let reason): return "\(file): \(reason)"
        case .malformed(let file, let reason): return "\(file): \(reason)"
        case .invalidShape(let reason): return "invalid data set shape: \(reason)"
        case .invalidSpec(let spec, let reason): return "invalid data set '\(spec)': \(reason)"
        }
    }
}

/// Per-channel normalisation of 8-bit pixels: `(Float(x) / 255 - mean[c]) / std[c]`, each
/// operation one correctly rounded fp32 operation, so the result is the same on every machine.
public struct Normalization: Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count, "one mean and one std per channel")
        self.mean = mean
        self.std = std
    }

    /// Fashion-MNIST: mean and standard deviation of all training pixels (0.286041 and
    /// 0.353024, computed from the 60000 training images), rounded to four places.
    public static let fashionMNIST = Normalization(mean: [0.2860], std: [0.3530])
    /// CIFAR-10 as the reference study normalised it: ONE mean and standard deviation over
    /// every pixel of every channel of the 50000 training images (0.4734 and 0.2516, rounded
    /// to four places; from the per-channel means 0.4914, 0.4822, 0.4465 and standard
    /// deviations 0.2470, 0.2435, 0.2616, the overall variance being the mean channel variance
    /// plus the variance of the channel means), the same for R, G and B.
    public static let cifar10 = Normalization(mean: [0.4734, 0.4734, 0.4734], std: [0.2516, 0.2516, 0.2516])
    /// Values kept as they are (`(x - 0) / 1`), for data generated already normalised.
    public static func identity(channels: Int) -> Normalization {
        Normalization(mean: Array(repeating: 0, count: channels), std: Array(repeating: 1, count: channels))
    }

    public var channels: Int { mean.count }

    /// The normalised value of the 8-bit pixel `x` in `channel`.
    public func value(_ x: UInt8, channel: Int) -> Float {
        (Float(x) / 255 - mean[channel]) / std[channel]
    }

    /// The normalised value of a black (raw 0) pixel: what padding fills in, as when
    /// torchvision pads before it normalises.
    public func black(channel: Int) -> Float { value(0, channel: channel) }

    /// `value(x, channel:)` for all 256 `x`: the same bits, one table lookup per pixel.
    func table(channel: Int) -> [Float] { (0..<256).map { value(UInt8($0), channel: channel) } }
}

/// A data set in memory: labelled images, already normalised, or token sequences
/// (``sequences``; a sequence-to-sequence task such as ``FortunesText``).
public struct Dataset: Sendable {
    public let name: String
    public let height: Int
    public let width: Int
    public let channels: Int
    public let classes: Int
    /// `count x height x width x channels` (NHWC), normalised with `normalization`.
    public let images: [Float]
    /// One label in `0..<classes` per image.
    public let labels: [Int32]
    /// How `images` were normalised; `normalization.black(channel:)` is the padding value.
    public let normalization: Normalization
    /// The examples of a sequence-to-sequence data set (nil for images). Such a data set has
    /// no images and no labels (`images` and `labels` are empty; its nominal image shape is
    /// `1 x sourceLength x 1` and `classes` the vocabulary): its batches carry the sources in
    /// ``Batch/tokens`` and the targets as ``Batch/labels``, one per target token.
    public let sequences: TokenSequences?

    /// Examples: images, or token sequences.
    public var count: Int { sequences?.count ?? labels.count }
    /// Predictions scored over the whole data set: one per image, or one per target token.
    public var predictionCount: Int { sequences.map { $0.count * $0.targetLength } ?? labels.count }
    /// Floats per image: `height x width x channels`.
    public var imageSize: Int { height * width * channels }

    /// Checks that the sizes fit together and that every label is in `0..<classes`.
    public init(name: String, height: Int, width: Int, channels: Int, classes: Int,
                images: [Float], labels: [Int32], normalization: Normalization? = nil) throws(DatasetError) {
        try Self.validate(height: height, width: width, channels: channels, classes: classes, count: labels.count)
        let normalization = normalization ?? .identity(channels: channels)
        guard normalization.channels == channels else {
            throw .invalidShape("\(name): normalisation has \(normalization.channels) channels, images have \(channels)")
        }
        guard images.count == labels.count * height * width * channels else {
            throw .invalidShape("\(name): \(images.count) image values for \(labels.count) images of \(height)x\(width)x\(channels)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classes }) {
            throw .invalidShape("\(name): label \(labels[bad]) of image \(bad) is outside 0..<\(classes)")
        }
        self.name = name
        self.height = height
        self.width = width
        self.channels = channels
        self.classes = classes
        self.images = images
        self.labels = labels
        self.normalization = normalization
        sequences = nil
    }

    /// A data set of token sequences (already checked by ``TokenSequences``).
    public init(name: String, sequences: TokenSequences) {
        self.name = name
        height = 1
        width = sequences.sourceLength
        channels = 1
        classes = sequences.vocabulary
        images = []
        labels = []
        normalization = .identity(channels: 1)
        self.sequences = sequences
    }

    /// Sizes must be positive, there must be at least two classes, and the data must fit in
    /// 2^32 floats (a guard against typing mistakes that would allocate without end).
    static func validate(height: Int, width: Int, channels: Int, classes: Int, count: Int) throws(DatasetError) {
        for (what, v) in [("height", height), ("width", width), ("channels", channels), ("image count", count)] where v <= 0 {
            throw .invalidShape("\(what) must be positive, got \(v)")
        }
        guard classes >= 2 else { throw .invalidShape("need at least 2 classes, got \(classes)") }
        var total = 1
        for v in [count, height, width, channels] {
            let (p, overflow) = total.multipliedReportingOverflow(by: v)
            guard !overflow, p <= 1 << 32 else {
                throw .invalidShape("\(count) images of \(height)x\(width)x\(channels) are more than 2^32 values")
            }
            total = p
        }
    }
}

/// The training and test halves of a data set.
public struct DataSplit: Sendable {
    public let train: Dataset
    public let test: Dataset

    public init(train: Dataset, test: Dataset) {
        self.train = train
        self.test = test
    }
}

/// Where a data set comes from.
///
/// CLI spellings (`parse`):
/// - `fashion-mnist` — the Debian package's copy in `/usr/share/datasets/fashion-mnist`;
/// - `fashion-mnist:DIR` — the four IDX files (`.gz` or uncompressed) in `DIR`;
/// - `cifar10:PATH` — the binary version's `data_batch_{1..5}.bin` and `test_batch.bin` in
///   `PATH` or in `PATH/cifar-10-batches-bin`;
/// - `synthetic` — 512 training and 128 test images of 8x8x1, 10 classes, seed 0 (a model of
///   another input shape gets them at its shape: ``fitted(to:)``);
/// - `synthetic:KEY=VALUE,...` — any of `train=N`, `test=N`, `shape=HxWxC` (or `HxW` for one
///   channel), `classes=K`, `seed=S` overriding those defaults, e.g.
///   `synthetic:train=2048,test=256,shape=16x16x3,classes=4,seed=7`;
/// - any of these with `@HxWxC` after the kind — the data set adapted to `HxWxC` images
///   (``ImageAdaptation``: centred on a black canvas, one channel repeated), e.g.
///   `fashion-mnist@32x32x3` or `fashion-mnist@32x32x3:DIR` (Fashion-MNIST for a 32x32x3
///   model); several apply in order;
/// - `fortunes` — the denoising task on the text of Debian's `fortunes` package
///   (``FortunesText``) in windows of 32 characters, seed 0 (a model of another sequence
///   length gets windows of its length: ``fitted(to:)``);
/// - `fortunes:KEY=VALUE,...` — any of `length=N`, `seed=S`, `dir=PATH` overriding those
///   defaults (`dir` last, as a path may hold commas), e.g. `fortunes:length=64,seed=1`.
public enum DatasetSource: Sendable, Equatable, CustomStringConvertible {
    case fashionMNIST(directory: String = DatasetSource.fashionMNISTDirectory)
    case cifar10(directory: String)
    case synthetic(seed: UInt64, trainCount: Int, testCount: Int, height: Int, width: Int, channels: Int, classes: Int)
    /// Another source's images adapted to another shape.
    indirect case adapted(DatasetSource, ImageAdaptation)
    /// The fortunes denoising task (``FortunesText``): windows of `length` characters.
    case fortunes(directory: String, length: Int, seed: UInt64)

    /// `fortunes` with its defaults.
    public static let defaultFortunes = DatasetSource.fortunes(directory: FortunesText.directory, length: 32, seed: 0)

    /// Where Debian's `dataset-fashion-mnist` package installs the data set.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    /// `synthetic` with its defaults.
    public static let defaultSynthetic = DatasetSource.synthetic(
        seed: 0, trainCount: 512, testCount: 128, height: 8, width: 8, channels: 1, classes: 10)

    /// The canonical CLI spelling; `parse(description)` gives `self` back.
    public var description: String {
        switch self {
        case .fashionMNIST(let dir): return dir == Self.fashionMNISTDirectory ? "fashion-mnist" : "fashion-mnist:\(dir)"
        case .cifar10(let dir): return "cifar10:\(dir)"
        case .synthetic(let seed, let train, let test, let h, let w, let c, let k):
            return "synthetic:train=\(train),test=\(test),shape=\(h)x\(w)x\(c),classes=\(k),seed=\(seed)"
        case .fortunes(let dir, let length, let seed):
            if self == Self.defaultFortunes { return "fortunes" }
            return "fortunes:length=\(length),seed=\(seed)" + (dir == FortunesText.directory ? "" : ",dir=\(dir)")
        case .adapted(let base, let adaptation):
            // The suffix goes at the end of the kind, before any `:ARGUMENT`.
            let text = base.description
            let end = text.firstIndex(of: ":") ?? text.endIndex
            return text[..<end] + "@\(adaptation)" + text[end...]
        }
    }

    /// The files and directories loading this source reads (none for synthetic data): a
    /// command's inputs, which its outputs may not overwrite.
    public var inputPaths: [String] {
        switch self {
        case .fashionMNIST(let dir), .cifar10(let dir), .fortunes(let dir, _, _): return [dir]
        case .synthetic: return []
        case .adapted(let base, _): return base.inputPaths
        }
    }

    /// Parses a CLI spelling (see the type's documentation).
    public static func parse(_ spec: String) throws(DatasetError) -> DatasetSource {
        let (head, argument): (Substring, Substring?) = {
            guard let colon = spec.firstIndex(of: ":") else { return (spec[...], nil) }
            return (spec[..<colon], spec[spec.index(after: colon)...])
        }()
        // `KIND@HxWxC@...`: adaptations after the kind, applied in order.
        let parts = head.split(separator: "@", omittingEmptySubsequences: false)
        let kind = parts[0]
        var adaptations: [ImageAdaptation] = []
        for shape in parts.dropFirst() {
            do { adaptations.append(try ImageAdaptation(parsing: shape)) } catch {
                throw .invalidSpec(spec: spec, reason: error.description.replacingOccurrences(of: "invalid data set shape: ", with: ""))
            }
        }
        let base = try parse(spec: spec, kind: kind, argument: argument)
        return adaptations.reduce(base) { .adapted($0, $1) }
    }

    /// The source of one kind (`fashion-mnist`, `cifar10`, `synthetic`) and its argument.
    private static func parse(spec: String, kind: Substring, argument: Substring?) throws(DatasetError) -> DatasetSource {
        switch kind {
        case "fashion-mnist":
            guard let dir = argument else { return .fashionMNIST() }
            guard !dir.isEmpty else { throw .invalidSpec(spec: spec, reason: "empty directory after 'fashion-mnist:'") }
            return .fashionMNIST(directory: String(dir))
        case "cifar10":
            guard let dir = argument, !dir.isEmpty else {
                throw .invalidSpec(spec: spec, reason: "CIFAR-10 needs its directory: cifar10:PATH")
            }
            return .cifar10(directory: String(dir))
        case "synthetic":
            guard case .synthetic(var seed, var train, var test, var h, var w, var c, var k) = defaultSynthetic else {
                preconditionFailure("defaultSynthetic is synthetic")
            }
            var seen: Set<Substring> = []
            for field in (argument ?? "").split(separator: ",", omittingEmptySubsequences: false) where argument != nil {
                let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw .invalidSpec(spec: spec, reason: "expected KEY=VALUE, found '\(field)' (keys: train, test, shape, classes, seed)")
                }
                let key = parts[0], value = parts[1]
                guard seen.insert(key).inserted else { throw .invalidSpec(spec: spec, reason: "'\(key)' given twice") }
                func int(_ s: Substring) throws(DatasetError) -> Int {
                    guard let v = Int(s) else { throw .invalidSpec(spec: spec, reason: "\(key) is '\(value)', not an integer") }
                    return v
                }
                switch key {
                case "train": train = try int(value)
                case "test": test = try int(value)
                case "classes": k = try int(value)
                case "seed":
                    guard let s = UInt64(value) else {
                        throw .invalidSpec(spec: spec, reason: "seed is '\(value)', not an unsigned 64-bit integer")
                    }
                    seed = s
                case "shape":
                    let dims = value.split(separator: "x", omittingEmptySubsequences: false)
                    guard dims.count == 2 || dims.count == 3 else {
                        throw .invalidSpec(spec: spec, reason: "shape is '\(value)'; expected HxWxC or HxW")
                    }
                    h = try int(dims[0])
                    w = try int(dims[1])
                    c = dims.count == 3 ? try int(dims[2]) : 1
                default:
                    throw .invalidSpec(spec: spec, reason: "unknown key '\(key)' (keys: train, test, shape, classes, seed)")
                }
            }
            let source = DatasetSource.synthetic(seed: seed, trainCount: train, testCount: test,
                                                 height: h, width: w, channels: c, classes: k)
            do { try source.validateSynthetic() } catch {
                throw .invalidSpec(spec: spec, reason: error.description)
            }
            return source
        case "fortunes":
            guard case .fortunes(var dir, var length, var seed) = defaultFortunes else { preconditionFailure("defaultFortunes is fortunes") }
            guard var rest = argument else { return defaultFortunes }
            var seen: Set<Substring> = []
            repeat {
                // `dir=` takes the rest of the spelling; the other keys end at a comma.
                let field: Substring
                if rest.hasPrefix("dir=") {
                    field = rest
                    rest = ""
                } else if let comma = rest.firstIndex(of: ",") {
                    field = rest[..<comma]
                    rest = rest[rest.index(after: comma)...]
                    if rest.isEmpty { throw .invalidSpec(spec: spec, reason: "empty field after ','") }
                } else {
                    field = rest
                    rest = ""
                }
                let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw .invalidSpec(spec: spec, reason: "expected KEY=VALUE, found '\(field)' (keys: length, seed, dir)") }
                let key = parts[0], value = parts[1]
                guard seen.insert(key).inserted else { throw .invalidSpec(spec: spec, reason: "'\(key)' given twice") }
                switch key {
                case "length":
                    guard let v = Int(value), (1...(1 << 16)).contains(v) else {
                        throw .invalidSpec(spec: spec, reason: "length is '\(value)'; expected an integer in 1...65536")
                    }
                    length = v
                case "seed":
                    guard let v = UInt64(value) else { throw .invalidSpec(spec: spec, reason: "seed is '\(value)', not an unsigned 64-bit integer") }
                    seed = v
                case "dir":
                    guard !value.isEmpty else { throw .invalidSpec(spec: spec, reason: "empty directory after 'dir='") }
                    dir = String(value)
                default:
                    throw .invalidSpec(spec: spec, reason: "unknown key '\(key)' (keys: length, seed, dir)")
                }
            } while !rest.isEmpty
            return .fortunes(directory: dir, length: length, seed: seed)
        default:
            throw .invalidSpec(spec: spec, reason: "unknown data set; expected fashion-mnist, fashion-mnist:DIR, cifar10:PATH, synthetic, synthetic:KEY=VALUE,..., fortunes or fortunes:KEY=VALUE,..., the image sets optionally with @HxWxC after the kind")
        }
    }

    /// Reads (or generates) the data set. Errors: `DatasetError`, or the `IDXError` of a
    /// damaged Fashion-MNIST file.
    public func load() throws -> DataSplit {
        switch self {
        case .fashionMNIST(let dir): return try FashionMNIST.load(directory: dir)
        case .cifar10(let dir): return try CIFAR10.load(path: dir)
        case .synthetic(let seed, let train, let test, let h, let w, let c, let k):
            try validateSynthetic()
            return try SyntheticData.generate(seed: seed, trainCount: train, testCount: test,
                                              height: h, width: w, channels: c, classes: k)
        case .fortunes(let dir, let length, let seed):
            return try FortunesText.load(directory: dir, length: length, seed: seed)
        case .adapted(let base, let adaptation):
            let data = try base.load()
            guard data.train.sequences == nil else {
                throw DatasetError.invalidSpec(spec: description, reason: "\(base) is a data set of token sequences; @\(adaptation) adapts images only")
            }
            return try adaptation.apply(to: data)
        }
    }

    private func validateSynthetic() throws(DatasetError) {
        guard case .synthetic(_, let train, let test, let h, let w, let c, let k) = self else { return }
        try Dataset.validate(height: h, width: w, channels: c, classes: k, count: train)
        do { try Dataset.validate(height: h, width: w, channels: c, classes: k, count: test) } catch {
            throw .invalidShape("test \(error.description.replacingOccurrences(of: "invalid data set shape: ", with: ""))")
        }
    }
}

// MARK: - Fashion-MNIST

enum FashionMNIST {
    static let hint = "Debian's package dataset-fashion-mnist provides it (apt-get install dataset-fashion-mnist)"
    /// Largest decompressed file accepted (the training images are 47 MB).
    static let sizeLimit = 1 << 30

    static func load(directory: String) throws -> DataSplit {
        DataSplit(train: try load(directory: directory, prefix: "train", name: "fashion-mnist-train"),
                  test: try load(directory: directory, prefix: "t10k", name: "fashion-mnist-test"))
    }

    /// `name.gz`, or the uncompressed `name` when only that is there.
    private static func locate(_ directory: String, _ name: String) throws(DatasetError) -> String {
        let gz = (directory as NSString).appendingPathComponent(name + ".gz")
        let raw = (directory as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: gz) { return gz }
        if FileManager.default.fileExists(atPath: raw) { return raw }
        throw .missingFile(path: gz, hint: hint)
    }

    private static func load(directory: String, prefix: String, name: String) throws -> Dataset {
        let imagePath = try locate(directory, "\(prefix)-images-idx3-ubyte")
        let labelPath = try locate(directory, "\(prefix)-labels-idx1-ubyte")
        let images = try IDXArray.load(path: imagePath, limit: sizeLimit)
        let labels = try IDXArray.load(path: labelPath, limit: sizeLimit)
        guard images.dimensions.count == 3 else {
            throw DatasetError.malformed(file: imagePath, reason: "expected 3 dimensions (count x height x width), found \(images.dimensions.count)")
        }
        guard labels.dimensions.count == 1 else {
            throw DatasetError.malformed(file: labelPath, reason: "expected 1 dimension (count), found \(labels.dimensions.count)")
        }
        let (n, h, w) = (images.dimensions[0], images.dimensions[1], images.dimensions[2])
        guard labels.dimensions[0] == n else {
            throw DatasetError.malformed(file: labelPath, reason: "\(labels.dimensions[0]) labels for the \(n) images of \(imagePath)")
        }
        if let bad = labels.bytes.firstIndex(where: { $0 > 9 }) {
            throw DatasetError.malformed(file: labelPath, reason: "record \(bad): label \(labels.bytes[bad]) is outside 0...9")
        }
        let table = Normalization.fashionMNIST.table(channel: 0)
        let pixels = [Float](unsafeUninitializedCapacity: images.bytes.count) { out, initialized in
            images.bytes.withUnsafeBufferPointer { src in
                table.withUnsafeBufferPointer { t in
                    for i in 0..<src.count { out[i] = t[Int(src[i])] }
                }
            }
            initialized = images.bytes.count
        }
        return try Dataset(name: name, height: h, width: w, channels: 1, classes: 10, images: pixels,
                           labels: labels.bytes.map { Int32($0) }, normalization: .fashionMNIST)
    }
}

// MARK: - CIFAR-10

enum CIFAR10 {
    static let side = 32
    static let recordSize = 1 + 3 * 32 * 32
    static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    static let testFile = "test_batch.bin"
    static let hint = "CIFAR-10's binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) unpacks data_batch_1.bin ... data_batch_5.bin and test_batch.bin into cifar-10-batches-bin/"

    static func load(path: String) throws(DatasetError) -> DataSplit {
        let nested = (path as NSString).appendingPathComponent("cifar-10-batches-bin")
        let first = trainFiles[0]
        let directory = !FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(first))
            && FileManager.default.fileExists(atPath: (nested as NSString).appendingPathComponent(first)) ? nested : path
        func read(_ files: [String], name: String) throws(DatasetError) -> Dataset {
            var images: [Float] = []
            var labels: [Int32] = []
            for file in files {
                try readBatch(path: (directory as NSString).appendingPathComponent(file), images: &images, labels: &labels)
            }
            return try Dataset(name: name, height: side, width: side, channels: 3, classes: 10,
                               images: images, labels: labels, normalization: .cifar10)
        }
        return DataSplit(train: try read(trainFiles, name: "cifar10-train"), test: try read([testFile], name: "cifar10-test"))
    }

    /// Appends the records of one batch file: a label byte, then 1024 red, 1024 green and
    /// 1024 blue bytes, each plane row-major 32x32; stored here as NHWC.
    static func readBatch(path: String, images: inout [Float], labels: inout [Int32]) throws(DatasetError) {
        guard FileManager.default.fileExists(atPath: path) else { throw .missingFile(path: path, hint: hint) }
        let data: Data
        switch InputFile.read(path, limit: InputFile.dataLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .unreadable(file: path, reason: e.reason)
        }
        guard data.count > 0, data.count % recordSize == 0 else {
            throw .malformed(file: path, reason: "size \(data.count) bytes is not a positive multiple of the \(recordSize)-byte CIFAR-10 record (\(data.count / recordSize) whole records, \(data.count % recordSize) bytes over)")
        }
        let records = data.count / recordSize
        let tables = (0..<3).map { Normalization.cifar10.table(channel: $0) }
        let plane = side * side
        let start = images.count
        images.append(contentsOf: repeatElement(0, count: records * plane * 3))
        labels.reserveCapacity(labels.count + records)
        var badLabel: (record: Int, label: UInt8)?
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let src = raw.bindMemory(to: UInt8.self)
            images.withUnsafeMutableBufferPointer { out in
                for r in 0..<records {
                    let rec = r * recordSize
                    let label = src[rec]
                    if label > 9 { badLabel = (r, label); return }
                    labels.append(Int32(label))
                    let dst = start + r * plane * 3
                    for c in 0..<3 {
                        let table = tables[c]
                        let from = rec + 1 + c * plane
                        for p in 0..<plane { out[dst + p * 3 + c] = table[Int(src[from + p])] }
                    }
                }
            }
        }
        if let bad = badLabel {
            throw .malformed(file: path, reason: "record \(bad.record) (byte offset \(bad.record * recordSize)): label \(bad.label) is outside 0...9")
        }
    }
}

extension DatasetSource {
    /// The source that feeds a model whose examples are `input`: `self`, except for the one
    /// adaptation made without being spelled out: Fashion-MNIST (28x28x1) for a model of
    /// CIFAR-10's shape (32x32x3 images, the `paper` ResNet-18) becomes
    /// `fashion-mnist@32x32x3` (2 black pixels on every side, the grey channel repeated over
    /// three); and synthetic data of another shape than the model's input is generated at
    /// the input's shape instead (so `synthetic` fits every scale; its spelled default is
    /// 8x8x1, which recorded traces keep meaning). Whoever fits a source reports it and
    /// records the fitted spelling (``TrainingRun/load(config:dataset:threads:)``); restoring
    /// a trace reads its recorded spelling as it is, never fitting again.
    public func fitted(to input: InputSpec) -> DatasetSource {
        switch (self, input) {
        case (.fashionMNIST, .images(32, 32, 3, _)):
            return .adapted(self, ImageAdaptation(height: 32, width: 32, channels: 3))
        case (.synthetic(let seed, let train, let test, let h, let w, let c, let k), .images(let ih, let iw, let ic, _)) where (h, w, c) != (ih, iw, ic):
            return .synthetic(seed: seed, trainCount: train, testCount: test, height: ih, width: iw, channels: ic, classes: k)
        case (.fortunes(let dir, let length, let seed), .tokens(let s, let t, _)) where s == t && length != t:
            return .fortunes(directory: dir, length: t, seed: seed)
        default:
            return self
        }
    }
}

// MARK: - Synthetic

/// A learnable synthetic data set: each class has a random prototype image with values
/// uniform in [-1, 1); a sample is its class's prototype plus noise `1.5 * (u1 + u2 + u3 -
/// 1.5)` per value (three uniforms in [0, 1): mean 0, standard deviation 0.75). Labels cycle
/// through the classes (`i % classes`), so every class is equally common.
///
/// Everything comes from `CounterRNG(seed:, purpose: .synthetic, ...)` and basic fp32
/// arithmetic (no libm), so the bits are the same on every machine: prototype `k` from the
/// stream `(0, k)`, training sample `i` from `(1, i)`, test sample `i` from `(2, i)`. Values
/// are stored as generated (identity normalisation).
enum SyntheticData {
    static func generate(seed: UInt64, trainCount: Int, testCount: Int, height: Int, width: Int,
                         channels: Int, classes: Int) throws(DatasetError) -> DataSplit {
        let size = height * width * channels
        let prototypes: [[Float]] = (0..<classes).map { k in
            var rng = CounterRNG(seed: seed, purpose: .synthetic, 0, k)
            return (0..<size).map { _ in rng.nextUniform() * 2 - 1 }
        }
        func split(_ stream: Int, _ count: Int, _ name: String) throws(DatasetError) -> Dataset {
            var images = [Float](repeating: 0, count: count * size)
            var labels = [Int32](repeating: 0, count: count)
            for i in 0..<count {
                let k = i % classes
                labels[i] = Int32(k)
                var rng = CounterRNG(seed: seed, purpose: .synthetic, stream, i)
                let prototype = prototypes[k]
                for j in 0..<size {
                    let sum = rng.nextUniform() + rng.nextUniform() + rng.nextUniform()
                    images[i * size + j] = prototype[j] + (sum - 1.5) * 1.5
                }
            }
            return try Dataset(name: name, height: height, width: width, channels: channels, classes: classes,
                               images: images, labels: labels)
        }
        return DataSplit(train: try split(1, trainCount, "synthetic-train"), test: try split(2, testCount, "synthetic-test"))
    }
}
