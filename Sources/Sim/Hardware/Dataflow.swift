import Foundation

/// How a GEMM `C[M x N] = A[M x K] x B[K x N]` is laid onto a systolic array
/// (SCALE-Sim's three dataflows).
///
/// | dataflow | held in the PEs | array rows get | array columns get | streamed per pass |
/// |---|---|---|---|---|
/// | weight-stationary (TPU) | a K x N tile of B | K | N | the M rows of A |
/// | input-stationary | a K x M tile of A^T | K | M | the N columns of B |
/// | output-stationary | a M x N tile of C | M | N | the K terms |
public enum Dataflow: String, Sendable, CaseIterable, Codable {
    case weightStationary = "ws"
    case inputStationary = "is"
    case outputStationary = "os"

    /// Parses `ws`/`is`/`os` (SCALE-Sim's spelling) or the long names.
    public init?(name: String) {
        switch name.lowercased().trimmingCharacters(in: .whitespaces) {
        case "ws", "weight-stationary", "weight_stationary": self = .weightStationary
        case "is", "input-stationary", "input_stationary": self = .inputStationary
        case "os", "output-stationary", "output_stationary": self = .outputStationary
        default: return nil
        }
    }

    /// Whether the reduction dimension K is folded over the array rows (ws, is). Under
    /// output-stationary every pass streams the whole of K through one accumulator.
    public var foldsReduction: Bool { self != .outputStationary }
}
