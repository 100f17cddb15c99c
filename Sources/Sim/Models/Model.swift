/// A workload's network as the simulator, the recorder and the replayer see it. Everything
/// outside `Sources/Sim/Models` works through this protocol; a new workload is one type
/// conforming to it plus an entry in ``Workloads``.
///
/// A model owns:
/// - its configuration (``configuration``), recorded in every trace manifest, from which
///   ``Workloads`` rebuilds the same model;
/// - its named tensors: trainable ``parameters`` and ``modelState`` (tensors it keeps across
///   steps but does not train, such as batch-norm moving statistics);
/// - its ordered **operation table** (``operations``): every MXU operation of one replica's
///   training step, with its name, GEMM shape, operand shapes and vector-unit work. Sites,
///   operand shapes, the timing topology and the hardware-fault mapping are all derived from
///   this one table;
/// - forward, loss and backward for one replica (``trainReplica(parameters:modelState:batch:unit:)``),
///   the update of its own state, and inference.
///
/// Every MXU operation the model runs must go through ``MatrixUnit/operation(_:input:inputShape:weight:weightShape:outputShape:product:unlower:)``
/// with the site its table lists, in the table's order: injection, digests and the
/// hardware-fault mapping all happen behind that call.
public protocol Model: Sendable {
    /// The workload (registry name) this model was built for, e.g. `resnet18`.
    var workload: String { get }
    /// The configuration it was built from: scale, widths, input shape, options.
    var configuration: ModelConfiguration { get }
    /// The name of the scale preset, for messages (`tiny`, `small`, `paper`, or `custom`).
    var scaleName: String { get }
    /// What one example of its data is.
    var input: InputSpec { get }
    /// Examples per replica per step.
    var batchPerReplica: Int { get }
    /// Trainable tensors, in ``TrainingState/parameters`` order.
    var parameters: [TensorSpec] { get }
    /// Model-owned state that is not trained (e.g. batch-norm moving statistics), in
    /// ``TrainingState/modelState`` order.
    var modelState: [TensorSpec] { get }
    /// Every MXU operation of one replica's training step, in execution order.
    var operations: [MXUOperation] { get }
    /// The sites the reference study's random campaigns draw from (`tpufi campaign
    /// --sampling reference`), in execution order, each a site of ``operations``. The default
    /// (see the extension below) is the convolutions' forward and `_grad_in` operations; a
    /// workload whose reference study left out other layers (depthwise convolutions, a
    /// projection) overrides it.
    var referenceSamplingSites: [SiteID] { get }

    /// Fresh parameters and model state, drawn from `seed`.
    func initialState(seed: UInt64) -> (parameters: [[Float]], modelState: [[Float]])

    /// Forward, loss and backward for one replica's batch.
    func trainReplica(parameters: [[Float]], modelState: [[Float]], batch: Batch, unit: MatrixUnit) -> ReplicaResult

    /// Folds the replica-averaged ``ReplicaResult/statistics`` of a step into the model state
    /// (e.g. the moving averages of batch norm). A pure function: traces store the statistics
    /// and re-apply them to restore a step bit for bit.
    func updateModelState(_ state: inout [[Float]], statistics: [[Float]])

    /// Inference: the batch's mean loss and correct predictions.
    func evaluate(parameters: [[Float]], modelState: [[Float]], batch: Batch, unit: MatrixUnit) -> (loss: Float, correct: Int)
}

/// What one replica's forward and backward pass produced.
public struct ReplicaResult: Sendable {
    /// The replica's mean loss over its batch.
    public var loss: Float
    public var correct: Int
    /// Gradients, one per trainable tensor (``Model/parameters`` order).
    public var gradients: [[Float]]
    /// One per model-state tensor, the same size: what this replica contributes to the
    /// update of the model state (for batch norm, this batch's mean or variance). The trainer
    /// averages them over replicas and hands them to ``Model/updateModelState(_:statistics:)``.
    public var statistics: [[Float]]

    public init(loss: Float, correct: Int, gradients: [[Float]], statistics: [[Float]]) {
        self.loss = loss
        self.correct = correct
        self.gradients = gradients
        self.statistics = statistics
    }
}

