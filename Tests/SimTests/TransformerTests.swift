import Foundation
import Testing
@testable import Sim
import TestSupport

/// The fortunes denoising task and the token data path.
@Suite struct TransformerDataTests {
    /// A directory with a small `fortunes` file (and files the loader must skip).
    static func corpus() throws -> String {
        let dir = Scratch.path("fortunes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var text = ""
        for i in 0..<60 { text += "Fortune number \(i):\n\tsome  words,\r\nand more.\n%\n" }
        text += "caf\u{e9} is left out\n%\n"
        try text.write(toFile: dir + "/fortunes", atomically: true, encoding: .utf8)
        try "ascii\n%\n".write(toFile: dir + "/ascii-art", atomically: true, encoding: .utf8)
        try Data([0, 1, 2]).write(to: URL(fileURLWithPath: dir + "/fortunes.dat"))
        return dir
    }

    @Test func fortunesAreNormalisedAndJoined() throws {
        let f = FortunesText.fortunes(in: Array("  Hello,\n\tworld!  \n%\nSecond\u{8}x\n%\nthird one\n".utf8))
        #expect(f.map { String(decoding: $0.map { UInt8($0) }, as: UTF8.self) } == ["Hello, world!", "third one"])
        let stream = try FortunesText.stream(directory: try Self.corpus())
        let text = String(decoding: stream.map { UInt8($0) }, as: UTF8.self)
        #expect(text.hasPrefix("Fortune number 0: some words, and more.\nFortune number 1:"))
        #expect(!text.contains("caf") && !text.contains("ascii"))
    }

    @Test func taskIsSeededSplitAndMasked() throws {
        let dir = try Self.corpus()
        let a = try FortunesText.load(directory: dir, length: 16, seed: 3), b = try FortunesText.load(directory: dir, length: 16, seed: 3)
        let s = try #require(a.train.sequences), t = try #require(a.test.sequences)
        #expect(s == b.train.sequences && t == b.test.sequences)
        let windows = try FortunesText.stream(directory: dir).count / 16
        #expect(s.count + t.count == windows && t.count == windows / 10)
        #expect(a.train.count == s.count && a.train.predictionCount == s.count * 16)
        // Sources are targets with spans masked: about 16 % of characters, nothing else changed.
        var masked = 0
        for (x, y) in zip(s.sources, s.targets) {
            #expect(x == y || x == FortunesText.mask)
            if x == FortunesText.mask { masked += 1 }
        }
        let rate = Double(masked) / Double(s.sources.count)
        #expect(rate > 0.08 && rate < 0.3, "masked \(rate)")
        let other = try FortunesText.load(directory: dir, length: 16, seed: 4)
        #expect(other.train.sequences != s)
    }

    @Test func missingPackageNamesTheFile() {
        do {
            _ = try FortunesText.load(directory: "/nonexistent/fortunes", length: 8, seed: 0)
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("/nonexistent/fortunes") && error.description.contains("fortunes"))
        }
    }

