import Foundation
import Recorder
import Sim

/// Errors of a campaign; each names the file, line, experiment or parameter at fault.
public enum CampaignError: Error, CustomStringConvertible, Equatable {
    /// A parameter or filter that cannot be used (unknown name, contradictory filters).
    case badParameter(String)
    /// The golden trace cannot hold the requested experiments.
    case goldenTooShort(String)
    /// The output directory is not what the operation needs (non-empty, not a campaign).
    case output(directory: String, reason: String)
    /// A results or campaign file that does not belong or cannot be read.
    case badFile(file: String, line: Int?, reason: String)
    /// `--resume` or `merge` with directories of different campaigns.
    case mismatch(String)
    /// An experiment failed to run.
    case experiment(index: Int, reason: String)
    case io(file: String, reason: String)

    public var description: String {
        switch self {
        case .badParameter(let m), .goldenTooShort(let m), .mismatch(let m): return m
        case .output(let d, let r): return "\(d): \(r)"
        case .badFile(let f, let l, let r): return "\(f)\(l.map { ":\($0)" } ?? ""): \(r)"
        case .experiment(let i, let r): return "experiment \(i): \(r)"
        case .io(let f, let r): return "\(f): \(r)"
        }
    }
}

/// Forward (`<layer>`) or backward (`<layer>_grad_in`, `<layer>_grad_wt`) sites.
public enum Phase: String, Codable, Sendable, CaseIterable, Comparable {
    case forward, backward

    /// `fwd`/`forward`, `bwd`/`backward`.
    public init?(argument: String) {
        switch argument.lowercased() {
        case "fwd", "forward": self = .forward
        case "bwd", "backward": self = .backward
        default: return nil
        }
    }

    public init(_ site: SiteID) { self = site.kind == .forward ? .forward : .backward }

    public static func < (a: Phase, b: Phase) -> Bool { a == .forward && b == .backward }
}

/// Which sites of the model a campaign draws from, before `--layers` and `--phases` narrow
/// them (`tpufi campaign --sampling all|reference`).
public enum SiteSampling: String, Codable, Sendable, CaseIterable {
    /// Every MXU operation of the model's step: forward, `_grad_in` and `_grad_wt` of every
    /// layer, the classifier included.
    case all
    /// The reference study's random campaigns: the model's ``Model/referenceSamplingSites``
    /// (by default the convolutions' forward and `_grad_in` operations: no `_grad_wt`, no
    /// dense layer).
    case reference

    /// The sites `model` offers under this sampling, in execution order.
    public func sites(of model: any Model) throws(CampaignError) -> [SiteID] {
        switch self {
        case .all:
            return model.sites
        case .reference:
            let sites = model.referenceSamplingSites, known = Set(model.sites)
            if let bad = sites.first(where: { !known.contains($0) }) {
                throw .badParameter("--sampling reference: \(model.title)'s reference sites name \(bad), which is not one of its operations")
            }
            guard !sites.isEmpty else { throw .badParameter("--sampling reference: \(model.title) has no reference sites") }
            return sites
        }
    }
}

/// What an experiment injects: a software fault (the 18 fault models) or a hardware fault (a
/// processing element's register, `docs/faults.md#hardware-faults`), each with its own draw in
/// ``CampaignPlan/experiment(_:)``.
public enum ExperimentKind: String, Codable, Sendable, CaseIterable {
    /// One of the 18 software fault models, seeded.
    case software
    /// A hardware fault in one PE register of the site's MXU operation.
    case hardware
}

/// Which hardware faults a campaign draws: a bit flipped in one cycle, or stuck for the
/// whole operation.
public enum HardwareFaultClass: String, Codable, Sendable, CaseIterable {
    case flip
    case stuckAt = "stuck-at"
}

/// Where a hardware experiment's PE, and a flip's cycle, are drawn from
/// (`tpufi campaign --hardware-draw used|array`).
public enum HardwareDraw: String, Codable, Sendable, CaseIterable {
    /// Among the PEs whose register holds data of the operation under its schedule, then, for
    /// a flip, among the cycles in which it does (``Schedule/usedPEs(_:)``,
    /// ``Schedule/usedCycles(_:mxu:row:column:)``): every fault drawn can change something.
    case used
    /// Uniformly over every MXU, row and column of the chip and every cycle of the operation,
    /// as campaigns drew before `used` existed: on an operation smaller than the array most
    /// draws strike a PE that holds nothing of it and change nothing.
    case array
}

/// A global-step range, both ends included (`A-B` on the command line).
public struct StepRange: Codable, Sendable, Equatable, CustomStringConvertible {
    public var first: Int
    public var last: Int

