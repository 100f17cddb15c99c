import CZlib
import Foundation
import Testing
import TestSupport
@testable import Sim

/// A fresh temporary directory for one test.
private func temporaryDirectory() throws -> String {
    let dir = Scratch.path("data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

private struct GzipWriteFailed: Error { var path: String }

/// Writes `bytes` gzip-compressed with zlib's own gzip writer, independent of the reader.
private func writeGzip(_ bytes: [UInt8], to path: String) throws {
    guard let file = gzopen(path, "wb9") else { throw GzipWriteFailed(path: path) }
    let written = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
    #expect(gzclose(file) == Z_OK)
    #expect(Int(written) == bytes.count)
}

private func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

private func join(_ dir: String, _ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

/// An IDX file of unsigned bytes.
private func idx(_ dimensions: [Int], _ payload: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0, 0, 8, UInt8(dimensions.count)]
    for d in dimensions { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return out + payload
}

private func fp32Bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

// MARK: - Gzip

@Suite struct GzipTests {
    @Test func gzipRoundTripThroughZlibRecoversTheBytes() throws {
        let dir = try temporaryDirectory()
        let path = join(dir, "data.gz")
        var rng = CounterRNG(seed: 1, purpose: .synthetic)
        // Half random, half runs: both stored and compressed blocks, well past the first buffer.
        let bytes = (0..<300_000).map { i in i % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : UInt8(i / 1000 % 256) }
        try writeGzip(bytes, to: path)
        #expect(try Gzip.decompress(path: path, limit: bytes.count) == bytes)
        try writeGzip([], to: path)
        #expect(try Gzip.decompress(path: path, limit: 0) == [])
    }

    @Test func concatenatedGzipMembersDecompressToTheConcatenation() throws {
        let dir = try temporaryDirectory()
        try writeGzip(Array("first member, ".utf8), to: join(dir, "a.gz"))
        try writeGzip(Array("second member".utf8), to: join(dir, "b.gz"))
        let joined = try Data(contentsOf: URL(fileURLWithPath: join(dir, "a.gz"))) + Data(contentsOf: URL(fileURLWithPath: join(dir, "b.gz")))
        #expect(try Gzip.decompress([UInt8](joined), file: "ab.gz", limit: 100) == Array("first member, second member".utf8))
    }

    @Test func truncatedGzipFailsNamingTheFile() throws {
        let dir = try temporaryDirectory()
        let path = join(dir, "cut.gz")
        try writeGzip((0..<10_000).map { UInt8($0 % 251) }, to: path)
        let whole = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        for keep in [0, 5, whole.count / 2, whole.count - 1] {
            try write(Array(whole[..<keep]), to: path)
            let error = #expect(throws: GzipError.self) { try Gzip.decompress(path: path, limit: 1 << 20) }
            guard case .truncated(let file, let compressed, _) = error else {
                Issue.record("expected .truncated after keeping \(keep) bytes, got \(String(describing: error))")
                continue
            }
            #expect(file == path && compressed == keep)
            #expect(error?.description.contains(path) == true)
        }
    }

    @Test func damagedGzipFailsAsCorruptNamingTheFile() throws {
        let dir = try temporaryDirectory()
        let path = join(dir, "bad.gz")
        try writeGzip(Array(repeating: 7, count: 1000), to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 8] ^= 0xFF   // the CRC-32 in the trailer
        let crc = #expect(throws: GzipError.self) { try Gzip.decompress(bytes, file: path, limit: 1 << 20) }
        guard case .corrupt(let file, _, let reason) = crc else { Issue.record("got \(String(describing: crc))"); return }
        #expect(file == path && reason.contains("check"))
        #expect(crc?.description.contains(path) == true)

        let notGzip = #expect(throws: GzipError.self) { try Gzip.decompress(Array("plain text".utf8), file: "t.gz", limit: 100) }
        guard case .corrupt("t.gz", _, let header) = notGzip else { Issue.record("got \(String(describing: notGzip))"); return }
        #expect(header.contains("header"))
    }

    @Test func outputOverTheLimitFailsInsteadOfGrowing() throws {
        let dir = try temporaryDirectory()
        let path = join(dir, "bomb.gz")
        try writeGzip(Array(repeating: 0, count: 1 << 20), to: path)
        #expect(throws: GzipError.sizeLimitExceeded(file: path, limit: 1000)) { try Gzip.decompress(path: path, limit: 1000) }
        #expect(throws: GzipError.sizeLimitExceeded(file: path, limit: (1 << 20) - 1)) {
            try Gzip.decompress(path: path, limit: (1 << 20) - 1)
        }
        #expect(try Gzip.decompress(path: path, limit: 1 << 20).count == 1 << 20)
    }

    @Test func missingGzipFileFailsNamingIt() {
        #expect(throws: GzipError.unreadable(file: "/nonexistent/x.gz", reason: "no such file")) {
            try Gzip.decompress(path: "/nonexistent/x.gz", limit: 10)
        }
    }
}

// MARK: - IDX

@Suite struct IDXTests {
    @Test func idxParsesBigEndianDimensionsAndPayload() throws {
        let array = try IDXArray.parse(idx([2, 3], [1, 2, 3, 4, 5, 6]), file: "a.idx")
        #expect(array == IDXArray(dimensions: [2, 3], bytes: [1, 2, 3, 4, 5, 6]))
        let big = try IDXArray.parse(idx([258], Array(repeating: 9, count: 258)), file: "b.idx")
        #expect(big.dimensions == [258] && big.bytes.count == 258)
    }

    @Test func corruptIDXHeaderFailsNamingTheFileAndTheProblem() {
        #expect(throws: IDXError.badMagic(file: "f", magic: 0x0102_0801)) { try IDXArray.parse([1, 2, 8, 1, 0, 0, 0, 0], file: "f") }
        #expect(throws: IDXError.unsupportedType(file: "f", code: 0x0D)) { try IDXArray.parse([0, 0, 0x0D, 1, 0, 0, 0, 0], file: "f") }
        #expect(throws: IDXError.badDimensionCount(file: "f", count: 0)) { try IDXArray.parse([0, 0, 8, 0], file: "f") }
        #expect(throws: IDXError.tooShort(file: "f", bytes: 2, needed: 4)) { try IDXArray.parse([0, 0], file: "f") }
        #expect(throws: IDXError.tooShort(file: "f", bytes: 8, needed: 12)) { try IDXArray.parse([0, 0, 8, 2, 0, 0, 0, 1], file: "f") }
        #expect(throws: IDXError.dimensionsOverflow(file: "f", dimensions: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF])) {
            try IDXArray.parse([0, 0, 8, 3] + Array(repeating: 0xFF, count: 12), file: "f")
        }
        let text = IDXError.unsupportedType(file: "/d/x.idx", code: 0x0D).description
        #expect(text.contains("/d/x.idx") && text.contains("float"))
        #expect(IDXError.badMagic(file: "/d/x.idx", magic: 0x1F8B_0800).description.contains("0x1F8B0800"))
    }

    @Test func idxPayloadOfTheWrongSizeFails() {
        #expect(throws: IDXError.payloadSizeMismatch(file: "f", dimensions: [2, 3], expected: 6, actual: 5)) {
            try IDXArray.parse(idx([2, 3], [1, 2, 3, 4, 5]), file: "f")
        }
        #expect(throws: IDXError.payloadSizeMismatch(file: "f", dimensions: [2, 3], expected: 6, actual: 7)) {
            try IDXArray.parse(idx([2, 3], [1, 2, 3, 4, 5, 6, 7]), file: "f")
        }
        let text = IDXError.payloadSizeMismatch(file: "/d/f", dimensions: [2, 3], expected: 6, actual: 5).description
        #expect(text == "/d/f: IDX payload is 5 bytes but the header declares 2 x 3 = 6")
    }
}

