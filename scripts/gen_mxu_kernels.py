"""Generates Sources/Sim/Hardware/MXUKernel.swift: register-blocked micro-kernels of the
functional MXU, one enum per (rows, vectors across, lanes per vector) shape, in two families
sized for the two x86 vector register files (see HEADER).
   python3 scripts/gen_mxu_kernels.py > Sources/Sim/Hardware/MXUKernel.swift"""

# (rows, vectors across) per family. 16-lane vectors: AVX-512's 32 ZMM registers hold 24
# accumulators (and 12 x 16, 12 of them, for products with few rows: a transformer head's).
# No 12 x 32: LLVM hoisted its 12 broadcasts ahead of the multiply-adds and spilled
# accumulators inside the loop (24 x 16 ran 1.19-1.35x faster on products with N = 32).
# 8-lane vectors: AVX2's 16 YMM registers hold 12 accumulators, the B vectors of one k and a
# broadcast A value.
FAMILIES = [
    (16, [(24, 1), (6, 4), (12, 1)]),
    (8, [(6, 2), (4, 3), (12, 1)]),
]
REGISTERS = {16: "32 AVX-512", 8: "16 AVX2"}

UNROLL = 4

def step(w, mr, nv, vec, vbytes, nr, u, ind):
    """One term k + u: the B vectors, then one broadcast and nv multiply-adds per row."""
    for j in range(nv):
        w(f"{ind}let b{j}_{u} = bp.loadUnaligned(fromByteOffset: {u * nr * 4 + vbytes * j}, as: {vec}.self)")
    kk = "k" if u == 0 else f"k &+ {u}"
    for i in range(mr):
        w(f"{ind}let x{i}_{u} = {vec}(repeating: a{i}[{kk}])")
        for j in range(nv):
            w(f"{ind}c{i}_{j} = c{i}_{j}.addingProduct(x{i}_{u}, b{j}_{u})")

def accumulate_indexed(w, mr, nv, vec, vbytes, nr, acc):
    """The 16-lane kernels' loop, as first tuned on AVX-512: one term per iteration, rows
    addressed as `a + k + i * lda` (24 row pointers would not fit in the 16 general registers)."""
    w("        @inline(__always)")
    w("        mutating func accumulate(_ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ks: Range<Int>) {")
    w("            for k in ks {")
    w(f"                let bp = UnsafeRawPointer(b + k &* {nr})")
    for j in range(nv):
        w(f"                let b{j} = bp.loadUnaligned(fromByteOffset: {vbytes * j}, as: {vec}.self)")
    w("                let ap = a + k")
    for i in range(mr):
        idx = "0" if i == 0 else ("lda" if i == 1 else f"{i} &* lda")
        w(f"                let a{i} = {vec}(repeating: ap[{idx}])")
        for j in range(nv):
            w(f"                {acc[i][j]} = {acc[i][j]}.addingProduct(a{i}, b{j})")
    w("            }")
    w("        }")

def accumulate_unrolled(w, mr, nv, vec, vbytes, nr):
    """The 8-lane kernels' loop: a pointer per row (at most 12) and a moving B pointer,
    unrolled by UNROLL terms."""
    w("        @inline(__always)")
    w("        mutating func accumulate(_ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ks: Range<Int>) {")
    w(f"            // Row pointers and a moving B pointer, the loop unrolled by {UNROLL} terms: the body is")
    w("            // loads and multiply-adds, with no index arithmetic or overflow checks.")
    for i in range(mr):
        w(f"            let a{i} = a + ({i} &* lda &+ ks.lowerBound)")
    w(f"            var bp = UnsafeRawPointer(b + ks.lowerBound &* {nr})")
    w("            let n = ks.count")
    w("            var k = 0")
    w(f"            while k &+ {UNROLL} <= n {{")
    for u in range(UNROLL):
        step(w, mr, nv, vec, vbytes, nr, u, "                ")
    w(f"                bp += {UNROLL * nr * 4}")
    w(f"                k &+= {UNROLL}")
    w("            }")
    w("            while k < n {")
    step(w, mr, nv, vec, vbytes, nr, 0, "                ")
    w(f"                bp += {nr * 4}")
    w("                k &+= 1")
    w("            }")
    w("        }")

