import Sim

/// Errors encoding or decoding a snapshot blob; each says what is wrong. A blob that fails
/// any check is never decoded into numbers.
public enum SnapshotCodecError: Error, CustomStringConvertible, Equatable {
    /// The blob is shorter than its header.
    case truncated(bytes: Int, needed: Int)
    /// The first four bytes are not the snapshot tag.
    case notASnapshot
    case unsupportedVersion(UInt8)
    case unknownFrameKind(UInt8)
    /// A blob of another kind than the call decodes (e.g. a keyframe given to
    /// ``SnapshotCodec/decodeUpdate(_:updateElements:referenceDigest:)``).
    case wrongFrameKind(expected: SnapshotHeader.FrameKind, got: SnapshotHeader.FrameKind)
    case unknownFlags(UInt8)
    /// Header fields contradict each other (e.g. byte count is not 4 x element count).
    case inconsistentHeader(String)
    /// The header declares more raw bytes than the decoder allows.
    case tooLarge(rawBytes: UInt64, limit: Int)
    /// A delta blob was given no reference state.
    case referenceRequired
    /// The reference has a different element count than the snapshot.
    case referenceSizeMismatch(elements: Int, expected: Int)
    /// The reference is not the state the delta was encoded against.
    case wrongReference(expected: Digest, got: Digest)
    /// The compressed payload is damaged or does not hold the declared byte count.
    case corruptPayload(String)
    /// The decoded values do not match the digest recorded at encoding: damage that the
    /// payload checksum did not catch (e.g. in the header).
    case digestMismatch(expected: Digest, got: Digest)
    /// Applying an update delta to its reference gave a state whose digest is not the one
    /// recorded: the trace was written by other code or configuration, or the blob is damaged.
    case updateMismatch(expected: Digest, got: Digest)
    case compressionFailed(String)

    public var description: String {
        switch self {
        case .truncated(let bytes, let needed): return "snapshot blob has \(bytes) bytes; its header alone needs \(needed)"
        case .notASnapshot: return "not a snapshot blob (bad format tag)"
        case .unsupportedVersion(let v): return "snapshot format version \(v) is not supported (expected \(SnapshotHeader.version))"
        case .unknownFrameKind(let k): return "unknown snapshot frame kind \(k) (1 keyframe, 2 delta, 3 update)"
        case .wrongFrameKind(let expected, let got): return "snapshot blob is a \(got), expected a \(expected)"
        case .unknownFlags(let f): return "unknown snapshot flags 0x\(String(f, radix: 16))"
        case .inconsistentHeader(let m): return "inconsistent snapshot header: \(m)"
        case .tooLarge(let raw, let limit): return "snapshot declares \(raw) raw bytes; the limit is \(limit)"
        case .referenceRequired: return "snapshot is a delta: decoding it needs its reference (keyframe) state"
        case .referenceSizeMismatch(let elements, let expected):
            return "reference state has \(elements) elements; the delta was encoded against \(expected)"
        case .wrongReference(let expected, let got):
            return "wrong reference for delta: it was encoded against the state with digest \(expected), the given reference has digest \(got)"
        case .corruptPayload(let m): return "corrupt snapshot payload: \(m)"
        case .digestMismatch(let expected, let got):
            return "decoded snapshot has digest \(got), the header records \(expected): the blob is damaged"
        case .updateMismatch(let expected, let got):
            return "applying the recorded update gave a state with digest \(got), the header records \(expected): the trace was recorded by other code or configuration, or the blob is damaged"
        case .compressionFailed(let m): return "snapshot compression failed: \(m)"
        }
    }
}

/// The fixed 40-byte header in front of every snapshot blob (all integers little-endian):
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | tag `TSNP` |
/// | 4 | format version (1) |
/// | 5 | frame kind: 1 keyframe, 2 delta (XOR), 3 update (the step's gradients and batch statistics) |
/// | 6 | flags: bit 0 byte shuffle |
/// | 7 | zstd level used (informational) |
/// | 8..<16 | raw byte count (4 x element count) |
/// | 16..<24 | element count (of the state; for an update, not of the payload) |
/// | 24..<32 | ``Digest`` of the decoded values (for an update, of the state it reconstructs) |
/// | 32..<40 | ``Digest`` of the reference values (delta, update), 0 (keyframe) |
///
/// followed by one checksummed zstd frame (``Zstd``) of the transformed bytes: the state's
/// (keyframe), its XOR with the reference (delta), or the update's values (update; the
/// reader knows their count from the state layout).
public struct SnapshotHeader: Sendable, Equatable {
    public enum FrameKind: UInt8, Sendable {
        case keyframe = 1
        case delta = 2
        /// The values one training step computed (gradients, batch statistics): the state is
        /// the reference (the previous step's state) with the update applied.
        case update = 3
    }

