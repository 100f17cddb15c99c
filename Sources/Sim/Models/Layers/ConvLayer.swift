/// The building blocks the reference's convolutional networks share: a convolution on the
/// MXU followed by an optional bias and an optional batch norm, the registry of a network's
/// trainable tensors and batch-norm layers, and the operation-table entries of a convolution.
/// Each workload's model file composes these; activations, pooling, dropout and the
/// network's own structure stay in the model file, written out forward and backward.

/// A network's trainable tensors and batch-norm layers as its initialiser registers them, in
/// registration order (which is ``Model/parameters`` order and ``Model/modelState`` order).
struct ParameterTable {
    private(set) var specs: [TensorSpec] = []
    private(set) var norms: [NormLayer] = []

    /// Registers a tensor; returns its index into the parameters.
    mutating func add(_ name: String, _ shape: [Int]) -> Int {
        specs.append(TensorSpec(name, shape))
        return specs.count - 1
    }

    /// Registers a batch-norm layer `name` (its `gamma` and `beta`); returns its index into
    /// ``norms``. Its moving mean and variance are model state `2 * index` and `2 * index + 1`.
    mutating func norm(_ name: String, channels: Int) -> Int {
        let g = add(name + "/gamma", [channels]), b = add(name + "/beta", [channels])
        norms.append(NormLayer(name: name, channels: channels, gamma: g, beta: b))
        return norms.count - 1
    }

    /// A convolution `name` with its kernel, a bias if `bias`, and a batch norm `name + normSuffix`
    /// if `normSuffix` is not nil, registered in that order.
    mutating func conv(_ name: String, _ shape: ConvShape, bias: Bool, normSuffix: String?) -> ConvLayer {
        conv(name, shape, bias: bias, normNamed: normSuffix.map { name + $0 })
    }

    /// The same with the batch norm's whole name (`bn1` after `conv1`, say), if any.
    mutating func conv(_ name: String, _ shape: ConvShape, bias: Bool, normNamed normName: String?) -> ConvLayer {
        let w = add(name + "/kernel", shape.weightShape)
        let b = bias ? add(name + "/bias", [shape.outChannels]) : nil
        let n = normName.map { norm($0, channels: shape.outChannels) }
        return ConvLayer(name: name, shape: shape, weight: w, bias: b, norm: n)
    }

    /// Per batch-norm layer, its moving mean, then its moving variance.
    var modelState: [TensorSpec] {
        norms.flatMap { [TensorSpec($0.name + "/moving_mean", [$0.channels]), TensorSpec($0.name + "/moving_variance", [$0.channels])] }
    }

    /// Fresh values of `parameters` and of the moving statistics of `norms`, as the
    /// reference's Keras layers start: every `/kernel` from `initializer`, drawn from
    /// `CounterRNG(seed, .initialization, tensor index)`; every `/gamma` 1; everything else
    /// (biases, betas) 0; moving means 0 and moving variances 1.
    static func initialState(parameters: [TensorSpec], norms: [NormLayer], seed: UInt64,
                             initializer: Initializer) -> (parameters: [[Float]], modelState: [[Float]]) {
        var params: [[Float]] = []
        for (i, spec) in parameters.enumerated() {
            if spec.name.hasSuffix("/kernel") {
                var rng = CounterRNG(seed: seed, purpose: .initialization, i)
                params.append(initializer.kernel(shape: spec.shape, rng: &rng))
            } else {
                params.append([Float](repeating: spec.name.hasSuffix("/gamma") ? 1 : 0, count: spec.count))
            }
        }
        let moving = norms.flatMap { [[Float](repeating: 0, count: $0.channels), [Float](repeating: 1, count: $0.channels)] }
        return (params, moving)
    }
}

/// A batch-norm layer: its name, channels and where its gamma and beta live in the parameters.
public struct NormLayer: Sendable {
    public let name: String
    public let channels: Int
    public let gamma: Int
    public let beta: Int
}

/// How a forward pass normalises: with this batch's statistics (training) or with the moving
/// ones (inference, ``Model/modelState``).
enum NormMode {
    case batch
    case moving([[Float]])
}

/// Batch-norm settings of a network: epsilon and the order of its sums.
struct NormSettings: Sendable {
    var epsilon: Float
    var order: ReductionOrder

    /// `x` (`rows x channels`, channel fastest) through norm `n` of `norms`: `y`, and in
    /// training the batch statistics and the cache of the backward pass.
    func forward(_ x: [Float], rows: Int, norm n: Int, norms: [NormLayer], _ p: [[Float]],
                 _ normalization: NormMode) -> (y: [Float], statistics: (mean: [Float], variance: [Float])?, cache: BatchNorm.Cache?) {
        let layer = norms[n]
        switch normalization {
        case .batch:
            let bn = BatchNorm.forwardTraining(x: x, rows: rows, channels: layer.channels, gamma: p[layer.gamma], beta: p[layer.beta],
                                               epsilon: epsilon, order: order)
            return (bn.y, (bn.mean, bn.variance), bn.cache)
        case .moving(let moving):
            return (BatchNorm.forwardInference(x: x, rows: rows, channels: layer.channels, gamma: p[layer.gamma], beta: p[layer.beta],
                                               movingMean: moving[2 * n], movingVariance: moving[2 * n + 1], epsilon: epsilon), nil, nil)
        }
    }