// MARK: - Fashion-MNIST

private let fashionMNISTInstalled = FileManager.default.fileExists(
    atPath: join(DatasetSource.fashionMNISTDirectory, "train-images-idx3-ubyte.gz"))

/// Writes a Fashion-MNIST-shaped directory with `count` images of 2x3 per split.
private func writeTinyFashionMNIST(to dir: String, labels: [UInt8], pixels: [UInt8], compressed: Bool = true) throws {
    for prefix in ["train", "t10k"] {
        let files = [("\(prefix)-images-idx3-ubyte", idx([labels.count, 2, 3], pixels)),
                     ("\(prefix)-labels-idx1-ubyte", idx([labels.count], labels))]
        for (name, bytes) in files {
            if compressed { try writeGzip(bytes, to: join(dir, name + ".gz")) } else { try write(bytes, to: join(dir, name)) }
        }
    }
}

@Suite struct FashionMNISTTests {
    @Test(.enabled(if: fashionMNISTInstalled,
                   "Fashion-MNIST is not in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)"))
    func realFashionMNISTLoadsWithKnownLabelsAndPixels() throws {
        let split = try DatasetSource.fashionMNIST().load()
        for (set, count) in [(split.train, 60000), (split.test, 10000)] {
            #expect(set.count == count && set.images.count == count * 784)
            #expect((set.height, set.width, set.channels, set.classes) == (28, 28, 1, 10))
            // Fashion-MNIST is balanced: exactly a tenth of each split per class.
            var perClass = [Int](repeating: 0, count: 10)
            for l in set.labels { perClass[Int(l)] += 1 }
            #expect(perClass == Array(repeating: count / 10, count: 10))
        }
        #expect(Array(split.train.labels.prefix(12)) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9])
        #expect(Array(split.test.labels.prefix(12)) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5])
        // Raw pixels back from the normalised values (the table is strictly increasing):
        // sums of the first image and of the first 100, from Python's gzip module.
        let table = Normalization.fashionMNIST.table(channel: 0)
        let raw = Dictionary(uniqueKeysWithValues: table.enumerated().map { ($1.bitPattern, $0) })
        let firstHundred = try split.train.images.prefix(78_400).map { v in try #require(raw[v.bitPattern]) }
        #expect(firstHundred.prefix(784).reduce(0, +) == 76247)
        #expect(firstHundred.reduce(0, +) == 5_688_570)
        #expect(split.train.images[14 * 28 + 14].bitPattern == Normalization.fashionMNIST.value(217, channel: 0).bitPattern)
    }

    @Test func missingFashionMNISTNamesTheFileAndTheDebianPackage() {
        let error = #expect(throws: DatasetError.self) { try DatasetSource.fashionMNIST(directory: "/nonexistent/fmnist").load() }
        guard case .missingFile(let path, _) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(path == "/nonexistent/fmnist/train-images-idx3-ubyte.gz")
        let text = error?.description ?? ""
        #expect(text.contains(path) && text.contains("dataset-fashion-mnist") && text.contains("apt-get install"))
    }

    @Test func fashionMNISTFilesAreReadGzippedOrPlainAndNormalised() throws {
        let labels: [UInt8] = [9, 0, 3]
        let pixels = (0..<18).map { UInt8($0 * 15) }
        for compressed in [true, false] {
            let dir = try temporaryDirectory()
            try writeTinyFashionMNIST(to: dir, labels: labels, pixels: pixels, compressed: compressed)
            let split = try DatasetSource.fashionMNIST(directory: dir).load()
            #expect(split.train.labels == [9, 0, 3] && split.test.count == 3)
            #expect((split.train.height, split.train.width, split.train.channels) == (2, 3, 1))
            // (x / 255 - 0.2860) / 0.3530 in fp32.
            let expected = pixels.map { (Float($0) / 255 - Float(0.2860)) / Float(0.3530) }
            #expect(fp32Bits(split.train.images) == fp32Bits(expected))
        }
    }

    @Test func fashionMNISTLabelOutOfRangeNamesFileAndRecord() throws {
        let dir = try temporaryDirectory()
        try writeTinyFashionMNIST(to: dir, labels: [1, 10, 2], pixels: Array(repeating: 0, count: 18))
        let error = #expect(throws: DatasetError.self) { try DatasetSource.fashionMNIST(directory: dir).load() }
        let text = error?.description ?? ""
        #expect(text.contains("train-labels-idx1-ubyte.gz") && text.contains("record 1") && text.contains("label 10"))
    }
}

// MARK: - CIFAR-10

/// Pixel byte of record `r`, plane `c`, position `p` in the hand-made files.
private func cifarByte(record r: Int, channel c: Int, pixel p: Int) -> UInt8 { UInt8((p * 7 + c * 50 + r * 3) % 256) }

private func cifarFile(labels: [UInt8], firstRecord: Int) -> [UInt8] {
    var out: [UInt8] = []
    for (i, label) in labels.enumerated() {
        out.append(label)
        for c in 0..<3 { for p in 0..<1024 { out.append(cifarByte(record: firstRecord + i, channel: c, pixel: p)) } }
    }
    return out
}

/// data_batch_1 with two records, batches 2-5 and the test batch with one each.
private func writeTinyCIFAR(to dir: String) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try write(cifarFile(labels: [3, 7], firstRecord: 0), to: join(dir, "data_batch_1.bin"))
    for b in 2...5 { try write(cifarFile(labels: [UInt8(b)], firstRecord: b), to: join(dir, "data_batch_\(b).bin")) }
    try write(cifarFile(labels: [9], firstRecord: 6), to: join(dir, "test_batch.bin"))
}