    public static let size = 40
    public static let tag: [UInt8] = Array("TSNP".utf8)
    public static let version: UInt8 = 1

    public var kind: FrameKind
    public var shuffled: Bool
    public var level: Int8
    public var rawByteCount: UInt64
    public var elementCount: UInt64
    /// Digest of the values the blob decodes to.
    public var digest: Digest
    /// For a delta, the digest of the reference it needs; nil for a keyframe.
    public var referenceDigest: Digest?

    /// Reads and checks the header of `blob` (not the payload). `maxRawBytes` bounds the
    /// declared size before anything is allocated.
    public init(parsing blob: [UInt8], maxRawBytes: Int = SnapshotCodec.defaultMaxRawBytes) throws(SnapshotCodecError) {
        guard blob.count >= Self.size else { throw .truncated(bytes: blob.count, needed: Self.size) }
        guard Array(blob[0..<4]) == Self.tag else { throw .notASnapshot }
        guard blob[4] == Self.version else { throw .unsupportedVersion(blob[4]) }
        guard let kind = FrameKind(rawValue: blob[5]) else { throw .unknownFrameKind(blob[5]) }
        guard blob[6] & ~1 == 0 else { throw .unknownFlags(blob[6]) }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(blob[at + $1]) << (8 * UInt64($1)) } }
        let raw = u64(8), elements = u64(16), reference = u64(32)
        guard raw <= UInt64(maxRawBytes) else { throw .tooLarge(rawBytes: raw, limit: maxRawBytes) }
        guard elements.multipliedReportingOverflow(by: 4) == (raw, false) else {
            throw .inconsistentHeader("\(raw) raw bytes for \(elements) fp32 elements")
        }
        guard (kind == .keyframe) == (reference == 0) else {
            throw .inconsistentHeader(kind == .keyframe ? "a keyframe names a reference" : "a \(kind) names no reference")
        }
        self.kind = kind
        shuffled = blob[6] & 1 != 0
        level = Int8(bitPattern: blob[7])
        rawByteCount = raw
        elementCount = elements
        digest = Digest(value: u64(24))
        referenceDigest = kind == .keyframe ? nil : Digest(value: reference)
    }

    init(kind: FrameKind, shuffled: Bool, level: Int8, elementCount: Int, digest: Digest, referenceDigest: Digest?) {
        self.kind = kind
        self.shuffled = shuffled
        self.level = level
        self.elementCount = UInt64(elementCount)
        rawByteCount = UInt64(elementCount) * 4
        self.digest = digest
        self.referenceDigest = referenceDigest
    }

    var bytes: [UInt8] {
        var out = Self.tag + [Self.version, kind.rawValue, shuffled ? 1 : 0, UInt8(bitPattern: level)]
        // A keyframe's reference field is 0; a delta's reference digest is never 0 in practice
        // (SplitMix64's finaliser maps only one input to 0), and 0 there is rejected on read.
        for v in [rawByteCount, elementCount, digest.value, referenceDigest?.value ?? 0] {
            withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }
}

