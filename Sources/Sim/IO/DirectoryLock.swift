import Foundation

/// An exclusive lock on an output directory (campaigns, optimizer studies) for as long as a
/// command works in it, so that two processes never append to the same results: the second
/// is refused at once. The lock is `flock(2)` on the file `.lock` inside the directory; the
/// kernel drops it when the process ends, however it ends, so a killed run leaves no stale lock.
public final class DirectoryLock: @unchecked Sendable {
    public let directory: String
    private let fd: Int32

    /// The lock file's name inside a locked directory.
    public static let fileName = ".lock"

    /// Takes the lock of `directory` (which must exist).
    public init(directory: String) throws(InputFileError) {
        let path = directory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw InputFileError(file: path, reason: "cannot create the lock file: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            close(fd)
            throw InputFileError(file: directory, reason: busy ? "in use by another tpufi process (wait for it to finish, or use another directory)"
                                                              : "cannot lock: \(reason)")
        }
        self.directory = directory
        self.fd = fd
    }

    deinit { close(fd) }
}
