import Foundation

/// Reads an input file (a spec, a log, a topology, a manifest, a results file) with a bound
/// on what it may cost: only a regular file (a FIFO or a device would block or never end; a
/// symbolic link is followed to what it names), at most `limit` bytes.
public enum InputFile {
    /// Spec and configuration files: far above any real one (a spec lists at most a few
    /// thousand positions).
    public static let specLimit = 16 << 20
    /// Training logs (the reference's are a few hundred kilobytes), optimizer-study files.
    public static let logLimit = 256 << 20
    /// Trace manifests (a few hundred kilobytes for the largest workload).
    public static let manifestLimit = 64 << 20
    /// A campaign's `results.jsonl` (a few kilobytes per experiment).
    public static let resultsLimit = 4 << 30
    /// Data set files and exported states (CIFAR-10's batches are 30 MB each).
    public static let dataLimit = 4 << 30

    /// The file's bytes, or a reason in words why not.
    public static func read(_ path: String, limit: Int) -> Result<Data, InputFileError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            return .failure(InputFileError(file: path, reason: errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))"))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(InputFileError(file: path, reason: "cannot stat: \(String(cString: strerror(errno)))")) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(InputFileError(file: path, reason: "not a regular file (\(kind(st.st_mode)))")) }
        guard Int(st.st_size) <= limit else {
            return .failure(InputFileError(file: path, reason: "\(st.st_size) bytes; at most \(limit) are read"))
        }
        var data = Data(count: Int(st.st_size))
        var done = 0
        while done < data.count {
            let n = data.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(fd, base + done, buffer.count - done, off_t(done))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .failure(InputFileError(file: path, reason: "cannot read: \(n < 0 ? String(cString: strerror(errno)) : "ends early")")) }
            done += n
        }
        return .success(data)
    }

    /// What a file that is not a regular one is, in a word or two.
    public static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a file"
        }
    }
}

/// Why an input file could not be read.
public struct InputFileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var reason: String
    public var description: String { "\(file): \(reason)" }
}
