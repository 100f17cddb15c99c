/// The ResNet-18 family as the reference study built it (``Network/reference``): a 7x7
/// stride-2 stem with bias, batch norm and ReLU (no max-pool), four stages of two basic
/// blocks (3x3 conv, BN, ReLU, dropout, 3x3 conv, BN, add the shortcut, ReLU, dropout; a 1x1
/// stride-2 `downsample` conv + BN on the shortcut of the first block of stages 2-4), global
/// average pooling and a dense classifier; every conv has a bias (the reference's conv layer
/// always adds one, before the batch norm). Batch-norm momentum 0.9, epsilon 1e-3; dropout
/// 0.15 (0 for `resnet18_sgd`) with the reference's data-seeded masks; GlorotNormal kernels.
/// `resnet18_nobn` drops the batch norms. Layer names are the reference's (`conv1`,
/// `basicblock_{1..4}_basic_{0,1}_{conv1,conv2,downsample}`, `dense`).
///
/// ``Network/legacy`` is this simulator's first network (3x3 stride-1 stem, biases only
/// without batch norm, momentum 0.99, no dropout, GlorotUniform, sequential reductions, the
/// lowered backward layout): a configuration without a `network` field, as every trace
/// recorded before the reference network, builds it, so those traces replay bit for bit.
///
/// Forward and backward are written out by hand, block by block; every convolution and the
/// dense layer run on the MXU through ``MatrixUnit``, so each exposes its three operations
/// (`<layer>`, `<layer>_grad_in`, `<layer>_grad_wt`) to injection, in the operand layouts of
/// ``backwardLayout``. The stem has no `_grad_in`: nothing consumes the gradient of the image.
public struct ResNet18: Model {
    /// Sizes of one replica's share: input shape, base width (stage widths are 1, 2, 4 and 8
    /// times it), examples per replica, classes. Recorded in manifests (under `scale`).
    ///
    /// - `tiny`: 16x16x1 inputs (8x8 after the stride-2 stem), widths 4..32, 4 images per
    ///   replica (tests: seconds);
    /// - `small`: 28x28x1 Fashion-MNIST, widths 16..128, 32 images per replica (default demo);
    /// - `paper`: the reference shapes: 32x32x3 CIFAR-10, widths 64..512, 128 per replica
    ///   (global batch 1024 over 8 replicas).
    ///
    /// Every preset builds the reference network; ``network`` and ``dropoutMasks`` are
    /// recorded with it. A recorded configuration without them is the legacy network.
    public struct Configuration: Sendable, Equatable, Codable, PresetConfiguration {
        public var name: String
        public var inputH: Int
        public var inputW: Int
        public var inputChannels: Int
        public var baseWidth: Int
        public var batchPerReplica: Int
        public var classes: Int
        public var network: Network
        /// Where dropout masks come from (the reference network only).
        public var dropoutMasks: DropoutKeying

        public init(name: String, inputH: Int, inputW: Int, inputChannels: Int, baseWidth: Int, batchPerReplica: Int, classes: Int,
                    network: Network = .reference, dropoutMasks: DropoutKeying = .dataSeeded) {
            self.name = name
            self.inputH = inputH
            self.inputW = inputW
            self.inputChannels = inputChannels
            self.baseWidth = baseWidth
            self.batchPerReplica = batchPerReplica
            self.classes = classes
            self.network = network
            self.dropoutMasks = dropoutMasks
        }

        public static let tiny = Configuration(name: "tiny", inputH: 16, inputW: 16, inputChannels: 1, baseWidth: 4, batchPerReplica: 4, classes: 10)
        public static let small = Configuration(name: "small", inputH: 28, inputW: 28, inputChannels: 1, baseWidth: 16, batchPerReplica: 32, classes: 10)
        public static let paper = Configuration(name: "paper", inputH: 32, inputW: 32, inputChannels: 3, baseWidth: 64, batchPerReplica: 128, classes: 10)
        public static let presets: [Configuration] = [.tiny, .small, .paper]

