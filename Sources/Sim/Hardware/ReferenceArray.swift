/// A register-level, cycle-stepped model of the systolic arrays executing a ``Schedule``.
///
/// Every PE has a load-chain register (stationary tiles shift down the columns through these)
/// and two stationary registers that latch the chain when a load completes (so the next tile
/// can shift in while the current one computes), an input register that passes its value one PE to the right
/// each cycle, and a partial-sum register that passes one PE down each cycle (ws, is); under
/// output-stationary it has two moving operand registers and an accumulator. All registers
/// latch at the end of a cycle. Values carry the pass they belong to, so a schedule that lets
/// two passes collide is caught (``ReferenceArrayError/hazard``) instead of mixing data.
///
/// It is slow (cycles x rows x columns) and exists to pin the fast models down: its output
/// must equal ``MXU``'s bit for bit and its cycle count the schedule's.
public struct ReferenceArray: Sendable {
    public let schedule: Schedule
    /// The operands' number format: operands are rounded to it before they enter the array,
    /// and operand-register faults corrupt its encoding.
    public let format: any NumberFormat

    /// The array running `schedule` with operands of `precision`.
    public init(schedule: Schedule, precision: OperandPrecision = .bfloat16) {
        self.init(schedule: schedule, format: precision.format)
    }

    /// The array running `schedule` with operands of `format`.
    public init(schedule: Schedule, format: any NumberFormat) {
        self.schedule = schedule
        self.format = format
    }

    /// What a run produced.
    public struct Result: Sendable {
        /// C, row-major M x N.
        public var output: [Float]
        /// One past the last cycle in which any PE performed a MAC.
        public var cycles: Int
    }

    /// Runs `C = A x B` (row-major A: M x K, B: K x N) through the arrays cycle by cycle,
    /// with `fault` corrupting one register of one PE if given (see ``HardwareFault``).
    public func run(a: [Float], b: [Float], fault: HardwareFault? = nil) throws -> Result {
        let shape = schedule.shape
        guard a.count == shape.m * shape.k, b.count == shape.k * shape.n else {
            throw HardwareError.invalidShape("operands hold \(a.count) and \(b.count) values; \(shape) needs \(shape.m * shape.k) and \(shape.k * shape.n)")
        }
        let A = a.map { format.round($0) }, B = b.map { format.round($0) }
        let (M, K, N) = (shape.m, shape.k, shape.n)

        // Fold sums per pass, indexed [streamed index][array column].
        var foldSums = [[Float]](repeating: [], count: schedule.passes.count)
        var lastMAC = -1
        for mxu in 0..<schedule.mxuCount {
            let mine = schedule.passes.filter { $0.mxu == mxu }
            guard !mine.isEmpty else { continue }
            let here = fault?.mxu == mxu ? fault : nil
            let run: (sums: [Int: [Float]], lastMAC: Int)
            switch schedule.dataflow {
            case .weightStationary:
                run = try stationary(mine, fault: here, stationaryRegister: .weight,
                                     stationary: { k, n in B[k * N + n] }, streamed: { m, k in A[m * K + k] })
            case .inputStationary:
                run = try stationary(mine, fault: here, stationaryRegister: .input,
                                     stationary: { k, m in A[m * K + k] }, streamed: { n, k in B[k * N + n] })
            case .outputStationary:
                run = try outputStationary(mine, fault: here, a: { m, k in A[m * K + k] }, b: { k, n in B[k * N + n] })
            }
            for (index, sums) in run.sums { foldSums[index] = sums }
            lastMAC = max(lastMAC, run.lastMAC)
        }

        // The accumulator: C = ((+0 + s0) + s1) + ..., fold sums added in pass order.
        var c = [Float](repeating: 0, count: M * N)
        let cols = schedule.columns
        for pass in schedule.passes {
            let sums = foldSums[pass.index]
            for (j, col) in pass.columnRange.enumerated() {
                switch schedule.dataflow {
                case .weightStationary:
                    for m in 0..<M { c[m * N + col] += sums[m * cols + j] }
                case .inputStationary:
                    for n in 0..<N { c[col * N + n] += sums[n * cols + j] }
                case .outputStationary:
                    for (i, m) in pass.rowRange.enumerated() { c[m * N + col] += sums[i * cols + j] }
                }
            }
        }
        return Result(output: c, cycles: lastMAC + 1)
    }

