/// An encoder-decoder Transformer in the layout of the TensorFlow Model Garden's (legacy)
/// Transformer, whose layer names the reference study's transformer specs use:
///
/// - a token embedding `E [vocabulary, hidden]` shared by the encoder's input, the decoder's
///   input and the output projection; lookups scaled by `sqrt(hidden)`, padding (token 0)
///   zero; sinusoidal positions added (``PositionEncoding``); dropout;
/// - the decoder's input is the target embedded and shifted right by one position (a zero
///   vector first), so position t sees the target before t;
/// - an encoder stack of `encoderLayers` layers, each a self-attention block
///   (`encoder_stack_attention_{i}`) and a feed-forward block (`encoder_stack_ffn_{i}`), then
///   a final layer norm;
/// - a decoder stack of `decoderLayers` layers, each causal self-attention
///   (`decoder_stack_self_attention_{i}`), encoder-decoder attention over the encoder's
///   output (`decoder_stack_enc_dec_attention_{i}`) and a feed-forward block
///   (`decoder_stack_ffn_{i}`), then a final layer norm;
/// - every block pre-layer-norm with a residual: `x + dropout(block(layer_norm(x)))`; layer
///   norm epsilon 1e-6;
/// - an attention block: `_query`, `_key`, `_value` projections (no bias), heads of
///   `hidden / heads`, the query scaled by `depth^-0.5`, the product `_scores` = Q K^T per
///   head, the mask's -1e9 bias (causal in decoder self-attention, source padding otherwise),
///   softmax, dropout on the probabilities, the product `_context` = P V per head, the heads
///   merged and the `_output` projection (no bias);
/// - a feed-forward block: `_filter` (to `filter`, bias, ReLU, dropout) and `_output` (back
///   to `hidden`, bias);
/// - the output projection `output_projection`: logits = y E^T; label-smoothed
///   cross-entropy (``LabelSmoothedCrossEntropy``).
///
/// MXU operations (each with `_grad_in` and `_grad_wt`, layers numbered from 0): every
/// projection and both attention products. Projections' operands are `{batch, position,
/// feature}`; the products' are per head (``AttentionProducts``). Layer norm, softmax,
/// masks, ReLU, dropout, embedding, positions and the loss run on the vector unit (fp32,
/// ``DeterministicMath``) and are counted by the timing model as the vector work of the MXU
/// operation they follow.
///
/// Dropout masks are counter-keyed (``Dropout/counterStream(origin:layer:)``: seed, step,
/// replica and the dropout's index in forward order); evaluation runs without dropout and
/// scores every target token with the decoder fed the true prefix (teacher forcing).
public struct Transformer: Model {
    /// Sizes of one replica's share, recorded in manifests (under `scale`).
    ///
    /// - `paper`: the Model Garden base model (hidden 512, 8 heads, filter 2048, 6 + 6
    ///   layers, dropout 0.1), 16 sequences of 64 tokens per replica;
    /// - `small`: hidden 64, 4 heads, filter 256, 2 + 2 layers, 16 sequences of 32 tokens
    ///   (learns the fortunes task within minutes on 2 cores);
    /// - `tiny`: hidden 16, 2 heads, filter 32, 2 + 2 layers, 2 sequences of 8 tokens (tests).
    public struct Configuration: Sendable, Equatable, Codable {
        public var name: String
        public var batchPerReplica: Int
        public var sourceLength: Int
        public var targetLength: Int
        public var vocabulary: Int
        public var hidden: Int
        public var heads: Int
        public var filter: Int
        public var encoderLayers: Int
        public var decoderLayers: Int
        /// The rate of every dropout (the reference: post-process, attention and ReLU dropout
        /// 0.1 each).
        public var dropout: Float
        public var labelSmoothing: Float

        public static let tiny = Configuration(name: "tiny", batchPerReplica: 2, sourceLength: 8, targetLength: 8, vocabulary: 128, hidden: 16,
                                               heads: 2, filter: 32, encoderLayers: 2, decoderLayers: 2, dropout: 0.1, labelSmoothing: 0.1)
        public static let small = Configuration(name: "small", batchPerReplica: 16, sourceLength: 32, targetLength: 32, vocabulary: 128, hidden: 64,
                                                heads: 4, filter: 256, encoderLayers: 2, decoderLayers: 2, dropout: 0.1, labelSmoothing: 0.1)
        public static let paper = Configuration(name: "paper", batchPerReplica: 16, sourceLength: 64, targetLength: 64, vocabulary: 128, hidden: 512,
                                                heads: 8, filter: 2048, encoderLayers: 6, decoderLayers: 6, dropout: 0.1, labelSmoothing: 0.1)
        public static let presets: [Configuration] = [.tiny, .small, .paper]

        public var depth: Int { hidden / heads }

