/// Depthwise 2-D convolution (depth multiplier 1) on the vector unit, in fp32: every channel
/// convolved with its own `Fh x Fw` filter. Shapes are a ``ConvShape`` with
/// `inChannels == outChannels == C`; the kernel is `[Fh, Fw, C, 1]` (Keras's layout).
///
/// Why the vector unit (``ExecutionUnit/vector``): each output element is `Fh * Fw`
/// multiply-adds over one channel, with nothing for a systolic array to share; a 128-wide MXU
/// pass would hold one useful column. So the simulator runs it on the vector unit: its cost is
/// vector-unit cycles, no PE-register fault reaches it, and its operands are not rounded to
/// the MXU's operand format. It is an injection site like every other operation
/// (`<layer>_depthwise`, `_grad_in`, `_grad_wt`), through ``MatrixUnit/operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)``.
///
/// Every sum runs from +0 in a fixed order, one fp32 multiply and one add per term (no fused
/// multiply-add): taps in `(fh, fw)` order; for the weight gradient, `(i, j, n)` order. A
/// padding tap multiplies a zero by the weight, as the MXU's convolutions do, so a non-finite
/// weight spreads to the border as it would there.
///
/// The backward operations present their operands as the reference's depthwise backward does:
/// - `_grad_in`: input dL/dy dilated and padded, `[N, H + Fh - 1, W + Fw - 1, C]`, as a
///   convolution's (``ConvShape/gradientInputConvolution``); weight the kernel rotated by 180
///   degrees, `[Fh, Fw, C, 1]` (no channel swap: there is one channel per filter); output
///   dL/dx `[N, H, W, C]`; a stride-1 VALID depthwise convolution.
/// - `_grad_wt`: input the padded forward input transposed to `[C, Hp, Wp, N]` and weight
///   dL/dy dilated as `[Lh, Lw, N, C]`, as a convolution's (``ConvShape/gradientWeightConvolution``);
///   output `[C, Fh, Fw, 1]`, dL/dW before it is transposed back to `[Fh, Fw, C, 1]`: the
///   diagonal (channel c with channel c) of the product the reference computes in full and
///   then slices.
public enum DepthwiseConv2D {
    /// The kernel's shape.
    public static func weightShape(_ s: ConvShape) -> [Int] { [s.filterH, s.filterW, s.inChannels, 1] }

    /// The operation table's entries of a depthwise layer `name`: forward, then `_grad_in`
    /// (unless not `needInput`) and `_grad_wt`, all on the vector unit. Each `gemm` counts the
    /// multiply-accumulates (`rows x taps x C`); `vector` is the operation's own multiply-adds
    /// (2 per term) plus `epilogue` ops per output element (batch norm, activations) and the
    /// epilogue's per-channel `reductions`.
    static func operations(_ name: String, shape s: ConvShape, needInput: Bool = true, epilogue: Int, reductions: Int,
                           backwardEpilogue: Int, backwardReductions: Int) -> (forward: MXUOperation, backward: [MXUOperation]) {
        precondition(s.inChannels == s.outChannels, "\(name): a depthwise convolution keeps its channels")
        let c = s.inChannels, taps = s.filterH * s.filterW
        let gi = s.gradientInputConvolution, gw = s.gradientWeightConvolution
        func op(_ kind: OperationKind, _ gemm: GEMMShape, _ input: [Int], _ weight: [Int], _ output: [Int], epilogue: Int, reductions: Int) -> MXUOperation {
            let outputs = output.reduce(1, *)
            let traffic = HBMTraffic(operandElements: input.reduce(1, *) + weight.reduce(1, *), resultElements: outputs)
            return MXUOperation(site: SiteID(layer: name, kind: kind), gemm: gemm, inputShape: input, weightShape: weight, outputShape: output,
                                hbmTraffic: traffic,
                                vector: VectorWork(elements: outputs, opsPerElement: 2 * gemm.k + epilogue, reductions: reductions, reductionOutputs: c),
                                unit: .vector)
        }
        let forward = op(.forward, GEMMShape(m: s.batch * s.outH * s.outW, k: taps, n: c), s.inputShape, weightShape(s), s.outputShape,
                         epilogue: epilogue, reductions: reductions)
        var backward: [MXUOperation] = []
        if needInput {
            backward.append(op(.gradIn, GEMMShape(m: s.batch * s.inH * s.inW, k: taps, n: c), gi.inputShape, weightShape(s), gi.outputShape,
                               epilogue: backwardEpilogue, reductions: backwardReductions))
        }
        // The weight gradient: taps x (Lh * Lw * N) terms per channel; its Adam update (~12 ops).
        backward.append(op(.gradWt, GEMMShape(m: taps, k: gw.filterH * gw.filterW * s.batch, n: c), gw.inputShape, gw.weightShape,
                           [c, s.filterH, s.filterW, 1], epilogue: 12, reductions: 0))
        return (forward, backward)
    }

