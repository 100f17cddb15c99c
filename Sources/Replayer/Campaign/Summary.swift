import Sim
import Recorder
import Foundation

/// The Wilson score interval of a binomial proportion (Wilson 1927): unlike the normal
/// approximation it stays inside [0, 1] and is sensible for 0 or `n` successes, which fault
/// campaigns produce all the time (rare outcomes).
public enum Wilson {
    /// The normal quantile of a 95 % two-sided interval.
    public static let z95 = 1.959963984540054

    /// `(low, high)` for `successes` of `trials` (`(0, 1)` when there are no trials).
    public static func interval(successes k: Int, trials n: Int, z: Double = z95) -> (low: Double, high: Double) {
        guard n > 0 else { return (0, 1) }
        let n = Double(n), p = Double(k) / n, z2 = z * z
        let denominator = 1 + z2 / n
        let center = (p + z2 / (2 * n)) / denominator
        let half = z / denominator * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        // Exactly 0 and 1 at the ends (rounding would leave 1e-17).
        return (k == 0 ? 0 : max(0, center - half), k == Int(n) ? 1 : min(1, center + half))
    }
}

/// Outcome counts with 95 % Wilson intervals: overall and by fault model, phase and layer.
/// Built from results sorted by index, so it is the same however the experiments ran.
public struct CampaignSummary: Codable, Sendable, Equatable {
    public struct Share: Codable, Sendable, Equatable {
        public var outcome: String
        public var count: Int
        public var fraction: Double
        public var low: Double
        public var high: Double
    }

    public struct Group: Codable, Sendable, Equatable {
        /// `overall`, `faultModel`, `phase` or `layer`.
        public var dimension: String
        public var key: String
        public var total: Int
        /// Every outcome class (the order of docs/outcomes.md), zero counts included.
        public var outcomes: [Share]
    }

    public var campaign: String
    /// Experiments the campaign plans (all shards).
    public var experiments: Int
    /// Experiments with a result here.
    public var completed: Int
    /// Experiments expected here (this directory's shard, or all) without a result: the
    /// first ``missingListed`` of them (a campaign of a billion planned experiments must not
    /// write a billion indices); ``missingCount`` counts them all.
    public var missing: [Int]
    public var missingCount: Int
    public static let missingListed = 1000
    /// Mean simulated steps per experiment (the injected one included) and how many
    /// experiments stopped early, by reason.
    public var meanStepsRun: Double
    public var stoppedEarly: [String: Int]
    /// Experiments whose golden had not learned over the compared steps (train accuracy
    /// within noise of chance): they are Masked for want of anything to degrade from, so a
    /// degrade share of this campaign says nothing about them.
    public var goldenNotLearned: Int
    /// Experiments whose fault changed nothing (``ExperimentResult/changedNothing``: no
    /// element activated, or a hardware fault in a PE the operation does not use): trivially
    /// Masked, counted so that a Masked share can be read without them.
    public var notActivated: Int
    /// Of ``notActivated``, the hardware faults in a PE the operation does not use.
    public var peNotInUse: Int
    public var groups: [Group]
    /// Detection and recovery over the experiments run with mitigation (nil: none were).
    public var mitigation: MitigationCoverage?

    public init(manifest: CampaignManifest, results: [ExperimentResult]) {
        let sorted = results.sorted { $0.index < $1.index }
        campaign = manifest.id
        experiments = manifest.parameters.experiments
        completed = sorted.count
        let have = Set(sorted.map(\.index))
        var missing: [Int] = [], missingCount = 0
        for i in (manifest.shard ?? .all).stride(of: experiments) where !have.contains(i) {
            missingCount += 1
            if missing.count < Self.missingListed { missing.append(i) }
        }
        self.missing = missing
        self.missingCount = missingCount
        meanStepsRun = sorted.isEmpty ? 0 : Double(sorted.map(\.stepsRun).reduce(0, +)) / Double(sorted.count)
        stoppedEarly = Dictionary(sorted.compactMap(\.stoppedEarly).map { ($0, 1) }, uniquingKeysWith: +)
        goldenNotLearned = sorted.filter { $0.goldenLearned == false }.count
        notActivated = sorted.filter(\.changedNothing).count
        peNotInUse = sorted.filter { $0.peInUse == false }.count

        func group(_ dimension: String, _ key: String, _ members: [ExperimentResult]) -> Group {
            let n = members.count
            return Group(dimension: dimension, key: key, total: n, outcomes: Outcome.allCases.map { o in
                let k = members.filter { $0.outcome == o.rawValue }.count
                let (low, high) = Wilson.interval(successes: k, trials: n)
                return Share(outcome: o.rawValue, count: k, fraction: n == 0 ? 0 : Double(k) / Double(n), low: low, high: high)
            })
        }
        // Keys in a fixed order: fault models as listed in docs/faults.md, phases forward
        // first, layers in execution order; only keys that occur.
        let layerOrder = manifest.golden.sites.map { SiteID(parsing: $0).layer }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        var groups = [group("overall", "all", sorted)]
        // Hardware faults are labelled by register and class (`HW_WEIGHT_FLIP`), after the 18.
        let hardwareLabels = Set(sorted.map(\.faultModel)).subtracting(FaultModel.allCases.map(\.rawValue)).sorted()
        for m in FaultModel.allCases.map(\.rawValue) + hardwareLabels where sorted.contains(where: { $0.faultModel == m }) {
            groups.append(group("faultModel", m, sorted.filter { $0.faultModel == m }))
        }
        for p in Phase.allCases where sorted.contains(where: { $0.phase == p }) {
            groups.append(group("phase", p.rawValue, sorted.filter { $0.phase == p }))
        }
        let otherLayers = Set(sorted.map(\.layer)).subtracting(layerOrder).sorted()
        for l in layerOrder + otherLayers where sorted.contains(where: { $0.layer == l }) {
            groups.append(group("layer", l, sorted.filter { $0.layer == l }))
        }
        self.groups = groups
        mitigation = MitigationCoverage(results: sorted)
    }