    @Test func sourcesParseAndPrint() throws {
        #expect(try DatasetSource.parse("fortunes") == .defaultFortunes)
        let s = try DatasetSource.parse("fortunes:length=64,seed=2,dir=/a,b")
        #expect(s == .fortunes(directory: "/a,b", length: 64, seed: 2))
        #expect(try DatasetSource.parse(s.description) == s)
        #expect(DatasetSource.defaultFortunes.fitted(to: .tokens(sourceLength: 8, targetLength: 8, vocabulary: 128)).description
                == "fortunes:length=8,seed=0")
        for bad in ["fortunes:length=0", "fortunes:size=3", "fortunes:seed=1,seed=2", "fortunes:length=8,"] {
            #expect(throws: DatasetError.self) { try DatasetSource.parse(bad) }
        }
    }

    /// Each workload names the data set it trains on unless told otherwise: the fortunes task
    /// for the transformer, Fashion-MNIST for the image networks; examples are named for what
    /// they are.
    @Test func defaultDataSetAndExamplesAreTheWorkloads() throws {
        #expect(try Workloads.named("transformer").defaultDataset == .defaultFortunes)
        #expect(try Workloads.defaultDataset("transformer") == "fortunes")
        for image in ["resnet18", "resnet18_sgd", "resnet18_nobn", "effnet", "densenet", "nfnet"] {
            #expect(try Workloads.defaultDataset(image) == "fashion-mnist", "\(image)")
        }
        #expect(throws: ModelError.self) { try Workloads.defaultDataset("vgg16") }
        let tokens = try Workloads.model("transformer", scale: "tiny").input
        #expect(tokens.examples(2) == "2 sequences" && tokens.examples(1) == "1 sequence")
        #expect(try Workloads.model("resnet18", scale: "tiny").input.examples(4) == "4 images")
    }

    @Test func batchesCarryTokensAndTokenAccuracyIsOverTargets() throws {
        let dir = try Self.corpus()
        var config = try TrainingConfig(workload: "transformer", scale: "tiny", replicas: 2)
        config.precision = .float32
        let run = try TrainingRun(config: config, data: try DatasetSource.fortunes(directory: dir, length: 8, seed: 0).load())
        let batches = run.batches(step: 1)
        #expect(batches.count == 2 && batches[0].tokens?.count == 2 && batches[0].labels.count == 16 && batches[0].images.isEmpty)
        #expect(batches[1].origin == BatchOrigin(seed: 0, epoch: 0, step: 1, replica: 1))
        let (_, metrics) = run.step(run.initialState())
        #expect(metrics.loss.isFinite && metrics.accuracy >= 0 && metrics.accuracy <= 1)
        // The held-out evaluation (a tenth of the small corpus's windows, not the tens of
        // thousands of the real one at this length) weights each batch by its target tokens and
        // counts accuracy over them, in batches of 64 as `evaluate` runs them.
        let state = run.initialState()
        let unit = MatrixUnit(mxu: run.trainer.mxu)
        var lossSum: Float = 0, correct = 0
        for batch in run.data.test.testBatches(batchSize: 64) {
            let r = run.model.evaluate(parameters: state.parameters, modelState: [], batch: batch, unit: unit)
            lossSum += r.loss * Float(batch.count)
            correct += r.correct
        }
        let predictions = run.data.test.count * 8
        let windows = try FortunesText.stream(directory: dir).count / 8
        #expect(run.data.test.predictionCount == predictions && run.data.test.count == windows / 10 && windows / 10 > 1)
        let evaluated = run.evaluate(state)
        #expect(evaluated.loss == lossSum / Float(predictions) && evaluated.accuracy == Float(correct) / Float(predictions))
        #expect(evaluated.loss.isFinite && evaluated.accuracy >= 0 && evaluated.accuracy <= 1)
        // Images for a token model, and tokens for an image model, are refused.
        #expect(throws: TrainingError.self) { try TrainingRun(config: config, data: try DatasetSource.defaultSynthetic.load()) }
        let image = try TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2)
        #expect(throws: TrainingError.self) { try TrainingRun(config: image, data: try DatasetSource.fortunes(directory: dir, length: 8, seed: 0).load()) }
    }
}

/// Gradient checks of the sequence ops against central finite differences (fp32 operands).
@Suite struct TransformerGradientCheckTests {
    typealias G = GradientCheckTests
    static let unit = G.unit

