import Foundation
import Sim

/// Forward or backward injection (`stage` in the reference CSV).
public enum InjectionStage: String, Sendable, Codable {
    case forward = "fwrd_inject"
    case backward = "bkwd_inject"
}

/// One injection as the reference replay CSV states it (`docs/specs.md#reference-replay-csv`): the
/// resolved positions and values, verbatim.
public struct ReplaySpec: Sendable, Equatable, Codable {
    /// The workload; nil when the spec has no `model` row (it then applies to the golden
    /// trace's workload).
    public var model: String?
    public var stage: InjectionStage
    public var faultModel: FaultModel
    /// Replica whose tensor is corrupted.
    public var targetWorker: Int
    /// `<layer>` for forward, `<layer>_grad_in` / `<layer>_grad_wt` for backward.
    public var targetLayer: String
    public var targetEpoch: Int
    /// Step within the epoch.
    public var targetStep: Int
    /// One index tuple per corrupted element (NHWC activations, HWIO weights).
    public var positions: [[Int]]
    /// One value per position, parsed from the text.
    public var values: [Float]
    /// The value cells exactly as written, for writing the spec back verbatim.
    public var valueTexts: [String]
    public var learningRate: Double
    public var seed: Int
}

/// Errors in an injection spec; each names the file and, where there is one, the line.
public enum SpecError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case malformed(file: String, line: Int?, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): \(reason)"
        case .malformed(let file, let line?, let reason): return "\(file):\(line): \(reason)"
        case .malformed(let file, nil, let reason): return "\(file): \(reason)"
        }
    }
}

/// Reader of the reference artifact's row-oriented replay CSV: the first cell of each row is
/// the key, the rest its values.
public enum ReplaySpecCSV {
    static let keys = ["model", "stage", "fmodel", "target_worker", "target_layer", "target_epoch",
                       "target_step", "inj_pos", "inj_values", "learning_rate", "seed"]

