import Foundation
import Sim

/// The trace directory's description of itself (`manifest.json`): everything needed to
/// re-create the run bit for bit, what the frames hold, and whether the run completed.
/// Written atomically (temporary file, then rename) at the start and again at the end;
/// it holds no timestamps, so the same inputs give byte-identical traces.
public struct TraceManifest: Codable, Sendable, Equatable {
    /// Bumped whenever a reader of the previous version could misread a trace. Version 2
    /// added update deltas (snapshots stored as the step's gradients and batch statistics);
    /// version 3 names how the step records' operation digests are taken (``outputDigest``),
    /// new traces take them two elements at a time, and an update delta records the digest of
    /// the state it rebuilds (``TrainingState/digest``) rather than of its flat values.
    public static let currentFormatVersion = 3
    /// Versions this tpufi reads: 1 (keyframes and XOR deltas only), 2 and 3.
    public static let readableFormatVersions = 1...3

    public var formatVersion: Int = TraceManifest.currentFormatVersion
    public var tool: String = "tpufi \(TraceManifest.toolVersion)"
    public var config: TrainingConfig
    /// The data as given on the command line (or as fitted to the model's input, e.g.
    /// `fashion-mnist@32x32x3`: ``TrainingRun/load(config:dataset:threads:)``), its name and
    /// sizes, and a digest of every decoded image and label (train, then test): the data set's
    /// identity, whatever file it came from.
    public var dataset: String
    public var datasetName: String
    public var trainCount: Int
    public var testCount: Int
    public var dataDigest: String
    public var stepsPerEpoch: Int
    /// Snapshots: of the initial state and after every `snapshotEvery` updates.
    public var snapshotEvery: Int
    /// Every `keyframeEvery`-th snapshot is self-contained. Of the others, one taken a step
    /// after the previous snapshot is (format 2) an update delta: the step's gradients and
    /// batch statistics, re-applied to the previous state; any other is an XOR delta against
    /// the latest keyframe (see ``SnapshotStore``).
    public var keyframeEvery: Int
    public var plannedSteps: Int
    /// MXU operations in execution order: each step record's per-replica digests align to it.
    public var sites: [String]
    /// How the step records' operation digests were taken: stated from format 3 on (a
    /// replay writes its golden's format, so that the two compare); absent in formats 1 and
    /// 2, which took them element by element. Read it through ``outputDigests``.
    public var outputDigest: OutputDigest? = OutputDigest.current
    public var parameterNames: [String]
    /// Per-layer cycle counts of one replica's step from the timing model.
    public var timing: SimulationReport
    public var complete: Bool
    public var completedSteps: Int
    /// For a faulty run replayed from a golden trace: the fault, resolved (absent in golden
    /// traces).
    public var injection: Injection?
    /// The detectors and response the run trained with, and what they did (absent when the
    /// run had no mitigation).
    public var mitigation: MitigationRecord?

    public static let toolVersion = "0.1.0"

    /// A fault as injected (``InjectionRecord``): enough to reproduce the run from this alone.
    public typealias Injection = InjectionRecord

    /// How this trace's operation digests are taken (``outputDigest``, or the element-by-element
    /// digest of formats 1 and 2).
    public var outputDigests: OutputDigest { outputDigest ?? .elementLanes }

    /// Largest step counts and replica count a manifest may state (far beyond any real run;
    /// they keep every product of step numbers inside `Int`).
    public static let maximumSteps = 1 << 40
    public static let maximumReplicas = 1 << 12

    /// Checks that this tpufi reads the format version and that the operation digest fits it
    /// (stated from format 3 on, element by element before); the error names the field. A
    /// writer checks this before it creates anything: a trace no reader accepts is not written.
    public func validateFormat(file: String) throws(TraceError) {
        guard Self.readableFormatVersions.contains(formatVersion) else {
            throw .malformed(file: file, reason: "trace format version \(formatVersion); this tpufi reads versions \(Self.readableFormatVersions.lowerBound)-\(Self.readableFormatVersions.upperBound)")
        }
        func bad(_ reason: String) -> TraceError { .malformed(file: file, reason: "field 'outputDigest': \(reason)") }
        switch (formatVersion, outputDigest) {
        case (3..., nil): throw bad("missing; format \(formatVersion) states how operation outputs were digested")
        case (...2, .some(let d)) where d != .elementLanes:
            throw bad("'\(d.rawValue)' in format \(formatVersion), which digests operation outputs element by element")
        default: break
        }
    }

