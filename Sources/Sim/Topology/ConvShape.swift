/// A 2-D convolution (NHWC activations, HWIO weights) and how it lowers to one MXU GEMM.
///
/// Lowering (im2col): each output pixel of each image is one row of A, holding the filter
/// window's `filterH x filterW x inChannels` input values; B is the weight tensor viewed as
/// `(filterH * filterW * inChannels) x outChannels`. So `M = batch * outH * outW`,
/// `K = filterH * filterW * inChannels`, `N = outChannels` (SCALE-Sim's mapping too).
public struct ConvShape: Sendable, Equatable, Codable {
    public var batch: Int
    public var inH: Int
    public var inW: Int
    public var inChannels: Int
    public var filterH: Int
    public var filterW: Int
    public var outChannels: Int
    public var strideH: Int
    public var strideW: Int
    public var outH: Int
    public var outW: Int
    /// Zero rows above and columns left of the input (the rest of the padding is below and to
    /// the right, as TensorFlow's SAME puts the odd one there).
    public var padTop: Int
    public var padLeft: Int

    public init(batch: Int, inH: Int, inW: Int, inChannels: Int, filterH: Int, filterW: Int,
                outChannels: Int, strideH: Int, strideW: Int, outH: Int, outW: Int,
                padTop: Int = 0, padLeft: Int = 0) {
        self.batch = batch
        self.inH = inH
        self.inW = inW
        self.inChannels = inChannels
        self.filterH = filterH
        self.filterW = filterW
        self.outChannels = outChannels
        self.strideH = strideH
        self.strideW = strideW
        self.outH = outH
        self.outW = outW
        self.padTop = padTop
        self.padLeft = padLeft
    }

    /// SAME padding (TensorFlow's): output `ceil(in / stride)`; the total padding
    /// `max((out - 1) * stride + filter - in, 0)` is split with the odd row/column at the
    /// bottom/right.
    public static func same(batch: Int, inH: Int, inW: Int, inChannels: Int, filter: Int,
                            outChannels: Int, stride: Int) -> ConvShape {
        let outH = ceilDiv(inH, stride), outW = ceilDiv(inW, stride)
        let padH = max((outH - 1) * stride + filter - inH, 0), padW = max((outW - 1) * stride + filter - inW, 0)
        return ConvShape(batch: batch, inH: inH, inW: inW, inChannels: inChannels, filterH: filter,
                         filterW: filter, outChannels: outChannels, strideH: stride, strideW: stride,
                         outH: outH, outW: outW, padTop: padH / 2, padLeft: padW / 2)
    }

    /// VALID padding: output `floor((in - filter) / stride) + 1`, no padding.
    public static func valid(batch: Int, inH: Int, inW: Int, inChannels: Int, filter: Int,
                             outChannels: Int, stride: Int) -> ConvShape {
        ConvShape(batch: batch, inH: inH, inW: inW, inChannels: inChannels, filterH: filter,
                  filterW: filter, outChannels: outChannels, strideH: stride, strideW: stride,
                  outH: (inH - filter) / stride + 1, outW: (inW - filter) / stride + 1)
    }

    public var inputShape: [Int] { [batch, inH, inW, inChannels] }
    public var weightShape: [Int] { [filterH, filterW, inChannels, outChannels] }
    public var outputShape: [Int] { [batch, outH, outW, outChannels] }

    /// SCALE-Sim's convention: the topology gives the already padded input and the output is
    /// `ceil((in - filter + stride) / stride)` per dimension.
    public static func scaleSim(inH: Int, inW: Int, filterH: Int, filterW: Int, channels: Int,
                                filters: Int, stride: Int) -> ConvShape {
        ConvShape(batch: 1, inH: inH, inW: inW, inChannels: channels, filterH: filterH,
                  filterW: filterW, outChannels: filters, strideH: stride, strideW: stride,
                  outH: ceilDiv(inH - filterH + stride, stride), outW: ceilDiv(inW - filterW + stride, stride))
    }

    /// Whether the im2col matrix is the input itself: a 1x1 stride-1 convolution without
    /// padding, or a single window that covers the whole input.
    public var lowersToItself: Bool {
        guard padTop == 0 && padLeft == 0 else { return false }
        let pointwise = filterH == 1 && filterW == 1 && strideH == 1 && strideW == 1 && outH == inH && outW == inW
        let whole = outH == 1 && outW == 1 && filterH == inH && filterW == inW
        return pointwise || whole
    }

    public var gemm: GEMMShape {
        GEMMShape(m: batch * outH * outW, k: filterH * filterW * inChannels, n: outChannels)
    }

    /// HBM traffic of one forward pass: the real input tensor and the weights as operands,
    /// the output as the result (not the im2col expansion, which is formed on chip).
    public var hbmTraffic: HBMTraffic {
        HBMTraffic(operandElements: batch * inH * inW * inChannels + filterH * filterW * inChannels * outChannels,
                   resultElements: batch * outH * outW * outChannels)
    }

    /// HBM bytes of one forward pass (``hbmTraffic``) with `bytesPerOperand`-byte operands
    /// (default: bfloat16's 2) and an fp32 output.
    public func hbmBytes(bytesPerOperand: Int = BFloat16Format().bytesPerElement) -> Int {
        hbmTraffic.bytes(bytesPerOperand: bytesPerOperand)
    }

