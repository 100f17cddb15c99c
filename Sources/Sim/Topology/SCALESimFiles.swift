import Foundation

/// Errors in topology and configuration files; each names the file and line.
public enum TopologyError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case malformed(file: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): \(reason)"
        case .malformed(let file, let line, let reason): return "\(file):\(line): \(reason)"
        }
    }
}

/// SCALE-Sim topology CSV files: convolution topologies (`Layer name, IFMAP Height, IFMAP
/// Width, Filter Height, Filter Width, Channels, Num Filter, Strides,`) and GEMM topologies
/// (`Layer Name, M, N, K,`), told apart by their header. Trailing commas are allowed, as
/// SCALE-Sim writes them.
public enum SCALESimTopology {
    /// The largest GEMM dimension (M, N or K, given or implied by a convolution) a topology
    /// may ask for, and the most multiply-accumulates of one layer: far beyond any real
    /// layer, and small enough that a layer is costed in moments instead of minutes of tile
    /// passes.
    public static let maximumDimension = 1 << 24
    public static let maximumMACs = 1 << 40

    /// The layers of the topology file at `path`, HBM traffic counted with
    /// `bytesPerOperand`-byte operands (default: bfloat16's 2) and fp32 results.
    public static func load(path: String, bytesPerOperand: Int = BFloat16Format().bytesPerElement) throws(TopologyError) -> [LayerWork] {
        try parse(try readText(path), file: path, bytesPerOperand: bytesPerOperand)
    }

    /// The layers of topology `text` (`file` names it in errors), HBM traffic counted with
    /// `bytesPerOperand`-byte operands (default: bfloat16's 2) and fp32 results.
    public static func parse(_ text: String, file: String,
                             bytesPerOperand: Int = BFloat16Format().bytesPerElement) throws(TopologyError) -> [LayerWork] {
        var lines = numberedLines(text)
        guard let header = lines.first else {
            throw .malformed(file: file, line: 1, reason: "empty topology file")
        }
        lines.removeFirst()
        let columns = header.cells.map { $0.lowercased() }
        let isGEMM = columns.count >= 4 && columns[1] == "m" && columns[2] == "n" && columns[3] == "k"
        let isConv = columns.count >= 8 && columns[1].contains("ifmap height")
        guard isGEMM || isConv else {
            throw .malformed(file: file, line: header.number,
                             reason: "unrecognised header; expected a SCALE-Sim conv topology ('Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides') or GEMM topology ('Layer Name, M, N, K')")
        }
        var layers: [LayerWork] = []
        for line in lines {
            let want = isGEMM ? 4 : 8
            guard line.cells.count >= want else {
                throw .malformed(file: file, line: line.number, reason: "expected \(want) fields, found \(line.cells.count)")
            }
            let name = line.cells[0]
            guard !name.isEmpty else { throw .malformed(file: file, line: line.number, reason: "empty layer name") }
            var values: [Int] = []
            for (i, cell) in line.cells[1..<want].enumerated() {
                guard let v = Int(cell) else {
                    throw .malformed(file: file, line: line.number, reason: "\(columns.indices.contains(i + 1) ? header.cells[i + 1] : "field \(i + 2)") is '\(cell)', not an integer")
                }
                guard v > 0 else {
                    throw .malformed(file: file, line: line.number, reason: "\(header.cells[i + 1]) must be positive, got \(v)")
                }
                // Sizes beyond any real layer would only overflow the arithmetic on them, or
                // take minutes to cost.
                let limit = isGEMM ? Self.maximumDimension : 1 << 20
                guard v <= limit else {
                    throw .malformed(file: file, line: line.number, reason: "\(header.cells[i + 1]) is \(v); at most \(limit)")
                }
                values.append(v)
            }
            if isGEMM {
                let gemm = GEMMShape(m: values[0], k: values[2], n: values[1])
                try checkBounds(gemm, fields: ("M", "K", "N"), name: name, file: file, line: line.number)
                do { try gemm.validate() } catch {
                    throw .malformed(file: file, line: line.number, reason: "layer \(name): \(error)")
                }
                layers.append(LayerWork(name: name, gemm: gemm, bytesPerOperand: bytesPerOperand))
            } else {
                let conv = ConvShape.scaleSim(inH: values[0], inW: values[1], filterH: values[2], filterW: values[3],
                                              channels: values[4], filters: values[5], stride: values[6])
                do {
                    try conv.validate()
                } catch {
                    throw .malformed(file: file, line: line.number, reason: "layer \(name): \(error)")
                }
                // The lowered GEMM's dimensions, before anything multiplies them.
                try checkBounds(conv, name: name, header: header.cells, file: file, line: line.number)
                try checkBounds(conv.gemm, fields: ("M (output pixels)", "K (filter height x width x channels)", "N (Num Filter)"),
                                name: name, file: file, line: line.number)
                do {
                    try conv.gemm.validate()
                } catch {
                    throw .malformed(file: file, line: line.number, reason: "layer \(name): \(error)")
                }
                layers.append(LayerWork(name: name, gemm: conv.gemm, hbmBytes: conv.hbmBytes(bytesPerOperand: bytesPerOperand)))
            }
        }
        guard !layers.isEmpty else { throw .malformed(file: file, line: header.number, reason: "no layers after the header") }
        return layers
    }
}

