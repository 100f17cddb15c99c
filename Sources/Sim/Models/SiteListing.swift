/// Every injection site of a workload at a scale, as a user needs it to write a spec: its
/// operand shapes (what positions index), the GEMM the MXU runs, and how that GEMM maps onto
/// a chip's arrays (which rows and columns of a processing-element array it occupies, in how
/// many tile passes): what a hardware fault in a given PE can reach.
public struct SiteListing: Sendable, Codable, Equatable {
    public struct Site: Sendable, Codable, Equatable {
        public var name: String
        /// `forward` or `backward`.
        public var phase: String
        public var input: [Int]
        public var weight: [Int]
        public var output: [Int]
        public var gemm: GEMMShape
        /// `mxu`, or `vector` for an operation on the vector unit (no schedule: rows, columns,
        /// passes and cycles are 0, and no PE fault reaches it).
        public var unit: ExecutionUnit
        /// Array rows and columns that hold work in at least one pass (`0..<rows`,
        /// `0..<columns`): a PE outside them never computes for this operation.
        public var rows: Int
        public var columns: Int
        /// Tile passes and cycles of the whole operation (all its products).
        public var passes: Int
        public var cycles: Int
        /// Products of `gemm.m / products` rows each that `gemm` stacks, run one after
        /// another (attention's, one per batch item and head); product `p` runs in cycles
        /// `p * cycles / products ..<` and fills rows `p * gemm.m / products ..<`.
        public var products: Int
    }

    public var workload: String
    public var scale: String
    public var chip: String
    public var arrayRows: Int
    public var arrayColumns: Int
    public var mxus: Int
    public var dataflow: String
    public var sites: [Site]

    /// The sites of `model` scheduled on `chip`.
    public init(model: any Model, chip: ChipConfig, mode: TimingMode = .overlapped) throws(HardwareError) {
        workload = model.workload
        scale = model.scaleName
        self.chip = chip.name
        arrayRows = chip.rows
        arrayColumns = chip.columns
        mxus = chip.mxuCount
        dataflow = chip.dataflow.rawValue
        var sites: [Site] = []
        for op in model.operations {
            guard op.isOnMXU else {
                sites.append(Site(name: op.name, phase: op.site.kind == .forward ? "forward" : "backward", input: op.inputShape,
                                  weight: op.weightShape, output: op.outputShape, gemm: op.gemm, unit: op.unit, rows: 0, columns: 0,
                                  passes: 0, cycles: 0, products: op.products))
                continue
            }
            let schedule = try OperationSchedule(shape: op.gemm, products: op.products, config: chip, mode: mode)
            sites.append(Site(name: op.name, phase: op.site.kind == .forward ? "forward" : "backward",
                              input: op.inputShape, weight: op.weightShape, output: op.outputShape, gemm: op.gemm, unit: op.unit,
                              rows: schedule.tileRows, columns: schedule.tileColumns,
                              passes: schedule.passCount, cycles: schedule.cycles, products: op.products))
        }
        self.sites = sites
    }
}
