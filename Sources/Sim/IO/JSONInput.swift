import Foundation

/// Why a JSON input file does not decode as the type it should hold: the field, as a path
/// from the top of the document (`config.seed`, `timing.layers[3].m`), and the reason.
public struct JSONInputError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The field's path; nil when the document itself is not valid JSON (or the reason
    /// belongs to no field).
    public var field: String?
    public var reason: String

    public init(field: String?, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { field.map { "field '\($0)': \(reason)" } ?? reason }
}

/// Decoding JSON input files (trace manifests, specs, campaign and study files) with errors
/// that name the field that does not fit.
///
/// Foundation's `JSONDecoder` reports a wrong type or a missing key with its coding path, but
/// a number that does not fit its field (`-5` for a `UInt64`, `1e20` for an `Int`) only as
/// "The given data was not valid JSON", with no path. When that happens the document is
/// decoded a second time, for the diagnosis only, by a small decoder over a parsed tree that
/// keeps every number's text (``JSONTree``): the first field that does not fit is named.
public enum JSONInput {
    /// `type` decoded from `data` by `decoder`, or why not, naming the field.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, decoder: JSONDecoder) -> Result<T, JSONInputError> {
        do {
            return .success(try decoder.decode(type, from: data))
        } catch let error as DecodingError {
            if case .dataCorrupted(let c) = error, c.codingPath.isEmpty {
                return .failure(diagnose(type, data: data, fallback: c.debugDescription))
            }
            return .failure(describe(error))
        } catch {
            return .failure(JSONInputError(field: nil, reason: "\(error)"))
        }
    }

    /// A decoding error in words: the field it names and what is wrong with it.
    public static func describe(_ error: DecodingError) -> JSONInputError {
        switch error {
        case .keyNotFound(let key, let c):
            return JSONInputError(field: path(c.codingPath + [key]), reason: "missing")
        case .typeMismatch(_, let c):
            return JSONInputError(field: nonEmpty(path(c.codingPath)), reason: c.debugDescription)
        case .valueNotFound(_, let c):
            return JSONInputError(field: nonEmpty(path(c.codingPath)), reason: "null, a value is expected (\(c.debugDescription))")
        case .dataCorrupted(let c):
            return JSONInputError(field: nonEmpty(path(c.codingPath)), reason: c.debugDescription)
        @unknown default:
            return JSONInputError(field: nil, reason: "\(error)")
        }
    }

    /// A coding path as `a.b[2].c`.
    public static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let i = key.intValue, key.stringValue == "Index \(i)" || key.stringValue == "\(i)" {
                out += "[\(i)]"
            } else {
                out += (out.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return out
    }

    private static func nonEmpty(_ s: String) -> String? { s.isEmpty ? nil : s }

    /// Why `data` failed to decode without a path: its syntax (with the byte offset), or the
    /// first value that does not fit its field.
    static func diagnose<T: Decodable>(_ type: T.Type, data: Data, fallback: String) -> JSONInputError {
        let tree: JSONTree
        switch JSONTree.parse([UInt8](data)) {
        case .success(let t): tree = t
        case .failure(let syntax): return JSONInputError(field: nil, reason: "not valid JSON: \(syntax.reason)")
        }
        do {
            _ = try T(from: JSONTreeDecoder(tree, path: []))
        } catch let error as DecodingError {
            let described = describe(error)
            if described.field != nil { return described }
        } catch {}
        return JSONInputError(field: nil, reason: "not valid JSON: \(fallback)")
    }
}

