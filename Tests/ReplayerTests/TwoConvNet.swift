import Sim

/// A workload defined only here, in the test target: the proof that a workload is one file.
/// Two biased 3x3 convolutions with ReLU, global average pooling, a dense classifier; its
/// model state is a moving mean of the pooled features (exercising the model-state path
/// without batch norm: recorded, restored, carried through update deltas; not used by
/// inference).
///
/// Sites: `c1`, `c2`, `fc`, then `fc_grad_in`, `fc_grad_wt`, `c2_grad_in`, `c2_grad_wt`,
/// `c1_grad_wt` (nothing consumes the image gradient).
struct TwoConvNet: Model {
    struct Configuration: Codable, Equatable {
        var name: String
        var side: Int
        var width: Int
        var batchPerReplica: Int
        var classes: Int
    }

    static let name = "test_twoconv"
    static let tiny = Configuration(name: "tiny", side: 8, width: 4, batchPerReplica: 4, classes: 10)

    /// Registers the workload (idempotent).
    static func register() {
        Workloads.register(WorkloadDefinition(
            name: name, summary: "two convolutions and a classifier (test only)", defaultOptimizer: .adam, scales: ["tiny"],
            preset: { (scale: String) throws(ModelError) -> ModelConfiguration in
                guard scale == "tiny" else { throw .unknownScale(scale, workload: name, known: ["tiny"]) }
                return try ModelConfiguration(encoding: tiny)
            },
            build: { (c: ModelConfiguration) throws(ModelError) -> any Model in
                TwoConvNet(try c.decode(Configuration.self, workload: name))
            }))
    }

    let config: Configuration
    let c1: ConvShape, c2: ConvShape
    let parameters: [TensorSpec]
    let operations: [MXUOperation]

    init(_ config: Configuration) {
        self.config = config
        let (b, s, w) = (config.batchPerReplica, config.side, config.width)
        c1 = .same(batch: b, inH: s, inW: s, inChannels: 1, filter: 3, outChannels: w, stride: 1)
        c2 = .same(batch: b, inH: s, inW: s, inChannels: w, filter: 3, outChannels: w, stride: 1)
        parameters = [TensorSpec("c1/kernel", c1.weightShape), TensorSpec("c1/bias", [w]), TensorSpec("c2/kernel", c2.weightShape),
                      TensorSpec("c2/bias", [w]), TensorSpec("fc/kernel", [w, config.classes]), TensorSpec("fc/bias", [config.classes])]
        func op(_ name: String, _ kind: OperationKind, _ g: GEMMShape, _ x: [Int], _ wt: [Int], _ y: [Int]) -> MXUOperation {
            MXUOperation(site: SiteID(layer: name, kind: kind), gemm: g, inputShape: x, weightShape: wt, outputShape: y)
        }
        let fc = GEMMShape(m: b, k: w, n: config.classes)
        let (g1, g2) = (c1.gemm, c2.gemm)
        operations = [
            op("c1", .forward, g1, c1.inputShape, c1.weightShape, c1.outputShape),
            op("c2", .forward, g2, c2.inputShape, c2.weightShape, c2.outputShape),
            op("fc", .forward, fc, [b, w], [w, config.classes], [b, config.classes]),
            op("fc", .gradIn, GEMMShape(m: b, k: config.classes, n: w), [b, config.classes], [w, config.classes], [b, w]),
            op("fc", .gradWt, GEMMShape(m: w, k: b, n: config.classes), [b, w], [b, config.classes], [w, config.classes]),
            op("c2", .gradIn, GEMMShape(m: g2.m, k: g2.n, n: g2.k), c2.outputShape, c2.weightShape, c2.inputShape),
            op("c2", .gradWt, GEMMShape(m: g2.k, k: g2.m, n: g2.n), c2.inputShape, c2.outputShape, c2.weightShape),
            op("c1", .gradWt, GEMMShape(m: g1.k, k: g1.m, n: g1.n), c1.inputShape, c1.outputShape, c1.weightShape),
        ]
    }

    var workload: String { Self.name }
    var configuration: ModelConfiguration { try! ModelConfiguration(encoding: config) }
    var scaleName: String { config.name }
    var input: InputSpec { .images(height: config.side, width: config.side, channels: 1, classes: config.classes) }
    var batchPerReplica: Int { config.batchPerReplica }
    var modelState: [TensorSpec] { [TensorSpec("pool/moving_mean", [config.width])] }