    public init(first: Int, last: Int) {
        self.first = first
        self.last = last
    }

    /// `A-B` or `A`.
    public init?(argument: String) {
        let parts = argument.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        switch parts.count {
        case 1: guard let a = parts[0] else { return nil }; self.init(first: a, last: a)
        case 2: guard let a = parts[0], let b = parts[1] else { return nil }; self.init(first: a, last: b)
        default: return nil
        }
    }

    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }
}

/// `--shard i/n`: the experiments whose index is `i` modulo `n` (interleaved, so that every
/// shard gets the same mix of early and late experiments and an interrupted campaign's
/// shards finish at about the same time).
public struct Shard: Codable, Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) throws(CampaignError) {
        guard count > 0, index >= 0, index < count else {
            throw .badParameter("--shard \(index)/\(count): give i/n with 0 <= i < n")
        }
        self.index = index
        self.count = count
    }

    /// `i/n`.
    public init(argument: String) throws(CampaignError) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let i = parts[0], let n = parts[1] else { throw .badParameter("--shard '\(argument)': give i/n, e.g. 0/4") }
        try self.init(index: i, count: n)
    }

    public static let all = Shard(uncheckedIndex: 0, count: 1)
    private init(uncheckedIndex: Int, count: Int) { (index, self.count) = (uncheckedIndex, count) }

    public func contains(_ experiment: Int) -> Bool { experiment % count == index }

    /// This shard's experiments among `0..<experiments`, ascending.
    public func indices(of experiments: Int) -> [Int] { Array(stride(of: experiments)) }

    /// This shard's indices among `experiments`, drawn lazily (a campaign of 10^8 experiments
    /// does not list them before starting).
    public func stride(of experiments: Int) -> StrideTo<Int> { Swift.stride(from: index, to: experiments, by: count) }

    /// How many of `experiments` fall in this shard.
    public func count(of experiments: Int) -> Int { experiments > index ? (experiments - index - 1) / count + 1 : 0 }

    public var description: String { "\(index)/\(count)" }
}

/// A campaign's parameters: with the golden trace and the seed they determine every
/// experiment. Lists are kept normalised (sorted, without repeats), so the same filters
/// given in another order are the same campaign.
public struct CampaignParameters: Codable, Sendable, Equatable {
    public var experiments: Int
    public var seed: UInt64
    /// Steps trained after the injected one (nil: to the end of the golden run).
    public var stepsAfterInjection: Int?
    /// Fault models drawn from (`FaultModel.allCases` order).
    public var faultModels: [FaultModel]
    public var phases: [Phase]
    /// The sites drawn from before `layers` and `phases` narrow them; nil: ``SiteSampling/all``
    /// (stored only when another sampling is chosen, so campaigns that draw from every site
    /// keep the identity they had before the option existed).
    public var sampling: SiteSampling?
    /// Layer (`conv1`) or site (`conv1_grad_wt`) names drawn from; nil: every site.
    public var layers: [String]?
    /// Replicas drawn from; nil: every replica.
    public var replicas: [Int]?
    /// Global steps drawn from; nil: every step that leaves room for `stepsAfterInjection`.
    public var steps: StepRange?
    public var kinds: [ExperimentKind]
    /// Hardware experiments: registers and fault classes drawn from (nil in campaigns
    /// written before hardware faults: all of them).
    public var registers: [HardwareFault.Register]?
    public var hardwareFaults: [HardwareFaultClass]?
    /// Hardware experiments: where PEs and cycles are drawn from. Stored only for a hardware
    /// campaign that draws among the used ones; nil means ``HardwareDraw/array``, what
    /// campaigns written before the option did, so their identity and draws are unchanged.
    public var hardwareDraw: HardwareDraw?
    public var thresholds: ClassifierThresholds
    /// Stop an experiment at masked-exact or a non-finite loss (false only to measure what
    /// early stopping saves: outcomes are the same, `stepsRun` and time are not).
    public var earlyStop: Bool
    /// Run every experiment a second time with these detectors and response, side by side
    /// (nil: without mitigation only).
    public var mitigation: Mitigation?
    /// The experiments, listed instead of drawn (`--specs FILE`): experiment `i` is `specs[i]`,
    /// and the draw's parameters (seed, fault models, kinds, filters) play no part. nil: drawn
    /// (campaigns before the option keep their identity).
    public var specs: [InjectionSpec]?

