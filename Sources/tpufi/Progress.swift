import Foundation

/// A one-line progress display on standard error: shown only when it is a terminal, so
/// pipes and logs stay clean.
final class ProgressLine {
    private let total: Int
    /// Done before this line started (a resumed run): not counted in the rate.
    private let alreadyDone: Int
    private let start = Date()
    private let enabled = isatty(2) != 0
    private var last = Date.distantPast

    init(total: Int, alreadyDone: Int = 0) {
        self.total = total
        self.alreadyDone = alreadyDone
    }

    /// Redraws the line (at most ten times a second) with `done` of `total` finished.
    func update(done: Int, detail: String) {
        guard enabled else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(last) > 0.1 else { return }
        last = now
        let elapsed = now.timeIntervalSince(start)
        let rate = Double(done - alreadyDone) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        write("\r\u{1B}[K\(done)/\(total) \(detail)  \(String(format: "%.2f", rate))/s  ETA \(Self.duration(eta))")
    }

    /// Clears the line so that ordinary output can follow.
    func clear() {
        if enabled { write("\r\u{1B}[K") }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