/// Lossless compression of flattened training states (``StateLayout``) for traces.
///
/// A **keyframe** stores a state on its own: byte shuffle (all first bytes of every fp32,
/// then all second bytes, ...; the sign/exponent bytes of neighbouring values are nearly
/// equal, the low mantissa bytes are noise), then zstd. A **delta** stores a state against a
/// reference state: XOR of the two bit patterns first (unchanged high bytes become zeros),
/// then the same shuffle and zstd. Decoding is bit-exact and verified: every blob carries the
/// digest of what it decodes to, and a delta the digest of its reference, so a damaged blob
/// or the wrong reference raises an error instead of returning wrong numbers.
///
/// An **update** (``encodeUpdate(_:stateDigest:stateElements:referenceDigest:)``) stores not
/// the state but what one training step computed (its gradients and batch statistics: a third
/// of an Adam state's values, and the only part of it that is new information); the trace's
/// reader re-applies it to the previous step's state (``Trainer/apply(_:to:)``, exact) and
/// checks the result against the digest the header records.
///
/// **Policy (applied by the trace writer; see ``KeyframePolicy``).** A keyframe every K
/// snapshots. Trace format 2: every other snapshot of the step after the previous snapshot is
/// an update, so restoring step t decodes the keyframe and applies up to K-1 updates (bounded
/// by K, flat in the step index; a damaged blob loses the rest of its interval). Format 1, and
/// format 2 when snapshots are not of consecutive steps (`--snapshot-every` above 1): a delta
/// against the most recent *keyframe*, not the previous snapshot, so restoring costs one
/// keyframe decode plus at most one delta decode; such a delta has more changed bits the older
/// its keyframe, and Adam's first moment stays incompressible to any byte-level method.
/// The benchmark (`SnapshotBench`) measures all of them.
public struct SnapshotCodec: Sendable {
    /// Encoding choices (the decoder reads them from the header, except `maxRawBytes`).
    public struct Options: Sendable, Equatable {
        /// Byte-shuffle before zstd.
        public var shuffle: Bool
        /// When false, ``SnapshotCodec/encode(_:reference:)`` ignores the reference and writes
        /// a keyframe (for comparisons).
        public var delta: Bool
        /// zstd level (1 is within about 1 % of 9 on training state, at several times the speed).
        public var level: Int32
        /// zstd's match finder (the small one is faster and stores no more on shuffled fp32;
        /// either decodes the same way).
        public var matchFinder: Zstd.MatchFinder
        /// The largest raw size the decoder accepts (bounds allocation on damaged input).
        public var maxRawBytes: Int

        public init(shuffle: Bool = true, delta: Bool = true, level: Int32 = 1, matchFinder: Zstd.MatchFinder = .small,
                    maxRawBytes: Int = SnapshotCodec.defaultMaxRawBytes) {
            self.shuffle = shuffle
            self.delta = delta
            self.level = level
            self.matchFinder = matchFinder
            self.maxRawBytes = maxRawBytes
        }
    }

    /// 16 GiB: far above any state this simulator trains (the paper-scale ResNet-18 with Adam
    /// is about 134 MB), far below what a damaged 64-bit size could ask for.
    public static let defaultMaxRawBytes = 1 << 34

    public var options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Encodes `values`: a delta against `reference` when one is given and
    /// ``Options/delta`` is on, otherwise a keyframe. The blob follows `prefix` in the
    /// returned bytes (a caller's own header, without copying the blob behind it).
    public func encode(_ values: [Float], reference: [Float]? = nil, after prefix: [UInt8] = []) throws(SnapshotCodecError) -> [UInt8] {
        var buffers = EncodeBuffers()
        return Array(try encode(values, reference: reference, after: prefix, using: &buffers))
    }

    /// ``encode(_:reference:after:)`` in `buffers` (reused from one snapshot to the next):
    /// the returned bytes lie in them, valid until their next use. `digest`: `Digest.of(values)`,
    /// when the caller has taken it already.
    public func encode(_ values: [Float], digest: Digest? = nil, reference: [Float]? = nil, after prefix: [UInt8] = [],
                       using buffers: inout EncodeBuffers) throws(SnapshotCodecError) -> ArraySlice<UInt8> {
        let n = values.count
        guard n * 4 <= options.maxRawBytes else { throw .tooLarge(rawBytes: UInt64(n) * 4, limit: options.maxRawBytes) }
        let ref = options.delta ? reference : nil
        if let ref, ref.count != n { throw .referenceSizeMismatch(elements: ref.count, expected: n) }
        let header = SnapshotHeader(kind: ref == nil ? .keyframe : .delta, shuffled: options.shuffle,
                                    level: Int8(clamping: options.level), elementCount: n,
                                    digest: digest ?? Digest.of(values), referenceDigest: ref.map(Digest.of))
        let transformed = buffers.transformed(bytes: 4 * n) { dst in
            values.withUnsafeBytes { src in
                if let ref {
                    ref.withUnsafeBytes { r in ByteTransform.forward(src, reference: r, shuffle: options.shuffle, into: dst) }
                } else {
                    ByteTransform.forward(src, reference: nil, shuffle: options.shuffle, into: dst)
                }
            }
        }
        return try compress(transformed, after: prefix + header.bytes, using: &buffers)
    }