    @Test func projectionsMatchFiniteDifferences() {
        let (b, l, i, o) = (2, 3, 5, 4)
        let x = G.values(b * l * i, seed: 1), w = G.values(i * o, seed: 2), bias = G.values(o, seed: 3), r = G.values(b * l * o, seed: 4)
        let f = { (x: [Float], w: [Float], bias: [Float]) in
            G.dot(Projection.forward(x: x, w: w, b: bias, batch: b, length: l, inFeatures: i, outFeatures: o, layer: "p", unit: Self.unit), r)
        }
        let dx = Projection.backwardInput(dy: r, w: w, batch: b, length: l, inFeatures: i, outFeatures: o, layer: "p", unit: Self.unit)
        let (dw, db) = Projection.backwardWeight(x: x, dy: r, batch: b, length: l, inFeatures: i, outFeatures: o, bias: true, layer: "p", unit: Self.unit)
        #expect(G.worstError(x, analytic: dx) { f($0, w, bias) } < 1e-3)
        #expect(G.worstError(w, analytic: dw) { f(x, $0, bias) } < 1e-3)
        #expect(G.worstError(bias, analytic: db ?? []) { f(x, w, $0) } < 1e-3)
        // The shared output projection.
        let v = 6, e = G.values(v * i, seed: 5), rv = G.values(b * l * v, seed: 6)
        let g = { (x: [Float], e: [Float]) in
            G.dot(SharedOutputProjection.forward(y: x, table: e, batch: b, length: l, hidden: i, vocabulary: v, layer: "o", unit: Self.unit), rv)
        }
        let dy = SharedOutputProjection.backwardInput(dlogits: rv, table: e, batch: b, length: l, hidden: i, vocabulary: v, layer: "o", unit: Self.unit)
        let de = SharedOutputProjection.backwardWeight(y: x, dlogits: rv, batch: b, length: l, hidden: i, vocabulary: v, layer: "o", unit: Self.unit)
        #expect(G.worstError(x, analytic: dy) { g($0, e) } < 1e-3)
        #expect(G.worstError(e, analytic: de) { g(x, $0) } < 1e-3)
    }

    @Test func attentionProductsMatchFiniteDifferences() {
        let s = AttentionShape(batch: 2, heads: 2, queries: 3, keys: 4, depth: 5)
        let q = G.values(s.queryShape.reduce(1, *), seed: 1), k = G.values(s.keyShape.reduce(1, *), seed: 2)
        let rs = G.values(s.scoreShape.reduce(1, *), seed: 3)
        let dq = AttentionProducts.scoresBackwardQuery(dS: rs, k: k, shape: s, layer: "a", unit: Self.unit)
        let dk = AttentionProducts.scoresBackwardKey(q: q, dS: rs, shape: s, layer: "a", unit: Self.unit)
        #expect(G.worstError(q, analytic: dq) { G.dot(AttentionProducts.scores(q: $0, k: k, shape: s, layer: "a", unit: Self.unit), rs) } < 1e-3)
        #expect(G.worstError(k, analytic: dk) { G.dot(AttentionProducts.scores(q: q, k: $0, shape: s, layer: "a", unit: Self.unit), rs) } < 1e-3)
        let p = G.values(s.scoreShape.reduce(1, *), seed: 4), v = G.values(s.keyShape.reduce(1, *), seed: 5)
        let rc = G.values(s.queryShape.reduce(1, *), seed: 6)
        let dp = AttentionProducts.contextBackwardProbabilities(dC: rc, v: v, shape: s, layer: "a", unit: Self.unit)
        let dv = AttentionProducts.contextBackwardValues(p: p, dC: rc, shape: s, layer: "a", unit: Self.unit)
        #expect(G.worstError(p, analytic: dp) { G.dot(AttentionProducts.context(p: $0, v: v, shape: s, layer: "a", unit: Self.unit), rc) } < 1e-3)
        #expect(G.worstError(v, analytic: dv) { G.dot(AttentionProducts.context(p: p, v: $0, shape: s, layer: "a", unit: Self.unit), rc) } < 1e-3)
        // One head's scores are that head's Q K^T.
        let scores = AttentionProducts.scores(q: q, k: k, shape: s, layer: "a", unit: Self.unit)
        let g = 3, (i, j) = (2, 1)
        let expected = (0..<5).reduce(Float(0)) { $0 + q[(g * 3 + i) * 5 + $1] * k[(g * 4 + j) * 5 + $1] }
        #expect(abs(scores[(g * 3 + i) * 4 + j] - expected) < 1e-5)
    }

