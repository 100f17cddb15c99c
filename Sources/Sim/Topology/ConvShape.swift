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

    public init(batch: Int, inH: Int, inW: Int, inChannels: Int, filterH: Int, filterW: Int,
                outChannels: Int, strideH: Int, strideW: Int, outH: Int, outW: Int) {
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
    }

    /// SAME padding: output `ceil(in / stride)`, input padded as needed.
    public static func same(batch: Int, inH: Int, inW: Int, inChannels: Int, filter: Int,
                            outChannels: Int, stride: Int) -> ConvShape {
        ConvShape(batch: batch, inH: inH, inW: inW, inChannels: inChannels, filterH: filter,
                  filterW: filter, outChannels: outChannels, strideH: stride, strideW: stride,
                  outH: ceilDiv(inH, stride), outW: ceilDiv(inW, stride))
    }

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

    /// HBM bytes of one forward pass: the real input tensor and the weights in bf16, the
    /// output in fp32 (not the im2col expansion, which is formed on chip).
    public var hbmBytes: Int {
        2 * (batch * inH * inW * inChannels + filterH * filterW * inChannels * outChannels)
            + 4 * batch * outH * outW * outChannels
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
