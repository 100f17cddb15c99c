import Foundation

/// Errors reading a safetensors file; each names the file and, where there is one, the tensor.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case malformed(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason), .malformed(let file, let reason): return "\(file): \(reason)"
        }
    }
}

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON
/// header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the
/// raw little-endian data. Python reads it with `safetensors.numpy.load_file` or a few lines
/// of numpy. Only `F32` and `I32` tensors are written; `F32`, `F64`, `I32` and `I64` are read
/// (converted to fp32 / Int32).
public enum Safetensors {
    /// A named tensor as stored: fp32 values or 32-bit integers.
    public enum Entry: Sendable, Equatable {
        case float(shape: [Int], values: [Float])
        case int(shape: [Int], values: [Int32])

        public var shape: [Int] {
            switch self {
            case .float(let s, _), .int(let s, _): return s
            }
        }
    }

    /// Serialises `tensors` (names sorted, so the bytes depend only on the contents).
    public static func encode(_ tensors: [String: Entry], metadata: [String: String] = [:]) -> [UInt8] {
        var header: [String] = []
        var data: [UInt8] = []
        for name in tensors.keys.sorted() {
            let entry = tensors[name]!
            let begin = data.count
            let dtype: String
            switch entry {
            case .float(_, let values):
                dtype = "F32"
                for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            case .int(_, let values):
                dtype = "I32"
                for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
            }
            let shape = entry.shape.map(String.init).joined(separator: ",")
            header.append("\(jsonString(name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(data.count)]}")
        }
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            header.insert("\"__metadata__\":{\(fields.joined(separator: ","))}", at: 0)
        }
        var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }   // pad so the data starts 8-byte aligned
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + data
    }

    public static func write(_ tensors: [String: Entry], metadata: [String: String] = [:], to path: String) throws {
        try Data(encode(tensors, metadata: metadata)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public static func read(path: String) throws(SafetensorsError) -> (tensors: [String: Entry], metadata: [String: String]) {
        switch InputFile.read(path, limit: InputFile.dataLimit) {
        case .success(let data): return try decode([UInt8](data), file: path)
        case .failure(let e): throw .unreadable(file: path, reason: e.reason)
        }
    }

    public static func decode(_ bytes: [UInt8], file: String) throws(SafetensorsError) -> (tensors: [String: Entry], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw .malformed(file: file, reason: "\(bytes.count) bytes: too short for a safetensors header") }
        let headerLength = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw .malformed(file: file, reason: "header claims \(headerLength) bytes, the file has \(bytes.count - 8) after the length")
        }
        let dataStart = 8 + Int(headerLength)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])),
              let header = object as? [String: Any] else {
            throw .malformed(file: file, reason: "header is not a JSON object")
        }
        let dataLength = bytes.count - dataStart
        var tensors: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw .malformed(file: file, reason: "tensor '\(name)': entry needs dtype, shape and data_offsets")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard shape.allSatisfy({ $0 >= 0 }), begin >= 0, begin <= end, end <= dataLength else {
                throw .malformed(file: file, reason: "tensor '\(name)': offsets \(begin)..<\(end) outside the \(dataLength) data bytes")
            }
            let count = shape.reduce(1, *)
            let width: Int
            switch dtype {
            case "F32", "I32": width = 4
            case "F64", "I64": width = 8
            default: throw .malformed(file: file, reason: "tensor '\(name)': unsupported dtype \(dtype)")
            }
            guard end - begin == count * width else {
                throw .malformed(file: file, reason: "tensor '\(name)': shape \(shape) needs \(count * width) bytes, offsets span \(end - begin)")
            }
            func word(_ i: Int) -> UInt64 {
                var v: UInt64 = 0
                for b in 0..<width { v |= UInt64(bytes[dataStart + begin + i * width + b]) << (8 * UInt64(b)) }
                return v
            }
            switch dtype {
            case "F32": tensors[name] = .float(shape: shape, values: (0..<count).map { Float(bitPattern: UInt32(word($0))) })
            case "F64": tensors[name] = .float(shape: shape, values: (0..<count).map { Float(Double(bitPattern: word($0))) })
            case "I32": tensors[name] = .int(shape: shape, values: (0..<count).map { Int32(bitPattern: UInt32(word($0))) })
            default: tensors[name] = .int(shape: shape, values: (0..<count).map { Int32(truncatingIfNeeded: Int64(bitPattern: word($0))) })
            }
        }
        return (tensors, metadata)
    }

    private static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
