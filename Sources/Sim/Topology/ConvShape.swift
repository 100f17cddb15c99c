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
