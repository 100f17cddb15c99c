import Foundation

/// A model's configuration as recorded in a trace manifest: the model's own `Codable`
/// configuration value (scale name, widths, input shape, options), kept as a JSON value so
/// that ``TrainingConfig`` can hold any workload's without knowing its type. The workload's
/// entry in ``Workloads`` turns it back into the model.
public struct ModelConfiguration: Sendable, Equatable, Codable, CustomStringConvertible {
    public var value: JSONValue

    public init(_ value: JSONValue) { self.value = value }

    /// The configuration of a model type, encoded.
    public init<T: Encodable>(encoding configuration: T) throws(ModelError) {
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(configuration))
        } catch {
            throw .invalidConfiguration("cannot encode \(T.self): \(error)")
        }
    }

    /// The configuration as the model's own type; the error names the field that does not fit.
    public func decode<T: Decodable>(_ type: T.Type, workload: String) throws(ModelError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: try JSONEncoder().encode(value))
        } catch let DecodingError.keyNotFound(key, _) {
            throw .invalidConfiguration("the \(workload) configuration has no field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw .invalidConfiguration("the \(workload) configuration's field '\(path)' is not valid: \(context.debugDescription)")
        } catch {
            throw .invalidConfiguration("the \(workload) configuration does not decode: \(error)")
        }
    }

    public init(from decoder: Decoder) throws { value = try JSONValue(from: decoder) }
    public func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }

    /// The same configuration with its existing field `field` set to `value`: how a
    /// command-line option changes one of a model's options. A workload whose configuration
    /// has no such field does not have the option, and the error says so.
    public func setting(_ field: String, to value: JSONValue, workload: String) throws(ModelError) -> ModelConfiguration {
        guard case .object(var fields) = self.value, fields[field] != nil else {
            throw .invalidConfiguration("the \(workload) \(name ?? "custom") configuration has no option '\(field)'")
        }
        fields[field] = value
        return ModelConfiguration(.object(fields))
    }

    /// The `name` field, the scale preset's name by convention.
    public var name: String? {
        if case .object(let fields) = value, case .string(let s)? = fields["name"] { return s }
        return nil
    }

    public var description: String { value.description }
}

/// A JSON value, exactly as parsed: integers stay integers (so a configuration re-encodes to
/// the same bytes), objects are unordered (the project encodes with sorted keys).
public indirect enum JSONValue: Sendable, Equatable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public var description: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "<unencodable>" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Errors building a model: an unknown workload or scale, a configuration that does not fit.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unknownWorkload(String, known: [String])
    case unknownScale(String, workload: String, known: [String])
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .unknownWorkload(let name, let known):
            return "unknown workload '\(name)'; expected one of \(known.joined(separator: ", "))"
        case .unknownScale(let name, let workload, let known):
            return "unknown scale '\(name)' for \(workload); expected one of \(known.joined(separator: ", "))"
        case .invalidConfiguration(let m): return m
        }
    }
}

extension ModelError {
    /// The error of a configuration field whose value is not what it must be.
    static func field(_ field: String, is value: String, expected: String, workload: String) -> ModelError {
        .invalidConfiguration("the \(workload) configuration's field '\(field)' is \(value); expected \(expected)")
    }

    /// Checks that configuration field `field` lies in `range`, naming it if not: every model
    /// checks its sizes with this before anything is allocated from them.
    static func check(_ field: String, _ value: Int, in range: ClosedRange<Int>, workload: String) throws(ModelError) {
        guard range.contains(value) else {
            throw .field(field, is: "\(value)", expected: "\(range.lowerBound)...\(range.upperBound)", workload: workload)
        }
    }
}