    /// `prefix` and the zstd frame of the first `count` bytes of `buffers`' transformed bytes,
    /// in `buffers`: shuffled bytes plane by plane (a plane of noise is stored, not tried),
    /// others as one ordinary frame.
    private func compress(_ count: Int, after prefix: [UInt8], using buffers: inout EncodeBuffers) throws(SnapshotCodecError) -> ArraySlice<UInt8> {
        let (level, finder, shuffled) = (options.level, options.matchFinder, options.shuffle)
        // (A second reference to the transformed bytes, which nothing writes meanwhile: the
        // frame buffer is written while they are read.)
        let input = buffers.shuffled
        let result = input.withUnsafeBytes { all in
            let bytes = UnsafeRawBufferPointer(rebasing: all[..<count])
            return Result { () throws(ZstdError) -> Int in
                if shuffled { return try Zstd.compress(planes: 4, of: bytes, level: level, matchFinder: finder, after: prefix, into: &buffers.frame) }
                buffers.frame = try Zstd.compress(bytes, level: level, matchFinder: finder, after: prefix)
                return buffers.frame.count
            }
        }
        switch result {
        case .success(let written): return buffers.frame[..<written]
        case .failure(let error): throw .compressionFailed(error.description)
        }
    }

    /// Decodes `blob` exactly. A delta needs the `reference` it was encoded against (checked
    /// by digest); a keyframe ignores it.
    public func decode(_ blob: [UInt8], reference: [Float]? = nil) throws(SnapshotCodecError) -> [Float] {
        let header = try SnapshotHeader(parsing: blob, maxRawBytes: options.maxRawBytes)
        // An update holds no state on its own: it needs the optimizer (the trace's SnapshotStore).
        guard header.kind != .update else { throw .wrongFrameKind(expected: .delta, got: .update) }
        let n = Int(header.elementCount)
        var ref: [Float]? = nil
        if let expected = header.referenceDigest {
            guard let reference else { throw .referenceRequired }
            guard reference.count == n else { throw .referenceSizeMismatch(elements: reference.count, expected: n) }
            let got = Digest.of(reference)
            guard got == expected else { throw .wrongReference(expected: expected, got: got) }
            ref = reference
        }
        let payload: [UInt8]
        do {
            payload = try Zstd.decompress(Array(blob[SnapshotHeader.size...]), limit: 4 * n)
        } catch {
            throw .corruptPayload(error.description)
        }
        guard payload.count == 4 * n else { throw .corruptPayload("\(payload.count) bytes decoded, the header declares \(4 * n)") }
        let values = try Self.inverseTransform(payload, reference: ref, shuffled: header.shuffled)
        let got = Digest.of(values)
        guard got == header.digest else { throw .digestMismatch(expected: header.digest, got: got) }
        return values
    }

    /// Encodes an **update delta**: the values one training step computed (`update`, e.g.
    /// the reduced gradients and batch statistics), which turn the state with digest
    /// `referenceDigest` into the state with digest `stateDigest` and `stateElements` values.
    /// Shuffle and zstd as for a keyframe; the header records both digests, so the reader can
    /// check that it applies the update to the right state and that the result is the
    /// recorded one (``checkUpdateResult(_:header:)``).
    public func encodeUpdate(_ update: [Float], stateDigest: Digest, stateElements: Int,
                             referenceDigest: Digest) throws(SnapshotCodecError) -> [UInt8] {
        try encodeUpdate(concatenationOf: [update], stateDigest: stateDigest, stateElements: stateElements, referenceDigest: referenceDigest)
    }

    /// ``encodeUpdate(_:stateDigest:stateElements:referenceDigest:)`` of the concatenation of
    /// `chunks` (the update's tensors, shuffled from where they lie), after `prefix`.
    public func encodeUpdate(concatenationOf chunks: [[Float]], stateDigest: Digest, stateElements: Int,
                             referenceDigest: Digest, after prefix: [UInt8] = []) throws(SnapshotCodecError) -> [UInt8] {
        var buffers = EncodeBuffers()
        return Array(try encodeUpdate(concatenationOf: chunks, stateDigest: stateDigest, stateElements: stateElements,
                                      referenceDigest: referenceDigest, after: prefix, using: &buffers))
    }

