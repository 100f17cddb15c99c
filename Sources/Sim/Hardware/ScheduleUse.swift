/// The PEs of one row of one MXU whose register holds data of an operation: columns
/// `0..<columns` of array row `row` (a tile always starts at PE(0, 0)).
public struct UsedPERow: Sendable, Equatable {
    public var mxu: Int
    public var row: Int
    public var columns: Int

    public init(mxu: Int, row: Int, columns: Int) {
        self.mxu = mxu
        self.row = row
        self.columns = columns
    }
}

/// Which PEs, registers and cycles an operation's schedule uses: where a hardware fault can
/// change something at all.
///
/// A register of PE(`row`, `column`) is *in use* in a pass when it holds data of the
/// operation there:
/// - weight- and input-stationary: the stationary and the moving operand registers when the
///   PE lies inside the pass's tile (`row < rowRange.count`, `column < columnRange.count`);
///   the partial-sum register in every row of the tile's columns, since the sum passes
///   through the rows a tile leaves empty too;
/// - output-stationary: every register of a PE inside the tile.
///
/// A flip is in use when, in addition, its cycle is one in which the register holds such
/// data: a moving register or the partial sum while the pass streams through the PE (cycles
/// `streamStart + row + column + t`, `t` in `0..<streamCount`); a stationary register from the
/// cycle after its tile latched until the PE's last MAC of the pass, starting after the PE's
/// last MAC of the MXU's previous pass (a flip while the PE is idle lands in the register set
/// of the next pass it computes). This is exactly what the fault mapping
/// (``faultyElements(of:format:a:b:golden:)``) carries to an output: a fault not in use
/// changes no output element (tests check every PE and cycle of small schedules).
extension Schedule {
    /// Whether `register` of PE(`row`, `column`) holds data of `pass`.
    func holdsData(_ register: HardwareFault.Register, row: Int, column: Int, in pass: TilePass) -> Bool {
        guard column < pass.columnRange.count else { return false }
        if register == .partialSum && dataflow != .outputStationary { return row < rows }
        return row < pass.rowRange.count
    }

    /// Whether `fault`'s PE register holds data of this operation, for a flip in its cycle.
    public func uses(_ fault: HardwareFault) -> Bool {
        guard (0..<mxuCount).contains(fault.mxu), (0..<rows).contains(fault.row), (0..<columns).contains(fault.column) else { return false }
        switch fault.kind {
        case .stuckAt:
            return passes.contains { $0.mxu == fault.mxu && holdsData(fault.register, row: fault.row, column: fault.column, in: $0) }
        case .transient(let cycle):
            return usedCycles(fault.register, mxu: fault.mxu, row: fault.row, column: fault.column).contains { $0.contains(cycle) }
        }
    }

    /// The PEs whose `register` holds data of some pass, row by row of each MXU in order
    /// (rows without any left out).
    public func usedPEs(_ register: HardwareFault.Register) -> [UsedPERow] {
        var widest = [[Int]](repeating: [Int](repeating: 0, count: rows), count: mxuCount)
        // Tiles share a handful of shapes: widths per height, not per pass.
        var seen = Set<[Int]>()
        for p in passes {
            let height = register == .partialSum && dataflow != .outputStationary ? rows : p.rowRange.count
            let width = p.columnRange.count
            guard seen.insert([p.mxu, height, width]).inserted else { continue }
            for r in 0..<min(height, rows) where widest[p.mxu][r] < width { widest[p.mxu][r] = width }
        }
        var out: [UsedPERow] = []
        for mxu in 0..<mxuCount {
            for r in 0..<rows where widest[mxu][r] > 0 { out.append(UsedPERow(mxu: mxu, row: r, columns: min(widest[mxu][r], columns))) }
        }
        return out
    }

    /// The cycles in which a flip of `register` in PE(`row`, `column`) of MXU `mxu` is in
    /// use, as ascending, disjoint ranges within `0..<cycles` (empty when the PE holds no
    /// data of the operation).
    public func usedCycles(_ register: HardwareFault.Register, mxu: Int, row: Int, column: Int) -> [ClosedRange<Int>] {
        let stationary: HardwareFault.Register? = switch dataflow {
        case .weightStationary: .weight
        case .inputStationary: .input
        case .outputStationary: nil
        }
        var ranges: [ClosedRange<Int>] = []
        // The latest MAC of this PE in the MXU's earlier passes (a stationary flip after it
        // lands in a later pass's register set).
        var previousLast = -1
        for p in passes where p.mxu == mxu {
            let first = p.streamStart + row + column, last = first + p.streamCount - 1
            defer { previousLast = max(previousLast, last) }
            guard holdsData(register, row: row, column: column, in: p) else { continue }
            let lower = register == stationary ? max(previousLast + 1, p.loadStart + rows) : first
            if lower <= last { ranges.append(lower...last) }
        }
        // Merge (passes on one MXU follow each other, but nothing here relies on it).
        ranges.sort { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<Int>] = []
        for r in ranges {
            if let top = merged.last, r.lowerBound <= top.upperBound + 1 {
                merged[merged.count - 1] = top.lowerBound...max(top.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged
    }
}
