/// The operations of a sequence model (the `transformer` workload), in the style of llm.c:
/// each a forward and a backward as plain functions side by side, shapes in the signature,
/// what the forward keeps for the backward explicit, shapes checked by preconditions.
///
/// MXU operations (projections, the two attention products) go through
/// ``MatrixUnit/operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)``
/// with their site; everything else (layer norm, softmax and its masks, embedding lookup,
/// positions, the loss) is the vector unit's, in fp32 with ``DeterministicMath``.

/// A dense projection of every position of a sequence batch: x `[batch, length, in]`, w
/// `[in, out]`, optional bias `[out]`, y `[batch, length, out]`. Operands as the reference's
/// specs index them: `{batch, position, feature}`.
public enum Projection {
    /// y = x w (+ b): site `<layer>` (operands x, w, y); the bias is the vector unit's.
    public static func forward(x: [Float], w: [Float], b: [Float]?, batch: Int, length: Int, inFeatures: Int, outFeatures: Int,
                               layer: String, unit: MatrixUnit) -> [Float] {
        let rows = batch * length
        precondition(x.count == rows * inFeatures && w.count == inFeatures * outFeatures && (b?.count ?? outFeatures) == outFeatures,
                     "\(layer): shapes do not match")
        var y = unit.operation(SiteID(layer: layer, kind: .forward), input: x, inputShape: [batch, length, inFeatures],
                               weight: w, weightShape: [inFeatures, outFeatures], outputShape: [batch, length, outFeatures]) { x, w, mxu in
            mxu.multiply(x, rows: rows, inner: inFeatures, w, cols: outFeatures)
        }
        if let b { addToEveryRow(&y, b) }
        return y
    }

    /// dL/dx = dL/dy w^T: site `<layer>_grad_in` (operands dL/dy `[batch, length, out]`, w,
    /// dL/dx `[batch, length, in]`).
    public static func backwardInput(dy: [Float], w: [Float], batch: Int, length: Int, inFeatures: Int, outFeatures: Int,
                                     layer: String, unit: MatrixUnit) -> [Float] {
        let rows = batch * length
        precondition(dy.count == rows * outFeatures && w.count == inFeatures * outFeatures, "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer, kind: .gradIn), input: dy, inputShape: [batch, length, outFeatures],
                              weight: w, weightShape: [inFeatures, outFeatures], outputShape: [batch, length, inFeatures]) { dy, w, mxu in
            mxu.multiply(dy, rows: rows, inner: outFeatures, w, cols: inFeatures, transposeB: true)
        }
    }

    /// dL/dw = x^T dL/dy: site `<layer>_grad_wt` (operands x `[batch, length, in]`, dL/dy
    /// `[batch, length, out]`, dL/dw `[in, out]`), and dL/db (column sums of dL/dy, vector
    /// unit) when the layer has a bias.
    public static func backwardWeight(x: [Float], dy: [Float], batch: Int, length: Int, inFeatures: Int, outFeatures: Int, bias: Bool,
                                      layer: String, unit: MatrixUnit) -> (dw: [Float], db: [Float]?) {
        let rows = batch * length
        precondition(x.count == rows * inFeatures && dy.count == rows * outFeatures, "\(layer): shapes do not match")
        let dw = unit.operation(SiteID(layer: layer, kind: .gradWt), input: x, inputShape: [batch, length, inFeatures],
                                weight: dy, weightShape: [batch, length, outFeatures], outputShape: [inFeatures, outFeatures]) { x, dy, mxu in
            mxu.multiply(x, rows: inFeatures, inner: rows, dy, cols: outFeatures, transposeA: true)
        }
        return (dw, bias ? Reduce.columnSums(dy, rows: rows, columns: outFeatures) : nil)
    }
}