    /// The same in `buffers` (reused from one snapshot to the next): the returned bytes lie in
    /// them, valid until their next use.
    public func encodeUpdate(concatenationOf chunks: [[Float]], stateDigest: Digest, stateElements: Int, referenceDigest: Digest,
                             after prefix: [UInt8] = [], using buffers: inout EncodeBuffers) throws(SnapshotCodecError) -> ArraySlice<UInt8> {
        guard stateElements * 4 <= options.maxRawBytes else {
            throw .tooLarge(rawBytes: UInt64(stateElements) * 4, limit: options.maxRawBytes)
        }
        // The decoder bounds the payload by the state's size; an update never exceeds it
        // (the optimizer keeps at least the parameters, the moving statistics mirror the batch's).
        let count = chunks.reduce(0) { $0 + $1.count }
        guard count <= stateElements else {
            throw .inconsistentHeader("an update of \(count) values for a state of \(stateElements)")
        }
        let header = SnapshotHeader(kind: .update, shuffled: options.shuffle, level: Int8(clamping: options.level),
                                    elementCount: stateElements, digest: stateDigest, referenceDigest: referenceDigest)
        let transformed = buffers.transformed(bytes: 4 * count) { dst in Self.transform(concatenationOf: chunks, shuffle: options.shuffle, into: dst) }
        return try compress(transformed, after: prefix + header.bytes, using: &buffers)
    }

    /// Decodes an update delta's values (exactly `updateElements` of them) after checking that
    /// it applies to the state with digest `referenceDigest`. The caller applies them and
    /// checks the result with ``checkUpdateResult(_:header:)``.
    public func decodeUpdate(_ blob: [UInt8], updateElements: Int,
                             referenceDigest: Digest) throws(SnapshotCodecError) -> (header: SnapshotHeader, update: [Float]) {
        let header = try SnapshotHeader(parsing: blob, maxRawBytes: options.maxRawBytes)
        guard header.kind == .update else { throw .wrongFrameKind(expected: .update, got: header.kind) }
        guard updateElements <= Int(header.elementCount) else {
            throw .inconsistentHeader("an update of \(updateElements) values for a state of \(header.elementCount)")
        }
        if let expected = header.referenceDigest, expected != referenceDigest {
            throw .wrongReference(expected: expected, got: referenceDigest)
        }
        let payload: [UInt8]
        do {
            payload = try Zstd.decompress(Array(blob[SnapshotHeader.size...]), limit: 4 * updateElements)
        } catch {
            throw .corruptPayload(error.description)
        }
        guard payload.count == 4 * updateElements else {
            throw .corruptPayload("\(payload.count) bytes decoded, an update of this state has \(4 * updateElements)")
        }
        return (header, try Self.inverseTransform(payload, shuffled: header.shuffled))
    }

    /// Checks the flat state an update delta reconstructed against the digest its header
    /// records; a mismatch is ``SnapshotCodecError/updateMismatch(expected:got:)``.
    public static func checkUpdateResult(_ values: [Float], header: SnapshotHeader) throws(SnapshotCodecError) {
        try checkUpdateResult(elements: values.count, digest: Digest.of(values), header: header)
    }

    /// The same for a reconstructed state of `elements` values whose digest, as the header
    /// records it, is `got` (a format-3 trace's update records the state's own digest).
    public static func checkUpdateResult(elements: Int, digest got: Digest, header: SnapshotHeader) throws(SnapshotCodecError) {
        guard elements == Int(header.elementCount) else {
            throw .referenceSizeMismatch(elements: elements, expected: Int(header.elementCount))
        }
        guard got == header.digest else { throw .updateMismatch(expected: header.digest, got: got) }
    }
}

extension SnapshotCodec {
    /// The codec's byte transform alone (no zstd, no header): XOR with `reference` if given,
    /// then byte shuffle if `shuffle`. For benchmarks and tools.
    public static func transform(_ values: [Float], reference: [Float]? = nil, shuffle: Bool = true) throws(SnapshotCodecError) -> [UInt8] {
        if let reference, reference.count != values.count { throw .referenceSizeMismatch(elements: reference.count, expected: values.count) }
        return [UInt8](unsafeUninitializedCapacity: 4 * values.count) { dst, initialized in
            values.withUnsafeBytes { src in
                if let reference {
                    reference.withUnsafeBytes { r in ByteTransform.forward(src, reference: r, shuffle: shuffle, into: dst) }
                } else {
                    ByteTransform.forward(src, reference: nil, shuffle: shuffle, into: dst)
                }
            }
            initialized = 4 * values.count
        }
    }

