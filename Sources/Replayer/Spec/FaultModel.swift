import Sim

/// The reference study's 18 software fault models, names kept verbatim (`FAULT_MODELS.md`
/// section 2).
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
}
