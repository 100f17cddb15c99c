import Foundation
import Recorder
import Sim

/// One injection experiment, the native spec (JSON): the reference CSV's content and what
/// the CSV cannot say, a fault drawn from a seed instead of listed verbatim.
///
/// ```json
/// {"workload": "resnet18", "site": "basicblock_2_basic_0_conv1_grad_in", "faultModel": "N16_RD",
///  "replica": 3, "globalStep": 120, "seed": 42}
/// ```
/// The step is `globalStep` or `epoch` + `step` (within the epoch). A software fault names a
/// `faultModel` and either `positions` + `values` (verbatim, as a replay CSV lists them) or
/// `seed` (drawn when the golden operand is seen; the faulty trace's manifest records what was
/// drawn). A hardware fault names, instead of a fault model, the PE register it strikes in the
/// site's MXU operation (see ``HardwareFault``):
///
/// ```json
/// {"workload": "resnet18", "site": "basicblock_1_basic_0_conv1", "replica": 0, "globalStep": 120,
///  "hardware": {"mxu": 0, "row": 3, "column": 5, "register": "weight", "bit": 14, "stuckAt": 1}}
/// ```
public struct InjectionSpec: Codable, Sendable, Equatable {
    /// The workload it was written for; nil: whichever the golden trace (or `tpufi sites
    /// --workload`) is.
    public var workload: String?
    /// The reference's site name: `<layer>`, `<layer>_grad_in` or `<layer>_grad_wt`; for a
    /// hardware stuck-at fault also `all` (every MXU operation of the step).
    public var site: String
    /// The software fault model; nil for a hardware fault.
    public var faultModel: FaultModel?
    public var hardware: HardwareFault?
    public var replica: Int
    public var globalStep: Int?
    public var epoch: Int?
    public var step: Int?
    public var positions: [[Int]]?
    public var values: [Float]?
    public var seed: UInt64?