/// A named tensor of a model.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]

    public init(_ name: String, _ shape: [Int]) {
        self.name = name
        self.shape = shape
    }

    public var count: Int { shape.reduce(1, *) }
}

/// The data a model reads: one example's shape and the number of classes.
public enum InputSpec: Sendable, Equatable {
    /// Images `height x width x channels` (NHWC batches) with integer class labels.
    case images(height: Int, width: Int, channels: Int, classes: Int)
    /// Sequence-to-sequence examples: a source of `sourceLength` tokens and a target of
    /// `targetLength` tokens, each in `0..<vocabulary`; the model predicts every target token
    /// (``Batch/tokens`` holds the sources, ``Batch/labels`` the targets), so its classes are
    /// the vocabulary and its accuracy is token accuracy.
    case tokens(sourceLength: Int, targetLength: Int, vocabulary: Int)

    public var classes: Int {
        switch self {
        case .images(_, _, _, let classes): return classes
        case .tokens(_, _, let vocabulary): return vocabulary
        }
    }

    /// What one example is called in messages: `image`, or `sequence` (a source and its
    /// target).
    public var exampleNoun: String {
        switch self {
        case .images: return "image"
        case .tokens: return "sequence"
        }
    }

    /// `count` examples in words: `32 images`, `16 sequences`, `1 image`.
    public func examples(_ count: Int) -> String {
        "\(count) \(exampleNoun)\(count == 1 ? "" : "s")"
    }

    public var description: String {
        switch self {
        case .images(let h, let w, let c, let k): return "\(h)x\(w)x\(c) images, \(k) classes"
        case .tokens(let s, let t, let v): return "\(s)-token sources, \(t)-token targets, vocabulary \(v)"
        }
    }
}

/// Where an operation of the table runs on the TPU core.
public enum ExecutionUnit: String, Sendable, Codable {
    /// The systolic matrix unit: a GEMM with a schedule, MXU timing and PE-register faults.
    case mxu
    /// The vector unit, in fp32: depthwise convolutions, whose one multiply-add per tap and
    /// channel leaves nothing for a systolic array to share (a 128-wide array would use one
    /// column of each pass). An injection site like any other (software fault models, digests,
    /// bisect); it has no MXU schedule, its cost is vector-unit cycles, and no PE-register
    /// fault reaches it.
    case vector
}

/// One operation of a training step as the model's operation table lists it: the one source
/// of a site's name, its GEMM, its operand shapes and its vector-unit work. Nearly all run on
/// the MXU; ``unit`` says which do not.
public struct MXUOperation: Sendable, Equatable {
    public var site: SiteID
    /// The product as the MXU runs it (`M x K` times `K x N`, after any lowering). For an
    /// operation on the vector unit, the same multiply-accumulates as a product (a depthwise
    /// convolution: `N*Ho*Wo x k*k x C`), for counting only: nothing schedules it.
    public var gemm: GEMMShape
    /// Operand shapes as fault models index them: input, weight and output (see
    /// ``OperationKind`` for what each is per kind of operation).
    public var inputShape: [Int]
    public var weightShape: [Int]
    public var outputShape: [Int]
    /// Elements crossing HBM (nil: the GEMM's operands and result, ``HBMTraffic/init(gemm:)``).
    public var hbmTraffic: HBMTraffic?
    /// The vector-unit work that goes with it (epilogue, elementwise passes, reductions; for
    /// an operation on the vector unit, the operation itself too).
    public var vector: VectorWork
    public var unit: ExecutionUnit
    /// Independent products of equal rows that `gemm` stacks (`gemm.m / products` rows each),
    /// run one after another: 1 for most operations, one per batch item and head for
    /// attention's (``OperationSchedule``).
    public var products: Int

    public init(site: SiteID, gemm: GEMMShape, inputShape: [Int], weightShape: [Int], outputShape: [Int],
                hbmTraffic: HBMTraffic? = nil, vector: VectorWork = .none, unit: ExecutionUnit = .mxu, products: Int = 1) {
        precondition(products >= 1 && gemm.m % products == 0, "\(site.name): \(gemm) does not stack \(products) products")
        self.site = site
        self.gemm = gemm
        self.products = products
        self.inputShape = inputShape
        self.weightShape = weightShape
        self.outputShape = outputShape
        self.hbmTraffic = hbmTraffic
        self.vector = vector
        self.unit = unit
    }

