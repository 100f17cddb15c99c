/// One element of an operation's output that a hardware fault changed.
public struct FaultyElement: Sendable, Equatable, Codable {
    /// Row and column of C (`M x N`).
    public var row: Int
    public var column: Int
    public var golden: Float
    public var faulty: Float

    public init(row: Int, column: Int, golden: Float, faulty: Float) {
        self.row = row
        self.column = column
        self.golden = golden
        self.faulty = faulty
    }

    public static func == (l: Self, r: Self) -> Bool {
        l.row == r.row && l.column == r.column && l.golden.bitPattern == r.golden.bitPattern && l.faulty.bitPattern == r.faulty.bitPattern
    }
}

extension Schedule {
    /// Maps `fault` through this schedule onto the output: the elements of `C = A x B` it
    /// changes and their faulty values, in row-major order.
    ///
    /// The schedule says which passes ran on the faulty MXU, which vector crossed the faulty
    /// PE in which cycle and which outputs its register feeds (see ``HardwareFault``); every
    /// output so reached is recomputed with the register's value corrupted where the fault
    /// holds it, in the schedule's accumulation order (fold sums of `rows` terms from +0, one
    /// fused multiply-add per PE including the padding rows, then added in pass order; one
    /// running sum under output-stationary). The result equals what ``ReferenceArray``
    /// computes cycle by cycle with the same fault, bit for bit (tests pin this).
    ///
    /// `a(m, k)` and `b(k, n)` give the operands as the MXU holds them (already rounded to the
    /// operand precision); `golden(m, n)` the fault-free output.
    public func faultyElements(of fault: HardwareFault, precision: OperandPrecision,
                               a: (Int, Int) -> Float, b: (Int, Int) -> Float,
                               golden: (Int, Int) -> Float) -> [FaultyElement] {
        faultyElements(of: fault, format: precision.format, a: a, b: b, golden: golden)
    }

    /// ``faultyElements(of:precision:a:b:golden:)`` with operands of any number format: `a`
    /// and `b` give values `format` holds (already rounded to it), and an operand-register
    /// fault corrupts their encoding in `format` (see ``HardwareFault``).
    public func faultyElements(of fault: HardwareFault, format: any NumberFormat,
                               a: (Int, Int) -> Float, b: (Int, Int) -> Float,
                               golden: (Int, Int) -> Float) -> [FaultyElement] {
        let flipped = passFlippedInStationaryRegister(fault)
        let reached = dataflow == .outputStationary ? reachedByOutputStationary(fault) : reachedByStationary(fault, flipped: flipped)
        var out: [FaultyElement] = []
        for index in reached.sorted() {
            let (m, n) = (index / shape.n, index % shape.n)
            let value = dataflow == .outputStationary
                ? recomputeOutputStationary(m, n, fault, format, a, b)
                : recomputeStationary(m, n, fault, flipped: flipped, format, a, b)
            let g = golden(m, n)
            if value.bitPattern != g.bitPattern { out.append(FaultyElement(row: m, column: n, golden: g, faulty: value)) }
        }
        return out
    }

    /// The register that stays resident under ws/is (nil under os), and the one that moves right.
    private var stationaryRegister: HardwareFault.Register? {
        switch dataflow {
        case .weightStationary: return .weight
        case .inputStationary: return .input
        case .outputStationary: return nil
        }
    }

    private var movingRegister: HardwareFault.Register {
        dataflow == .inputStationary ? .weight : .input
    }

    /// The pass whose stationary register set a transient flip at `cycle` in PE(`row`,
    /// `column`) lands in, if it survives until that pass computes: the first pass on the MXU
    /// whose last MAC in that PE is at or after the flip, provided its tile latched before.
    func passHitByStationaryFlip(mxu: Int, row: Int, column: Int, cycle: Int) -> Int? {
        guard let pass = passes.first(where: { $0.mxu == mxu && $0.streamStart + $0.streamCount - 1 + row + column >= cycle }),
              pass.loadStart + rows - 1 < cycle else { return nil }
        return pass.index
    }

    /// For a flip of a stationary register: the pass whose register set it corrupts (nil for
    /// other faults, or when a reload overwrites the flip first).
    private func passFlippedInStationaryRegister(_ fault: HardwareFault) -> Int? {
        guard case .transient(let cycle) = fault.kind, fault.register == stationaryRegister else { return nil }
        return passHitByStationaryFlip(mxu: fault.mxu, row: fault.row, column: fault.column, cycle: cycle)
    }

    /// Output indices (`m * N + n`) that ws/is passes can carry the fault to.
    private func reachedByStationary(_ fault: HardwareFault, flipped: Int?) -> Set<Int> {
        let (r0, c0) = (fault.row, fault.column)
        var reached = Set<Int>()
        for p in passes where p.mxu == fault.mxu {
            let width = p.columnRange.count
            guard c0 < width else { continue }
            // Vector index t of the pass present at PE(r0, c0) in the fault's cycle.
            let vectors: Range<Int>
            switch fault.kind {
            case .stuckAt: vectors = 0..<p.streamCount
            case .transient(let cycle):
                let t = cycle - p.streamStart - r0 - c0
                if fault.register == stationaryRegister {
                    guard p.index == flipped else { continue }
                    vectors = max(0, t)..<p.streamCount
                } else {
                    guard (0..<p.streamCount).contains(t) else { continue }
                    vectors = t..<t + 1
                }
            }
            // A moving operand travels right from the faulty PE; the others stay in its column.
            let columns = fault.register == movingRegister ? c0..<width : c0..<c0 + 1
            for t in vectors {
                for j in columns {
                    let col = p.columnRange.lowerBound + j
                    reached.insert(dataflow == .weightStationary ? t * shape.n + col : col * shape.n + t)
                }
            }
        }
        return reached
    }