    /// The softmax's 16-key passes give the scalar definition's bits: biases added only where
    /// a mask applies, the maximum by `Swift.max`'s rule, exponentials, a sum in key order,
    /// division. Keys 37 (two 16-key blocks and a tail) and 7 (tail only); values with -0,
    /// infinities and a NaN among them; with and without the causal and padding masks.
    @Test func maskedSoftmaxKeepsTheScalarDefinitionsBits() {
        func scalar(_ x: [Float], _ s: AttentionShape, _ mask: AttentionMask) -> [Float] {
            var out = [Float](repeating: 0, count: x.count)
            for b in 0..<s.batch { for h in 0..<s.heads { for i in 0..<s.queries {
                let base = ((b * s.heads + h) * s.queries + i) * s.keys
                var row = [Float](repeating: 0, count: s.keys), maxv = -Float.infinity
                for j in 0..<s.keys {
                    var v = x[base + j]
                    if mask.causal && j > i { v += AttentionMask.bias }
                    if let p = mask.padding, p[b * s.keys + j] { v += AttentionMask.bias }
                    row[j] = v
                    maxv = Swift.max(maxv, v)
                }
                for j in 0..<s.keys { row[j] = DeterministicMath.exp(row[j] - maxv) }
                var sum: Float = 0
                for j in 0..<s.keys { sum += row[j] }
                for j in 0..<s.keys { out[base + j] = row[j] / sum }
            } } }
            return out
        }
        for keys in [37, 7] {
            let s = AttentionShape(batch: 2, heads: 2, queries: 5, keys: keys, depth: 1)
            var x = G.values(s.scoreShape.reduce(1, *), seed: UInt64(keys), scale: 30)
            x[3] = -0.0; x[keys + 1] = .infinity; x[2 * keys + 5] = -.infinity; x[4 * keys + 20 % keys] = .nan
            x[5 * keys] = -0.0; x[5 * keys + 1] = 0
            for causal in [false, true] {
                for padding in [nil, (0..<(2 * keys)).map { $0 % 5 == 3 }] as [[Bool]?] {
                    let mask = AttentionMask(causal: causal, padding: padding)
                    #expect(bits(MaskedSoftmax.forward(x, shape: s, mask: mask)) == bits(scalar(x, s, mask)), "keys \(keys) causal \(causal) padding \(padding != nil)")
                }
            }
        }
    }