/// The output projection onto the vocabulary with the embedding table shared
/// (`logits = y E^T`, the reference's `EmbeddingSharedWeights` in linear mode): y
/// `[batch, length, hidden]`, E `[vocabulary, hidden]` (the weight operand as stored), logits
/// `[batch, length, vocabulary]`.
public enum SharedOutputProjection {
    public static func forward(y: [Float], table: [Float], batch: Int, length: Int, hidden: Int, vocabulary: Int,
                               layer: String, unit: MatrixUnit) -> [Float] {
        let rows = batch * length
        precondition(y.count == rows * hidden && table.count == vocabulary * hidden, "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer, kind: .forward), input: y, inputShape: [batch, length, hidden],
                              weight: table, weightShape: [vocabulary, hidden], outputShape: [batch, length, vocabulary]) { y, e, mxu in
            mxu.multiply(y, rows: rows, inner: hidden, e, cols: vocabulary, transposeB: true)
        }
    }

    /// dL/dy = dL/dlogits E: site `<layer>_grad_in` (operands dL/dlogits, E, dL/dy).
    public static func backwardInput(dlogits: [Float], table: [Float], batch: Int, length: Int, hidden: Int, vocabulary: Int,
                                     layer: String, unit: MatrixUnit) -> [Float] {
        let rows = batch * length
        precondition(dlogits.count == rows * vocabulary && table.count == vocabulary * hidden, "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer, kind: .gradIn), input: dlogits, inputShape: [batch, length, vocabulary],
                              weight: table, weightShape: [vocabulary, hidden], outputShape: [batch, length, hidden]) { d, e, mxu in
            mxu.multiply(d, rows: rows, inner: vocabulary, e, cols: hidden)
        }
    }

    /// dL/dE = (y^T dL/dlogits)^T: site `<layer>_grad_wt` (operands y, dL/dlogits, dL/dE
    /// `[vocabulary, hidden]`); the MXU computes `hidden x vocabulary`, transposed after.
    public static func backwardWeight(y: [Float], dlogits: [Float], batch: Int, length: Int, hidden: Int, vocabulary: Int,
                                      layer: String, unit: MatrixUnit) -> [Float] {
        let rows = batch * length
        precondition(y.count == rows * hidden && dlogits.count == rows * vocabulary, "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer, kind: .gradWt), input: y, inputShape: [batch, length, hidden],
                              weight: dlogits, weightShape: [batch, length, vocabulary], outputShape: [vocabulary, hidden],
                              product: { y, d, mxu in mxu.multiply(y, rows: hidden, inner: rows, d, cols: vocabulary, transposeA: true) },
                              unlower: { transpose($0, rows: hidden, columns: vocabulary) })
    }
}

/// Splitting a projection's output into heads and merging them back (vector unit, data
/// movement only): `[batch, length, heads * depth]` <-> `[batch, heads, length, depth]`.
public enum Heads {
    /// Runs of `depth` values gathered in the output's order: per batch element and head,
    /// each position's slice of that head.
    public static func split(_ x: [Float], batch: Int, length: Int, heads: Int, depth: Int) -> [Float] {
        precondition(x.count == batch * length * heads * depth, "heads: shape does not match")
        return gatherRuns(of: x, length: depth, runs: batch * heads * length) { emit in
            for b in 0..<batch { for h in 0..<heads { for t in 0..<length { emit(((b * length + t) * heads + h) * depth) } } }
        }
    }

    /// Runs of `depth` values gathered in the output's order: per batch element and position,
    /// each head's slice of it.
    public static func merge(_ x: [Float], batch: Int, length: Int, heads: Int, depth: Int) -> [Float] {
        precondition(x.count == batch * length * heads * depth, "heads: shape does not match")
        return gatherRuns(of: x, length: depth, runs: batch * length * heads) { emit in
            for b in 0..<batch { for t in 0..<length { for h in 0..<heads { emit(((b * heads + h) * length + t) * depth) } } }
        }
    }
}

