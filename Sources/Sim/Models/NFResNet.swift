/// The reference study's `nfnet` workload: a normaliser-free ResNet (NF-ResNet, Brock et al.
/// 2021) as its code built it, with alpha 1, no stochastic depth, no squeeze-excite and no
/// dropout.
///
/// - Stem `NF_ResNet_init_conv`: 3x3 stride 2 (SAME), ``Configuration/stemWidth`` filters,
///   with bias, no activation after it.
/// - Four stages of two bottleneck blocks, outputs ``Configuration/stageWidths`` (inner width a
///   quarter of it), strides 1, 2, 2, 2 (on the 3x3 conv). Block `NF_ResNet_block_{k}`:
///   `h = act(x) * beta`; main path `conv0` (1x1) -> act -> `conv1` (3x3, the stride) -> act
///   -> `conv2` (1x1) -> times the scalar `skip_gain` (SkipInit, initialised to 0) -> times
///   alpha (1); plus the shortcut: `conv_shortcut(h)` (1x1, the stride) where the block changes
///   shape (the first block of every stage), `x` itself otherwise.
/// - `act` = ReLU times 1.7139588594436646 (``ScaledReLU/nfGain``); `beta = 1 / expected std`,
///   where the expected std starts at 1, is reset to 1 after the first block of a stage and
///   grows as `sqrt(std^2 + alpha^2)` after every block: betas 1, 1/sqrt 2, then 1/sqrt 3,
///   1/sqrt 2 for each later stage.
/// - Head: act, global mean, dense (`dense`, GlorotNormal, bias) with softmax cross-entropy.
/// - Every convolution has a bias (the reference's conv layer is Keras's with its default
///   `use_bias`) and is weight-standardised (``WeightStandardization``, epsilon 1e-4) with a
///   learnable per-output-channel gain (initialised to 1); kernels are drawn
///   VarianceScaling(fan_in) untruncated normal (``Initializer/varianceScalingFanInNormal``).
///
/// No batch norm: ``modelState`` is empty.
///
/// The weight standardisation runs on the vector unit, before the convolution: the MXU's
/// weight operand of `<layer>` is the standardised kernel times its gain, and `<layer>_grad_in`
/// multiplies by that same kernel (rotated, in the reference layout). `<layer>_grad_wt`
/// computes dL/d(standardised kernel); the vector unit then takes it through the
/// standardisation to the raw kernel and the gain. The operation table counts that vector work.
///
/// Order of execution, as the reference's code runs it: in each block the shortcut conv runs
/// first (forward and backward), then conv0, conv1, conv2 forward and conv2, conv1, conv0
/// backward. Names are the reference's (`NF_ResNet_init_conv`, `NF_ResNet_block_{k}_conv{0,1,2}`,
/// `NF_ResNet_block_{k}_conv_shortcut`, `dense`), each with `_grad_in` and `_grad_wt` (the
/// stem has no `_grad_in`: nothing consumes the image's gradient). Two reference defects are
/// not reproduced: its forward calls pass no injection arguments (every listed forward site is
/// a silent no-op there) and its backward layers are named without the underscore
/// (`NF_ResNet_block_0conv0_grad_in`), so no listed backward name matches; here every site
/// injects under the listed name.
public struct NFResNet: Model {
    /// Sizes of one replica's share: input shape, stem width, the four stage (block output)
    /// widths (inner widths are a quarter), examples per replica, classes. Recorded in
    /// manifests (under `scale`).
    ///
    /// - `tiny`: 16x16x1 inputs, stem 4, stages 16/32/64/128, 4 images per replica (tests);
    /// - `small`: 28x28x1 Fashion-MNIST, stem 16, stages 64/128/256/512 (the paper's widths
    ///   divided by 4), 32 images per replica;
    /// - `paper`: the reference shapes: 32x32x3 CIFAR-10, stem 64, stages 256/512/1024/2048,
    ///   128 per replica (global batch 1024 over 8 replicas).
    public struct Configuration: Sendable, Equatable, Codable, PresetConfiguration {
        public var name: String
        public var inputH: Int
        public var inputW: Int
        public var inputChannels: Int
        public var stemWidth: Int
        public var stageWidths: [Int]
        public var batchPerReplica: Int
        public var classes: Int