    public func validate() throws(HardwareError) {
        let fields = [("batch", batch), ("input height", inH), ("input width", inW),
                      ("channels", inChannels), ("filter height", filterH), ("filter width", filterW),
                      ("filters", outChannels), ("stride", min(strideH, strideW))]
        for (name, v) in fields where v <= 0 {
            throw .invalidShape("convolution \(name) must be positive, got \(v)")
        }
        guard outH > 0, outW > 0 else {
            throw .invalidShape("convolution filter \(filterH)x\(filterW) does not fit input \(inH)x\(inW)")
        }
    }
}

/// How a convolution's two backward operations present their operands to fault injection.
public enum ConvBackwardLayout: String, Sendable, Codable {
    /// The forward tensors: `_grad_in` multiplies dL/dy `[N, Ho, Wo, Cout]` by the kernel
    /// `[Fh, Fw, Cin, Cout]` (then scatters the columns back, col2im); `_grad_wt` multiplies
    /// the forward input `[N, H, W, Cin]` by dL/dy. The first networks' layout.
    case lowered
    /// The reference study's formulation: each backward operation is a stride-1 VALID
    /// convolution of explicitly built operands (``ConvShape/gradientInputConvolution`` and
    /// ``ConvShape/gradientWeightConvolution``), so a fault position indexes those tensors,
    /// zeros of the dilation and padding included.
    case reference
}

extension ConvShape {
    /// The `_grad_in` operation in the reference layout: dL/dx as a stride-1 VALID
    /// convolution. Its input is dL/dy dilated by the stride and zero-padded to
    /// `[N, H + Fh - 1, W + Fw - 1, Cout]`, element `(i, j)` of dL/dy at
    /// `(Fh - 1 - padTop + i * strideH, Fw - 1 - padLeft + j * strideW)`
    /// (``gradientInputOffset``); its weight is the kernel rotated by 180 degrees with input
    /// and output channels swapped, `[Fh, Fw, Cout, Cin]`; its output is dL/dx, `[N, H, W, Cin]`.
    public var gradientInputConvolution: ConvShape {
        ConvShape(batch: batch, inH: inH + filterH - 1, inW: inW + filterW - 1, inChannels: outChannels, filterH: filterH, filterW: filterW,
                  outChannels: inChannels, strideH: 1, strideW: 1, outH: inH, outW: inW)
    }

    /// Where dL/dy's first element sits in the `_grad_in` input (rows, columns).
    public var gradientInputOffset: (h: Int, w: Int) { (filterH - 1 - padTop, filterW - 1 - padLeft) }

    /// For a stride-1 convolution, ``gradientInputConvolution`` as a convolution of dL/dy
    /// itself, padded by ``gradientInputOffset`` (nil for other strides, whose `_grad_in`
    /// input is also dilated): the same windows over the same values, so the same im2col
    /// matrix and GEMM, without the padded operand.
    var gradientInputConvolutionOfUnpadded: ConvShape? {
        guard strideH == 1 && strideW == 1 else { return nil }
        let (oh, ow) = gradientInputOffset
        return ConvShape(batch: batch, inH: outH, inW: outW, inChannels: outChannels, filterH: filterH, filterW: filterW,
                         outChannels: inChannels, strideH: 1, strideW: 1, outH: inH, outW: inW, padTop: oh, padLeft: ow)
    }

    /// The `_grad_wt` operation in the reference layout: dL/dW as a stride-1 VALID
    /// convolution over the batch. Its input is the forward input padded by `(Fh - 1) / 2`
    /// rows and `(Fw - 1) / 2` columns on every side and transposed to
    /// `[Cin, H + 2 qh, W + 2 qw, N]`; its weight is dL/dy, dilated by the stride and viewed
    /// as a kernel `[Lh, Lw, N, Cout]` with `Lh = H + 2 qh - Fh + 1`, element `(i, j)` at
    /// `(qh - padTop + i * strideH, qw - padLeft + j * strideW)` (``gradientWeightOffset``;
    /// for stride 1 this is dL/dy itself); its output is `[Cin, Fh, Fw, Cout]`, dL/dW with
    /// its first axis moved to the third. This is the reference's construction (padding
    /// `(F - 1) / 2` on both sides, the dilation zero before each element when the padding
    /// before is short of it); it needs odd filters and SAME-style padding.
    public var gradientWeightConvolution: ConvShape {
        let (qh, qw) = gradientWeightPadding
        let (hp, wp) = (inH + 2 * qh, inW + 2 * qw)
        return ConvShape(batch: inChannels, inH: hp, inW: wp, inChannels: batch, filterH: hp - filterH + 1, filterW: wp - filterW + 1,
                         outChannels: outChannels, strideH: 1, strideW: 1, outH: filterH, outW: filterW)
    }

    /// The zeros around the forward input in the `_grad_wt` input, on every side (rows, columns).
    public var gradientWeightPadding: (h: Int, w: Int) { ((filterH - 1) / 2, (filterW - 1) / 2) }

    /// Where dL/dy's first element sits in the `_grad_wt` weight (rows, columns).
    public var gradientWeightOffset: (h: Int, w: Int) { (gradientWeightPadding.h - padTop, gradientWeightPadding.w - padLeft) }

    /// Whether the reference layout can express this convolution: odd filters, padding on
    /// each side at most `(F - 1) / 2` (TensorFlow's SAME or VALID with odd filters).
    public var supportsReferenceBackward: Bool {
        let (qh, qw) = gradientWeightPadding
        let padBottom = (outH - 1) * strideH + filterH - inH - padTop, padRight = (outW - 1) * strideW + filterW - inW - padLeft
        return filterH % 2 == 1 && filterW % 2 == 1 && padTop <= qh && padLeft <= qw && padBottom <= qh && padRight <= qw
    }
}