@Suite struct CIFAR10Tests {
    @Test func cifarRecordsBecomeNHWCWithPerChannelNormalisation() throws {
        let dir = try temporaryDirectory()
        try writeTinyCIFAR(to: dir)
        let split = try DatasetSource.cifar10(directory: dir).load()
        #expect(split.train.labels == [3, 7, 2, 3, 4, 5] && split.test.labels == [9])
        #expect((split.train.height, split.train.width, split.train.channels, split.train.classes) == (32, 32, 3, 10))
        let mean: [Float] = [0.4734, 0.4734, 0.4734], std: [Float] = [0.2516, 0.2516, 0.2516]   // one scalar, as the reference
        for (set, first) in [(split.train, 0), (split.test, 6)] {
            var expected: [Float] = []
            for n in 0..<set.count { for y in 0..<32 { for x in 0..<32 { for c in 0..<3 {
                expected.append((Float(cifarByte(record: first + n, channel: c, pixel: y * 32 + x)) / 255 - mean[c]) / std[c])
            } } } }
            #expect(fp32Bits(set.images) == fp32Bits(expected))
        }
        // One value by hand: record 1, row 2, column 5, green: byte (69 * 7 + 50 + 3) % 256 = 24.
        #expect(split.train.images[((1 * 32 + 2) * 32 + 5) * 3 + 1] == (Float(24) / 255 - 0.4734) / 0.2516)
    }

    @Test func cifarParentOfTheBatchesFolderIsAccepted() throws {
        let dir = try temporaryDirectory()
        try writeTinyCIFAR(to: join(dir, "cifar-10-batches-bin"))
        #expect(try DatasetSource.cifar10(directory: dir).load().train.count == 6)
    }

    @Test func cifarFileOfBadSizeFailsNamingTheFile() throws {
        let dir = try temporaryDirectory()
        try writeTinyCIFAR(to: dir)
        let path = join(dir, "data_batch_3.bin")
        try write(Array(cifarFile(labels: [1, 2], firstRecord: 0).dropLast()), to: path)
        let error = #expect(throws: DatasetError.self) { try DatasetSource.cifar10(directory: dir).load() }
        guard case .malformed(let file, let reason) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(file == path && reason.contains("6145 bytes") && reason.contains("3073"))
    }

    @Test func cifarLabelAboveNineFailsNamingFileAndRecord() throws {
        let dir = try temporaryDirectory()
        try writeTinyCIFAR(to: dir)
        let path = join(dir, "test_batch.bin")
        try write(cifarFile(labels: [1, 10], firstRecord: 0), to: path)
        let error = #expect(throws: DatasetError.self) { try DatasetSource.cifar10(directory: dir).load() }
        guard case .malformed(let file, let reason) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(file == path && reason.contains("record 1") && reason.contains("label 10"))
    }

    @Test func missingCIFARFileSaysWhereTheDataComesFrom() throws {
        let dir = try temporaryDirectory()
        let error = #expect(throws: DatasetError.self) { try DatasetSource.cifar10(directory: dir).load() }
        #expect(error == .missingFile(path: join(dir, "data_batch_1.bin"), hint: CIFAR10.hint))
        #expect(error?.description.contains("cifar-10-binary.tar.gz") == true)
    }
}

// MARK: - Synthetic data and specs