    func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]]) {
        let p = parameters.enumerated().map { i, t in
            guard t.name.hasSuffix("/kernel") else { return [Float](repeating: 0, count: t.count) }
            var rng = CounterRNG(seed: seed, purpose: .initialization, i)
            return (0..<t.count).map { _ in (rng.nextUniform() * 2 - 1) * 0.5 }
        }
        return (p, [[Float](repeating: 0, count: config.width)])
    }

    /// Forward to the logits; what the backward needs.
    func forward(_ p: [[Float]], _ images: [Float], batch: Int, unit: MatrixUnit) -> (logits: [Float], h1: [Float], h2: [Float], pooled: [Float]) {
        func conv(_ x: [Float], _ s: ConvShape, _ w: Int, _ b: Int, _ name: String) -> [Float] {
            var y = Conv2D.forward(x: x, w: p[w], shape: s.with(batch: batch), layer: name, unit: unit)
            for i in y.indices { y[i] += p[b][i % s.outChannels] }
            return ReLU.forward(y)
        }
        let h1 = conv(images, c1, 0, 1, "c1"), h2 = conv(h1, c2, 2, 3, "c2")
        let pooled = GlobalAveragePool.forward(x: h2, batch: batch, pixels: config.side * config.side, channels: config.width)
        let logits = Dense.forward(x: pooled, w: p[4], b: p[5], batch: batch, inFeatures: config.width, outFeatures: config.classes,
                                   layer: "fc", unit: unit)
        return (logits, h1, h2, pooled)
    }

    func trainReplica(parameters p: [[Float]], modelState: [[Float]], batch: Batch, unit: MatrixUnit) -> ReplicaResult {
        let n = batch.labels.count, (w, k) = (config.width, config.classes)
        let f = forward(p, batch.images, batch: n, unit: unit)
        let (loss, correct, dlogits) = SoftmaxCrossEntropy.forwardBackward(logits: f.logits, labels: batch.labels, classes: k)
        var g = parameters.map { [Float](repeating: 0, count: $0.count) }
        let dpooled = Dense.backwardInput(dy: dlogits, w: p[4], batch: n, inFeatures: w, outFeatures: k, layer: "fc", unit: unit)
        (g[4], g[5]) = Dense.backwardWeight(x: f.pooled, dy: dlogits, batch: n, inFeatures: w, outFeatures: k, layer: "fc", unit: unit)
        let pixels = config.side * config.side
        let dh2 = ReLU.backward(dy: GlobalAveragePool.backward(dy: dpooled, batch: n, pixels: pixels, channels: w), x: f.h2)
        g[3] = Reduce.columnSums(dh2, rows: n * pixels, columns: w)
        let dh1 = ReLU.backward(dy: Conv2D.backwardInput(dy: dh2, w: p[2], shape: c2.with(batch: n), layer: "c2", unit: unit), x: f.h1)
        g[2] = Conv2D.backwardWeight(x: f.h1, dy: dh2, shape: c2.with(batch: n), layer: "c2", unit: unit)
        g[1] = Reduce.columnSums(dh1, rows: n * pixels, columns: w)
        g[0] = Conv2D.backwardWeight(x: batch.images, dy: dh1, shape: c1.with(batch: n), layer: "c1", unit: unit)
        let mean = Reduce.columnSums(f.pooled, rows: n, columns: w).map { $0 / Float(n) }
        return ReplicaResult(loss: loss, correct: correct, gradients: g, statistics: [mean])
    }

    func updateModelState(_ state: inout [[Float]], statistics: [[Float]]) {
        for i in state[0].indices { state[0][i] = 0.9 * state[0][i] + 0.1 * statistics[0][i] }
    }

    func evaluate(parameters p: [[Float]], modelState: [[Float]], batch: Batch, unit: MatrixUnit) -> (loss: Float, correct: Int) {
        let logits = forward(p, batch.images, batch: batch.labels.count, unit: unit).logits
        let r = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: batch.labels, classes: config.classes)
        return (r.loss, r.correct)
    }
}