extension SCALESimTopology {
    /// Refuses a layer whose GEMM has a dimension above ``maximumDimension`` or more than
    /// ``maximumMACs`` multiply-accumulates, naming the field.
    static func checkBounds(_ gemm: GEMMShape, fields: (m: String, k: String, n: String), name: String, file: String, line: Int) throws(TopologyError) {
        for (field, value) in [(fields.m, gemm.m), (fields.k, gemm.k), (fields.n, gemm.n)] where value > maximumDimension {
            throw .malformed(file: file, line: line, reason: "layer \(name): \(field) is \(value); at most \(maximumDimension) (2^24)")
        }
        let (mk, o1) = gemm.m.multipliedReportingOverflow(by: gemm.k)
        let (mkn, o2) = mk.multipliedReportingOverflow(by: gemm.n)
        guard !o1, !o2, mkn <= maximumMACs else {
            throw .malformed(file: file, line: line, reason: "layer \(name): M x K x N = \(gemm.m) x \(gemm.k) x \(gemm.n) is more than \(maximumMACs) (2^40) multiply-accumulates")
        }
    }

    /// The same for a convolution, before its GEMM is formed: the output pixels (M) and the
    /// reduction (K) its fields imply, naming those fields.
    static func checkBounds(_ conv: ConvShape, name: String, header: [String], file: String, line: Int) throws(TopologyError) {
        let (pixels, o1) = conv.outH.multipliedReportingOverflow(by: conv.outW)
        guard !o1, pixels <= maximumDimension else {
            throw .malformed(file: file, line: line, reason: "layer \(name): \(header[1]), \(header[2]) and \(header[7]) give \(conv.outH) x \(conv.outW) output pixels (the GEMM's M); at most \(maximumDimension) (2^24)")
        }
        let (window, o2) = conv.filterH.multipliedReportingOverflow(by: conv.filterW)
        let (reduction, o3) = window.multipliedReportingOverflow(by: conv.inChannels)
        guard !o2, !o3, reduction <= maximumDimension else {
            throw .malformed(file: file, line: line, reason: "layer \(name): \(header[3]) x \(header[4]) x \(header[5]) is \(o2 || o3 ? "more than \(Int.max)" : "\(reduction)") (the GEMM's K); at most \(maximumDimension) (2^24)")
        }
    }
}

/// The parts of a SCALE-Sim `.cfg` file that set the array: `ArrayHeight`, `ArrayWidth` and
/// `Dataflow` in `[architecture_presets]`. Other keys are accepted and ignored (memory sizes
/// and bandwidths do not change SCALE-Sim's compute cycles).
public struct SCALESimConfig: Sendable, Equatable {
    public var runName: String?
    public var rows: Int
    public var columns: Int
    public var dataflow: Dataflow

    public static func load(path: String) throws(TopologyError) -> SCALESimConfig {
        try parse(try readText(path), file: path)
    }

    public static func parse(_ text: String, file: String) throws(TopologyError) -> SCALESimConfig {
        var section = ""
        var found: [String: (value: String, line: Int)] = [:]
        for line in numberedLines(text, separator: nil) {
            let raw = line.text
            if raw.hasPrefix("[") {
                guard raw.hasSuffix("]") else { throw .malformed(file: file, line: line.number, reason: "unterminated section header '\(raw)'") }
                section = String(raw.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces).lowercased()
                continue
            }
            guard let sep = raw.firstIndex(where: { $0 == ":" || $0 == "=" }) else {
                throw .malformed(file: file, line: line.number, reason: "expected 'key : value', found '\(raw)'")
            }
            let key = raw[..<sep].trimmingCharacters(in: .whitespaces).lowercased()
            let value = raw[raw.index(after: sep)...].trimmingCharacters(in: .whitespaces)
            found[section + "." + key] = (value, line.number)
        }
        func int(_ key: String) throws(TopologyError) -> Int {
            guard let entry = found["architecture_presets." + key.lowercased()] else {
                throw .malformed(file: file, line: 1, reason: "missing \(key) in [architecture_presets]")
            }
            guard let v = Int(entry.value), v > 0 else {
                throw .malformed(file: file, line: entry.line, reason: "\(key) must be a positive integer, got '\(entry.value)'")
            }
            return v
        }
        let rows = try int("ArrayHeight")
        let columns = try int("ArrayWidth")
        guard let df = found["architecture_presets.dataflow"] else {
            throw .malformed(file: file, line: 1, reason: "missing Dataflow in [architecture_presets]")
        }
        guard let dataflow = Dataflow(name: df.value) else {
            throw .malformed(file: file, line: df.line, reason: "unknown dataflow '\(df.value)' (expected ws, is or os)")
        }
        return SCALESimConfig(runName: found["general.run_name"]?.value, rows: rows, columns: columns, dataflow: dataflow)
    }

    /// `base` with this file's array geometry and dataflow (one MXU, as SCALE-Sim models).
    public func applied(to base: ChipConfig) -> ChipConfig {
        var chip = base
        chip.name = runName ?? "scalesim-\(rows)x\(columns)-\(dataflow.rawValue)"
        chip.rows = rows
        chip.columns = columns
        chip.mxuCount = 1
        chip.dataflow = dataflow
        return chip
    }
}

private func readText(_ path: String) throws(TopologyError) -> String {
    let data: Data
    switch InputFile.read(path, limit: InputFile.specLimit) {
    case .success(let d): data = d
    case .failure(let e): throw .unreadable(file: path, reason: e.reason)
    }
    guard let text = String(data: data, encoding: .utf8) else { throw .unreadable(file: path, reason: "not UTF-8 text") }
    return text
}

/// Non-blank, non-comment lines with their 1-based numbers, split on `separator` into
/// trimmed cells (trailing empty cells dropped).
private func numberedLines(_ text: String, separator: Character? = ",") -> [(number: Int, text: String, cells: [String])] {
    var out: [(Int, String, [String])] = []
    for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
        let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
        var cells = separator.map { line.split(separator: $0, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } } ?? [line]
        while cells.last?.isEmpty == true { cells.removeLast() }
        out.append((i + 1, line, cells))
    }
    return out
}
