/// Which operand of an MXU operation: what a fault model corrupts.
public enum OperandRole: String, Sendable, Codable, CaseIterable {
    case input, weight, output
}

/// The three MXU operations of a convolution or dense layer.
public enum OperationKind: String, Sendable, Codable, CaseIterable {
    /// `y = x * W`: operands input x, weight W, output y.
    case forward = ""
    /// `dL/dx`: operands upstream gradient dL/dy (input), the layer's weight W (weight),
    /// dL/dx (output).
    case gradIn = "_grad_in"
    /// `dL/dW`: operands the layer's input x (input), upstream gradient dL/dy (weight),
    /// dL/dW (output).
    case gradWt = "_grad_wt"
}

/// An injection site: one MXU operation of one layer, named as the reference names it
/// (`conv1`, `basicblock_2_basic_0_conv2_grad_in`, ...).
public struct SiteID: Sendable, Hashable, Codable, CustomStringConvertible {
    public var layer: String
    public var kind: OperationKind

    public init(layer: String, kind: OperationKind) {
        self.layer = layer
        self.kind = kind
    }

    /// The site a name names, by the one grammar `<layer><kind suffix>`:
    /// `basicblock_1_basic_0_conv1_grad_in` -> (`basicblock_1_basic_0_conv1`, grad_in).
    /// Whether a model has it is the model's to say (``Model/operation(named:)``).
    public init(parsing name: String) {
        for kind in [OperationKind.gradIn, .gradWt] where name.hasSuffix(kind.rawValue) {
            self.init(layer: String(name.dropLast(kind.rawValue.count)), kind: kind)
            return
        }
        self.init(layer: name, kind: .forward)
    }

    public var name: String { layer + kind.rawValue }
    public var description: String { name }
}

/// Something that may corrupt chosen MXU operations: their operands
/// (`faulty = golden * mask + delta`), their raw product as the MXU computed it, or both.
/// The matrix unit asks ``wants(_:replica:)`` first, so an absent hook, or one aimed
/// elsewhere, costs one optional check per operation. Ops never see a hook: every call
/// happens behind ``MatrixUnit/operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)``.
public protocol OperandHook: Sendable {
    /// Whether this hook touches any operand of `site` on `replica`.
    func wants(_ site: SiteID, replica: Int) -> Bool
    /// Corrupts `values` (the operand `role` of `site`, laid out as `shape`) in place.
    func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int)
    /// Corrupts the raw product `C[M x N] = A x B` of `site` as the MXU computed it, before
    /// any lowering is undone (col2im, transposes): what a fault inside the MXU changes.
    /// `product`: which of the operation's products in turn this is (0 for an operation of
    /// one; see ``OperationSchedule``), each of `shape`.
    func corruptProduct(_ site: SiteID, product: Int, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                        shape: GEMMShape, mxu: MXU, replica: Int)
    /// Sees the whole raw product (`rows x columns`, row-major) of an operation whose operands
    /// it corrupted, and may put back elements of `golden()`, the product of the uncorrupted
    /// operands (computed only if called): how a fault whose corruption reaches only some of
    /// the product's elements is modelled.
    func adjustProduct(_ site: SiteID, product: inout [Float], rows: Int, columns: Int, golden: () -> [Float], replica: Int)
}

extension OperandHook {
    /// Software faults corrupt operands only.
    public func corruptProduct(_ site: SiteID, product: Int, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                               shape: GEMMShape, mxu: MXU, replica: Int) {}
    /// Hardware faults corrupt products only.
    public func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {}
    /// An operand corruption reaches every output its element takes part in.
    public func adjustProduct(_ site: SiteID, product: inout [Float], rows: Int, columns: Int, golden: () -> [Float], replica: Int) {}
}