@Suite struct SyntheticDataTests {
    @Test func syntheticDataIsBitIdenticalForASeedAndDiffersAcrossSeeds() throws {
        let source = DatasetSource.synthetic(seed: 5, trainCount: 64, testCount: 16, height: 4, width: 4, channels: 2, classes: 3)
        let a = try source.load(), b = try source.load()
        #expect(fp32Bits(a.train.images) == fp32Bits(b.train.images) && fp32Bits(a.test.images) == fp32Bits(b.test.images))
        #expect(a.train.labels == b.train.labels)
        let other = try DatasetSource.synthetic(seed: 6, trainCount: 64, testCount: 16, height: 4, width: 4,
                                                channels: 2, classes: 3).load()
        #expect(fp32Bits(other.train.images) != fp32Bits(a.train.images))
        #expect(fp32Bits(Array(a.train.images.prefix(16 * 32))) != fp32Bits(a.test.images))
        // Pinned: runs on other machines must reproduce these bits (only fp32 basic operations).
        let d = try DatasetSource.defaultSynthetic.load()
        #expect(d.train.images[0].bitPattern == Self.pinnedFirst)
        #expect(d.train.images.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1.bitPattern) } == Self.pinnedHash)
    }

    static let pinnedFirst: UInt32 = 3_219_916_385
    static let pinnedHash: UInt64 = 6_522_693_714_010_713_909

    @Test func syntheticDataIsLearnableByNearestClassMean() throws {
        let split = try DatasetSource.defaultSynthetic.load()
        let (train, test) = (split.train, split.test)
        let size = train.imageSize
        #expect(train.count == 512 && test.count == 128 && size == 64 && train.classes == 10)
        var means = [[Float]](repeating: Array(repeating: 0, count: size), count: 10)
        for i in 0..<train.count { for j in 0..<size { means[Int(train.labels[i])][j] += train.images[i * size + j] } }
        var correct = 0
        for i in 0..<test.count {
            let distances = means.map { m in (0..<size).reduce(Float(0)) { s, j in
                let d = test.images[i * size + j] - m[j] / Float(train.count / 10)
                return s + d * d
            } }
            if distances.firstIndex(of: distances.min()!) == Int(test.labels[i]) { correct += 1 }
        }
        #expect(correct >= 120, "nearest class mean got \(correct) of 128")
    }

    @Test func impossibleShapesFailClearly() {
        func shape(_ h: Int, _ w: Int, _ c: Int, _ k: Int, train: Int = 8, test: Int = 8) -> DatasetSource {
            .synthetic(seed: 0, trainCount: train, testCount: test, height: h, width: w, channels: c, classes: k)
        }
        #expect(throws: DatasetError.invalidShape("height must be positive, got 0")) { try shape(0, 4, 1, 2).load() }
        #expect(throws: DatasetError.invalidShape("channels must be positive, got -1")) { try shape(4, 4, -1, 2).load() }
        #expect(throws: DatasetError.invalidShape("need at least 2 classes, got 1")) { try shape(4, 4, 1, 1).load() }
        #expect(throws: DatasetError.invalidShape("image count must be positive, got 0")) { try shape(4, 4, 1, 2, train: 0).load() }
        #expect(throws: DatasetError.self) { try shape(4, 4, 1, 2, test: -3).load() }
        #expect(throws: DatasetError.self) { try shape(1 << 20, 1 << 20, 1 << 20, 2).load() }
        #expect(throws: DatasetError.self) {
            try Dataset(name: "d", height: 1, width: 1, channels: 1, classes: 2, images: [0, 0], labels: [0, 2])
        }
        #expect(throws: DatasetError.self) {
            try Dataset(name: "d", height: 1, width: 1, channels: 1, classes: 2, images: [0], labels: [0, 1])
        }
    }
}

@Suite struct DatasetSpecTests {
    @Test func datasetSpellingsParseAndRoundTrip() throws {
        #expect(try DatasetSource.parse("fashion-mnist") == .fashionMNIST(directory: "/usr/share/datasets/fashion-mnist"))
        #expect(try DatasetSource.parse("fashion-mnist:/data/fm") == .fashionMNIST(directory: "/data/fm"))
        #expect(try DatasetSource.parse("cifar10:/data/c:10") == .cifar10(directory: "/data/c:10"))
        #expect(try DatasetSource.parse("synthetic") == .synthetic(seed: 0, trainCount: 512, testCount: 128,
                                                                    height: 8, width: 8, channels: 1, classes: 10))
        #expect(try DatasetSource.parse("synthetic:train=64,test=16,shape=4x5x3,classes=3,seed=9")
                == .synthetic(seed: 9, trainCount: 64, testCount: 16, height: 4, width: 5, channels: 3, classes: 3))
        #expect(try DatasetSource.parse("synthetic:shape=6x7")
                == .synthetic(seed: 0, trainCount: 512, testCount: 128, height: 6, width: 7, channels: 1, classes: 10))
        for spec in ["fashion-mnist", "fashion-mnist:/x", "cifar10:/y", "synthetic:train=3,test=2,shape=1x2x3,classes=2,seed=4"] {
            let source = try DatasetSource.parse(spec)
            #expect(try DatasetSource.parse(source.description) == source)
        }
    }

    @Test(arguments: ["cifar10", "cifar10:", "mnist", "fashion-mnist:", "synthetic:", "synthetic:train=0",
                      "synthetic:foo=1", "synthetic:train=1,train=2", "synthetic:shape=4", "synthetic:shape=4x4x",
                      "synthetic:classes=1", "synthetic:seed=-1", "synthetic:train", "synthetic:test=x"])
    func badDatasetSpellingsFailNamingTheSpelling(spec: String) {
        let error = #expect(throws: DatasetError.self) { try DatasetSource.parse(spec) }
        guard case .invalidSpec(let given, _) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(given == spec)
    }
}

// MARK: - Batch sampler

