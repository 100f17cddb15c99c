import CZstd

/// Errors from compressing or decompressing a frame.
public enum ZstdError: Error, CustomStringConvertible, Equatable {
    case compressionFailed(String)
    /// The frame is damaged: bad magic, truncated, or its checksum does not match.
    case corruptFrame(String)
    /// The frame declares more content than the caller allows (or none at all).
    case sizeLimitExceeded(declared: UInt64?, limit: Int)

    public var description: String {
        switch self {
        case .compressionFailed(let m): return "zstd compression failed: \(m)"
        case .corruptFrame(let m): return "corrupt zstd frame: \(m)"
        case .sizeLimitExceeded(let declared, let limit):
            return "zstd frame declares \(declared.map(String.init) ?? "an unknown") content size; the limit is \(limit) bytes"
        }
    }
}

/// One-shot zstd frames that declare their content size, so that a reader can bound its
/// allocation before decoding; ordinary frames also carry zstd's content checksum, frames
/// written plane by plane (``compress(planes:of:level:matchFinder:after:)``) leave checking
/// to their callers.
public enum Zstd {
    /// How the compressor looks for repeated strings.
    public enum MatchFinder: Sendable, Equatable {
        /// The level's own settings.
        case levels
        /// The fastest strategy with a 256-entry hash table (it stays in L1) and matches of
        /// at least 7 bytes. On byte-shuffled fp32 (snapshots, updates) nearly all of zstd's
        /// gain is its entropy coding of the sign-and-exponent bytes, not matches: this stores
        /// slightly fewer bytes than level 1's own settings at 1.4-1.8x its speed (an Adam
        /// update of the `small` ResNet-18: `zstd -b` 1.179x at 870 MB/s against 1.175x at
        /// 630 MB/s; `SnapshotBench`'s update encode 993 against 540 MB/s).
        case small

        /// What ``small`` sets instead of the level's own: strategy, hash table (2^8 entries)
        /// and shortest match; nil for ``levels``.
        var overrides: (strategy: ZSTD_strategy, hashLog: Int32, minMatch: Int32)? {
            self == .small ? (ZSTD_fast, 8, 7) : nil
        }
    }

    /// Compresses `input` at `level` (1 is within about 1 % of level 9 on training state, at
    /// several times the speed).
    public static func compress(_ input: [UInt8], level: Int32 = 1, matchFinder: MatchFinder = .levels) throws(ZstdError) -> [UInt8] {
        // withUnsafeBytes rethrows untyped errors: the result comes out as a Result.
        let result = input.withUnsafeBytes { src in Result { () throws(ZstdError) in try compress(src, level: level, matchFinder: matchFinder) } }
        return try result.get()
    }