/// The two attention products of every head, each one MXU operation of `batch x heads`
/// independent products run in turn. Shapes (``AttentionShape``): queries Q and context C
/// `[batch, heads, queries, depth]`, keys K and values V `[batch, heads, keys, depth]`, scores
/// S and probabilities P `[batch, heads, queries, keys]`.
///
/// - scores `S = Q K^T` (site `<layer>_scores`; operands Q, K, S); `_grad_in` dQ = dS K
///   (operands dS, K, dQ); `_grad_wt` dK = dS^T Q (operands Q, dS, dK; the MXU computes
///   `Q^T dS`, `depth x keys` per head, transposed after);
/// - context `C = P V` (site `<layer>_context`; operands P, V, C); `_grad_in` dP = dC V^T
///   (operands dC, V, dP); `_grad_wt` dV = P^T dC (operands P, dC, dV).
///
/// The raw product of each is the heads' products stacked (`batch * heads * rows x columns`),
/// in (batch, head) order; the operation table lists it as that GEMM with
/// `products = batch * heads`, so that each product is scheduled, timed and struck by a
/// hardware fault on its own (``OperationSchedule``).
public struct AttentionShape: Sendable, Equatable {
    public var batch: Int
    public var heads: Int
    public var queries: Int
    public var keys: Int
    public var depth: Int

    public init(batch: Int, heads: Int, queries: Int, keys: Int, depth: Int) {
        self.batch = batch
        self.heads = heads
        self.queries = queries
        self.keys = keys
        self.depth = depth
    }

    var groups: Int { batch * heads }
    public var queryShape: [Int] { [batch, heads, queries, depth] }
    public var keyShape: [Int] { [batch, heads, keys, depth] }
    public var scoreShape: [Int] { [batch, heads, queries, keys] }
}

public enum AttentionProducts {
    /// Transposes each of `groups` stacked `rows x columns` matrices.
    static func transposeEach(_ x: [Float], groups: Int, rows: Int, columns: Int) -> [Float] {
        precondition(x.count == groups * rows * columns, "transpose: shape does not match")
        var out = [Float].uninitialized(x.count)
        out.withUnsafeMutableBufferPointer { po in
            x.withUnsafeBufferPointer { px in
                guard let to = po.baseAddress, let from = px.baseAddress else { return }
                for g in 0..<groups { transpose(from + g * rows * columns, rows: rows, columns: columns, into: to + g * rows * columns) }
            }
        }
        return out
    }

    public static func scores(q: [Float], k: [Float], shape s: AttentionShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(q.count == s.queryShape.reduce(1, *) && k.count == s.keyShape.reduce(1, *), "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer + "_scores", kind: .forward), input: q, inputShape: s.queryShape, weight: k, weightShape: s.keyShape,
                              outputShape: s.scoreShape) { q, k, mxu in
            mxu.multiply(q, rows: s.queries, inner: s.depth, k, cols: s.keys, transposeB: true, products: s.groups)
        }
    }

    public static func scoresBackwardQuery(dS: [Float], k: [Float], shape s: AttentionShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(dS.count == s.scoreShape.reduce(1, *) && k.count == s.keyShape.reduce(1, *), "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer + "_scores", kind: .gradIn), input: dS, inputShape: s.scoreShape, weight: k, weightShape: s.keyShape,
                              outputShape: s.queryShape) { d, k, mxu in
            mxu.multiply(d, rows: s.queries, inner: s.keys, k, cols: s.depth, products: s.groups)
        }
    }

    public static func scoresBackwardKey(q: [Float], dS: [Float], shape s: AttentionShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(dS.count == s.scoreShape.reduce(1, *) && q.count == s.queryShape.reduce(1, *), "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer + "_scores", kind: .gradWt), input: q, inputShape: s.queryShape, weight: dS, weightShape: s.scoreShape,
                              outputShape: s.keyShape,
                              product: { q, d, mxu in mxu.multiply(q, rows: s.depth, inner: s.queries, d, cols: s.keys, transposeA: true, products: s.groups) },
                              unlower: { transposeEach($0, groups: s.groups, rows: s.depth, columns: s.keys) })
    }