def accumulate_panel(w, mr, nv, vec, vbytes, nr, unroll):
    """The loop over a k-major A micro-panel (`a[k * mr + i]`, what a transposed A packs to
    without a transpose): one moving pointer per operand, constant offsets."""
    w("        @inline(__always)")
    w("        mutating func accumulatePanel(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ks: Range<Int>) {")
    w(f"            var ap = a + ks.lowerBound &* {mr}")
    w(f"            var bp = UnsafeRawPointer(b + ks.lowerBound &* {nr})")
    w("            let n = ks.count")
    w("            var k = 0")
    if unroll > 1:
        w(f"            while k &+ {unroll} <= n {{")
        for u in range(unroll):
            panel_step(w, mr, nv, vec, vbytes, nr, u, "                ")
        w(f"                ap += {unroll * mr}")
        w(f"                bp += {unroll * nr * 4}")
        w(f"                k &+= {unroll}")
        w("            }")
    w("            while k < n {")
    panel_step(w, mr, nv, vec, vbytes, nr, 0, "                ")
    w(f"                ap += {mr}")
    w(f"                bp += {nr * 4}")
    w("                k &+= 1")
    w("            }")
    w("        }")

def panel_step(w, mr, nv, vec, vbytes, nr, u, ind):
    for j in range(nv):
        w(f"{ind}let b{j}_{u} = bp.loadUnaligned(fromByteOffset: {u * nr * 4 + vbytes * j}, as: {vec}.self)")
    for i in range(mr):
        w(f"{ind}let x{i}_{u} = {vec}(repeating: ap[{u * mr + i}])")
        for j in range(nv):
            w(f"{ind}c{i}_{j} = c{i}_{j}.addingProduct(x{i}_{u}, b{j}_{u})")

def kernel(mr, nv, lanes):
    nr = lanes * nv
    vec = f"SIMD{lanes}<Float>"
    vbytes = 4 * lanes
    acc = [[f"c{i}_{j}" for j in range(nv)] for i in range(mr)]
    L = []
    w = L.append
    w(f"/// {mr} rows x {nr} columns in {lanes}-lane vectors: {mr * nv} accumulators, {nv} B vector{'s' if nv > 1 else ''} and")
    w(f"/// one broadcast A value in registers ({mr * nv + nv + 1} of the {REGISTERS[lanes]} registers).")
    w(f"enum Kernel{mr}x{nr}: MicroKernel {{")
    w(f"    static let mr = {mr}")
    w(f"    static let nr = {nr}")
    w("")
    for name, params, args in [("run", "a: UnsafePointer<Float>, lda: Int,", "a, lda, b"),
                               ("runPanel", "a: UnsafePointer<Float>,", "a, b")]:
        acc_fn = "accumulate" if name == "run" else "accumulatePanel"
        w("    @inline(never)")
        w(f"    static func {name}(kLen: Int, fold: Int, overwrite: Bool, {params}")
        w(f"{' ' * (17 + len(name))}b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) {{")
        w("        if fold == 0 {")
        w("            var t = overwrite ? Tile() : Tile(loading: c, ldc)")
        w(f"            t.{acc_fn}({args}, 0..<kLen)")
        w("            t.store(c, ldc)")
        w("            return")
        w("        }")
        w("        var k0 = 0")
        w("        while k0 < kLen {")
        w("            var t = Tile()")
        w(f"            t.{acc_fn}({args}, k0..<min(kLen, k0 + fold))")
        w("            if overwrite && k0 == 0 {")
        w("                t.addToZero()")
        w("                t.store(c, ldc)")
        w("            } else {")
        w("                t.addInto(c, ldc)")
        w("            }")
        w("            k0 += fold")
        w("        }")
        w("    }")
        w("")
    w("    struct Tile {")
    for row in acc:
        for v in row:
            w(f"        var {v} = {vec}()")
    w("")
    w("        init() {}")
    w("")
    w("        @inline(__always)")
    w("        init(loading c: UnsafeMutablePointer<Float>, _ ldc: Int) {")
    for i in range(mr):
        w(f"            let r{i} = UnsafeRawPointer(c + {i} &* ldc)")
        for j in range(nv):
            w(f"            {acc[i][j]} = r{i}.loadUnaligned(fromByteOffset: {vbytes * j}, as: {vec}.self)")
    w("        }")
    w("")
    if lanes == 16:
        accumulate_indexed(w, mr, nv, vec, vbytes, nr, acc)
    else:
        accumulate_unrolled(w, mr, nv, vec, vbytes, nr)
    w("")
    accumulate_panel(w, mr, nv, vec, vbytes, nr, 1 if lanes == 16 else UNROLL)
    w("")
    w("        @inline(__always)")
    w("        func store(_ c: UnsafeMutablePointer<Float>, _ ldc: Int) {")
    for i in range(mr):
        w(f"            let r{i} = UnsafeMutableRawPointer(c + {i} &* ldc)")
        for j in range(nv):
            w(f"            r{i}.storeBytes(of: {acc[i][j]}, toByteOffset: {vbytes * j}, as: {vec}.self)")
    w("        }")
    w("")
    w("        /// Each accumulator becomes `+0 + accumulator`, what adding it to a zeroed C gives")
    w("        /// (a sum of -0 turns into +0).")
    w("        @inline(__always)")
    w("        mutating func addToZero() {")
    w(f"            let zero = {vec}()")
    for row in acc:
        for v in row:
            w(f"            {v} = zero + {v}")
    w("        }")
    w("")
    w("        @inline(__always)")
    w("        func addInto(_ c: UnsafeMutablePointer<Float>, _ ldc: Int) {")
    for i in range(mr):
        w(f"            let r{i} = UnsafeMutableRawPointer(c + {i} &* ldc)")
        for j in range(nv):
            o = vbytes * j
            w(f"            r{i}.storeBytes(of: r{i}.loadUnaligned(fromByteOffset: {o}, as: {vec}.self) + {acc[i][j]}, toByteOffset: {o}, as: {vec}.self)")
    w("        }")
    w("    }")
    w("}")
    return "\n".join(L)