    /// Weight- or input-stationary: `stationary(k, col)` is shifted into the PEs, vectors
    /// `streamed(t, k)` flow in from the left, fold sums leave the bottom row.
    private func stationary(_ passes: [TilePass], fault: HardwareFault?, stationaryRegister: HardwareFault.Register,
                            stationary: (Int, Int) -> Float,
                            streamed: (Int, Int) -> Float) throws -> (sums: [Int: [Float]], lastMAC: Int) {
        let R = schedule.rows, C = schedule.columns
        let end = passes.map(\.lastMACCycle).max()! + 1
        struct Moving { var value: Float = 0; var pass = -1; var t = 0 }
        var weights = [[Float]](repeating: [Float](repeating: 0, count: R * C), count: 2)
        var chain = [Float](repeating: 0, count: R * C)
        var inputs = [Moving](repeating: Moving(), count: R * C)
        var psums = [Moving](repeating: Moving(), count: R * C)
        var sums: [Int: [Float]] = [:]
        for p in passes { sums[p.index] = [Float](repeating: 0, count: p.streamCount * C) }
        var lastMAC = -1

        let movingRegister: HardwareFault.Register = stationaryRegister == .weight ? .input : .weight
        for cycle in 0..<end {
            // A flip in a stationary register: into the set the PE computes with now or next.
            if let fault, case .transient(cycle) = fault.kind, fault.register == stationaryRegister,
               let slot = passes.firstIndex(where: { $0.streamStart + $0.streamCount - 1 + fault.row + fault.column >= cycle }) {
                let i = fault.row * C + fault.column
                weights[slot & 1][i] = fault.corrupt(weights[slot & 1][i], format: format)
            }
            var nextInputs = inputs, nextPsums = psums, nextWeights = weights
            // A stationary tile shifts down its columns' load chain one row per cycle; on the
            // last load cycle every PE latches its chain value into the pass's register set.
            for (slot, p) in passes.enumerated() where (p.loadStart..<p.loadStart + R).contains(cycle) {
                let row = p.rowRange.lowerBound + (R - 1 - (cycle - p.loadStart))
                for c in 0..<C {
                    for r in stride(from: R - 1, to: 0, by: -1) { chain[r * C + c] = chain[(r - 1) * C + c] }
                    let col = p.columnRange.lowerBound + c
                    chain[c] = p.rowRange.contains(row) && p.columnRange.contains(col) ? stationary(row, col) : 0
                }
                if cycle == p.loadStart + R - 1 { nextWeights[slot & 1] = chain }
            }
            for r in 0..<R {
                for c in 0..<C {
                    // The input present at PE(r, c) this cycle: from the left edge, or last
                    // cycle's value of PE(r, c-1).
                    var x = Moving()
                    if c == 0 {
                        for (slot, p) in passes.enumerated() {
                            let t = cycle - p.streamStart - r
                            if t >= 0 && t < p.streamCount {
                                let k = p.rowRange.lowerBound + r
                                x = Moving(value: p.rowRange.contains(k) ? streamed(t, k) : 0, pass: slot, t: t)
                            }
                        }
                    } else {
                        x = inputs[r * C + c - 1]
                    }
                    if x.pass >= 0, let f = fault, f.hits(movingRegister, r, c, cycle) { x.value = f.corrupt(x.value, format: format) }
                    nextInputs[r * C + c] = x
                    guard x.pass >= 0 else { nextPsums[r * C + c] = Moving(); continue }
                    var incoming: Float = 0
                    if r > 0 {
                        let above = psums[(r - 1) * C + c]
                        guard above.pass == x.pass && above.t == x.t else {
                            throw ReferenceArrayError.hazard("PE(\(r),\(c)) cycle \(cycle): input of pass \(passes[x.pass].index) meets a partial sum of another vector")
                        }
                        incoming = above.value
                    }
                    var w = weights[x.pass & 1][r * C + c]
                    if let f = fault, f.hits(stationaryRegister, r, c, cycle), case .stuckAt = f.kind { w = f.corrupt(w, format: format) }
                    var psum = incoming.addingProduct(x.value, w)
                    if let f = fault, f.hits(.partialSum, r, c, cycle) { psum = f.corrupt(psum, format: format) }
                    nextPsums[r * C + c] = Moving(value: psum, pass: x.pass, t: x.t)
                    lastMAC = cycle
                    if r == R - 1 { sums[passes[x.pass].index]![x.t * C + c] = psum }
                }
            }
            inputs = nextInputs
            psums = nextPsums
            weights = nextWeights
        }
        return (sums, lastMAC)
    }