    /// The backward of norm `n`: `dx`, with its gamma and beta gradients written to `grads`.
    func backward(_ dy: [Float], cache: BatchNorm.Cache, rows: Int, norm n: Int, norms: [NormLayer], _ p: [[Float]],
                  grads: inout [[Float]]) -> [Float] {
        let layer = norms[n]
        let bn = BatchNorm.backward(dy: dy, cache: cache, rows: rows, channels: layer.channels, gamma: p[layer.gamma], order: order)
        (grads[layer.gamma], grads[layer.beta]) = (bn.dgamma, bn.dbeta)
        return bn.dx
    }
}

/// A convolution layer: conv on the MXU, then its bias (if any), then its batch norm (if any);
/// no activation. ``shape`` is for the model's batch per replica; forward and backward take
/// the batch they run.
public struct ConvLayer: Sendable {
    public let name: String
    public let shape: ConvShape
    /// Index of the kernel (HWIO) in the parameters.
    public let weight: Int
    /// Index of the bias in the parameters, added before the batch norm.
    public let bias: Int?
    /// Index of the following batch norm into the network's norm layers.
    public let norm: Int?

    /// What the forward keeps for the backward: the conv's input and the batch norm's cache.
    struct Cache {
        var input: [Float]
        var norm: BatchNorm.Cache?
    }

    /// `x` (NHWC, `batch` images) through conv, bias and norm. In training, the norm's batch
    /// statistics come back with the output.
    func forward(_ x: [Float], _ p: [[Float]], batch: Int, norms: [NormLayer], settings: NormSettings, _ normalization: NormMode,
                 unit: MatrixUnit) -> (y: [Float], cache: Cache, statistics: (mean: [Float], variance: [Float])?) {
        let channels = shape.outChannels
        var y = Conv2D.forward(x: x, w: p[weight], shape: shape.with(batch: batch), layer: name, unit: unit)
        if let b = bias {
            y = p[b].withUnsafeBufferPointer { bias in BatchNorm.perChannel(y, channels: channels) { v, ch in v + bias[ch] } }
        }
        guard let n = norm else { return (y, Cache(input: x, norm: nil), nil) }
        let bn = settings.forward(y, rows: y.count / channels, norm: n, norms: norms, p, normalization)
        return (bn.y, Cache(input: x, norm: bn.cache), bn.statistics)
    }

    /// The backward from dL/d(output after bias and norm): writes the kernel, bias and norm
    /// gradients to `grads` and returns dL/d(input) (empty when not `needInput`: the stem's
    /// `_grad_in` is not run). `_grad_in` runs before `_grad_wt`, as the operation table lists them.
    func backward(_ dy: [Float], cache: Cache, _ p: [[Float]], batch: Int, norms: [NormLayer], settings: NormSettings,
                  layout: ConvBackwardLayout, needInput: Bool = true, unit: MatrixUnit, grads: inout [[Float]]) -> [Float] {
        let s = shape.with(batch: batch)
        let rows = dy.count / s.outChannels
        var d = dy
        if let n = norm, let bn = cache.norm {
            d = settings.backward(dy, cache: bn, rows: rows, norm: n, norms: norms, p, grads: &grads)
        }
        if let b = bias {
            grads[b] = Reduce.columnSums(d, rows: rows, columns: s.outChannels, order: settings.order)
        }
        switch layout {
        case .lowered:
            let dInput = needInput ? Conv2D.backwardInput(dy: d, w: p[weight], shape: s, layer: name, unit: unit) : []
            grads[weight] = Conv2D.backwardWeight(x: cache.input, dy: d, shape: s, layer: name, unit: unit)
            return dInput
        case .reference:
            let dInput = needInput ? Conv2D.backwardInputReference(dy: d, w: p[weight], shape: s, layer: name, unit: unit) : []
            grads[weight] = Conv2D.backwardWeightReference(x: cache.input, dy: d, shape: s, layer: name, unit: unit)
            return dInput
        }
    }
}

extension ConvShape {
    /// The same layer for another batch size.
    public func with(batch: Int) -> ConvShape {
        var s = self
        s.batch = batch
        return s
    }

    /// This convolution's forward operation, `name`.
    func forwardOperation(_ name: String, vector: VectorWork) -> MXUOperation {
        MXUOperation(site: SiteID(layer: name, kind: .forward), gemm: gemm, inputShape: inputShape, weightShape: weightShape,
                     outputShape: outputShape, hbmTraffic: hbmTraffic, vector: vector)
    }

