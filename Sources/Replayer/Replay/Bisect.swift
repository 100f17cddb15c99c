import Recorder
import Sim

/// Where two runs of the same configuration first part.
public struct BisectResult: Sendable, Codable, Equatable {
    public struct Site: Sendable, Codable, Equatable {
        public var site: String
        /// Replicas on which this operation's output differs.
        public var replicas: [Int]
    }

    /// First global step whose resulting state differs (nil: none in the common steps).
    public var firstDivergentStep: Int?
    /// First MXU operation of that step, in execution order, whose output differs on some
    /// replica, or `update` when every operation matched and the update itself differed.
    public var firstDivergentSite: String?
    public var replica: Int?
    /// Every operation of that step whose output differs, in execution order.
    public var sites: [Site]
    /// State digests compared (binary search: about log2 of the common steps).
    public var comparisons: Int
    public var commonSteps: ClosedRange<Int>?
}

/// Bisection over recorded digests: no re-execution needed to find the step and the
/// operation, since every step records the state digest and every operation's output digest.
public enum Bisect {
    public static func run(_ a: TraceReader, _ b: TraceReader) throws -> BisectResult {
        guard a.manifest.config == b.manifest.config else {
            throw ReplayError.specMismatch("\(a.directory) and \(b.directory) record different configurations (\(describe(a.manifest.config)) vs \(describe(b.manifest.config)))")
        }
        guard a.manifest.dataDigest == b.manifest.dataDigest else {
            throw ReplayError.specMismatch("\(a.directory) and \(b.directory) were recorded on different data (digests \(a.manifest.dataDigest) and \(b.manifest.dataDigest))")
        }
        let ra = Dictionary(try a.stepRecords().map { ($0.step, $0) }, uniquingKeysWith: { x, _ in x })
        let rb = Dictionary(try b.stepRecords().map { ($0.step, $0) }, uniquingKeysWith: { x, _ in x })
        guard let lo = max(ra.keys.min() ?? .max, rb.keys.min() ?? .max) as Int?, let hi = min(ra.keys.max() ?? .min, rb.keys.max() ?? .min) as Int?, lo <= hi else {
            return BisectResult(firstDivergentStep: nil, firstDivergentSite: nil, replica: nil, sites: [], comparisons: 0, commonSteps: nil)
        }
        var comparisons = 0
        func differs(_ s: Int) -> Bool {
            comparisons += 1
            return ra[s]?.stateDigest != rb[s]?.stateDigest
        }
        // The first differing step: the runs agree before it and (for a fault that is not
        // later masked exactly) differ from it on.
        guard differs(hi) || differs(lo) else {
            return BisectResult(firstDivergentStep: nil, firstDivergentSite: nil, replica: nil, sites: [], comparisons: comparisons, commonSteps: lo...hi)
        }
        var (left, right) = (lo, hi)        // invariant: the state after `right` differs
        if differs(lo) { right = lo }
        while left < right {
            let mid = (left + right) / 2
            if differs(mid) { right = mid } else { left = mid + 1 }
        }
        let step = right
        let sites = a.manifest.sites
        var differing: [BisectResult.Site] = []
        if let x = ra[step], let y = rb[step] {
            for (i, name) in sites.enumerated() {
                let replicas = x.siteDigests.indices.filter { r in r < y.siteDigests.count && i < x.siteDigests[r].count && x.siteDigests[r][i] != y.siteDigests[r][i] }
                if !replicas.isEmpty { differing.append(.init(site: name, replicas: replicas)) }
            }
        }
        return BisectResult(firstDivergentStep: step, firstDivergentSite: differing.first?.site ?? "update",
                            replica: differing.first?.replicas.first, sites: differing, comparisons: comparisons, commonSteps: lo...hi)
    }

    static func describe(_ c: TrainingConfig) -> String {
        "\(c.workload.rawValue) \(c.scale.name), \(c.replicas) replicas, \(c.optimizer.kind.rawValue), seed \(c.seed), \(c.chip.name), \(c.precision.rawValue)"
    }
}