    /// `x` `[N, H, W, C]` convolved with `w` `[Fh, Fw, C, 1]`: `[N, Ho, Wo, C]`.
    public static func forward(x: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(s.inChannels == s.outChannels && x.count == s.inputShape.reduce(1, *) && w.count == s.filterH * s.filterW * s.inChannels,
                     "\(layer): depthwise operands do not match \(s)")
        return unit.operation(SiteID(layer: layer, kind: .forward), input: x, inputShape: s.inputShape, weight: w, weightShape: weightShape(s),
                              outputShape: s.outputShape) { x, w, _ in
            Product(values: convolve(x, w, s), rows: s.batch * s.outH * s.outW, columns: s.outChannels)
        }
    }

    /// dL/dx from dL/dy `[N, Ho, Wo, C]` (the `_grad_in` operation, reference layout).
    public static func backwardInput(dy: [Float], w: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(s.supportsReferenceBackward, "\(layer): the reference backward layout needs odd filters and SAME-style padding")
        let g = s.gradientInputConvolution
        // w[fh, fw, c] -> rotated[Fh-1-fh, Fw-1-fw, c].
        var rotated = [Float](repeating: 0, count: w.count)
        for fh in 0..<s.filterH {
            for fw in 0..<s.filterW {
                for c in 0..<s.inChannels {
                    rotated[((s.filterH - 1 - fh) * s.filterW + s.filterW - 1 - fw) * s.inChannels + c] = w[(fh * s.filterW + fw) * s.inChannels + c]
                }
            }
        }
        return unit.operation(SiteID(layer: layer, kind: .gradIn), input: Conv2D.gradientInputOperand(dy, s), inputShape: g.inputShape,
                              weight: rotated, weightShape: weightShape(s), outputShape: g.outputShape) { x, w, _ in
            Product(values: convolve(x, w, g), rows: g.batch * g.outH * g.outW, columns: g.outChannels)
        }
    }

    /// dL/dW `[Fh, Fw, C, 1]` from the forward input and dL/dy (the `_grad_wt` operation,
    /// reference layout).
    public static func backwardWeight(x: [Float], dy: [Float], shape s: ConvShape, layer: String, unit: MatrixUnit) -> [Float] {
        precondition(s.supportsReferenceBackward, "\(layer): the reference backward layout needs odd filters and SAME-style padding")
        let g = s.gradientWeightConvolution, channels = s.inChannels, taps = s.filterH * s.filterW
        let dw = unit.operation(SiteID(layer: layer, kind: .gradWt), input: Conv2D.gradientWeightInput(x, s), inputShape: g.inputShape,
                                weight: Conv2D.gradientWeightKernel(dy, s), weightShape: g.weightShape,
                                outputShape: [channels, s.filterH, s.filterW, 1]) { input, kernel, _ in
            Product(values: weightGradient(input, kernel, s), rows: channels, columns: taps)
        }
        // [C, Fh, Fw, 1] -> [Fh, Fw, C, 1].
        var out = [Float](repeating: 0, count: dw.count)
        for c in 0..<channels {
            for t in 0..<taps { out[t * channels + c] = dw[c * taps + t] }
        }
        return out
    }