        enum CodingKeys: String, CodingKey { case name, inputH, inputW, inputChannels, baseWidth, batchPerReplica, classes, network, dropoutMasks }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), inputH: try c.decode(Int.self, forKey: .inputH),
                      inputW: try c.decode(Int.self, forKey: .inputW), inputChannels: try c.decode(Int.self, forKey: .inputChannels),
                      baseWidth: try c.decode(Int.self, forKey: .baseWidth), batchPerReplica: try c.decode(Int.self, forKey: .batchPerReplica),
                      classes: try c.decode(Int.self, forKey: .classes),
                      network: try c.decodeIfPresent(Network.self, forKey: .network) ?? .legacy,
                      dropoutMasks: try c.decodeIfPresent(DropoutKeying.self, forKey: .dropoutMasks) ?? .dataSeeded)
        }

        public func encode(to encoder: any Encoder) throws {
            try recorded.encode(to: encoder)
        }

        /// As recorded in a manifest: the legacy network without the fields it predates.
        var recorded: ModelConfiguration {
            var fields: [String: JSONValue] = ["name": .string(name), "inputH": .integer(Int64(inputH)), "inputW": .integer(Int64(inputW)),
                                               "inputChannels": .integer(Int64(inputChannels)), "baseWidth": .integer(Int64(baseWidth)),
                                               "batchPerReplica": .integer(Int64(batchPerReplica)), "classes": .integer(Int64(classes))]
            if network != .legacy {
                fields["network"] = .string(network.rawValue)
                fields["dropoutMasks"] = .string(dropoutMasks.rawValue)
            }
            return ModelConfiguration(.object(fields))
        }

        /// Checks every size before anything is allocated from it.
        func validate(workload: String) throws(ModelError) {
            let fields = [("inputH", inputH, 1 << 12), ("inputW", inputW, 1 << 12), ("inputChannels", inputChannels, 1 << 12),
                          ("baseWidth", baseWidth, 1 << 12), ("batchPerReplica", batchPerReplica, 1 << 14), ("classes", classes, 1 << 16)]
            for (field, value, limit) in fields { try ModelError.check(field, value, in: 1...limit, workload: workload) }
        }
    }

    /// Which network a configuration builds.
    public enum Network: String, Sendable, Codable {
        /// The reference study's network (every preset).
        case reference
        /// The simulator's first network, for traces recorded before the reference one.
        case legacy
    }

    public let workload: String
    public let scale: Configuration
    public let batchNorm: Bool
    /// Batch-norm momentum (the reference's 0.9; the legacy network's Keras default 0.99)
    /// and epsilon (Keras's default).
    public let bnMomentum: Float
    public let bnEpsilon: Float = 1e-3
    /// Dropout rate after each ReLU of every basic block (the reference network only).
    public let dropoutRate: Float
    /// How batch-norm statistics and bias gradients are summed.
    public let reduction: ReductionOrder
    /// How the backward operations present their operands.
    public let backwardLayout: ConvBackwardLayout
    public let initializer: Initializer

    /// Conv layers in forward order: stem, then per block conv1, conv2, downsample.
    public let convs: [ConvLayer]
    /// Basic blocks as indices into ``convs``.
    public let blocks: [(conv1: Int, conv2: Int, downsample: Int?)]
    public let denseWeight: Int
    public let denseBias: Int
    public let parameters: [TensorSpec]
    /// Batch-norm layers, in ``modelState`` order.
    public let norms: [NormLayer]
    public let modelState: [TensorSpec]
    public let features: Int
    public let operations: [MXUOperation]

    public var configuration: ModelConfiguration { scale.recorded }
    public var scaleName: String { scale.name }
    public var input: InputSpec { .images(height: scale.inputH, width: scale.inputW, channels: scale.inputChannels, classes: scale.classes) }
    public var batchPerReplica: Int { scale.batchPerReplica }
    var normSettings: NormSettings { NormSettings(epsilon: bnEpsilon, order: reduction) }

    /// The three built-in workloads of the family.
    static let workloads: [WorkloadDefinition] = [
        definition("resnet18", "ResNet-18 trained with Adam", optimizer: .adam, batchNorm: true, dropout: 0.15),
        definition("resnet18_sgd", "ResNet-18 trained with plain SGD, no dropout", optimizer: .sgd, batchNorm: true, dropout: 0),
        definition("resnet18_nobn", "ResNet-18 without batch normalisation, Adam", optimizer: .adam, batchNorm: false, dropout: 0.15),
    ]

    static func definition(_ name: String, _ summary: String, optimizer: OptimizerKind, batchNorm: Bool, dropout: Float) -> WorkloadDefinition {
        WorkloadDefinition(name: name, summary: summary, defaultOptimizer: optimizer, scales: Configuration.presets.map(\.name),
                           defaultAugmentation: .reference,
                           preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
            try Configuration.preset(scale, among: Configuration.presets, workload: name)
        }, build: { (configuration: ModelConfiguration) throws(ModelError) -> any Model in
            let c = try configuration.decode(Configuration.self, workload: name)
            try c.validate(workload: name)
            return ResNet18(workload: name, scale: c, batchNorm: batchNorm, dropout: dropout)
        })
    }

    public init(workload: String = "resnet18", scale: Configuration, batchNorm: Bool = true, dropout: Float = 0.15) {
        self.workload = workload
        self.scale = scale
        self.batchNorm = batchNorm
        let reference = scale.network == .reference
        bnMomentum = reference ? 0.9 : 0.99
        dropoutRate = reference ? dropout : 0
        reduction = reference ? .pairwise : .sequential
        backwardLayout = reference ? .reference : .lowered
        initializer = reference ? .glorotNormal : .glorotUniform
        var table = ParameterTable()
        var convs: [ConvLayer] = []
        var blocks: [(conv1: Int, conv2: Int, downsample: Int?)] = []
        func conv(_ name: String, _ s: ConvShape) {
            convs.append(table.conv(name, s, bias: reference || !batchNorm, normSuffix: batchNorm ? "_bn" : nil))
        }
        let batch = scale.batchPerReplica
        let stem = ConvShape.same(batch: batch, inH: scale.inputH, inW: scale.inputW, inChannels: scale.inputChannels,
                                  filter: reference ? 7 : 3, outChannels: scale.baseWidth, stride: reference ? 2 : 1)
        conv("conv1", stem)
        var (h, w, channels) = (stem.outH, stem.outW, scale.baseWidth)
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
        denseWeight = table.add("dense/kernel", [channels, scale.classes])
        denseBias = table.add("dense/bias", [scale.classes])
        self.convs = convs
        self.blocks = blocks
        self.parameters = table.specs
        self.norms = table.norms
        self.modelState = table.modelState
        self.operations = Self.operationTable(convs: convs, features: channels, scale: scale, batchNorm: batchNorm, layout: backwardLayout)
    }

    /// Every MXU operation of one replica's step, in execution order: forward layers, then the
    /// backward operations in reverse layer order (`_grad_in` before `_grad_wt` of a layer;
    /// the stem has no `_grad_in`). A conv's backward GEMMs and operands follow `layout`:
    /// ``ConvBackwardLayout/lowered``: `_grad_in` is `dY[M x N] x W^T[N x K]` (then col2im),
    /// `_grad_wt` is `X^T[K x M] x dY[M x N]`; ``ConvBackwardLayout/reference``: each is the
    /// im2col GEMM of its stride-1 convolution (``ConvShape/gradientInputConvolution``,
    /// ``ConvShape/gradientWeightConvolution``). The dense layer's are `dY x W^T` and `X^T dY`.
    ///
    /// Vector-unit work per operation (approximate, elementwise passes over the output):
    /// forward batch norm + ReLU = 5 ops and 2 per-channel reductions (without batch norm:
    /// 1 op); backward through them = 8 ops and 2 reductions on `_grad_in`; the optimizer
    /// update (Adam, ~12 ops per parameter) on `_grad_wt`.
    static func operationTable(convs: [ConvLayer], features: Int, scale: Configuration, batchNorm: Bool, layout: ConvBackwardLayout) -> [MXUOperation] {
        let batch = scale.batchPerReplica
        let last = convs[convs.count - 1].shape
        let dense = Dense.classifierOperations(batch: batch, pixels: last.outH * last.outW, features: features, classes: scale.classes)
        var table = convs.map { c in
            c.shape.forwardOperation(c.name, vector: VectorWork(elements: c.shape.gemm.m * c.shape.gemm.n, opsPerElement: batchNorm ? 5 : 1,
                                                                reductions: batchNorm ? 2 : 0, reductionOutputs: c.shape.outChannels))
        }
        table.append(dense.forward)
        table += dense.backward
        for c in convs.reversed() {
            let g = c.shape.gemm
            table += c.shape.backwardOperations(c.name, layout: layout, needInput: c.name != "conv1",
                                                inputVector: VectorWork(elements: g.m * g.n, opsPerElement: batchNorm ? 8 : 1,
                                                                        reductions: batchNorm ? 2 : 0, reductionOutputs: g.n),
                                                weightVector: VectorWork(elements: g.k * g.n, opsPerElement: 12))
        }
        return table
    }

    /// Fresh parameters: kernels from ``initializer`` (GlorotNormal for the reference network,
    /// GlorotUniform for the legacy one) drawn from `CounterRNG(seed, .initialization, tensor
    /// index)`, zero biases, batch-norm gamma 1 and beta 0; moving means 0 and variances 1.
    public func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        ParameterTable.initialState(parameters: parameters, norms: norms, seed: seed, initializer: initializer)
    }

    /// What the backward pass needs from the forward pass.
    struct Tape {
        var convs: [ConvLayer.Cache?]             // each conv's input and norm cache
        var convOutputs: [[Float]]                // each conv's output after bias and norm
        var statistics: [(mean: [Float], variance: [Float])]
        var blockSums: [[Float]]                  // main + shortcut, before the block's ReLU
        var dropoutMasks: [(afterConv1: [Float]?, afterBlock: [Float]?)]
        var pooled: [Float]
        var pixels: Int
    }

    /// The dropout mask for the `index`-th dropout layer (block `b`'s two are `2b` and
    /// `2b + 1`) applied to `x`, or nil when there is no dropout (inference, rate 0).
    func dropoutMask(_ x: [Float], index: Int, origin: BatchOrigin?) -> [Float]? {
        Dropout.mask(for: x, rate: dropoutRate, keying: scale.dropoutMasks, origin: origin, layer: index)
    }

    /// The forward pass to the logits. `images` NHWC, `batch` images; `origin` keys the
    /// dropout masks (nil: no dropout).
    func forward(_ p: [[Float]], images: [Float], batch: Int, normalization: NormMode, origin: BatchOrigin?,
                 unit: MatrixUnit) -> (logits: [Float], tape: Tape) {
        var tape = Tape(convs: Array(repeating: nil, count: convs.count), convOutputs: Array(repeating: [], count: convs.count),
                        statistics: Array(repeating: ([], []), count: norms.count),
                        blockSums: [], dropoutMasks: [], pooled: [], pixels: 0)
        // conv -> bias -> batch norm, no activation.
        func conv(_ i: Int, _ x: [Float]) -> [Float] {
            let c = convs[i]
            let r = c.forward(x, p, batch: batch, norms: norms, settings: normSettings, normalization, unit: unit)
            if let n = c.norm, let statistics = r.statistics { tape.statistics[n] = statistics }
            tape.convs[i] = r.cache
            tape.convOutputs[i] = r.y
            return r.y
        }
        func dropout(_ x: [Float], _ index: Int) -> ([Float], [Float]?) {
            guard let mask = dropoutMask(x, index: index, origin: origin) else { return (x, nil) }
            return (Dropout.forward(x, mask: mask), mask)
        }
        var x = ReLU.forward(conv(0, images))
        for (b, block) in blocks.enumerated() {
            let (h, mask1) = dropout(ReLU.forward(conv(block.conv1, x)), 2 * b)
            let main = conv(block.conv2, h)
            let shortcut = block.downsample.map { conv($0, x) } ?? x
            let sum = elementwise(main, shortcut, +)
            tape.blockSums.append(sum)
            let mask2: [Float]?
            (x, mask2) = dropout(ReLU.forward(sum), 2 * b + 1)
            tape.dropoutMasks.append((mask1, mask2))
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
        let (logits, tape) = forward(p, images: images, batch: batch, normalization: .batch, origin: data.origin, unit: unit)
        let (loss, correct, dlogits) = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: labels, classes: scale.classes)
        var grads = parameterShapes.map { [Float](repeating: 0, count: $0.reduce(1, *)) }

        let dpooled = Dense.backwardInput(dy: dlogits, w: p[denseWeight], batch: batch, inFeatures: features,
                                          outFeatures: scale.classes, layer: "dense", unit: unit)
        (grads[denseWeight], grads[denseBias]) = Dense.backwardWeight(x: tape.pooled, dy: dlogits, batch: batch, inFeatures: features,
                                                                       outFeatures: scale.classes, layer: "dense", unit: unit)
        var dx = GlobalAveragePool.backward(dy: dpooled, batch: batch, pixels: tape.pixels, channels: features)

        // dL/d(conv input) from dL/d(conv output after bias and norm); records the layer's
        // gradients.
        func conv(_ i: Int, _ dy: [Float], needInput: Bool = true) -> [Float] {
            guard let cache = tape.convs[i] else { preconditionFailure("\(convs[i].name): backward without a forward") }
            return convs[i].backward(dy, cache: cache, p, batch: batch, norms: norms, settings: normSettings, layout: backwardLayout,
                                     needInput: needInput, unit: unit, grads: &grads)
        }
        func dropout(_ dy: [Float], _ mask: [Float]?) -> [Float] { mask.map { Dropout.backward(dy: dy, mask: $0) } ?? dy }
        for (b, block) in blocks.enumerated().reversed() {
            let dsum = ReLU.backward(dy: dropout(dx, tape.dropoutMasks[b].afterBlock), x: tape.blockSums[b])
            // The block's layers in reverse forward order: downsample, conv2, conv1.
            let dshortcut = block.downsample.map { conv($0, dsum) } ?? dsum
            let dh = ReLU.backward(dy: dropout(conv(block.conv2, dsum), tape.dropoutMasks[b].afterConv1), x: tape.convOutputs[block.conv1])
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
        let logits = forward(p, images: data.images, batch: data.labels.count, normalization: .moving(modelState), origin: nil, unit: unit).logits
        let r = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: data.labels, classes: scale.classes)
        return (r.loss, r.correct)
    }
}