    /// Output-stationary: A rows flow in from the left, B columns from the top, each PE
    /// accumulates one output over all of K.
    private func outputStationary(_ passes: [TilePass], fault: HardwareFault?, a: (Int, Int) -> Float,
                                  b: (Int, Int) -> Float) throws -> (sums: [Int: [Float]], lastMAC: Int) {
        let R = schedule.rows, C = schedule.columns
        let end = passes.map(\.lastMACCycle).max()! + 1
        struct Moving { var value: Float = 0; var pass = -1; var k = 0 }
        var left = [Moving](repeating: Moving(), count: R * C)
        var top = [Moving](repeating: Moving(), count: R * C)
        var acc = [Float](repeating: 0, count: R * C)
        var sums: [Int: [Float]] = [:]
        for p in passes { sums[p.index] = [Float](repeating: 0, count: R * C) }
        var lastMAC = -1

        func entering(_ lane: Int, _ cycle: Int, _ value: (TilePass, Int) -> Float) -> Moving {
            for (slot, p) in passes.enumerated() {
                let k = cycle - p.streamStart - lane
                if k >= 0 && k < p.streamCount { return Moving(value: value(p, k), pass: slot, k: k) }
            }
            return Moving()
        }

        for cycle in 0..<end {
            var nextLeft = left, nextTop = top
            for r in 0..<R {
                for c in 0..<C {
                    var x = c == 0 ? entering(r, cycle) { p, k in
                        let m = p.rowRange.lowerBound + r
                        return p.rowRange.contains(m) ? a(m, k) : 0
                    } : left[r * C + c - 1]
                    var y = r == 0 ? entering(c, cycle) { p, k in
                        let n = p.columnRange.lowerBound + c
                        return p.columnRange.contains(n) ? b(k, n) : 0
                    } : top[(r - 1) * C + c]
                    if x.pass >= 0, let f = fault, f.hits(.input, r, c, cycle) { x.value = f.corrupt(x.value, format: format) }
                    if y.pass >= 0, let f = fault, f.hits(.weight, r, c, cycle) { y.value = f.corrupt(y.value, format: format) }
                    nextLeft[r * C + c] = x
                    nextTop[r * C + c] = y
                    guard x.pass >= 0 || y.pass >= 0 else { continue }
                    guard x.pass == y.pass && x.k == y.k else {
                        throw ReferenceArrayError.hazard("PE(\(r),\(c)) cycle \(cycle): operands of different passes or terms meet")
                    }
                    if x.k == 0 { acc[r * C + c] = 0 }            // a new output starts here
                    acc[r * C + c] = acc[r * C + c].addingProduct(x.value, y.value)
                    if let f = fault, f.hits(.partialSum, r, c, cycle) { acc[r * C + c] = f.corrupt(acc[r * C + c], format: format) }
                    lastMAC = cycle
                    if x.k == passes[x.pass].streamCount - 1 {    // complete: drain it
                        sums[passes[x.pass].index]![r * C + c] = acc[r * C + c]
                    }
                }
            }
            left = nextLeft
            top = nextTop
        }
        return (sums, lastMAC)
    }
}

/// A schedule that made two passes' data meet in one PE.
public enum ReferenceArrayError: Error, CustomStringConvertible {
    case hazard(String)

    public var description: String {
        switch self {
        case .hazard(let m): return "systolic array hazard: \(m)"
        }
    }
}
