/// The reference study's 18 software fault models, names kept verbatim
/// (`docs/faults.md#software-fault-models`).
public enum FaultModel: String, Sendable, Codable, CaseIterable {
    case INPUT, INPUT_16, WT, WT_16, RBFLIP, RD, RD_CORRECT, ZERO
    case N16_RD, N16_RD_CORRECT, RD_GLB, RD_CORRECT_GLB
    case N64_INPUT, N64_WT, N64_INPUT_16, N64_WT_16, N64_INPUT_GLB, N64_WT_GLB

    /// The tensor the model corrupts.
    public var tensor: OperandRole {
        switch self {
        case .INPUT, .INPUT_16, .N64_INPUT, .N64_INPUT_16, .N64_INPUT_GLB: return .input
        case .WT, .WT_16, .N64_WT, .N64_WT_16, .N64_WT_GLB: return .weight
        default: return .output
        }
    }

    /// Elements corrupted, where the model fixes the count (nil: a GLB run of random length).
    public var elementCount: Int? {
        switch self {
        case .N16_RD, .N16_RD_CORRECT: return 16
        case .N64_INPUT, .N64_WT, .N64_INPUT_16, .N64_WT_16: return 64
        case .RD_GLB, .RD_CORRECT_GLB, .N64_INPUT_GLB, .N64_WT_GLB: return nil
        default: return 1
        }
    }

    /// The `_16` models: the corrupted operand reaches only 16 outputs (see
    /// ``SixteenSemantics``).
    public var reachesSixteen: Bool { rawValue.hasSuffix("_16") }

    /// The bit-flip models (`INPUT`, `INPUT_16`, `WT`, `WT_16`, `RBFLIP`): each writes its
    /// element with one bit of the fp32 encoding inverted (``InjectionRecord/bitFormat``).
    public var flipsBit: Bool {
        switch self {
        case .INPUT, .INPUT_16, .WT, .WT_16, .RBFLIP: return true
        default: return false
        }
    }
}

/// What the `_16` fault models mean (`docs/faults.md#sixteen-output-variants`).
public enum SixteenSemantics: String, Sendable, Codable, CaseIterable {
    /// FIdelity's definition: the corrupted operand reaches only 16 elements of the
    /// operation's product `C = A x B`. An input (A) corruption: one row of C that it changes
    /// (one output position) times 16 consecutive, 16-aligned columns (output channels); a
    /// weight (B) corruption: one column of C that it changes (one output channel) times 16
    /// consecutive, 16-aligned rows (output positions). The row or column and the block are
    /// drawn from the experiment's seed; every other output keeps its fault-free value.
    case fidelity
    /// The released reference code's: a plain alias of the model without `_16`.
    case released
}
