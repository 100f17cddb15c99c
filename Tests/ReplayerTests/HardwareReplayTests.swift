import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// Runs the hardware hook on a real training operation and checks its output against the
/// register-level array fed the same operands (as the MXU saw them, transposes resolved).
/// Runs the hardware hook on every product it wants and checks each against the
/// register-level array run with the fault as that product sees it (``OperationSchedule``:
/// a flip in another product's cycles leaves it untouched).
final class CheckedHardwareHook: OperandHook, @unchecked Sendable {
    let inner: HardwareInjectionHook
    var checked: [(site: String, product: Int, changed: Int, mismatches: Int)] = []

    init(_ inner: HardwareInjectionHook) { self.inner = inner }

    func wants(_ site: SiteID, replica: Int) -> Bool { inner.wants(site, replica: replica) }

    func corruptProduct(_ site: SiteID, product: Int, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                        shape: GEMMShape, mxu: MXU, replica: Int) {
        let A = (0..<shape.m * shape.k).map { a.base[($0 / shape.k) * a.rowStride + ($0 % shape.k) * a.columnStride] }
        let B = (0..<shape.k * shape.n).map { b.base[($0 / shape.n) * b.rowStride + ($0 % shape.n) * b.columnStride] }
        inner.corruptProduct(site, product: product, a: a, b: b, c: c, shape: shape, mxu: mxu, replica: replica)
        let fast = Array(UnsafeBufferPointer(start: c, count: shape.m * shape.n))
        let schedule = try! Schedule(shape: shape, config: inner.chip, mode: inner.mode)
        let local = OperationSchedule.fault(inner.fault, inProduct: product, productCycles: schedule.cycles)
        let reference = try! ReferenceArray(schedule: schedule, format: mxu.format).run(a: A, b: B, fault: local).output
        let mismatches = zip(fast, reference).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
        checked.append((site.name, product, inner.applied.last?.elements.count ?? 0, mismatches))
    }
}

@Suite struct HardwareReplayTests {
    /// A forward, a `_grad_in` (B read transposed) and a `_grad_wt` (A read transposed)
    /// operation of a real step: the fast path's faulty product equals the register-level
    /// array's, for a stuck weight bit, a flipped input and a flipped partial sum.
    @Test(arguments: ["basicblock_1_basic_0_conv1", "basicblock_1_basic_0_conv1_grad_in", "basicblock_1_basic_0_conv1_grad_wt", "dense_grad_wt"])
    func faultsInATrainingStepEqualTheRegisterLevelArray(site name: String) throws {
        let data = try DatasetSource.parse("synthetic:train=16,test=8,shape=16x16x1").load()
        let config = try TrainingConfig(workload: "resnet18", scale: "tiny", optimizer: .sgd, replicas: 1, chip: .tiny)
        let run = try TrainingRun(config: config, data: data)
        let site = SiteID(parsing: name)
        let gemm = try #require(run.model.operation(named: name)?.gemm)
        let schedule = try Schedule(shape: gemm, config: .tiny)
        let faults = [
            HardwareFault(row: 1, column: 2, register: .weight, bit: 14, kind: .stuckAt(value: 1)),
            HardwareFault(row: 0, column: 0, register: .input, bit: 14, kind: .stuckAt(value: 1)),
            // Bit 30 of a sum: 0 becomes 2, anything else changes by 2^128 or more.
            HardwareFault(row: 3, column: 1, register: .partialSum, bit: 30, kind: .transient(cycle: schedule.passes[0].streamStart + 6)),
        ]
        for fault in faults {
            let hook = CheckedHardwareHook(HardwareInjectionHook(site: site, replica: 0, fault: fault, chip: .tiny))
            _ = run.step(run.initialState(), hook: hook)
            #expect(hook.checked.count == 1 && hook.checked.first?.site == name && hook.checked.first?.product == 0)
            #expect(hook.checked.first?.mismatches == 0, "\(fault) in \(name)")
            #expect((hook.checked.first?.changed ?? 0) > 0, "\(fault) in \(name) changed nothing")
        }
    }