    /// ``transform(_:reference:shuffle:)`` of the concatenation of `chunks` (no reference),
    /// without building it.
    public static func transform(concatenationOf chunks: [[Float]], shuffle: Bool = true) -> [UInt8] {
        let n = chunks.reduce(0) { $0 + $1.count }
        return [UInt8](unsafeUninitializedCapacity: 4 * n) { dst, initialized in
            transform(concatenationOf: chunks, shuffle: shuffle, into: UnsafeMutableBufferPointer(rebasing: dst[..<(4 * n)]))
            initialized = 4 * n
        }
    }

    /// ``transform(concatenationOf:shuffle:)`` into `dst`, exactly 4 bytes per value.
    static func transform(concatenationOf chunks: [[Float]], shuffle: Bool, into dst: UnsafeMutableBufferPointer<UInt8>) {
        var first = 0
        for chunk in chunks {
            chunk.withUnsafeBytes { ByteTransform.forward($0, reference: nil, shuffle: shuffle, into: dst, at: first) }
            first += chunk.count
        }
    }

    /// The inverse of ``transform(_:reference:shuffle:)``.
    public static func inverseTransform(_ bytes: [UInt8], reference: [Float]? = nil, shuffled: Bool = true) throws(SnapshotCodecError) -> [Float] {
        guard bytes.count % 4 == 0 else { throw .inconsistentHeader("\(bytes.count) bytes is not a whole number of fp32 values") }
        let n = bytes.count / 4
        if let reference, reference.count != n { throw .referenceSizeMismatch(elements: reference.count, expected: n) }
        return [Float](unsafeUninitializedCapacity: n) { dst, initialized in
            bytes.withUnsafeBytes { src in
                let out = UnsafeMutableRawBufferPointer(dst)
                if let reference {
                    reference.withUnsafeBytes { r in ByteTransform.inverse(src, reference: r, shuffled: shuffled, into: out) }
                } else {
                    ByteTransform.inverse(src, reference: nil, shuffled: shuffled, into: out)
                }
            }
            initialized = n
        }
    }
}

/// Which snapshots are keyframes and which keyframe each delta refers to: a keyframe every
/// `interval` snapshots (index 0 first), every other snapshot a delta against the most recent
/// keyframe at or before it.
public struct KeyframePolicy: Sendable, Equatable {
    public let interval: Int

    /// `interval` below 1 is treated as 1 (every snapshot a keyframe).
    public init(interval: Int) { self.interval = max(1, interval) }

    public func isKeyframe(_ index: Int) -> Bool { index % interval == 0 }

    /// The keyframe index a snapshot is restored from (itself for a keyframe).
    public func keyframe(for index: Int) -> Int { index - index % interval }
}

/// The byte buffers an encoder reuses from one snapshot to the next: the transformed (XORed,
/// shuffled) values and the compressed frame. Each is grown with zeros when too short and
/// never shrunk, so a writer touches the same pages every step instead of megabytes of
/// fresh memory (page faults and the kernel's zeroing of new pages, 0.1-0.5 % of a
/// recording's CPU when measured). One per writer; bytes handed out by an encode are valid
/// until the buffers' next use (copy on write keeps them intact if kept longer).
public struct EncodeBuffers: Sendable {
    var shuffled: [UInt8] = []
    var frame: [UInt8] = []

    public init() {}

    /// Lets `fill` write `count` transformed bytes into ``shuffled`` (grown if need be);
    /// returns `count`.
    mutating func transformed(bytes count: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Void) -> Int {
        if shuffled.count < count { shuffled = [UInt8](repeating: 0, count: count) }
        shuffled.withUnsafeMutableBufferPointer { fill(UnsafeMutableBufferPointer(rebasing: $0[..<count])) }
        return count
    }
}