HEADER = '''// Generated by scripts/gen_mxu_kernels.py: the kernels differ only in their unrolled shape, so
// change them together (regenerate) rather than one by hand.

/// A register-blocked micro-kernel of the functional MXU: an `mr x nr` tile of C held in
/// vector registers while k runs over a packed block of A (`mr` rows, row `i` at
/// `a + i * lda`, k contiguous) and a packed panel of B (`nr` values per k, k-major). Each
/// lane accumulates its own output element with one fused multiply-add per term, k
/// ascending, so the order is the scalar loop's.
///
/// Two families, one per vector register file; ``MXU`` uses the family of the build's
/// target (``KernelFamily``) and, within it, the shape that computes the fewest padded
/// values of C (rows and columns rounded up to whole tiles; ``MXU``'s choice).
/// - 16-lane vectors for the 32 registers of AVX-512: 64 or 16 columns (four vectors or
///   one), so that narrow products (N = 16, 32) do not leave lanes idle, and as many
///   rows as keep 24 accumulators (6 or 24), so that every B vector loaded is reused for
///   several rows and the loads (one broadcast per row) stay below the rate of fused
///   multiply-adds; and 12 x 16 (12 accumulators) for products of few rows, where 24 rows
///   would be mostly padding (a transformer head's 32 queries).
/// - 8-lane vectors for the 16 registers of AVX2 (where a 16-lane vector takes two
///   registers, and the 16-lane kernels' 48 would spill): 12 accumulators over 16, 24 or 8
///   columns (6, 4 or 12 rows).
protocol MicroKernel: Sendable {
    static var mr: Int { get }
    static var nr: Int { get }

    /// `fold == 0`: C += A x B as one running sum continuing from C's values.
    /// `fold > 0`: for each fold of `fold` terms, a sum from +0, then C += that fold sum.
    /// `overwrite`: C's values are not read but taken as +0 (the first block of K), which
    /// spares zeroing C beforehand and reading it back.
    static func run(kLen: Int, fold: Int, overwrite: Bool, a: UnsafePointer<Float>, lda: Int,
                    b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int)
    /// The same with A as a k-major micro-panel: element `(i, k)` at `a[k * mr + i]`.
    static func runPanel(kLen: Int, fold: Int, overwrite: Bool, a: UnsafePointer<Float>,
                         b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int)
}
'''

print(HEADER)
print("\n\n".join(kernel(mr, nv, lanes) for lanes, shapes in FAMILIES for mr, nv in shapes))