/// `count` images of `height x width x 1` whose pixels are `index * 100 + position`.
private func numbered(count: Int, height: Int = 2, width: Int = 2, normalization: Normalization? = nil) throws -> Dataset {
    let size = height * width
    return try Dataset(name: "numbered", height: height, width: width, channels: 1, classes: 2,
                       images: (0..<count * size).map { Float($0 / size * 100 + $0 % size) },
                       labels: (0..<count).map { Int32($0 % 2) }, normalization: normalization)
}

@Suite struct BatchSamplerTests {
    @Test func everyIndexAppearsOncePerEpochAcrossStepsAndReplicas() throws {
        let sampler = try BatchSampler(dataset: numbered(count: 103), globalBatch: 12, replicas: 3, seed: 42)
        #expect(sampler.stepsPerEpoch == 8 && sampler.perReplica == 4)
        var orders: [[Int]] = []
        for epoch in 0..<3 {
            var seen: [Int] = []
            for step in 0..<8 { for replica in 0..<3 { seen += sampler.batch(epoch: epoch, step: step, replica: replica).indices } }
            #expect(seen.count == 96 && Set(seen).count == 96 && seen.allSatisfy { (0..<103).contains($0) })
            #expect(seen == Array(sampler.order(epoch: epoch).prefix(96)))
            orders.append(seen)
        }
        #expect(orders[0] != orders[1] && orders[1] != orders[2])
    }

    @Test func batchesDoNotDependOnCallOrder() throws {
        let data = try numbered(count: 40)
        let keys = (0..<2).flatMap { e in (0..<5).flatMap { s in (0..<2).map { r in (e, s, r) } } }
        let a = try BatchSampler(dataset: data, globalBatch: 8, replicas: 2, seed: 7, augmentation: Augmentation(flip: true, pad: 1))
        let forward = keys.map { a.batch(epoch: $0.0, step: $0.1, replica: $0.2) }
        let b = try BatchSampler(dataset: data, globalBatch: 8, replicas: 2, seed: 7, augmentation: Augmentation(flip: true, pad: 1))
        var shuffled = keys.indices.map { $0 }
        var rng = CounterRNG(seed: 3, purpose: .dataOrder)
        shuffled = rng.permutation(shuffled.count).map { shuffled[$0] }
        for i in shuffled { #expect(b.batch(epoch: keys[i].0, step: keys[i].1, replica: keys[i].2) == forward[i]) }
        #expect(a.batches(epoch: 1, step: 3) == [forward[16], forward[17]])
    }

    @Test func replicaSlicesAreDisjointContiguousSlicesOfTheGlobalBatch() throws {
        let sampler = try BatchSampler(dataset: numbered(count: 50), globalBatch: 16, replicas: 4, seed: 1)
        for step in 0..<sampler.stepsPerEpoch {
            let global = sampler.globalIndices(epoch: 2, step: step)
            let slices = (0..<4).map { sampler.batch(epoch: 2, step: step, replica: $0) }
            #expect(slices.flatMap(\.indices) == global)
            #expect(Set(slices.flatMap(\.indices)).count == 16)
            for s in slices {
                #expect(s.count == 4 && s.images.count == 16)
                // Unaugmented: the images and labels are the dataset's own.
                #expect(s.images == s.indices.flatMap { i in (0..<4).map { Float(i * 100 + $0) } })
                #expect(s.labels == s.indices.map { Int32($0 % 2) })
            }
        }
    }

    @Test func augmentationIsDeterministicChangesImagesAndIgnoresReplicaCount() throws {
        let data = try numbered(count: 64, height: 4, width: 4)
        let augmented = Augmentation(flip: true, pad: 2)
        let one = try BatchSampler(dataset: data, globalBatch: 16, replicas: 1, seed: 9, augmentation: augmented)
        let four = try BatchSampler(dataset: data, globalBatch: 16, replicas: 4, seed: 9, augmentation: augmented)
        let plain = try BatchSampler(dataset: data, globalBatch: 16, replicas: 1, seed: 9)
        let whole = one.batch(epoch: 1, step: 2, replica: 0)
        #expect(whole == one.batch(epoch: 1, step: 2, replica: 0))
        #expect(four.batches(epoch: 1, step: 2).map(\.images).reduce([], +) == whole.images)
        let unaugmented = plain.batch(epoch: 1, step: 2, replica: 0)
        #expect(unaugmented.indices == whole.indices && unaugmented.labels == whole.labels)
        let changed = (0..<16).filter { n in whole.images[n * 16 ..< n * 16 + 16] != unaugmented.images[n * 16 ..< n * 16 + 16] }
        #expect(changed.count >= 8, "only \(changed.count) of 16 images changed")
        let otherSeed = try BatchSampler(dataset: data, globalBatch: 16, replicas: 1, seed: 10, augmentation: augmented)
        #expect(otherSeed.draw(epoch: 1, step: 2, datasetIndex: 5) != one.draw(epoch: 1, step: 2, datasetIndex: 5)
                || otherSeed.draw(epoch: 1, step: 2, datasetIndex: 6) != one.draw(epoch: 1, step: 2, datasetIndex: 6))
    }

    @Test func flipMirrorsEachRow() throws {
        // Two images of 2x3: rows (0 1 2)(3 4 5) and (100 101 102)(103 104 105).
        let data = try numbered(count: 2, height: 2, width: 3)
        let sampler = try BatchSampler(dataset: data, globalBatch: 2, replicas: 1, seed: 0, augmentation: Augmentation(flip: true, pad: 0))
        var outcomes: Set<Bool> = []
        for epoch in 0..<16 {
            let batch = sampler.batch(epoch: epoch, step: 0, replica: 0)
            for (n, index) in batch.indices.enumerated() {
                let image = Array(batch.images[n * 6 ..< n * 6 + 6])
                let base = Float(index * 100)
                let original: [Float] = [0, 1, 2, 3, 4, 5].map { base + $0 }
                let mirrored: [Float] = [2, 1, 0, 5, 4, 3].map { base + $0 }
                let flipped = sampler.draw(epoch: epoch, step: 0, datasetIndex: index).flipped
                #expect(image == (flipped ? mirrored : original))
                outcomes.insert(flipped)
            }
        }
        #expect(outcomes == [false, true])
    }

