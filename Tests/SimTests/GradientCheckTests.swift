import Testing
@testable import Sim

/// Per-layer gradient checks: each backward pass against central finite differences of the
/// forward pass, in fp32-operand mode, for the scalar loss L = sum(y * r) with fixed random r.
@Suite struct GradientCheckTests {
    static let unit = MatrixUnit(mxu: MXU(foldLength: 4, precision: .float32))

    static func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = CounterRNG(seed: seed, purpose: .synthetic)
        return (0..<n).map { _ in (rng.nextUniform() * 2 - 1) * scale }
    }

    static func dot(_ y: [Float], _ r: [Float]) -> Double { zip(y, r).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    /// Largest relative error between `analytic` and finite differences of `loss` at up to
    /// `samples` positions of `x`.
    static func worstError(_ x: [Float], analytic: [Float], eps: Float = 1e-2, samples: Int = 24,
                           loss: ([Float]) -> Double) -> Double {
        var worst = 0.0
        var rng = CounterRNG(seed: 99, purpose: .synthetic)
        for _ in 0..<min(samples, x.count) {
            let i = rng.nextInt(below: x.count)
            var plus = x, minus = x
            plus[i] += eps
            minus[i] -= eps
            let numeric = (loss(plus) - loss(minus)) / Double(2 * eps)
            let err = abs(numeric - Double(analytic[i])) / max(1, abs(numeric))
            worst = max(worst, err)
        }
        return worst
    }

    @Test(arguments: [1, 2])
    func conv2DGradientsMatchFiniteDifferences(stride: Int) {
        let s = ConvShape.same(batch: 2, inH: 5, inW: 6, inChannels: 3, filter: 3, outChannels: 4, stride: stride)
        let x = Self.values(s.inputShape.reduce(1, *), seed: 1), w = Self.values(s.weightShape.reduce(1, *), seed: 2)
        let r = Self.values(s.outputShape.reduce(1, *), seed: 3)
        let dx = Conv2D.backwardInput(dy: r, w: w, shape: s, layer: "c", unit: Self.unit)
        let dw = Conv2D.backwardWeight(x: x, dy: r, shape: s, layer: "c", unit: Self.unit)
        #expect(Self.worstError(x, analytic: dx) { Self.dot(Conv2D.forward(x: $0, w: w, shape: s, layer: "c", unit: Self.unit), r) } < 1e-3)
        #expect(Self.worstError(w, analytic: dw) { Self.dot(Conv2D.forward(x: x, w: $0, shape: s, layer: "c", unit: Self.unit), r) } < 1e-3)
        // A 1x1 stride-2 VALID convolution (the downsample) too.
        let v = ConvShape.valid(batch: 2, inH: 5, inW: 5, inChannels: 3, filter: 1, outChannels: 2, stride: 2)
        let xv = Self.values(v.inputShape.reduce(1, *), seed: 4), wv = Self.values(v.weightShape.reduce(1, *), seed: 5)
        let rv = Self.values(v.outputShape.reduce(1, *), seed: 6)
        let dxv = Conv2D.backwardInput(dy: rv, w: wv, shape: v, layer: "d", unit: Self.unit)
        #expect(Self.worstError(xv, analytic: dxv) { Self.dot(Conv2D.forward(x: $0, w: wv, shape: v, layer: "d", unit: Self.unit), rv) } < 1e-3)
    }

    @Test func denseGradientsMatchFiniteDifferences() {
        let (n, i, o) = (3, 7, 5)
        let x = Self.values(n * i, seed: 1), w = Self.values(i * o, seed: 2), b = Self.values(o, seed: 3)
        let r = Self.values(n * o, seed: 4)
        let f = { (x: [Float], w: [Float], b: [Float]) in
            Self.dot(Dense.forward(x: x, w: w, b: b, batch: n, inFeatures: i, outFeatures: o, layer: "fc", unit: Self.unit), r)
        }
        let dx = Dense.backwardInput(dy: r, w: w, batch: n, inFeatures: i, outFeatures: o, layer: "fc", unit: Self.unit)
        let (dw, db) = Dense.backwardWeight(x: x, dy: r, batch: n, inFeatures: i, outFeatures: o, layer: "fc", unit: Self.unit)
        #expect(Self.worstError(x, analytic: dx) { f($0, w, b) } < 1e-3)
        #expect(Self.worstError(w, analytic: dw) { f(x, $0, b) } < 1e-3)
        #expect(Self.worstError(b, analytic: db) { f(x, w, $0) } < 1e-3)
    }

    @Test func batchNormGradientsMatchFiniteDifferences() {
        let (rows, ch) = (12, 3)
        let x = Self.values(rows * ch, seed: 1, scale: 2), gamma = Self.values(ch, seed: 2), beta = Self.values(ch, seed: 3)
        let r = Self.values(rows * ch, seed: 4)
        let f = { (x: [Float], g: [Float], b: [Float]) in
            Self.dot(BatchNorm.forwardTraining(x: x, rows: rows, channels: ch, gamma: g, beta: b, epsilon: 1e-3, order: .pairwise).y, r)
        }
        let fwd = BatchNorm.forwardTraining(x: x, rows: rows, channels: ch, gamma: gamma, beta: beta, epsilon: 1e-3, order: .pairwise)
        let (dx, dg, db) = BatchNorm.backward(dy: r, cache: fwd.cache, rows: rows, channels: ch, gamma: gamma, order: .pairwise)
        #expect(Self.worstError(x, analytic: dx, eps: 3e-3) { f($0, gamma, beta) } < 2e-2)
        #expect(Self.worstError(gamma, analytic: dg) { f(x, $0, beta) } < 1e-3)
        #expect(Self.worstError(beta, analytic: db) { f(x, gamma, $0) } < 1e-3)
    }

    @Test func poolingActivationAndLossGradientsMatchFiniteDifferences() {
        // Inputs kept away from ReLU's kink and from max-pool ties.
        let x = Self.values(2 * 4 * 4 * 3, seed: 7, scale: 3).map { $0 + ($0 < 0 ? -0.1 : 0.1) }
        let r = Self.values(x.count, seed: 8)
        #expect(Self.worstError(x, analytic: ReLU.backward(dy: r, x: x), eps: 1e-3) { Self.dot(ReLU.forward($0), r) } < 1e-3)

        let pool = MaxPool.forward(x: x, batch: 2, height: 4, width: 4, channels: 3, window: 2, stride: 2)
        let rp = Self.values(pool.y.count, seed: 9)
        let dxp = MaxPool.backward(dy: rp, argmax: pool.argmax, inputCount: x.count)
        #expect(Self.worstError(x, analytic: dxp, eps: 1e-3) {
            Self.dot(MaxPool.forward(x: $0, batch: 2, height: 4, width: 4, channels: 3, window: 2, stride: 2).y, rp)
        } < 1e-3)

        let rg = Self.values(2 * 3, seed: 10)
        let dxg = GlobalAveragePool.backward(dy: rg, batch: 2, pixels: 16, channels: 3)
        #expect(Self.worstError(x, analytic: dxg) { Self.dot(GlobalAveragePool.forward(x: $0, batch: 2, pixels: 16, channels: 3), rg) } < 1e-3)

        let logits = Self.values(4 * 5, seed: 11, scale: 2)
        let labels: [Int32] = [0, 3, 4, 1]
        let d = SoftmaxCrossEntropy.forwardBackward(logits: logits, labels: labels, classes: 5).dlogits
        #expect(Self.worstError(logits, analytic: d, eps: 1e-2) {
            Double(SoftmaxCrossEntropy.forwardBackward(logits: $0, labels: labels, classes: 5).loss)
        } < 1e-2)
    }

    /// Channel concatenation (DenseNet) and its split: the split is the adjoint, and the
    /// forward puts `a`'s channels first in every row.
    @Test func channelConcatGradientsMatchFiniteDifferences() {
        let (rows, ca, cb) = (6, 3, 2)
        let a = Self.values(rows * ca, seed: 1), b = Self.values(rows * cb, seed: 2), r = Self.values(rows * (ca + cb), seed: 3)
        let (da, db) = ChannelConcat.backward(dy: r, channelsA: ca, channelsB: cb, rows: rows)
        #expect(Self.worstError(a, analytic: da) { Self.dot(ChannelConcat.forward($0, channelsA: ca, b, channelsB: cb, rows: rows), r) } < 1e-3)
        #expect(Self.worstError(b, analytic: db) { Self.dot(ChannelConcat.forward(a, channelsA: ca, $0, channelsB: cb, rows: rows), r) } < 1e-3)
        let y = ChannelConcat.forward(a, channelsA: ca, b, channelsB: cb, rows: rows)
        #expect(Array(y[5..<10]) == Array(a[3..<6]) + Array(b[2..<4]))
        #expect(ChannelConcat.backward(dy: y, channelsA: ca, channelsB: cb, rows: rows) == (a, b))
    }

    @Test func dropoutScalesKeptElementsAndIsReproducible() {
        let rng = CounterRNG(seed: 5, purpose: .dropout, 3, 1, 2)
        let m = Dropout.mask(count: 10_000, rate: 0.2, rng: rng)
        #expect(m == Dropout.mask(count: 10_000, rate: 0.2, rng: rng))
        #expect(Set(m) == [0, 1.25])
        let kept = m.filter { $0 > 0 }.count
        #expect(abs(kept - 8000) < 200)
        #expect(Dropout.backward(dy: [2, 2], mask: [0, 1.25]) == [0, 2.5])
        // Draw i is the stream's value at its counter + i, eight at a time and the tail one by
        // one: the scalar definition, from a stream already advanced, over a ragged count.
        var advanced = rng
        for _ in 0..<3 { _ = advanced.next() }
        let scalar = (0..<1003).map { Float(advanced.value(at: advanced.counter &+ UInt64($0)) >> 40) * 0x1p-24 >= 0.2 ? Float(1.25) : 0 }
        #expect(Dropout.mask(count: 1003, rate: 0.2, rng: advanced) == scalar)
    }

    @Test func softmaxLossIsFiniteForLargeLogitsAndNaNForNaN() {
        let big = SoftmaxCrossEntropy.forwardBackward(logits: [1000, -1000, 0], labels: [0], classes: 3)
        #expect(big.loss == 0 && big.correct == 1)
        let nan = SoftmaxCrossEntropy.forwardBackward(logits: [1, .nan, 0], labels: [0], classes: 3)
        #expect(nan.loss.isNaN && nan.correct == 0)
    }
}
