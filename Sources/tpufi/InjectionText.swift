import Replayer
import Sim

/// What an injection found and changed, in words, for the "injected ..." line of `replay`
/// and the "injection:" line of `inspect`: the flipped bit, golden -> new values, how many
/// elements changed, or that a hardware fault's PE holds nothing of the operation.
protocol InjectionFacts {
    var hardware: HardwareFault? { get }
    var site: String { get }
    var values: [Float] { get }
    var goldenValues: [Float]? { get }
    var bits: [Int]? { get }
    var bitFormat: OperandPrecision? { get }
    var activated: Int? { get }
    var peInUse: Bool? { get }
}

/// Both carry the facts under the same names: the record a trace keeps, and the result of a
/// replay.
extension InjectionRecord: InjectionFacts {}
extension ReplayResult.Injection: InjectionFacts {}

extension InjectionFacts {
    /// `golden G -> V` for one element.
    static func change(_ golden: Float, _ value: Float) -> String { "golden \(golden) -> \(value)" }

    /// The text after the colon.
    var factsText: String {
        if let h = hardware {
            if peInUse == false {
                let scope = site == InjectionRecord.wholeStepSite ? "any operation of the step" : "this operation"
                var when = ""
                if case .transient = h.kind { when = " in that cycle" }
                return "PE(\(h.row),\(h.column)) of MXU \(h.mxu) not used by \(scope)\(when): nothing changed"
            }
            var text = "\(values.count) product element(s) changed"
            if values.count == 1, let g = goldenValues?.first, let v = values.first { text += " (\(Self.change(g, v)))" }
            if values.isEmpty && peInUse == true { text += " (the PE holds data of the operation, but no output changed)" }
            return text
        }
        let n = values.count
        guard let golden = goldenValues, golden.count == n, let activated else { return "\(n) element(s)" }
        var parts: [String] = []
        if let bits, !bits.isEmpty {
            let format = bitFormat?.rawValue ?? OperandPrecision.float32.rawValue
            parts.append(bits.count == 1 ? "bit \(bits[0]) of \(format)" : "bits \(bits.map(String.init).joined(separator: ", ")) of \(format)")
        }
        if n == 1, let g = golden.first, let v = values.first { parts.append(Self.change(g, v)) }
        var changed = "\(activated) of \(n) element(s) changed"
        if activated == 0 && n > 0 {
            changed += zip(golden, values).allSatisfy({ $0.bitPattern == $1.bitPattern })
                ? " (the value written is the golden one)"
                : " (rounding to the operand format discards the change)"
        } else if n > 1, let g = golden.first, let v = values.first {
            changed += " (the first: \(Self.change(g, v)))"
        }
        parts.append(changed)
        return parts.joined(separator: ", ")
    }
}
