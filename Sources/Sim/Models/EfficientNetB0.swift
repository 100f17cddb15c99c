/// EfficientNet-B0 as the reference study built it (width and depth 1.0, dropout and
/// drop-connect 0): a 3x3 stride-2 stem `conv1` (no bias) with batch norm `bn1` and swish;
/// seven stages of MBConv blocks `block{i}_mbconv_{j}`; a 1x1 head `conv2` to 1280 channels
/// with batch norm `bn2` and swish; global average pooling and a dense classifier.
///
/// An MBConv block, in the reference's order (which differs from the published B0):
/// `_conv1` 1x1 expansion (no bias; present even for expansion 1), `_bn1`, swish; the
/// depthwise `kxk` convolution (stride s, no bias), `_bn2`; squeeze-and-excite: global
/// average pool, `_se_reduce_conv` 1x1 with bias to `max(1, int(0.25 * expanded))`, swish,
/// `_se_expand_conv` 1x1 with bias back to the expanded channels, sigmoid, multiply; THEN
/// swish; `_conv2` 1x1 projection (no bias), `_bn3`; plus the block's input when the stride is
/// 1 and the channels do not change. Batch norms: momentum 0.9, epsilon 1e-3. Kernels
/// GlorotNormal (depthwise kernels too, with Keras's fans of `[k, k, C, 1]`), biases zero.
///
/// Injection sites: every conv (`conv1`, `conv2`, `{block}_conv1`, `_se_reduce_conv`,
/// `_se_expand_conv`, `_conv2`), the dense layer, and the depthwise convolutions
/// `{block}_depthwise`, which the reference could not inject; each with `_grad_in` and
/// `_grad_wt` (the stem without `_grad_in`). The depthwise convolutions run on the vector unit
/// (``DepthwiseConv2D``, ``ExecutionUnit/vector``); the reference's random campaigns never
/// draw them (``referenceSamplingSites``).
public struct EfficientNetB0: Model {
    /// One stage of MBConv blocks.
    public struct Stage: Sendable, Equatable, Codable {
        public var expand: Int
        public var kernel: Int
        public var stride: Int
        public var outChannels: Int
        public var repeats: Int

        public init(expand: Int, kernel: Int, stride: Int, outChannels: Int, repeats: Int) {
            self.expand = expand
            self.kernel = kernel
            self.stride = stride
            self.outChannels = outChannels
            self.repeats = repeats
        }
    }

    /// Sizes of one replica's share, recorded in manifests (under `scale`).
    ///
    /// - `paper`: the reference's B0 on 32x32x3 CIFAR-10, 128 images per replica;
    /// - `small`: the same network on 28x28x1 Fashion-MNIST, 32 images per replica;
    /// - `tiny`: 16x16x1, stem 8, one or two blocks per stage at widths 8..40, head 64, 4
    ///   images per replica (tests: seconds).
    public struct Configuration: Sendable, Equatable, Codable, PresetConfiguration {
        public var name: String
        public var inputH: Int
        public var inputW: Int
        public var inputChannels: Int
        public var batchPerReplica: Int
        public var classes: Int
        public var stemWidth: Int
        public var headWidth: Int
        public var stages: [Stage]

        /// The reference's B0 stages: (expand, kernel, stride, out channels, repeats).
        public static let b0Stages = [
            Stage(expand: 1, kernel: 3, stride: 1, outChannels: 16, repeats: 1),
            Stage(expand: 6, kernel: 3, stride: 2, outChannels: 24, repeats: 2),
            Stage(expand: 6, kernel: 5, stride: 2, outChannels: 40, repeats: 2),
            Stage(expand: 6, kernel: 3, stride: 2, outChannels: 80, repeats: 3),
            Stage(expand: 6, kernel: 5, stride: 1, outChannels: 112, repeats: 3),
            Stage(expand: 6, kernel: 5, stride: 2, outChannels: 192, repeats: 4),
            Stage(expand: 6, kernel: 3, stride: 1, outChannels: 320, repeats: 1),
        ]

