import Foundation

/// Reads a small input file (a spec, a log, a topology) with a bound on what it may cost: only
/// a regular file (a FIFO or a device would block or never end), at most `limit` bytes.
public enum InputFile {
    /// Spec and configuration files: far above any real one (a spec lists at most a few
    /// thousand positions).
    public static let specLimit = 16 << 20
    /// Training logs (the reference's are a few hundred kilobytes).
    public static let logLimit = 256 << 20

    /// The file's bytes, or a reason in words why not.
    public static func read(_ path: String, limit: Int) -> Result<Data, InputFileError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            return .failure(InputFileError(file: path, reason: errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))"))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(InputFileError(file: path, reason: "cannot stat: \(String(cString: strerror(errno)))")) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(InputFileError(file: path, reason: "not a regular file")) }
        guard Int(st.st_size) <= limit else {
            return .failure(InputFileError(file: path, reason: "\(st.st_size) bytes; at most \(limit) are read"))
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(fd, base + done, buffer.count - done, off_t(done))
            }
            guard n > 0 else { return .failure(InputFileError(file: path, reason: "cannot read: \(n < 0 ? String(cString: strerror(errno)) : "ends early")")) }
            done += n
        }
        return .success(Data(bytes))
    }
}

/// Why an input file could not be read.
public struct InputFileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var reason: String
    public var description: String { "\(file): \(reason)" }
}
