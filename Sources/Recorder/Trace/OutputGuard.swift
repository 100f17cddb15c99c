import Foundation

/// No command writes over its own inputs: an output path is compared, as the file system
/// resolves it (symbolic links, `.` and `..`), with every file the command reads.
public enum OutputGuard {
    /// `path` resolved for comparison (the file need not exist; its directory is resolved).
    public static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Throws unless `output` names none of `inputs`; the error names both.
    public static func check(_ output: String, against inputs: [String]) throws(TraceError) {
        let out = resolved(output)
        if let input = inputs.first(where: { resolved($0) == out }) {
            throw .io(file: output, reason: "is an input of this command (\(input)); write the output elsewhere")
        }
    }

    /// The regular files directly inside `directory` (nothing if it cannot be listed).
    public static func files(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().map { directory + "/" + $0 }
    }

    /// A file error in a few words (the system's reason, e.g. "No such file or directory"),
    /// not Foundation's whole error dump.
    public static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}