    public init(workload: String?, site: String, faultModel: FaultModel?, replica: Int, globalStep: Int? = nil, epoch: Int? = nil,
                step: Int? = nil, positions: [[Int]]? = nil, values: [Float]? = nil, seed: UInt64? = nil,
                hardware: HardwareFault? = nil) {
        self.hardware = hardware
        self.workload = workload
        self.site = site
        self.faultModel = faultModel
        self.replica = replica
        self.globalStep = globalStep
        self.epoch = epoch
        self.step = step
        self.positions = positions
        self.values = values
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case workload, site, faultModel, hardware, replica, globalStep, epoch, step, positions, values, seed
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        workload = try c.decodeIfPresent(String.self, forKey: .workload)
        site = try c.decode(String.self, forKey: .site)
        faultModel = try c.decodeIfPresent(FaultModel.self, forKey: .faultModel)
        hardware = try c.decodeIfPresent(HardwareFault.self, forKey: .hardware)
        replica = try c.decode(Int.self, forKey: .replica)
        globalStep = try c.decodeIfPresent(Int.self, forKey: .globalStep)
        epoch = try c.decodeIfPresent(Int.self, forKey: .epoch)
        step = try c.decodeIfPresent(Int.self, forKey: .step)
        positions = try c.decodeIfPresent([[Int]].self, forKey: .positions)
        values = try c.decodeIfPresent([Float].self, forKey: .values)
        // A 64-bit seed is written as a string: JSON tools that read numbers as doubles would
        // round it (and replay another run). Numbers are still read.
        if let text = try? c.decodeIfPresent(String.self, forKey: .seed) {
            guard let value = UInt64(text) else {
                throw DecodingError.dataCorruptedError(forKey: .seed, in: c, debugDescription: "seed '\(text)' is not an integer in 0...\(UInt64.max)")
            }
            seed = value
        } else {
            seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(workload, forKey: .workload)
        try c.encode(site, forKey: .site)
        try c.encodeIfPresent(faultModel, forKey: .faultModel)
        try c.encodeIfPresent(hardware, forKey: .hardware)
        try c.encode(replica, forKey: .replica)
        try c.encodeIfPresent(globalStep, forKey: .globalStep)
        try c.encodeIfPresent(epoch, forKey: .epoch)
        try c.encodeIfPresent(step, forKey: .step)
        try c.encodeIfPresent(positions, forKey: .positions)
        try c.encodeIfPresent(values, forKey: .values)
        try c.encodeIfPresent(seed.map(String.init), forKey: .seed)
    }

    /// The CSV's injection, verbatim.
    public init(_ csv: ReplaySpec) {
        self.init(workload: csv.model, site: csv.targetLayer, faultModel: csv.faultModel, replica: csv.targetWorker,
                  epoch: csv.targetEpoch, step: csv.targetStep, positions: csv.positions, values: csv.values,
                  seed: UInt64(bitPattern: Int64(csv.seed)))
    }

    /// Reads a `.json` native spec or, otherwise, a reference replay CSV.
    public static func load(path: String) throws -> InjectionSpec {
        guard path.lowercased().hasSuffix(".json") else { return InjectionSpec(try ReplaySpecCSV.load(path: path)) }
        let data: Data
        switch InputFile.read(path, limit: InputFile.specLimit) {
        case .success(let d): data = d
        case .failure(let e): throw SpecError.unreadable(file: path, reason: e.reason)
        }
        return try decode(data, file: path, line: nil)
    }

    /// Reads a list of native specs, one JSON object per line (JSON Lines), as `tpufi
    /// campaign --specs` runs them; an error names the line. Blank lines are refused, so that
    /// experiment `i` is line `i + 1`.
    public static func loadList(path: String) throws(SpecError) -> [InjectionSpec] {
        let data: Data
        switch InputFile.read(path, limit: InputFile.logLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .unreadable(file: path, reason: e.reason)
        }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }  // the final newline
        guard !lines.isEmpty else { throw .malformed(file: path, line: nil, reason: "no spec: give one JSON spec per line") }
        var specs: [InjectionSpec] = []
        specs.reserveCapacity(lines.count)
        for (i, line) in lines.enumerated() {
            guard line.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\r") }) else {
                throw .malformed(file: path, line: i + 1, reason: "blank line: give one JSON spec per line (experiment i is line i + 1)")
            }
            specs.append(try decode(Data(line), file: path, line: i + 1))
        }
        return specs
    }

    /// One spec from its JSON text: unknown fields refused, then decoded, then validated;
    /// errors name `file` (and `line`).
    static func decode(_ data: Data, file: String, line: Int?) throws(SpecError) -> InjectionSpec {
        try checkFields(data, file: file, line: line)
        let spec: InjectionSpec
        // Non-finite values as strings: a bit flip may write inf or NaN (campaign results
        // write them so). A field of the wrong type or out of range is named.
        switch JSONInput.decode(InjectionSpec.self, from: data, decoder: JSONCoding.decoder) {
        case .success(let s): spec = s
        case .failure(let e): throw SpecError.malformed(file: file, line: line, reason: e.description)
        }
        try spec.validate(file: file, line: line)
        return spec
    }

    /// The fields a native spec may have (and a hardware fault's): any other is an error, so a
    /// misspelt or unsupported field cannot be silently ignored.
    static let fields = CodingKeys.allCases.map(\.rawValue)
    static let hardwareFields = ["mxu", "row", "column", "register", "bit", "cycle", "stuckAt"]

    /// Refuses unknown fields (a document that is not a JSON object is left to the decoder,
    /// which says why). Only the keys are decoded: no tree of the whole document is built,
    /// so a spec of millions of positions costs what decoding it once does.
    static func checkFields(_ data: Data, file: String, line: Int? = nil) throws(SpecError) {
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        struct Names: Decodable {
            var top: [String]
            var hardware: [String]?
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: AnyKey.self)
                top = c.allKeys.map(\.stringValue)
                let key = AnyKey(stringValue: "hardware")
                if c.contains(key) {
                    do { hardware = try c.nestedContainer(keyedBy: AnyKey.self, forKey: key).allKeys.map(\.stringValue) } catch {
                        hardware = nil  // not an object: decoding the spec names the field
                    }
                } else {
                    hardware = nil
                }
            }
        }
        let names: Names
        do { names = try JSONDecoder().decode(Names.self, from: data) } catch {
            return  // not a JSON object: decoding the spec says why, naming the field
        }
        func check(_ keys: [String], allowed: [String], prefix: String) throws(SpecError) {
            if let unknown = keys.sorted().first(where: { !allowed.contains($0) }) {
                throw .malformed(file: file, line: line, reason: "unknown field '\(prefix)\(unknown)' (expected \(allowed.map { prefix + $0 }.joined(separator: ", ")))")
            }
        }
        try check(names.top, allowed: fields, prefix: "")
        if let hardware = names.hardware {
            try check(hardware, allowed: hardwareFields, prefix: "hardware.")
        }
    }

    /// Checks that the spec says when and what, once each.
    public func validate(file: String, line: Int? = nil) throws(SpecError) {
        switch (globalStep, epoch, step) {
        case (.some(let g), nil, nil) where g >= 0: break
        case (nil, .some(let e), .some(let s)) where e >= 0 && s >= 0: break
        default: throw .malformed(file: file, line: line, reason: "give either globalStep or both epoch and step (non-negative)")
        }
        guard replica >= 0 else { throw .malformed(file: file, line: line, reason: "replica must be non-negative") }
        switch (faultModel, hardware) {
        case (.some, nil): break
        case (nil, .some):
            guard positions == nil, values == nil else {
                throw .malformed(file: file, line: line, reason: "a hardware fault says where it strikes; it takes no positions or values")
            }
            return
        case (.some, .some): throw .malformed(file: file, line: line, reason: "give either faultModel (a software fault) or hardware, not both")
        case (nil, nil): throw .malformed(file: file, line: line, reason: "missing field 'faultModel' (or 'hardware' for a hardware fault)")
        }
        switch (positions, values, seed) {
        case (.some(let p), .some(let v), _):
            guard p.count == v.count, !p.isEmpty else { throw .malformed(file: file, line: line, reason: "\(v.count) values for \(p.count) positions") }
            // At most the model's count (fewer where the operand is smaller than its group);
            // a GLB run's length is bounded by its operand, checked against the workload.
            if let model = faultModel, let most = model.elementCount, p.count > most {
                throw .malformed(file: file, line: line, reason: "\(model.rawValue) corrupts at most \(most) element(s), the spec lists \(p.count) positions")
            }
        case (nil, nil, .some): break
        default: throw .malformed(file: file, line: line, reason: "give either positions and values, or a seed to draw them from")
        }
    }
}