    public static func context(p: [Float], v: [Float], shape s: AttentionShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(p.count == s.scoreShape.reduce(1, *) && v.count == s.keyShape.reduce(1, *), "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer + "_context", kind: .forward), input: p, inputShape: s.scoreShape, weight: v, weightShape: s.keyShape,
                              outputShape: s.queryShape) { p, v, mxu in
            mxu.multiply(p, rows: s.queries, inner: s.keys, v, cols: s.depth, products: s.groups)
        }
    }

    public static func contextBackwardProbabilities(dC: [Float], v: [Float], shape s: AttentionShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(dC.count == s.queryShape.reduce(1, *) && v.count == s.keyShape.reduce(1, *), "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer + "_context", kind: .gradIn), input: dC, inputShape: s.queryShape, weight: v, weightShape: s.keyShape,
                              outputShape: s.scoreShape) { d, v, mxu in
            mxu.multiply(d, rows: s.queries, inner: s.depth, v, cols: s.keys, transposeB: true, products: s.groups)
        }
    }

    public static func contextBackwardValues(p: [Float], dC: [Float], shape s: AttentionShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(p.count == s.scoreShape.reduce(1, *) && dC.count == s.queryShape.reduce(1, *), "\(layer): shapes do not match")
        return unit.operation(SiteID(layer: layer + "_context", kind: .gradWt), input: p, inputShape: s.scoreShape, weight: dC, weightShape: s.queryShape,
                              outputShape: s.keyShape) { p, d, mxu in
            mxu.multiply(p, rows: s.keys, inner: s.queries, d, cols: s.depth, transposeA: true, products: s.groups)
        }
    }
}

/// Which attention scores are masked: the reference adds a bias of -1e9 to them before the
/// softmax (so a masked score's probability is exactly 0 unless all of a row's are masked).
public struct AttentionMask: Sendable, Equatable {
    /// Key `j` is masked for query `i` when `j > i` (decoder self-attention).
    public var causal: Bool
    /// Per batch element and key, whether the key is padding (token 0): `[batch, keys]`, or
    /// nil for no padding mask.
    public var padding: [Bool]?

    public init(causal: Bool, padding: [Bool]?) {
        self.causal = causal
        self.padding = padding
    }

    /// The padding mask of token sequences `[batch, length]`: token 0 is padding.
    public static func padding(tokens: [Int32]) -> [Bool] { tokens.map { $0 == 0 } }

    public static let bias: Float = -1e9
}