    @Test func cropShiftsTheWindowAndPadsWithBlack() throws {
        // 3x3 images (0 1 2)(3 4 5)(6 7 8) + 100 x index, normalised like Fashion-MNIST, so the
        // padding is (0 - 0.2860) / 0.3530, the value of a black pixel.
        let data = try numbered(count: 2, height: 3, width: 3, normalization: .fashionMNIST)
        let P = (0 - Float(0.2860)) / Float(0.3530)
        let expected: [AugmentationDraw: [Float]] = [
            AugmentationDraw(flipped: false, offsetY: 1, offsetX: 1): [0, 1, 2, 3, 4, 5, 6, 7, 8],
            AugmentationDraw(flipped: false, offsetY: 0, offsetX: 0): [P, P, P, P, 0, 1, P, 3, 4],
            AugmentationDraw(flipped: false, offsetY: 2, offsetX: 2): [4, 5, P, 7, 8, P, P, P, P],
            AugmentationDraw(flipped: false, offsetY: 0, offsetX: 2): [P, P, P, 1, 2, P, 4, 5, P],
            AugmentationDraw(flipped: false, offsetY: 1, offsetX: 0): [P, 0, 1, P, 3, 4, P, 6, 7],
            AugmentationDraw(flipped: true, offsetY: 1, offsetX: 1): [2, 1, 0, 5, 4, 3, 8, 7, 6],
            AugmentationDraw(flipped: true, offsetY: 0, offsetX: 0): [P, P, P, 1, 0, P, 4, 3, P],
            AugmentationDraw(flipped: true, offsetY: 2, offsetX: 1): [5, 4, 3, 8, 7, 6, P, P, P],
        ]
        let sampler = try BatchSampler(dataset: data, globalBatch: 2, replicas: 1, seed: 3, augmentation: Augmentation(flip: true, pad: 1))
        var checked: Set<AugmentationDraw> = []
        for epoch in 0..<200 {
            let batch = sampler.batch(epoch: epoch, step: 0, replica: 0)
            for (n, index) in batch.indices.enumerated() {
                let draw = sampler.draw(epoch: epoch, step: 0, datasetIndex: index)
                #expect((0...2).contains(draw.offsetY) && (0...2).contains(draw.offsetX))
                guard let want = expected[draw] else { continue }
                let add = Float(index * 100)
                let image = want.map { $0 == P ? P : $0 + add }
                #expect(fp32Bits(Array(batch.images[n * 9 ..< n * 9 + 9])) == fp32Bits(image), "draw \(draw) of image \(index)")
                checked.insert(draw)
            }
        }
        #expect(checked == Set(expected.keys))
    }

    @Test func samplerRejectsBatchingThatCannotWork() throws {
        let data = try numbered(count: 10)
        func reason(_ batch: Int, _ replicas: Int, _ aug: Augmentation = .none) -> String? {
            do { _ = try BatchSampler(dataset: data, globalBatch: batch, replicas: replicas, seed: 0, augmentation: aug); return nil }
            catch { return error.description }
        }
        #expect(reason(0, 1)?.contains("global batch must be positive") == true)
        #expect(reason(4, 0)?.contains("replicas must be positive") == true)
        #expect(reason(6, 4)?.contains("does not divide evenly among 4 replicas") == true)
        #expect(reason(12, 2)?.contains("larger than the 10 images") == true)
        #expect(reason(4, 2, Augmentation(flip: false, pad: -1))?.contains("padding must not be negative") == true)
        #expect(reason(10, 5) == nil)
        #expect(try BatchSampler(dataset: data, globalBatch: 4, replicas: 2, seed: 0).stepsPerEpoch == 2)
    }

    @Test func testBatchesCoverTheDatasetInOrderWithoutAugmentation() throws {
        let data = try numbered(count: 10)
        let batches = data.testBatches(batchSize: 4)
        #expect(batches.count == 3 && batches.map(\.count) == [4, 4, 2])
        #expect(batches.flatMap(\.indices) == Array(0..<10))
        #expect(batches.flatMap(\.images) == data.images && batches.flatMap(\.labels) == data.labels)
        #expect(data.testBatches(batchSize: 5).count == 2 && data.testBatches(batchSize: 11).count == 1)
    }
}

// MARK: - Adapting a data set to a model's input shape

@Suite struct ImageAdaptationTests {
    /// Two 2x3 one-channel images normalised as Fashion-MNIST, raw pixels `0, 15, ..., 165`.
    static func grey() throws -> Dataset {
        let pixels = (0..<12).map { Normalization.fashionMNIST.value(UInt8($0 * 15), channel: 0) }
        return try Dataset(name: "grey", height: 2, width: 3, channels: 1, classes: 2, images: pixels, labels: [1, 0],
                           normalization: .fashionMNIST)
    }

