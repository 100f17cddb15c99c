import Foundation
import Sim

/// What a frame holds.
public enum FrameKind: UInt32, Sendable, Codable {
    /// A snapshot of the training state after `step` updates (``SnapshotCodec`` blob).
    case snapshot = 1
    /// The record of one step: metrics and digests (JSON ``StepRecord``). A step is complete
    /// once its record is on disk; it is written after the step's snapshot.
    case step = 2
    /// Test metrics at the end of an epoch (JSON ``EpochSummary``).
    case epoch = 3
}

/// Errors of the frame log: each names the file and the frame (index, byte offset, step).
public enum TraceError: Error, CustomStringConvertible, Equatable {
    case io(file: String, reason: String)
    case corruptFrame(file: String, index: Int, offset: Int, step: Int?, reason: String)
    case malformed(file: String, reason: String)
    case mismatch(String)

    public var description: String {
        switch self {
        case .io(let file, let reason): return "\(file): \(reason)"
        case .corruptFrame(let file, let index, let offset, let step, let reason):
            return "\(file): frame \(index) at byte \(offset)\(step.map { " (step \($0))" } ?? ""): \(reason)"
        case .malformed(let file, let reason): return "\(file): \(reason)"
        case .mismatch(let m): return m
        }
    }
}

/// One frame's header as stored: 40 bytes, little-endian.
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | magic `TPFR` |
/// | 4..<8 | kind (``FrameKind``) |
/// | 8..<16 | step (global, after `step` updates for snapshots) |
/// | 16..<24 | payload length |
/// | 24..<32 | payload checksum (``FrameLog/checksum(_:)``) |
/// | 32..<40 | checksum of bytes 0..<32 |
public struct FrameHeader: Sendable, Equatable {
    public static let size = 40
    static let magic: [UInt8] = Array("TPFR".utf8)

    public var kind: FrameKind
    public var step: Int
    public var length: Int
    public var payloadChecksum: UInt64

    func encoded() -> [UInt8] {
        var b = FrameHeader.magic
        b.appendLE(UInt32(kind.rawValue))
        b.appendLE(UInt64(bitPattern: Int64(step)))
        b.appendLE(UInt64(length))
        b.appendLE(payloadChecksum)
        b.appendLE(FrameLog.checksum(b[...]))
        return b
    }
}

/// A frame as indexed by a reader: where its payload lies.
public struct FrameEntry: Sendable, Equatable {
    public var header: FrameHeader
    public var index: Int
    /// Byte offset of the header in the file.
    public var offset: Int
    public var payloadOffset: Int { offset + FrameHeader.size }
    public var end: Int { payloadOffset + header.length }
}

