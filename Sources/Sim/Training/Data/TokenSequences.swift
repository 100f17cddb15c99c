import Foundation

/// Sequence-to-sequence examples: per example a source of `sourceLength` tokens (what an
/// encoder reads) and a target of `targetLength` tokens (what a decoder writes), each token in
/// `0..<vocabulary`. A model scores one prediction per target token, so its metric is token
/// accuracy (chance `1 / vocabulary`).
public struct TokenSequences: Sendable, Equatable {
    public let sourceLength: Int
    public let targetLength: Int
    public let vocabulary: Int
    /// `count x sourceLength`, row-major.
    public let sources: [Int32]
    /// `count x targetLength`, row-major.
    public let targets: [Int32]

    /// Checks that the sizes fit together and that every token is in `0..<vocabulary`; the
    /// errors name `name`.
    public init(name: String, sourceLength: Int, targetLength: Int, vocabulary: Int, sources: [Int32], targets: [Int32]) throws(DatasetError) {
        guard sourceLength > 0, targetLength > 0 else {
            throw .invalidShape("\(name): sequence lengths must be positive, got \(sourceLength) and \(targetLength)")
        }
        guard vocabulary >= 2 else { throw .invalidShape("\(name): need a vocabulary of at least 2 tokens, got \(vocabulary)") }
        guard sources.count % sourceLength == 0, !sources.isEmpty else {
            throw .invalidShape("\(name): \(sources.count) source tokens are not a positive number of \(sourceLength)-token sequences")
        }
        let count = sources.count / sourceLength
        guard targets.count == count * targetLength else {
            throw .invalidShape("\(name): \(targets.count) target tokens for \(count) examples of \(targetLength) tokens")
        }
        for (what, tokens) in [("source", sources), ("target", targets)] {
            if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocabulary }) {
                throw .invalidShape("\(name): \(what) token \(tokens[bad]) at \(bad) is outside 0..<\(vocabulary)")
            }
        }
        self.sourceLength = sourceLength
        self.targetLength = targetLength
        self.vocabulary = vocabulary
        self.sources = sources
        self.targets = targets
    }

    /// Examples.
    public var count: Int { sources.count / sourceLength }

    /// The examples at `indices`, in that order.
    public func gather(_ indices: [Int]) -> (sources: [Int32], targets: [Int32]) {
        var s: [Int32] = [], t: [Int32] = []
        s.reserveCapacity(indices.count * sourceLength)
        t.reserveCapacity(indices.count * targetLength)
        for i in indices {
            precondition((0..<count).contains(i), "index \(i) is outside 0..<\(count)")
            s.append(contentsOf: sources[i * sourceLength ..< (i + 1) * sourceLength])
            t.append(contentsOf: targets[i * targetLength ..< (i + 1) * targetLength])
        }
        return (s, t)
    }
}

/// The token part of a ``Batch`` of sequence-to-sequence examples: the sources. (The targets
/// are the batch's ``Batch/labels``, one per prediction, `count x targetLength`.)
public struct TokenBatch: Sendable, Equatable {
    /// `count x sourceLength`, row-major.
    public var sources: [Int32]
    public var sourceLength: Int
    public var targetLength: Int

    public init(sources: [Int32], sourceLength: Int, targetLength: Int) {
        precondition(sourceLength > 0 && targetLength > 0 && sources.count % sourceLength == 0, "token batch: sizes do not fit")
        self.sources = sources
        self.sourceLength = sourceLength
        self.targetLength = targetLength
    }

    /// Examples.
    public var count: Int { sources.count / sourceLength }
}

// MARK: - The fortunes denoising task

/// A denoising task on real English text: the fortune-cookie files of Debian's `fortunes`
/// package (about 2.5 MB of plain text, `/usr/share/games/fortunes`).
///
/// - Text: every file of the directory whose name has no `.` (not the `.dat` indexes nor the
///   `.u8` links), in name order, except `ascii-art` (drawings, not sentences). A file is a
///   list of fortunes separated by lines holding just `%`. A fortune with a byte outside
///   printable ASCII (other than tab, newline, carriage return) is left out; in the others
///   every run of whitespace becomes one space. The fortunes, trimmed, are joined by a
///   newline into one stream.
/// - Vocabulary: 128 tokens, the 7-bit ASCII codes: a character is its code; token 0 is
///   padding (never produced), token 1 (``mask``) marks a masked character, token 10 (newline)
///   separates fortunes.
/// - Examples: consecutive, non-overlapping windows of `length` characters of the stream. The
///   target is the window; the source is the window with spans masked: walking the window,
///   each unmasked position starts a span with probability 1/16, of 1 to 5 characters
///   (uniform), each replaced by ``mask`` (about 16 % of characters). Window `w`'s spans come
///   from `CounterRNG(seed:, purpose: .text, 1, w)`.
/// - Split: a tenth of the windows (at least one) is held out, the first of the permutation
///   `CounterRNG(seed:, purpose: .text, 0).permutation(windows)`; both halves keep the stream's
///   order.
public enum FortunesText {
    /// Where Debian's `fortunes` (and `fortunes-min`) install the files.
    public static let directory = "/usr/share/games/fortunes"
    public static let hint = "Debian's package fortunes provides it (scripts/setup.sh installs it; apt-get install fortunes)"
    public static let vocabulary = 128
    public static let mask: Int32 = 1
    public static let separator: Int32 = 10
    static let excluded: Set<String> = ["ascii-art"]
    /// Largest file accepted (the largest is under 1 MB).
    static let sizeLimit = 1 << 26