        public static let tiny = Configuration(name: "tiny", inputH: 16, inputW: 16, inputChannels: 1, batchPerReplica: 4, classes: 10,
                                               stemWidth: 8, headWidth: 64, stages: [
            Stage(expand: 1, kernel: 3, stride: 1, outChannels: 8, repeats: 1),
            Stage(expand: 6, kernel: 3, stride: 2, outChannels: 8, repeats: 1),
            Stage(expand: 6, kernel: 5, stride: 2, outChannels: 16, repeats: 1),
            Stage(expand: 6, kernel: 3, stride: 2, outChannels: 16, repeats: 1),
            Stage(expand: 6, kernel: 5, stride: 1, outChannels: 24, repeats: 2),
            Stage(expand: 6, kernel: 5, stride: 2, outChannels: 32, repeats: 1),
            Stage(expand: 6, kernel: 3, stride: 1, outChannels: 40, repeats: 1),
        ])
        public static let small = Configuration(name: "small", inputH: 28, inputW: 28, inputChannels: 1, batchPerReplica: 32, classes: 10,
                                                stemWidth: 32, headWidth: 1280, stages: b0Stages)
        public static let paper = Configuration(name: "paper", inputH: 32, inputW: 32, inputChannels: 3, batchPerReplica: 128, classes: 10,
                                                stemWidth: 32, headWidth: 1280, stages: b0Stages)
        public static let presets: [Configuration] = [.tiny, .small, .paper]

        /// As recorded in a manifest (the same fields as the Codable encoding).
        var recorded: ModelConfiguration {
            func int(_ v: Int) -> JSONValue { .integer(Int64(v)) }
            let stages = stages.map { s -> JSONValue in
                .object(["expand": int(s.expand), "kernel": int(s.kernel), "stride": int(s.stride), "outChannels": int(s.outChannels),
                         "repeats": int(s.repeats)])
            }
            return ModelConfiguration(.object(["name": .string(name), "inputH": int(inputH), "inputW": int(inputW),
                                               "inputChannels": int(inputChannels), "batchPerReplica": int(batchPerReplica),
                                               "classes": int(classes), "stemWidth": int(stemWidth), "headWidth": int(headWidth),
                                               "stages": .array(stages)]))
        }

        /// Checks every size before anything is allocated from it.
        func validate(workload: String) throws(ModelError) {
            func check(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws(ModelError) {
                try ModelError.check(field, value, in: range, workload: workload)
            }
            try check("inputH", inputH, 1...(1 << 12))
            try check("inputW", inputW, 1...(1 << 12))
            try check("inputChannels", inputChannels, 1...(1 << 12))
            try check("batchPerReplica", batchPerReplica, 1...(1 << 14))
            try check("classes", classes, 1...(1 << 16))
            try check("stemWidth", stemWidth, 1...(1 << 12))
            try check("headWidth", headWidth, 1...(1 << 14))
            try check("stages (count)", stages.count, 1...16)
            for (i, s) in stages.enumerated() {
                let at = "stages[\(i)]."
                try check(at + "expand", s.expand, 1...16)
                try check(at + "kernel", s.kernel, 1...7)
                guard s.kernel % 2 == 1 else {
                    throw .field(at + "kernel", is: "\(s.kernel)", expected: "an odd size (1, 3, 5 or 7)", workload: workload)
                }
                try check(at + "stride", s.stride, 1...2)
                try check(at + "outChannels", s.outChannels, 1...(1 << 12))
                try check(at + "repeats", s.repeats, 1...16)
            }
        }
    }

    /// One MBConv block: its layers and whether it adds its input.
    public struct Block: Sendable {
        public let name: String
        public let expand: ConvLayer
        /// The depthwise convolution's shape (channels in = out) and kernel index.
        public let depthwise: ConvShape
        public let depthwiseKernel: Int
        /// The batch norm after the depthwise convolution (index into ``norms``).
        public let depthwiseNorm: Int
        public let seReduce: ConvLayer
        public let seExpand: ConvLayer
        public let project: ConvLayer
        public let residual: Bool
    }

    public let workload: String
    public let scale: Configuration
    public let bnMomentum: Float = 0.9
    public let bnEpsilon: Float = 1e-3
    public let reduction: ReductionOrder = .pairwise
    public let stem: ConvLayer
    public let blocks: [Block]
    public let head: ConvLayer
    public let denseWeight: Int
    public let denseBias: Int
    public let parameters: [TensorSpec]
    public let norms: [NormLayer]
    public let modelState: [TensorSpec]
    public let operations: [MXUOperation]