    @Test func aGreyImageIsCentredOnABlackBorderAndRepeatedOverChannels() throws {
        let d = try Self.grey()
        let a = try ImageAdaptation(height: 6, width: 7, channels: 3).apply(to: d)
        #expect((a.height, a.width, a.channels, a.classes, a.count) == (6, 7, 3, 2, 2))
        #expect(a.name == "grey@6x7x3" && a.labels == [1, 0] && a.images.count == 2 * 6 * 7 * 3)
        #expect(a.normalization == Normalization(mean: [0.2860, 0.2860, 0.2860], std: [0.3530, 0.3530, 0.3530]))
        // The border is a black pixel's normalised value, bit for bit what the loader gives raw 0.
        let black = (Float(0) / 255 - Float(0.2860)) / Float(0.3530)
        #expect(black.bitPattern == Normalization.fashionMNIST.black(channel: 0).bitPattern && black < 0)
        for i in 0..<2 { for y in 0..<6 { for x in 0..<7 {
            let pixel = Array(a.images[((i * 6 + y) * 7 + x) * 3..<((i * 6 + y) * 7 + x + 1) * 3])
            // Margins: (6 - 2) / 2 = 2 rows above and below, (7 - 3) / 2 = 2 columns each side.
            let inside = (2..<4).contains(y) && (2..<5).contains(x)
            let expected = inside ? d.images[(i * 2 + y - 2) * 3 + x - 2] : black
            #expect(fp32Bits(pixel) == fp32Bits([expected, expected, expected]), "image \(i) pixel (\(y), \(x))")
        } } }
    }

    @Test func fashionMNISTShapedImagesBecomeCIFARShapedWithTwoPixelsEachSide() throws {
        // Two 28x28 images whose raw pixel is (y * 28 + x) % 251 + 1: never black inside.
        let raw: [UInt8] = (0..<2 * 784).map { (n: Int) -> UInt8 in UInt8(n % 784 % 251 + 1 + n / 784) }
        let d = try Dataset(name: "fm", height: 28, width: 28, channels: 1, classes: 10,
                            images: raw.map { Normalization.fashionMNIST.value($0, channel: 0) }, labels: [3, 7], normalization: .fashionMNIST)
        let a = try ImageAdaptation(height: 32, width: 32, channels: 3).apply(to: d)
        #expect((a.height, a.width, a.channels) == (32, 32, 3) && a.imageSize == 3072)
        let black = Normalization.fashionMNIST.black(channel: 0)
        func at(_ i: Int, _ y: Int, _ x: Int) -> [Float] {
            let start: Int = (i * 1024 + y * 32 + x) * 3
            return Array(a.images[start..<start + 3])
        }
        func source(_ i: Int, _ y: Int, _ x: Int) -> Float { d.images[i * 784 + y * 28 + x] }
        for i in 0..<2 {
            #expect(at(i, 2, 2) == Array(repeating: source(i, 0, 0), count: 3) && at(i, 29, 29) == Array(repeating: source(i, 27, 27), count: 3))
            #expect(at(i, 2, 29) == Array(repeating: source(i, 0, 27), count: 3) && at(i, 17, 5) == Array(repeating: source(i, 15, 3), count: 3))
            for (y, x) in [(0, 0), (1, 1), (1, 15), (30, 30), (31, 0), (15, 1), (15, 30), (2, 1), (29, 30)] {
                #expect(at(i, y, x) == [black, black, black], "image \(i) (\(y), \(x))")
            }
            // Exactly the 4 x 32 - 4 border pixels of 2-pixel width are black: 1024 - 784 = 240.
            #expect((0..<1024).filter { at(i, $0 / 32, $0 % 32) == [black, black, black] }.count == 240)
        }
    }