    @Test(arguments: [false, true])
    func maskedSoftmaxMatchesFiniteDifferences(causal: Bool) {
        let s = AttentionShape(batch: 2, heads: 2, queries: 3, keys: 3, depth: 1)
        let mask = AttentionMask(causal: causal, padding: [false, false, true, false, false, false])
        let x = G.values(s.scoreShape.reduce(1, *), seed: 1, scale: 2), r = G.values(x.count, seed: 2)
        let y = MaskedSoftmax.forward(x, shape: s, mask: mask)
        let dx = MaskedSoftmax.backward(dP: r, p: y, keys: 3)
        #expect(G.worstError(x, analytic: dx, eps: 1e-3) { G.dot(MaskedSoftmax.forward($0, shape: s, mask: mask), r) } < 1e-3)
        // Masked keys get probability 0: the padded key of batch 0, and keys after the query.
        for h in 0..<2 { for i in 0..<3 {
            #expect(y[(h * 3 + i) * 3 + 2] == 0)
            if causal { #expect(y[((2 + h) * 3 + 0) * 3 + 1] == 0) }
        } }
    }

    @Test func layerNormMatchesFiniteDifferences() {
        let (rows, n) = (3, 6)
        let x = G.values(rows * n, seed: 1, scale: 2), gamma = G.values(n, seed: 2), beta = G.values(n, seed: 3), r = G.values(rows * n, seed: 4)
        let f = { (x: [Float], g: [Float], b: [Float]) in G.dot(LayerNorm.forward(x, gamma: g, beta: b, rows: rows, features: n, epsilon: 1e-6).y, r) }
        let cache = LayerNorm.forward(x, gamma: gamma, beta: beta, rows: rows, features: n, epsilon: 1e-6).cache
        let d = LayerNorm.backward(dy: r, cache: cache, gamma: gamma, rows: rows, features: n)
        #expect(G.worstError(x, analytic: d.dx, eps: 1e-3) { f($0, gamma, beta) } < 1e-3)
        #expect(G.worstError(gamma, analytic: d.dgamma, eps: 1e-3) { f(x, $0, beta) } < 1e-3)
        #expect(G.worstError(beta, analytic: d.dbeta, eps: 1e-3) { f(x, gamma, $0) } < 1e-3)
    }

    @Test func labelSmoothedCrossEntropyMatchesFiniteDifferences() {
        let v = 7, labels: [Int32] = [3, 0, 6, 1]
        let logits = G.values(labels.count * v, seed: 1, scale: 3)
        let r = LabelSmoothedCrossEntropy.forwardBackward(logits: logits, labels: labels, vocabulary: v, smoothing: 0.1)
        #expect(G.worstError(logits, analytic: r.dlogits, eps: 1e-3) {
            Double(LabelSmoothedCrossEntropy.forwardBackward(logits: $0, labels: labels, vocabulary: v, smoothing: 0.1).loss)
        } < 1e-3)
        // The padding label's row has no gradient; a confident right prediction scores about 0.
        #expect(r.dlogits[v ..< 2 * v].allSatisfy { $0 == 0 })
        var sharp = [Float](repeating: 0, count: v)
        sharp[2] = DeterministicMath.log(0.9 / (0.1 / 6))
        #expect(abs(LabelSmoothedCrossEntropy.forwardBackward(logits: sharp, labels: [2], vocabulary: v, smoothing: 0.1).loss) < 1e-5)
    }

    @Test func embeddingMatchesFiniteDifferencesAndPositionsAreSinusoids() {
        let (h, tokens): (Int, [Int32]) = (4, [2, 0, 1, 2])
        let table = G.values(3 * h, seed: 1), r = G.values(tokens.count * h, seed: 2)
        var d = [Float](repeating: 0, count: table.count)
        TokenEmbedding.backward(dy: r, tokens: tokens, hidden: h, into: &d)
        #expect(G.worstError(table, analytic: d) { G.dot(TokenEmbedding.forward(tokens: tokens, table: $0, hidden: h), r) } < 1e-3)
        #expect(TokenEmbedding.forward(tokens: tokens, table: table, hidden: h)[h ..< 2 * h].allSatisfy { $0 == 0 })
        let p = PositionEncoding.table(length: 50, hidden: 8)
        for pos in [0, 1, 17, 49] { for i in 0..<4 {
            let t = Double(Float(pos) * Float(Foundation.exp(-Double(i) * log(1e4) / 3)))
            #expect(abs(Double(p[pos * 8 + i]) - Foundation.sin(t)) < 1e-6 && abs(Double(p[pos * 8 + 4 + i]) - Foundation.cos(t)) < 1e-6)
        } }
        for x in stride(from: -3000.0, through: 3000.0, by: 0.37) {
            let (s, c) = PositionEncoding.sinCos(x)
            #expect(abs(s - Foundation.sin(x)) < 1e-14 && abs(c - Foundation.cos(x)) < 1e-14)
        }
    }
}

