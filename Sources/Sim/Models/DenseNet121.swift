/// The reference study's DenseNet-121 variant (`densenet`), as its `densenet.py` built it:
///
/// - stem: `densenet_conv` (7x7 stride 2, with bias), batch norm `densenet_bn`, ReLU, then
///   `densenet_conv_p`, a 3x3 stride-2 conv (with bias, no norm, no activation) where
///   DenseNet has its max-pool;
/// - dense blocks `densenet_dense_block_{b}` (b from 1) of bottlenecks
///   `densenet_dense_block_{b}_bottleneck_{i}` (i from 0): batch norm `_bn1`, ReLU, `_conv1`
///   1x1 to `4 * growth`, batch norm `_bn2`, ReLU, `_conv2` 3x3 to `growth`, dropout; each
///   bottleneck's input is the channel concatenation of the block's input and every earlier
///   bottleneck's output, and so is the block's output;
/// - between blocks, transitions `densenet_transition_{t}` (t from 1): batch norm `_bn`,
///   ReLU, `_conv` 1x1 to `compression` times the channels, then `_conv_p`, a 3x3 stride-2
///   conv where DenseNet has its 2x2 average pool;
/// - no batch norm or ReLU after the last block: global average pooling, dense `dense` with
///   softmax.
///
/// Every conv has a bias (the reference's conv layer always adds one) and a GlorotNormal
/// kernel; the dense kernel is GlorotNormal too; biases start at 0. Batch norms are
/// pre-activation (they normalise a conv's input, not its output): momentum 0.9, epsilon
/// 1e-3. Dropout 0.5 with the reference's data-seeded masks (or counter-keyed ones,
/// ``Configuration/dropoutMasks``).
///
/// Every convolution and the dense layer run on the MXU through ``MatrixUnit``, each with its
/// forward, `_grad_in` and `_grad_wt` operation in the reference backward layout; the stem
/// has no `_grad_in`. The reference's random campaigns never draw a `conv_p`
/// (``referenceSamplingSites``).
public struct DenseNet121: Model {
    /// The network's sizes. Recorded in manifests (under `scale`); the presets differ only in
    /// these numbers:
    ///
    /// - `tiny`: 16x16x1, initial 8, growth 4, blocks 2/2/2/2, 4 images per replica (tests);
    /// - `small`: 28x28x1 Fashion-MNIST, initial 24, growth 12, blocks 6/12/24/16 (the
    ///   reference's depth at 3/8 of its growth), 32 images per replica;
    /// - `paper`: the reference's: 32x32x3 CIFAR-10, initial 64, growth 32, blocks
    ///   6/12/24/16, 128 images per replica.
    ///
    /// All: compression 0.5, dropout 0.5, data-seeded dropout masks, 10 classes.
    public struct Configuration: Sendable, Equatable, Codable, PresetConfiguration {
        public var name: String
        public var inputH: Int
        public var inputW: Int
        public var inputChannels: Int
        public var batchPerReplica: Int
        public var classes: Int
        /// Channels out of the stem (the reference's `num_init_features`).
        public var initialFeatures: Int
        /// Channels each bottleneck adds (its `_conv2`'s filters; `_conv1` has four times as many).
        public var growthRate: Int
        /// Bottlenecks per dense block; one transition between consecutive blocks.
        public var blockLayers: [Int]
        /// A transition's filters: `int(compression * channels)`, the channel count carried
        /// as a real number from block to block as the reference's `num_channels` is.
        public var compression: Double
        /// Dropout rate after every bottleneck's `_conv2`.
        public var dropout: Double
        /// Where dropout masks come from.
        public var dropoutMasks: DropoutKeying

        public init(name: String, inputH: Int, inputW: Int, inputChannels: Int, batchPerReplica: Int, classes: Int = 10,
                    initialFeatures: Int, growthRate: Int, blockLayers: [Int], compression: Double = 0.5, dropout: Double = 0.5,
                    dropoutMasks: DropoutKeying = .dataSeeded) {
            self.name = name
            self.inputH = inputH
            self.inputW = inputW
            self.inputChannels = inputChannels
            self.batchPerReplica = batchPerReplica
            self.classes = classes
            self.initialFeatures = initialFeatures
            self.growthRate = growthRate
            self.blockLayers = blockLayers
            self.compression = compression
            self.dropout = dropout
            self.dropoutMasks = dropoutMasks
        }