    public init(experiments: Int, seed: UInt64 = 0, stepsAfterInjection: Int? = nil, faultModels: [FaultModel] = FaultModel.allCases,
                phases: [Phase] = Phase.allCases, sampling: SiteSampling = .all, layers: [String]? = nil, replicas: [Int]? = nil, steps: StepRange? = nil,
                kinds: [ExperimentKind] = [.software], registers: [HardwareFault.Register] = HardwareFault.Register.allCases,
                hardwareFaults: [HardwareFaultClass] = HardwareFaultClass.allCases, hardwareDraw: HardwareDraw = .used,
                thresholds: ClassifierThresholds = .init(), earlyStop: Bool = true, mitigation: Mitigation? = nil) {
        self.specs = nil
        self.hardwareDraw = kinds.contains(.hardware) && hardwareDraw == .used ? .used : nil
        self.earlyStop = earlyStop
        self.mitigation = mitigation
        // Only hardware campaigns name registers, so software campaigns keep their identity.
        self.registers = kinds.contains(.hardware) ? HardwareFault.Register.allCases.filter(registers.contains) : nil
        self.hardwareFaults = kinds.contains(.hardware) ? HardwareFaultClass.allCases.filter(hardwareFaults.contains) : nil
        self.experiments = experiments
        self.seed = seed
        self.stepsAfterInjection = stepsAfterInjection
        self.faultModels = FaultModel.allCases.filter(faultModels.contains)
        self.phases = Phase.allCases.filter(phases.contains)
        self.sampling = sampling == .all ? nil : sampling
        self.layers = layers.map { Array(Set($0)).sorted() }
        self.replicas = replicas.map { Array(Set($0)).sorted() }
        self.steps = steps
        self.kinds = ExperimentKind.allCases.filter(kinds.contains)
        self.thresholds = thresholds
    }

    /// A campaign of listed experiments (`--specs`): `specs[i]` is experiment `i`. Its fault
    /// models and kinds are those the specs use (for the summary's tables); nothing is drawn.
    public init(specs: [InjectionSpec], stepsAfterInjection: Int? = nil, thresholds: ClassifierThresholds = .init(),
                earlyStop: Bool = true, mitigation: Mitigation? = nil) {
        let hardware = specs.compactMap(\.hardware)
        self.init(experiments: specs.count, stepsAfterInjection: stepsAfterInjection,
                  faultModels: specs.compactMap(\.faultModel),
                  kinds: ExperimentKind.allCases.filter { $0 == .hardware ? !hardware.isEmpty : hardware.count < specs.count },
                  registers: hardware.map(\.register), hardwareFaults: hardware.map { if case .stuckAt = $0.kind { .stuckAt } else { .flip } },
                  hardwareDraw: .array, thresholds: thresholds, earlyStop: earlyStop, mitigation: mitigation)
        self.specs = specs
    }

    /// The site sampling in effect (``sampling``, or ``SiteSampling/all`` when none is stored).
    public var siteSampling: SiteSampling { sampling ?? .all }

    /// The hardware draw in effect (``hardwareDraw``, or ``HardwareDraw/array`` when none is
    /// stored).
    public var hardwareDrawing: HardwareDraw { hardwareDraw ?? .array }

