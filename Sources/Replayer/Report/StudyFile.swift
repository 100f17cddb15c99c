import Foundation
import Sim
import Recorder

/// `study.json` of an optimizer-study directory (`tpufi optimizer-study`,
/// `docs/study.md#outputs`), as far as the report needs it. Tolerant: unknown fields are ignored, fields
/// the report can do without are optional, and non-finite numbers may be the strings
/// `nan`, `inf`, `-inf`.
public struct StudyFile: Codable, Sendable, Equatable {
    public var kind: String?
    public var baseline: String?
    public var optimizers: [String]
    public var stepsAfterInjection: Int?
    public var seed: UInt64?
    public var golden: String?
    public var workload: String?
    public var scale: String?
    public var experiments: [Experiment]
    /// Per optimizer, as the study counted it; nil: counted from the runs.
    public var summary: [SummaryRow]?

    /// One injected fault, continued with every optimizer.
    public struct Experiment: Codable, Sendable, Equatable {
        public var index: Int
        public var globalStep: Int?
        public var site: String?
        public var faultModel: String?
        public var value: Double?
        public var runs: [Run]
    }

    /// One optimizer's continuation after the fault, and its fault-free reference.
    public struct Run: Codable, Sendable, Equatable {
        public var optimizer: String
        public var finalAccuracy: Double?
        public var accuracyAtInjection: Double?
        public var accuracyChange: Double?
        public var degradationRate: Double?
        /// `Recovered`, `Stable` or `Degraded`.
        public var status: String
        /// The step at which the loss went non-finite; nil when it did not.
        public var divergenceStep: Int?
        public var steps: [Int]?
        public var accuracy: [Double]?
        public var loss: [Double]?
        public var referenceAccuracy: [Double]?
        public var referenceLoss: [Double]?

        /// The status the report colours by: `Diverged` when the loss went non-finite.
        public var displayStatus: String { divergenceStep == nil ? status : "Diverged" }
    }

    public struct SummaryRow: Codable, Sendable, Equatable {
        public var optimizer: String
        public var recovered: Int
        public var stable: Int
        public var degraded: Int
        public var diverged: Int
        public var meanAccuracyChange: Double?
        public var meanDegradationRate: Double?
    }

    public static func path(_ directory: String) -> String { directory + "/study.json" }

    /// Decodes `study.json` bytes; `file` names it in errors.
    public static func decode(_ data: Data, file: String) throws(ReportError) -> StudyFile {
        let study: StudyFile
        switch JSONInput.decode(StudyFile.self, from: data, decoder: JSONCoding.decoder) {
        case .success(let decoded): study = decoded
        case .failure(let e): throw .badFile(file: file, line: nil, reason: "not an optimizer study: \(e)")
        }
        if let kind = study.kind, kind != "optimizer-study" {
            throw .badFile(file: file, line: nil, reason: "kind '\(kind)', expected 'optimizer-study'")
        }
        return study
    }

    /// Reads `study.json` of `directory`.
    public static func load(directory: String) throws(ReportError) -> StudyFile {
        let file = path(directory)
        switch InputFile.read(file, limit: InputFile.logLimit) {
        case .success(let data): return try decode(data, file: file)
        case .failure(let e): throw .io(file: file, reason: e.reason)
        }
    }

    /// The summary rows: the study's own, else counted from the runs (in `optimizers` order).
    public var summaryRows: [SummaryRow] {
        if let summary, !summary.isEmpty { return summary }
        return optimizers.map { o in
            let runs = experiments.flatMap(\.runs).filter { $0.optimizer == o }
            func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
            return SummaryRow(optimizer: o, recovered: runs.filter { $0.status == "Recovered" }.count, stable: runs.filter { $0.status == "Stable" }.count,
                              degraded: runs.filter { $0.status == "Degraded" }.count, diverged: runs.filter { $0.divergenceStep != nil }.count,
                              meanAccuracyChange: mean(runs.compactMap(\.accuracyChange).filter(\.isFinite)),
                              meanDegradationRate: mean(runs.compactMap(\.degradationRate).filter(\.isFinite)))
        }
    }
}