        public static let tiny = Configuration(name: "tiny", inputH: 16, inputW: 16, inputChannels: 1, batchPerReplica: 4,
                                               initialFeatures: 8, growthRate: 4, blockLayers: [2, 2, 2, 2])
        public static let small = Configuration(name: "small", inputH: 28, inputW: 28, inputChannels: 1, batchPerReplica: 32,
                                                initialFeatures: 24, growthRate: 12, blockLayers: [6, 12, 24, 16])
        public static let paper = Configuration(name: "paper", inputH: 32, inputW: 32, inputChannels: 3, batchPerReplica: 128,
                                                initialFeatures: 64, growthRate: 32, blockLayers: [6, 12, 24, 16])
        public static let presets: [Configuration] = [.tiny, .small, .paper]

        /// As recorded in a manifest.
        var recorded: ModelConfiguration {
            ModelConfiguration(.object([
                "name": .string(name), "inputH": .integer(Int64(inputH)), "inputW": .integer(Int64(inputW)),
                "inputChannels": .integer(Int64(inputChannels)), "batchPerReplica": .integer(Int64(batchPerReplica)),
                "classes": .integer(Int64(classes)), "initialFeatures": .integer(Int64(initialFeatures)),
                "growthRate": .integer(Int64(growthRate)), "blockLayers": .array(blockLayers.map { .integer(Int64($0)) }),
                "compression": .number(compression), "dropout": .number(dropout), "dropoutMasks": .string(dropoutMasks.rawValue),
            ]))
        }

        /// Checks every number before anything is allocated from it; the error names the field.
        func validate(workload: String) throws(ModelError) {
            func fail(_ field: String, _ value: String, _ expected: String) -> ModelError {
                .field(field, is: value, expected: expected, workload: workload)
            }
            let fields = [("inputH", inputH, 1 << 12), ("inputW", inputW, 1 << 12), ("inputChannels", inputChannels, 1 << 12),
                          ("batchPerReplica", batchPerReplica, 1 << 14), ("classes", classes, 1 << 16),
                          ("initialFeatures", initialFeatures, 1 << 12), ("growthRate", growthRate, 1 << 10)]
            for (field, value, limit) in fields where value < 1 || value > limit {
                throw fail(field, "\(value)", "1...\(limit)")
            }
            guard (1...8).contains(blockLayers.count) else { throw fail("blockLayers", "\(blockLayers)", "1 to 8 blocks") }
            for (b, layers) in blockLayers.enumerated() where !(1...64).contains(layers) {
                throw fail("blockLayers", "\(blockLayers)", "1...64 bottlenecks per block (block \(b + 1) has \(layers))")
            }
            guard compression > 0 && compression <= 1 else { throw fail("compression", "\(compression)", "a number in (0, 1]") }
            guard dropout >= 0 && dropout < 1 else { throw fail("dropout", "\(dropout)", "a rate in [0, 1)") }
            // Every transition keeps at least one channel, and no block grows past 2^14.
            for (b, channels) in channelsBeforeTransitions.enumerated() {
                guard channels.out >= 1 else {
                    throw fail("compression", "\(compression)", "a value leaving transition \(b + 1) at least one of its \(channels.in) channels")
                }
            }
            guard (channelsBeforeTransitions.map(\.in) + [finalFeatures]).allSatisfy({ $0 <= 1 << 14 }) else {
                throw fail("growthRate", "\(growthRate)", "fewer than 2^14 channels at the end of every block")
            }
        }