        /// Checks every size before anything is allocated from it.
        func validate(workload: String) throws(ModelError) {
            func check(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws(ModelError) {
                try ModelError.check(field, value, in: range, workload: workload)
            }
            try check("batchPerReplica", batchPerReplica, 1...(1 << 14))
            try check("sourceLength", sourceLength, 1...(1 << 14))
            try check("targetLength", targetLength, 1...(1 << 14))
            try check("vocabulary", vocabulary, 2...(1 << 16))
            try check("hidden", hidden, 2...(1 << 14))
            try check("heads", heads, 1...hidden)
            try check("filter", filter, 1...(1 << 16))
            try check("encoderLayers", encoderLayers, 1...64)
            try check("decoderLayers", decoderLayers, 1...64)
            guard hidden % heads == 0, hidden % 2 == 0 else {
                throw .invalidConfiguration("the \(workload) configuration's field 'hidden' is \(hidden); expected an even multiple of heads (\(heads))")
            }
            for (field, v) in [("dropout", dropout), ("labelSmoothing", labelSmoothing)] where !(v >= 0 && v < 1) {
                throw .invalidConfiguration("the \(workload) configuration's field '\(field)' is \(v); expected a value in [0, 1)")
            }
        }
    }

    /// The parameter indices of one attention block.
    struct Attention: Sendable {
        let name: String
        let gamma, beta, query, key, value, output: Int
    }

    /// The parameter indices of one feed-forward block.
    struct FeedForward: Sendable {
        let name: String
        let gamma, beta, filterKernel, filterBias, outputKernel, outputBias: Int
    }

    public let workload: String
    public let scale: Configuration
    public let epsilon: Float = 1e-6
    public let parameters: [TensorSpec]
    public let operations: [MXUOperation]
    let embedding: Int
    let encoder: [(attention: Attention, ffn: FeedForward)]
    let decoder: [(selfAttention: Attention, encDec: Attention, ffn: FeedForward)]
    let encoderNorm: (gamma: Int, beta: Int)
    let decoderNorm: (gamma: Int, beta: Int)

    public var configuration: ModelConfiguration {
        // The configuration always encodes (plain numbers and a string).
        (try? ModelConfiguration(encoding: scale)) ?? ModelConfiguration(.null)
    }
    public var scaleName: String { scale.name }
    public var input: InputSpec { .tokens(sourceLength: scale.sourceLength, targetLength: scale.targetLength, vocabulary: scale.vocabulary) }
    public var batchPerReplica: Int { scale.batchPerReplica }
    public var modelState: [TensorSpec] { [] }

    /// The reference's random campaigns' rule carried over: every MXU operation's forward and
    /// `_grad_in`, never a `_grad_wt` (no transformer campaign of the reference is known).
    public var referenceSamplingSites: [SiteID] {
        operations.filter { $0.isOnMXU && $0.site.kind != .gradWt }.map(\.site)
    }

    /// The Model Garden Transformer's Adam: beta1 0.9, beta2 0.997, epsilon 1e-9.
    static let adam: OptimizerConfig = {
        var c = OptimizerConfig(kind: .adam)
        c.beta2 = 0.997
        c.epsilon = 1e-9
        return c
    }()

    static let definition = WorkloadDefinition(
        name: "transformer", summary: "encoder-decoder Transformer (Model Garden layout) denoising fortunes text, Adam 0.001",
        defaultOptimizer: .adam, scales: Configuration.presets.map(\.name),
        defaultSchedule: LearningRateSchedule(initial: 1e-3, final: 1e-3, decaySteps: 1),
        defaultOptimizerSettings: adam, defaultDataset: .defaultFortunes,
        preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
            guard let c = Configuration.presets.first(where: { $0.name == scale.lowercased() }) else {
                throw .unknownScale(scale, workload: "transformer", known: Configuration.presets.map(\.name))
            }
            return try ModelConfiguration(encoding: c)
        }, build: { (configuration: ModelConfiguration) throws(ModelError) -> any Model in
            let c = try configuration.decode(Configuration.self, workload: "transformer")
            try c.validate(workload: "transformer")
            return Transformer(workload: "transformer", scale: c)
        })