    /// Attention's `_scores` and `_context` are one product per sequence and head in turn: a
    /// flip strikes only the product running in its cycle, at that product's own cycle, and
    /// its elements are recorded at the stacked rows; a stuck-at bit strikes every product.
    /// Each product equals the register-level array run with the fault as it sees it.
    @Test(arguments: ["encoder_stack_attention_0_scores", "decoder_stack_enc_dec_attention_0_context_grad_wt"])
    func aFlipInAnAttentionProductStrikesOnlyTheProductRunningInItsCycle(site name: String) throws {
        let model = try Workloads.model("transformer", scale: "tiny")
        let operation = try #require(model.operation(named: name))
        let schedule = try OperationSchedule(shape: operation.gemm, products: operation.products, config: .tiny)
        #expect(operation.products == 4 && schedule.cycles == 4 * schedule.product.cycles)
        let site = SiteID(parsing: name)
        let state = TrainingState(model: model, optimizer: OptimizerConfig(kind: .adam), seed: 7)
        let trainer = Trainer(model: model, optimizer: OptimizerConfig(kind: .adam), schedule: LearningRateSchedule(initial: 1e-3, final: 1e-3, decaySteps: 1),
                              mxu: MXU(config: .tiny, precision: .bfloat16))
        guard case .tokens(let ls, let lt, let v) = model.input else { Issue.record("not a token model"); return }
        var rng = CounterRNG(seed: 1, purpose: .synthetic, 0)
        let n = model.batchPerReplica
        let sources = (0..<(n * ls)).map { _ in Int32(1 + rng.nextInt(below: v - 1)) }
        let targets = (0..<(n * lt)).map { _ in Int32(1 + rng.nextInt(below: v - 1)) }
        let batches = [Batch(images: [], labels: targets, indices: [], origin: BatchOrigin(seed: 0, epoch: 0, step: 0, replica: 0),
                             tokens: TokenBatch(sources: sources, sourceLength: ls, targetLength: lt))]
        let struck = 2, rows = operation.gemm.m / operation.products
        // Bit 30 of a partial sum in its first used cycle of product 2: 0 becomes 2, anything
        // else changes by 2^128 or more.
        let used = schedule.product.usedCycles(.partialSum, mxu: 0, row: 1, column: 1)
        let first = try #require(used.first?.lowerBound)
        let flip = HardwareFault(row: 1, column: 1, register: .partialSum, bit: 30, kind: .transient(cycle: struck * schedule.product.cycles + first))
        #expect(schedule.usedCycles(.partialSum, mxu: 0, row: 1, column: 1).contains { $0.contains(struck * schedule.product.cycles + first) })
        for fault in [flip, HardwareFault(row: 1, column: 1, register: .partialSum, bit: 30, kind: .stuckAt(value: 1))] {
            let inner = HardwareInjectionHook(site: site, replica: 0, fault: fault, chip: .tiny)
            let hook = CheckedHardwareHook(inner)
            _ = trainer.gradients(state, batches: batches, hook: hook)
            #expect(hook.checked.map(\.product) == [0, 1, 2, 3] && hook.checked.allSatisfy { $0.site == name && $0.mismatches == 0 }, "\(fault)")
            let applied = inner.applied
            #expect(applied.count == 4)
            if case .transient = fault.kind {
                #expect(applied.map { !$0.elements.isEmpty } == [false, false, true, false], "\(fault)")
                #expect(applied.map(\.peInUse) == [false, false, true, false])
                #expect(schedule.uses(fault) && applied[struck].elements.allSatisfy { (struck * rows ..< (struck + 1) * rows).contains($0.row) })
            } else {
                #expect(applied.allSatisfy { !$0.elements.isEmpty && $0.peInUse }, "\(fault)")
                for (p, op) in applied.enumerated() { #expect(op.elements.allSatisfy { (p * rows ..< (p + 1) * rows).contains($0.row) }) }
            }
        }
        // A flip past the last product's cycles is refused by name.
        let late = HardwareFault(row: 1, column: 1, register: .partialSum, bit: 30, kind: .transient(cycle: schedule.cycles))
        #expect(throws: HardwareError.self) { try HardwareInjectionHook.validate(late, site: site, shape: operation.gemm, products: operation.products, chip: .tiny, precision: .bfloat16) }
    }

    static func scratch(_ name: String) -> String {
        Scratch.path("hwreplay-\(name)")
    }

    /// `tpufi replay` with a hardware spec: a stuck exponent bit of one resident weight
    /// corrupts one output column (every streamed row whose activation is not zero), the run
    /// first diverges at that operation on that replica, and the trace records the fault.
    @Test func aStuckWeightBitCorruptsOneOutputColumnAndIsRecorded() throws {
        let golden = Self.scratch("golden"), out = Self.scratch("stuck")
        defer { for d in [golden, out] { try? FileManager.default.removeItem(atPath: d) } }
        let data = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1").load()
        let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", optimizer: .sgd, replicas: 2), data: data)
        let reader = try TraceRecorder.record(run: run, dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: 6, policy: .init(snapshotEvery: 2), to: golden)
        let fault = HardwareFault(row: 5, column: 2, register: .weight, bit: 14, kind: .stuckAt(value: 1))
        let spec = InjectionSpec(workload: "resnet18", site: "basicblock_1_basic_0_conv2", faultModel: nil, replica: 1, globalStep: 3, hardware: fault)
        try spec.validate(file: "hw.json")
        let r = try FaultReplay.run(golden: reader, spec: spec, specName: "hw.json", stepsAfterInjection: 1, out: out)
        #expect(r.injection.faultModel == "hardware" && r.injection.hardware == fault)
        #expect(!r.injection.positions.isEmpty && r.injection.positions.allSatisfy { $0[1] == 2 })
        #expect(r.firstDivergence == .init(globalStep: 3, site: "basicblock_1_basic_0_conv2", replica: 1))
        let trace = try TraceReader(directory: out)
        #expect(trace.manifest.injection?.hardware == fault && trace.manifest.injection?.positions == .product(r.injection.positions))
        // Bisect re-arms the recorded hardware fault: the step reproduces, and the first
        // divergent tensor is the operation's output with exactly the mapped elements changed.
        let b = try Bisect.run(reader, trace)
        #expect(b.firstDivergentStep == 3 && b.firstDivergentSite == "basicblock_1_basic_0_conv2" && b.replica == 1)
        #expect(b.sites.first?.differing == r.injection.positions.count)

        // The same PE stuck for the whole step (`"site": "all"`): every MXU operation of the
        // replica's step runs through it; positions name the operation first.
        let whole = Self.scratch("whole")
        defer { try? FileManager.default.removeItem(atPath: whole) }
        // A low mantissa bit of a partial sum: every operation changes, nothing overflows.
        let lowBit = HardwareFault(row: 1, column: 1, register: .partialSum, bit: 3, kind: .stuckAt(value: 1))
        let all = InjectionSpec(workload: "resnet18", site: "all", faultModel: nil, replica: 1, globalStep: 3, hardware: lowBit)
        let w = try FaultReplay.run(golden: reader, spec: all, specName: "all.json", stepsAfterInjection: 0, out: whole)
        let operations = Set(w.injection.positions.map { $0[0] })
        #expect(operations.count > run.model.sites.count / 2, "\(operations.count) of \(run.model.sites.count) operations changed")
        let sites = run.model.sites.map(\.name)
        let first = try #require(operations.min())
        #expect(w.firstDivergence == .init(globalStep: 3, site: sites[first], replica: 1))
        // Bisect re-arms it for the whole step too.
        let wb = try Bisect.run(reader, try TraceReader(directory: whole))
        #expect(wb.firstDivergentSite == sites[first] && wb.replica == 1)
        // A flip happens in one cycle of one operation: "all" takes stuck-at faults only.
        var flip = all
        flip.hardware?.kind = .transient(cycle: 3)
        #expect(throws: ReplayError.self) { try FaultReplay.run(golden: reader, spec: flip, specName: "flip.json", stepsAfterInjection: 0, out: Self.scratch("flip")) }
    }

    /// A depthwise convolution runs on the vector unit: a PE fault naming it is refused with
    /// that reason, while a software fault model into it is accepted; a whole-step stuck-at
    /// fault checks only the MXU operations.
    @Test func aPEFaultCannotStrikeAVectorUnitOperation() throws {
        let config = try TrainingConfig(workload: "effnet", scale: "tiny", replicas: 1)
        let stuck = HardwareFault(row: 0, column: 0, register: .weight, bit: 3, kind: .stuckAt(value: 1))
        for site in ["block2_mbconv_0_depthwise", "block2_mbconv_0_depthwise_grad_in", "block2_mbconv_0_depthwise_grad_wt"] {
            let hardware = InjectionSpec(workload: "effnet", site: site, faultModel: nil, replica: 0, globalStep: 0, hardware: stuck)
            #expect(throws: ReplayError.self) { try FaultReplay.check(hardware, specName: "hw.json", config: config) }
            do { _ = try FaultReplay.check(hardware, specName: "hw.json", config: config) } catch { #expect("\(error)".contains("vector unit")) }
            let software = InjectionSpec(workload: "effnet", site: site, faultModel: .RD, replica: 0, globalStep: 0, seed: 1)
            #expect(try FaultReplay.check(software, specName: "sw.json", config: config).contains(site))
        }
        let wholeStep = InjectionSpec(workload: "effnet", site: "all", faultModel: nil, replica: 0, globalStep: 0, hardware: stuck)
        #expect(try FaultReplay.check(wholeStep, specName: "all.json", config: config).contains("all"))
    }

    @Test func hardwareSpecsAreCheckedAgainstTheArrayAndTheOperation() throws {
        let dir = Self.scratch("specs")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func load(_ json: String) -> String {
            let path = dir + "/s.json"
            _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
            do { _ = try InjectionSpec.load(path: path); return "ok" } catch { return "\(error)" }
        }
        let head = #"{"workload": "resnet18", "site": "conv1", "replica": 0, "globalStep": 1, "#
        #expect(load(head + #""hardware": {"row": 1, "column": 2, "register": "weight", "bit": 3, "cycle": 7}}"#) == "ok")
        #expect(load(head + #""hardware": {"row": 1, "column": 2, "register": "weight", "bit": 3}}"#).contains("stuckAt"))
        #expect(load(head + #""hardware": {"row": 1, "column": 2, "register": "carry", "bit": 3, "cycle": 7}}"#).contains("register"))
        #expect(load(head + #""faultModel": "RD", "seed": 1, "hardware": {"row": 1, "column": 2, "register": "weight", "bit": 3, "cycle": 7}}"#)
            .contains("not both"))
        #expect(load(head + #""seed": 1}"#).contains("faultModel"))

        // Against the operation: a PE outside the 128x128 array, a cycle past the operation.
        let golden = Self.scratch("golden-specs")
        defer { try? FileManager.default.removeItem(atPath: golden) }
        let data = try DatasetSource.parse("synthetic:train=16,test=8,shape=16x16x1").load()
        let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", optimizer: .sgd, replicas: 1), data: data)
        let reader = try TraceRecorder.record(run: run, dataset: "synthetic:train=16,test=8,shape=16x16x1", steps: 2, policy: .init(), to: golden)
        func replay(_ fault: HardwareFault) -> String {
            let spec = InjectionSpec(workload: "resnet18", site: "conv1", faultModel: nil, replica: 0, globalStep: 1, hardware: fault)
            do { _ = try FaultReplay.run(golden: reader, spec: spec, specName: "hw.json", stepsAfterInjection: 0, out: Self.scratch("x")); return "ok" }
            catch { return "\(error)" }
        }
        defer { try? FileManager.default.removeItem(atPath: Self.scratch("x")) }
        #expect(replay(HardwareFault(row: 200, column: 0, register: .weight, bit: 3, kind: .stuckAt(value: 1))).contains("outside the 128x128 array"))
        #expect(replay(HardwareFault(row: 0, column: 0, register: .weight, bit: 3, kind: .transient(cycle: 1_000_000))).contains("conv1"))
        #expect(replay(HardwareFault(row: 0, column: 0, register: .input, bit: 20, kind: .stuckAt(value: 1))).contains("16 bits"))
    }
}
