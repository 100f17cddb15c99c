/// The ResNet-18 family (CIFAR-style: 3x3 stride-1 stem, no max-pool, four stages of two
/// basic blocks, global average pooling, a dense classifier), at the widths and input shapes
/// of a ``Configuration``, with or without batch normalisation. Layer names are the reference
/// study's (`conv1`, `basicblock_{1..4}_basic_{0,1}_{conv1,conv2,downsample}`, `dense`).
///
/// Forward and backward are written out by hand, block by block; every convolution and the
/// dense layer run on the MXU through ``MatrixUnit``, so each exposes its three operations
/// (`<layer>`, `<layer>_grad_in`, `<layer>_grad_wt`) to injection. The stem has no
/// `_grad_in`: nothing consumes the gradient of the image.
public struct ResNet18: Model {
    /// Sizes of one replica's share: input shape, base width (stage widths are 1, 2, 4 and 8
    /// times it), examples per replica, classes. Recorded in manifests (under `scale`).
    ///
    /// - `tiny`: 8x8x1 inputs, widths 4..32, 4 images per replica (tests: seconds);
    /// - `small`: 28x28x1 Fashion-MNIST, widths 16..128, 32 images per replica (default demo);
    /// - `paper`: the reference shapes: 32x32x3 CIFAR-10, widths 64..512, 128 per replica
    ///   (global batch 1024 over 8 replicas).
    public struct Configuration: Sendable, Equatable, Codable {
        public var name: String
        public var inputH: Int
        public var inputW: Int
        public var inputChannels: Int
        public var baseWidth: Int
        public var batchPerReplica: Int
        public var classes: Int

        public static let tiny = Configuration(name: "tiny", inputH: 8, inputW: 8, inputChannels: 1, baseWidth: 4, batchPerReplica: 4, classes: 10)
        public static let small = Configuration(name: "small", inputH: 28, inputW: 28, inputChannels: 1, baseWidth: 16, batchPerReplica: 32, classes: 10)
        public static let paper = Configuration(name: "paper", inputH: 32, inputW: 32, inputChannels: 3, baseWidth: 64, batchPerReplica: 128, classes: 10)
        public static let presets: [Configuration] = [.tiny, .small, .paper]

        /// As recorded in a manifest (the same fields as the synthesised `Codable`).
        var recorded: ModelConfiguration {
            ModelConfiguration(.object(["name": .string(name), "inputH": .integer(Int64(inputH)), "inputW": .integer(Int64(inputW)),
                                        "inputChannels": .integer(Int64(inputChannels)), "baseWidth": .integer(Int64(baseWidth)),
                                        "batchPerReplica": .integer(Int64(batchPerReplica)), "classes": .integer(Int64(classes))]))
        }

        /// Checks every size before anything is allocated from it.
        func validate(workload: String) throws(ModelError) {
            let fields = [("inputH", inputH, 1 << 12), ("inputW", inputW, 1 << 12), ("inputChannels", inputChannels, 1 << 12),
                          ("baseWidth", baseWidth, 1 << 12), ("batchPerReplica", batchPerReplica, 1 << 14), ("classes", classes, 1 << 16)]
            for (field, value, limit) in fields where value < 1 || value > limit {
                throw .invalidConfiguration("the \(workload) configuration's field '\(field)' is \(value); expected 1...\(limit)")
            }
        }
    }

    public let workload: String
    public let scale: Configuration
    public let batchNorm: Bool
    /// Batch-norm constants (Keras defaults, as in the reference's TensorFlow models).
    public let bnMomentum: Float = 0.99
    public let bnEpsilon: Float = 1e-3

    /// A convolution layer and where its tensors live in ``parameters``.
    public struct Conv: Sendable {
        public let name: String
        public let shape: ConvShape
        public let weight: Int
        /// Batch-norm layer following it, or its bias when the model has no batch norm.
        public let norm: Int?
        public let bias: Int?
    }

    /// Conv layers in forward order: stem, then per block conv1, conv2, downsample.
    public let convs: [Conv]
    /// Basic blocks as indices into ``convs``.
    public let blocks: [(conv1: Int, conv2: Int, downsample: Int?)]
    public let denseWeight: Int
    public let denseBias: Int
    public let parameters: [TensorSpec]
    /// Batch-norm layers: (name, channels, gamma index, beta index).
    public let norms: [(name: String, channels: Int, gamma: Int, beta: Int)]
    public let features: Int
    public let operations: [MXUOperation]