        /// Per transition, the channels coming in and its filters, `int(compression *
        /// channels)`; the reference carries `channels` as a real number (it is never
        /// truncated itself), so this does too.
        var channelsBeforeTransitions: [(in: Int, out: Int)] {
            var carried = Double(initialFeatures), channels = initialFeatures
            var result: [(in: Int, out: Int)] = []
            for layers in blockLayers.dropLast() {
                carried = compression * (carried + Double(growthRate * layers))
                result.append((channels + growthRate * layers, Int(carried)))
                channels = Int(carried)
            }
            return result
        }

        /// Channels out of the last block (the pooled features).
        var finalFeatures: Int {
            (channelsBeforeTransitions.last?.out ?? initialFeatures) + growthRate * (blockLayers.last ?? 0)
        }
    }

    /// One bottleneck: indices of its layers into ``convs`` and ``norms``, its input channels
    /// and its index among the bottlenecks (its dropout layer's index).
    public struct Bottleneck: Sendable {
        public let norm1: Int, conv1: Int, norm2: Int, conv2: Int
        public let inChannels: Int
        public let index: Int
    }

    /// A transition (or the stem): its batch norm, its conv and its `conv_p`.
    public struct Transition: Sendable {
        public let norm: Int, conv: Int, convP: Int
    }

    public let workload: String
    public let scale: Configuration
    public let bnMomentum: Float = 0.9
    public let bnEpsilon: Float = 1e-3
    public let dropoutRate: Float
    public let reduction: ReductionOrder = .pairwise
    public let backwardLayout: ConvBackwardLayout = .reference
    public let initializer: Initializer = .glorotNormal

    /// Conv layers in forward order (which is the reverse of the backward order).
    public let convs: [ConvLayer]
    /// The stem: `densenet_conv`, `densenet_bn` (after the conv here), `densenet_conv_p`.
    public let stem: Transition
    public let blocks: [[Bottleneck]]
    /// `transitions[t]` runs between `blocks[t]` and `blocks[t + 1]`.
    public let transitions: [Transition]
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

    static let workloads: [WorkloadDefinition] = [definition("densenet", "DenseNet-121 (the reference's variant) trained with Adam")]