    public var configuration: ModelConfiguration { scale.recorded }
    public var scaleName: String { scale.name }
    public var input: InputSpec { .images(height: scale.inputH, width: scale.inputW, channels: scale.inputChannels, classes: scale.classes) }
    public var batchPerReplica: Int { scale.batchPerReplica }
    var normSettings: NormSettings { NormSettings(epsilon: bnEpsilon, order: reduction) }

    /// The reference's random campaigns draw the convolutions' forward and `_grad_in`
    /// operations, never the depthwise convolutions (not injectable there) nor the dense layer.
    public var referenceSamplingSites: [SiteID] {
        operations.filter { $0.isOnMXU && !$0.isDense && $0.site.kind != .gradWt }.map(\.site)
    }

    static let definition = WorkloadDefinition(
        name: "effnet", summary: "EfficientNet-B0 (the reference's block order) trained with Adam", defaultOptimizer: .adam,
        scales: Configuration.presets.map(\.name), defaultAugmentation: .reference,
        defaultSchedule: LearningRateSchedule(initial: 0.002, final: 5e-4, decaySteps: 2000),
        preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
            try Configuration.preset(scale, among: Configuration.presets, workload: "effnet")
        }, build: { (configuration: ModelConfiguration) throws(ModelError) -> any Model in
            let c = try configuration.decode(Configuration.self, workload: "effnet")
            try c.validate(workload: "effnet")
            return EfficientNetB0(workload: "effnet", scale: c)
        })

    public init(workload: String = "effnet", scale: Configuration) {
        self.workload = workload
        self.scale = scale
        let batch = scale.batchPerReplica
        var table = ParameterTable()
        let stem = table.conv("conv1", .same(batch: batch, inH: scale.inputH, inW: scale.inputW, inChannels: scale.inputChannels, filter: 3,
                                             outChannels: scale.stemWidth, stride: 2), bias: false, normNamed: "bn1")
        var (h, w, channels) = (stem.shape.outH, stem.shape.outW, scale.stemWidth)
        var blocks: [Block] = []
        for (i, stage) in scale.stages.enumerated() {
            for j in 0..<stage.repeats {
                let name = "block\(i + 1)_mbconv_\(j)", stride = j == 0 ? stage.stride : 1
                let expanded = channels * stage.expand, reduced = max(1, expanded / 4)
                let expand = table.conv(name + "_conv1", .same(batch: batch, inH: h, inW: w, inChannels: channels, filter: 1,
                                                               outChannels: expanded, stride: 1), bias: false, normNamed: name + "_bn1")
                let dw = ConvShape.same(batch: batch, inH: h, inW: w, inChannels: expanded, filter: stage.kernel, outChannels: expanded, stride: stride)
                let dwKernel = table.add(name + "_depthwise/kernel", DepthwiseConv2D.weightShape(dw))
                let dwNorm = table.norm(name + "_bn2", channels: expanded)
                let reduce = table.conv(name + "_se_reduce_conv", .same(batch: batch, inH: 1, inW: 1, inChannels: expanded, filter: 1,
                                                                        outChannels: reduced, stride: 1), bias: true, normNamed: nil)
                let excite = table.conv(name + "_se_expand_conv", .same(batch: batch, inH: 1, inW: 1, inChannels: reduced, filter: 1,
                                                                        outChannels: expanded, stride: 1), bias: true, normNamed: nil)
                let project = table.conv(name + "_conv2", .same(batch: batch, inH: dw.outH, inW: dw.outW, inChannels: expanded, filter: 1,
                                                                outChannels: stage.outChannels, stride: 1), bias: false, normNamed: name + "_bn3")
                blocks.append(Block(name: name, expand: expand, depthwise: dw, depthwiseKernel: dwKernel, depthwiseNorm: dwNorm, seReduce: reduce,
                                    seExpand: excite, project: project, residual: stride == 1 && channels == stage.outChannels))
                (h, w, channels) = (dw.outH, dw.outW, stage.outChannels)
            }
        }
        head = table.conv("conv2", .same(batch: batch, inH: h, inW: w, inChannels: channels, filter: 1, outChannels: scale.headWidth, stride: 1),
                          bias: false, normNamed: "bn2")
        denseWeight = table.add("dense/kernel", [scale.headWidth, scale.classes])
        denseBias = table.add("dense/bias", [scale.classes])
        self.stem = stem
        self.blocks = blocks
        parameters = table.specs
        norms = table.norms
        modelState = table.modelState
        operations = Self.operationTable(stem: stem, blocks: blocks, head: head, scale: scale)
    }