/// A parsed JSON document that keeps every number as written (for ``JSONInput``'s diagnosis).
indirect enum JSONTree {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONTree])
    case object([(key: String, value: JSONTree)])

    /// Deeper nesting is refused (as Foundation's decoder refuses it), so parsing cannot
    /// exhaust the stack.
    static let maximumDepth = 512

    struct SyntaxError: Error { var reason: String }

    static func parse(_ bytes: [UInt8]) -> Result<JSONTree, SyntaxError> {
        var parser = Parser(bytes: bytes)
        do {
            parser.skipSpace()
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.at == bytes.count else { throw parser.error("unexpected data after the document") }
            return .success(value)
        } catch let e as SyntaxError {
            return .failure(e)
        } catch {
            return .failure(SyntaxError(reason: "\(error)"))
        }
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0

        func error(_ what: String) -> SyntaxError {
            SyntaxError(reason: at < bytes.count ? "\(what) at byte \(at)" : "\(what) at the end")
        }

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        mutating func literal(_ word: String, _ value: JSONTree) throws -> JSONTree {
            let w = Array(word.utf8)
            guard at + w.count <= bytes.count, Array(bytes[at ..< at + w.count]) == w else { throw error("unexpected character") }
            at += w.count
            return value
        }

        mutating func value(depth: Int) throws -> JSONTree {
            guard depth < JSONTree.maximumDepth else { throw error("nesting deeper than \(JSONTree.maximumDepth)") }
            guard at < bytes.count else { throw error("a value is missing") }
            switch bytes[at] {
            case UInt8(ascii: "{"):
                at += 1
                var fields: [(key: String, value: JSONTree)] = []
                skipSpace()
                if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(fields) }
                while true {
                    skipSpace()
                    guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw error("expected a key") }
                    let key = try string()
                    skipSpace()
                    guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    at += 1
                    skipSpace()
                    fields.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard at < bytes.count else { throw error("unterminated object") }
                    if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                    guard bytes[at] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                    at += 1
                    return .object(fields)
                }
            case UInt8(ascii: "["):
                at += 1
                var items: [JSONTree] = []
                skipSpace()
                if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard at < bytes.count else { throw error("unterminated array") }
                    if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                    guard bytes[at] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                    at += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = at
                at += 1
                while at < bytes.count, "0123456789.eE+-".utf8.contains(bytes[at]) { at += 1 }
                return .number(String(decoding: bytes[start ..< at], as: UTF8.self))
            default:
                throw error("unexpected character")
            }
        }

        mutating func string() throws -> String {
            at += 1  // the opening quote
            var out: [UInt8] = []
            while at < bytes.count {
                let b = bytes[at]
                at += 1
                switch b {
                case UInt8(ascii: "\""):
                    guard let s = String(validating: out, as: UTF8.self) else { throw error("a string that is not UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    guard at < bytes.count else { throw error("unterminated string") }
                    let e = bytes[at]
                    at += 1
                    switch e {
                    case UInt8(ascii: "u"):
                        guard at + 4 <= bytes.count, let unit = UInt32(String(decoding: bytes[at ..< at + 4], as: UTF8.self), radix: 16) else {
                            throw error("a bad \\u escape")
                        }
                        at += 4
                        // (Surrogate pairs are not joined: the text is for diagnosis only.)
                        out += Array(String(Unicode.Scalar(unit).map(Character.init) ?? "\u{FFFD}").utf8)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    default: out.append(e)
                    }
                default:
                    out.append(b)
                }
            }
            throw error("unterminated string")
        }
    }
}

/// A key of a parsed object or an index of an array.
struct JSONTreeKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = "Index \(intValue)"; self.intValue = intValue }
}