        public init(name: String, inputH: Int, inputW: Int, inputChannels: Int, stemWidth: Int, stageWidths: [Int],
                    batchPerReplica: Int, classes: Int) {
            self.name = name
            self.inputH = inputH
            self.inputW = inputW
            self.inputChannels = inputChannels
            self.stemWidth = stemWidth
            self.stageWidths = stageWidths
            self.batchPerReplica = batchPerReplica
            self.classes = classes
        }

        public static let tiny = Configuration(name: "tiny", inputH: 16, inputW: 16, inputChannels: 1, stemWidth: 4,
                                               stageWidths: [16, 32, 64, 128], batchPerReplica: 4, classes: 10)
        public static let small = Configuration(name: "small", inputH: 28, inputW: 28, inputChannels: 1, stemWidth: 16,
                                                stageWidths: [64, 128, 256, 512], batchPerReplica: 32, classes: 10)
        public static let paper = Configuration(name: "paper", inputH: 32, inputW: 32, inputChannels: 3, stemWidth: 64,
                                                stageWidths: [256, 512, 1024, 2048], batchPerReplica: 128, classes: 10)
        public static let presets: [Configuration] = [.tiny, .small, .paper]

        /// As recorded in a manifest.
        var recorded: ModelConfiguration {
            ModelConfiguration(.object([
                "name": .string(name), "inputH": .integer(Int64(inputH)), "inputW": .integer(Int64(inputW)),
                "inputChannels": .integer(Int64(inputChannels)), "stemWidth": .integer(Int64(stemWidth)),
                "stageWidths": .array(stageWidths.map { .integer(Int64($0)) }),
                "batchPerReplica": .integer(Int64(batchPerReplica)), "classes": .integer(Int64(classes)),
            ]))
        }

        /// Checks every size before anything is allocated from it.
        func validate(workload: String) throws(ModelError) {
            let fields = [("inputH", inputH, 1 << 12), ("inputW", inputW, 1 << 12), ("inputChannels", inputChannels, 1 << 12),
                          ("stemWidth", stemWidth, 1 << 14), ("batchPerReplica", batchPerReplica, 1 << 14), ("classes", classes, 1 << 16)]
            for (field, value, limit) in fields { try ModelError.check(field, value, in: 1...limit, workload: workload) }
            guard stageWidths.count == NFResNet.depths.count else {
                throw .invalidConfiguration("the \(workload) configuration's field 'stageWidths' has \(stageWidths.count) widths; "
                                            + "expected \(NFResNet.depths.count), one per stage")
            }
            for (i, width) in stageWidths.enumerated() where width < 4 || width > 1 << 14 || width % 4 != 0 {
                throw .invalidConfiguration("the \(workload) configuration's field 'stageWidths[\(i)]' is \(width); "
                                            + "expected a multiple of 4 (the inner width is a quarter of it) in 4...\(1 << 14)")
            }
        }
    }

    /// Blocks per stage (the reference's `variant_dict['ResNet50']`, cut to 2/2/2/2) and the
    /// stride of each stage's first block.
    public static let depths = [2, 2, 2, 2]
    public static let strides = [1, 2, 2, 2]
    /// The residual branch's constant multiplier (the reference's `alpha`, 1 for `nfnet`).
    public static let alpha: Float = 1
    /// Epsilon of the weight standardisation (`max(var * fanIn, epsilon)`).
    public static let standardizationEpsilon: Float = 1e-4
    /// Name prefix of every layer.
    static let prefix = "NF_ResNet"

    /// A bottleneck block: its convs as indices into ``convs``, its `skip_gain` parameter and
    /// its `beta`.
    public struct Block: Sendable {
        public let name: String
        public let shortcut: Int?
        public let conv0: Int
        public let conv1: Int
        public let conv2: Int
        public let skipGain: Int
        public let beta: Float
    }