    public init(workload: String = "transformer", scale: Configuration) {
        self.workload = workload
        self.scale = scale
        var specs: [TensorSpec] = []
        func add(_ name: String, _ shape: [Int]) -> Int {
            specs.append(TensorSpec(name, shape))
            return specs.count - 1
        }
        let h = scale.hidden
        embedding = add("embedding_shared_weights/weights", [scale.vocabulary, h])
        func attention(_ name: String, _ path: String) -> Attention {
            Attention(name: name, gamma: add(path + "/layer_normalization/gamma", [h]), beta: add(path + "/layer_normalization/beta", [h]),
                      query: add(path + "/query/kernel", [h, h]), key: add(path + "/key/kernel", [h, h]), value: add(path + "/value/kernel", [h, h]),
                      output: add(path + "/output_transform/kernel", [h, h]))
        }
        func ffn(_ name: String, _ path: String) -> FeedForward {
            FeedForward(name: name, gamma: add(path + "/layer_normalization/gamma", [h]), beta: add(path + "/layer_normalization/beta", [h]),
                        filterKernel: add(path + "/filter_layer/kernel", [h, scale.filter]), filterBias: add(path + "/filter_layer/bias", [scale.filter]),
                        outputKernel: add(path + "/output_layer/kernel", [scale.filter, h]), outputBias: add(path + "/output_layer/bias", [h]))
        }
        encoder = (0..<scale.encoderLayers).map { i in
            (attention("encoder_stack_attention_\(i)", "encoder_stack/layer_\(i)/self_attention"), ffn("encoder_stack_ffn_\(i)", "encoder_stack/layer_\(i)/ffn"))
        }
        encoderNorm = (add("encoder_stack/layer_normalization/gamma", [h]), add("encoder_stack/layer_normalization/beta", [h]))
        decoder = (0..<scale.decoderLayers).map { i in
            (attention("decoder_stack_self_attention_\(i)", "decoder_stack/layer_\(i)/self_attention"),
             attention("decoder_stack_enc_dec_attention_\(i)", "decoder_stack/layer_\(i)/encdec_attention"),
             ffn("decoder_stack_ffn_\(i)", "decoder_stack/layer_\(i)/ffn"))
        }
        decoderNorm = (add("decoder_stack/layer_normalization/gamma", [h]), add("decoder_stack/layer_normalization/beta", [h]))
        parameters = specs
        operations = Self.operationTable(scale)
    }

    /// Vector-unit operations per element, approximate: layer norm 8 forward (two
    /// reductions) and 10 backward; masked softmax 14 (mask, max, exp's polynomial, sum,
    /// divide) and 4 backward; ReLU, dropout and a residual add 1 each; the embedding lookup
    /// and positions 2; the loss 16 per logit; the optimizer 12 per parameter.
    enum VectorOps {
        static let layerNorm = 8, layerNormBackward = 10, softmax = 14, softmaxBackward = 4, single = 1
        static let embedding = 2, loss = 16, optimizer = 12
    }

    /// Work of several passes over different element counts as one ``VectorWork`` over the
    /// largest count.
    static func vector(_ passes: [(elements: Int, ops: Int)], reductions: Int = 0, reductionOutputs: Int = 1) -> VectorWork {
        let elements = passes.map(\.elements).max() ?? 0
        guard elements > 0 else { return .none }
        let total = passes.reduce(0) { $0 + $1.elements * $1.ops }
        return VectorWork(elements: elements, opsPerElement: (total + elements - 1) / elements, reductions: reductions, reductionOutputs: reductionOutputs)
    }

