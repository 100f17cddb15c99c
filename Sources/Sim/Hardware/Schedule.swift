/// The shape of one matrix operation `C[M x N] = A[M x K] x B[K x N]`.
public struct GEMMShape: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var m: Int
    public var k: Int
    public var n: Int

    public init(m: Int, k: Int, n: Int) {
        self.m = m
        self.k = k
        self.n = n
    }

    public var macs: Int { m * k * n }
    public var description: String { "\(m)x\(k)x\(n)" }

    /// The largest dimension accepted, and the most multiply-accumulates: far beyond any
    /// real operation, and small enough that cycle counts cannot overflow.
    public static let maximumDimension = 1 << 31
    public static let maximumMACs = 1 << 56

    public func validate() throws(HardwareError) {
        guard m > 0, k > 0, n > 0 else {
            throw .invalidShape("GEMM M=\(m) K=\(k) N=\(n): every dimension must be positive")
        }
        guard m <= Self.maximumDimension, k <= Self.maximumDimension, n <= Self.maximumDimension else {
            throw .invalidShape("GEMM M=\(m) K=\(k) N=\(n): every dimension must be at most \(Self.maximumDimension)")
        }
        let (mk, o1) = m.multipliedReportingOverflow(by: k)
        let (mkn, o2) = mk.multipliedReportingOverflow(by: n)
        guard !o1, !o2, mkn <= Self.maximumMACs else {
            throw .invalidShape("GEMM M=\(m) K=\(k) N=\(n): more than \(Self.maximumMACs) multiply-accumulates")
        }
    }
}

/// How consecutive tile passes share an array.
public enum TimingMode: String, Sendable, CaseIterable, Codable {
    /// The TPU's: the next stationary tile shifts into a second register set while the
    /// current one computes, and passes stream back to back (the weight-select bit travels
    /// with the data, so the switch is a diagonal wave rather than a global stall).
    case overlapped = "tpu"
    /// SCALE-Sim 3.0's: every pass loads its tile, fills and drains before the next begins.
    case scaleSim = "scalesim"
}

/// One tile pass: a stationary tile resident in one MXU while a stream flows through it.
///
/// Cycle conventions (shared with ``ReferenceArray``; registers latch at the end of a cycle):
/// the stationary tile shifts down a load chain one row per cycle over cycles
/// `loadStart ..< loadStart + rows` and latches into one of the PEs' two register sets at the
/// end of the last of them (ws/is only); element `j` of streamed vector `t` enters array row `j` at column 0 at cycle
/// `streamStart + t + j` (the input skew) and moves one PE to the right per cycle; partial
/// sums move one PE down per cycle. PE `(r, c)` therefore performs its MAC for vector `t`
/// at cycle `streamStart + t + r + c`.
public struct TilePass: Sendable, Equatable, Codable {
    /// Position in the operation's pass order (column fold outer, row fold inner).
    public var index: Int
    /// The matrix unit the pass runs on.
    public var mxu: Int
    /// Indices of the dimension mapped onto array rows (K for ws/is, M for os); array row `r`
    /// holds index `rowRange.lowerBound + r`.
    public var rowRange: Range<Int>
    /// Indices of the dimension mapped onto array columns (N for ws/os, M for is).
    public var columnRange: Range<Int>
    /// Number of vectors streamed (M for ws, N for is, K for os).
    public var streamCount: Int
    /// First cycle of the stationary tile's shift-in (equals `streamStart` for os).
    public var loadStart: Int
    /// Cycle at which the first streamed element enters PE (0, 0).
    public var streamStart: Int
    /// Cycle of the pass's last MAC, in PE (rows-1, columns-1) of the full array.
    public var lastMACCycle: Int

    /// Which fold of the reduction dimension this pass computes (0 for os).
    public var reductionFold: Int
}

/// The schedule of one matrix operation: the ordered tile passes and when each runs.
///
/// This is the single source of truth for how an operation maps onto the MXUs: the timing
/// model reads its cycles, the functional MXU follows its accumulation order, and the
/// register-level ``ReferenceArray`` executes it cycle by cycle.
///
/// Accumulation order (what the functional MXU must reproduce bit for bit):
/// - weight- and input-stationary: K is cut into folds of `rows` terms. Within a fold the
///   partial sum starts at +0 at the top of a column and each PE adds its product with one
///   fused multiply-add, top to bottom (k ascending). The accumulator then adds the fold
///   sums in fold order: `C = ((+0 + s0) + s1) + ...`.
/// - output-stationary: one PE accumulates all of K in order, starting from +0.
/// Every product is formed exactly (fused multiply-add, one rounding per term).
public struct Schedule: Sendable, Equatable {
    public let shape: GEMMShape
    public let rows: Int
    public let columns: Int
    public let mxuCount: Int
    public let dataflow: Dataflow
    public let mode: TimingMode
    public let passes: [TilePass]
    /// Folds along the array rows and columns.
    public let rowFolds: Int
    public let columnFolds: Int
    /// Cycles from the first load to the end of the last MAC on any MXU.
    public let cycles: Int