    /// Whether it runs on the MXU (has a schedule; PE-register faults can reach it).
    public var isOnMXU: Bool { unit == .mxu }

    public var name: String { site.name }

    /// Whether this is an operation of a dense (fully connected) layer: its input operand is a
    /// matrix (`batch x features`, rank 2; for `_grad_in`, `batch x outputs`), where a
    /// convolution's input is an NHWC tensor (rank 4) in all three of its operations. The
    /// operation table has no other marker of a layer's kind; a workload with dense layers of
    /// higher-rank operands says so by overriding ``Model/referenceSamplingSites``.
    public var isDense: Bool { inputShape.count == 2 }

    /// The shape of operand `role`.
    public func shape(of role: OperandRole) -> [Int] {
        switch role {
        case .input: return inputShape
        case .weight: return weightShape
        case .output: return outputShape
        }
    }

    /// The operation as the timing model schedules it, with `bytesPerOperand`-byte operands
    /// (default: bfloat16's 2; see ``NumberFormat/bytesPerElement``).
    public func work(bytesPerOperand: Int = BFloat16Format().bytesPerElement) -> LayerWork {
        // The vector unit reads and writes fp32.
        let bytes = unit == .mxu ? bytesPerOperand : 4
        return LayerWork(name: site.name, gemm: gemm, hbmBytes: (hbmTraffic ?? HBMTraffic(gemm: gemm)).bytes(bytesPerOperand: bytes),
                         vector: vector, unit: unit, products: products)
    }
}

/// Which operations of a training step a topology lists.
public enum StepPhases: String, Sendable, CaseIterable, Codable {
    /// Forward MXU operations only (what SCALE-Sim topologies describe).
    case forward = "fwd"
    /// A whole training step: forward, then backward in the model's order.
    case training = "train"
}

extension Model {
    /// Every injection site of a training step, in execution order.
    public var sites: [SiteID] { operations.map(\.site) }

    /// The reference study's random-campaign sites, derived from the operation table: every
    /// forward operation and every `_grad_in` operation of a layer that is not dense (no
    /// operation of it ``MXUOperation/isDense``), in execution order. So the forward sites
    /// are the convolutions (the stem included) and the backward sites their input
    /// gradients; no `_grad_wt` operation and no operation of the classifier is drawn.
    public var referenceSamplingSites: [SiteID] {
        let dense = Set(operations.filter(\.isDense).map(\.site.layer))
        return operations.map(\.site).filter { !dense.contains($0.layer) && $0.kind != .gradWt }
    }

    /// The operation a site name names (`conv1`, `dense_grad_wt`, ...), if the model has it.
    public func operation(named name: String) -> MXUOperation? {
        operations.first { $0.name == name }
    }

    /// The operation `site`, if the model has it.
    public func operation(_ site: SiteID) -> MXUOperation? {
        operations.first { $0.site == site }
    }

    /// The shape of operand `role` of `site` (nil for a site the model does not have).
    public func operandShape(_ site: SiteID, _ role: OperandRole) -> [Int]? {
        operation(site)?.shape(of: role)
    }

    /// The operations of one replica's step for the timing model, with
    /// `bytesPerOperand`-byte operands (default: bfloat16's 2).
    public func layers(phases: StepPhases, bytesPerOperand: Int = BFloat16Format().bytesPerElement) -> [LayerWork] {
        operations.filter { phases == .training || $0.site.kind == .forward }.map { $0.work(bytesPerOperand: bytesPerOperand) }
    }

    public var parameterNames: [String] { parameters.map(\.name) }
    public var parameterShapes: [[Int]] { parameters.map(\.shape) }
    public var modelStateNames: [String] { modelState.map(\.name) }
    public var classes: Int { input.classes }

    /// `workload scale`, for messages.
    public var title: String { "\(workload) \(scaleName)" }

    /// Multiply-accumulates of one example's forward pass, on the MXU and the vector unit
    /// (the figure papers quote for a network: convolutions with their padding taps, dense
    /// layers, depthwise convolutions).
    public var forwardMACsPerExample: Int {
        operations.filter { $0.site.kind == .forward }.reduce(0) { $0 + $1.gemm.macs } / max(batchPerReplica, 1)
    }
}