    /// Its backward operations in execution order: `_grad_in` (unless not `needInput`), then
    /// `_grad_wt`, in the operand layouts of `layout`. ``ConvBackwardLayout/lowered``:
    /// `_grad_in` is `dY[M x N] x W^T[N x K]` (then col2im), `_grad_wt` is `X^T[K x M] x dY[M x N]`;
    /// ``ConvBackwardLayout/reference``: each is the im2col GEMM of its stride-1 convolution
    /// (``gradientInputConvolution``, ``gradientWeightConvolution``).
    func backwardOperations(_ name: String, layout: ConvBackwardLayout, needInput: Bool = true,
                            inputVector: VectorWork, weightVector: VectorWork) -> [MXUOperation] {
        var ops: [MXUOperation] = []
        switch layout {
        case .reference:
            let gi = gradientInputConvolution, gw = gradientWeightConvolution
            if needInput {
                ops.append(MXUOperation(site: SiteID(layer: name, kind: .gradIn), gemm: gi.gemm, inputShape: gi.inputShape,
                                        weightShape: gi.weightShape, outputShape: gi.outputShape, vector: inputVector))
            }
            ops.append(MXUOperation(site: SiteID(layer: name, kind: .gradWt), gemm: gw.gemm, inputShape: gw.inputShape,
                                    weightShape: gw.weightShape, outputShape: gw.outputShape, vector: weightVector))
        case .lowered:
            let g = gemm
            if needInput {
                ops.append(MXUOperation(site: SiteID(layer: name, kind: .gradIn), gemm: GEMMShape(m: g.m, k: g.n, n: g.k),
                                        inputShape: outputShape, weightShape: weightShape, outputShape: inputShape, vector: inputVector))
            }
            ops.append(MXUOperation(site: SiteID(layer: name, kind: .gradWt), gemm: GEMMShape(m: g.k, k: g.m, n: g.n),
                                    inputShape: inputShape, weightShape: outputShape, outputShape: weightShape, vector: weightVector))
        }
        return ops
    }
}

extension Dense {
    /// A dense layer's operations: forward `x[batch x inputs] W[inputs x outputs]`, then
    /// `_grad_in` (`dY W^T`) and `_grad_wt` (`X^T dY`) with their vector work.
    static func operations(_ name: String, batch: Int, inputs: Int, outputs: Int, forwardVector: VectorWork,
                           inputVector: VectorWork, weightVector: VectorWork) -> (forward: MXUOperation, backward: [MXUOperation]) {
        let g = GEMMShape(m: batch, k: inputs, n: outputs)
        let forward = MXUOperation(site: SiteID(layer: name, kind: .forward), gemm: g, inputShape: [batch, inputs], weightShape: [inputs, outputs],
                                   outputShape: [batch, outputs], vector: forwardVector)
        let backward = [
            MXUOperation(site: SiteID(layer: name, kind: .gradIn), gemm: GEMMShape(m: g.m, k: g.n, n: g.k), inputShape: [batch, outputs],
                         weightShape: [inputs, outputs], outputShape: [batch, inputs], vector: inputVector),
            MXUOperation(site: SiteID(layer: name, kind: .gradWt), gemm: GEMMShape(m: g.k, k: g.m, n: g.n), inputShape: [batch, inputs],
                         weightShape: [batch, outputs], outputShape: [inputs, outputs], vector: weightVector),
        ]
        return (forward, backward)
    }
}

extension Dense {
    /// The operations of a network's classifier: global average pooling of `pixels` positions
    /// of `features` channels (plus `poolOps - 1` more elementwise operations per pooled
    /// element, e.g. an activation before it) on the vector unit, then the dense layer `dense`
    /// to `classes`; its `_grad_in` with the loss gradient's 2 passes, its `_grad_wt` with
    /// the optimizer update (Adam, ~12 operations per parameter).
    static func classifierOperations(batch: Int, pixels: Int, features: Int, classes: Int,
                                     poolOps: Int = 1) -> (forward: MXUOperation, backward: [MXUOperation]) {
        operations("dense", batch: batch, inputs: features, outputs: classes,
                   forwardVector: VectorWork(elements: batch * pixels * features, opsPerElement: poolOps, reductions: 1,
                                             reductionOutputs: batch * features),
                   inputVector: VectorWork(elements: batch * classes, opsPerElement: 2, reductions: 0, reductionOutputs: classes),
                   weightVector: VectorWork(elements: features * classes, opsPerElement: 12))
    }
}

/// A model configuration with named presets: how a workload's `preset` closure finds one.
protocol PresetConfiguration {
    var name: String { get }
    /// The configuration as a manifest records it.
    var recorded: ModelConfiguration { get }
}

extension PresetConfiguration {
    /// The preset called `scale` (any case) among `presets`, as recorded.
    static func preset(_ scale: String, among presets: [Self], workload: String) throws(ModelError) -> ModelConfiguration {
        guard let c = presets.first(where: { $0.name == scale.lowercased() }) else {
            throw .unknownScale(scale, workload: workload, known: presets.map(\.name))
        }
        return c.recorded
    }
}