    /// Output `(m, n)` under ws/is: the fold sums of every pass covering it, added in pass order.
    private func recomputeStationary(_ m: Int, _ n: Int, _ fault: HardwareFault, flipped: Int?, _ format: any NumberFormat,
                                     _ a: (Int, Int) -> Float, _ b: (Int, Int) -> Float) -> Float {
        let ws = dataflow == .weightStationary
        let (t, colIndex) = ws ? (m, n) : (n, m)
        func streamed(_ k: Int) -> Float { ws ? a(m, k) : b(k, n) }
        func resident(_ k: Int) -> Float { ws ? b(k, n) : a(m, k) }
        let fold = colIndex / columns
        var c: Float = 0
        for q in passes[fold * rowFolds ..< (fold + 1) * rowFolds] {
            let j = colIndex - q.columnRange.lowerBound
            let faulty = q.mxu == fault.mxu
            var psum: Float = 0
            for r in 0..<rows {
                let inRange = r < q.rowRange.count
                var x: Float = inRange ? streamed(q.rowRange.lowerBound + r) : 0
                var w: Float = inRange ? resident(q.rowRange.lowerBound + r) : 0
                guard faulty && r == fault.row else { psum = psum.addingProduct(x, w); continue }
                let cycle = q.streamStart + t + r + j
                // The moving operand passed the faulty PE (j - c0) cycles earlier.
                if fault.register == movingRegister, j >= fault.column, fault.strikes(at: cycle - (j - fault.column)) {
                    x = fault.corrupt(x, format: format)
                }
                if fault.register == stationaryRegister, j == fault.column {
                    switch fault.kind {
                    case .stuckAt: w = fault.corrupt(w, format: format)
                    case .transient(let at): if q.index == flipped && cycle >= at { w = fault.corrupt(w, format: format) }
                    }
                }
                psum = psum.addingProduct(x, w)
                if fault.register == .partialSum, j == fault.column, fault.strikes(at: cycle) {
                    psum = fault.corrupt(psum, format: format)
                }
            }
            c += psum
        }
        return c
    }

    /// Output indices that os passes can carry the fault to.
    private func reachedByOutputStationary(_ fault: HardwareFault) -> Set<Int> {
        let (r0, c0) = (fault.row, fault.column)
        var reached = Set<Int>()
        for p in passes where p.mxu == fault.mxu {
            if case .transient(let cycle) = fault.kind, !(0..<p.streamCount).contains(cycle - p.streamStart - r0 - c0) { continue }
            let (height, width) = (p.rowRange.count, p.columnRange.count)
            let cells: [(Int, Int)]
            switch fault.register {
            case .input: cells = r0 < height && c0 < width ? (c0..<width).map { (r0, $0) } : []
            case .weight: cells = r0 < height && c0 < width ? (r0..<height).map { ($0, c0) } : []
            case .partialSum: cells = r0 < height && c0 < width ? [(r0, c0)] : []
            }
            for (i, j) in cells { reached.insert((p.rowRange.lowerBound + i) * shape.n + p.columnRange.lowerBound + j) }
        }
        return reached
    }

    /// Output `(m, n)` under os: one PE's running sum over all of K.
    private func recomputeOutputStationary(_ m: Int, _ n: Int, _ fault: HardwareFault, _ format: any NumberFormat,
                                           _ a: (Int, Int) -> Float, _ b: (Int, Int) -> Float) -> Float {
        guard let q = passes.first(where: { $0.rowRange.contains(m) && $0.columnRange.contains(n) }) else { return .nan }
        let (i, j) = (m - q.rowRange.lowerBound, n - q.columnRange.lowerBound)
        let faulty = q.mxu == fault.mxu
        let (r0, c0) = (fault.row, fault.column)
        var acc: Float = 0
        for k in 0..<shape.k {
            var x = a(m, k), y = b(k, n)
            if faulty {
                // Operands pass the faulty PE in the cycle it handles term k.
                let atFaultyPE = q.streamStart + k + r0 + c0
                if fault.register == .input, i == r0, j >= c0, fault.strikes(at: atFaultyPE) { x = fault.corrupt(x, format: format) }
                if fault.register == .weight, j == c0, i >= r0, fault.strikes(at: atFaultyPE) { y = fault.corrupt(y, format: format) }
            }
            acc = acc.addingProduct(x, y)
            if faulty, fault.register == .partialSum, i == r0, j == c0, fault.strikes(at: q.streamStart + k + i + j) {
                acc = fault.corrupt(acc, format: format)
            }
        }
        return 0 + acc
    }
}
