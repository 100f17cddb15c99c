import CZlib
import Foundation

/// Errors from reading a gzip file; each names the file.
public enum GzipError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    /// zlib rejected the stream (bad header, bad block, checksum or length mismatch);
    /// `offset` is how many compressed bytes had been consumed when it did.
    case corrupt(file: String, offset: Int, reason: String)
    /// The compressed data ends before the end of the gzip stream.
    case truncated(file: String, compressedBytes: Int, decompressedBytes: Int)
    /// The decompressed data would be larger than the caller allows.
    case sizeLimitExceeded(file: String, limit: Int)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): \(reason)"
        case .corrupt(let file, let offset, let reason):
            return "\(file): corrupt gzip data at compressed byte \(offset): \(reason)"
        case .truncated(let file, let compressed, let decompressed):
            return "\(file): gzip stream is truncated (ends after \(compressed) compressed bytes, \(decompressed) decompressed)"
        case .sizeLimitExceeded(let file, let limit):
            return "\(file): decompressed data exceeds the limit of \(limit) bytes"
        }
    }
}

/// Whole-file gzip decompression through zlib, with a hard bound on the output size so that
/// a corrupt or hostile file fails with an error instead of exhausting memory.
public enum Gzip {
    /// Reads and decompresses the gzip file at `path`; concatenated gzip members (as `cat
    /// a.gz b.gz` makes) decompress to the concatenation of their contents, as with `gunzip`.
    public static func decompress(path: String, limit: Int) throws(GzipError) -> [UInt8] {
        switch InputFile.read(path, limit: InputFile.dataLimit) {
        case .success(let data): return try decompress([UInt8](data), file: path, limit: limit)
        case .failure(let e): throw .unreadable(file: path, reason: e.reason)
        }
    }

    /// Decompresses the gzip data `input`; `file` names it in errors.
    public static func decompress(_ input: [UInt8], file: String, limit: Int) throws(GzipError) -> [UInt8] {
        precondition(limit >= 0, "limit must not be negative")
        let cap = limit == Int.max ? limit : limit + 1   // one byte past the limit detects excess
        // The trailer's ISIZE (length mod 2^32) is a hint for one allocation up front; it is
        // untrusted, so it is clamped by the limit and by deflate's maximum ratio (~1032:1).
        var hint = 1 << 16
        if input.count >= 18 {
            let n = input.count
            let isize = Int(input[n - 4]) << 24 | Int(input[n - 3]) << 16 | Int(input[n - 2]) << 8 | Int(input[n - 1])
            hint = max(hint, min(isize, input.count.multipliedReportingOverflow(by: 1032).partialValue) + 1)
        }
        var out = [UInt8](repeating: 0, count: min(hint, cap))
        var produced = 0
        var consumed = 0

        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .unreadable(file: file, reason: "zlib could not initialise an inflate stream")
        }
        defer { inflateEnd(&stream) }

        func inflateAll(_ inBytes: UnsafeRawBufferPointer) throws(GzipError) -> [UInt8] {
            let base = inBytes.bindMemory(to: Bytef.self).baseAddress
            while true {
                // zlib counts in 32-bit units: feed the input in chunks below 4 GiB.
                if stream.avail_in == 0, consumed < inBytes.count, let base {
                    let chunk = min(inBytes.count - consumed, Int(UInt32.max))
                    stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
                    stream.avail_in = uInt(chunk)
                    consumed += chunk
                }
                if produced == out.count {
                    if out.count >= cap { throw .sizeLimitExceeded(file: file, limit: limit) }
                    let grown = min(max(out.count.multipliedReportingOverflow(by: 2).partialValue, 1 << 16), cap)
                    out.append(contentsOf: repeatElement(0, count: grown - out.count))
                }
                let rc = out.withUnsafeMutableBytes { outBytes -> Int32 in
                    let room = min(outBytes.count - produced, Int(UInt32.max))
                    stream.next_out = outBytes.bindMemory(to: Bytef.self).baseAddress! + produced
                    stream.avail_out = uInt(room)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return rc
                }
                if produced > limit { throw .sizeLimitExceeded(file: file, limit: limit) }
                let position = consumed - Int(stream.avail_in)
                switch rc {
                case Z_STREAM_END:
                    if position == inBytes.count {
                        out.removeSubrange(produced...)
                        return out
                    }
                    // Another gzip member follows; garbage instead fails the header check.
                    guard inflateReset(&stream) == Z_OK else {
                        throw .corrupt(file: file, offset: position, reason: "zlib could not reset the stream")
                    }
                case Z_OK:
                    continue
                case Z_BUF_ERROR where position == inBytes.count:
                    throw .truncated(file: file, compressedBytes: inBytes.count, decompressedBytes: produced)
                case Z_BUF_ERROR:
                    continue   // no progress possible only when the output is full; it grows above
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    throw .corrupt(file: file, offset: position, reason: message)
                }
            }
        }
        // withUnsafeBytes does not carry a typed error through; a Result does.
        return try input.withUnsafeBytes { bytes in Result { () throws(GzipError) in try inflateAll(bytes) } }.get()
    }
}
