import Foundation
import Recorder
import Sim

/// One experiment's result: one line of `results.jsonl` (JSON, sorted keys, non-finite
/// floats as the strings `inf`, `-inf`, `nan`).
///
/// Fields:
/// - `campaign`: the campaign id (`campaign.json`'s `id`); every line of a campaign has it.
/// - `index`: the experiment's index, `0..<experiments`; its draw depends only on the
///   campaign seed and the index.
/// - `kind`: `software` or `hardware`.
/// - `outcome`: a class of `docs/outcomes.md#outcome-classes` (`Masked`, `ImmediateINFsNaNs`,
///   `ShortTermINFsNaNs`, `SharpDegrade`, `SharpSlowDegrade`, `SlowDegrade`,
///   `LowTestAccuracy`); `evidence`: why, in words, with the noise the difference was
///   judged against; `onset`: the global step at which the outcome showed itself (absent for
///   Masked); `goldenLearned`: false when the golden was within noise of chance over the
///   compared steps, so no degrade class could be assigned (absent in results written before
///   it existed). For hardware experiments `faultModel`
///   is a label of register and class (`HW_WEIGHT_FLIP`, `HW_INPUT_STUCK`, `HW_PSUM_FLIP`),
///   `role` is `output` and `spec.hardware` holds the fault.
/// - `site` (`<layer>`, `<layer>_grad_in`, `<layer>_grad_wt`), `layer`, `phase` (`forward`,
///   `backward`), `role` (`input`, `weight`, `output`), `faultModel`, `replica`,
///   `globalStep`, `epoch`, `step` (within the epoch): where the fault struck.
/// - `spec`: the resolved native injection spec (positions and values as drawn, and the
///   experiment's seed): written to a `.json` file it replays the experiment alone with
///   `tpufi replay --golden TRACE --spec FILE.json --steps-after-injection K` (K from
///   `campaign.json`).
/// - `goldenValues`: a software fault's operand values at `spec.positions` before the fault
///   (fp32, one per position); `bits` and `bitFormat`: a bit-flip model's flipped bit per
///   position and the format it indexes (`float32`), for a hardware fault the format of the
///   struck register (its bit is `spec.hardware.bit`); `activated`: elements the fault
///   changed (a software fault: positions whose value as the operation consumes it changed,
///   after rounding to the operand format for an MXU input or weight; a hardware fault:
///   product elements changed); `peInUse`: a hardware fault's PE register held data of the
///   operation (in the flip's cycle). All absent in results written before they existed.
/// - `firstDivergence`: `{globalStep, site, replica}` of the first MXU output that differed
///   from golden, absent when none did.
/// - `stoppedEarly`: `masked-exact` or `non-finite` when the run stopped before its planned
///   end; `stepsRun`: simulated training steps run, the injected one included.
/// - `goldenTrainAccuracy`, `faultyTrainAccuracy`: mean train accuracy of the last
///   `finalWindow` steps run; `goldenTestAccuracy`, `faultyTestAccuracy`: test accuracy at the
///   last step run, absent when the run stopped early (not evaluated: not needed to classify).
/// - `curve`: the per-step trajectories the classifier compared, from the injected step to
///   the last step run: `{steps, loss, accuracy, goldenLoss, goldenAccuracy}`, parallel
///   arrays (`steps` global; train loss and batch train accuracy of the faulty run, and of
///   the golden run at the same steps, NaN where the golden trace has no record), and
///   `goldenBefore`: `{steps, loss, accuracy}` of the golden run for up to
///   ``Curve/contextSteps`` steps before the injection (context for plots; not compared).
///   Absent in results written before they existed; `tpufi report` plots them.
/// - `seconds`: wall time of the experiment (the only field that differs between runs).
public struct ExperimentResult: Codable, Sendable, Equatable {
    /// Per-step loss and accuracy of the faulty run and of golden over the same steps, and
    /// the golden's steps just before the injection.
    public struct Curve: Codable, Sendable, Equatable {
        public var steps: [Int]
        public var loss: [Float]
        public var accuracy: [Float]
        public var goldenLoss: [Float]
        public var goldenAccuracy: [Float]
        /// The golden run over up to ``contextSteps`` steps before the injected one (the
        /// faulty run is the golden run there); nil in results written before it existed.
        public var goldenBefore: Context?