    public var configuration: ModelConfiguration { scale.recorded }
    public var scaleName: String { scale.name }
    public var input: InputSpec { .images(height: scale.inputH, width: scale.inputW, channels: scale.inputChannels, classes: scale.classes) }
    public var batchPerReplica: Int { scale.batchPerReplica }
    /// Per batch-norm layer, its moving mean, then its moving variance.
    public var modelState: [TensorSpec] {
        norms.flatMap { [TensorSpec($0.name + "/moving_mean", [$0.channels]), TensorSpec($0.name + "/moving_variance", [$0.channels])] }
    }

    /// The three built-in workloads of the family.
    static let workloads: [WorkloadDefinition] = [
        definition("resnet18", "ResNet-18 trained with Adam", optimizer: .adam, batchNorm: true),
        definition("resnet18_sgd", "ResNet-18 trained with plain SGD", optimizer: .sgd, batchNorm: true),
        definition("resnet18_nobn", "ResNet-18 without batch normalisation (biased convolutions), Adam", optimizer: .adam, batchNorm: false),
    ]

    static func definition(_ name: String, _ summary: String, optimizer: OptimizerKind, batchNorm: Bool) -> WorkloadDefinition {
        WorkloadDefinition(name: name, summary: summary, defaultOptimizer: optimizer, scales: Configuration.presets.map(\.name),
                           preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
            guard let c = Configuration.presets.first(where: { $0.name == scale.lowercased() }) else {
                throw .unknownScale(scale, workload: name, known: Configuration.presets.map(\.name))
            }
            return c.recorded
        }, build: { (configuration: ModelConfiguration) throws(ModelError) -> any Model in
            let c = try configuration.decode(Configuration.self, workload: name)
            try c.validate(workload: name)
            return ResNet18(workload: name, scale: c, batchNorm: batchNorm)
        })
    }

    public init(workload: String = "resnet18", scale: Configuration, batchNorm: Bool = true) {
        self.workload = workload
        self.scale = scale
        self.batchNorm = batchNorm
        var names: [String] = [], shapes: [[Int]] = []
        var norms: [(String, Int, Int, Int)] = []
        func param(_ name: String, _ shape: [Int]) -> Int {
            names.append(name)
            shapes.append(shape)
            return names.count - 1
        }
        var convs: [Conv] = []
        var blocks: [(conv1: Int, conv2: Int, downsample: Int?)] = []
        func conv(_ name: String, _ s: ConvShape) {
            let w = param(name + "/kernel", s.weightShape)
            if batchNorm {
                let g = param(name + "_bn/gamma", [s.outChannels]), b = param(name + "_bn/beta", [s.outChannels])
                norms.append((name + "_bn", s.outChannels, g, b))
                convs.append(Conv(name: name, shape: s, weight: w, norm: norms.count - 1, bias: nil))
            } else {
                convs.append(Conv(name: name, shape: s, weight: w, norm: nil, bias: param(name + "/bias", [s.outChannels])))
            }
        }
        let batch = scale.batchPerReplica
        var (h, w, channels) = (scale.inputH, scale.inputW, scale.baseWidth)
        conv("conv1", .same(batch: batch, inH: h, inW: w, inChannels: scale.inputChannels, filter: 3, outChannels: channels, stride: 1))
        for stage in 1...4 {
            let width = scale.baseWidth << (stage - 1)
            for block in 0...1 {
                let stride = stage > 1 && block == 0 ? 2 : 1
                let prefix = "basicblock_\(stage)_basic_\(block)"
                let c1 = ConvShape.same(batch: batch, inH: h, inW: w, inChannels: channels, filter: 3, outChannels: width, stride: stride)
                conv(prefix + "_conv1", c1)
                conv(prefix + "_conv2", .same(batch: batch, inH: c1.outH, inW: c1.outW, inChannels: width, filter: 3, outChannels: width, stride: 1))
                let first = convs.count - 2
                if stride != 1 || channels != width {
                    conv(prefix + "_downsample", .same(batch: batch, inH: h, inW: w, inChannels: channels, filter: 1, outChannels: width, stride: stride))
                }
                blocks.append((first, first + 1, convs.count > first + 2 ? first + 2 : nil))
                (h, w, channels) = (c1.outH, c1.outW, width)
            }
        }
        features = channels
        denseWeight = param("dense/kernel", [channels, scale.classes])
        denseBias = param("dense/bias", [scale.classes])
        self.convs = convs
        self.blocks = blocks
        self.parameters = zip(names, shapes).map { TensorSpec($0, $1) }
        self.norms = norms.map { (name: $0.0, channels: $0.1, gamma: $0.2, beta: $0.3) }
        self.operations = Self.operationTable(convs: convs, features: channels, scale: scale, batchNorm: batchNorm)
    }

    /// Every MXU operation of one replica's step, in execution order: forward layers, then the
    /// backward operations in reverse layer order (`_grad_in` before `_grad_wt` of a layer;
    /// the stem has no `_grad_in`). Backward: `<layer>_grad_in` computes dL/dx as the GEMM
    /// `dY[M x N] x W^T[N x K]` (then col2im) and `<layer>_grad_wt` computes dL/dW as
    /// `X^T[K x M] x dY[M x N]`.
    ///
    /// Vector-unit work per operation (approximate, elementwise passes over the output):
    /// forward batch norm + ReLU = 5 ops and 2 per-channel reductions (without batch norm:
    /// 1 op); backward through them = 8 ops and 2 reductions on `_grad_in`; the optimizer
    /// update (Adam, ~12 ops per parameter) on `_grad_wt`.
    static func operationTable(convs: [Conv], features: Int, scale: Configuration, batchNorm: Bool) -> [MXUOperation] {
        let batch = scale.batchPerReplica
        struct Layer { var name: String; var gemm: GEMMShape; var x: [Int]; var w: [Int]; var y: [Int]; var hbm: HBMTraffic?; var vector: VectorWork }
        var layers = convs.map { c in
            Layer(name: c.name, gemm: c.shape.gemm, x: c.shape.inputShape, w: c.shape.weightShape, y: c.shape.outputShape, hbm: c.shape.hbmTraffic,
                  vector: VectorWork(elements: c.shape.gemm.m * c.shape.gemm.n, opsPerElement: batchNorm ? 5 : 1,
                                     reductions: batchNorm ? 2 : 0, reductionOutputs: c.shape.outChannels))
        }
        let last = convs[convs.count - 1].shape
        let pooled = VectorWork(elements: batch * last.outH * last.outW * features, opsPerElement: 1, reductions: 1, reductionOutputs: batch * features)
        layers.append(Layer(name: "dense", gemm: GEMMShape(m: batch, k: features, n: scale.classes),
                            x: [batch, features], w: [features, scale.classes], y: [batch, scale.classes], hbm: nil, vector: pooled))
        var table = layers.map { l in
            MXUOperation(site: SiteID(layer: l.name, kind: .forward), gemm: l.gemm, inputShape: l.x, weightShape: l.w, outputShape: l.y,
                         hbmTraffic: l.hbm, vector: l.vector)
        }
        for l in layers.reversed() {
            let g = l.gemm, dense = l.name == "dense"
            if l.name != "conv1" {
                table.append(MXUOperation(site: SiteID(layer: l.name, kind: .gradIn), gemm: GEMMShape(m: g.m, k: g.n, n: g.k),
                                          inputShape: l.y, weightShape: l.w, outputShape: l.x,
                                          vector: VectorWork(elements: g.m * g.n, opsPerElement: dense ? 2 : (batchNorm ? 8 : 1),
                                                             reductions: batchNorm && !dense ? 2 : 0, reductionOutputs: g.n)))
            }
            table.append(MXUOperation(site: SiteID(layer: l.name, kind: .gradWt), gemm: GEMMShape(m: g.k, k: g.m, n: g.n),
                                      inputShape: l.x, weightShape: l.y, outputShape: l.w,
                                      vector: VectorWork(elements: g.k * g.n, opsPerElement: 12)))
        }
        return table
    }

    /// Fresh parameters: Glorot-uniform kernels (Keras's default) drawn from
    /// `CounterRNG(seed, .initialization, tensor index)`, zero biases, batch-norm gamma 1 and
    /// beta 0; moving means 0 and variances 1.
    public func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        var params: [[Float]] = []
        for (i, (name, shape)) in zip(parameterNames, parameterShapes).enumerated() {
            let count = shape.reduce(1, *)
            if name.hasSuffix("/kernel") {
                let receptive = shape.dropLast(2).reduce(1, *)
                let fanIn = receptive * shape[shape.count - 2], fanOut = receptive * shape[shape.count - 1]
                let limit = Float((6 / Double(fanIn + fanOut)).squareRoot())
                var rng = CounterRNG(seed: seed, purpose: .initialization, i)
                params.append((0..<count).map { _ in (rng.nextUniform() * 2 - 1) * limit })
            } else {
                params.append([Float](repeating: name.hasSuffix("/gamma") ? 1 : 0, count: count))
            }
        }
        let moving = norms.flatMap { [[Float](repeating: 0, count: $0.channels), [Float](repeating: 1, count: $0.channels)] }
        return (params, moving)
    }

    /// What the backward pass needs from the forward pass.
    struct Tape {
        var convInputs: [[Float]]                 // each conv's input
        var convOutputs: [[Float]]                // each conv's output after norm or bias
        var normCaches: [BatchNorm.Cache?]
        var statistics: [(mean: [Float], variance: [Float])]
        var blockSums: [[Float]]                  // main + shortcut, before the block's ReLU
        var pooled: [Float]
        var pixels: Int
    }

    /// Normalisation of the forward pass: this batch's statistics (training) or the moving
    /// ones (inference).
    enum Normalization {
        case batch
        case moving([[Float]])
    }

    /// The forward pass to the logits. `images` NHWC, `batch` images.
    func forward(_ p: [[Float]], images: [Float], batch: Int, normalization: Normalization, unit: MatrixUnit) -> (logits: [Float], tape: Tape) {
        var tape = Tape(convInputs: Array(repeating: [], count: convs.count), convOutputs: Array(repeating: [], count: convs.count),
                        normCaches: Array(repeating: nil, count: norms.count), statistics: Array(repeating: ([], []), count: norms.count),
                        blockSums: [], pooled: [], pixels: 0)
        // conv -> batch norm (or bias), no activation.
        func conv(_ i: Int, _ x: [Float]) -> [Float] {
            let c = convs[i], channels = c.shape.outChannels
            tape.convInputs[i] = x
            var y = Conv2D.forward(x: x, w: p[c.weight], shape: c.shape.with(batch: batch), layer: c.name, unit: unit)
            let rows = y.count / channels
            if let n = c.norm {
                let (gamma, beta) = (p[norms[n].gamma], p[norms[n].beta])
                switch normalization {
                case .batch:
                    let bn = BatchNorm.forwardTraining(x: y, rows: rows, channels: channels, gamma: gamma, beta: beta, epsilon: bnEpsilon)
                    tape.statistics[n] = (bn.mean, bn.variance)
                    tape.normCaches[n] = bn.cache
                    y = bn.y
                case .moving(let moving):
                    y = BatchNorm.forwardInference(x: y, rows: rows, channels: channels, gamma: gamma, beta: beta,
                                                   movingMean: moving[2 * n], movingVariance: moving[2 * n + 1], epsilon: bnEpsilon)
                }
            } else if let b = c.bias {
                for r in 0..<rows { for ch in 0..<channels { y[r * channels + ch] += p[b][ch] } }
            }
            tape.convOutputs[i] = y
            return y
        }
        var x = ReLU.forward(conv(0, images))
        for block in blocks {
            let h = ReLU.forward(conv(block.conv1, x))
            let main = conv(block.conv2, h)
            let shortcut = block.downsample.map { conv($0, x) } ?? x
            let sum = elementwise(main, shortcut, +)
            tape.blockSums.append(sum)
            x = ReLU.forward(sum)
        }
        tape.pixels = x.count / (batch * features)
        tape.pooled = GlobalAveragePool.forward(x: x, batch: batch, pixels: tape.pixels, channels: features)
        let logits = Dense.forward(x: tape.pooled, w: p[denseWeight], b: p[denseBias], batch: batch, inFeatures: features,
                                   outFeatures: scale.classes, layer: "dense", unit: unit)
        return (logits, tape)
    }

    /// Forward, loss and backward for one replica's batch (`images` NHWC), normalising with
    /// the batch's statistics.
    public func trainReplica(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> ReplicaResult {
        let (images, labels) = (data.images, data.labels)
        let batch = labels.count
        let (logits, tape) = forward(p, images: images, batch: batch, normalization: .batch, unit: unit)
        let (loss, correct, dlogits) = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: labels, classes: scale.classes)
        var grads = parameterShapes.map { [Float](repeating: 0, count: $0.reduce(1, *)) }

        let dpooled = Dense.backwardInput(dy: dlogits, w: p[denseWeight], batch: batch, inFeatures: features,
                                          outFeatures: scale.classes, layer: "dense", unit: unit)
        (grads[denseWeight], grads[denseBias]) = Dense.backwardWeight(x: tape.pooled, dy: dlogits, batch: batch, inFeatures: features,
                                                                       outFeatures: scale.classes, layer: "dense", unit: unit)
        var dx = GlobalAveragePool.backward(dy: dpooled, batch: batch, pixels: tape.pixels, channels: features)

        // dL/d(conv input) from dL/d(conv output after norm); records the layer's gradients.
        func conv(_ i: Int, _ dy: [Float], needInput: Bool = true) -> [Float] {
            let c = convs[i], shape = c.shape.with(batch: batch)
            var d = dy
            let rows = dy.count / shape.outChannels
            if let n = c.norm, let cache = tape.normCaches[n] {
                let bn = BatchNorm.backward(dy: dy, cache: cache, rows: rows, channels: shape.outChannels, gamma: p[norms[n].gamma])
                (d, grads[norms[n].gamma], grads[norms[n].beta]) = (bn.dx, bn.dgamma, bn.dbeta)
            } else if let b = c.bias {
                grads[b] = Reduce.columnSums(dy, rows: rows, columns: shape.outChannels)
            }
            // `_grad_in` before `_grad_wt`, as ``sites`` lists them.
            let dInput = needInput ? Conv2D.backwardInput(dy: d, w: p[c.weight], shape: shape, layer: c.name, unit: unit) : []
            grads[c.weight] = Conv2D.backwardWeight(x: tape.convInputs[i], dy: d, shape: shape, layer: c.name, unit: unit)
            return dInput
        }
        for (b, block) in blocks.enumerated().reversed() {
            let dsum = ReLU.backward(dy: dx, x: tape.blockSums[b])
            // The block's layers in reverse forward order: downsample, conv2, conv1.
            let dshortcut = block.downsample.map { conv($0, dsum) } ?? dsum
            let dh = ReLU.backward(dy: conv(block.conv2, dsum), x: tape.convOutputs[block.conv1])
            dx = elementwise(conv(block.conv1, dh), dshortcut, +)
        }
        _ = conv(0, ReLU.backward(dy: dx, x: tape.convOutputs[0]), needInput: false)
        return ReplicaResult(loss: loss, correct: correct, gradients: grads, statistics: tape.statistics.flatMap { [$0.mean, $0.variance] })
    }

    /// The moving statistics: `moving = momentum * moving + (1 - momentum) * batch`, per
    /// batch-norm layer (``modelState`` order; `statistics` are the replica means of the
    /// batch mean and variance).
    public func updateModelState(_ state: inout [[Float]], statistics: [[Float]]) {
        for i in statistics.indices { BatchNorm.updateMoving(&state[i], batch: statistics[i], momentum: bnMomentum) }
    }

    /// Inference with the moving statistics: mean loss and correct predictions.
    public func evaluate(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> (loss: Float, correct: Int) {
        let logits = forward(p, images: data.images, batch: data.labels.count, normalization: .moving(modelState), unit: unit).logits
        let r = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: data.labels, classes: scale.classes)
        return (r.loss, r.correct)
    }
}

extension ConvShape {
    /// The same layer for another batch size.
    public func with(batch: Int) -> ConvShape {
        var s = self
        s.batch = batch
        return s
    }
}
