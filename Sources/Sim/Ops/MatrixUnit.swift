import Synchronization

/// The matrix unit as a model sees it: the functional MXU, the replica it computes for, the
/// injection hook (if any) and where to record output digests. A model runs every MXU
/// operation through one call, ``operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)``;
/// operand, product and output corruption and digests happen behind it.
public struct MatrixUnit: Sendable {
    public var mxu: MXU
    public var replica: Int
    public var hook: (any OperandHook)?
    /// Where to record a digest of every operation's output, if anywhere.
    public var digests: SiteDigests?
    /// Where to check every product's checksums (the `abft` detector), if anywhere.
    public var checks: ProductChecks?
    /// Operands derived from the step's parameters that the replicas share, if anything
    /// shares them (``derived(_:of:_:)``).
    public var derivedOperands: DerivedOperands?

    public init(mxu: MXU, replica: Int = 0, hook: (any OperandHook)? = nil, digests: SiteDigests? = nil, checks: ProductChecks? = nil,
                derivedOperands: DerivedOperands? = nil) {
        self.mxu = mxu
        self.replica = replica
        self.hook = hook
        self.digests = digests
        self.checks = checks
        self.derivedOperands = derivedOperands
    }

    /// `make(source)`, computed once for every replica of the step that asks with the same
    /// `key` and the same `source` array, when the unit has ``derivedOperands``; else
    /// computed here.
    public func derived(_ key: String, of source: [Float], _ make: ([Float]) -> [Float]) -> [Float] {
        derivedOperands?.value(key, of: source, make) ?? make(source)
    }

    /// One MXU operation, `site`: its operands `input` (`inputShape`) and `weight`
    /// (`weightShape`) as the fault models index them, `product` computing the raw GEMM from
    /// them on the given ``OperationMXU`` (any lowering, e.g. im2col, happens inside it),
    /// and `unlower` turning the raw product into the output (`outputShape`, e.g. col2im).
    ///
    /// In order: a hook that wants the site corrupts the input and the weight (copies: the
    /// caller's arrays are untouched), the product runs (a hardware fault corrupts it there),
    /// the hook may adjust the raw product against the uncorrupted one, the output is
    /// unlowered, corrupted, and its digest recorded.
    public func operation(_ site: SiteID, input: [Float], inputShape: [Int], weight: [Float], weightShape: [Int], outputShape: [Int],
                          product: (_ input: [Float], _ weight: [Float], _ mxu: OperationMXU) -> Product,
                          unlower: ([Float]) -> [Float] = { $0 }) -> [Float] {
        operation(site, input: { input }, inputShape: inputShape, weight: weight, weightShape: weightShape, outputShape: outputShape,
                  product: { x, w, mxu in product(x(), w, mxu) }, unlower: unlower)
    }

    /// ``operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)`` with
    /// an input that is built only when something reads it stored: a hook that wants the site
    /// (to corrupt it), or the product when it calls `input()`. A product that can read the
    /// values the input is laid out from (dL/dy itself rather than dL/dy padded) builds nothing.
    public func operation(_ site: SiteID, input: () -> [Float], inputShape: [Int], weight: [Float], weightShape: [Int], outputShape: [Int],
                          product: (_ input: () -> [Float], _ weight: [Float], _ mxu: OperationMXU) -> Product,
                          unlower: ([Float]) -> [Float] = { $0 }) -> [Float] {
        let hook = self.hook.flatMap { $0.wants(site, replica: replica) ? $0 : nil }
        var raw: Product
        if let hook {
            var x = input(), w = weight
            hook.apply(site, role: .input, values: &x, shape: inputShape, replica: replica)
            hook.apply(site, role: .weight, values: &w, shape: weightShape, replica: replica)
            raw = product({ x }, w, OperationMXU(unit: self, site: site, hook: hook))
            hook.adjustProduct(site, product: &raw.values, rows: raw.rows, columns: raw.columns, golden: {
                // The fault-free product for comparison: not the array's work, so not checked.
                var plain = self
                plain.checks = nil
                return withoutActuallyEscaping(input) { product($0, weight, OperationMXU(unit: plain, site: site, hook: nil)).values }
            }, replica: replica)
        } else {
            raw = withoutActuallyEscaping(input) { product($0, weight, OperationMXU(unit: self, site: site, hook: nil)) }
        }
        var output = unlower(raw.values)
        precondition(output.count == outputShape.reduce(1, *), "\(site.name): output has \(output.count) values, shape \(outputShape)")
        hook?.apply(site, role: .output, values: &output, shape: outputShape, replica: replica)
        digests?.record(site, output, shape: outputShape)
        return output
    }
}