    public let workload: String
    public let scale: Configuration
    /// Gain of the scaled activation (``ScaledReLU/nfGain``).
    public let activationGain: Float
    /// Whether the backward takes the kernel gradient through the weight standardisation
    /// (always, except in the test that shows the reference check notices its absence).
    let standardizationBackward: Bool
    /// How biases, the standardisation and `skip_gain` gradients are summed.
    public let reduction: ReductionOrder = .pairwise
    public let backwardLayout: ConvBackwardLayout = .reference
    /// Conv layers in forward order: stem, then per block shortcut (if any), conv0, conv1, conv2.
    public let convs: [ConvLayer]
    /// The gain parameter of each conv (``convs`` order).
    public let gains: [Int]
    public let blocks: [Block]
    public let denseWeight: Int
    public let denseBias: Int
    public let parameters: [TensorSpec]
    public let modelState: [TensorSpec] = []
    public let features: Int
    public let operations: [MXUOperation]

    public var configuration: ModelConfiguration { scale.recorded }
    public var scaleName: String { scale.name }
    public var input: InputSpec { .images(height: scale.inputH, width: scale.inputW, channels: scale.inputChannels, classes: scale.classes) }
    public var batchPerReplica: Int { scale.batchPerReplica }
    var settings: NormSettings { NormSettings(epsilon: 0, order: reduction) }

    /// The reference's random campaigns draw from its lists, which leave out the stem: the
    /// 28 block convolutions forward and their 28 `_grad_in` operations.
    public var referenceSamplingSites: [SiteID] {
        operations.filter { !$0.isDense && $0.site.kind != .gradWt && $0.site.layer != convs[0].name }.map(\.site)
    }