/// Softmax over the keys of scores `[batch, heads, queries, keys]` with a mask; exponentials
/// are ``DeterministicMath/exp(_:)``'s, sums in key order.
public enum MaskedSoftmax {
    public static func forward(_ scores: [Float], shape s: AttentionShape, mask: AttentionMask) -> [Float] {
        precondition(scores.count == s.scoreShape.reduce(1, *), "softmax: shape does not match")
        precondition(mask.padding.map { $0.count == s.batch * s.keys } ?? true, "softmax: padding mask shape does not match")
        let keys = s.keys, bias = AttentionMask.bias
        let padded = mask.padding ?? [], hasPadding = mask.padding != nil
        var row = [Float](repeating: 0, count: keys)
        return [Float](unsafeUninitializedCapacity: scores.count) { out, written in
            written = scores.count
            scores.withUnsafeBufferPointer { ps in row.withUnsafeMutableBufferPointer { pr in padded.withUnsafeBufferPointer { pp in
                guard let src = ps.baseAddress, let dst = out.baseAddress, let e = pr.baseAddress else { return }
                for b in 0..<s.batch { for h in 0..<s.heads { for i in 0..<s.queries {
                    let base = ((b * s.heads + h) * s.queries + i) * keys
                    let (scoreRow, outRow) = (src + base, dst + base)
                    // The score plus the causal bias, then the padding bias, each added only
                    // where it applies (so a -0 score stays -0); the maximum by `Swift.max`'s
                    // rule (a NaN never becomes it).
                    var maxv = -Float.infinity
                    let padRow = hasPadding ? pp.baseAddress.map { $0 + b * keys } : nil
                    // 16 keys at a time, each lane keeping its own maximum (a NaN never
                    // replaces it). Which of two equal zeros ends as the maximum may differ
                    // from the scalar rule's, but only in sign, and v - (+0) and v - (-0)
                    // have the same exponential: the bits are the scalar loop's.
                    var j = 0
                    if keys >= 16 {
                        var lanesMax = SIMD16<Float>(repeating: -.infinity)
                        let lane = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
                        while j + 16 <= keys {
                            var v = UnsafeRawPointer(scoreRow + j).loadUnaligned(as: SIMD16<Float>.self)
                            // Lane masks by arithmetic, all ones where the bias applies (integer
                            // SIMD comparisons are lane-by-lane code in the AVX2 build): key
                            // `j + lane` is after query `i` where `i - j - lane` is negative.
                            if mask.causal { v = biased(v, where: (SIMD16<Int32>(repeating: Int32(i - j)) &- lane) &>> 31) }
                            if let padRow {
                                // A Bool is one byte, 0 or 1: negated, all ones or zero.
                                let flags = UnsafeRawPointer(padRow + j).loadUnaligned(as: SIMD16<UInt8>.self)
                                v = biased(v, where: 0 &- SIMD16<Int32>(truncatingIfNeeded: flags))
                            }
                            UnsafeMutableRawPointer(e + j).storeBytes(of: v, as: SIMD16<Float>.self)
                            lanesMax = lanesMax.replacing(with: v, where: v .> lanesMax)
                            j += 16
                        }
                        for l in 0..<16 where lanesMax[l] > maxv { maxv = lanesMax[l] }
                    }
                    while j < keys {
                        var v = scoreRow[j]
                        if mask.causal && j > i { v += bias }
                        if let padRow, padRow[j] { v += bias }
                        e[j] = v
                        maxv = Swift.max(maxv, v)
                        j += 1
                    }
                    // The exponentials, their sum in key order, then each divided by the sum.
                    let sum = shiftedExponentials(e, minus: maxv, count: keys, into: e)
                    let total = SIMD16<Float>(repeating: sum)
                    j = 0
                    while j + 16 <= keys {
                        let q = UnsafeRawPointer(e + j).loadUnaligned(as: SIMD16<Float>.self) / total
                        UnsafeMutableRawPointer(outRow + j).storeBytes(of: q, as: SIMD16<Float>.self)
                        j += 16
                    }
                    while j < keys {
                        outRow[j] = e[j] / sum
                        j += 1
                    }
                } } }
            } } }
        }
    }

    /// `v + bias` in the lanes where `mask` is all ones, `v` (bit for bit) where it is zero.
    @inline(__always)
    private static func biased(_ v: SIMD16<Float>, where mask: SIMD16<Int32>) -> SIMD16<Float> {
        let plain = unsafeBitCast(v, to: SIMD16<Int32>.self)
        let withBias = unsafeBitCast(v + AttentionMask.bias, to: SIMD16<Int32>.self)
        return unsafeBitCast((plain & ~mask) | (withBias & mask), to: SIMD16<Float>.self)
    }

    /// dL/dscores from dL/dP and the forward output P: `P * (dP - sum_j dP_j P_j)` per row.
    /// (A masked score's bias is a constant: its gradient is that of the score.)
    public static func backward(dP: [Float], p: [Float], keys: Int) -> [Float] {
        precondition(dP.count == p.count && p.count % keys == 0, "softmax: shapes do not match")
        var out = [Float].uninitialized(p.count)
        out.withUnsafeMutableBufferPointer { po in dP.withUnsafeBufferPointer { pd in p.withUnsafeBufferPointer { pp in
            guard let o = po.baseAddress, let d = pd.baseAddress, let q = pp.baseAddress else { return }
            for r in 0..<(pp.count / keys) {
                let (outRow, dRow, pRow) = (o + r * keys, d + r * keys, q + r * keys)
                var dot: Float = 0
                for j in 0..<keys { dot += dRow[j] * pRow[j] }
                for j in 0..<keys { outRow[j] = pRow[j] * (dRow[j] - dot) }
            }
        } } }
        return out
    }
}

