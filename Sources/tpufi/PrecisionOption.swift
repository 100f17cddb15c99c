import ArgumentParser
import Sim

/// `--precision bf16|fp32`: the MXU's operand format, in the one vocabulary every command
/// uses (traces record it as ``OperandPrecision``, whose raw values are `bfloat16` and
/// `float32`).
enum PrecisionOption: String, CaseIterable, ExpressibleByArgument {
    /// bfloat16 operands, the TPU's (the default).
    case bf16
    /// fp32 operands, for comparison with fp32 frameworks.
    case fp32

    /// The precision a trace records for this option.
    var precision: OperandPrecision {
        switch self {
        case .bf16: return .bfloat16
        case .fp32: return .float32
        }
    }

    /// The option naming `precision`.
    init(_ precision: OperandPrecision) {
        switch precision {
        case .bfloat16: self = .bf16
        case .float32: self = .fp32
        }
    }

    /// Help text of the option.
    static let help = ArgumentHelp("MXU operand precision: bf16 (the TPU's; the default) or fp32 (for comparison with fp32 frameworks).",
                                   valueName: "bf16|fp32")
}