/// The `transformer` workload's structure and one step's invariants.
@Suite struct TransformerStructureTests {
    @Test func paperScaleHasTheReferenceNamesAndShapes() throws {
        let model = try Workloads.model("transformer", scale: "paper")
        let (b, l, h) = (16, 64, 512)
        #expect(model.input == .tokens(sourceLength: 64, targetLength: 64, vocabulary: 128))
        let forward = model.operations.filter { $0.site.kind == .forward }.map(\.name)
        var names: [String] = []
        let attention = ["query", "key", "value", "scores", "context", "output"]
        for i in 0..<6 { names += attention.map { "encoder_stack_attention_\(i)_\($0)" } + ["encoder_stack_ffn_\(i)_filter", "encoder_stack_ffn_\(i)_output"] }
        for i in 0..<6 {
            names += attention.map { "decoder_stack_self_attention_\(i)_\($0)" } + attention.map { "decoder_stack_enc_dec_attention_\(i)_\($0)" }
                + ["decoder_stack_ffn_\(i)_filter", "decoder_stack_ffn_\(i)_output"]
        }
        names.append("output_projection")
        #expect(forward == names)
        #expect(model.operations.count == 3 * names.count && Set(model.sites).count == model.sites.count)
        // Backward: the reverse of the forward order, each `_grad_in` then `_grad_wt`.
        let backward = model.operations.filter { $0.site.kind != .forward }.map(\.name)
        #expect(backward == names.reversed().flatMap { [$0 + "_grad_in", $0 + "_grad_wt"] })
        let shape = { (name: String, role: OperandRole) in model.operandShape(SiteID(parsing: name), role) }
        #expect(shape("encoder_stack_attention_2_value_grad_in", .input) == [b, l, h])
        #expect(shape("encoder_stack_attention_2_value_grad_in", .weight) == [h, h])
        #expect(shape("decoder_stack_enc_dec_attention_4_value_grad_in", .output) == [b, l, h])
        #expect(shape("decoder_stack_enc_dec_attention_4_value_grad_wt", .output) == [h, h])
        #expect(shape("encoder_stack_ffn_0_filter", .output) == [b, l, 2048])
        #expect(shape("decoder_stack_self_attention_1_scores", .output) == [b, 8, l, l])
        #expect(shape("decoder_stack_self_attention_1_scores_grad_wt", .output) == [b, 8, l, 64])
        #expect(shape("decoder_stack_self_attention_1_context_grad_in", .output) == [b, 8, l, l])
        #expect(shape("output_projection", .weight) == [128, h])
        #expect(model.operation(named: "decoder_stack_self_attention_1_scores")?.gemm == GEMMShape(m: b * 8 * l, k: 64, n: l))
        // Softmax, masks and layer norm are counted: vector work on every attention product and query.
        #expect(model.operation(named: "encoder_stack_attention_0_scores")!.vector.elements == b * 8 * l * l)
        #expect(model.operation(named: "encoder_stack_attention_0_query")!.vector.reductions == 2)
        #expect(model.referenceSamplingSites.allSatisfy { $0.kind != .gradWt } && model.referenceSamplingSites.count == 2 * names.count)
        // Parameters: 44M of the base model's 6 + 6 layers at vocabulary 128.
        #expect(model.parameters.reduce(0) { $0 + $1.count } == 128 * h + 6 * (4 * h * h + 2 * h * 2048 + 2048 + h + 4 * h)
                + 6 * (8 * h * h + 2 * h * 2048 + 2048 + h + 6 * h) + 4 * h)
    }

    @Test func presetsAreRecordedAndValidated() throws {
        for scale in ["tiny", "small", "paper"] {
            let c = try Workloads.configuration("transformer", scale: scale)
            let model = try Workloads.model("transformer", c)
            #expect(model.configuration == c && model.scaleName == scale)
        }
        let tiny = try Workloads.configuration("transformer", scale: "tiny")
        for (field, value) in [("heads", JSONValue.integer(3)), ("dropout", .number(1)), ("hidden", .integer(15)), ("vocabulary", .integer(1))] {
            #expect(throws: ModelError.self) { try Workloads.model("transformer", try tiny.setting(field, to: value, workload: "transformer")) }
        }
    }

    static func batches(_ model: any Model, seed: UInt64 = 1) -> [Batch] {
        guard case .tokens(let ls, let lt, let v) = model.input else { return [] }
        return (0..<2).map { r in
            var rng = CounterRNG(seed: seed, purpose: .synthetic, r)
            let n = model.batchPerReplica
            let sources = (0..<(n * ls)).map { _ in Int32(1 + rng.nextInt(below: v - 1)) }
            let targets = (0..<(n * lt)).map { _ in Int32(1 + rng.nextInt(below: v - 1)) }
            return Batch(images: [], labels: targets, indices: [], origin: BatchOrigin(seed: 0, epoch: 0, step: 0, replica: r),
                         tokens: TokenBatch(sources: sources, sourceLength: ls, targetLength: lt))
        }
    }

    /// Every operation runs in the table's order, and a step does not depend on the threads.
    @Test func stepRunsTheTableInOrderAndIsThreadIndependent() throws {
        let model = try Workloads.model("transformer", scale: "tiny")
        let state = TrainingState(model: model, optimizer: OptimizerConfig(kind: .adam), seed: 7)
        let batches = Self.batches(model)
        func trainer(_ threads: Int) -> Trainer {
            Trainer(model: model, optimizer: OptimizerConfig(kind: .adam), schedule: LearningRateSchedule(initial: 1e-3, final: 1e-3, decaySteps: 1),
                    mxu: MXU(config: .tpuV2, precision: .bfloat16, threads: threads))
        }
        let one = trainer(1).gradients(state, batches: batches, digests: .current)
        let two = trainer(2).gradients(state, batches: batches, digests: .current)
        #expect(one.siteDigests[0].map(\.site) == model.sites)
        #expect(one.gradients == two.gradients && one.metrics == two.metrics)
        #expect(one.metrics.loss.isFinite && one.gradients.allSatisfy { g in g.allSatisfy(\.isFinite) })
        // Dropout is drawn per replica and step: the replicas' digests differ, evaluation has none.
        #expect(one.siteDigests[0].map(\.digest) != one.siteDigests[1].map(\.digest))
        let e1 = model.evaluate(parameters: state.parameters, modelState: [], batch: batches[0], unit: MatrixUnit(mxu: MXU(foldLength: 4, precision: .float32)))
        let e2 = model.evaluate(parameters: state.parameters, modelState: [], batch: batches[0], unit: MatrixUnit(mxu: MXU(foldLength: 4, precision: .float32)))
        #expect(e1 == e2 && e1.loss.isFinite)
    }
}