    /// Vector-unit operations per element, approximate: batch norm 5 (training: normalise,
    /// scale, shift, and the two statistics' passes), swish 12 (the exp's polynomial, a
    /// division, a multiply), sigmoid 11, gating 1; backward about 1.6 times each.
    enum VectorOps {
        static let batchNorm = 5, swish = 12, sigmoid = 11, gate = 1
        static let batchNormBackward = 8, swishBackward = 18, sigmoidBackward = 3, optimizer = 12
    }

    /// Forward operations in execution order (stem; per block expand, depthwise, SE reduce,
    /// SE expand, project; head; dense), then the backward ones in the order the backward pass
    /// runs them: dense, head, the blocks in reverse (project, SE expand, SE reduce, depthwise,
    /// expand), the stem's `_grad_wt`.
    static func operationTable(stem: ConvLayer, blocks: [Block], head: ConvLayer, scale: Configuration) -> [MXUOperation] {
        typealias V = VectorOps
        let batch = scale.batchPerReplica
        func outputs(_ c: ConvLayer) -> Int { c.shape.gemm.m * c.shape.gemm.n }
        func conv(_ c: ConvLayer, _ ops: Int, _ reductions: Int, _ backOps: Int, _ backReductions: Int, needInput: Bool = true)
            -> (forward: MXUOperation, backward: [MXUOperation]) {
            let g = c.shape.gemm
            return (c.shape.forwardOperation(c.name, vector: VectorWork(elements: outputs(c), opsPerElement: ops, reductions: reductions,
                                                                       reductionOutputs: g.n)),
                    c.shape.backwardOperations(c.name, layout: .reference, needInput: needInput,
                                               inputVector: VectorWork(elements: outputs(c), opsPerElement: backOps, reductions: backReductions,
                                                                       reductionOutputs: g.n),
                                               weightVector: VectorWork(elements: g.k * g.n, opsPerElement: V.optimizer)))
        }
        var forward: [MXUOperation] = [], backward: [[MXUOperation]] = []
        func add(_ entry: (forward: MXUOperation, backward: [MXUOperation])) {
            forward.append(entry.forward)
            backward.append(entry.backward)
        }
        add(conv(stem, V.batchNorm + V.swish, 2, V.batchNormBackward + V.swishBackward, 2, needInput: false))
        for b in blocks {
            add(conv(b.expand, V.batchNorm + V.swish, 2, V.batchNormBackward + V.swishBackward, 2))
            // The depthwise conv's epilogue: batch norm, then (after the gate) swish.
            add(DepthwiseConv2D.operations(b.name + "_depthwise", shape: b.depthwise, epilogue: V.batchNorm + V.gate + V.swish, reductions: 3,
                                           backwardEpilogue: V.batchNormBackward, backwardReductions: 2))
            add(conv(b.seReduce, V.swish + 1, 1, V.swishBackward, 1))
            add(conv(b.seExpand, V.sigmoid + 1, 0, V.sigmoidBackward + 2 * V.gate, 1))
            add(conv(b.project, V.batchNorm + (b.residual ? 1 : 0), 2, V.batchNormBackward + V.swishBackward, 2))
        }
        add(conv(head, V.batchNorm + V.swish, 2, V.batchNormBackward + V.swishBackward, 2))
        let last = head.shape
        let dense = Dense.classifierOperations(batch: batch, pixels: last.outH * last.outW, features: scale.headWidth, classes: scale.classes)
        forward.append(dense.forward)
        backward.append(dense.backward)
        return forward + backward.reversed().flatMap { $0 }
    }

