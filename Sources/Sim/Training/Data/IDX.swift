import Foundation

/// Errors in IDX files; each names the file and what is wrong with it.
public enum IDXError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case tooShort(file: String, bytes: Int, needed: Int)
    /// The first two bytes are not zero, so this is not an IDX file.
    case badMagic(file: String, magic: UInt32)
    /// The element type (third byte) is not 0x08, unsigned bytes.
    case unsupportedType(file: String, code: UInt8)
    case badDimensionCount(file: String, count: Int)
    /// The dimensions multiply to more elements than can be addressed.
    case dimensionsOverflow(file: String, dimensions: [Int])
    /// The payload after the header is not exactly the size the dimensions declare.
    case payloadSizeMismatch(file: String, dimensions: [Int], expected: Int, actual: Int)
    case gzip(GzipError)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): \(reason)"
        case .tooShort(let file, let bytes, let needed):
            return "\(file): IDX file is \(bytes) bytes, too short for its header (\(needed) bytes)"
        case .badMagic(let file, let magic):
            return "\(file): not an IDX file: magic number is 0x\(String(magic, radix: 16, uppercase: true).leftPadded(to: 8)), expected 0x000008nn"
        case .unsupportedType(let file, let code):
            let names: [UInt8: String] = [0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"]
            return "\(file): IDX element type 0x\(String(code, radix: 16, uppercase: true).leftPadded(to: 2)) (\(names[code] ?? "unknown")) is not supported; only 0x08 (unsigned byte) is"
        case .badDimensionCount(let file, let count):
            return "\(file): IDX header declares \(count) dimensions; expected at least 1"
        case .dimensionsOverflow(let file, let dimensions):
            return "\(file): IDX dimensions \(dimensions.map(String.init).joined(separator: " x ")) overflow"
        case .payloadSizeMismatch(let file, let dimensions, let expected, let actual):
            return "\(file): IDX payload is \(actual) bytes but the header declares \(dimensions.map(String.init).joined(separator: " x ")) = \(expected)"
        case .gzip(let error): return error.description
        }
    }
}

/// An IDX array of unsigned bytes (the format of MNIST and Fashion-MNIST): a four-byte magic
/// number `00 00 08 n` (unsigned-byte elements, `n` dimensions), `n` big-endian 32-bit
/// dimension sizes, then the elements in row-major order.
public struct IDXArray: Sendable, Equatable {
    /// Sizes from the header, outermost first (`[count, rows, columns]` for images).
    public var dimensions: [Int]
    /// The elements, row-major, without the header.
    public var bytes: [UInt8]

    public init(dimensions: [Int], bytes: [UInt8]) {
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// Reads an IDX file; one whose name ends in `.gz` is decompressed first, with at most
    /// `limit` bytes of output.
    public static func load(path: String, limit: Int = 1 << 30) throws(IDXError) -> IDXArray {
        let bytes: [UInt8]
        if path.hasSuffix(".gz") {
            do { bytes = try Gzip.decompress(path: path, limit: limit) } catch { throw .gzip(error) }
        } else {
            switch InputFile.read(path, limit: InputFile.dataLimit) {
            case .success(let data): bytes = [UInt8](data)
            case .failure(let e): throw .unreadable(file: path, reason: e.reason)
            }
        }
        return try parse(bytes, file: path)
    }

    /// Parses the bytes of an (already decompressed) IDX file; `file` names it in errors.
    public static func parse(_ bytes: consuming [UInt8], file: String) throws(IDXError) -> IDXArray {
        guard bytes.count >= 4 else { throw .tooShort(file: file, bytes: bytes.count, needed: 4) }
        guard bytes[0] == 0, bytes[1] == 0 else { throw .badMagic(file: file, magic: bigEndian32(bytes, at: 0)) }
        guard bytes[2] == 0x08 else { throw .unsupportedType(file: file, code: bytes[2]) }
        let rank = Int(bytes[3])
        guard rank >= 1 else { throw .badDimensionCount(file: file, count: rank) }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else { throw .tooShort(file: file, bytes: bytes.count, needed: headerSize) }
        let dimensions = (0..<rank).map { Int(bigEndian32(bytes, at: 4 + 4 * $0)) }
        var expected = 1
        for d in dimensions {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .dimensionsOverflow(file: file, dimensions: dimensions) }
            expected = product
        }
        let actual = bytes.count - headerSize
        guard actual == expected else {
            throw .payloadSizeMismatch(file: file, dimensions: dimensions, expected: expected, actual: actual)
        }
        // In place when the caller hands over its only reference (as `load` does): no second
        // copy of a 47 MB payload.
        var payload = bytes
        payload.removeFirst(headerSize)
        return IDXArray(dimensions: dimensions, bytes: payload)
    }

    private static func bigEndian32(_ b: [UInt8], at i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
