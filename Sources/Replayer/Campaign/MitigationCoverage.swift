import Foundation
import Sim

/// What mitigation achieved over a campaign whose experiments ran twice, without and with it:
/// per outcome class of the plain run and per detector, how many it detected, how many the
/// mitigated run turned into Masked (and bit-identical to golden), how late, at what cost.
/// Shares carry 95 % Wilson intervals.
public struct MitigationCoverage: Codable, Sendable, Equatable {
    /// A count out of `total` with its Wilson interval.
    public struct Share: Codable, Sendable, Equatable {
        public var count: Int
        public var total: Int
        public var low: Double
        public var high: Double

        init(_ count: Int, of total: Int) {
            self.count = count
            self.total = total
            (low, high) = Wilson.interval(successes: count, trials: total)
        }

        public var fraction: Double { total == 0 ? 0 : Double(count) / Double(total) }
    }

    public struct Row: Codable, Sendable, Equatable {
        /// The plain run's outcome class, or `faulty` (every class but Masked) or `all`.
        public var outcome: String
        /// A detector's spelling, or `any`.
        public var detector: String
        public var detected: Share
        /// The mitigated run's outcome is Masked.
        public var masked: Share
        /// The mitigated run ended bit-identical to golden.
        public var maskedExact: Share
        /// Steps from the injection to the first detection, over the detected experiments.
        public var meanLatency: Double?
        public var maxLatency: Int?
    }

    /// The detectors and response (``Mitigation/description``).
    public var settings: String
    public var experiments: Int
    public var rows: [Row]
    /// Simulated steps of the mitigated runs, and of those the re-executions restores cost.
    public var stepsRun: Int
    public var reexecutedSteps: Int
    /// Wall-clock seconds of the plain and of the mitigated runs.
    public var plainSeconds: Double
    public var mitigatedSeconds: Double
    /// An experiment mitigation restored that did not end bit-identical to golden.
    public struct NotRecovered: Codable, Sendable, Equatable {
        public var index: Int
        /// Steps from the injection to the first detection: a restore reaches back
        /// `restoreSteps - 1` steps before the detected one, so a later detection restores a
        /// state the fault had already reached.
        public var latency: Int?
        /// The mitigated run's outcome.
        public var outcome: String
    }

    /// Experiments mitigation restored that did not end bit-identical to golden.
    public var restoredNotExact: [NotRecovered]

    /// `nil` when no result ran with mitigation.
    public init?(results: [ExperimentResult]) {
        let paired = results.filter { $0.mitigated != nil }.sorted { $0.index < $1.index }
        guard let first = paired.first?.mitigated else { return nil }
        settings = first.mitigation.settings
        experiments = paired.count
        let detectors = Set(paired.flatMap { $0.mitigated?.mitigation.detectors ?? [] })
        let names = ["any"] + first.mitigation.configured.filter(detectors.contains)
        var groups: [(String, [ExperimentResult])] = [("all", paired), ("faulty", paired.filter { $0.outcome != Outcome.masked.rawValue })]
        for o in Outcome.allCases where paired.contains(where: { $0.outcome == o.rawValue }) {
            groups.append((o.rawValue, paired.filter { $0.outcome == o.rawValue }))
        }
        var rows: [Row] = []
        for (outcome, members) in groups where !members.isEmpty {
            // What mitigation made of the group does not depend on which detector fired.
            let masked = Share(members.filter { $0.mitigated?.outcome == Outcome.masked.rawValue }.count, of: members.count)
            let maskedExact = Share(members.filter { $0.mitigated?.maskedExact == true }.count, of: members.count)
            for name in names {
                let hit = members.filter { r in
                    guard let m = r.mitigated?.mitigation, m.detected else { return false }
                    return name == "any" || m.detectors.contains(name)
                }
                let latencies = hit.compactMap { $0.mitigated?.mitigation.latency }
                rows.append(Row(outcome: outcome, detector: name, detected: Share(hit.count, of: members.count),
                                masked: masked, maskedExact: maskedExact,
                                meanLatency: latencies.isEmpty ? nil : Double(latencies.reduce(0, +)) / Double(latencies.count),
                                maxLatency: latencies.max()))
            }
        }
        self.rows = rows
        stepsRun = paired.reduce(0) { $0 + ($1.mitigated?.stepsRun ?? 0) }
        reexecutedSteps = paired.reduce(0) { $0 + ($1.mitigated?.mitigation.reexecutedSteps ?? 0) }
        plainSeconds = paired.reduce(0) { $0 + $1.seconds }
        mitigatedSeconds = paired.reduce(0) { $0 + ($1.mitigated?.seconds ?? 0) }
        restoredNotExact = paired.compactMap { r in
            guard let m = r.mitigated, m.mitigation.restores > 0, !m.maskedExact else { return nil }
            return NotRecovered(index: r.index, latency: m.mitigation.latency, outcome: m.outcome)
        }
    }

    /// A terminal table.
    public var text: String {
        func pct(_ s: Share) -> String {
            String(format: "%4d/%-4d %5.1f%% [%5.1f, %5.1f]", s.count, s.total, 100 * s.fraction, 100 * s.low, 100 * s.high)
        }
        var out = ["mitigation \(settings), \(experiments) experiment(s) run without and with it:",
                   "  " + "outcome (plain run)".padding(toLength: 20, withPad: " ", startingAt: 0)
                   + "detector".padding(toLength: 24, withPad: " ", startingAt: 0)
                   + "detected".padding(toLength: 32, withPad: " ", startingAt: 0)
                   + "now Masked".padding(toLength: 32, withPad: " ", startingAt: 0) + "bit-identical to golden".padding(toLength: 32, withPad: " ", startingAt: 0) + "latency (mean, max)"]
        for r in rows {
            let latency = r.meanLatency.map { String(format: "%.2f, %d", $0, r.maxLatency ?? 0) } ?? "-"
            let same = r.detector != "any"
            out.append("  " + r.outcome.padding(toLength: 20, withPad: " ", startingAt: 0) + r.detector.padding(toLength: 24, withPad: " ", startingAt: 0)
                       + pct(r.detected).padding(toLength: 32, withPad: " ", startingAt: 0)
                       + (same ? "" : pct(r.masked)).padding(toLength: 32, withPad: " ", startingAt: 0)
                       + (same ? "" : pct(r.maskedExact)).padding(toLength: 32, withPad: " ", startingAt: 0) + latency)
        }
        let share = stepsRun == 0 ? 0 : 100 * Double(reexecutedSteps) / Double(stepsRun)
        out.append(String(format: "  recovery: %d of %d simulated step(s) re-executed (%.3f%%); wall time %.1f s without, %.1f s with mitigation",
                          reexecutedSteps, stepsRun, share, plainSeconds, mitigatedSeconds))
        if !restoredNotExact.isEmpty {
            out.append("  restored but not bit-identical to golden: " + restoredNotExact.map { "experiment \($0.index) (\($0.outcome), detected \($0.latency.map(String.init) ?? "?") step(s) after the injection)" }.joined(separator: ", "))
        }
        return out.joined(separator: "\n")
    }
}
