import Foundation

/// An exclusive lock on an output directory (campaigns, optimizer studies) for as long as a
/// command works in it, so that two processes never append to the same results: the second
/// is refused at once, told the holder's process id. The lock is `flock(2)` on the file
/// `.lock` inside the directory, which also holds the holder's pid as text; the kernel drops
/// the lock when the process ends, however it ends (a `kill -9` included), so a killed run
/// leaves no stale lock, only a file whose pid nobody holds.
public final class DirectoryLock: @unchecked Sendable {
    public let directory: String
    private let fd: Int32

    /// The lock file's name inside a locked directory.
    public static let fileName = ".lock"

    /// Takes the lock of `directory` (which must exist). Refused, the error says which
    /// process holds it.
    public init(directory: String) throws(InputFileError) {
        let path = directory + "/" + Self.fileName
        // Not through a symbolic link: the lock file is the directory's own.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw InputFileError(file: path, reason: "cannot create the lock file: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            let holder = busy ? Self.holder(fd) : nil
            close(fd)
            let who = holder.map { "another tpufi process (pid \($0))" } ?? "another tpufi process"
            throw InputFileError(file: directory, reason: busy ? "in use by \(who); wait for it to finish, or use another directory"
                                                              : "cannot lock: \(reason)")
        }
        // Ours now: the pid of a holder that ended is overwritten.
        let pid = Array("\(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0, pid.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == pid.count else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw InputFileError(file: path, reason: "cannot write the lock file: \(reason)")
        }
        self.directory = directory
        self.fd = fd
    }

    /// The pid a lock file names (nil while its holder has not written it yet).
    private static func holder(_ fd: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: bytes.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Released: the pid is cleared (the kernel drops the lock with the descriptor).
    deinit {
        _ = ftruncate(fd, 0)
        close(fd)
    }
}
