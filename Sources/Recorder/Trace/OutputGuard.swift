import Foundation

/// No command writes over its own inputs: an output path is compared, as the file system
/// resolves it (symbolic links, `.` and `..`), with every file or directory the command
/// reads. An output that is an input, lies inside an input directory, or is a directory
/// that contains an input is refused, and the error names both.
public enum OutputGuard {
    /// `path` resolved for comparison: absolute, with every symbolic link of the part that
    /// exists followed (a dangling link to what it names), and `.` and `..` removed. The
    /// path need not exist.
    public static func resolved(_ path: String) -> String {
        var absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        // The longest prefix that exists, resolved by the system; the rest by its names.
        var rest: [String] = []
        for _ in 0..<64 {
            if let real = realPath(absolute) { return normalised(real, rest) }
            if let target = danglingLink(absolute) {
                absolute = target.hasPrefix("/") ? target : parent(absolute) + "/" + target
                continue
            }
            let name = (absolute as NSString).lastPathComponent
            let up = parent(absolute)
            if up == absolute { break }
            if !name.isEmpty { rest.insert(name, at: 0) }
            absolute = up
        }
        return normalised("/", rest)
    }

    /// Throws unless `output` is none of `inputs`, inside none of them and contains none of
    /// them; the error names both.
    public static func check(_ output: String, against inputs: [String]) throws(TraceError) {
        if let reason = conflict(output, with: inputs) { throw .io(file: output, reason: reason) }
    }

    /// Why `output` may not be written by a command reading `inputs` (it is one of them, lies
    /// inside one, or contains one), naming the input; nil when it may.
    public static func conflict(_ output: String, with inputs: [String]) -> String? {
        let out = resolved(output)
        let resolvedInputs = inputs.map { ($0, resolved($0)) }
        if let (input, _) = resolvedInputs.first(where: { $0.1 == out }) {
            return "is an input of this command (\(input)); write the output elsewhere"
        }
        for (input, i) in resolvedInputs {
            if out.hasPrefix(i == "/" ? "/" : i + "/") {
                return "is inside \(input), an input of this command; write the output elsewhere"
            }
            if i.hasPrefix(out == "/" ? "/" : out + "/") {
                return "contains \(input), an input of this command; write the output elsewhere"
            }
        }
        return nil
    }

    /// The entries directly inside `directory` (nothing if it cannot be listed).
    public static func files(in directory: String) -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch { return [] }
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

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// What a symbolic link at `path` names, if `path` is one whose target does not exist.
    private static func danglingLink(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func parent(_ path: String) -> String {
        let p = (path as NSString).deletingLastPathComponent
        return p.isEmpty ? "/" : p
    }

    /// `base` followed by `names`, with `.` dropped and `..` going up.
    private static func normalised(_ base: String, _ names: [String]) -> String {
        var parts = base.split(separator: "/").map(String.init)
        for name in names {
            switch name {
            case ".", "": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(name)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
