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
        let common = Set(ra.keys).intersection(rb.keys)
        guard let lo = common.min(), let hi = common.max() else {
            return BisectResult(firstDivergentStep: nil, firstDivergentSite: nil, replica: nil, sites: [], comparisons: 0, commonSteps: nil)
        }
        var comparisons = 0
        func differs(_ s: Int) -> Bool {
            comparisons += 1
            return ra[s]?.stateDigest != rb[s]?.stateDigest
        }
        let step: Int
        if differs(lo) {
            step = lo
        } else if differs(hi) {
            // Binary search: the states agree after `left - 1` and differ after `right`.
            var (left, right) = (lo + 1, hi)
            while left < right {
                let mid = (left + right) / 2
                if differs(mid) { right = mid } else { left = mid + 1 }
            }
            step = right
        } else if operationsDiffer(ra[lo], rb[lo], sites: a.manifest.sites).isEmpty {
            return BisectResult(firstDivergentStep: nil, firstDivergentSite: nil, replica: nil, sites: [], comparisons: comparisons, commonSteps: lo...hi)
        } else {
            // The states agree, but operations of the first common step did not: a fault
            // masked exactly within that step (a replay's first step is its injected one).
            step = lo
        }
        let differing = operationsDiffer(ra[step], rb[step], sites: a.manifest.sites)
        return BisectResult(firstDivergentStep: step, firstDivergentSite: differing.first?.site ?? "update",
                            replica: differing.first?.replicas.first, sites: differing, comparisons: comparisons, commonSteps: lo...hi)
    }

    /// The operations of one step whose output digests differ, in execution order.
    static func operationsDiffer(_ x: StepRecord?, _ y: StepRecord?, sites: [String]) -> [BisectResult.Site] {
        guard let x, let y else { return [] }
        return sites.indices.compactMap { i in
            let replicas = x.siteDigests.indices.filter { r in
                r < y.siteDigests.count && i < x.siteDigests[r].count && i < y.siteDigests[r].count && x.siteDigests[r][i] != y.siteDigests[r][i]
            }
            return replicas.isEmpty ? nil : BisectResult.Site(site: sites[i], replicas: replicas)
        }
    }

    static func describe(_ c: TrainingConfig) -> String {
        "\(c.workload.rawValue) \(c.scale.name), \(c.replicas) replicas, \(c.optimizer.kind.rawValue), seed \(c.seed), \(c.chip.name), \(c.precision.rawValue)"
    }
}