/// The byte transforms on fp32 words: optional XOR with a reference, then optional byte
/// shuffle, and back. Raw pointers throughout: these run over the whole state every snapshot.
enum ByteTransform {
    /// `dst[k*n + first + i]` = byte k (little-endian) of `src[i] ^ ref[i]` (shuffled), or the
    /// XORed words in order from word `first` (not shuffled), where `dst` holds the `4 n`
    /// bytes of all `n` words and `src` is words `first..<first + src.count / 4` of them.
    static func forward(_ src: UnsafeRawBufferPointer, reference: UnsafeRawBufferPointer?, shuffle: Bool,
                        into dst: UnsafeMutableBufferPointer<UInt8>, at first: Int = 0) {
        let n = src.count / 4, total = dst.count / 4
        precondition(first >= 0 && first + n <= total, "words \(first)..<\(first + n) of \(total)")
        guard n > 0, let s = src.baseAddress, let start = dst.baseAddress else { return }
        let a = s.assumingMemoryBound(to: UInt32.self)
        let b = reference?.baseAddress?.assumingMemoryBound(to: UInt32.self)
        if !shuffle {
            let d = start + 4 * first
            let w = UnsafeMutableRawPointer(d).assumingMemoryBound(to: UInt32.self)
            if let b {
                for i in 0..<n { w[i] = (a[i] ^ b[i]).littleEndian }
            } else {
                UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: 4 * n)
                #if _endian(big)
                for i in 0..<n { w[i] = w[i].littleEndian }
                #endif
            }
            return
        }
        // Bytes are taken by shifts of the native word, so byte k is the k-th little-endian
        // byte on any host. Blocks of 16 words go through SIMD registers, then a scalar tail.
        let d0 = start + first, d1 = d0 + total, d2 = d1 + total, d3 = d2 + total
        let blocks = n / 16
        let bv = b.map(UnsafeRawPointer.init)
        for blk in 0..<blocks {
            let o = blk * 16
            var v = (s + 4 * o).loadUnaligned(as: SIMD16<UInt32>.self)
            if let bv { v ^= (bv + 4 * o).loadUnaligned(as: SIMD16<UInt32>.self) }
            UnsafeMutableRawPointer(d0 + o).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v), as: SIMD16<UInt8>.self)
            UnsafeMutableRawPointer(d1 + o).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v &>> 8), as: SIMD16<UInt8>.self)
            UnsafeMutableRawPointer(d2 + o).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v &>> 16), as: SIMD16<UInt8>.self)
            UnsafeMutableRawPointer(d3 + o).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v &>> 24), as: SIMD16<UInt8>.self)
        }
        for i in (blocks * 16)..<n {
            var w = a[i]
            if let b { w ^= b[i] }
            d0[i] = UInt8(truncatingIfNeeded: w)
            d1[i] = UInt8(truncatingIfNeeded: w >> 8)
            d2[i] = UInt8(truncatingIfNeeded: w >> 16)
            d3[i] = UInt8(truncatingIfNeeded: w >> 24)
        }
    }

    /// The inverse of ``forward(_:reference:shuffle:into:)``: `dst` receives the fp32 words.
    static func inverse(_ src: UnsafeRawBufferPointer, reference: UnsafeRawBufferPointer?, shuffled: Bool,
                        into dst: UnsafeMutableRawBufferPointer) {
        let n = src.count / 4
        guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let w = d.assumingMemoryBound(to: UInt32.self)
        let b = reference?.baseAddress?.assumingMemoryBound(to: UInt32.self)
        if !shuffled {
            let a = s.assumingMemoryBound(to: UInt32.self)
            if let b {
                for i in 0..<n { w[i] = UInt32(littleEndian: a[i]) ^ b[i] }
            } else {
                d.copyMemory(from: s, byteCount: 4 * n)
                #if _endian(big)
                for i in 0..<n { w[i] = UInt32(littleEndian: w[i]) }
                #endif
            }
            return
        }
        let p = s.assumingMemoryBound(to: UInt8.self)
        let s0 = p, s1 = p + n, s2 = p + 2 * n, s3 = p + 3 * n
        let blocks = n / 16
        let bv = b.map(UnsafeRawPointer.init)
        for blk in 0..<blocks {
            let o = blk * 16
            func lane(_ q: UnsafePointer<UInt8>) -> SIMD16<UInt32> {
                SIMD16<UInt32>(truncatingIfNeeded: UnsafeRawPointer(q + o).loadUnaligned(as: SIMD16<UInt8>.self))
            }
            var v = lane(s0) | lane(s1) &<< 8 | lane(s2) &<< 16 | lane(s3) &<< 24
            if let bv { v ^= (bv + 4 * o).loadUnaligned(as: SIMD16<UInt32>.self) }
            UnsafeMutableRawPointer(w + o).storeBytes(of: v, as: SIMD16<UInt32>.self)
        }
        for i in (blocks * 16)..<n {
            var v = UInt32(s0[i]) | UInt32(s1[i]) << 8 | UInt32(s2[i]) << 16 | UInt32(s3[i]) << 24
            if let b { v ^= b[i] }
            w[i] = v
        }
    }
}
