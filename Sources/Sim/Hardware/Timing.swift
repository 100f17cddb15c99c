/// The vector unit: `sublanes x lanes` 32-bit ALUs, one operation per lane per cycle.
public struct VectorUnit: Sendable, Equatable {
    public let width: Int

    public init(config: ChipConfig) { width = config.vectorWidth }

    /// Cycles for `opsPerElement` elementwise operations on each of `elements` values.
    public func elementwiseCycles(elements: Int, opsPerElement: Int = 1) -> Int {
        ceilDiv(elements, width) * opsPerElement
    }

    /// Cycles to reduce `elements` values to `outputs` sums: lane-parallel partial sums, then
    /// a cross-lane tree of log2(width) steps per output vector.
    public func reductionCycles(elements: Int, outputs: Int = 1) -> Int {
        ceilDiv(elements, width) + ceilDiv(outputs, width) * log2Ceil(width)
    }
}

/// Vector-unit work attached to a matrix operation (its epilogue: batch norm, activation,
/// gradient reductions ...), counted in elementwise passes and reductions.
public struct VectorWork: Sendable, Equatable, Codable {
    public var elements: Int
    public var opsPerElement: Int
    /// Reductions of `elements` values down to `reductionOutputs` values (e.g. per-channel
    /// batch statistics); 0 for none.
    public var reductions: Int
    public var reductionOutputs: Int

    public init(elements: Int, opsPerElement: Int, reductions: Int = 0, reductionOutputs: Int = 1) {
        self.elements = elements
        self.opsPerElement = opsPerElement
        self.reductions = reductions
        self.reductionOutputs = reductionOutputs
    }

    public static let none = VectorWork(elements: 0, opsPerElement: 0)
}

/// What an MXU operation moves across HBM, in elements: operands, as wide as the MXU's
/// operand format (``NumberFormat/bytesPerElement``), and results, in fp32.
public struct HBMTraffic: Sendable, Equatable, Hashable {
    public var operandElements: Int
    public var resultElements: Int

    public init(operandElements: Int, resultElements: Int) {
        self.operandElements = operandElements
        self.resultElements = resultElements
    }

    /// A GEMM's two operands and its result.
    public init(gemm: GEMMShape) {
        self.init(operandElements: gemm.m * gemm.k + gemm.k * gemm.n, resultElements: gemm.m * gemm.n)
    }

    /// Bytes with `bytesPerOperand`-byte operands (default: bfloat16's 2) and fp32 results.
    public func bytes(bytesPerOperand: Int = BFloat16Format().bytesPerElement) -> Int {
        bytesPerOperand * operandElements + 4 * resultElements
    }
}

/// One layer's work for the timing model: an MXU operation, the bytes it must move to and
/// from HBM, and its vector epilogue.
public struct LayerWork: Sendable, Equatable, Codable {
    public var name: String
    public var gemm: GEMMShape
    /// Operand and result bytes that cross HBM (for a convolution: the real input tensor,
    /// not its im2col expansion; operands at the operand format's width, fp32 results).
    public var hbmBytes: Int
    public var vector: VectorWork
    /// Where the operation runs: on the vector unit (``ExecutionUnit/vector``) `gemm` only
    /// counts its multiply-accumulates and `vector` holds all of its work.
    public var unit: ExecutionUnit
    /// Products of equal rows that `gemm` stacks, run one after another (``OperationSchedule``).
    public var products: Int

    /// `hbmBytes` nil: the GEMM's operands, `bytesPerOperand` bytes each (default: bfloat16's
    /// 2), and its fp32 result (``HBMTraffic/init(gemm:)``).
    public init(name: String, gemm: GEMMShape, hbmBytes: Int? = nil,
                bytesPerOperand: Int = BFloat16Format().bytesPerElement, vector: VectorWork = .none, unit: ExecutionUnit = .mxu,
                products: Int = 1) {
        self.name = name
        self.products = products
        self.gemm = gemm
        self.hbmBytes = hbmBytes ?? HBMTraffic(gemm: gemm).bytes(bytesPerOperand: bytesPerOperand)
        self.vector = vector
        self.unit = unit
    }

}

