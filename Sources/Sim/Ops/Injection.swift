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

    public var name: String { layer + kind.rawValue }
    public var description: String { name }
}

/// Something that may replace operand elements of chosen MXU operations
/// (`faulty = golden * mask + delta`). The step asks ``wants(_:replica:)`` first, so an
/// absent hook, or one aimed elsewhere, costs one optional check per operation.
public protocol OperandHook: Sendable {
    /// Whether this hook touches any operand of `site` on `replica`.
    func wants(_ site: SiteID, replica: Int) -> Bool
    /// Corrupts `values` (the operand `role` of `site`, laid out as `shape`) in place.
    func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int)
    /// Corrupts the raw product `C[M x N] = A x B` of `site` as the MXU computed it, before
    /// any lowering is undone (col2im, transposes): what a fault inside the MXU changes.
    func corruptProduct(_ site: SiteID, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                        shape: GEMMShape, mxu: MXU, replica: Int)
    /// Whether this hook's operand corruption of `site` reaches only some of the product's
    /// elements (the `_16` fault models), so that the product must also be computed from the
    /// uncorrupted operands.
    func limitsReach(_ site: SiteID, replica: Int) -> Bool
    /// Keeps the corrupted `product` (`rows x columns`, row-major) only where the corruption
    /// reaches; `golden` is the product of the uncorrupted operands.
    func limitReach(_ site: SiteID, golden: [Float], product: inout [Float], rows: Int, columns: Int, replica: Int)
}

extension OperandHook {
    /// Software faults corrupt operands only.
    public func corruptProduct(_ site: SiteID, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                               shape: GEMMShape, mxu: MXU, replica: Int) {}
    /// Hardware faults corrupt products only.
    public func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {}
    /// An operand corruption reaches every output its element takes part in.
    public func limitsReach(_ site: SiteID, replica: Int) -> Bool { false }
    public func limitReach(_ site: SiteID, golden: [Float], product: inout [Float], rows: Int, columns: Int, replica: Int) {}
}

/// The matrix unit as the layers see it: the functional MXU, the replica it computes for,
/// and the injection hook, if any.
public struct MatrixUnit: Sendable {
    public var mxu: MXU
    public var replica: Int
    public var hook: (any OperandHook)?
    /// Where to record a digest of every operation's output, if anywhere.
    public var digests: SiteDigests?

    public init(mxu: MXU, replica: Int = 0, hook: (any OperandHook)? = nil, digests: SiteDigests? = nil) {
        self.mxu = mxu
        self.replica = replica
        self.hook = hook
        self.digests = digests
    }

    /// Offers the output of `site` to the hook (if it took the operands) and records its digest.
    func finish(_ site: SiteID, output: inout [Float], shape: [Int], hook: (any OperandHook)?) {
        hook?.apply(site, role: .output, values: &output, shape: shape, replica: replica)
        digests?.record(site, output, shape: shape)
    }

    /// Offers the hook (if it wants `site` on this replica) the operation's input and weight,
    /// and returns it so that the caller can offer the output after the product.
    func corruptOperands(_ site: SiteID, input: inout [Float], inputShape: [Int],
                         weight: inout [Float], weightShape: [Int]) -> (any OperandHook)? {
        guard let hook = hook(for: site) else { return nil }
        hook.apply(site, role: .input, values: &input, shape: inputShape, replica: replica)
        hook.apply(site, role: .weight, values: &weight, shape: weightShape, replica: replica)
        return hook
    }

    /// Lets a hook whose corruption reaches only some outputs (``OperandHook/limitsReach(_:replica:)``)
    /// keep the corrupted `product` only there; `golden()`, the product of the uncorrupted
    /// operands, runs only for such a hook.
    func limitReach(_ site: SiteID, hook: (any OperandHook)?, product: inout [Float], rows: Int, columns: Int,
                    golden: () -> [Float]) {
        guard let hook, hook.limitsReach(site, replica: replica) else { return }
        hook.limitReach(site, golden: golden(), product: &product, rows: rows, columns: columns, replica: replica)
    }

    /// `x` rounded to the MXU's operand precision (once, before a lowering that copies it).
    func operand(_ x: [Float]) -> [Float] {
        guard mxu.precision == .bfloat16 else { return x }
        var out = x
        out.withUnsafeMutableBufferPointer { p in BFloat16.round(p.baseAddress!, into: p.baseAddress!, count: p.count) }
        return out
    }

    /// The hook if it wants `site` on this replica.
    @inline(__always)
    func hook(for site: SiteID) -> (any OperandHook)? {
        guard let hook, hook.wants(site, replica: replica) else { return nil }
        return hook
    }

    /// `[rows x inner] x [inner x cols]` on the MXU, where A is stored `[rows, inner]` (or
    /// `[inner, rows]` when `transposeA`) and B `[inner, cols]` (or `[cols, inner]`).
    /// Transposes are strided reads, never copies.
    /// `aIsRounded`: A's values are already bf16 (saves the MXU its rounding pass; it then
    /// reads a row-major A in place). This is the operation `site` as the MXU runs it: its
    /// shape is the one the timing model schedules, and `hook` (the one
    /// ``corruptOperands(_:input:inputShape:weight:weightShape:)`` returned) may corrupt its
    /// product.
    public func product(_ site: SiteID, _ a: [Float], rows: Int, inner: Int, _ b: [Float], cols: Int,
                        transposeA: Bool = false, transposeB: Bool = false, aIsRounded: Bool = false,
                        hook: (any OperandHook)?) -> [Float] {
        precondition(a.count == rows * inner && b.count == inner * cols, "operand sizes do not match the product")
        let shape = GEMMShape(m: rows, k: inner, n: cols)
        // `multiply` writes every element of C, so it needs no zeroing first.
        return [Float](unsafeUninitializedCapacity: rows * cols) { pc, written in
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                let va = MatrixView(pa.baseAddress!, rowStride: transposeA ? 1 : inner, columnStride: transposeA ? rows : 1, isRounded: aIsRounded)
                let vb = MatrixView(pb.baseAddress!, rowStride: transposeB ? 1 : cols, columnStride: transposeB ? inner : 1)
                mxu.multiply(va, vb, into: pc.baseAddress!, shape: shape)
                hook?.corruptProduct(site, a: va, b: vb, c: pc.baseAddress!, shape: shape, mxu: mxu, replica: replica)
            } }
            written = rows * cols
        }
    }
}

/// Receives every MXU operation's output of one replica (its values, as the next operation
/// sees them, and their shape), in execution order, on that replica's thread. Bisect uses it
/// to compare two runs element by element; it only reads, so the numerics do not change.
public typealias OutputCapture = @Sendable (_ replica: Int, _ site: SiteID, _ shape: [Int], _ values: [Float]) -> Void

/// The digest of every MXU operation's output of one replica's step, in execution order,
/// and, if asked, the outputs themselves (handed to `capture`).
/// One per replica, filled by that replica's thread only.
public final class SiteDigests: @unchecked Sendable {
    public private(set) var entries: [(site: SiteID, digest: Digest)] = []
    let replica: Int
    let capture: OutputCapture?

    public init(replica: Int = 0, capture: OutputCapture? = nil) {
        self.replica = replica
        self.capture = capture
    }

    func record(_ site: SiteID, _ values: [Float], shape: [Int]) {
        entries.append((site, Digest.of(values)))
        capture?(replica, site, shape, values)
    }
}