    @Test func colourImagesKeepTheirChannelsAndImpossibleShapesFailClearly() throws {
        let rgb = try Dataset(name: "rgb", height: 1, width: 1, channels: 3, classes: 2, images: [0.5, -0.5, 2], labels: [1],
                              normalization: .cifar10)
        let a = try ImageAdaptation(height: 3, width: 3, channels: 3).apply(to: rgb)
        #expect(Array(a.images[12..<15]) == [0.5, -0.5, 2] && a.normalization == .cifar10)
        #expect(Array(a.images[0..<3]) == (0..<3).map { Normalization.cifar10.black(channel: $0) })
        let d = try Self.grey()
        for (shape, message) in [((3, 3, 1), "even difference"), ((2, 2, 1), "at least as large"), ((4, 4, 1), "4x4"),
                                 ((2, 3, 0), "sizes must be positive")] {
            let error = #expect(throws: DatasetError.self) { try ImageAdaptation(height: shape.0, width: shape.1, channels: shape.2).apply(to: d) }
            #expect(error?.description.contains(message) == true && error?.description.contains("grey") == true, "\(String(describing: error))")
        }
        #expect(throws: DatasetError.invalidShape("rgb: cannot adapt 3-channel images to 1 channels (only one channel is repeated)")) {
            try ImageAdaptation(height: 1, width: 1, channels: 1).apply(to: rgb)
        }
    }

    @Test func adaptedSpellingsParseRoundTripAndLoad() throws {
        let fm32 = ImageAdaptation(height: 32, width: 32, channels: 3)
        #expect(try DatasetSource.parse("fashion-mnist@32x32x3") == .adapted(.fashionMNIST(), fm32))
        #expect(try DatasetSource.parse("fashion-mnist@32x32x3:/data/fm") == .adapted(.fashionMNIST(directory: "/data/fm"), fm32))
        #expect(try DatasetSource.parse("synthetic@8x8x3@10x10x3:shape=4x4") == .adapted(.adapted(.synthetic(
            seed: 0, trainCount: 512, testCount: 128, height: 4, width: 4, channels: 1, classes: 10), ImageAdaptation(height: 8, width: 8, channels: 3)),
            ImageAdaptation(height: 10, width: 10, channels: 3)))
        for spec in ["fashion-mnist@32x32x3", "fashion-mnist@32x32x3:/x", "cifar10@36x36x3:/y", "synthetic@8x8x3@10x10x3:train=3,test=2,shape=4x4x1,classes=2,seed=4"] {
            let source = try DatasetSource.parse(spec)
            let reparsed = try DatasetSource.parse(source.description)
            #expect(source.description == spec && reparsed == source)
        }
        // Loaded: the source's images adapted, names marked.
        let plain = try DatasetSource.parse("synthetic:train=4,test=2,shape=4x4x1").load()
        let adapted = try DatasetSource.parse("synthetic@8x8x3:train=4,test=2,shape=4x4x1").load()
        #expect(adapted.train.name == "synthetic-train@8x8x3" && adapted.test.name == "synthetic-test@8x8x3")
        #expect(fp32Bits(adapted.train.images) == fp32Bits(try ImageAdaptation(height: 8, width: 8, channels: 3).apply(to: plain.train).images))
        #expect(Set(adapted.train.images.enumerated().filter { ($0.offset / 3 % 64) / 8 < 2 }.map(\.element)) == [0])  // identity normalisation: black is 0
    }

    @Test(arguments: ["fashion-mnist@", "fashion-mnist@32x32", "fashion-mnist@32x32x0", "fashion-mnist@axbxc", "@32x32x3", "mnist@32x32x3"])
    func badAdaptationSpellingsFailNamingTheSpelling(spec: String) {
        let error = #expect(throws: DatasetError.self) { try DatasetSource.parse(spec) }
        guard case .invalidSpec(let given, _) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(given == spec)
    }

    @Test func onlyFashionMNISTForA32x32x3ModelIsFittedWithoutBeingSpelledOut() {
        let cifarShaped = InputSpec.images(height: 32, width: 32, channels: 3, classes: 10)
        #expect(DatasetSource.fashionMNIST().fitted(to: cifarShaped) == .adapted(.fashionMNIST(), ImageAdaptation(height: 32, width: 32, channels: 3)))
        #expect(DatasetSource.fashionMNIST(directory: "/d").fitted(to: cifarShaped).description == "fashion-mnist@32x32x3:/d")
        #expect(DatasetSource.fashionMNIST().fitted(to: .images(height: 28, width: 28, channels: 1, classes: 10)) == .fashionMNIST())
        for source in [DatasetSource.cifar10(directory: "/c"), .adapted(.fashionMNIST(), ImageAdaptation(height: 32, width: 32, channels: 3))] {
            #expect(source.fitted(to: cifarShaped) == source)
        }
        // Synthetic data is generated at the model's shape (the spelling then names it).
        #expect(DatasetSource.defaultSynthetic.fitted(to: cifarShaped).description == "synthetic:train=512,test=128,shape=32x32x3,classes=10,seed=0")
        #expect(DatasetSource.defaultSynthetic.fitted(to: .images(height: 8, width: 8, channels: 1, classes: 10)) == .defaultSynthetic)
    }

    /// The `paper` ResNet-18 on a Fashion-MNIST directory: fitted, reported, and the spelling
    /// to record reloads the same data; an un-adaptable mismatch stays an error.
    @Test func thePaperModelRunsOnFashionMNISTPaddedToCIFARShape() throws {
        let dir = try temporaryDirectory()
        let count = 128
        let pixels = (0..<count * 784).map { UInt8($0 % 256) }
        for prefix in ["train", "t10k"] {
            try writeGzip(idx([count, 28, 28], pixels), to: join(dir, "\(prefix)-images-idx3-ubyte.gz"))
            try writeGzip(idx([count], (0..<count).map { UInt8($0 % 10) }), to: join(dir, "\(prefix)-labels-idx1-ubyte.gz"))
        }
        let paper = try TrainingConfig(workload: "resnet18", scale: "paper", replicas: 1)
        let loaded = try TrainingRun.load(config: paper, dataset: "fashion-mnist:" + dir)
        #expect(loaded.dataset == "fashion-mnist@32x32x3:" + dir && loaded.fitted == ImageAdaptation(height: 32, width: 32, channels: 3))
        #expect(loaded.run.data.train.name == "fashion-mnist-train@32x32x3" && loaded.run.data.train.imageSize == 3072)
        #expect(loaded.run.batches(step: 0).first?.images.count == 128 * 3072)
        let again = try DatasetSource.parse(loaded.dataset).load()
        #expect(fp32Bits(again.train.images) == fp32Bits(loaded.run.data.train.images) && fp32Bits(again.test.images) == fp32Bits(loaded.run.data.test.images))
        // Spelled out, the same; another model is fed Fashion-MNIST as it is.
        #expect(try TrainingRun.load(config: paper, dataset: "fashion-mnist@32x32x3:" + dir).fitted == nil)
        let small = try TrainingRun.load(config: TrainingConfig(workload: "resnet18", scale: "small", replicas: 1), dataset: "fashion-mnist:" + dir)
        #expect(small.fitted == nil && small.dataset == "fashion-mnist:" + dir && small.run.data.train.imageSize == 784)
        // Mismatches: a hint where an adaptation would fit, none where it would not.
        let tiny = try TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 1)
        let shrink = #expect(throws: TrainingError.self) { try TrainingRun.load(config: tiny, dataset: "fashion-mnist:" + dir) }
        #expect(shrink == .mismatch("data set fashion-mnist-train has 28x28x1 images; resnet18 tiny expects 16x16x1"))
        let grow = #expect(throws: TrainingError.self) { try TrainingRun.load(config: paper, dataset: "synthetic@28x28x1:train=128,test=8,shape=28x28x1") }
        #expect(grow?.description.contains("resnet18 paper expects 32x32x3 (its images can be adapted: add @32x32x3 after the data set's kind") == true)
    }
}