        /// Steps of golden context kept before the injection.
        public static let contextSteps = 10

        /// Parallel arrays of one run's steps: global step, train loss, batch train accuracy.
        public struct Context: Codable, Sendable, Equatable {
            public var steps: [Int]
            public var loss: [Float]
            public var accuracy: [Float]

            public init(_ points: [StepPoint]) {
                steps = points.map(\.step)
                loss = points.map(\.loss)
                accuracy = points.map(\.accuracy)
            }

            /// The point count, the shortest array's.
            public var count: Int { [steps.count, loss.count, accuracy.count].min() ?? 0 }

            /// The points, in step order as stored.
            public var points: [StepPoint] {
                (0..<count).map { StepPoint(step: steps[$0], loss: loss[$0], accuracy: accuracy[$0]) }
            }
        }

        /// Aligned on the faulty run's steps; `before`: golden points before the injection
        /// (the last ``contextSteps`` of them are kept, in step order).
        public init(faulty: [StepPoint], golden: [StepPoint], before: [StepPoint] = []) {
            let byStep = Dictionary(golden.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
            steps = faulty.map(\.step)
            loss = faulty.map(\.loss)
            accuracy = faulty.map(\.accuracy)
            goldenLoss = faulty.map { byStep[$0.step]?.loss ?? .nan }
            goldenAccuracy = faulty.map { byStep[$0.step]?.accuracy ?? .nan }
            let first = faulty.first?.step ?? Int.max
            let context = before.filter { $0.step < first }.sorted { $0.step < $1.step }.suffix(Self.contextSteps)
            goldenBefore = context.isEmpty ? nil : Context(Array(context))
        }

        /// The golden points of `records` in the ``contextSteps`` steps before `step`.
        public static func context(before step: Int, records: [Int: StepRecord]) -> [StepPoint] {
            (max(0, step - contextSteps)..<max(0, step)).compactMap { s in
                records[s].map { StepPoint(step: $0.step, loss: $0.loss, accuracy: $0.accuracy) }
            }
        }

        /// The point count, the shortest array's (a hand-edited line may disagree).
        public var count: Int { [steps.count, loss.count, accuracy.count, goldenLoss.count, goldenAccuracy.count].min() ?? 0 }
    }

    public var campaign: String
    public var index: Int
    public var kind: ExperimentKind
    public var outcome: String
    public var evidence: [String]
    public var onset: Int?
    public var goldenLearned: Bool?
    public var site: String
    public var layer: String
    public var phase: Phase
    public var role: String
    public var faultModel: String
    public var replica: Int
    public var globalStep: Int
    public var epoch: Int
    public var step: Int
    public var spec: InjectionSpec
    /// A software fault's operand values at the spec's positions before the fault.
    public var goldenValues: [Float]?
    /// A bit-flip model's flipped bit per position, in ``bitFormat``'s encoding.
    public var bits: [Int]?
    /// The number format the flipped bit indexes (a hardware fault: its register's).
    public var bitFormat: OperandPrecision?
    /// Elements the fault changed (``InjectionRecord/activated``).
    public var activated: Int?
    /// A hardware fault: whether its PE register held data of the operation.
    public var peInUse: Bool?
    public var firstDivergence: ReplayResult.Divergence?
    public var stoppedEarly: String?
    public var stepsRun: Int
    public var goldenTrainAccuracy: Float?
    public var faultyTrainAccuracy: Float?
    public var goldenTestAccuracy: Float?
    public var faultyTestAccuracy: Float?
    public var curve: Curve?
    public var seconds: Double
    /// The same experiment run again with the campaign's mitigation (nil without).
    public var mitigated: Mitigated?