    /// The stream of tokens of the directory's text (see the type's documentation).
    public static func stream(directory: String) throws(DatasetError) -> [Int32] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .missingFile(path: directory, hint: hint)
        }
        let files = names.filter { !$0.contains(".") && !excluded.contains($0) }.sorted()
        // `fortunes` is the file fortunes-min installs: without it the package is missing.
        guard files.contains("fortunes") else {
            throw .missingFile(path: (directory as NSString).appendingPathComponent("fortunes"), hint: hint)
        }
        var out: [Int32] = []
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            let data: Data
            switch InputFile.read(path, limit: sizeLimit) {
            case .success(let d): data = d
            case .failure(let e): throw .unreadable(file: path, reason: e.reason)
            }
            for fortune in fortunes(in: [UInt8](data)) {
                if !out.isEmpty { out.append(separator) }
                out.append(contentsOf: fortune)
            }
        }
        guard !out.isEmpty else { throw .malformed(file: directory, reason: "no fortune of printable ASCII text in any file") }
        return out
    }

    /// The fortunes of one file as tokens, normalised (see the type's documentation).
    static func fortunes(in bytes: [UInt8]) -> [[Int32]] {
        var result: [[Int32]] = []
        var lines: [[UInt8]] = []
        func flush() {
            defer { lines = [] }
            var tokens: [Int32] = [], space = false, valid = true
            for line in lines {
                for b in line + [10] {
                    switch b {
                    case 9, 10, 13, 32: space = !tokens.isEmpty
                    case 33...126:
                        if space { tokens.append(32) }
                        space = false
                        tokens.append(Int32(b))
                    default: valid = false
                    }
                }
            }
            if valid, !tokens.isEmpty { result.append(tokens) }
        }
        for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
            let trimmed = line.last == 13 ? line.dropLast() : line[...]
            if trimmed.elementsEqual([UInt8(ascii: "%")]) { flush() } else { lines.append(Array(trimmed)) }
        }
        flush()
        return result
    }

    /// The source of window `index` (its `window` of characters with spans masked).
    public static func corrupt(_ window: ArraySlice<Int32>, index: Int, seed: UInt64) -> [Int32] {
        var rng = CounterRNG(seed: seed, purpose: .text, 1, index)
        var out = Array(window)
        var i = 0
        while i < out.count {
            if rng.nextInt(below: 16) == 0 {
                let span = 1 + rng.nextInt(below: 5)
                for j in i ..< min(i + span, out.count) { out[j] = mask }
                i += span
            } else {
                i += 1
            }
        }
        return out
    }

    /// The task's training and held-out splits at windows of `length` characters.
    public static func load(directory: String, length: Int, seed: UInt64) throws(DatasetError) -> DataSplit {
        guard (1...(1 << 16)).contains(length) else { throw .invalidShape("fortunes: window length must be in 1...65536, got \(length)") }
        let text = try stream(directory: directory)
        let windows = text.count / length
        guard windows >= 2 else { throw .invalidShape("fortunes: \(text.count) characters make fewer than two windows of \(length)") }
        var rng = CounterRNG(seed: seed, purpose: .text, 0)
        let order = rng.permutation(windows)
        let held = Set(order.prefix(max(1, windows / 10)))
        func split(_ keep: (Int) -> Bool, name: String) throws(DatasetError) -> Dataset {
            var sources: [Int32] = [], targets: [Int32] = []
            for w in 0..<windows where keep(w) {
                let window = text[w * length ..< (w + 1) * length]
                targets.append(contentsOf: window)
                sources.append(contentsOf: corrupt(window, index: w, seed: seed))
            }
            return Dataset(name: name, sequences: try TokenSequences(name: name, sourceLength: length, targetLength: length, vocabulary: vocabulary,
                                                                     sources: sources, targets: targets))
        }
        return DataSplit(train: try split({ !held.contains($0) }, name: "fortunes-train"), test: try split({ held.contains($0) }, name: "fortunes-test"))
    }
}
