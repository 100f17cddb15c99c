import Foundation

/// Escaping and number formatting shared by the report's HTML and SVG. Every number goes
/// through `String(format:)` (no locale), so the same inputs give byte-identical files.
enum Markup {
    /// `s` safe as XML/HTML text and attribute values (only the five XML entities, so every
    /// SVG also parses as XML).
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            // Control characters are not allowed in XML 1.0: a bit flip's garbage in a name
            // must not break the file.
            case _ where c.value < 0x20 && c != "\n" && c != "\t": out += "?"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A coordinate: one decimal, no `-0.0`.
    static func coordinate(_ x: Double) -> String {
        guard x.isFinite else { return "0" }
        let s = String(format: "%.1f", x)
        return s == "-0.0" ? "0.0" : s
    }

    /// A share as a percentage with one decimal: `50.0%`.
    static func percent(_ fraction: Double) -> String {
        fraction.isFinite ? String(format: "%.1f%%", 100 * fraction) : number(fraction)
    }

    /// A Wilson interval in percent: `[18.8, 81.2]%`.
    static func interval(_ low: Double, _ high: Double) -> String {
        String(format: "[%.1f, %.1f]%%", 100 * low, 100 * high)
    }

    /// `k/n · p% [lo, hi]%`: how the report prints every outcome share (tests look for it).
    static func share(count: Int, total: Int, fraction: Double, low: Double, high: Double) -> String {
        "\(count)/\(total) · \(percent(fraction)) \(interval(low, high))"
    }

    /// A measured value: 4 significant digits, `NaN`, `+inf`, `-inf`.
    static func number(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x > 0 ? "+inf" : "-inf" }
        let s = String(format: "%.4g", x)
        return s == "-0" ? "0" : s
    }

    /// A tick label for a tick grid of spacing `step`: as many decimals as the step needs.
    static func tick(_ x: Double, step: Double) -> String {
        let magnitude = abs(x)
        if magnitude >= 1e6 || (magnitude > 0 && magnitude < 1e-4) { return String(format: "%.0e", x) }
        let decimals = step > 0 ? max(0, min(6, Int((-log10(step)).rounded(.up)))) : 0
        let s = String(format: "%.\(decimals)f", x)
        return s.hasPrefix("-") && s.allSatisfy({ "-0.".contains($0) }) ? String(s.dropFirst()) : s
    }
}
