/// The report's colours: the Okabe-Ito palette (distinguishable with the common colour
/// vision deficiencies), one fixed colour per outcome class and per optimizer-study status,
/// used by every chart, legend and table of a report.
enum Palette {
    /// Outcome classes of `docs/outcomes.md#outcome-classes`: Masked green, the INFs/NaNs classes
    /// vermillion and reddish purple, the degrade classes orange and blues, low test
    /// accuracy grey.
    static func outcome(_ name: String) -> String {
        switch Outcome(rawValue: name) {
        case .masked: return "#009E73"
        case .immediateINFsNaNs: return "#D55E00"
        case .shortTermINFsNaNs: return "#CC79A7"
        case .sharpDegrade: return "#E69F00"
        case .sharpSlowDegrade: return "#0072B2"
        case .slowDegrade: return "#56B4E9"
        case .lowTestAccuracy: return "#7F7F7F"
        case nil: return "#000000"
        }
    }

    /// The fault-free (golden, reference) curves.
    static let golden = "#333333"

    /// Optimizer-study statuses; `Diverged` for a run whose loss went non-finite.
    static let statuses = ["Recovered", "Stable", "Degraded", "Diverged"]

    /// The fault-effect statuses (the study's primary ones), in legend order.
    static let effectStatuses = ["Improved", "Unaffected", "Degraded", "Diverged"]

    /// A status's colour, both rules alike: better than the comparison green (Recovered,
    /// Improved), within it sky blue (Stable, Unaffected), worse orange, diverged
    /// vermillion, anything else (`unknown`) grey.
    static func status(_ name: String) -> String {
        switch name {
        case "Recovered", "Improved": return "#009E73"
        case "Stable", "Unaffected": return "#56B4E9"
        case "Degraded": return "#E69F00"
        case "Diverged": return "#D55E00"
        default: return "#7F7F7F"
        }
    }

    /// The heat map's sequential scale (share of non-Masked outcomes): white to dark
    /// vermillion, light enough at the low end for black text.
    static func heat(_ share: Double) -> String {
        let t = max(0, min(1, share.isFinite ? share : 0))
        let low = (255.0, 245.0, 235.0), high = (127.0, 39.0, 4.0)
        func mix(_ a: Double, _ b: Double) -> Int { Int((a + (b - a) * t).rounded()) }
        return hex(mix(low.0, high.0), mix(low.1, high.1), mix(low.2, high.2))
    }

    /// Whether text on the heat colour of `share` should be white.
    static func heatNeedsLightText(_ share: Double) -> Bool { share > 0.55 }

    static func hex(_ r: Int, _ g: Int, _ b: Int) -> String {
        let digits = Array("0123456789ABCDEF")
        return "#" + [r, g, b].map { v in
            let v = max(0, min(255, v))
            return String([digits[v / 16], digits[v % 16]])
        }.joined()
    }
}