    /// Checks every field a reader computes with, and that the sites and parameter names are
    /// those of the model the configuration describes; the error names the field. Returns
    /// that model.
    @discardableResult
    public func validate(file: String) throws(TraceError) -> any Model {
        try validateFormat(file: file)
        func bad(_ field: String, _ reason: String) -> TraceError { .malformed(file: file, reason: "field '\(field)': \(reason)") }
        let counts: [(String, Int, ClosedRange<Int>)] = [
            // (Only divisors: a campaign's sparse traces snapshot "never but at the end", Int.max.)
            ("snapshotEvery", snapshotEvery, 1...Int.max), ("keyframeEvery", keyframeEvery, 1...Int.max),
            ("stepsPerEpoch", stepsPerEpoch, 1...Self.maximumSteps), ("plannedSteps", plannedSteps, 1...Self.maximumSteps),
            ("completedSteps", completedSteps, 0...plannedSteps), ("trainCount", trainCount, 0...Int(Int32.max)),
            ("testCount", testCount, 0...Int(Int32.max)), ("config.replicas", config.replicas, 1...Self.maximumReplicas),
        ]
        for (field, value, range) in counts where !range.contains(value) {
            throw bad(field, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        do {
            try config.chip.validate()
        } catch {
            throw bad("config.chip", "\(error)")
        }
        let model: any Model
        do {
            model = try config.makeModel()
        } catch {
            throw bad("config.scale", "\(error)")
        }
        guard sites == model.sites.map(\.name) else {
            throw bad("sites", "\(sites.count) sites that are not those of \(config.title) (\(model.sites.count))")
        }
        guard parameterNames == model.parameterNames else {
            throw bad("parameterNames", "\(parameterNames.count) names that are not those of \(config.title) (\(model.parameterNames.count))")
        }
        if let i = injection {
            guard i.replica < config.replicas else { throw bad("injection.replica", "\(i.replica), the run has \(config.replicas) replicas") }
            guard i.globalStep < plannedSteps else { throw bad("injection.globalStep", "\(i.globalStep), the run plans \(plannedSteps) steps") }
        }
        return model
    }
}

/// What one training step left behind (JSON in a ``FrameKind/step`` frame).
public struct StepRecord: Codable, Sendable, Equatable {
    /// Global index of the update (0-based): the record of the update taking the state from
    /// `step` to `step + 1` updates.
    public var step: Int
    public var epoch: Int
    public var stepInEpoch: Int
    public var loss: Float
    public var accuracy: Float
    public var learningRate: Float
    /// Digest of the whole training state after the update.
    public var stateDigest: String
    /// Per replica, the digest of every MXU operation's output (``TraceManifest/sites`` order).
    public var siteDigests: [[String]]
}

/// The project's JSON conventions (traces, specs, campaign and study files, `--json`):
/// sorted keys, so output is byte-stable, and non-finite floats as the strings `inf`, `-inf`
/// and `nan` (a fault may write any of them).
public enum JSONCoding {
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder().encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decoder.decode(type, from: Data(bytes))
    }
}

/// Where ``writeAtomically(_:to:)`` stages `path`'s new contents (what a writer killed
/// mid-write leaves behind).
public func temporaryPath(_ path: String) -> String { path + ".tmp" }

/// Writes `bytes` to `path` so that readers see either the old file or the new one: through
/// a temporary file, synced, then renamed over `path` (a symbolic link at `path` is replaced,
/// never written through). Whatever is at the temporary path (a file a killed writer left,
/// or a symbolic link) is removed first, and the temporary file is created anew.
public func writeAtomically(_ bytes: [UInt8], to path: String) throws(TraceError) {
    let tmp = temporaryPath(path)
    guard unlink(tmp) == 0 || errno == ENOENT else { throw .io(file: tmp, reason: "cannot remove: \(String(cString: strerror(errno)))") }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .io(file: tmp, reason: "cannot create: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    try AppendFile.write(bytes, to: fd, path: tmp)
    guard fsync(fd) == 0 else { throw .io(file: tmp, reason: "cannot sync: \(String(cString: strerror(errno)))") }
    guard rename(tmp, path) == 0 else { throw .io(file: path, reason: "cannot replace: \(String(cString: strerror(errno)))") }
}
