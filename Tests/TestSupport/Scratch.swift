import Foundation

/// Scratch space of a test process: one directory, removed when the process exits, so that
/// test runs leave nothing behind in the temporary directory.
public enum Scratch {
    /// `<tmp>/tpufi-tests-<pid>`, created on first use.
    public static let root: String = {
        let d = rootPath
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Scratch.rootPath) }
        return d
    }()

    static var rootPath: String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tpufi-tests-\(getpid())").path
    }

    /// The path `name` under the root, not existing yet (a leftover of that name is removed).
    public static func path(_ name: String) -> String {
        let p = root + "/" + name
        try? FileManager.default.removeItem(atPath: p)
        return p
    }
}