/// The raw product of an MXU operation, `rows x columns`, row-major.
public struct Product: Sendable {
    public var values: [Float]
    public var rows: Int
    public var columns: Int
}

/// The MXU inside one operation: multiplies on the functional MXU and lets the operation's
/// hook, if any, corrupt the product as the array computed it.
public struct OperationMXU {
    let unit: MatrixUnit
    let site: SiteID
    let hook: (any OperandHook)?

    /// `x` rounded to the MXU's operand format (once, before a lowering that copies it).
    public func operand(_ x: [Float]) -> [Float] {
        let format = unit.mxu.format
        guard format.roundingKind != .identity, !x.isEmpty else { return x }
        // Rounded straight into a new array: one pass, not a copy and then a rounding pass.
        return [Float](unsafeUninitializedCapacity: x.count) { out, written in
            x.withUnsafeBufferPointer { p in
                guard let src = p.baseAddress, let dst = out.baseAddress else { return }
                format.round(src, into: dst, count: p.count)
            }
            written = x.count
        }
    }

    /// `[rows x inner] x [inner x cols]`, where A is stored `[rows, inner]` (or `[inner, rows]`
    /// when `transposeA`) and B `[inner, cols]` (or `[cols, inner]`). Transposes are strided
    /// reads, never copies. `aIsRounded`: A's values are already rounded to the operand
    /// precision (saves the MXU its rounding pass; it then reads a row-major A in place).
    /// This is the GEMM the timing model schedules for the operation.
    ///
    /// An operation of several products in turn (``MXUOperation/products``) passes them as
    /// `products` stacked pairs: A_g at `g * rows * inner` of `a`, B_g at `g * inner * cols` of
    /// `b`, each stored as above; the result stacks the products, `[products * rows, cols]`,
    /// and the hook and the checks see each product on its own, numbered from 0.
    public func multiply(_ a: [Float], rows: Int, inner: Int, _ b: [Float], cols: Int, transposeA: Bool = false,
                         transposeB: Bool = false, aIsRounded: Bool = false, products: Int = 1) -> Product {
        precondition(products >= 1 && a.count == products * rows * inner && b.count == products * inner * cols,
                     "\(site.name): operand sizes do not match the product")
        let shape = GEMMShape(m: rows, k: inner, n: cols)
        // `multiply` writes every element of C, so it needs no zeroing first.
        let c = [Float](unsafeUninitializedCapacity: products * rows * cols) { out, written in
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                guard let pa = pa.baseAddress, let pb = pb.baseAddress, let pc = out.baseAddress else {
                    out.initialize(repeating: 0)  // an empty operand: the sum of no products
                    return
                }
                for g in 0..<products {
                    let va = MatrixView(pa + g * rows * inner, rowStride: transposeA ? 1 : inner, columnStride: transposeA ? rows : 1,
                                        isRounded: aIsRounded)
                    let vb = MatrixView(pb + g * inner * cols, rowStride: transposeB ? 1 : cols, columnStride: transposeB ? inner : 1)
                    let cg = pc + g * rows * cols
                    unit.mxu.multiply(va, vb, into: cg, shape: shape)
                    hook?.corruptProduct(site, product: g, a: va, b: vb, c: cg, shape: shape, mxu: unit.mxu, replica: unit.replica)
                    unit.checks?.check(site, a: va, b: vb, c: cg, shape: shape, format: unit.mxu.format)
                }
            } }
            written = products * rows * cols
        }
        return Product(values: c, rows: products * rows, columns: cols)
    }
}