    /// An experiment's run with mitigation, next to the plain run.
    public struct Mitigated: Codable, Sendable, Equatable {
        public var outcome: String
        public var evidence: [String]
        public var onset: Int?
        public var stoppedEarly: String?
        public var stepsRun: Int
        public var faultyTrainAccuracy: Float?
        public var faultyTestAccuracy: Float?
        public var mitigation: MitigationOutcome
        public var seconds: Double

        /// `nil` when `r` ran without mitigation.
        public init?(replay r: ReplayResult, seconds: Double) {
            guard let m = r.mitigation else { return nil }
            outcome = r.outcome
            evidence = r.evidence
            onset = r.onset
            stoppedEarly = r.stoppedEarly
            stepsRun = r.stepsRun
            faultyTrainAccuracy = r.faulty.trainAccuracy.isFinite ? r.faulty.trainAccuracy : nil
            faultyTestAccuracy = r.faulty.testAccuracy.isFinite ? r.faulty.testAccuracy : nil
            mitigation = m
            self.seconds = seconds
        }

        /// Whether the mitigated run ended bit-identical to golden.
        public var maskedExact: Bool { stoppedEarly == "masked-exact" }
    }

    /// The result line of `experiment` from its replay; `goldenBefore`: the golden's points
    /// before the injected step (kept as the curve's context, see ``Curve/context(before:records:)``).
    public init(campaign: String, experiment: Experiment, replay r: ReplayResult, seconds: Double, goldenBefore: [StepPoint] = []) {
        let i = r.injection
        let site = SiteID(parsing: i.site)
        func finite(_ x: Float) -> Float? { x.isFinite ? x : nil }
        self.campaign = campaign
        index = experiment.index
        kind = experiment.kind
        outcome = r.outcome
        evidence = r.evidence
        onset = r.onset
        goldenLearned = r.goldenLearned
        self.site = i.site
        layer = site.layer
        phase = Phase(site)
        role = i.role
        faultModel = i.hardware.map(Self.label) ?? i.faultModel
        replica = i.replica
        globalStep = i.globalStep
        epoch = i.epoch
        step = i.step
        var resolved = experiment.spec
        // A software fault's draw is recorded verbatim; a hardware fault is its own record.
        if resolved.hardware == nil { (resolved.positions, resolved.values) = (i.positions, i.values) }
        spec = resolved
        // A hardware fault's golden values belong to the product elements it changed, which
        // its result does not list.
        goldenValues = resolved.hardware == nil ? i.goldenValues : nil
        bits = i.bits
        bitFormat = i.bitFormat
        activated = i.activated
        peInUse = i.peInUse
        firstDivergence = r.firstDivergence
        stoppedEarly = r.stoppedEarly
        stepsRun = r.stepsRun
        goldenTrainAccuracy = finite(r.golden.trainAccuracy)
        faultyTrainAccuracy = finite(r.faulty.trainAccuracy)
        goldenTestAccuracy = finite(r.golden.testAccuracy)
        faultyTestAccuracy = finite(r.faulty.testAccuracy)
        curve = Curve(faulty: r.faultyPoints, golden: r.goldenPoints, before: goldenBefore)
        self.seconds = seconds
    }

    /// Whether the fault changed nothing: no element activated (``activated`` 0), or a
    /// hardware fault in a PE the operation does not use (``peInUse`` false). Such an
    /// experiment is trivially Masked. False when the result does not say (written before
    /// these fields existed).
    public var changedNothing: Bool { activated == 0 || peInUse == false }

    /// `HW_<register>_<FLIP|STUCK>`: the summary's "fault model" of a hardware fault.
    static func label(_ fault: HardwareFault) -> String {
        let register = fault.register == .partialSum ? "PSUM" : fault.register.rawValue.uppercased()
        if case .transient = fault.kind { return "HW_\(register)_FLIP" }
        return "HW_\(register)_STUCK"
    }