/// A `Decoder` over a ``JSONTree``: what `JSONDecoder` does, but a number that does not fit
/// its field is reported at its coding path. Lenient where `JSONDecoder` may be configured
/// to accept more (non-finite floats as the strings `nan`, `inf`, `-inf`).
struct JSONTreeDecoder: Decoder {
    let node: JSONTree
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ node: JSONTree, path: [any CodingKey]) {
        self.node = node
        self.codingPath = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let fields) = node else { throw mismatch([String: Any].self, node, codingPath) }
        var dict: [String: JSONTree] = [:]
        for (k, v) in fields { dict[k] = v }
        return KeyedDecodingContainer(Keyed<Key>(fields: dict, keys: fields.map(\.key), codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = node else { throw mismatch([Any].self, node, codingPath) }
        return Unkeyed(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(node: node, codingPath: codingPath) }
}

private func kind(_ node: JSONTree) -> String {
    switch node {
    case .null: return "null"
    case .bool: return "a boolean"
    case .number(let t): return "the number \(t)"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
}

private func mismatch(_ type: Any.Type, _ node: JSONTree, _ path: [any CodingKey]) -> DecodingError {
    if case .null = node {
        return .valueNotFound(type, .init(codingPath: path, debugDescription: "expected \(type), found null"))
    }
    return .typeMismatch(type, .init(codingPath: path, debugDescription: "expected \(type), found \(kind(node))"))
}

/// A scalar of `node` as `T`: integers exactly, floats in range (or `nan`/`inf`/`-inf`
/// strings), strings and booleans as they are.
private func scalar<T: Decodable>(_ type: T.Type, _ node: JSONTree, _ path: [any CodingKey]) throws -> T {
    func bad(_ reason: String) -> DecodingError { .dataCorrupted(.init(codingPath: path, debugDescription: reason)) }
    func integer<I: FixedWidthInteger>(_: I.Type) throws -> I {
        guard case .number(let text) = node else { throw mismatch(I.self, node, path) }
        if let v = I(text) { return v }
        guard let d = Double(text) else { throw bad("\(text) is not a number") }
        if d.isFinite, d == d.rounded(), let v = I(exactly: d) { return v }
        // (Beyond Double's range a number parses as infinite: an integer far out of range.)
        throw bad(d.isFinite && d != d.rounded() ? "\(text) is not an integer" : "\(text) is outside \(I.min)...\(I.max)")
    }
    func float<F: BinaryFloatingPoint & LosslessStringConvertible>(_: F.Type) throws -> F {
        switch node {
        case .string(let s) where ["nan", "inf", "-inf"].contains(s): return s == "nan" ? .nan : s == "inf" ? .infinity : -.infinity
        case .number(let text):
            guard let v = F(text) else { throw bad("\(text) is not a number") }
            guard v.isFinite else { throw bad("\(text) is outside the range of \(F.self)") }
            return v
        default: throw mismatch(F.self, node, path)
        }
    }
    let value: Any
    switch type {
    case is Bool.Type:
        guard case .bool(let b) = node else { throw mismatch(Bool.self, node, path) }
        value = b
    case is String.Type:
        guard case .string(let s) = node else { throw mismatch(String.self, node, path) }
        value = s
    case is Double.Type: value = try float(Double.self)
    case is Float.Type: value = try float(Float.self)
    case is Int.Type: value = try integer(Int.self)
    case is Int8.Type: value = try integer(Int8.self)
    case is Int16.Type: value = try integer(Int16.self)
    case is Int32.Type: value = try integer(Int32.self)
    case is Int64.Type: value = try integer(Int64.self)
    case is UInt.Type: value = try integer(UInt.self)
    case is UInt8.Type: value = try integer(UInt8.self)
    case is UInt16.Type: value = try integer(UInt16.self)
    case is UInt32.Type: value = try integer(UInt32.self)
    case is UInt64.Type: value = try integer(UInt64.self)
    default: return try T(from: JSONTreeDecoder(node, path: path))
    }
    guard let v = value as? T else { throw mismatch(T.self, node, path) }
    return v
}

private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let fields: [String: JSONTree]
    let keys: [String]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { keys.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { fields[key.stringValue] != nil }

    func node(_ key: Key) throws -> JSONTree {
        guard let n = fields[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for '\(key.stringValue)'"))
        }
        return n
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try node(key) { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try scalar(type, try node(key), codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try JSONTreeDecoder(try node(key), path: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try JSONTreeDecoder(try node(key), path: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        JSONTreeDecoder(fields["super"] ?? .null, path: codingPath + [JSONTreeKey(stringValue: "super")])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        JSONTreeDecoder(fields[key.stringValue] ?? .null, path: codingPath + [key])
    }
}

private struct Unkeyed: UnkeyedDecodingContainer {
    let items: [JSONTree]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(items: [JSONTree], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func next() throws -> (JSONTree, [any CodingKey]) {
        let path = codingPath + [JSONTreeKey(intValue: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: path, debugDescription: "the array ends after \(items.count) elements"))
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if case .null = items[currentIndex] {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (n, path) = try next()
        return try scalar(type, n, path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (n, path) = try next()
        return try JSONTreeDecoder(n, path: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (n, path) = try next()
        return try JSONTreeDecoder(n, path: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (n, path) = try next()
        return JSONTreeDecoder(n, path: path)
    }
}

private struct Single: SingleValueDecodingContainer {
    let node: JSONTree
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool {
        if case .null = node { return true }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try scalar(type, node, codingPath) }
}
