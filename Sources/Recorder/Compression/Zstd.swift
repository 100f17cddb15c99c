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

/// One-shot zstd frames with their content size and a content checksum in the header, so
/// that a reader can bound its allocation before decoding and detect damaged data.
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
        if matchFinder == .small {
            settings += [(ZSTD_c_strategy, Int32(ZSTD_fast.rawValue)), (ZSTD_c_hashLog, 8), (ZSTD_c_minMatch, 7)]
        }
        for (param, value) in settings {
            let rc = ZSTD_CCtx_setParameter(cctx, param, value)
            if ZSTD_isError(rc) != 0 { throw .compressionFailed(String(cString: ZSTD_getErrorName(rc))) }
        }
        let bound = ZSTD_compressBound(input.count)
        var result: Int?
        let out = [UInt8](unsafeUninitializedCapacity: prefix.count + bound) { dst, initialized in
            initialized = 0
            guard let base = dst.baseAddress else { return }
            prefix.withUnsafeBufferPointer { p in
                if let from = p.baseAddress { base.initialize(from: from, count: p.count) }
            }
            let written = ZSTD_compress2(cctx, base + prefix.count, bound, input.baseAddress, input.count)
            initialized = prefix.count + (ZSTD_isError(written) != 0 ? 0 : written)
            result = written
        }
        guard let result else { throw .compressionFailed("cannot allocate \(prefix.count + bound) bytes of output") }
        if ZSTD_isError(result) != 0 { throw .compressionFailed(String(cString: ZSTD_getErrorName(result))) }
        return out
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