/// The append-only frame file of a trace. Every frame carries its length and checksums; a
/// reader trusts only frames whose header checks out, and stops at a torn tail.
public enum FrameLog {
    /// 64-bit checksum of bytes (the ``Digest`` construction over 32-bit words, the trailing
    /// bytes zero-padded, the length mixed in).
    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var d = Digest()
        d.add(bytes.count)
        bytes.withUnsafeBytes { d.add(bytes: $0) }
        return d.value
    }

    /// The checksum of a frame's payload in a trace of format `formatVersion`: ``checksum(_:)``
    /// up to format 2; from format 3 the same construction two 32-bit words a lane step
    /// (``Digest/add(pairBytes:)``), half the work over every snapshot's megabytes. Frame
    /// headers keep ``checksum(_:)`` in every format.
    public static func payloadChecksum(_ bytes: ArraySlice<UInt8>, formatVersion: Int) -> UInt64 {
        guard formatVersion >= 3 else { return checksum(bytes) }
        var d = Digest()
        d.add(bytes.count)
        bytes.withUnsafeBytes { d.add(pairBytes: $0) }
        return d.value
    }

    /// Scans `bytes` (a frame file's contents): every frame whose header and bounds check
    /// out, in order, and where the valid part ends. A frame cut short at the end of the file
    /// is a torn tail (a crash mid-append), reported through `validLength`; a bad header
    /// anywhere else is an error.
    public static func scan(_ bytes: [UInt8], file: String) throws(TraceError) -> (frames: [FrameEntry], validLength: Int) {
        try scan(size: bytes.count, file: file) { offset in bytes[offset ..< offset + FrameHeader.size] }
    }

    /// ``scan(_:file:)`` of a file of `size` bytes whose 40-byte headers `header(offset)` reads.
    static func scan(size: Int, file: String,
                     header: (Int) throws(TraceError) -> ArraySlice<UInt8>) throws(TraceError) -> (frames: [FrameEntry], validLength: Int) {
        var frames: [FrameEntry] = []
        var offset = 0
        while offset < size {
            let index = frames.count
            guard offset + FrameHeader.size <= size else { break }                  // torn header
            let h = try header(offset)
            guard Array(h.prefix(4)) == FrameHeader.magic else {
                throw .corruptFrame(file: file, index: index, offset: offset, step: nil, reason: "bad magic")
            }
            guard checksum(h.prefix(32)) == h.readLE(UInt64.self, at: 32) else {
                // A header torn by a crash is the last thing in the file.
                if offset + FrameHeader.size == size { break }
                throw .corruptFrame(file: file, index: index, offset: offset, step: nil, reason: "header checksum mismatch")
            }
            guard let kind = FrameKind(rawValue: h.readLE(UInt32.self, at: 4)) else {
                throw .corruptFrame(file: file, index: index, offset: offset, step: nil, reason: "unknown frame kind \(h.readLE(UInt32.self, at: 4))")
            }
            let step = Int(Int64(bitPattern: h.readLE(UInt64.self, at: 8)))
            let length = h.readLE(UInt64.self, at: 16)
            guard length <= UInt64(Int.max / 2) else {
                throw .corruptFrame(file: file, index: index, offset: offset, step: step, reason: "impossible payload length \(length)")
            }
            let entry = FrameEntry(header: FrameHeader(kind: kind, step: step, length: Int(length), payloadChecksum: h.readLE(UInt64.self, at: 24)),
                                   index: index, offset: offset)
            guard entry.end <= size else { break }                                   // torn payload
            frames.append(entry)
            offset = entry.end
        }
        return (frames, offset)
    }

    /// The payload of `frame` in a trace of format `formatVersion`, checked against its checksum.
    public static func payload(_ frame: FrameEntry, in bytes: [UInt8], file: String, formatVersion: Int) throws(TraceError) -> [UInt8] {
        try checked(bytes[frame.payloadOffset ..< frame.end], of: frame, file: file, formatVersion: formatVersion)
    }

    /// `payload` if it matches `frame`'s checksum.
    static func checked(_ payload: ArraySlice<UInt8>, of frame: FrameEntry, file: String, formatVersion: Int) throws(TraceError) -> [UInt8] {
        guard payloadChecksum(payload, formatVersion: formatVersion) == frame.header.payloadChecksum else {
            throw .corruptFrame(file: file, index: frame.index, offset: frame.offset, step: frame.header.step,
                                reason: "payload checksum mismatch (\(frame.header.kind) frame, \(frame.header.length) bytes)")
        }
        return Array(payload)
    }
}

/// A frame file opened for reading on demand: the scan reads only the 40-byte headers, and a
/// payload is read (positionally, so threads may share the file) when it is asked for. A
/// reader of a long trace thus holds what it uses, not the whole file.
final class FrameFile: @unchecked Sendable {
    let path: String
    /// Size when opened (appends made later are not seen).
    let size: Int
    /// The trace's format (``FrameLog/payloadChecksum(_:formatVersion:)``).
    let formatVersion: Int
    private let fd: Int32

    init(path: String, formatVersion: Int) throws(TraceError) {
        // Non-blocking, so that a FIFO in place of the file cannot hang the open; only a
        // regular file is read (reads of a regular file never block).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw .io(file: path, reason: errno == ENOENT ? "missing" : "cannot open: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .io(file: path, reason: "cannot stat: \(reason)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .io(file: path, reason: "not a regular file (\(InputFile.kind(st.st_mode)))")
        }
        self.path = path
        self.fd = fd
        self.size = Int(st.st_size)
        self.formatVersion = formatVersion
    }

    deinit { close(fd) }

    /// Bytes `range` of the file.
    func read(_ range: Range<Int>) throws(TraceError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: range.count)
        var done = 0
        while done < range.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, range.count - done, off_t(range.lowerBound + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw .io(file: path, reason: n == 0 ? "ends at byte \(range.lowerBound + done), before \(range.upperBound) (truncated while open?)"
                                               : "read failed at byte \(range.lowerBound + done): \(String(cString: strerror(errno)))")
            }
            done += n
        }
        return out
    }

    /// The frames and where the valid part ends (see ``FrameLog/scan(_:file:)``).
    func scan() throws(TraceError) -> (frames: [FrameEntry], validLength: Int) {
        try FrameLog.scan(size: size, file: path) { offset throws(TraceError) in try read(offset ..< offset + FrameHeader.size)[...] }
    }

    /// The payload of `frame`, checked against its checksum.
    func payload(_ frame: FrameEntry) throws(TraceError) -> [UInt8] {
        try FrameLog.checked(try read(frame.payloadOffset ..< frame.end)[...], of: frame, file: path, formatVersion: formatVersion)
    }
}