    /// Length of one accumulation fold along K (nil: the whole of K, as under os).
    public var reductionFoldLength: Int? { dataflow.foldsReduction ? rows : nil }

    /// The most tile passes one operation may take (each is kept in memory).
    public static let maximumPasses = 1 << 24

    /// Builds the schedule of `shape` on `config`'s arrays.
    public init(shape: GEMMShape, config: ChipConfig, mode: TimingMode = .overlapped) throws(HardwareError) {
        try shape.validate()
        try config.validate()
        self.shape = shape
        self.rows = config.rows
        self.columns = config.columns
        self.mxuCount = config.mxuCount
        self.dataflow = config.dataflow
        self.mode = mode

        let (rowDim, colDim, streamed): (Int, Int, Int)
        switch dataflow {
        case .weightStationary: (rowDim, colDim, streamed) = (shape.k, shape.n, shape.m)
        case .inputStationary: (rowDim, colDim, streamed) = (shape.k, shape.m, shape.n)
        case .outputStationary: (rowDim, colDim, streamed) = (shape.m, shape.n, shape.k)
        }
        let (R, C, T) = (rows, columns, streamed)
        rowFolds = (rowDim + R - 1) / R
        columnFolds = (colDim + C - 1) / C
        // One pass per tile is kept: bound their number before allocating.
        let (tiles, overflow) = rowFolds.multipliedReportingOverflow(by: columnFolds)
        guard !overflow, tiles <= Self.maximumPasses else {
            throw .invalidShape("\(shape) needs \(rowFolds) x \(columnFolds) tile passes on \(R)x\(C) arrays; at most \(Self.maximumPasses)")
        }
        let loads = dataflow != .outputStationary

        // Per-MXU history: the last two passes' load and stream starts.
        var history = [[(load: Int, stream: Int)]](repeating: [], count: mxuCount)
        var passes: [TilePass] = []
        passes.reserveCapacity(rowFolds * columnFolds)
        for cf in 0..<columnFolds {
            for rf in 0..<rowFolds {
                let index = passes.count
                let mxu = index % mxuCount
                let prior = history[mxu]
                var load = 0, stream = 0
                switch (mode, loads) {
                case (.scaleSim, _):
                    // Serialised: start after the previous pass's last MAC on this MXU.
                    load = prior.last.map { $0.stream + T + R + C - 2 } ?? 0
                    stream = loads ? load + R : load
                case (.overlapped, true):
                    // The load chain is free once the previous tile has latched; this tile
                    // latches (at load + R - 1) into pass p-2's register set, which must have
                    // seen its last MAC by then.
                    load = prior.last.map { $0.load + R } ?? 0
                    if prior.count >= 2 {
                        let lastMACTwoBack = prior[prior.count - 2].stream + (T - 1) + (R - 1) + (C - 1)
                        load = max(load, lastMACTwoBack - (R - 1))
                    }
                    stream = max(prior.last.map { $0.stream + T } ?? 0, load + R)
                case (.overlapped, false):
                    stream = prior.last.map { $0.stream + T } ?? 0
                    load = stream
                }
                history[mxu] = Array((prior + [(load, stream)]).suffix(2))
                passes.append(TilePass(
                    index: index, mxu: mxu,
                    rowRange: rf * R ..< min(rowDim, (rf + 1) * R),
                    columnRange: cf * C ..< min(colDim, (cf + 1) * C),
                    streamCount: T, loadStart: load, streamStart: stream,
                    lastMACCycle: stream + (T - 1) + (R - 1) + (C - 1),
                    reductionFold: loads ? rf : 0))
            }
        }
        self.passes = passes
        self.cycles = (passes.map(\.lastMACCycle).max() ?? -1) + 1
    }

    /// Cycles the stationary tiles spend shifting in, summed over passes (0 for os).
    public var loadCycles: Int { dataflow == .outputStationary ? 0 : passes.count * rows }

    /// Fraction of the MXUs' MAC slots doing useful work over the operation's cycles.
    public var utilization: Double {
        Double(shape.macs) / (Double(cycles) * Double(rows * columns * mxuCount))
    }

    /// Fraction of the PEs mapped to real data, averaged over passes (SCALE-Sim's mapping
    /// efficiency).
    public var mappingEfficiency: Double {
        let used = passes.reduce(0) { $0 + $1.rowRange.count * $1.columnRange.count }
        return Double(used) / Double(passes.count * rows * columns)
    }
}