/// Layer normalisation over the last axis of `[rows, features]`: `y = (x - mean) * rstd *
/// gamma + beta`, `rstd = rsqrt(var + epsilon)` (``DeterministicMath/rsqrt(_:)``), the
/// variance the biased one; sums in feature order.
public enum LayerNorm {
    /// What the backward needs: the normalised input and each row's rstd.
    public struct Cache: Sendable {
        public var normalized: [Float]
        public var rstd: [Float]
    }

    public static func forward(_ x: [Float], gamma: [Float], beta: [Float], rows: Int, features: Int, epsilon: Float) -> (y: [Float], cache: Cache) {
        precondition(x.count == rows * features && gamma.count == features && beta.count == features, "layer norm: shapes do not match")
        var y = [Float].uninitialized(x.count), xhat = [Float].uninitialized(x.count)
        var rstds = [Float].uninitialized(rows)
        let n = Float(features)
        y.withUnsafeMutableBufferPointer { py in xhat.withUnsafeMutableBufferPointer { ph in rstds.withUnsafeMutableBufferPointer { pr in
            x.withUnsafeBufferPointer { px in gamma.withUnsafeBufferPointer { g in beta.withUnsafeBufferPointer { bt in
                guard let yOut = py.baseAddress, let hOut = ph.baseAddress, let from = px.baseAddress else { return }
                for r in 0..<rows {
                    let (xr, hr, yr) = (from + r * features, hOut + r * features, yOut + r * features)
                    var sum: Float = 0
                    for j in 0..<features { sum += xr[j] }
                    let mean = sum / n
                    var sq: Float = 0
                    for j in 0..<features { let d = xr[j] - mean; sq += d * d }
                    let rstd = DeterministicMath.rsqrt(sq / n + epsilon)
                    pr[r] = rstd
                    for j in 0..<features {
                        let h = (xr[j] - mean) * rstd
                        hr[j] = h
                        yr[j] = h * g[j] + bt[j]
                    }
                }
            } } }
        } } }
        return (y, Cache(normalized: xhat, rstd: rstds))
    }

    /// dL/dx, dL/dgamma, dL/dbeta: `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))` with
    /// `g = dy * gamma`; the parameter gradients are column sums.
    public static func backward(dy: [Float], cache: Cache, gamma: [Float], rows: Int, features: Int) -> (dx: [Float], dgamma: [Float], dbeta: [Float]) {
        precondition(dy.count == rows * features && cache.normalized.count == dy.count && gamma.count == features
                     && cache.rstd.count == rows, "layer norm: shapes do not match")
        var dx = [Float].uninitialized(dy.count)
        let n = Float(features)
        dx.withUnsafeMutableBufferPointer { po in dy.withUnsafeBufferPointer { pdy in cache.normalized.withUnsafeBufferPointer { ph in
            gamma.withUnsafeBufferPointer { gm in cache.rstd.withUnsafeBufferPointer { rs in
                guard let o = po.baseAddress, let d = pdy.baseAddress, let h = ph.baseAddress else { return }
                for r in 0..<rows {
                    let (dxr, dyr, hr) = (o + r * features, d + r * features, h + r * features)
                    var sg: Float = 0, sgx: Float = 0
                    for j in 0..<features {
                        let g = dyr[j] * gm[j]
                        sg += g
                        sgx += g * hr[j]
                    }
                    let mg = sg / n, mgx = sgx / n
                    for j in 0..<features {
                        let g = dyr[j] * gm[j]
                        dxr[j] = rs[r] * (g - mg - hr[j] * mgx)
                    }
                }
            } }
        } } }
        // dgamma: the column sums of dy * xhat, formed as they are added (no array of them).
        let dgamma = dy.withUnsafeBufferPointer { pdy in cache.normalized.withUnsafeBufferPointer { ph in
            guard let d = pdy.baseAddress, let h = ph.baseAddress else { return [Float](repeating: 0, count: features) }
            return Reduce.columnSums(rows: rows, columns: features, order: .sequential) { r, c in (d + r * features)[c] * (h + r * features)[c] }
        } }
        return (dx, dgamma, Reduce.columnSums(dy, rows: rows, columns: features))
    }
}

