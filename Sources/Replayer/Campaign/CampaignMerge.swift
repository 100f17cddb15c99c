import Foundation
import Recorder
import Sim

/// Combines the directories of a campaign's shards (or partial runs) into one.
public enum CampaignMerge {
    public struct Report: Sendable {
        public var manifest: CampaignManifest
        public var results: Int
        /// Experiments of the campaign that no directory holds, ascending: the first
        /// ``CampaignSummary/missingListed`` of them, and how many there are.
        public var missing: [Int]
        public var missingCount: Int
        public var summary: CampaignSummary
    }

    /// Checks that every directory holds the same campaign (same id: golden identity and
    /// parameters) and that no experiment appears twice, then writes `out` (which must not
    /// exist or be empty): `campaign.json` (no shard), `results.jsonl` sorted by index, and
    /// the summary. Missing experiments are reported, not an error (a shard may have failed;
    /// rerun it and merge again).
    public static func merge(_ directories: [String], out: String) throws(CampaignError) -> Report {
        guard !directories.isEmpty else { throw .badParameter("merge: give the campaign directories to merge") }
        let fm = FileManager.default
        if let reason = OutputGuard.conflict(out, with: directories) { throw .output(directory: out, reason: reason) }
        func refuseNonEmpty() throws(CampaignError) {
            // (A lock file alone is what a merge killed before it wrote anything leaves.)
            if fm.fileExists(atPath: out), OutputGuard.files(in: out).contains(where: { !$0.hasSuffix("/" + DirectoryLock.fileName) }) {
                throw .output(directory: out, reason: "already exists and is not empty (choose another --out)")
            }
        }
        try refuseNonEmpty()
        let first = try CampaignManifest.load(directory: directories[0])
        let productsInTurn: Bool
        do {
            productsInTurn = try first.golden.config.makeModel().operations.contains { $0.products > 1 }
        } catch {
            throw .badFile(file: CampaignManifest.path(directories[0]), line: nil, reason: "cannot build the golden's model: \(error)")
        }
        var merged: [ExperimentResult] = []
        var from: [Int: String] = [:]
        for directory in directories {
            let m = try CampaignManifest.load(directory: directory)
            let differences = first.differences(from: m)
            guard differences.isEmpty else {
                throw .mismatch("\(directory) is not a shard of the campaign in \(directories[0]): " + differences.joined(separator: "; "))
            }
            if let conflict = first.scheduleRulesConflict(with: m, drawsOnProductsInTurn: productsInTurn) {
                throw .mismatch("\(directory) and \(directories[0]) hold \(conflict): merging would mix them")
            }
            let log = try ResultsLog.read(directory: directory, campaign: first.id)
            for r in log.results {
                if let other = from[r.index] {
                    throw .mismatch("experiment \(r.index) is in both \(other) and \(directory) (\(ResultsLog.path(directory)))")
                }
                guard r.index < first.parameters.experiments else {
                    throw .badFile(file: ResultsLog.path(directory), line: nil, reason: "experiment \(r.index) is past the campaign's \(first.parameters.experiments) experiments")
                }
                if let shard = m.shard, !shard.contains(r.index) {
                    throw .badFile(file: ResultsLog.path(directory), line: nil,
                                   reason: "experiment \(r.index) does not belong to shard \(shard.index)/\(shard.count) (its experiments are those with index % \(shard.count) == \(shard.index))")
                }
                from[r.index] = directory
                merged.append(r)
            }
        }
        var manifest = first
        manifest.shard = nil
        do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw .io(file: out, reason: "cannot create: \(error.localizedDescription)")
        }
        // Held while writing, as a campaign holds its directory: a campaign or merge started
        // there meanwhile is refused.
        let lock: DirectoryLock
        do { lock = try DirectoryLock(directory: out) } catch { throw .output(directory: out, reason: error.reason) }
        defer { withExtendedLifetime(lock) {} }
        try refuseNonEmpty()  // another process that also found it empty got here first
        let manifestBytes: [UInt8]
        do { manifestBytes = try CampaignJSON.encode(manifest, pretty: true) } catch { throw .io(file: CampaignManifest.path(out), reason: "\(error)") }
        try writeFileAtomically(manifestBytes + [UInt8(ascii: "\n")], to: CampaignManifest.path(out))
        try ResultsLog.write(merged, directory: out)
        let summary = CampaignSummary(manifest: manifest, results: merged)
        try summary.write(to: out)
        return Report(manifest: manifest, results: merged.count, missing: summary.missing, missingCount: summary.missingCount, summary: summary)
    }
}