/// A file opened for appending durably: each `write` goes out in full (short writes
/// retried) and `sync` makes everything written so far survive a crash. Frame files and
/// campaign result logs append through it.
public final class AppendFile {
    public let path: String
    private let fd: Int32
    /// ``sync()`` drops what it made durable from the page cache.
    private let dropsSyncedPages: Bool

    /// Opens (creating) `path` for appending, truncating it to `length` bytes first when given
    /// (to drop a torn tail before resuming). `dropsSyncedPages` is for a file written much
    /// and not read back soon (a trace's frames): each ``sync()`` then lets the system reuse
    /// the file's pages at once.
    public init(path: String, truncateTo length: Int? = nil, dropsSyncedPages: Bool = false) throws(TraceError) {
        self.path = path
        self.dropsSyncedPages = dropsSyncedPages
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(file: path, reason: "cannot open for appending: \(String(cString: strerror(errno)))") }
        if let length, ftruncate(fd, off_t(length)) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .io(file: path, reason: "cannot truncate to \(length) bytes: \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    public func write(_ bytes: [UInt8]) throws(TraceError) {
        try Self.write(bytes, to: fd, path: path)
    }

    /// Writes `head` and then `body` (a frame's header and payload), without first copying
    /// them into one array.
    public func write(_ head: [UInt8], then body: ArraySlice<UInt8>) throws(TraceError) {
        try Self.write(head, then: body, to: fd, path: path)
    }

    /// Flushes what was written to the disk.
    public func sync() throws(TraceError) {
        guard fsync(fd) == 0 else { throw .io(file: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
        // The synced pages are on disk: dropped from the page cache, the next step's frames
        // are copied into pages just freed instead of fresh ones (on a virtual machine the
        // first touch of a guest page made that copy ten times slower). Advice only: nothing
        // depends on whether the system takes it.
        if dropsSyncedPages { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) }
    }

    /// Writes all of `head` and then all of `body` to `fd` (the file `path`), in one system
    /// call where it can (`writev`), retrying short and interrupted writes.
    public static func write(_ head: [UInt8], then body: ArraySlice<UInt8> = [], to fd: Int32, path: String) throws(TraceError) {
        let total = head.count + body.count
        var written = 0
        while written < total {
            let n = head.withUnsafeBytes { h in
                body.withUnsafeBytes { b in
                    // What is left of each part.
                    let fromHead = min(written, h.count), fromBody = written - fromHead
                    var parts = [iovec(iov_base: h.baseAddress.map { UnsafeMutableRawPointer(mutating: $0 + fromHead) }, iov_len: h.count - fromHead),
                                 iovec(iov_base: b.baseAddress.map { UnsafeMutableRawPointer(mutating: $0 + fromBody) }, iov_len: b.count - fromBody)]
                    return writev(fd, &parts, 2)
                }
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(file: path, reason: "write failed after \(written) of \(total) bytes: \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }
}

/// Appends frames to a file, durably (see ``AppendFile``).
public final class FrameAppender {
    private let file: AppendFile
    /// The trace's format (``FrameLog/payloadChecksum(_:formatVersion:)``).
    private let formatVersion: Int
    public var path: String { file.path }

    /// Opens `path` for appending frames of a trace of format `formatVersion`, truncating it
    /// to `length` bytes first when given (to drop a torn tail before resuming).
    public init(path: String, formatVersion: Int, truncateTo length: Int? = nil) throws(TraceError) {
        file = try AppendFile(path: path, truncateTo: length, dropsSyncedPages: true)
        self.formatVersion = formatVersion
    }

    public func append(kind: FrameKind, step: Int, payload: [UInt8]) throws(TraceError) {
        try append(kind: kind, step: step, payload: payload[...])
    }

    /// The same for bytes that lie in a larger buffer (an encoder's, reused step to step).
    public func append(kind: FrameKind, step: Int, payload: ArraySlice<UInt8>) throws(TraceError) {
        let header = FrameHeader(kind: kind, step: step, length: payload.count,
                                 payloadChecksum: FrameLog.payloadChecksum(payload, formatVersion: formatVersion))
        try file.write(header.encoded(), then: payload)
    }

    /// Flushes appended frames to the disk.
    public func sync() throws(TraceError) { try file.sync() }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}

extension ArraySlice where Element == UInt8 {
    func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(self[startIndex + offset + i]) << (8 * i) }
        return v
    }
}