    static func definition(_ name: String, _ summary: String) -> WorkloadDefinition {
        WorkloadDefinition(name: name, summary: summary, defaultOptimizer: .adam, scales: Configuration.presets.map(\.name),
                           defaultAugmentation: .reference,
                           preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
            try Configuration.preset(scale, among: Configuration.presets, workload: name)
        }, build: { (configuration: ModelConfiguration) throws(ModelError) -> any Model in
            let c = try configuration.decode(Configuration.self, workload: name)
            try c.validate(workload: name)
            return DenseNet121(workload: name, scale: c)
        })
    }

    /// The network of `scale` (which ``Configuration/validate(workload:)`` accepted);
    /// `dropout` overrides the configuration's rate (tests: a model without dropout).
    public init(workload: String = "densenet", scale: Configuration, dropout: Double? = nil) {
        self.workload = workload
        self.scale = scale
        dropoutRate = Float(dropout ?? scale.dropout)
        var table = ParameterTable()
        var convs: [ConvLayer] = []
        let batch = scale.batchPerReplica
        func conv(_ name: String, _ h: Int, _ w: Int, _ cin: Int, filter: Int, _ cout: Int, stride: Int) -> Int {
            convs.append(table.conv(name, .same(batch: batch, inH: h, inW: w, inChannels: cin, filter: filter, outChannels: cout, stride: stride),
                                    bias: true, normSuffix: nil))
            return convs.count - 1
        }
        func shape(_ i: Int) -> ConvShape { convs[i].shape }
        let prefix = "densenet"
        // Parameters are registered in the order the reference creates them.
        let stemConv = conv(prefix + "_conv", scale.inputH, scale.inputW, scale.inputChannels, filter: 7, scale.initialFeatures, stride: 2)
        let stemNorm = table.norm(prefix + "_bn", channels: scale.initialFeatures)
        let stemP = conv(prefix + "_conv_p", shape(stemConv).outH, shape(stemConv).outW, scale.initialFeatures, filter: 3,
                         scale.initialFeatures, stride: 2)
        let stem = Transition(norm: stemNorm, conv: stemConv, convP: stemP)
        var (h, w, channels) = (shape(stemP).outH, shape(stemP).outW, scale.initialFeatures)
        var blocks: [[Bottleneck]] = [], transitions: [Transition] = []
        let widths = scale.channelsBeforeTransitions
        for (b, layers) in scale.blockLayers.enumerated() {
            if b > 0 {
                let name = "\(prefix)_transition_\(b)", out = widths[b - 1].out
                let norm = table.norm(name + "_bn", channels: channels)
                let c = conv(name + "_conv", h, w, channels, filter: 1, out, stride: 1)
                let p = conv(name + "_conv_p", h, w, out, filter: 3, out, stride: 2)
                transitions.append(Transition(norm: norm, conv: c, convP: p))
                (h, w, channels) = (shape(p).outH, shape(p).outW, out)
            }
            var block: [Bottleneck] = []
            for i in 0..<layers {
                let name = "\(prefix)_dense_block_\(b + 1)_bottleneck_\(i)", inner = 4 * scale.growthRate
                let n1 = table.norm(name + "_bn1", channels: channels)
                let c1 = conv(name + "_conv1", h, w, channels, filter: 1, inner, stride: 1)
                let n2 = table.norm(name + "_bn2", channels: inner)
                let c2 = conv(name + "_conv2", h, w, inner, filter: 3, scale.growthRate, stride: 1)
                block.append(Bottleneck(norm1: n1, conv1: c1, norm2: n2, conv2: c2, inChannels: channels,
                                        index: blocks.reduce(0) { $0 + $1.count } + i))
                channels += scale.growthRate
            }
            blocks.append(block)
        }
        features = channels
        denseWeight = table.add("dense/kernel", [channels, scale.classes])
        denseBias = table.add("dense/bias", [scale.classes])
        self.convs = convs
        self.stem = stem
        self.blocks = blocks
        self.transitions = transitions
        parameters = table.specs
        norms = table.norms
        modelState = table.modelState
        let preActivated = Set(blocks.flatMap { $0.flatMap { [$0.conv1, $0.conv2] } } + transitions.map(\.conv))
        operations = Self.operationTable(convs: convs, preActivated: preActivated, stem: stem, features: channels, scale: scale)
    }

    /// Every MXU operation of one replica's step: the convs' forward operations in forward
    /// order and the dense layer's, then the dense layer's backward and every conv's in
    /// reverse order (`_grad_in` before `_grad_wt`; the stem has no `_grad_in`), in the
    /// reference backward layout.
    ///
    /// Vector-unit work (approximate): a conv fed by batch norm + ReLU carries that work on
    /// its input (5 ops and 2 per-channel reductions forward, 8 ops and 2 reductions on
    /// `_grad_in`), the stem its own batch norm + ReLU on its output; the others their bias
    /// (1 op); `_grad_wt` the optimizer update (Adam, ~12 ops per parameter). The channel
    /// concatenations are data movement and not counted.
    static func operationTable(convs: [ConvLayer], preActivated: Set<Int>, stem: Transition, features: Int,
                               scale: Configuration) -> [MXUOperation] {
        let batch = scale.batchPerReplica
        func norm(_ i: Int) -> (elements: Int, channels: Int)? {
            let s = convs[i].shape
            if preActivated.contains(i) { return (s.inputShape.reduce(1, *), s.inChannels) }
            if i == stem.conv { return (s.outputShape.reduce(1, *), s.outChannels) }
            return nil
        }
        var table = convs.indices.map { i in
            let s = convs[i].shape
            let vector = norm(i).map { VectorWork(elements: $0.elements, opsPerElement: 5, reductions: 2, reductionOutputs: $0.channels) }
                ?? VectorWork(elements: s.gemm.m * s.gemm.n, opsPerElement: 1)
            return s.forwardOperation(convs[i].name, vector: vector)
        }
        let last = convs[convs.count - 1].shape
        let dense = Dense.classifierOperations(batch: batch, pixels: last.outH * last.outW, features: features, classes: scale.classes)
        table.append(dense.forward)
        table += dense.backward
        for i in convs.indices.reversed() {
            let s = convs[i].shape
            let inputVector = norm(i).map { VectorWork(elements: $0.elements, opsPerElement: 8, reductions: 2, reductionOutputs: $0.channels) }
                ?? VectorWork(elements: s.inputShape.reduce(1, *), opsPerElement: 1)
            table += s.backwardOperations(convs[i].name, layout: .reference, needInput: i != stem.conv, inputVector: inputVector,
                                          weightVector: VectorWork(elements: s.gemm.k * s.gemm.n, opsPerElement: 12))
        }
        return table
    }

    /// The reference's random campaigns draw from the convs' forward and `_grad_in`
    /// operations except the `conv_p` layers (injectable by name, never drawn).
    public var referenceSamplingSites: [SiteID] {
        let dense = Set(operations.filter(\.isDense).map(\.site.layer))
        return operations.map(\.site).filter { !dense.contains($0.layer) && !$0.layer.hasSuffix("_conv_p") && $0.kind != .gradWt }
    }

    /// Fresh parameters: GlorotNormal kernels (``ParameterTable/initialState(parameters:norms:seed:initializer:)``),
    /// zero biases, gamma 1, beta 0; moving means 0, variances 1.
    public func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        ParameterTable.initialState(parameters: parameters, norms: norms, seed: seed, initializer: initializer)
    }

    /// What the backward pass needs from the forward pass.
    struct Tape {
        var convs: [ConvLayer.Cache?]
        var norms: [BatchNorm.Cache?]
        /// Each batch norm's output, the input of the ReLU after it.
        var normOutputs: [[Float]]
        var statistics: [(mean: [Float], variance: [Float])]
        /// Each bottleneck's dropout mask (nil: no dropout).
        var masks: [[Float]?]
        /// Each bottleneck's dropout input (its `_conv2` output), kept for the key check.
        var dropoutInputs: [[Float]]
        var pooled: [Float]
        var pixels: Int
    }

    /// The dropout mask of bottleneck `index` for its input `x`, or nil without dropout
    /// (inference, rate 0).
    func dropoutMask(_ x: [Float], index: Int, origin: BatchOrigin?) -> [Float]? {
        Dropout.mask(for: x, rate: dropoutRate, keying: scale.dropoutMasks, origin: origin, layer: index)
    }

    /// The forward pass to the logits. `images` NHWC, `batch` images; `origin` keys the
    /// dropout masks (nil: no dropout).
    func forward(_ p: [[Float]], images: [Float], batch: Int, normalization: NormMode, origin: BatchOrigin?,
                 unit: MatrixUnit) -> (logits: [Float], tape: Tape) {
        let bottlenecks = blocks.reduce(0) { $0 + $1.count }
        var tape = Tape(convs: Array(repeating: nil, count: convs.count), norms: Array(repeating: nil, count: norms.count),
                        normOutputs: Array(repeating: [], count: norms.count), statistics: Array(repeating: ([], []), count: norms.count),
                        masks: Array(repeating: nil, count: bottlenecks), dropoutInputs: Array(repeating: [], count: bottlenecks),
                        pooled: [], pixels: 0)
        func conv(_ i: Int, _ x: [Float]) -> [Float] {
            let r = convs[i].forward(x, p, batch: batch, norms: norms, settings: normSettings, normalization, unit: unit)
            tape.convs[i] = r.cache
            return r.y
        }
        // Batch norm `n`, then ReLU.
        func normReLU(_ n: Int, _ x: [Float]) -> [Float] {
            let r = normSettings.forward(x, rows: x.count / norms[n].channels, norm: n, norms: norms, p, normalization)
            if let s = r.statistics { tape.statistics[n] = s }
            tape.norms[n] = r.cache
            tape.normOutputs[n] = r.y
            return ReLU.forward(r.y)
        }
        var x = conv(stem.convP, normReLU(stem.norm, conv(stem.conv, images)))
        for (b, block) in blocks.enumerated() {
            if b > 0 {
                let t = transitions[b - 1]
                x = conv(t.convP, conv(t.conv, normReLU(t.norm, x)))
            }
            for neck in block {
                var y = conv(neck.conv2, normReLU(neck.norm2, conv(neck.conv1, normReLU(neck.norm1, x))))
                tape.dropoutInputs[neck.index] = y
                if let mask = dropoutMask(y, index: neck.index, origin: origin) {
                    tape.masks[neck.index] = mask
                    y = Dropout.forward(y, mask: mask)
                }
                let rows = x.count / neck.inChannels
                x = ChannelConcat.forward(x, channelsA: neck.inChannels, y, channelsB: scale.growthRate, rows: rows)
            }
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
        var grads = parameters.map { [Float](repeating: 0, count: $0.count) }

        let dpooled = Dense.backwardInput(dy: dlogits, w: p[denseWeight], batch: batch, inFeatures: features,
                                          outFeatures: scale.classes, layer: "dense", unit: unit)
        (grads[denseWeight], grads[denseBias]) = Dense.backwardWeight(x: tape.pooled, dy: dlogits, batch: batch, inFeatures: features,
                                                                       outFeatures: scale.classes, layer: "dense", unit: unit)
        var dx = GlobalAveragePool.backward(dy: dpooled, batch: batch, pixels: tape.pixels, channels: features)

        func conv(_ i: Int, _ dy: [Float], needInput: Bool = true) -> [Float] {
            guard let cache = tape.convs[i] else { preconditionFailure("\(convs[i].name): backward without a forward") }
            return convs[i].backward(dy, cache: cache, p, batch: batch, norms: norms, settings: normSettings, layout: backwardLayout,
                                     needInput: needInput, unit: unit, grads: &grads)
        }
        // Through ReLU, then batch norm `n`.
        func normReLU(_ n: Int, _ dy: [Float]) -> [Float] {
            guard let cache = tape.norms[n] else { preconditionFailure("\(norms[n].name): backward without a forward") }
            let d = ReLU.backward(dy: dy, x: tape.normOutputs[n])
            return normSettings.backward(d, cache: cache, rows: d.count / norms[n].channels, norm: n, norms: norms, p, grads: &grads)
        }
        for (b, block) in blocks.enumerated().reversed() {
            for neck in block.reversed() {
                // dL/d[x | y] -> dL/dx (the concatenation's) + dL/dx (through the bottleneck).
                let rows = dx.count / (neck.inChannels + scale.growthRate)
                let (dskip, dy) = ChannelConcat.backward(dy: dx, channelsA: neck.inChannels, channelsB: scale.growthRate, rows: rows)
                let dconv2 = tape.masks[neck.index].map { Dropout.backward(dy: dy, mask: $0) } ?? dy
                let dthrough = normReLU(neck.norm1, conv(neck.conv1, normReLU(neck.norm2, conv(neck.conv2, dconv2))))
                dx = elementwise(dskip, dthrough, +)
            }
            if b > 0 {
                let t = transitions[b - 1]
                dx = normReLU(t.norm, conv(t.conv, conv(t.convP, dx)))
            }
        }
        _ = conv(stem.conv, normReLU(stem.norm, conv(stem.convP, dx)), needInput: false)
        return ReplicaResult(loss: loss, correct: correct, gradients: grads, statistics: tape.statistics.flatMap { [$0.mean, $0.variance] })
    }

    /// The moving statistics: `moving = momentum * moving + (1 - momentum) * batch`, per
    /// batch-norm layer (``modelState`` order).
    public func updateModelState(_ state: inout [[Float]], statistics: [[Float]]) {
        for i in statistics.indices { BatchNorm.updateMoving(&state[i], batch: statistics[i], momentum: bnMomentum) }
    }

    /// Inference with the moving statistics and no dropout: mean loss and correct predictions.
    public func evaluate(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> (loss: Float, correct: Int) {
        let logits = forward(p, images: data.images, batch: data.labels.count, normalization: .moving(modelState), origin: nil, unit: unit).logits
        let r = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: data.labels, classes: scale.classes)
        return (r.loss, r.correct)
    }
}