    /// `dimension,key,outcome,count,total,fraction,wilson_low,wilson_high`, one row per group
    /// and outcome class.
    public var csv: String {
        var lines = ["dimension,key,outcome,count,total,fraction,wilson_low,wilson_high"]
        for g in groups {
            for s in g.outcomes {
                lines.append([g.dimension, g.key, s.outcome, "\(s.count)", "\(g.total)",
                              String(format: "%.6f", s.fraction), String(format: "%.6f", s.low), String(format: "%.6f", s.high)].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A terminal table: the overall shares and per fault model, phase, layer the counts.
    public var text: String {
        var out = ["\(completed) of \(experiments) experiments\(missingCount == 0 ? "" : ", \(missingCount) missing here"); mean \(String(format: "%.2f", meanStepsRun)) steps run per experiment"]
        for g in groups where g.dimension == "overall" {
            for s in g.outcomes {
                out.append("  " + s.outcome.padding(toLength: 18, withPad: " ", startingAt: 0)
                           + String(format: "%5d  %6.2f%%  [%6.2f%%, %6.2f%%]", s.count, 100 * s.fraction, 100 * s.low, 100 * s.high))
            }
        }
        for g in groups where g.dimension != "overall" {
            let counts = g.outcomes.filter { $0.count > 0 }.map { "\($0.outcome) \($0.count)" }.joined(separator: ", ")
            out.append("  \(g.dimension) \(g.key) (\(g.total)): \(counts)")
        }
        if notActivated > 0 {
            out.append("  not activated: \(notActivated) experiment(s) whose fault changed nothing (no element changed\(peNotInUse > 0 ? "; \(peNotInUse) of them in a PE the operation does not use" : "")): trivially Masked")
        }
        if goldenNotLearned > 0 {
            out.append("  warning: in \(goldenNotLearned) experiment(s) the golden had not learned over the compared steps (train accuracy within noise of chance): no degrade class could be assigned to them")
        }
        if let mitigation { out.append(mitigation.text) }
        return out.joined(separator: "\n")
    }

    public static func jsonPath(_ directory: String) -> String { directory + "/summary.json" }
    public static func csvPath(_ directory: String) -> String { directory + "/summary.csv" }

    /// Writes `summary.json` and `summary.csv` into a campaign directory.
    public func write(to directory: String) throws(CampaignError) {
        try Self.checkOutputs(directory: directory)
        let json: [UInt8]
        do { json = try CampaignJSON.encode(self, pretty: true) } catch { throw .io(file: Self.jsonPath(directory), reason: "cannot encode: \(error)") }
        try writeFileAtomically(json + [UInt8(ascii: "\n")], to: Self.jsonPath(directory))
        try writeFileAtomically(Array(csv.utf8), to: Self.csvPath(directory))
    }

    /// Refuses summary files that are (through symbolic links) the campaign files they are
    /// computed from: writing them would replace an input.
    public static func checkOutputs(directory: String) throws(CampaignError) {
        let inputs = [CampaignManifest.path(directory), ResultsLog.path(directory)]
        for output in [jsonPath(directory), csvPath(directory)] {
            if let reason = OutputGuard.conflict(output, with: inputs) { throw .io(file: output, reason: reason) }
        }
    }

    /// Summarises the campaign in `directory` and writes its summary files.
    @discardableResult
    public static func summarize(directory: String) throws(CampaignError) -> CampaignSummary {
        let manifest = try CampaignManifest.load(directory: directory)
        let summary = CampaignSummary(manifest: manifest, results: try ResultsLog.read(directory: directory, campaign: manifest.id).results)
        try summary.write(to: directory)
        return summary
    }
}

extension Array where Element == Int {
    /// `[0, 1, 2, 5]` as `0-2, 5`.
    var ranges: String {
        var out: [String] = []
        var i = 0
        while i < count {
            var j = i
            while j + 1 < count && self[j + 1] == self[j] + 1 { j += 1 }
            out.append(i == j ? "\(self[i])" : "\(self[i])-\(self[j])")
            i = j + 1
        }
        return out.isEmpty ? "none" : out.joined(separator: ", ")
    }
}