/// What one layer costs on the simulated core.
public struct LayerCost: Sendable, Equatable, Codable {
    public var name: String
    public var gemm: GEMMShape
    /// MXU cycles in the selected timing mode (the schedule's cycles).
    public var computeCycles: Int
    /// The same operation's cycles in the other mode, for comparison.
    public var overlappedCycles: Int
    public var scaleSimCycles: Int
    /// Cycles spent shifting stationary tiles in (hidden under streaming when overlapped).
    public var weightLoadCycles: Int
    public var passes: Int
    public var utilization: Double
    public var mappingEfficiency: Double
    public var vectorCycles: Int
    public var hbmBytes: Int
    public var memoryCycles: Int
    /// Roofline bound: the larger of compute (MXU + vector) and HBM transfer time.
    public var boundCycles: Int
    public var memoryBound: Bool
}

/// Per-layer costs and their totals for one step (or one topology file).
public struct StepCost: Sendable, Equatable, Codable {
    public var chip: ChipConfig
    public var mode: TimingMode
    public var layers: [LayerCost]

    public var totalComputeCycles: Int { layers.reduce(0) { $0 + $1.computeCycles } }
    public var totalVectorCycles: Int { layers.reduce(0) { $0 + $1.vectorCycles } }
    public var totalBoundCycles: Int { layers.reduce(0) { $0 + $1.boundCycles } }
    /// Multiply-accumulates on the MXU.
    public var totalMACs: Int { layers.reduce(0) { $0 + ($1.passes > 0 ? $1.gemm.macs : 0) } }
    public var totalHBMBytes: Int { layers.reduce(0) { $0 + $1.hbmBytes } }
    /// MXU utilisation over the whole step's compute cycles.
    public var utilization: Double {
        Double(totalMACs) / (Double(max(totalComputeCycles, 1)) * Double(chip.macsPerCycle))
    }
    /// Wall time of the step at the chip's clock, from the roofline-bound cycles.
    public var seconds: Double { Double(totalBoundCycles) / (chip.clockMHz * 1e6) }
}

/// The cycle-approximate timing model: schedules each layer's MXU operation, adds its vector
/// epilogue and bounds the result by HBM bandwidth.
public struct TimingModel: Sendable {
    public let config: ChipConfig
    public let mode: TimingMode

    public init(config: ChipConfig, mode: TimingMode = .overlapped) {
        self.config = config
        self.mode = mode
    }

    public func cost(of layer: LayerWork) throws(HardwareError) -> LayerCost {
        let vu = VectorUnit(config: config)
        let v = layer.vector
        let vectorCycles = vu.elementwiseCycles(elements: v.elements, opsPerElement: v.opsPerElement)
            + v.reductions * vu.reductionCycles(elements: v.elements, outputs: v.reductionOutputs)
        let memoryCycles = Int((Double(layer.hbmBytes) / config.hbmBytesPerCycle).rounded(.up))
        if layer.unit == .vector {
            // No pass on the MXU: the vector work is the operation.
            return LayerCost(name: layer.name, gemm: layer.gemm, computeCycles: 0, overlappedCycles: 0, scaleSimCycles: 0,
                             weightLoadCycles: 0, passes: 0, utilization: 0, mappingEfficiency: 0,
                             vectorCycles: vectorCycles, hbmBytes: layer.hbmBytes, memoryCycles: memoryCycles,
                             boundCycles: max(vectorCycles, memoryCycles), memoryBound: memoryCycles > vectorCycles)
        }
        let overlapped = try OperationSchedule(shape: layer.gemm, products: layer.products, config: config, mode: .overlapped)
        let scaleSim = try OperationSchedule(shape: layer.gemm, products: layer.products, config: config, mode: .scaleSim)
        let selected = mode == .overlapped ? overlapped : scaleSim
        let computeBound = selected.cycles + vectorCycles
        return LayerCost(
            name: layer.name, gemm: layer.gemm,
            computeCycles: selected.cycles,
            overlappedCycles: overlapped.cycles, scaleSimCycles: scaleSim.cycles,
            weightLoadCycles: selected.loadCycles, passes: selected.passCount,
            utilization: selected.utilization, mappingEfficiency: selected.mappingEfficiency,
            vectorCycles: vectorCycles, hbmBytes: layer.hbmBytes, memoryCycles: memoryCycles,
            boundCycles: max(computeBound, memoryCycles), memoryBound: memoryCycles > computeBound)
    }

    public func cost(of layers: [LayerWork]) throws(HardwareError) -> StepCost {
        var costs: [LayerCost] = []
        for layer in layers { costs.append(try cost(of: layer)) }
        return StepCost(chip: config, mode: mode, layers: costs)
    }
}

@inlinable func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

func log2Ceil(_ x: Int) -> Int {
    var n = 0
    while (1 << n) < x { n += 1 }
    return n
}