    /// The line as written, without the timing: equal for equal experiments however they
    /// ran (NaN-safe, unlike `==` on the values).
    public var canonicalLine: String {
        var r = self
        r.seconds = 0
        r.mitigated?.seconds = 0
        return String(decoding: (try? CampaignJSON.encode(r)) ?? [], as: UTF8.self)
    }
}

/// `results.jsonl`: one ``ExperimentResult`` per line, appended in completion order.
/// Crash safety: each line is written whole with one `write` and synced before the next;
/// a crash can leave at most a torn last line (no newline), which ``read(directory:)``
/// reports and a resumed campaign truncates.
public enum ResultsLog {
    public static func path(_ directory: String) -> String { directory + "/results.jsonl" }

    /// The results in `directory` (completion order), the length of the whole lines, and the
    /// bytes of a torn last line. Every whole line must parse and belong to `campaign` (when
    /// given), and no index may repeat.
    public static func read(directory: String, campaign: String? = nil) throws(CampaignError) -> (results: [ExperimentResult], validLength: Int, tornBytes: Int) {
        let path = Self.path(directory)
        var st = stat()
        guard lstat(path, &st) == 0 else { return ([], 0, 0) }  // no experiment finished yet
        let data: Data
        switch InputFile.read(path, limit: InputFile.resultsLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .io(file: path, reason: e.reason)
        }
        let bytes = [UInt8](data)
        let validLength = (bytes.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }) ?? 0
        var results: [ExperimentResult] = []
        var seen: [Int: Int] = [:]
        let decoder = CampaignJSON.decoder
        for (n, line) in bytes[..<validLength].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast().enumerated() {
            let lineNumber = n + 1
            let r: ExperimentResult
            switch JSONInput.decode(ExperimentResult.self, from: Data(line), decoder: decoder) {
            case .success(let decoded): r = decoded
            case .failure(let e): throw .badFile(file: path, line: lineNumber, reason: "not a result line: \(e)")
            }
            if let campaign, r.campaign != campaign {
                throw .badFile(file: path, line: lineNumber, reason: "experiment \(r.index) belongs to campaign \(r.campaign), this directory's campaign.json is campaign \(campaign)")
            }
            if let first = seen[r.index] {
                throw .badFile(file: path, line: lineNumber, reason: "experiment \(r.index) again (first on line \(first))")
            }
            seen[r.index] = lineNumber
            results.append(r)
        }
        return (results, validLength, bytes.count - validLength)
    }

    /// Writes whole results files (merge): sorted by index.
    static func write(_ results: [ExperimentResult], directory: String) throws(CampaignError) {
        var bytes: [UInt8] = []
        for r in results.sorted(by: { $0.index < $1.index }) {
            do { bytes += try CampaignJSON.encode(r) } catch { throw .io(file: path(directory), reason: "cannot encode experiment \(r.index): \(error)") }
            bytes.append(UInt8(ascii: "\n"))
        }
        try writeFileAtomically(bytes, to: path(directory))
    }

    /// Appends result lines to `results.jsonl`, each synced. One appender per file; callers
    /// on several threads serialise through it.
    public final class Appender: @unchecked Sendable {
        private let file: AppendFile
        private let lock = NSLock()
        public var path: String { file.path }

        /// Opens (creating) the file, cut to `truncateTo` bytes when given (a torn last line).
        public init(directory: String, truncateTo length: Int? = nil) throws(CampaignError) {
            do { file = try AppendFile(path: ResultsLog.path(directory), truncateTo: length) } catch { throw CampaignError(error) }
        }

        public func append(_ result: ExperimentResult) throws(CampaignError) {
            var line: [UInt8]
            do { line = try CampaignJSON.encode(result) } catch { throw .io(file: path, reason: "cannot encode experiment \(result.index): \(error)") }
            line.append(UInt8(ascii: "\n"))
            lock.lock()
            defer { lock.unlock() }
            do {
                try file.write(line)
                try file.sync()
            } catch {
                throw CampaignError(error)
            }
        }
    }
}
