import Foundation
import Recorder
import Sim

/// Errors of `tpufi report`; each names the directory or file (and line) at fault.
public enum ReportError: Error, CustomStringConvertible, Equatable {
    /// Neither a campaign (`campaign.json`) nor an optimizer study (`study.json`).
    case unknownDirectory(directory: String, reason: String)
    /// An input file that is missing, corrupt or not what it claims to be.
    case badFile(file: String, line: Int?, reason: String)
    case io(file: String, reason: String)

    public var description: String {
        switch self {
        case .unknownDirectory(let d, let r): return "\(d): \(r)"
        case .badFile(let f, let l, let r): return "\(f)\(l.map { ":\($0)" } ?? ""): \(r)"
        case .io(let f, let r): return "\(f): \(r)"
        }
    }

    /// A campaign reader's error, for the report of `directory`.
    init(_ e: CampaignError, directory: String) {
        switch e {
        case .badFile(let f, let l, let r): self = .badFile(file: f, line: l, reason: r)
        case .io(let f, let r): self = .io(file: f, reason: r)
        case .output(let d, let r): self = .unknownDirectory(directory: d, reason: r)
        default: self = .unknownDirectory(directory: directory, reason: e.description)
        }
    }
}

/// `tpufi report`: one self-contained HTML file per campaign or optimizer-study directory.
/// Deterministic: the same inputs give a byte-identical file (no dates, no random order).
public enum Report {
    public enum Kind: String, Sendable, Codable {
        case campaign
        case optimizerStudy = "optimizer-study"
    }

    /// What kind of directory `directory` is: `campaign.json` makes a campaign, `study.json`
    /// an optimizer study.
    public static func kind(of directory: String) throws(ReportError) -> Kind {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .unknownDirectory(directory: directory, reason: "no such directory")
        }
        if fm.fileExists(atPath: CampaignManifest.path(directory)) { return .campaign }
        if fm.fileExists(atPath: StudyFile.path(directory)) { return .optimizerStudy }
        throw .unknownDirectory(directory: directory, reason: "neither a campaign (no campaign.json) nor an optimizer study (no study.json)")
    }

    /// The report of `directory` as HTML.
    public static func html(directory: String) throws(ReportError) -> (kind: Kind, html: String) {
        switch try kind(of: directory) {
        case .campaign: return (.campaign, try CampaignHTMLReport.load(directory: directory).html())
        case .optimizerStudy: return (.optimizerStudy, try StudyHTMLReport.load(directory: directory).html())
        }
    }

    /// The default output path: `DIR/report.html`.
    public static func defaultPath(_ directory: String) -> String { directory + "/report.html" }

    /// Writes the report of `directory` to `out` (default `DIR/report.html`); returns the
    /// kind and the path written.
    @discardableResult
    public static func write(directory: String, to out: String? = nil) throws(ReportError) -> (kind: Kind, path: String) {
        let (kind, html) = try html(directory: directory)
        let path = out ?? defaultPath(directory)
        // The files it reads are the report's inputs, and the directory's other files are
        // kept too (its own report.html and lock file aside); the directory itself is where
        // the report goes by default.
        let read = kind == .campaign ? [CampaignManifest.path(directory), ResultsLog.path(directory)] : [StudyFile.path(directory)]
        let others = OutputGuard.files(in: directory).filter {
            !read.contains($0) && $0 != defaultPath(directory) && $0 != directory + "/" + DirectoryLock.fileName
        }
        if let reason = OutputGuard.conflict(path, with: read + others) { throw .io(file: path, reason: reason) }
        do { try writeFileAtomically(Array(html.utf8), to: path) } catch { throw ReportError(error, directory: directory) }
        return (kind, path)
    }
}
