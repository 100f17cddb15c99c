/// What `tpufi simulate` reports: per-layer costs and totals, in a stable JSON shape
/// (`layers[].name`, `layers[].computeCycles`, `layers[].utilization`, `totalCycles`, ...).
public struct SimulationReport: Sendable, Codable, Equatable {
    public struct Layer: Sendable, Codable, Equatable {
        public var name: String
        public var m: Int
        public var k: Int
        public var n: Int
        public var passes: Int
        public var computeCycles: Int
        public var utilization: Double
        public var mappingEfficiency: Double
        public var overlappedCycles: Int
        public var scaleSimCycles: Int
        public var weightLoadCycles: Int
        public var vectorCycles: Int
        public var hbmBytes: Int
        public var memoryCycles: Int
        public var boundCycles: Int
        public var memoryBound: Bool
    }

    public var source: String
    public var chip: ChipConfig
    public var timing: TimingMode
    public var layers: [Layer]
    /// Sum of the layers' MXU compute cycles in the selected timing mode.
    public var totalCycles: Int
    public var totalOverlappedCycles: Int
    public var totalScaleSimCycles: Int
    public var totalVectorCycles: Int
    /// Sum of the layers' roofline bounds, and that time at the chip's clock.
    public var totalBoundCycles: Int
    public var seconds: Double
    public var utilization: Double
    /// Multiply-accumulates of the listed operations on the MXU and on the vector unit
    /// (depthwise convolutions: the operations without a pass). Derived, not stored: golden
    /// manifests hold a report, and theirs must read back unchanged.
    public var mxuMACs: Int { layers.reduce(0) { $0 + ($1.passes > 0 ? $1.m * $1.k * $1.n : 0) } }
    public var vectorMACs: Int { layers.reduce(0) { $0 + ($1.passes > 0 ? 0 : $1.m * $1.k * $1.n) } }

    public init(source: String, cost: StepCost) {
        self.source = source
        chip = cost.chip
        timing = cost.mode
        layers = cost.layers.map {
            Layer(name: $0.name, m: $0.gemm.m, k: $0.gemm.k, n: $0.gemm.n, passes: $0.passes,
                  computeCycles: $0.computeCycles, utilization: $0.utilization,
                  mappingEfficiency: $0.mappingEfficiency, overlappedCycles: $0.overlappedCycles,
                  scaleSimCycles: $0.scaleSimCycles, weightLoadCycles: $0.weightLoadCycles,
                  vectorCycles: $0.vectorCycles, hbmBytes: $0.hbmBytes, memoryCycles: $0.memoryCycles,
                  boundCycles: $0.boundCycles, memoryBound: $0.memoryBound)
        }
        totalCycles = cost.totalComputeCycles
        totalOverlappedCycles = cost.layers.reduce(0) { $0 + $1.overlappedCycles }
        totalScaleSimCycles = cost.layers.reduce(0) { $0 + $1.scaleSimCycles }
        totalVectorCycles = cost.totalVectorCycles
        totalBoundCycles = cost.totalBoundCycles
        seconds = cost.seconds
        utilization = cost.utilization
    }
}
