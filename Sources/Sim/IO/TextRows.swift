import Foundation

/// Splits a text file into rows of cells at the byte level, so that a file of millions of
/// cells (a spec listing every position of a large operand) is read in one quick pass.
public enum TextRows {
    /// Every line that is not blank, with its 1-based number and its cells: split at
    /// `separator` (an ASCII byte) and trimmed of blanks (spaces, tabs, any Unicode space
    /// separator). Lines end where `Character.isNewline` says (LF, CR, CR LF once, VT, FF,
    /// NEL, LS, PS), so numbers match an editor's.
    public static func rows(_ text: String, separator: UInt8) -> [(line: Int, cells: [String])] {
        var text = text
        text.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { rows(bytes: $0, separator: separator) } ?? []
    }

    private static func rows(bytes: UnsafeBufferPointer<UInt8>, separator: UInt8) -> [(line: Int, cells: [String])] {
        var out: [(line: Int, cells: [String])] = []
        let n = bytes.count
        func string(_ a: Int, _ b: Int) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[a ..< b]), as: UTF8.self) }
        /// The bytes a..<b without ASCII blanks at either end, as text trimmed of every blank.
        func trimmed(_ a: Int, _ b: Int) -> String {
            var (s, e) = (a, b)
            while s < e, bytes[s] == 0x20 || bytes[s] == 0x09 { s += 1 }
            while e > s, bytes[e - 1] == 0x20 || bytes[e - 1] == 0x09 { e -= 1 }
            guard s < e else { return "" }
            // A non-ASCII character at an end may be a Unicode blank.
            if bytes[s] >= 0x80 || bytes[e - 1] >= 0x80 { return string(s, e).trimmingCharacters(in: .whitespaces) }
            return string(s, e)
        }
        func emit(_ line: Int, _ a: Int, _ b: Int) {
            guard !trimmed(a, b).isEmpty else { return }
            var cells: [String] = []
            var start = a
            for j in a ..< b where bytes[j] == separator {
                cells.append(trimmed(start, j))
                start = j + 1
            }
            cells.append(trimmed(start, b))
            out.append((line, cells))
        }
        var line = 1, start = 0, i = 0
        while i < n {
            var length = 0  // of a line break at i
            switch bytes[i] {
            case 0x0A, 0x0B, 0x0C: length = 1
            case 0x0D: length = i + 1 < n && bytes[i + 1] == 0x0A ? 2 : 1
            case 0xC2: length = i + 1 < n && bytes[i + 1] == 0x85 ? 2 : 0
            case 0xE2: length = i + 2 < n && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9) ? 3 : 0
            default: break
            }
            if length > 0 {
                emit(line, start, i)
                line += 1
                i += length
                start = i
            } else {
                i += 1
            }
        }
        emit(line, start, n)
        return out
    }
}