extension OperationMXU {
    /// Whether this operation's product may leave out terms that are exact zeros
    /// (``multiply(_:rows:_:cols:kept:aIsRounded:)``): only when nothing corrupts or
    /// watches the array's work term by term, no injection hook (which may also have
    /// changed a zero of the operands) and no checksum check.
    public var mayOmitZeroTerms: Bool { hook == nil && unit.checks == nil }

    /// Whether the MXU may read an operand gathered as it goes (``GatheredOperand``) instead
    /// of a stored matrix: the same condition, since hooks and checks read stored operands.
    public var mayGatherOperands: Bool { mayOmitZeroTerms }

    /// The MXU's fold length (nil: one running sum), for ``KeptTerms``.
    public var foldLength: Int? { unit.mxu.foldLength }

    /// Whether every value is finite once rounded to the operand format (see
    /// ``MXU/allFiniteOnceRounded(_:)``).
    public func allFiniteOnceRounded(_ values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { unit.mxu.allFiniteOnceRounded($0) }
    }

    /// `[rows x kept.count] x [kept.count x cols]`, both row-major: the `kept` terms of a
    /// longer product whose others are exact zeros, with that product's bits
    /// (``MXU/multiply(_:_:into:shape:kept:)``, whose precondition the caller vouches for).
    /// Only where ``mayOmitZeroTerms``.
    public func multiply(_ a: [Float], rows: Int, _ b: [Float], cols: Int, kept: KeptTerms, aIsRounded: Bool = false) -> [Float] {
        precondition(mayOmitZeroTerms, "\(site.name): terms may not be left out of a product a hook or check sees")
        let inner = kept.count
        precondition(a.count == rows * inner && b.count == inner * cols, "\(site.name): operand sizes do not match the product")
        return [Float](unsafeUninitializedCapacity: rows * cols) { out, written in
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                guard let pa = pa.baseAddress, let pb = pb.baseAddress, let pc = out.baseAddress else {
                    out.initialize(repeating: 0)  // no terms kept: every sum is +0
                    return
                }
                unit.mxu.multiply(MatrixView(pa, rowStride: inner, isRounded: aIsRounded), MatrixView(pb, rowStride: cols),
                                  into: pc, shape: GEMMShape(m: rows, k: inner, n: cols), kept: kept)
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
    /// How outputs are digested; nil: not at all (only `capture` sees them).
    let scheme: OutputDigest?
    let replica: Int
    let capture: OutputCapture?

    public init(_ scheme: OutputDigest?, replica: Int = 0, capture: OutputCapture? = nil) {
        self.scheme = scheme
        self.replica = replica
        self.capture = capture
    }

    func record(_ site: SiteID, _ values: [Float], shape: [Int]) {
        if let scheme { entries.append((site, scheme.of(values))) }
        capture?(replica, site, shape, values)
    }
}

/// Operands that every replica of a step derives alike from the same parameter, such as the
/// rotated kernel of a convolution's reference `_grad_in`: the first replica to ask computes
/// it, the others reuse it. A value is reused only for the very array it was made from: the
/// entry keeps that array alive, so its storage cannot be freed and reused by another array
/// while the entry lasts, and an array whose storage is shared is never written in place
/// (copy on write). So the same storage means the same values, and a replica with other
/// values (its own copy, a corrupted parameter) computes its own. One per step; the values
/// are what `make` gives, whichever replica computed them. A hook that corrupts an operand
/// corrupts a copy (``MatrixUnit/operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)``).
public final class DerivedOperands: Sendable {
    private let entries = Mutex<[String: (source: [Float], value: [Float])]>([:])

    public init() {}

    func value(_ key: String, of source: [Float], _ make: ([Float]) -> [Float]) -> [Float] {
        if let cached = entries.withLock({ $0[key] }), Self.sameStorage(cached.source, source) { return cached.value }
        let value = make(source)
        entries.withLock { if $0[key] == nil { $0[key] = (source, value) } }
        return value
    }

    private static func sameStorage(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in pa.baseAddress == pb.baseAddress } }
    }
}