    static let workloads: [WorkloadDefinition] = [
        WorkloadDefinition(name: "nfnet", summary: "NF-ResNet (weight-standardised bottleneck blocks, no batch norm), Adam",
                           defaultOptimizer: .adam, scales: Configuration.presets.map(\.name), defaultAugmentation: .reference,
                           defaultSchedule: LearningRateSchedule(initial: 0.01, final: 1e-4, decaySteps: 5000),
                           preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
            try Configuration.preset(scale, among: Configuration.presets, workload: "nfnet")
        }, build: { (configuration: ModelConfiguration) throws(ModelError) -> any Model in
            let c = try configuration.decode(Configuration.self, workload: "nfnet")
            try c.validate(workload: "nfnet")
            return NFResNet(workload: "nfnet", scale: c)
        }),
    ]

    /// The network of `scale` (validate it first: see ``Configuration``).
    public init(workload: String = "nfnet", scale: Configuration) {
        self.init(workload: workload, scale: scale, activationGain: ScaledReLU.nfGain, standardizationBackward: true)
    }

    /// A variant for tests that show a check's sensitivity: another activation gain, or no
    /// backward through the weight standardisation.
    init(workload: String, scale: Configuration, activationGain: Float, standardizationBackward: Bool) {
        self.workload = workload
        self.scale = scale
        self.activationGain = activationGain
        self.standardizationBackward = standardizationBackward
        var table = ParameterTable()
        var convs: [ConvLayer] = [], gains: [Int] = [], blocks: [Block] = []
        func conv(_ name: String, _ s: ConvShape) -> Int {
            convs.append(table.conv(name, s, bias: true, normSuffix: nil))
            gains.append(table.add(name + "/gain", [s.outChannels]))
            return convs.count - 1
        }
        let batch = scale.batchPerReplica
        let stem = ConvShape.same(batch: batch, inH: scale.inputH, inW: scale.inputW, inChannels: scale.inputChannels,
                                  filter: 3, outChannels: scale.stemWidth, stride: 2)
        _ = conv(Self.prefix + "_init_conv", stem)
        var (h, w, channels) = (stem.outH, stem.outW, scale.stemWidth)
        var expectedStd = 1.0
        let alpha = Double(Self.alpha)
        for (stage, width) in scale.stageWidths.enumerated() {
            for index in 0..<Self.depths[stage] {
                let stride = index == 0 ? Self.strides[stage] : 1
                let name = "\(Self.prefix)_block_\(blocks.count)"
                let inner = width / 4
                let beta = Float(1 / expectedStd)
                let shortcut = stride > 1 || channels != width
                    ? conv(name + "_conv_shortcut", .same(batch: batch, inH: h, inW: w, inChannels: channels, filter: 1, outChannels: width, stride: stride))
                    : nil
                let s0 = ConvShape.same(batch: batch, inH: h, inW: w, inChannels: channels, filter: 1, outChannels: inner, stride: 1)
                let c0 = conv(name + "_conv0", s0)
                let s1 = ConvShape.same(batch: batch, inH: h, inW: w, inChannels: inner, filter: 3, outChannels: inner, stride: stride)
                let c1 = conv(name + "_conv1", s1)
                let c2 = conv(name + "_conv2", .same(batch: batch, inH: s1.outH, inW: s1.outW, inChannels: inner, filter: 1, outChannels: width, stride: 1))
                let skip = table.add(name + "/skip_gain", [1])
                blocks.append(Block(name: name, shortcut: shortcut, conv0: c0, conv1: c1, conv2: c2, skipGain: skip, beta: beta))
                (h, w, channels) = (s1.outH, s1.outW, width)
                // The reference's running estimate: reset after a stage's first block, then one block of growth.
                if index == 0 { expectedStd = 1 }
                expectedStd = (expectedStd * expectedStd + alpha * alpha).squareRoot()
            }
        }
        features = channels
        denseWeight = table.add("dense/kernel", [channels, scale.classes])
        denseBias = table.add("dense/bias", [scale.classes])
        self.convs = convs
        self.gains = gains
        self.blocks = blocks
        self.parameters = table.specs
        self.operations = Self.operationTable(convs: convs, blocks: blocks, features: channels, scale: scale)
    }

    /// Every MXU operation of one replica's step, in execution order: the forward convs (stem,
    /// then per block shortcut, conv0, conv1, conv2) and the dense layer, then the dense
    /// layer's backward and per block, last block first, shortcut, conv2, conv1, conv0
    /// (`_grad_in` before `_grad_wt`, reference layouts), and the stem's `_grad_wt`.
    ///
    /// Vector-unit work (approximate elementwise passes): a conv's forward has its epilogue
    /// (bias, activation and scalar gains: 3 passes over the output, E = M x N elements) and
    /// the weight standardisation of its kernel (S = K x N elements: centre, square, scale and
    /// two per-channel reductions, about 6 passes), counted as `ceil(6 S / E)` further passes
    /// over the output; `_grad_in` 3 passes (activation gradient, beta, the shortcut's sum);
    /// `_grad_wt` the backward of the standardisation (about 6 passes and 3 reductions over
    /// the kernel) and the optimizer update (Adam, ~12 per parameter).
    static func operationTable(convs: [ConvLayer], blocks: [Block], features: Int, scale: Configuration) -> [MXUOperation] {
        let batch = scale.batchPerReplica
        let last = convs[convs.count - 1].shape
        let dense = Dense.classifierOperations(batch: batch, pixels: last.outH * last.outW, features: features, classes: scale.classes, poolOps: 3)
        var table = convs.map { c in
            let g = c.shape.gemm
            let outputs = g.m * g.n, kernel = g.k * g.n
            return c.shape.forwardOperation(c.name, vector: VectorWork(elements: outputs, opsPerElement: 3 + ceilDiv(6 * kernel, outputs)))
        }
        table.append(dense.forward)
        table += dense.backward
        func backward(_ i: Int) -> [MXUOperation] {
            let c = convs[i], g = c.shape.gemm
            return c.shape.backwardOperations(c.name, layout: .reference, needInput: i != 0,
                                              inputVector: VectorWork(elements: c.shape.inputShape.reduce(1, *), opsPerElement: 3),
                                              weightVector: VectorWork(elements: g.k * g.n, opsPerElement: 12 + 6, reductions: 3,
                                                                       reductionOutputs: g.n))
        }
        for b in blocks.reversed() {
            for i in [b.shortcut, b.conv2, b.conv1, b.conv0].compactMap({ $0 }) { table += backward(i) }
        }
        table += backward(0)
        return table
    }

    /// Fresh parameters: kernels VarianceScaling(fan_in) normal and the dense kernel
    /// GlorotNormal, drawn from `CounterRNG(seed, .initialization, tensor index)`; gains 1;
    /// biases and `skip_gain` 0.
    public func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        var params: [[Float]] = []
        for (i, spec) in parameters.enumerated() {
            if spec.name.hasSuffix("/kernel") {
                var rng = CounterRNG(seed: seed, purpose: .initialization, i)
                let initializer: Initializer = i == denseWeight ? .glorotNormal : .varianceScalingFanInNormal
                params.append(initializer.kernel(shape: spec.shape, rng: &rng))
            } else {
                params.append([Float](repeating: spec.name.hasSuffix("/gain") ? 1 : 0, count: spec.count))
            }
        }
        return (params, [])
    }

    /// What the backward pass needs from the forward pass.
    struct Tape {
        var convs: [ConvLayer.Cache?]
        var convOutputs: [[Float]]                 // each conv's output after its bias
        var blockInputs: [[Float]]
        var final: [Float]                         // the last block's output, before the head's act
        var pooled: [Float]
        var pixels: Int
    }

    /// Every conv's kernel standardised (times its gain), in a copy of `p`: what the convs
    /// multiply with, forward and backward.
    func standardize(_ p: [[Float]]) -> (weights: [[Float]], caches: [WeightStandardization.Cache]) {
        var q = p
        var caches: [WeightStandardization.Cache] = []
        for (i, c) in convs.enumerated() {
            let fanIn = c.shape.filterH * c.shape.filterW * c.shape.inChannels
            let ws = WeightStandardization.forward(w: p[c.weight], gain: p[gains[i]], fanIn: fanIn, outChannels: c.shape.outChannels,
                                                   epsilon: Self.standardizationEpsilon, order: reduction)
            q[c.weight] = ws.y
            caches.append(ws.cache)
        }
        return (q, caches)
    }

    /// The forward pass to the logits. `images` NHWC, `batch` images; `q` holds the
    /// standardised kernels (``standardize(_:)``).
    func forward(_ q: [[Float]], images: [Float], batch: Int, unit: MatrixUnit) -> (logits: [Float], tape: Tape) {
        var tape = Tape(convs: Array(repeating: nil, count: convs.count),
                        convOutputs: Array(repeating: [], count: convs.count), blockInputs: [], final: [], pooled: [], pixels: 0)
        func conv(_ i: Int, _ x: [Float]) -> [Float] {
            let r = convs[i].forward(x, q, batch: batch, norms: [], settings: settings, .batch, unit: unit)
            tape.convs[i] = r.cache
            tape.convOutputs[i] = r.y
            return r.y
        }
        let act = { (x: [Float]) in ScaledReLU.forward(x, gain: activationGain) }
        var x = conv(0, images)
        for block in blocks {
            tape.blockInputs.append(x)
            // beta * act(x) and alpha * skip * main + shortcut, each in one pass.
            let h = NFBlockPasses.entry(x, gain: activationGain, beta: block.beta)
            let shortcut = block.shortcut.map { conv($0, h) } ?? x
            let main = conv(block.conv2, act(conv(block.conv1, act(conv(block.conv0, h)))))
            x = NFBlockPasses.exit(main: main, skip: q[block.skipGain][0], alpha: Self.alpha, shortcut: shortcut)
        }
        tape.final = x
        tape.pixels = x.count / (batch * features)
        tape.pooled = GlobalAveragePool.forward(x: act(x), batch: batch, pixels: tape.pixels, channels: features)
        let logits = Dense.forward(x: tape.pooled, w: q[denseWeight], b: q[denseBias], batch: batch, inFeatures: features,
                                   outFeatures: scale.classes, layer: "dense", unit: unit)
        return (logits, tape)
    }

    /// Forward, loss and backward for one replica's batch (`images` NHWC).
    public func trainReplica(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> ReplicaResult {
        let batch = data.labels.count
        let (q, standardized) = standardize(p)
        let (logits, tape) = forward(q, images: data.images, batch: batch, unit: unit)
        let (loss, correct, dlogits) = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: data.labels, classes: scale.classes)
        var grads = parameters.map { [Float](repeating: 0, count: $0.count) }

        let dpooled = Dense.backwardInput(dy: dlogits, w: q[denseWeight], batch: batch, inFeatures: features,
                                          outFeatures: scale.classes, layer: "dense", unit: unit)
        (grads[denseWeight], grads[denseBias]) = Dense.backwardWeight(x: tape.pooled, dy: dlogits, batch: batch, inFeatures: features,
                                                                       outFeatures: scale.classes, layer: "dense", unit: unit)
        let act = { (dy: [Float], x: [Float]) in ScaledReLU.backward(dy: dy, x: x, gain: activationGain) }
        var dx = act(GlobalAveragePool.backward(dy: dpooled, batch: batch, pixels: tape.pixels, channels: features), tape.final)

        // dL/d(conv input) from dL/d(conv output); records the bias gradient, then takes
        // dL/d(standardised kernel) through the standardisation to the kernel and the gain.
        func conv(_ i: Int, _ dy: [Float], needInput: Bool = true) -> [Float] {
            guard let cache = tape.convs[i] else { preconditionFailure("\(convs[i].name): backward without a forward") }
            let c = convs[i]
            let dInput = c.backward(dy, cache: cache, q, batch: batch, norms: [], settings: settings, layout: backwardLayout,
                                    needInput: needInput, unit: unit, grads: &grads)
            guard standardizationBackward else { return dInput }
            (grads[c.weight], grads[gains[i]]) = WeightStandardization.backward(
                dy: grads[c.weight], cache: standardized[i], gain: p[gains[i]],
                fanIn: c.shape.filterH * c.shape.filterW * c.shape.inChannels, outChannels: c.shape.outChannels, order: reduction)
            return dInput
        }
        for (b, block) in blocks.enumerated().reversed() {
            let (dconv2, dskip) = NFBlockPasses.exitBackward(dy: dx, main: tape.convOutputs[block.conv2], skip: p[block.skipGain][0],
                                                             alpha: Self.alpha, order: reduction)
            grads[block.skipGain] = [dskip]
            let dshortcut = block.shortcut.map { conv($0, dx) }
            let dconv1 = act(conv(block.conv2, dconv2), tape.convOutputs[block.conv1])
            let dconv0 = act(conv(block.conv1, dconv1), tape.convOutputs[block.conv0])
            var dh = conv(block.conv0, dconv0)
            if let dshortcut { dh = elementwise(dh, dshortcut, +) }
            // The identity shortcut's gradient (dx) joins in the same pass.
            dx = NFBlockPasses.entryBackward(dy: dh, x: tape.blockInputs[b], gain: activationGain, beta: block.beta,
                                             adding: block.shortcut == nil ? dx : nil)
        }
        _ = conv(0, dx, needInput: false)
        return ReplicaResult(loss: loss, correct: correct, gradients: grads, statistics: [])
    }

    /// No model state to update.
    public func updateModelState(_ state: inout [[Float]], statistics: [[Float]]) {}

    /// Inference: mean loss and correct predictions.
    public func evaluate(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> (loss: Float, correct: Int) {
        let logits = forward(standardize(p).weights, images: data.images, batch: data.labels.count, unit: unit).logits
        let r = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: data.labels, classes: scale.classes)
        return (r.loss, r.correct)
    }
}