    /// The convolution itself: `out[n, oh, ow, c] = sum over (fh, fw) of x[n, ih, iw, c] * w[fh, fw, c]`
    /// with `ih = oh * strideH + fh - padTop` (likewise `iw`), `x = 0` outside the input.
    ///
    /// Per output pixel, 32 (then 8, then 1) channels at a time are summed in registers over
    /// every tap and stored once; each lane is one output element's sum in the scalar order.
    static func convolve(_ x: [Float], _ w: [Float], _ s: ConvShape) -> [Float] {
        let c = s.inChannels, taps = s.filterH * s.filterW
        let count = s.batch * s.outH * s.outW * c
        return [Float](unsafeUninitializedCapacity: count) { out, written in
            x.withUnsafeBufferPointer { px in
                w.withUnsafeBufferPointer { pw in
                    guard let xs = px.baseAddress, let ws = pw.baseAddress, let os = out.baseAddress else { return }
                    // Per tap of the current pixel: the offset of its C values in x, or -1 for padding.
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: taps) { offsets in
                        for n in 0..<s.batch {
                            for oh in 0..<s.outH {
                                for ow in 0..<s.outW {
                                    for fh in 0..<s.filterH {
                                        let ih = oh * s.strideH + fh - s.padTop
                                        for fw in 0..<s.filterW {
                                            let iw = ow * s.strideW + fw - s.padLeft
                                            let inside = ih >= 0 && ih < s.inH && iw >= 0 && iw < s.inW
                                            offsets[fh * s.filterW + fw] = inside ? ((n * s.inH + ih) * s.inW + iw) * c : -1
                                        }
                                    }
                                    pixel(xs, ws, os + ((n * s.outH + oh) * s.outW + ow) * c, offsets, taps: taps, channels: c)
                                }
                            }
                        }
                    }
                }
            }
            written = count
        }
    }

    /// One output pixel of ``convolve(_:_:_:)``: `out[k] = sum over taps t of x[offsets[t] + k] * w[t * C + k]`,
    /// a padding tap (offset -1) adding `0 * w`.
    @inline(__always)
    private static func pixel(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                              _ offsets: UnsafeMutableBufferPointer<Int>, taps: Int, channels c: Int) {
        typealias V = SIMD8<Float>
        let zero = V()
        var k = 0
        while k + 32 <= c {
            var a0 = zero, a1 = zero, a2 = zero, a3 = zero
            for t in 0..<taps {
                let wp = UnsafeRawPointer(w + t * c + k)
                let (w0, w1) = (wp.loadUnaligned(as: V.self), wp.loadUnaligned(fromByteOffset: 32, as: V.self))
                let (w2, w3) = (wp.loadUnaligned(fromByteOffset: 64, as: V.self), wp.loadUnaligned(fromByteOffset: 96, as: V.self))
                let o = offsets[t]
                if o >= 0 {
                    let xp = UnsafeRawPointer(x + o + k)
                    a0 = a0 + xp.loadUnaligned(as: V.self) * w0
                    a1 = a1 + xp.loadUnaligned(fromByteOffset: 32, as: V.self) * w1
                    a2 = a2 + xp.loadUnaligned(fromByteOffset: 64, as: V.self) * w2
                    a3 = a3 + xp.loadUnaligned(fromByteOffset: 96, as: V.self) * w3
                } else {
                    a0 = a0 + zero * w0
                    a1 = a1 + zero * w1
                    a2 = a2 + zero * w2
                    a3 = a3 + zero * w3
                }
            }
            let op = UnsafeMutableRawPointer(out + k)
            op.storeBytes(of: a0, as: V.self)
            op.storeBytes(of: a1, toByteOffset: 32, as: V.self)
            op.storeBytes(of: a2, toByteOffset: 64, as: V.self)
            op.storeBytes(of: a3, toByteOffset: 96, as: V.self)
            k += 32
        }
        while k + 8 <= c {
            var a = zero
            for t in 0..<taps {
                let wv = UnsafeRawPointer(w + t * c + k).loadUnaligned(as: V.self)
                let o = offsets[t]
                a = a + (o >= 0 ? UnsafeRawPointer(x + o + k).loadUnaligned(as: V.self) : zero) * wv
            }
            UnsafeMutableRawPointer(out + k).storeBytes(of: a, as: V.self)
            k += 8
        }
        while k < c {
            var a: Float = 0
            for t in 0..<taps {
                let o = offsets[t]
                a += (o >= 0 ? x[o + k] : 0) * w[t * c + k]
            }
            out[k] = a
            k += 1
        }
    }

    /// The `_grad_wt` product: `out[c, fh, fw] = sum over (i, j, n) of input[c, fh + i, fw + j, n] * kernel[i, j, n, c]`,
    /// `input` `[C, Hp, Wp, N]` and `kernel` `[Lh, Lw, N, C]` as ``ConvShape/gradientWeightConvolution``
    /// has them. The input is first transposed to `[Hp, Wp, N, C]` (a copy of the same values),
    /// so that 32 (then 8, then 1) channels run side by side in registers, each lane one output
    /// element's sum in the scalar order.
    static func weightGradient(_ input: [Float], _ kernel: [Float], _ s: ConvShape) -> [Float] {
        let g = s.gradientWeightConvolution, c = s.inChannels, n = s.batch
        let (hp, wp, lh, lw) = (g.inH, g.inW, g.filterH, g.filterW)
        let plane = hp * wp * n
        // Channels last, so that each position's channels are one vector (8 x 8 blocks).
        let t = transpose(input, rows: c, columns: plane)
        let taps = s.filterH * s.filterW
        let count = c * taps
        let out = [Float](unsafeUninitializedCapacity: count) { out, written in
            t.withUnsafeBufferPointer { pt in
                kernel.withUnsafeBufferPointer { pk in
                    guard let xs = pt.baseAddress, let ks = pk.baseAddress, let os = out.baseAddress else { return }
                    typealias V = SIMD8<Float>
                    for fh in 0..<s.filterH {
                        for fw in 0..<s.filterW {
                            // Term (i, j, b) of channel ch: xs[((fh + i) * wp + fw + j) * n + b) * c + ch] * ks[((i * lw + j) * n + b) * c + ch].
                            @inline(__always) func terms(_ body: (_ x: UnsafePointer<Float>, _ k: UnsafePointer<Float>) -> Void) {
                                for i in 0..<lh {
                                    for j in 0..<lw {
                                        let xr = xs + (((fh + i) * wp + fw + j) * n) * c, kr = ks + ((i * lw + j) * n) * c
                                        for b in 0..<n { body(xr + b * c, kr + b * c) }
                                    }
                                }
                            }
                            let tap = fh * s.filterW + fw
                            var ch = 0
                            while ch + 32 <= c {
                                var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                                terms { x, k in
                                    let xp = UnsafeRawPointer(x + ch), kp = UnsafeRawPointer(k + ch)
                                    a0 = a0 + xp.loadUnaligned(as: V.self) * kp.loadUnaligned(as: V.self)
                                    a1 = a1 + xp.loadUnaligned(fromByteOffset: 32, as: V.self) * kp.loadUnaligned(fromByteOffset: 32, as: V.self)
                                    a2 = a2 + xp.loadUnaligned(fromByteOffset: 64, as: V.self) * kp.loadUnaligned(fromByteOffset: 64, as: V.self)
                                    a3 = a3 + xp.loadUnaligned(fromByteOffset: 96, as: V.self) * kp.loadUnaligned(fromByteOffset: 96, as: V.self)
                                }
                                for l in 0..<8 {
                                    (os + (ch + l) * taps + tap).initialize(to: a0[l])
                                    (os + (ch + 8 + l) * taps + tap).initialize(to: a1[l])
                                    (os + (ch + 16 + l) * taps + tap).initialize(to: a2[l])
                                    (os + (ch + 24 + l) * taps + tap).initialize(to: a3[l])
                                }
                                ch += 32
                            }
                            while ch + 8 <= c {
                                var a = V()
                                terms { x, k in
                                    a = a + UnsafeRawPointer(x + ch).loadUnaligned(as: V.self) * UnsafeRawPointer(k + ch).loadUnaligned(as: V.self)
                                }
                                for l in 0..<8 { (os + (ch + l) * taps + tap).initialize(to: a[l]) }
                                ch += 8
                            }
                            while ch < c {
                                var a: Float = 0
                                terms { x, k in a += x[ch] * k[ch] }
                                (os + ch * taps + tap).initialize(to: a)
                                ch += 1
                            }
                        }
                    }
                }
            }
            written = count
        }
        return out
    }
}