    /// Forward operations in execution order (per encoder layer: attention query, key, value,
    /// scores, context, output, then feed-forward filter and output; per decoder layer the
    /// same for self-attention, encoder-decoder attention and feed-forward; the output
    /// projection), then every operation's `_grad_in` and `_grad_wt` in the reverse order.
    static func operationTable(_ c: Configuration) -> [MXUOperation] {
        typealias V = VectorOps
        let b = c.batchPerReplica, h = c.hidden
        var forward: [MXUOperation] = [], backward: [[MXUOperation]] = []
        func op(_ name: String, _ kind: OperationKind, _ gemm: GEMMShape, _ input: [Int], _ weight: [Int], _ output: [Int], _ vector: VectorWork,
                products: Int = 1) -> MXUOperation {
            let count = { (s: [Int]) in s.reduce(1, *) }
            return MXUOperation(site: SiteID(layer: name, kind: kind), gemm: gemm, inputShape: input, weightShape: weight, outputShape: output,
                                hbmTraffic: HBMTraffic(operandElements: count(input) + count(weight), resultElements: count(output)), vector: vector,
                                products: products)
        }
        func projection(_ name: String, length: Int, _ i: Int, _ o: Int, forwardVector: VectorWork = .none, inputVector: VectorWork = .none) {
            let rows = b * length
            forward.append(op(name, .forward, GEMMShape(m: rows, k: i, n: o), [b, length, i], [i, o], [b, length, o], forwardVector))
            backward.append([op(name, .gradIn, GEMMShape(m: rows, k: o, n: i), [b, length, o], [i, o], [b, length, i], inputVector),
                             op(name, .gradWt, GEMMShape(m: i, k: rows, n: o), [b, length, i], [b, length, o], [i, o],
                                VectorWork(elements: i * o, opsPerElement: V.optimizer))])
        }
        func attention(_ name: String, queries: Int, keys: Int) {
            let s = AttentionShape(batch: b, heads: c.heads, queries: queries, keys: keys, depth: c.depth)
            let g = s.groups, d = s.depth, rowsQ = b * queries, scores = g * queries * keys
            // The block's layer norm and the query's scaling go with the query projection.
            projection(name + "_query", length: queries, h, h,
                       forwardVector: vector([(rowsQ * h, V.layerNorm + 1)], reductions: 2, reductionOutputs: rowsQ),
                       inputVector: vector([(rowsQ * h, V.layerNormBackward + 1)], reductions: 2, reductionOutputs: rowsQ))
            projection(name + "_key", length: keys, h, h)
            projection(name + "_value", length: keys, h, h)
            // Softmax with its mask and the probabilities' dropout after the scores.
            forward.append(op(name + "_scores", .forward, GEMMShape(m: g * queries, k: d, n: keys), s.queryShape, s.keyShape, s.scoreShape,
                              VectorWork(elements: scores, opsPerElement: V.softmax + V.single, reductions: 2, reductionOutputs: g * queries), products: g))
            backward.append([op(name + "_scores", .gradIn, GEMMShape(m: g * queries, k: keys, n: d), s.scoreShape, s.keyShape, s.queryShape,
                                VectorWork(elements: g * queries * d, opsPerElement: V.single), products: g),
                             op(name + "_scores", .gradWt, GEMMShape(m: g * d, k: queries, n: keys), s.queryShape, s.scoreShape, s.keyShape, .none, products: g)])
            forward.append(op(name + "_context", .forward, GEMMShape(m: g * queries, k: keys, n: d), s.scoreShape, s.keyShape, s.queryShape, .none, products: g))
            backward.append([op(name + "_context", .gradIn, GEMMShape(m: g * queries, k: d, n: keys), s.queryShape, s.keyShape, s.scoreShape,
                                VectorWork(elements: scores, opsPerElement: V.softmaxBackward + V.single, reductions: 1, reductionOutputs: g * queries), products: g),
                             op(name + "_context", .gradWt, GEMMShape(m: g * keys, k: queries, n: d), s.scoreShape, s.queryShape, s.keyShape, .none, products: g)])
            // The dropout and the residual add after the output projection.
            projection(name + "_output", length: queries, h, h, forwardVector: vector([(rowsQ * h, 2 * V.single)]),
                       inputVector: vector([(rowsQ * h, 2 * V.single)]))
        }
        func ffn(_ name: String, length: Int) {
            let rows = b * length
            projection(name + "_filter", length: length, h, c.filter,
                       forwardVector: vector([(rows * h, V.layerNorm), (rows * c.filter, 3 * V.single)], reductions: 2, reductionOutputs: rows),
                       inputVector: vector([(rows * h, V.layerNormBackward), (rows * c.filter, 2 * V.single)], reductions: 2, reductionOutputs: rows))
            projection(name + "_output", length: length, c.filter, h, forwardVector: vector([(rows * h, 3 * V.single)]),
                       inputVector: vector([(rows * c.filter, 2 * V.single)]))
        }
        for i in 0..<c.encoderLayers {
            attention("encoder_stack_attention_\(i)", queries: c.sourceLength, keys: c.sourceLength)
            ffn("encoder_stack_ffn_\(i)", length: c.sourceLength)
        }
        for i in 0..<c.decoderLayers {
            attention("decoder_stack_self_attention_\(i)", queries: c.targetLength, keys: c.targetLength)
            attention("decoder_stack_enc_dec_attention_\(i)", queries: c.targetLength, keys: c.sourceLength)
            ffn("decoder_stack_ffn_\(i)", length: c.targetLength)
        }
        // The final layer norms, the embedding lookups and positions go with the output
        // projection; its epilogue is the loss.
        let rowsS = b * c.sourceLength, rowsT = b * c.targetLength, logits = rowsT * c.vocabulary
        let lookups = (rowsS + rowsT) * h
        forward.append(op("output_projection", .forward, GEMMShape(m: rowsT, k: h, n: c.vocabulary), [b, c.targetLength, h], [c.vocabulary, h],
                          [b, c.targetLength, c.vocabulary],
                          vector([(logits, V.loss), (lookups, V.layerNorm + V.embedding)], reductions: 3, reductionOutputs: rowsS + 2 * rowsT)))
        backward.append([op("output_projection", .gradIn, GEMMShape(m: rowsT, k: c.vocabulary, n: h), [b, c.targetLength, c.vocabulary],
                            [c.vocabulary, h], [b, c.targetLength, h],
                            vector([(lookups, V.layerNormBackward + V.embedding)], reductions: 2, reductionOutputs: rowsS + rowsT)),
                         op("output_projection", .gradWt, GEMMShape(m: h, k: rowsT, n: c.vocabulary), [b, c.targetLength, h],
                            [b, c.targetLength, c.vocabulary], [c.vocabulary, h],
                            VectorWork(elements: c.vocabulary * h, opsPerElement: V.optimizer))])
        return forward + backward.reversed().flatMap { $0 }
    }

