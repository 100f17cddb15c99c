/// The ResNet-18 family (CIFAR-style: 3x3 stride-1 stem, no max-pool, four stages of two
/// basic blocks, global average pooling, a dense classifier), at the widths and input shapes
/// of a ``ResNetScale``, with or without batch normalisation. Layer names are the reference
/// study's (`conv1`, `basicblock_{1..4}_basic_{0,1}_{conv1,conv2,downsample}`, `dense`).
///
/// Forward and backward are written out by hand, block by block; every convolution and the
/// dense layer run on the MXU through ``MatrixUnit``, so each exposes its three operations
/// (`<layer>`, `<layer>_grad_in`, `<layer>_grad_wt`) to injection. The stem has no
/// `_grad_in`: nothing consumes the gradient of the image.
public struct ResNet18: Sendable {
    public let scale: ResNetScale
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
    /// Trainable tensors: names and shapes, in the order of ``TrainingState/parameters``.
    public let parameterNames: [String]
    public let parameterShapes: [[Int]]
    /// Batch-norm layers: (name, channels, gamma index, beta index).
    public let norms: [(name: String, channels: Int, gamma: Int, beta: Int)]
    public let features: Int

    public init(scale: ResNetScale, batchNorm: Bool = true) {
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
        self.parameterNames = names
        self.parameterShapes = shapes
        self.norms = norms.map { (name: $0.0, channels: $0.1, gamma: $0.2, beta: $0.3) }
    }

    /// Every injection site of a training step, in execution order: forward layers, then the
    /// backward operations in reverse layer order (`_grad_in` before `_grad_wt` of a layer).
    public var sites: [SiteID] {
        let layers = convs.map(\.name) + ["dense"]
        var out = layers.map { SiteID(layer: $0, kind: .forward) }
        for layer in layers.reversed() {
            if layer != "conv1" { out.append(SiteID(layer: layer, kind: .gradIn)) }
            out.append(SiteID(layer: layer, kind: .gradWt))
        }
        return out
    }

    /// The shape of operand `role` of MXU operation `site` (nil for a site the model does not
    /// have). Forward: x, W, y. `_grad_in`: dL/dy, W, dL/dx. `_grad_wt`: x, dL/dy, dL/dW.
    public func operandShape(_ site: SiteID, _ role: OperandRole) -> [Int]? {
        let batch = scale.batchPerReplica
        let (input, weight, output): ([Int], [Int], [Int])
        if site.layer == "dense" {
            (input, weight, output) = ([batch, features], [features, scale.classes], [batch, scale.classes])
        } else if let c = convs.first(where: { $0.name == site.layer }) {
            (input, weight, output) = (c.shape.inputShape, c.shape.weightShape, c.shape.outputShape)
        } else {
            return nil
        }
        guard sites.contains(site) else { return nil }
        switch (site.kind, role) {
        case (.forward, .input), (.gradWt, .input), (.gradIn, .output): return input
        case (.forward, .weight), (.gradIn, .weight), (.gradWt, .output): return weight
        case (.forward, .output), (.gradIn, .input), (.gradWt, .weight): return output
        }
    }

    /// Fresh parameters: Glorot-uniform kernels (Keras's default) drawn from
    /// `CounterRNG(seed, .initialization, tensor index)`, zero biases, batch-norm gamma 1 and
    /// beta 0; moving means 0 and variances 1.
    public func initialParameters(seed: UInt64) -> (parameters: [[Float]], moving: [[Float]]) {
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

    /// What one replica's forward and backward pass produced.
    public struct ReplicaResult: Sendable {
        public var loss: Float
        public var correct: Int
        /// Gradients, one per trainable tensor.
        public var gradients: [[Float]]
        /// Per batch-norm layer: this batch's mean and variance.
        public var batchStatistics: [(mean: [Float], variance: [Float])]
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
    public func trainReplica(parameters p: [[Float]], images: [Float], labels: [Int32], unit: MatrixUnit) -> ReplicaResult {
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
        return ReplicaResult(loss: loss, correct: correct, gradients: grads, batchStatistics: tape.statistics)
    }

    /// Inference with the moving statistics: mean loss and correct predictions.
    public func evaluate(parameters p: [[Float]], moving: [[Float]], images: [Float], labels: [Int32], unit: MatrixUnit) -> (loss: Float, correct: Int) {
        let logits = forward(p, images: images, batch: labels.count, normalization: .moving(moving), unit: unit).logits
        let r = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: labels, classes: scale.classes)
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
