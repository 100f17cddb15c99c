/// Sizes of the ResNet-18 family at the project's three scales (one replica's share).
///
/// - `tiny`: 8x8x1 inputs, widths 4..32, 4 images per replica (tests: seconds);
/// - `small`: 28x28x1 Fashion-MNIST, widths 16..128, 32 images per replica (default demo);
/// - `paper`: the reference shapes: 32x32x3 CIFAR-10, widths 64..512, 128 per replica
///   (global batch 1024 over 8 replicas).
public struct ResNetScale: Sendable, Equatable, Codable {
    public var name: String
    public var inputH: Int
    public var inputW: Int
    public var inputChannels: Int
    public var baseWidth: Int
    public var batchPerReplica: Int
    public var classes: Int

    public static let tiny = ResNetScale(name: "tiny", inputH: 8, inputW: 8, inputChannels: 1, baseWidth: 4, batchPerReplica: 4, classes: 10)
    public static let small = ResNetScale(name: "small", inputH: 28, inputW: 28, inputChannels: 1, baseWidth: 16, batchPerReplica: 32, classes: 10)
    public static let paper = ResNetScale(name: "paper", inputH: 32, inputW: 32, inputChannels: 3, baseWidth: 64, batchPerReplica: 128, classes: 10)
    public static let all: [ResNetScale] = [.tiny, .small, .paper]

    public static func named(_ name: String) -> ResNetScale? { all.first { $0.name == name.lowercased() } }
}

/// Which operations of a training step a topology lists.
public enum StepPhases: String, Sendable, CaseIterable, Codable {
    /// Forward MXU operations only (what SCALE-Sim topologies describe).
    case forward = "fwd"
    /// A whole training step: forward, then backward (`_grad_in`, `_grad_wt`) in reverse
    /// layer order.
    case training = "train"
}

/// The MXU operations of one replica's ResNet-18 step, with the reference layer names.
///
/// CIFAR-style ResNet-18: a 3x3 stride-1 stem `conv1` (no max-pool), four stages of two basic
/// blocks (`basicblock_{1..4}_basic_{0,1}_{conv1,conv2}`, 3x3, SAME padding; the first block of
/// stages 2-4 has stride 2 and a 1x1 stride-2 `..._downsample`), global average pooling and a
/// `dense` classifier. Backward: `<layer>_grad_in` computes dL/dx as the GEMM
/// `dY[M x N] x W^T[N x K]` (then col2im) and `<layer>_grad_wt` computes dL/dW as
/// `X^T[K x M] x dY[M x N]`; the stem has no `_grad_in` (nothing consumes the image gradient).
///
/// Vector-unit work per operation (approximate, elementwise passes over the output): forward
/// batch norm + ReLU = 5 ops and 2 per-channel reductions (without batch norm: 1 op);
/// backward through them = 8 ops and 2 reductions on `_grad_in`; the optimizer update
/// (Adam, ~12 ops per parameter) on `_grad_wt`.
public enum ResNet18Topology {
    public static func layers(scale: ResNetScale, batchNorm: Bool = true, phases: StepPhases = .forward) -> [LayerWork] {
        // The architecture has one definition, the model's.
        let model = ResNet18(scale: scale, batchNorm: batchNorm)
        let convs = model.convs.map { (name: $0.name, conv: $0.shape) }
        let batch = scale.batchPerReplica, channels = model.features
        let last = model.convs[model.convs.count - 1].shape
        let (h, w) = (last.outH, last.outW)
        let fwdOps = batchNorm ? 5 : 1
        var forward = convs.map { name, conv in
            LayerWork(name: name, gemm: conv.gemm, hbmBytes: conv.hbmBytes,
                      vector: VectorWork(elements: conv.gemm.m * conv.gemm.n, opsPerElement: fwdOps,
                                         reductions: batchNorm ? 2 : 0, reductionOutputs: conv.outChannels))
        }
        let pooled = VectorWork(elements: batch * h * w * channels, opsPerElement: 1, reductions: 1, reductionOutputs: batch * channels)
        forward.append(LayerWork(name: "dense", gemm: GEMMShape(m: batch, k: channels, n: scale.classes), vector: pooled))
        guard phases == .training else { return forward }

        var backward: [LayerWork] = []
        for layer in forward.reversed() {
            let g = layer.gemm
            if layer.name != "conv1" {
                let bwdOps = layer.name == "dense" ? 2 : (batchNorm ? 8 : 1)
                backward.append(LayerWork(name: layer.name + "_grad_in", gemm: GEMMShape(m: g.m, k: g.n, n: g.k),
                                          vector: VectorWork(elements: g.m * g.n, opsPerElement: bwdOps,
                                                             reductions: batchNorm && layer.name != "dense" ? 2 : 0,
                                                             reductionOutputs: g.n)))
            }
            backward.append(LayerWork(name: layer.name + "_grad_wt", gemm: GEMMShape(m: g.k, k: g.m, n: g.n),
                                      vector: VectorWork(elements: g.k * g.n, opsPerElement: 12)))
        }
        return forward + backward
    }
}
