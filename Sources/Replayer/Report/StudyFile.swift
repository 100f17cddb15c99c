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
        /// The reference's own status under the reference-defined rule, and where its loss
        /// went non-finite (absent in older studies: computed from its curve).
        public var referenceStatus: String?
        public var referenceDivergenceStep: Int?
        /// The fault-effect status and its numbers (absent in older studies: computed from
        /// the curves, see ``effect``).
        public var effectStatus: String?
        public var smoothedFaultEffect: Double?
        public var effectMargin: Double?
        public var referenceNoise: Double?

        /// The reference-defined status: `Diverged` when the loss went non-finite.
        public var displayStatus: String { divergenceStep == nil ? status : "Diverged" }

        /// The curves as floats, when the file has all of them.
        private var curves: (steps: [Int], accuracy: [Float], loss: [Float], referenceAccuracy: [Float], referenceLoss: [Float])? {
            guard let steps, let accuracy, let loss, let referenceAccuracy, let referenceLoss else { return nil }
            // study.json holds float32 values: the conversion back is exact.
            return (steps, accuracy.map { Float($0) }, loss.map { Float($0) }, referenceAccuracy.map { Float($0) }, referenceLoss.map { Float($0) })
        }

        /// The fault effect: as recorded, else computed from the curves (``FaultEffect``, the
        /// rule the study applies), else unknown (status `unknown`, numbers nil).
        public var effect: Effect {
            if let effectStatus {
                return Effect(status: effectStatus, smoothed: smoothedFaultEffect, margin: effectMargin, referenceNoise: referenceNoise, computed: false)
            }
            guard let c = curves else { return Effect(status: "unknown", smoothed: nil, margin: nil, referenceNoise: nil, computed: false) }
            let e = FaultEffect(steps: c.steps, accuracy: c.accuracy, loss: c.loss, referenceAccuracy: c.referenceAccuracy, referenceLoss: c.referenceLoss)
            return Effect(status: e.status.rawValue, smoothed: Double(e.smoothed), margin: Double(e.margin), referenceNoise: e.referenceNoise.map(Double.init), computed: true)
        }

        /// The smoothed fault effect at every step (``FaultEffect/smoothedCurve(_:window:)``);
        /// nil without the curves.
        public var smoothedEffectCurve: [Double]? {
            guard let c = curves else { return nil }
            let d = FaultEffect.differences(accuracy: c.accuracy, loss: c.loss, referenceAccuracy: c.referenceAccuracy, referenceLoss: c.referenceLoss)
            return FaultEffect.smoothedCurve(d).map(Double.init)
        }

        /// The fault-free reference's own status under the reference-defined rule: recorded,
        /// else computed from its curve, else `unknown`.
        public var displayReferenceStatus: String {
            if referenceDivergenceStep != nil { return "Diverged" }
            if let referenceStatus { return referenceStatus }
            guard let c = curves, let a = accuracyAtInjection else { return "unknown" }
            return RecoveryStatus.of(accuracy: c.referenceAccuracy, loss: c.referenceLoss, accuracyAtInjection: Float(a)).rawValue
        }
    }

    /// A run's fault effect as the report shows it.
    public struct Effect: Sendable, Equatable {
        /// `Diverged`, `Degraded`, `Unaffected`, `Improved`, or `unknown`.
        public var status: String
        public var smoothed: Double?
        public var margin: Double?
        public var referenceNoise: Double?
        /// Computed here from the curves (the study predates the field).
        public var computed: Bool
    }

    public struct SummaryRow: Codable, Sendable, Equatable {
        public var optimizer: String
        public var recovered: Int
        public var stable: Int
        public var degraded: Int
        public var diverged: Int
        public var meanAccuracyChange: Double?
        public var meanDegradationRate: Double?
        /// Effect-status counts (absent in older studies: counted from the runs).
        public var effectDegraded: Int?
        public var unaffected: Int?
        public var improved: Int?
        public var meanSmoothedFaultEffect: Double?
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

    /// Per optimizer (in ``summaryRows`` order): counts of the effect statuses, as the study
    /// recorded them, else counted from the runs' effects (``Run/effect``), with `unknown`
    /// for runs whose effect cannot be known.
    public var effectCounts: [(optimizer: String, counts: [(status: String, count: Int)])] {
        summaryRows.map { row -> (optimizer: String, counts: [(status: String, count: Int)]) in
            let runs = experiments.flatMap(\.runs).filter { $0.optimizer == row.optimizer }
            if let d = row.effectDegraded, let u = row.unaffected, let i = row.improved {
                return (row.optimizer, [("Improved", i), ("Unaffected", u), ("Degraded", d), ("Diverged", row.diverged)])
            }
            let statuses = runs.map(\.effect.status)
            let known: [(status: String, count: Int)] = ["Improved", "Unaffected", "Degraded", "Diverged"].map { s in (s, statuses.filter { $0 == s }.count) }
            let unknown = statuses.filter { !["Improved", "Unaffected", "Degraded", "Diverged"].contains($0) }.count
            return (row.optimizer, known + (unknown > 0 ? [("unknown", unknown)] : []))
        }
    }
}