    /// Fresh parameters: GlorotNormal kernels from `CounterRNG(seed, .initialization, tensor
    /// index)`, zero biases, batch-norm gamma 1 and beta 0; moving means 0 and variances 1.
    public func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        ParameterTable.initialState(parameters: parameters, norms: norms, seed: seed, initializer: .glorotNormal)
    }

    /// What one block's backward needs from its forward.
    struct BlockTape {
        var expand: ConvLayer.Cache
        var expanded: [Float]        // after `_bn1`, before swish
        var expandedSigmoid: [Float] // its sigmoid (swish's, for the backward)
        var depthwiseInput: [Float]  // after swish
        var depthwiseNorm: BatchNorm.Cache?
        var normalized: [Float]      // after `_bn2`: the SE input and the gated tensor
        var reduce: ConvLayer.Cache
        var reduced: [Float]         // SE reduce output, before swish
        var reducedSigmoid: [Float]
        var excite: ConvLayer.Cache
        var gate: [Float]            // sigmoid output [N, C]
        var gated: [Float]           // before the block's swish
        var gatedSigmoid: [Float]
        var project: ConvLayer.Cache
    }

    struct Tape {
        var stem: ConvLayer.Cache
        var stemOutput: [Float]      // after `bn1`, before swish
        var stemSigmoid: [Float]     // its sigmoid (swish's, for the backward)
        var blocks: [BlockTape]
        var head: ConvLayer.Cache
        var headOutput: [Float]      // after `bn2`, before swish
        var headSigmoid: [Float]
        var pooled: [Float]
        var pixels: Int
        var statistics: [(mean: [Float], variance: [Float])]
    }

    /// The forward pass to the logits (`images` NHWC, `batch` images).
    func forward(_ p: [[Float]], images: [Float], batch: Int, normalization: NormMode, unit: MatrixUnit) -> (logits: [Float], tape: Tape) {
        var statistics: [(mean: [Float], variance: [Float])] = Array(repeating: ([], []), count: norms.count)
        func conv(_ c: ConvLayer, _ x: [Float]) -> (y: [Float], cache: ConvLayer.Cache) {
            let r = c.forward(x, p, batch: batch, norms: norms, settings: normSettings, normalization, unit: unit)
            if let n = c.norm, let s = r.statistics { statistics[n] = s }
            return (r.y, r.cache)
        }
        let (stemOutput, stemCache) = conv(stem, images)
        var (x, stemSigmoid) = Swish.forward(stemOutput)
        var tapes: [BlockTape] = []
        for b in blocks {
            let (expanded, expandCache) = conv(b.expand, x)
            let (dwInput, expandedSigmoid) = Swish.forward(expanded)
            let dwShape = b.depthwise.with(batch: batch)
            let dw = DepthwiseConv2D.forward(x: dwInput, w: p[b.depthwiseKernel], shape: dwShape, layer: b.name + "_depthwise", unit: unit)
            let bn = normSettings.forward(dw, rows: dw.count / dwShape.outChannels, norm: b.depthwiseNorm, norms: norms, p, normalization)
            if let s = bn.statistics { statistics[b.depthwiseNorm] = s }
            // Squeeze and excite on the normalised depthwise output.
            let pixels = dwShape.outH * dwShape.outW, channels = dwShape.outChannels
            let squeezed = GlobalAveragePool.forward(x: bn.y, batch: batch, pixels: pixels, channels: channels)
            let (reduced, reduceCache) = conv(b.seReduce, squeezed)
            let reducedSwish = Swish.forward(reduced)
            let (excited, exciteCache) = conv(b.seExpand, reducedSwish.y)
            let gate = Sigmoid.forward(excited)
            let gated = ChannelGate.forward(x: bn.y, gate: gate, batch: batch, pixels: pixels, channels: channels)
            let gatedSwish = Swish.forward(gated)
            var (y, projectCache) = conv(b.project, gatedSwish.y)
            if b.residual { y = elementwise(y, x, +) }
            tapes.append(BlockTape(expand: expandCache, expanded: expanded, expandedSigmoid: expandedSigmoid, depthwiseInput: dwInput,
                                   depthwiseNorm: bn.cache, normalized: bn.y, reduce: reduceCache, reduced: reduced,
                                   reducedSigmoid: reducedSwish.sigmoid, excite: exciteCache, gate: gate, gated: gated,
                                   gatedSigmoid: gatedSwish.sigmoid, project: projectCache))
            x = y
        }
        let (headOutput, headCache) = conv(head, x)
        let (activated, headSigmoid) = Swish.forward(headOutput)
        let pixels = head.shape.outH * head.shape.outW
        let pooled = GlobalAveragePool.forward(x: activated, batch: batch, pixels: pixels, channels: scale.headWidth)
        let logits = Dense.forward(x: pooled, w: p[denseWeight], b: p[denseBias], batch: batch, inFeatures: scale.headWidth,
                                   outFeatures: scale.classes, layer: "dense", unit: unit)
        return (logits, Tape(stem: stemCache, stemOutput: stemOutput, stemSigmoid: stemSigmoid, blocks: tapes, head: headCache,
                             headOutput: headOutput, headSigmoid: headSigmoid, pooled: pooled, pixels: pixels, statistics: statistics))
    }

    /// Forward, loss and backward for one replica's batch, normalising with the batch's
    /// statistics.
    public func trainReplica(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> ReplicaResult {
        let batch = data.labels.count
        let (logits, tape) = forward(p, images: data.images, batch: batch, normalization: .batch, unit: unit)
        let (loss, correct, dlogits) = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: data.labels, classes: scale.classes)
        var grads = parameters.map { [Float](repeating: 0, count: $0.count) }
        func conv(_ c: ConvLayer, _ dy: [Float], _ cache: ConvLayer.Cache, needInput: Bool = true) -> [Float] {
            c.backward(dy, cache: cache, p, batch: batch, norms: norms, settings: normSettings, layout: .reference, needInput: needInput,
                       unit: unit, grads: &grads)
        }
        let dpooled = Dense.backwardInput(dy: dlogits, w: p[denseWeight], batch: batch, inFeatures: scale.headWidth, outFeatures: scale.classes,
                                          layer: "dense", unit: unit)
        (grads[denseWeight], grads[denseBias]) = Dense.backwardWeight(x: tape.pooled, dy: dlogits, batch: batch, inFeatures: scale.headWidth,
                                                                       outFeatures: scale.classes, layer: "dense", unit: unit)
        let dactivated = GlobalAveragePool.backward(dy: dpooled, batch: batch, pixels: tape.pixels, channels: scale.headWidth)
        var dx = conv(head, Swish.backward(dy: dactivated, x: tape.headOutput, sigmoid: tape.headSigmoid), tape.head)
        for (b, t) in zip(blocks, tape.blocks).reversed() {
            let dwShape = b.depthwise.with(batch: batch)
            let pixels = dwShape.outH * dwShape.outW, channels = dwShape.outChannels
            let dgated = Swish.backward(dy: conv(b.project, dx, t.project), x: t.gated, sigmoid: t.gatedSigmoid)
            let gate = ChannelGate.backward(dy: dgated, x: t.normalized, gate: t.gate, batch: batch, pixels: pixels, channels: channels,
                                            order: reduction)
            let dexcited = Sigmoid.backward(dy: gate.dgate, y: t.gate)
            let dreduced = Swish.backward(dy: conv(b.seExpand, dexcited, t.excite), x: t.reduced, sigmoid: t.reducedSigmoid)
            let dsqueezed = conv(b.seReduce, dreduced, t.reduce)
            let dnormalized = elementwise(gate.dx, GlobalAveragePool.backward(dy: dsqueezed, batch: batch, pixels: pixels, channels: channels), +)
            guard let dwCache = t.depthwiseNorm else { preconditionFailure("\(b.name): backward without a training forward") }
            let ddw = normSettings.backward(dnormalized, cache: dwCache, rows: dnormalized.count / channels, norm: b.depthwiseNorm, norms: norms,
                                            p, grads: &grads)
            let dwName = b.name + "_depthwise"
            let dinput = DepthwiseConv2D.backwardInput(dy: ddw, w: p[b.depthwiseKernel], shape: dwShape, layer: dwName, unit: unit)
            grads[b.depthwiseKernel] = DepthwiseConv2D.backwardWeight(x: t.depthwiseInput, dy: ddw, shape: dwShape, layer: dwName, unit: unit)
            let dblockInput = conv(b.expand, Swish.backward(dy: dinput, x: t.expanded, sigmoid: t.expandedSigmoid), t.expand)
            dx = b.residual ? elementwise(dblockInput, dx, +) : dblockInput
        }
        _ = conv(stem, Swish.backward(dy: dx, x: tape.stemOutput, sigmoid: tape.stemSigmoid), tape.stem, needInput: false)
        return ReplicaResult(loss: loss, correct: correct, gradients: grads, statistics: tape.statistics.flatMap { [$0.mean, $0.variance] })
    }

    /// The moving statistics: `moving = 0.9 * moving + 0.1 * batch` per batch-norm layer.
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