/// One tiny step (dropout 0) against PyTorch float64: `scripts/reference/torch_transformer_step.py`
/// wrote `Fixtures/transformer_tiny_step.safetensors` (random parameters, tokens with padding
/// in one source per replica, the expected loss, gradients and Adam updates). Tolerances as
/// the ResNet-18 fixtures': loss 1e-5 relative, gradients 2e-4 and updates 1e-3 relative L2
/// (measured worst printed).
@Suite struct TransformerReferenceStepTests {
    static let tolerance = ReferenceStepTests.Tolerance(loss: 1e-5, gradient: 2e-4, update: 1e-3, moving: 0, zeroGradient: 0)

    static var fixture: ReferenceStepTests.Fixture {
        get throws { try ReferenceStepTests.Fixture(path: ReferenceStepTests.fixture("transformer")) }
    }

    static func model(_ change: (inout Transformer.Configuration) -> Void = { _ in }) -> Transformer {
        var c = Transformer.Configuration.tiny
        c.dropout = 0
        change(&c)
        return Transformer(scale: c)
    }

    @Test func oneStepMatchesPyTorchInFp32OperandMode() throws {
        let c = try ReferenceStepTests.compare(Self.fixture, workload: "transformer", scale: "tiny", model: Self.model())
        print("reference step transformer: \(c.summary)")
        #expect(c.within(Self.tolerance), "\(c.summary)")
    }

    /// The comparison fails with label smoothing off, with dropout on, and with a layer-norm
    /// gain changed.
    @Test func checksCanFail() throws {
        let f = try Self.fixture
        let a = try ReferenceStepTests.compare(f, workload: "transformer", scale: "tiny", model: Self.model { $0.labelSmoothing = 0 })
        #expect(a.loss > 100 * Self.tolerance.loss && a.gradient.error > 100 * Self.tolerance.gradient, "no smoothing: \(a.summary)")
        let b = try ReferenceStepTests.compare(f, workload: "transformer", scale: "tiny", model: Self.model { $0.dropout = 0.1 })
        #expect(b.gradient.error > 100 * Self.tolerance.gradient, "dropout: \(b.summary)")
        let c = try ReferenceStepTests.compare(f, workload: "transformer", scale: "tiny", model: Self.model()) { name, p in
            if name == "decoder_stack/layer_1/encdec_attention/layer_normalization/gamma" { p = p.map { $0 * 1.01 } }
        }
        #expect(c.gradient.error > 10 * Self.tolerance.gradient, "gamma changed: \(c.summary)")
    }
}