    /// Fresh parameters: the embedding normal with standard deviation `hidden^-0.5` (the
    /// reference's), projection kernels Glorot-uniform, biases and layer-norm betas 0,
    /// gammas 1; tensor `t` from `CounterRNG(seed, .initialization, t)`.
    public func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        let p = parameters.enumerated().map { t, spec -> [Float] in
            var rng = CounterRNG(seed: seed, purpose: .initialization, t)
            if t == embedding {
                let std = Float((1 / Double(scale.hidden)).squareRoot())
                return (0..<spec.count).map { _ in Initializer.normal(&rng) * std }
            }
            if spec.name.hasSuffix("/gamma") { return [Float](repeating: 1, count: spec.count) }
            if spec.shape.count == 1 { return [Float](repeating: 0, count: spec.count) }
            return Initializer.glorotUniform.kernel(shape: spec.shape, rng: &rng)
        }
        return (p, [])
    }

    // MARK: - Forward and backward

    /// Draws dropout masks in forward order; none without an origin (evaluation) or at rate 0.
    struct DropoutDraws {
        let origin: BatchOrigin?
        let rate: Float
        var next = 0

        mutating func mask(_ count: Int) -> [Float]? {
            defer { next += 1 }
            guard let origin, rate > 0 else { return nil }
            return Dropout.mask(count: count, rate: rate, rng: Dropout.counterStream(origin: origin, layer: next))
        }
    }

    static func apply(_ mask: [Float]?, _ x: [Float]) -> [Float] { mask.map { Dropout.forward(x, mask: $0) } ?? x }

    struct AttentionTape {
        var norm: LayerNorm.Cache
        var normalized: [Float]    // the block's layer-norm output (the query's input)
        var q, k, v: [Float]       // heads split; q scaled
        var p: [Float]             // softmax output
        var pMask: [Float]?
        var pDropped: [Float]
        var context: [Float]       // heads merged
        var outMask: [Float]?
    }

    struct FeedForwardTape {
        var norm: LayerNorm.Cache
        var normalized: [Float]
        var filtered: [Float]      // before ReLU
        var reluMask: [Float]?
        var activated: [Float]     // after ReLU and dropout
        var outMask: [Float]?
    }

    struct Tape {
        var encoderInputMask: [Float]?
        var decoderInputMask: [Float]?
        var encoder: [(AttentionTape, FeedForwardTape)] = []
        var decoder: [(AttentionTape, AttentionTape, FeedForwardTape)] = []
        var encoderNorm: LayerNorm.Cache?
        var encoderOutput: [Float] = []
        var decoderNorm: LayerNorm.Cache?
        var decoderOutput: [Float] = []
    }

    /// One pre-layer-norm attention block: `x + dropout(attention(layer_norm(x), memory))`,
    /// `memory` the keys' and values' input (nil: self-attention on the normalised x).
    func attention(_ a: Attention, _ p: [[Float]], x: [Float], memory: [Float]?, queries: Int, keys: Int, mask: AttentionMask,
                   batch: Int, dropout: inout DropoutDraws, unit: MatrixUnit) -> (y: [Float], tape: AttentionTape) {
        let h = scale.hidden, s = AttentionShape(batch: batch, heads: scale.heads, queries: queries, keys: keys, depth: scale.depth)
        let (normalized, norm) = LayerNorm.forward(x, gamma: p[a.gamma], beta: p[a.beta], rows: batch * queries, features: h, epsilon: epsilon)
        let kv = memory ?? normalized
        func project(_ input: [Float], _ w: Int, _ suffix: String, _ length: Int) -> [Float] {
            Projection.forward(x: input, w: p[w], b: nil, batch: batch, length: length, inFeatures: h, outFeatures: h, layer: a.name + suffix, unit: unit)
        }
        let scaleQ = Float(1 / Double(scale.depth).squareRoot())
        let q = ScalarGain.forward(Heads.split(project(normalized, a.query, "_query", queries), batch: batch, length: queries, heads: scale.heads, depth: scale.depth),
                                   gain: scaleQ)
        let k = Heads.split(project(kv, a.key, "_key", keys), batch: batch, length: keys, heads: scale.heads, depth: scale.depth)
        let v = Heads.split(project(kv, a.value, "_value", keys), batch: batch, length: keys, heads: scale.heads, depth: scale.depth)
        let scores = AttentionProducts.scores(q: q, k: k, shape: s, layer: a.name, unit: unit)
        let probabilities = MaskedSoftmax.forward(scores, shape: s, mask: mask)
        let pMask = dropout.mask(probabilities.count)
        let dropped = Self.apply(pMask, probabilities)
        let context = Heads.merge(AttentionProducts.context(p: dropped, v: v, shape: s, layer: a.name, unit: unit),
                                  batch: batch, length: queries, heads: scale.heads, depth: scale.depth)
        let out = project(context, a.output, "_output", queries)
        let outMask = dropout.mask(out.count)
        return (elementwise(x, Self.apply(outMask, out), +),
                AttentionTape(norm: norm, normalized: normalized, q: q, k: k, v: v, p: probabilities, pMask: pMask, pDropped: dropped,
                              context: context, outMask: outMask))
    }

    /// The backward of ``attention(_:_:x:memory:queries:keys:mask:batch:dropout:unit:)``: dL/dx
    /// and, for encoder-decoder attention, dL/dmemory.
    func attentionBackward(_ a: Attention, _ p: [[Float]], dy: [Float], tape t: AttentionTape, memory: [Float]?, queries: Int, keys: Int,
                           batch: Int, unit: MatrixUnit, grads: inout [[Float]]) -> (dx: [Float], dmemory: [Float]?) {
        let h = scale.hidden, s = AttentionShape(batch: batch, heads: scale.heads, queries: queries, keys: keys, depth: scale.depth)
        let kv = memory ?? t.normalized
        func backward(_ dOut: [Float], input: [Float], _ w: Int, _ suffix: String, _ length: Int) -> [Float] {
            let dIn = Projection.backwardInput(dy: dOut, w: p[w], batch: batch, length: length, inFeatures: h, outFeatures: h, layer: a.name + suffix, unit: unit)
            grads[w] = Projection.backwardWeight(x: input, dy: dOut, batch: batch, length: length, inFeatures: h, outFeatures: h, bias: false,
                                                 layer: a.name + suffix, unit: unit).dw
            return dIn
        }
        let dOut = t.outMask.map { Dropout.backward(dy: dy, mask: $0) } ?? dy
        let dContext = Heads.split(backward(dOut, input: t.context, a.output, "_output", queries), batch: batch, length: queries,
                                   heads: scale.heads, depth: scale.depth)
        let dDropped = AttentionProducts.contextBackwardProbabilities(dC: dContext, v: t.v, shape: s, layer: a.name, unit: unit)
        let dv = AttentionProducts.contextBackwardValues(p: t.pDropped, dC: dContext, shape: s, layer: a.name, unit: unit)
        let dP = t.pMask.map { Dropout.backward(dy: dDropped, mask: $0) } ?? dDropped
        let dScores = MaskedSoftmax.backward(dP: dP, p: t.p, keys: keys)
        let scaleQ = Float(1 / Double(scale.depth).squareRoot())
        let dq = ScalarGain.backward(dy: AttentionProducts.scoresBackwardQuery(dS: dScores, k: t.k, shape: s, layer: a.name, unit: unit), gain: scaleQ)
        let dk = AttentionProducts.scoresBackwardKey(q: t.q, dS: dScores, shape: s, layer: a.name, unit: unit)
        let merge = { (x: [Float], length: Int) in Heads.merge(x, batch: batch, length: length, heads: self.scale.heads, depth: self.scale.depth) }
        var dkv = backward(merge(dv, keys), input: kv, a.value, "_value", keys)
        dkv = elementwise(dkv, backward(merge(dk, keys), input: kv, a.key, "_key", keys), +)
        var dNormalized = backward(merge(dq, queries), input: t.normalized, a.query, "_query", queries)
        if memory == nil { dNormalized = elementwise(dNormalized, dkv, +) }
        let ln = LayerNorm.backward(dy: dNormalized, cache: t.norm, gamma: p[a.gamma], rows: batch * queries, features: h)
        grads[a.gamma] = ln.dgamma
        grads[a.beta] = ln.dbeta
        return (elementwise(dy, ln.dx, +), memory == nil ? nil : dkv)
    }

    /// One pre-layer-norm feed-forward block: `x + dropout(W2 dropout(relu(W1 layer_norm(x) + b1)) + b2)`.
    func feedForward(_ f: FeedForward, _ p: [[Float]], x: [Float], length: Int, batch: Int, dropout: inout DropoutDraws,
                     unit: MatrixUnit) -> (y: [Float], tape: FeedForwardTape) {
        let h = scale.hidden
        let (normalized, norm) = LayerNorm.forward(x, gamma: p[f.gamma], beta: p[f.beta], rows: batch * length, features: h, epsilon: epsilon)
        let filtered = Projection.forward(x: normalized, w: p[f.filterKernel], b: p[f.filterBias], batch: batch, length: length,
                                          inFeatures: h, outFeatures: scale.filter, layer: f.name + "_filter", unit: unit)
        let reluMask = dropout.mask(filtered.count)
        let activated = Self.apply(reluMask, ReLU.forward(filtered))
        let out = Projection.forward(x: activated, w: p[f.outputKernel], b: p[f.outputBias], batch: batch, length: length,
                                     inFeatures: scale.filter, outFeatures: h, layer: f.name + "_output", unit: unit)
        let outMask = dropout.mask(out.count)
        return (elementwise(x, Self.apply(outMask, out), +),
                FeedForwardTape(norm: norm, normalized: normalized, filtered: filtered, reluMask: reluMask, activated: activated, outMask: outMask))
    }

    func feedForwardBackward(_ f: FeedForward, _ p: [[Float]], dy: [Float], tape t: FeedForwardTape, length: Int, batch: Int,
                             unit: MatrixUnit, grads: inout [[Float]]) -> [Float] {
        let h = scale.hidden
        let dOut = t.outMask.map { Dropout.backward(dy: dy, mask: $0) } ?? dy
        let dActivated = Projection.backwardInput(dy: dOut, w: p[f.outputKernel], batch: batch, length: length, inFeatures: scale.filter,
                                                  outFeatures: h, layer: f.name + "_output", unit: unit)
        let wo = Projection.backwardWeight(x: t.activated, dy: dOut, batch: batch, length: length, inFeatures: scale.filter, outFeatures: h,
                                           bias: true, layer: f.name + "_output", unit: unit)
        (grads[f.outputKernel], grads[f.outputBias]) = (wo.dw, wo.db ?? [])
        let dRelu = t.reluMask.map { Dropout.backward(dy: dActivated, mask: $0) } ?? dActivated
        let dFiltered = ReLU.backward(dy: dRelu, x: t.filtered)
        let dNormalized = Projection.backwardInput(dy: dFiltered, w: p[f.filterKernel], batch: batch, length: length, inFeatures: h,
                                                   outFeatures: scale.filter, layer: f.name + "_filter", unit: unit)
        let wf = Projection.backwardWeight(x: t.normalized, dy: dFiltered, batch: batch, length: length, inFeatures: h, outFeatures: scale.filter,
                                           bias: true, layer: f.name + "_filter", unit: unit)
        (grads[f.filterKernel], grads[f.filterBias]) = (wf.dw, wf.db ?? [])
        let ln = LayerNorm.backward(dy: dNormalized, cache: t.norm, gamma: p[f.gamma], rows: batch * length, features: h)
        grads[f.gamma] = ln.dgamma
        grads[f.beta] = ln.dbeta
        return elementwise(dy, ln.dx, +)
    }

    /// The decoder's input tokens: the target shifted right by one, padding (0) first.
    static func decoderInput(targets: [Int32], batch: Int, length: Int) -> [Int32] {
        var out = [Int32](repeating: 0, count: targets.count)
        for b in 0..<batch { for t in 1..<max(length, 1) { out[b * length + t] = targets[b * length + t - 1] } }
        return out
    }

    /// Embedded tokens plus positions: `[batch, length, hidden]`.
    func embed(_ tokens: [Int32], _ p: [[Float]], batch: Int, length: Int) -> [Float] {
        let h = scale.hidden, positions = PositionEncoding.table(length: length, hidden: h)
        var x = TokenEmbedding.forward(tokens: tokens, table: p[embedding], hidden: h)
        for b in 0..<batch { for i in 0..<(length * h) { x[b * length * h + i] += positions[i] } }
        return x
    }

    /// The forward pass to the logits `[batch, targetLength, vocabulary]`.
    func forward(_ p: [[Float]], sources: [Int32], targets: [Int32], batch: Int, origin: BatchOrigin?, unit: MatrixUnit) -> (logits: [Float], tape: Tape) {
        let (ls, lt, h) = (scale.sourceLength, scale.targetLength, scale.hidden)
        precondition(sources.count == batch * ls && targets.count == batch * lt, "transformer: the batch's sequences do not fit \(title)")
        var dropout = DropoutDraws(origin: origin, rate: scale.dropout)
        var tape = Tape()
        let padding = AttentionMask.padding(tokens: sources)
        var x = embed(sources, p, batch: batch, length: ls)
        tape.encoderInputMask = dropout.mask(x.count)
        x = Self.apply(tape.encoderInputMask, x)
        for (a, f) in encoder {
            let (y, at) = attention(a, p, x: x, memory: nil, queries: ls, keys: ls, mask: AttentionMask(causal: false, padding: padding),
                                    batch: batch, dropout: &dropout, unit: unit)
            let (z, ft) = feedForward(f, p, x: y, length: ls, batch: batch, dropout: &dropout, unit: unit)
            tape.encoder.append((at, ft))
            x = z
        }
        let (encoded, encoderNorm) = LayerNorm.forward(x, gamma: p[self.encoderNorm.gamma], beta: p[self.encoderNorm.beta], rows: batch * ls,
                                                       features: h, epsilon: epsilon)
        tape.encoderNorm = encoderNorm
        tape.encoderOutput = encoded
        var d = embed(Self.decoderInput(targets: targets, batch: batch, length: lt), p, batch: batch, length: lt)
        tape.decoderInputMask = dropout.mask(d.count)
        d = Self.apply(tape.decoderInputMask, d)
        for (sa, ea, f) in decoder {
            let (y1, t1) = attention(sa, p, x: d, memory: nil, queries: lt, keys: lt, mask: AttentionMask(causal: true, padding: nil),
                                     batch: batch, dropout: &dropout, unit: unit)
            let (y2, t2) = attention(ea, p, x: y1, memory: encoded, queries: lt, keys: ls, mask: AttentionMask(causal: false, padding: padding),
                                     batch: batch, dropout: &dropout, unit: unit)
            let (y3, t3) = feedForward(f, p, x: y2, length: lt, batch: batch, dropout: &dropout, unit: unit)
            tape.decoder.append((t1, t2, t3))
            d = y3
        }
        let (decoded, decoderNorm) = LayerNorm.forward(d, gamma: p[self.decoderNorm.gamma], beta: p[self.decoderNorm.beta], rows: batch * lt,
                                                       features: h, epsilon: epsilon)
        tape.decoderNorm = decoderNorm
        tape.decoderOutput = decoded
        let logits = SharedOutputProjection.forward(y: decoded, table: p[embedding], batch: batch, length: lt, hidden: h, vocabulary: scale.vocabulary,
                                                    layer: "output_projection", unit: unit)
        return (logits, tape)
    }

    static func tokens(of data: Batch) -> (sources: [Int32], targets: [Int32], batch: Int) {
        guard let t = data.tokens else { preconditionFailure("transformer: a batch of images; the model reads token sequences") }
        return (t.sources, data.labels, t.count)
    }

    /// Forward, loss and backward for one replica's batch.
    public func trainReplica(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> ReplicaResult {
        let (sources, targets, batch) = Self.tokens(of: data)
        let (ls, lt, h) = (scale.sourceLength, scale.targetLength, scale.hidden)
        let (logits, tape) = forward(p, sources: sources, targets: targets, batch: batch, origin: data.origin, unit: unit)
        let (loss, correct, dlogits) = LabelSmoothedCrossEntropy.forwardBackward(logits: logits, labels: targets, vocabulary: scale.vocabulary,
                                                                                 smoothing: scale.labelSmoothing)
        var grads = parameters.map { [Float](repeating: 0, count: $0.count) }
        let dDecoded = SharedOutputProjection.backwardInput(dlogits: dlogits, table: p[embedding], batch: batch, length: lt, hidden: h,
                                                            vocabulary: scale.vocabulary, layer: "output_projection", unit: unit)
        grads[embedding] = SharedOutputProjection.backwardWeight(y: tape.decoderOutput, dlogits: dlogits, batch: batch, length: lt, hidden: h,
                                                                 vocabulary: scale.vocabulary, layer: "output_projection", unit: unit)
        guard let decoderNormCache = tape.decoderNorm, let encoderNormCache = tape.encoderNorm else { preconditionFailure("transformer: no tape") }
        let dn = LayerNorm.backward(dy: dDecoded, cache: decoderNormCache, gamma: p[decoderNorm.gamma], rows: batch * lt, features: h)
        (grads[decoderNorm.gamma], grads[decoderNorm.beta]) = (dn.dgamma, dn.dbeta)
        var dd = dn.dx
        var dEncoded = [Float](repeating: 0, count: batch * ls * h)
        for ((sa, ea, f), (t1, t2, t3)) in zip(decoder, tape.decoder).reversed() {
            dd = feedForwardBackward(f, p, dy: dd, tape: t3, length: lt, batch: batch, unit: unit, grads: &grads)
            let e = attentionBackward(ea, p, dy: dd, tape: t2, memory: tape.encoderOutput, queries: lt, keys: ls, batch: batch, unit: unit, grads: &grads)
            if let dm = e.dmemory { dEncoded = elementwise(dEncoded, dm, +) }
            dd = attentionBackward(sa, p, dy: e.dx, tape: t1, memory: nil, queries: lt, keys: lt, batch: batch, unit: unit, grads: &grads).dx
        }
        if let m = tape.decoderInputMask { dd = Dropout.backward(dy: dd, mask: m) }
        TokenEmbedding.backward(dy: dd, tokens: Self.decoderInput(targets: targets, batch: batch, length: lt), hidden: h, into: &grads[embedding])
        let en = LayerNorm.backward(dy: dEncoded, cache: encoderNormCache, gamma: p[encoderNorm.gamma], rows: batch * ls, features: h)
        (grads[encoderNorm.gamma], grads[encoderNorm.beta]) = (en.dgamma, en.dbeta)
        var dx = en.dx
        for ((a, f), (at, ft)) in zip(encoder, tape.encoder).reversed() {
            dx = feedForwardBackward(f, p, dy: dx, tape: ft, length: ls, batch: batch, unit: unit, grads: &grads)
            dx = attentionBackward(a, p, dy: dx, tape: at, memory: nil, queries: ls, keys: ls, batch: batch, unit: unit, grads: &grads).dx
        }
        if let m = tape.encoderInputMask { dx = Dropout.backward(dy: dx, mask: m) }
        TokenEmbedding.backward(dy: dx, tokens: sources, hidden: h, into: &grads[embedding])
        return ReplicaResult(loss: loss, correct: correct, gradients: grads, statistics: [])
    }

    /// No state besides the parameters.
    public func updateModelState(_ state: inout [[Float]], statistics: [[Float]]) {}

    /// Inference without dropout, teacher-forced: the mean loss over target tokens and the
    /// tokens predicted right.
    public func evaluate(parameters p: [[Float]], modelState: [[Float]], batch data: Batch, unit: MatrixUnit) -> (loss: Float, correct: Int) {
        let (sources, targets, batch) = Self.tokens(of: data)
        let logits = forward(p, sources: sources, targets: targets, batch: batch, origin: nil, unit: unit).logits
        let r = LabelSmoothedCrossEntropy.forwardBackward(logits: logits, labels: targets, vocabulary: scale.vocabulary, smoothing: scale.labelSmoothing)
        return (r.loss, r.correct)
    }
}