    /// Fault model names, each checked (`--fault-models RD,ZERO`).
    public static func faultModels(_ names: [String]) throws(CampaignError) -> [FaultModel] {
        try names.map { name throws(CampaignError) in
            guard let m = FaultModel(rawValue: name) else {
                throw .badParameter("unknown fault model '\(name)' (known: \(FaultModel.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return m
        }
    }

    /// Names of one of `T`'s cases, each checked (`--kinds software,hardware`,
    /// `--registers weight,partial-sum`, `--hardware-faults flip`).
    public static func named<T: RawRepresentable & CaseIterable>(_ names: [String], _ what: String) throws(CampaignError) -> [T] where T.RawValue == String {
        try names.map { name throws(CampaignError) in
            guard let v = T(rawValue: name) else {
                throw .badParameter("unknown \(what) '\(name)' (known: \(T.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return v
        }
    }

    /// Phase names, each checked (`--phases fwd,bwd`).
    public static func phases(_ names: [String]) throws(CampaignError) -> [Phase] {
        try names.map { name throws(CampaignError) in
            guard let p = Phase(argument: name) else { throw .badParameter("unknown phase '\(name)' (use fwd, bwd, forward or backward)") }
            return p
        }
    }
}

/// What identifies the golden run a campaign forks from, wherever its directory lies.
public struct GoldenIdentity: Codable, Sendable, Equatable {
    /// Where it was read (informational: not part of the identity).
    public var directory: String
    public var config: TrainingConfig
    public var dataDigest: String
    public var stepsPerEpoch: Int
    public var completedSteps: Int
    /// The state digest after the golden run's last step.
    public var finalStateDigest: String
    /// Injection sites in execution order.
    public var sites: [String]

    // What the golden run achieved, for reports: informational like ``directory`` (not part
    // of the identity, so campaigns written before these fields existed keep their id and
    // resume), absent in those campaigns.
    /// The data set as the golden run named it (``TraceManifest/dataset``).
    public var dataset: String?
    /// Examples in the test set (the binomial error of a test accuracy).
    public var testCount: Int?
    /// Mean batch train accuracy over the golden's last ``finalTrainWindow`` steps (all of
    /// them when fewer).
    public var finalTrainAccuracy: Float?
    /// Test accuracy of the golden's last evaluation (its last epoch summary), and the step
    /// count after which it was measured.
    public var finalTestAccuracy: Float?
    public var finalTestStep: Int?

    /// Steps averaged into ``finalTrainAccuracy`` (the classifier's default final window).
    public static let finalTrainWindow = 10

    public init(_ reader: TraceReader) throws {
        let m = reader.manifest
        let records = try reader.stepRecords()
        directory = reader.directory
        config = m.config
        dataDigest = m.dataDigest
        stepsPerEpoch = m.stepsPerEpoch
        completedSteps = reader.completedSteps
        finalStateDigest = records.last?.stateDigest ?? ""
        sites = m.sites
        dataset = m.dataset
        testCount = m.testCount
        let last = records.suffix(Self.finalTrainWindow).map(\.accuracy)
        // Summed in double, in step order: deterministic.
        finalTrainAccuracy = last.isEmpty ? nil : Float(last.reduce(0.0) { $0 + Double($1) } / Double(last.count))
        if let e = try reader.epochSummaries().last {
            finalTestAccuracy = e.testAccuracy
            finalTestStep = e.epoch * m.stepsPerEpoch + e.steps
        }
    }

    /// The identity without where it was read and what the run achieved.
    var located: GoldenIdentity {
        var g = self
        g.directory = ""
        (g.dataset, g.testCount, g.finalTrainAccuracy, g.finalTestAccuracy, g.finalTestStep) = (nil, nil, nil, nil, nil)
        return g
    }
}

/// `campaign.json`: the golden identity, the parameters, and which shard this directory
/// holds (nil: all experiments, as after `merge`).
public struct CampaignManifest: Codable, Sendable, Equatable {
    public static let currentFormat = 1
    public var format: Int = CampaignManifest.currentFormat
    public var tool: String = "tpufi \(TraceManifest.toolVersion)"
    /// A digest of the golden identity (without its directory) and the parameters: every
    /// results line carries it, so a line from another campaign is recognised.
    public var id: String
    public var golden: GoldenIdentity
    public var parameters: CampaignParameters
    public var shard: Shard?
    /// The schedule rules its hardware faults were drawn under: 2 since an operation of
    /// several products (the Transformer's attention) schedules them in turn
    /// (``OperationSchedule``); absent (1) in manifests written before, when they were one
    /// stacked product. Hardware draws and cycles on such operations differ between the two.
    public var scheduleRules: Int? = CampaignManifest.currentScheduleRules
    public static let currentScheduleRules = 2

    /// Why this campaign's results and `other`'s would mix hardware faults drawn under two
    /// schedule rules, or nil: only when it draws hardware faults on operations of several
    /// products (`drawsOnProductsInTurn`) and the rules differ.
    func scheduleRulesConflict(with other: CampaignManifest, drawsOnProductsInTurn: Bool) -> String? {
        let (mine, theirs) = (scheduleRules ?? 1, other.scheduleRules ?? 1)
        guard drawsOnProductsInTurn, parameters.kinds.contains(.hardware), mine != theirs else { return nil }
        return "hardware faults drawn under schedule rules \(mine) vs \(theirs) (1: attention's per-head products stacked into one GEMM; 2: scheduled in turn), whose PEs and cycles are drawn and mapped differently"
    }

    public init(golden: GoldenIdentity, parameters: CampaignParameters, shard: Shard?) {
        self.golden = golden
        self.parameters = parameters
        self.shard = shard
        id = Self.id(golden: golden, parameters: parameters)
    }

    static func id(golden: GoldenIdentity, parameters: CampaignParameters) -> String {
        struct Key: Encodable { var golden: GoldenIdentity; var parameters: CampaignParameters }
        let bytes = (try? CampaignJSON.encode(Key(golden: golden.located, parameters: parameters))) ?? []
        // FNV-1a, 64 bits: an identity check, not a security measure.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return String(h, radix: 16).leftPadded(to: 16)
    }

    public static func path(_ directory: String) -> String { directory + "/campaign.json" }

    /// Reads `campaign.json` of a campaign directory.
    public static func load(directory: String) throws(CampaignError) -> CampaignManifest {
        let path = Self.path(directory)
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw .badFile(file: path, line: nil, reason: FileManager.default.fileExists(atPath: directory) ? "missing: not a campaign directory" : "no such campaign directory")
        }
        // Only a regular file of bounded size; a wrong or out-of-range field is named.
        let data: Data
        switch InputFile.read(path, limit: InputFile.logLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .badFile(file: path, line: nil, reason: e.reason)
        }
        let m: CampaignManifest
        switch JSONInput.decode(CampaignManifest.self, from: data, decoder: CampaignJSON.decoder) {
        case .success(let decoded): m = decoded
        case .failure(let e): throw .badFile(file: path, line: nil, reason: "not a campaign manifest: \(e)")
        }
        guard m.format == currentFormat else { throw .badFile(file: path, line: nil, reason: "campaign format \(m.format); this tpufi reads \(currentFormat)") }
        return m
    }

    /// What differs between two campaigns' manifests, field by field (empty: the same campaign).
    public func differences(from other: CampaignManifest) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { out.append("\(name): \(a) vs \(b)") } }
        let (p, q) = (parameters, other.parameters)
        check("experiments", p.experiments, q.experiments)
        check("seed", p.seed, q.seed)
        check("steps-after-injection", p.stepsAfterInjection.map(String.init) ?? "to the end", q.stepsAfterInjection.map(String.init) ?? "to the end")
        check("fault-models", p.faultModels.map(\.rawValue), q.faultModels.map(\.rawValue))
        check("phases", p.phases.map(\.rawValue), q.phases.map(\.rawValue))
        check("sampling", p.siteSampling.rawValue, q.siteSampling.rawValue)
        check("layers", p.layers ?? ["all"], q.layers ?? ["all"])
        check("replicas", p.replicas.map { $0.map(String.init) } ?? ["all"], q.replicas.map { $0.map(String.init) } ?? ["all"])
        check("steps", p.steps?.description ?? "all", q.steps?.description ?? "all")
        check("kinds", p.kinds.map(\.rawValue), q.kinds.map(\.rawValue))
        check("registers", p.registers.map { $0.map(\.rawValue) } ?? ["none"], q.registers.map { $0.map(\.rawValue) } ?? ["none"])
        check("hardware-faults", p.hardwareFaults.map { $0.map(\.rawValue) } ?? ["none"], q.hardwareFaults.map { $0.map(\.rawValue) } ?? ["none"])
        check("hardware-draw", p.hardwareDrawing.rawValue, q.hardwareDrawing.rawValue)
        check("thresholds", "\(p.thresholds)", "\(q.thresholds)")
        check("early-stop", p.earlyStop, q.earlyStop)
        check("mitigation", p.mitigation?.description ?? "none", q.mitigation?.description ?? "none")
        if p.specs != q.specs {
            let first = zip(p.specs ?? [], q.specs ?? []).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            out.append("specs: \(p.specs.map { "\($0.count) listed" } ?? "drawn") vs \(q.specs.map { "\($0.count) listed" } ?? "drawn")\(first.map { ", first different: experiment \($0)" } ?? "")")
        }
        if golden.located != other.golden.located {
            out.append("golden trace: \(golden.directory) (state digest \(golden.finalStateDigest)) vs \(other.golden.directory) (state digest \(other.golden.finalStateDigest))")
        }
        if out.isEmpty && id != other.id { out.append("campaign id: \(id) vs \(other.id)") }
        return out
    }
}

/// Campaign files follow the project's JSON conventions (``JSONCoding``).
enum CampaignJSON {
    static func encoder(pretty: Bool = false) -> JSONEncoder { JSONCoding.encoder(pretty: pretty) }

    static var decoder: JSONDecoder { JSONCoding.decoder }

    static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws -> [UInt8] {
        [UInt8](try encoder(pretty: pretty).encode(value))
    }
}

/// The recorder's ``writeAtomically(_:to:)``, its errors as the campaign reports them.
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws(CampaignError) {
    do { try writeAtomically(bytes, to: path) } catch { throw CampaignError(error) }
}

extension CampaignError {
    /// A file error of the recorder's I/O, as the campaign reports it.
    init(_ error: TraceError) {
        switch error {
        case .io(let file, let reason): self = .io(file: file, reason: reason)
        default: self = .io(file: "", reason: "\(error)")
        }
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