    /// `prefix` followed by the frame of `input`: the frame is written where it is returned,
    /// with no zero-filled buffer and no concatenation copy (a snapshot's bytes are megabytes).
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1, matchFinder: MatchFinder = .levels,
                                after prefix: [UInt8] = []) throws(ZstdError) -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw .compressionFailed("cannot allocate a context") }
        defer { ZSTD_freeCCtx(cctx) }
        var settings = [(ZSTD_c_compressionLevel, level), (ZSTD_c_checksumFlag, 1), (ZSTD_c_contentSizeFlag, 1)]
        if let o = matchFinder.overrides {
            settings += [(ZSTD_c_strategy, Int32(o.strategy.rawValue)), (ZSTD_c_hashLog, o.hashLog), (ZSTD_c_minMatch, o.minMatch)]
        }
        for (param, value) in settings { _ = try check(ZSTD_CCtx_setParameter(cctx, param, value)) }
        let bound = ZSTD_compressBound(input.count)
        return try written(after: prefix, capacity: bound) { (out: UnsafeMutablePointer<UInt8>) throws(ZstdError) in
            try check(ZSTD_compress2(cctx, out, bound, input.baseAddress, input.count))
        }
    }

    /// `rc`, or zstd's error for it.
    private static func check(_ rc: Int) throws(ZstdError) -> Int {
        if ZSTD_isError(rc) != 0 { throw .compressionFailed(String(cString: ZSTD_getErrorName(rc))) }
        return rc
    }

    /// `prefix` followed by what `write` puts behind it (at most `capacity` bytes; it returns
    /// how many), in one array written in place: no zero-filled buffer, no concatenation.
    private static func written(after prefix: [UInt8], capacity: Int,
                                _ write: (UnsafeMutablePointer<UInt8>) throws(ZstdError) -> Int) throws(ZstdError) -> [UInt8] {
        var failure: ZstdError? = .compressionFailed("cannot allocate \(prefix.count + capacity) bytes of output")
        let out = [UInt8](unsafeUninitializedCapacity: prefix.count + capacity) { dst, initialized in
            initialized = 0
            guard let base = dst.baseAddress else { return }
            prefix.withUnsafeBufferPointer { p in
                if let from = p.baseAddress { base.initialize(from: from, count: p.count) }
            }
            do throws(ZstdError) {
                let count = try write(base + prefix.count)
                initialized = prefix.count + count
                failure = nil
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return out
    }

    /// `prefix` followed by one standard zstd frame of `input`, which is `planes` runs of
    /// (nearly) equal length, such as the byte planes of a shuffle. Of byte-shuffled fp32 the
    /// low mantissa bytes are noise that zstd tries and gives up on (most of its time on an
    /// update, for nothing), while the sign-and-exponent bytes compress. So leading planes
    /// that look like noise (``looksIncompressible(_:)``) are stored as raw blocks without
    /// trying, and zstd compresses from the first plane that does not, block by block, storing
    /// a block raw where it does not compress, as zstd itself does. (Only leading planes can
    /// be skipped: a compressed block may refer to any bytes before it that zstd has seen.)
    /// Deterministic: the same input gives the same frame.
    ///
    /// The frame is written here (header, block headers), its compressed blocks by zstd's
    /// block functions; it declares its content size and has no content checksum: callers
    /// check what they decode (snapshots carry the digest of their values). Any zstd decoder
    /// reads it.
    public static func compress(planes: Int, of input: UnsafeRawBufferPointer, level: Int32 = 1,
                                matchFinder: MatchFinder = .small, after prefix: [UInt8] = []) throws(ZstdError) -> [UInt8] {
        var out: [UInt8] = []
        let count = try compress(planes: planes, of: input, level: level, matchFinder: matchFinder, after: prefix, into: &out)
        out.removeLast(out.count - count)
        return out
    }

    /// ``compress(planes:of:level:matchFinder:after:)`` written into `out`, a buffer reused
    /// from one call to the next (grown with zeros when too short, never shrunk): returns how
    /// many of its bytes hold `prefix` and the frame. A writer that takes megabytes of fresh
    /// memory for every step's frame pays page faults and the kernel's zeroing of the pages.
    public static func compress(planes: Int, of input: UnsafeRawBufferPointer, level: Int32 = 1, matchFinder: MatchFinder = .small,
                                after prefix: [UInt8] = [], into out: inout [UInt8]) throws(ZstdError) -> Int {
        precondition(planes >= 1, "at least one plane")
        let n = input.count
        func plane(_ p: Int) -> Range<Int> { p * n / planes..<(p + 1) * n / planes }
        // The bytes stored raw without trying: the planes before the first that may compress.
        var rawPrefix = 0
        for p in 0..<planes {
            guard looksIncompressible(UnsafeRawBufferPointer(rebasing: input[plane(p)])) else { break }
            rawPrefix = plane(p).upperBound
        }

        var cParams = ZSTD_getCParams(level, UInt64(n - rawPrefix), 0)
        if let o = matchFinder.overrides {
            (cParams.strategy, cParams.hashLog, cParams.minMatch) = (o.strategy, UInt32(o.hashLog), UInt32(o.minMatch))
        }
        guard let cctx = ZSTD_createCCtx() else { throw .compressionFailed("cannot allocate a context") }
        defer { ZSTD_freeCCtx(cctx) }
        // The compression parameters travel in an empty dictionary: the one way to set them
        // for block compression that zstd does not mark deprecated.
        let noAllocator = ZSTD_customMem(customAlloc: nil, customFree: nil, opaque: nil)
        guard let parameters = ZSTD_createCDict_advanced(nil, 0, ZSTD_dlm_byRef, ZSTD_dct_rawContent, cParams, noAllocator) else {
            throw .compressionFailed("cannot set the compression parameters (\(cParams))")
        }
        defer { ZSTD_freeCDict(parameters) }
        _ = try check(ZSTD_compressBegin_usingCDict(cctx, parameters))
        let blockLimit = ZSTD_getBlockSize(cctx)
        guard blockLimit > 0 else { throw .compressionFailed("block size 0") }
        // Raw blocks of the prefix are as long as the format allows (128 KiB; a single-segment
        // frame's window is its whole content), the rest is cut every blockLimit bytes. A
        // block is stored raw or kept compressed only when smaller, but zstd may write up to
        // its bound while trying the last one.
        let rawLimit = 1 << 17
        let blockCount = 2 + n / blockLimit
        let capacity = 18 + n + 3 * blockCount + ZSTD_compressBound(blockLimit)

        return try written(after: prefix, capacity: capacity, into: &out) { (base: UnsafeMutablePointer<UInt8>) throws(ZstdError) in
            var at = 0
            func put(_ bytes: [UInt8]) {
                for b in bytes { base[at] = b; at += 1 }
            }
            func blockHeader(size: Int, type: UInt32, last: Bool) {
                let h = UInt32(size) << 3 | type << 1 | (last ? 1 : 0)
                put([UInt8(truncatingIfNeeded: h), UInt8(truncatingIfNeeded: h >> 8), UInt8(truncatingIfNeeded: h >> 16)])
            }
            put(frameHeader(contentSize: n))
            guard n > 0, let source = input.baseAddress else {
                blockHeader(size: 0, type: 0, last: true)
                return at
            }
            func raw(_ from: Int, _ count: Int) {
                blockHeader(size: count, type: 0, last: from + count == n)
                (base + at).initialize(from: (source + from).assumingMemoryBound(to: UInt8.self), count: count)
                at += count
            }
            var offset = 0
            while offset < rawPrefix {
                let count = min(rawLimit, rawPrefix - offset)
                raw(offset, count)
                offset += count
            }
            while offset < n {
                let count = min(blockLimit, n - offset)
                let size = try check(ZSTD_compressBlock(cctx, base + at + 3, capacity - at - 3, source + offset, count))
                if size > blockLimit { throw .compressionFailed("a block of \(count) bytes compressed to \(size)") }
                if size > 0 {
                    blockHeader(size: size, type: 2, last: offset + count == n)
                    at += size
                } else {
                    raw(offset, count)   // zstd wrote nothing there; its history has the block
                }
                offset += count
            }
            return at
        }
    }

    /// ``written(after:capacity:_:)`` into `out` (grown with zeros when shorter than `prefix`
    /// plus `capacity`): returns the count of bytes written.
    private static func written(after prefix: [UInt8], capacity: Int, into out: inout [UInt8],
                                _ write: (UnsafeMutablePointer<UInt8>) throws(ZstdError) -> Int) throws(ZstdError) -> Int {
        if out.count < prefix.count + capacity { out = [UInt8](repeating: 0, count: prefix.count + capacity) }
        let result = out.withUnsafeMutableBufferPointer { dst in
            Result { () throws(ZstdError) -> Int in
                guard let base = dst.baseAddress else { throw .compressionFailed("no output buffer") }
                prefix.withUnsafeBufferPointer { p in
                    if let from = p.baseAddress { base.update(from: from, count: p.count) }
                }
                return prefix.count + (try write(base + prefix.count))
            }
        }
        return try result.get()
    }

    /// Whether `bytes` look like noise to an entropy coder: in each of four windows of 16 KiB
    /// spread over them (or in all of them, if shorter), the byte values' order-0 entropy is
    /// above 7.68 bits, so a Huffman code could save under 4 % (zstd keeps a block compressed
    /// only when it saves about 2 %, and near-uniform bytes get integer code lengths that save
    /// less than the entropy promises). The low mantissa bytes of fp32 gradients and moments
    /// measure 7.76-7.99 bits; their exponents about 3, an optimizer's fresh zeros 0. Integer
    /// arithmetic only (the choice lands in traces).
    static func looksIncompressible(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let window = 16_384, windows = 4
        // Short runs: the estimate is noisy and zstd's try costs little.
        guard bytes.count >= window, let base = bytes.baseAddress else { return false }
        let starts = bytes.count <= windows * window
            ? Array(stride(from: 0, to: bytes.count - window + 1, by: window))
            : (0..<windows).map { k in k * (bytes.count - window) / (windows - 1) }
        var counts = [Int](repeating: 0, count: 256)
        for start in starts {
            for i in 0..<256 { counts[i] = 0 }
            for i in start..<start + window { counts[Int(base.load(fromByteOffset: i, as: UInt8.self))] += 1 }
            // Bits to code the window, 1/256 bit units: sum of c * log2(window / c).
            let whole = log2Q8(window)
            let bits = counts.reduce(0) { sum, c in c == 0 ? sum : sum + c * (whole - log2Q8(c)) }
            // Under 96 % of 8 bits a byte: worth trying.
            if 25 * bits < 24 * 8 * 256 * window { return false }
        }
        return true
    }

    /// `floor(256 log2(x))` for x >= 1, by repeated squaring of the mantissa (no libm).
    static func log2Q8(_ x: Int) -> Int {
        precondition(x >= 1 && x < 1 << 31, "log2 of \(x)")
        let n = Int.bitWidth - 1 - x.leadingZeroBitCount
        var m = UInt64(x) << (31 - n)          // the mantissa in [1, 2), 31 fraction bits
        var r = n << 8
        for bit in stride(from: 7, through: 0, by: -1) {
            m = (m * m) >> 31                  // squared: in [1, 4)
            if m >= 1 << 32 { m >>= 1; r |= 1 << bit }
        }
        return r
    }

    /// A single-segment frame header declaring `contentSize` bytes and no checksum.
    private static func frameHeader(contentSize n: Int) -> [UInt8] {
        var h: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]   // magic 0xFD2FB528, little-endian
        let value: UInt64, bytes: Int, flag: UInt8
        switch n {
        case ..<256: (value, bytes, flag) = (UInt64(n), 1, 0)
        case ..<(65_536 + 256): (value, bytes, flag) = (UInt64(n - 256), 2, 1)
        case ...Int(UInt32.max): (value, bytes, flag) = (UInt64(n), 4, 2)
        default: (value, bytes, flag) = (UInt64(n), 8, 3)
        }
        h.append(flag << 6 | 0x20)                  // content-size field size, single segment
        for i in 0..<bytes { h.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
        return h
    }

    /// The content size a frame's header declares, if any.
    public static func contentSize(_ frame: [UInt8]) -> UInt64? {
        let n = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        return n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ? nil : n
    }

    /// Decompresses one frame whose declared content size is at most `limit` bytes; never
    /// allocates more than that, whatever the header claims.
    public static func decompress(_ frame: [UInt8], limit: Int) throws(ZstdError) -> [UInt8] {
        let declared = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        if declared == ZSTD_CONTENTSIZE_ERROR {
            throw .corruptFrame("not a zstd frame (\(frame.count) bytes)")
        }
        if declared == ZSTD_CONTENTSIZE_UNKNOWN { throw .sizeLimitExceeded(declared: nil, limit: limit) }
        guard declared <= UInt64(limit) else { throw .sizeLimitExceeded(declared: declared, limit: limit) }
        var out = [UInt8](repeating: 0, count: Int(declared))
        let produced = out.withUnsafeMutableBytes { dst in
            frame.withUnsafeBytes { src in
                ZSTD_decompress(dst.baseAddress, dst.count, src.baseAddress, src.count)
            }
        }
        if ZSTD_isError(produced) != 0 { throw .corruptFrame(String(cString: ZSTD_getErrorName(produced))) }
        guard produced == Int(declared) else {
            throw .corruptFrame("decoded \(produced) bytes, header declares \(declared)")
        }
        return out
    }
}