/// The token embedding of the shared table `E [vocabulary, hidden]`: a lookup scaled by
/// `sqrt(hidden)`, padding tokens (0) giving zeros, as the reference's
/// `EmbeddingSharedWeights`.
public enum TokenEmbedding {
    public static func forward(tokens: [Int32], table: [Float], hidden: Int) -> [Float] {
        precondition(table.count % hidden == 0, "embedding: table shape does not match")
        let vocabulary = table.count / hidden, scale = Float(Double(hidden).squareRoot())
        var out = [Float](repeating: 0, count: tokens.count * hidden)
        for (i, t) in tokens.enumerated() where t != 0 {
            precondition(Int(t) < vocabulary && t > 0, "embedding: token \(t) is outside 0..<\(vocabulary)")
            for d in 0..<hidden { out[i * hidden + d] = table[Int(t) * hidden + d] * scale }
        }
        return out
    }

    /// Adds dL/dE of the lookup to `dtable`, token by token in order.
    public static func backward(dy: [Float], tokens: [Int32], hidden: Int, into dtable: inout [Float]) {
        precondition(dy.count == tokens.count * hidden, "embedding: shapes do not match")
        let scale = Float(Double(hidden).squareRoot())
        for (i, t) in tokens.enumerated() where t != 0 {
            for d in 0..<hidden { dtable[Int(t) * hidden + d] += dy[i * hidden + d] * scale }
        }
    }
}

/// The reference's sinusoidal positions (`get_position_encoding`): for position p and
/// `i < hidden / 2`, `sin(p * inv_i)` in column `i` and `cos(p * inv_i)` in column
/// `hidden / 2 + i`, `inv_i = exp(-i * ln(1e4) / max(hidden / 2 - 1, 1))` in fp32 (with
/// ``DeterministicMath/exp(_:)``). Sine and cosine are computed in double precision from IEEE
/// operations only (a reduction by pi/2 in three parts and Taylor series), rounded once to
/// fp32: the same bits on every machine.
public enum PositionEncoding {
    public static func table(length: Int, hidden: Int) -> [Float] {
        precondition(hidden % 2 == 0, "positions: hidden must be even")
        let half = hidden / 2
        let increment = Float(9.210340371976184 / Double(max(half - 1, 1)))  // ln(1e4)
        let inv = (0..<half).map { DeterministicMath.exp(Float(-$0) * increment) }
        var out = [Float](repeating: 0, count: length * hidden)
        for p in 0..<length {
            for i in 0..<half {
                let t = Double(Float(p) * inv[i])
                let (sine, cosine) = sinCos(t)
                out[p * hidden + i] = Float(sine)
                out[p * hidden + half + i] = Float(cosine)
            }
        }
        return out
    }

    /// sin and cos for `|x| <= 2^20`, by reduction to `[-pi/4, pi/4]`.
    static func sinCos(_ x: Double) -> (sin: Double, cos: Double) {
        precondition(abs(x) <= 0x1p20, "positions: argument out of range")
        // pi/2 in three parts (Cody and Waite): each product k * part is exact for |k| < 2^20.
        let p1 = 1.57079632673412561417, p2 = 6.07710050630396597660e-11, p3 = 2.02226624871116645580e-21
        let k = (x * 0.6366197723675814).rounded()
        let r = ((x - k * p1) - k * p2) - k * p3
        let r2 = r * r
        // Taylor series to r^17 / r^16: truncation below 2^-60 for |r| <= pi/4.
        var s = 1.0 / 355687428096000.0
        for d in [-1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800.0, 1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0, 1.0] {
            s = s * r2 + d
        }
        s *= r
        var c = 1.0 / 20922789888000.0
        for d in [-1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0, -1.0 / 2.0, 1.0] {
            c = c * r2 + d
        }
        switch Int(k) & 3 {
        case 0: return (s, c)
        case 1: return (c, -s)
        case 2: return (-s, -c)
        default: return (-c, s)
        }
    }
}