    public static func load(path: String) throws(SpecError) -> ReplaySpec {
        let data: Data
        switch InputFile.read(path, limit: InputFile.specLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .unreadable(file: path, reason: e.reason)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .unreadable(file: path, reason: "not UTF-8 text") }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(SpecError) -> ReplaySpec {
        var rows: [String: (cells: [String], line: Int)] = [:]
        for (number, cellsOfLine) in TextRows.rows(text, separator: UInt8(ascii: ",")) {
            var cells = cellsOfLine
            while cells.last?.isEmpty == true { cells.removeLast() }
            guard let key = cells.first, !key.isEmpty else {
                throw .malformed(file: file, line: number, reason: "a row without a key (expected one of \(keys.joined(separator: ", ")))")
            }
            cells.removeFirst()
            guard keys.contains(key) else {
                throw .malformed(file: file, line: number, reason: "unknown key '\(key)' (expected one of \(keys.joined(separator: ", ")))")
            }
            if let earlier = rows[key] {
                throw .malformed(file: file, line: number, reason: "'\(key)' appears twice (first on line \(earlier.line))")
            }
            rows[key] = (cells, number)
        }
        func row(_ key: String) throws(SpecError) -> (cells: [String], line: Int) {
            guard let r = rows[key] else { throw .malformed(file: file, line: nil, reason: "missing row '\(key)'") }
            guard !r.cells.isEmpty else { throw .malformed(file: file, line: r.line, reason: "'\(key)' has no value") }
            return r
        }
        func single(_ key: String) throws(SpecError) -> (String, Int) {
            let r = try row(key)
            guard r.cells.count == 1 else { throw .malformed(file: file, line: r.line, reason: "'\(key)' takes one value, found \(r.cells.count)") }
            return (r.cells[0], r.line)
        }
        func nonNegative(_ key: String) throws(SpecError) -> Int {
            let (v, line) = try single(key)
            guard let n = Int(v), n >= 0 else { throw .malformed(file: file, line: line, reason: "'\(key)' must be a non-negative integer, got '\(v)'") }
            return n
        }

        let model = rows["model"] == nil ? nil : try single("model").0
        let (stageText, stageLine) = try single("stage")
        guard let stage = InjectionStage(rawValue: stageText) else {
            throw .malformed(file: file, line: stageLine, reason: "unknown stage '\(stageText)' (expected fwrd_inject or bkwd_inject)")
        }
        let (fmText, fmLine) = try single("fmodel")
        guard let faultModel = FaultModel(rawValue: fmText) else {
            throw .malformed(file: file, line: fmLine, reason: "unknown fault model '\(fmText)' (expected one of \(FaultModel.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let (layer, layerLine) = try single("target_layer")
        let backwardName = layer.hasSuffix("_grad_in") || layer.hasSuffix("_grad_wt")
        if backwardName != (stage == .backward) {
            throw .malformed(file: file, line: layerLine, reason: stage == .backward
                ? "backward injection needs a '<layer>_grad_in' or '<layer>_grad_wt' target, got '\(layer)'"
                : "forward injection into the backward site '\(layer)'; use stage bkwd_inject")
        }

        // Counts first, from the cells alone: a row of millions of positions for a model that
        // corrupts one element is refused before any of them is parsed.
        let pos = try row("inj_pos")
        let positionCells = try braced(pos.cells, line: pos.line, file: file)
        if let expected = faultModel.elementCount, expected != positionCells.count {
            throw .malformed(file: file, line: pos.line, reason: "\(faultModel.rawValue) corrupts \(expected) element(s), the spec lists \(positionCells.count)")
        }
        let vals = try row("inj_values")
        let valueCells = try braced(vals.cells, line: vals.line, file: file).flatMap {
            $0.utf8.contains(UInt8(ascii: ",")) ? $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } : [$0]
        }
        guard valueCells.count == positionCells.count else {
            throw .malformed(file: file, line: vals.line, reason: "\(valueCells.count) values for \(positionCells.count) positions (line \(pos.line))")
        }
        var positions: [[Int]] = []
        positions.reserveCapacity(positionCells.count)
        for cell in positionCells {
            guard let index = position(cell) else {
                throw .malformed(file: file, line: pos.line, reason: "position '\(cell)' is not non-negative integers joined by '/' (or in braces, by ',')")
            }
            if let first = positions.first, first.count != index.count {
                throw .malformed(file: file, line: pos.line, reason: "position '\(cell)' has \(index.count) indices, the first has \(first.count)")
            }
            positions.append(index)
        }
        var values: [Float] = []
        values.reserveCapacity(valueCells.count)
        for cell in valueCells {
            guard let v = Float(cell) else {
                throw .malformed(file: file, line: vals.line, reason: "value '\(cell)' is not a number")
            }
            values.append(v)
        }
        let (lrText, lrLine) = try single("learning_rate")
        guard let learningRate = Double(lrText), learningRate > 0, learningRate.isFinite else {
            throw .malformed(file: file, line: lrLine, reason: "learning_rate must be a positive number, got '\(lrText)'")
        }
        let (seedText, seedLine) = try single("seed")
        guard let seed = Int(seedText) else { throw .malformed(file: file, line: seedLine, reason: "seed must be an integer, got '\(seedText)'") }

        return ReplaySpec(model: model, stage: stage, faultModel: faultModel,
                          targetWorker: try nonNegative("target_worker"), targetLayer: layer,
                          targetEpoch: try nonNegative("target_epoch"), targetStep: try nonNegative("target_step"),
                          positions: positions, values: values, valueTexts: valueCells,
                          learningRate: learningRate, seed: seed)
    }

    /// One position cell, `5/20/32` (or, from braces, `5,20,32`), as its indices: each a
    /// non-negative integer (surrounding blanks allowed); nil if it is not that.
    static func position(_ cell: String) -> [Int]? {
        let separator = cell.utf8.contains(UInt8(ascii: ",")) ? UInt8(ascii: ",") : UInt8(ascii: "/")
        // ASCII, the common case, parsed byte by byte; anything else through the general path.
        if cell.utf8.allSatisfy({ $0 < 0x80 }) {
            var out: [Int] = []
            var value = 0, digits = 0, trailing = false
            for b in cell.utf8 {
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    guard !trailing else { return nil }
                    let (times, o1) = value.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times.addingReportingOverflow(Int(b - UInt8(ascii: "0")))
                    guard !o1, !o2 else { return nil }
                    (value, digits) = (sum, digits + 1)
                case UInt8(ascii: " "), UInt8(ascii: "\t"):
                    trailing = digits > 0
                case separator:
                    guard digits > 0 else { return nil }
                    out.append(value)
                    (value, digits, trailing) = (0, 0, false)
                default:
                    return slowPosition(cell, separator: separator)  // a sign, say: Int's own rules
                }
            }
            guard digits > 0 else { return nil }
            out.append(value)
            return out
        }
        return slowPosition(cell, separator: separator)
    }

    private static func slowPosition(_ cell: String, separator: UInt8) -> [Int]? {
        let parts = cell.split(separator: Character(Unicode.Scalar(separator)), omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let index = parts.compactMap { Int($0) }
        guard index.count == parts.count, index.allSatisfy({ $0 >= 0 }) else { return nil }
        return index
    }

    /// A row's cells with the brace syntax undone: `{5,20,32},{5,20,33}` (split at every comma
    /// by the CSV reader) becomes `5,20,32` and `5,20,33`; `{v1,v2}` becomes `v1,v2`. Cells
    /// without braces come back as they are.
    static func braced(_ cells: [String], line: Int, file: String) throws(SpecError) -> [String] {
        let text = cells.joined(separator: ",")
        guard text.contains("{") || text.contains("}") else { return cells }
        var groups: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            guard rest.first == "{", let close = rest.firstIndex(of: "}") else {
                throw .malformed(file: file, line: line, reason: "'\(text)': expected groups in braces such as {1,2,3},{1,2,4}")
            }
            let inner = rest[rest.index(after: rest.startIndex)..<close]
            guard !inner.contains("{"), !inner.isEmpty else {
                throw .malformed(file: file, line: line, reason: "'\(text)': a group in braces is empty or nested")
            }
            groups.append(String(inner))
            rest = rest[rest.index(after: close)...]
            if rest.first == "," { rest = rest.dropFirst() }
        }
        return groups
    }
}