/// Label-smoothed softmax cross-entropy over target tokens, as the reference's
/// `padded_cross_entropy_loss`: soft targets `1 - smoothing` on the label and
/// `smoothing / (vocabulary - 1)` elsewhere, minus the soft targets' own entropy (so a perfect
/// prediction scores 0), averaged over the non-padding labels (label 0 is padding).
public enum LabelSmoothedCrossEntropy {
    /// Mean loss, the non-padding positions whose largest logit is the label, and dL/dlogits.
    public static func forwardBackward(logits: [Float], labels: [Int32], vocabulary: Int, smoothing: Float)
        -> (loss: Float, correct: Int, dlogits: [Float]) {
        precondition(logits.count == labels.count * vocabulary && vocabulary >= 2, "cross-entropy: shapes do not match")
        precondition(smoothing >= 0 && smoothing < 1, "cross-entropy: smoothing must be in [0, 1)")
        let confidence = 1 - smoothing, low = smoothing / Float(vocabulary - 1)
        // The soft targets' entropy: -(c log c + (V - 1) l log(l + 1e-20)), as the reference.
        let constant = -(confidence * DeterministicMath.log(confidence) + Float(vocabulary - 1) * low * DeterministicMath.log(low + 1e-20))
        let weights = labels.map { $0 == 0 ? Float(0) : 1 }
        let total = Reduce.sum(weights)
        let denominator = Swift.max(total, 1)
        var losses = [Float](repeating: 0, count: labels.count)
        var dlogits = [Float](repeating: 0, count: logits.count)
        var correct = 0
        logits.withUnsafeBufferPointer { pl in dlogits.withUnsafeMutableBufferPointer { pd in
            guard let logitRows = pl.baseAddress, let gradientRows = pd.baseAddress else { return }
            for i in labels.indices where labels[i] != 0 {
                let (x, d) = (logitRows + i * vocabulary, gradientRows + i * vocabulary), label = Int(labels[i])
                precondition((0..<vocabulary).contains(label), "cross-entropy: label \(label) is outside 0..<\(vocabulary)")
                var maxv = x[0], arg = 0
                for j in 1..<vocabulary where x[j] > maxv || (x[j].isNaN && !maxv.isNaN) {
                    maxv = x[j]
                    arg = j
                }
                if arg == label && !maxv.isNaN { correct += 1 }
                let sum = shiftedExponentials(x, minus: maxv, count: vocabulary, into: d)
                let logSum = DeterministicMath.log(sum) + maxv
                var loss: Float = 0
                for j in 0..<vocabulary {
                    let target = j == label ? confidence : low
                    loss += target * (logSum - x[j])
                    d[j] = (d[j] / sum - target) / denominator
                }
                losses[i] = loss - constant
            }
        } }
        return (Reduce.sum(losses) / denominator, correct, dlogits)
    }
}

/// `out[j] = exp(x[j] - shift)` for `count` values, 16 at a time (each lane the scalar
/// ``DeterministicMath/exp(_:)``'s bits), and their sum in index order. `out` may be `x`.
@inline(__always)
func shiftedExponentials(_ x: UnsafePointer<Float>, minus shift: Float, count: Int, into out: UnsafeMutablePointer<Float>) -> Float {
    let lanes = SIMD16<Float>(repeating: shift)
    var j = 0
    while j + 16 <= count {
        let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self) - lanes
        UnsafeMutableRawPointer(out + j).storeBytes(of: DeterministicMath.exp(v), as: SIMD16<Float>.self)
        j += 16
    }
    while j < count {
        out[j] = DeterministicMath.exp(x[j] - shift)
        j += 1
    }
    var sum: Float = 0
    for j in 0..<count { sum += out[j] }
    return sum
}
