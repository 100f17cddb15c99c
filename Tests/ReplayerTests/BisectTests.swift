import Foundation
import Testing
@testable import Replayer
import Recorder
import Sim
import Synchronization

@Suite(.serialized) struct BisectTests {
    static let dataset = "synthetic:train=64,test=16,shape=16x16x1"

    /// A trace of 16 steps of tiny ResNet-18 (batch norm, Adam), recorded by the recorder's
    /// loop. `fault`: a verbatim corruption injected at its step, written into the manifest
    /// only when `recordInjection` (a trace that hides its fault cannot be re-executed).
    static func record(_ name: String, workload: String = "resnet18", steps: Int = 16, threads: Int = 1, seed: UInt64 = 0, snapshotEvery: Int = 4,
                       initialSnapshot: Bool = true, fault: (target: InjectionTarget, value: Float)? = nil, faultOffset: Int = 0,
                       recordInjection: Bool = true, format2: Bool = false) throws -> TraceReader {
        let data = try DatasetSource.parse(dataset).load()
        let run = try TrainingRun(config: TrainingConfig(workload: workload, scale: "tiny", replicas: 2, seed: seed), data: data, threads: threads)
        let dir = ReplayTests.scratch("bisect-\(name)")
        let policy = TraceRecorder.Policy(snapshotEvery: snapshotEvery)
        var manifest = try TraceRecorder.manifest(run: run, dataset: dataset, steps: steps, policy: policy)
        // Format 2: operation outputs digested element by element, as before format 3.
        if format2 { (manifest.formatVersion, manifest.outputDigest) = (2, nil) }
        let writer = try TraceWriter(creating: dir, manifest: manifest)
        let initial = run.initialState()
        if initialSnapshot { try writer.appendSnapshot(initial) }
        let hook = fault.map { InjectionHook(target: $0.target, corruption: Corruption(offsets: [faultOffset], values: [$0.value])) }
        if let f = fault, recordInjection {
            let t = f.target
            try writer.setInjection(.init(golden: "none", site: t.site.name, role: t.role, replica: t.replica, globalStep: t.globalStep,
                                          fault: .software(.RD), positions: .operand([Self.position(faultOffset, in: run.model.operandShape(t.site, t.role) ?? [])]),
                                          values: [f.value]))
        }
        try TraceRecorder.loop(run: run, writer: writer, from: initial, to: steps, hook: { $0 == fault?.target.globalStep ? hook : nil },
                               report: { _ in })
        return try TraceReader(directory: dir)
    }

    /// The row-major index of element `offset` of a tensor of `shape`.
    static func position(_ offset: Int, in shape: [Int]) -> [Int] {
        var rest = offset
        return shape.reversed().map { d in defer { rest /= d }; return rest % d }.reversed()
    }

    /// The golden trace of ``record(_:workload:steps:threads:seed:snapshotEvery:initialSnapshot:fault:recordInjection:)``
    /// (16 steps, snapshots every 4), shared by the tests that only read it.
    static let golden: TraceReader = {
        do { return try record("golden") } catch { fatalError("cannot record the golden trace: \(error)") }
    }()

    static func remove(_ readers: TraceReader...) {
        for r in readers { try? FileManager.default.removeItem(atPath: r.directory) }
    }

    /// A faulty replay of `ReplayTests.golden` (tiny ResNet-18 without batch norm, SGD, 20
    /// steps, snapshots every 4): just the injected step.
    static func replay(_ name: String, _ spec: InjectionSpec, stepsAfter: Int = 0) throws -> TraceReader {
        let r = try FaultReplay.run(golden: ReplayTests.golden, spec: spec, specName: name, stepsAfterInjection: stepsAfter,
                                    out: ReplayTests.scratch("bisect-\(name)"))
        return try TraceReader(directory: r.trace)
    }

    static func error(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    // MARK: - Where the first difference is, for every fault model

    /// Per fault model, a site whose operand the model's tensor role names, and a seed. The
    /// first output to differ must be the site's own (an input or weight fault shows in the
    /// output of the operation that reads it). Seeds where the drawn fault is not masked inside
    /// the operation: a flipped bit of a zero activation is a subnormal that bf16 flushes, and
    /// at 1x1 resolution 8 of a 3x3 kernel's 9 taps read padding.
    static let sites: [FaultModel: (site: String, seed: UInt64)] = [
        .INPUT: ("basicblock_2_basic_0_conv2", 1), .INPUT_16: ("dense", 3), .N64_INPUT: ("basicblock_1_basic_0_conv1", 5),
        .N64_INPUT_16: ("basicblock_3_basic_1_conv1_grad_wt", 5), .N64_INPUT_GLB: ("basicblock_3_basic_0_conv2_grad_wt", 5),
        .WT: ("basicblock_3_basic_0_conv1_grad_in", 1), .WT_16: ("dense_grad_wt", 1), .N64_WT: ("basicblock_2_basic_0_conv1_grad_in", 5),
        .N64_WT_16: ("basicblock_2_basic_1_conv1", 5), .N64_WT_GLB: ("basicblock_4_basic_0_conv2", 2),
        .RBFLIP: ("basicblock_2_basic_0_conv2", 5), .RD: ("basicblock_1_basic_1_conv1_grad_in", 5), .RD_CORRECT: ("conv1", 5),
        .ZERO: ("basicblock_4_basic_0_downsample", 5), .N16_RD: ("basicblock_2_basic_1_conv2_grad_wt", 5),
        .N16_RD_CORRECT: ("basicblock_4_basic_1_conv2_grad_in", 5), .RD_GLB: ("basicblock_3_basic_1_conv2", 5),
        .RD_CORRECT_GLB: ("dense_grad_in", 5),
    ]

    @Test(arguments: FaultModel.allCases)
    func theFirstDivergentTensorIsTheOutputOfTheInjectedOperation(_ model: FaultModel) throws {
        let (site, seed) = try #require(Self.sites[model], "no site for \(model.rawValue)")
        let spec = InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: model, replica: 1, globalStep: 8, seed: seed)
        let faulty = try Self.replay("family-\(model.rawValue)", spec)
        defer { Self.remove(faulty) }
        #expect(faulty.manifest.injection?.role == model.tensor)
        let r = try Bisect.run(ReplayTests.golden, faulty)
        #expect(r.firstDivergentStep == 8, "\(model.rawValue)")
        #expect(r.firstDivergentSite == site && r.replica == 1, "\(model.rawValue): \(r.firstDivergentSite ?? "none") on \(r.replica ?? -1)")
        let first = try #require(r.sites.first)
        #expect(first.differing >= 1 && first.differing <= first.elements)
        // Nothing on the other replica differs before the all-reduce.
        let sites = ReplayTests.golden.manifest.sites
        #expect(r.sites.allSatisfy { $0.site == "update" || $0.replica == 1 })
        // Execution order: operations in the manifest's order, then the update.
        let order = r.sites.map { $0.site == "update" ? sites.count : sites.firstIndex(of: $0.site) ?? -1 }
        #expect(order == order.sorted() && !order.contains(-1))
        // The state after the injected step, restored from the snapshot before it on both sides.
        #expect(r.cost.restoreSteps == [0, 0] && r.cost.reexecutions == 2)
    }

    // MARK: - Statistics

    @Test func aSingleElementForwardCorruptionIsExactlyOneElement() throws {
        let site = "basicblock_2_basic_0_conv2"
        let spec = InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: .RD, replica: 0, globalStep: 8,
                                 positions: [[2, 1, 0, 3]], values: [1000.5])
        let faulty = try Self.replay("exact", spec, stepsAfter: 3)
        defer { Self.remove(faulty) }
        let r = try Bisect.run(ReplayTests.golden, faulty)
        #expect(r.firstDivergentStep == 8 && r.firstDivergentSite == site && r.replica == 0 && r.firstDivergentTensor == nil)
        let d = try #require(r.sites.first)
        let golden = try #require(d.firstDifferences.first?.a)
        #expect(d.shape == [4, 4, 4, 8] && d.elements == 512 && d.differing == 1)
        #expect(d.firstDifferences == [.init(position: [2, 1, 0, 3], a: golden, b: 1000.5)])
        #expect(d.maxAbsError == abs(1000.5 - Double(golden)) && d.maxRelError == abs(1000.5 - Double(golden)) / abs(Double(golden)))
        #expect(d.maxULP == TensorDifference.ulpDistance(golden, 1000.5) && d.maxULP > 1 << 20)
        #expect(d.nanA == 0 && d.nanB == 0 && d.infA == 0 && d.infB == 0)
        // It then spreads to the later operations of replica 0 and to the update.
        #expect(r.sites.count > 2 && r.sites[1].site != site && r.sites.contains { $0.site == "update" && $0.tensor == "\(site)/kernel" && $0.kind == "weights" })
        #expect(!r.sites.contains { $0.site == "basicblock_1_basic_0_conv1" })   // earlier layers' forward outputs do not move
        // The onset comes at or after the divergence (if the run leaves the band at all), and
        // the cost counts what ran: no restore (snapshot at 8 on both sides), the step twice.
        #expect(r.onsetStep.map { $0 >= 8 } ?? true)
        #expect(r.commonSteps == 8...11 && r.comparisons == 1)    // the first common step already differs
        #expect(r.cost.reexecutions == 2 && r.cost.divergentStepExecutions == 2)
        #expect(r.cost.linearSteps == 9 + 1)     // golden 0...8, faulty 8
        #expect(r.cost.wallSeconds > 0 && (r.cost.secondsPerStep ?? 0) > 0)
        #expect(r.cost.estimatedLinearSeconds == r.cost.secondsPerStep.map { $0 * 10 })
    }

    @Test func elementStatisticsOnKnownValues() throws {
        let a: [Float] = [1, 0, -2, .nan, 4, .infinity, 3, 7]
        let b: [Float] = [1, 0.5, -2.5, .nan, .infinity, .infinity, .nan, 7]
        let d = try #require(TensorDifference.compare(a, b, shape: [2, 4], site: "x", replica: 3))
        #expect(d.differing == 4 && d.elements == 8)    // the equal NaNs and infinities do not differ
        #expect(d.firstDifferences.map(\.position) == [[0, 1], [0, 2], [1, 0], [1, 2]])
        #expect(d.maxAbsError == 0.5 && d.maxRelError == .infinity)    // 0 -> 0.5 is infinitely far, relatively
        #expect(d.nanA == 1 && d.nanB == 2 && d.infA == 1 && d.infB == 2)
        #expect(d.maxULP == TensorDifference.ulpDistance(4, .infinity))
        #expect(TensorDifference.compare(a, a, shape: [8], site: "x") == nil)
        #expect(TensorDifference.compare([-0.0], [0.0], shape: [1], site: "x")?.maxULP == 0)
        #expect(TensorDifference.ulpDistance(1, Float(1).nextUp) == 1)
        #expect(TensorDifference.ulpDistance(-.leastNonzeroMagnitude, .leastNonzeroMagnitude) == 2)
        #expect(TensorDifference.ulpDistance(.greatestFiniteMagnitude, .infinity) == 1)
        #expect(TensorDifference.ulpDistance(-.infinity, .infinity) == 2 * 0x7F80_0000)
        let many = TensorDifference.compare([Float](repeating: 0, count: 9), [Float](repeating: 1, count: 9), shape: [3, 3], site: "x")
        #expect(many?.firstDifferences.count == TensorDifference.shown && many?.maxRelError == .infinity)
    }

    @Test func theOnsetIsTheFirstStepOutsideTheGoldenBand() {
        func record(_ step: Int, loss: Float, accuracy: Float) -> StepPoint {
            StepPoint(step: step, loss: loss, accuracy: accuracy)
        }
        let golden = (0..<5).map { record($0, loss: 1, accuracy: 0.5) }
        func onset(_ faulty: [StepPoint], band: Float = 0.02) -> Int? {
            Bisect.onset(Array(zip(golden, faulty)), band: band)?.step
        }
        #expect(onset(golden) == nil)
        #expect(onset([0.5, 0.51, 0.4, 0.5, 0.5].enumerated().map { record($0.offset, loss: 1, accuracy: $0.element) }) == 2)
        #expect(onset([0.5, 0.51, 0.4, 0.5, 0.5].enumerated().map { record($0.offset, loss: 1, accuracy: $0.element) }, band: 0.2) == nil)
        #expect(onset([1, 2, .nan, 1, 1].enumerated().map { record($0.offset, loss: $0.element, accuracy: 0.5) }) == 2)
        #expect(onset([1, .infinity, 1, 1, 1].enumerated().map { record($0.offset, loss: $0.element, accuracy: 0.5) }) == 1)
    }

    // MARK: - Golden against golden, and cost

    @Test func goldenRunsWithDifferentThreadCountsDoNotDiverge() throws {
        let b = try Self.record("t2", threads: 2)
        defer { Self.remove(b) }
        let r = try Bisect.run(Self.golden, b)
        #expect(r.firstDivergentStep == nil && r.sites.isEmpty && r.onsetStep == nil && r.commonSteps == 0...15)
        #expect(r.cost.reexecutions == 0 && r.cost.linearSteps == 32)
    }

    /// A format-2 trace digested its operations element by element, a format-3 one two
    /// elements at a time: their records cannot say whether a step's operations matched, so
    /// the first common step is re-executed on both sides and compared value by value. The
    /// same run does not diverge; a fault masked within that step is still found.
    @Test func tracesWhoseOperationDigestsDifferAreComparedByReexecution() throws {
        let old = try Self.record("format2", format2: true)
        defer { Self.remove(old) }
        #expect(old.manifest.outputDigests == .elementLanes && Self.golden.manifest.outputDigests == .pairLanes)
        let same = try Bisect.run(old, Self.golden)
        #expect(same.firstDivergentStep == nil && same.sites.isEmpty && same.commonSteps == 0...15, "\(same)")
        #expect(same.cost.reexecutions == 2 && same.cost.linearSteps == 32)

        // Without batch norm, a negative value written over a negative forward output is
        // hidden by the ReLU after it: at step 0 only the operations differ, not the state.
        let plain = try Self.record("format2-nobn", workload: "resnet18_nobn", steps: 2, format2: true)
        let run = try TrainingRun(config: plain.manifest.config, data: try DatasetSource.parse(Self.dataset).load())
        let conv1 = Mutex<[Float]>([])
        _ = run.trainer.gradients(run.initialState(), batches: run.batches(step: 0), capture: { replica, site, _, values in
            if replica == 0 && site.name == "conv1" { conv1.withLock { $0 = values } }
        })
        let golden = conv1.withLock { $0 }
        let offset = try #require(golden.firstIndex { $0 < 0 })
        let target = InjectionTarget(site: SiteID(layer: "conv1", kind: .forward), role: .output, replica: 0, globalStep: 0)
        let masked = try Self.record("format3-masked", workload: "resnet18_nobn", steps: 2, fault: (target, 2 * golden[offset] - 1),
                                     faultOffset: offset)
        defer { Self.remove(plain, masked) }
        #expect(try plain.stepRecords().map(\.stateDigest) == masked.stepRecords().map(\.stateDigest))
        let r = try Bisect.run(plain, masked)
        #expect(r.firstDivergentStep == 0 && r.firstDivergentSite == "conv1" && r.replica == 0 && r.sites.count == 1, "\(r)")
    }

    @Test func aFaultInAModelWithBatchNormIsBisectedInLogarithmicComparisons() throws {
        let target = InjectionTarget(site: SiteID(layer: "basicblock_4_basic_0_conv2", kind: .gradIn), role: .output, replica: 1, globalStep: 9)
        let faulty = try Self.record("bn-faulty", fault: (target, 3e4))
        defer { Self.remove(faulty) }
        let r = try Bisect.run(Self.golden, faulty, threads: 2)
        #expect(r.firstDivergentStep == 9 && r.firstDivergentSite == "basicblock_4_basic_0_conv2_grad_in" && r.replica == 1)
        #expect(r.sites.first?.firstDifferences.first?.position == [0, 0, 0, 0] && r.sites.first?.differing == 1)
        #expect(r.comparisons <= 7)    // 2 ends + ceil(log2 16)
        // Both traces snapshot every 4 steps: the state before step 9 is snapshot 8 plus one step.
        #expect(r.cost.restoreSteps == [1, 1] && r.cost.reexecutions == 4 && r.cost.linearSteps == 20)
        // The update is compared per state tensor: parameters and Adam's slots move; the moving
        // statistics come from the forward pass, which a backward fault cannot reach.
        let kinds = Set(r.sites.compactMap(\.kind))
        #expect(kinds == ["weights", "slot:m", "slot:v"], "\(kinds)")
        #expect(r.sites.contains { $0.tensor == "basicblock_4_basic_0_conv1/kernel" && $0.shape == [3, 3, 16, 32] })
    }

    @Test func aStateWithoutItsOwnSnapshotIsRestoredByReexecutionFromAnEarlierOne() throws {
        let target = InjectionTarget(site: SiteID(layer: "dense", kind: .forward), role: .output, replica: 0, globalStep: 11)
        let faulty = try Self.record("sparse-faulty", snapshotEvery: 100, fault: (target, -50))
        defer { Self.remove(faulty) }
        #expect(faulty.snapshotSteps == [0, 16])
        let r = try Bisect.run(Self.golden, faulty)
        #expect(r.firstDivergentStep == 11 && r.firstDivergentSite == "dense" && r.replica == 0)
        // Golden: snapshot 8 plus 3 steps; faulty: its initial snapshot plus 11.
        #expect(r.cost.restoreSteps == [3, 11] && r.cost.reexecutions == 16)
    }

    /// Traces of one run that share no step have nothing to compare: an error naming both
    /// spans, not "no divergence".
    @Test func tracesWithNoCommonStepAreRefused() throws {
        let early = try Self.record("no-common-early", steps: 2)
        let late = try Self.record("no-common-late", steps: 12)
        defer { Self.remove(early, late) }
        // A replay of the longer run forked after step 8 records steps 8... only.
        let fork = try FaultReplay.run(golden: late, spec: InjectionSpec(workload: "resnet18", site: "dense", faultModel: .RD, replica: 0,
                                                                         globalStep: 8, seed: 1),
                                       specName: "s.json", stepsAfterInjection: 0, out: ReplayTests.scratch("no-common-fork"))
        let forked = try TraceReader(directory: fork.trace)
        defer { Self.remove(forked) }
        let error = #expect(throws: BisectError.self) { try Bisect.run(early, forked) }
        #expect(error.map { "\($0)" }?.contains("record no step in common") == true)
    }

    /// Two replays of one golden run forked at different steps (2 and 4): the first enters
    /// step 4, their first common step, already corrupted, the second in the golden state. The
    /// state is reported first, before any operation. (A trace whose initial state is not the
    /// one its manifest's configuration gives is refused outright: see
    /// `TraceTests.aManifestFromAnotherRunOfTheSameShapeIsRefused`.)
    @Test func runsThatEnterTheFirstCommonStepInDifferentStatesShowTheStateFirst() throws {
        func spec(_ step: Int) -> InjectionSpec {
            InjectionSpec(workload: "resnet18_nobn", site: "dense", faultModel: .RD, replica: 0, globalStep: step, seed: 1)
        }
        let early = try Self.replay("enter-early", spec(2), stepsAfter: 3)
        let late = try Self.replay("enter-late", spec(4))
        defer { Self.remove(early, late) }
        let r = try Bisect.run(early, late)
        #expect(r.firstDivergentStep == 4 && r.firstDivergentSite == "state" && r.replica == nil)
        let state = try #require(r.sites.first)
        #expect(state.site == "state" && state.differing > 0)
    }

    // MARK: - Bad input

    @Test func tracesOfDifferentRunsAreRejected() throws {
        let a = Self.golden
        let (seed, nobn) = (try Self.record("run-seed", steps: 1, seed: 1), try Self.record("run-nobn", workload: "resnet18_nobn", steps: 1))
        defer { Self.remove(seed, nobn) }
        let e1 = Self.error { try Bisect.run(a, seed) }
        #expect(e1.contains("record different configurations") && e1.contains(a.directory) && e1.contains("seed 0") && e1.contains("seed 1"))
        let e2 = Self.error { try Bisect.run(a, nobn) }
        #expect(e2.contains("resnet18 tiny") && e2.contains("resnet18_nobn tiny") && e2.contains(nobn.directory))
        #expect(throws: BisectError.self) { try Bisect.run(a, nobn) }
    }

    @Test func aTraceWhoseFaultIsNotRecordedCannotBeReproduced() throws {
        let target = InjectionTarget(site: SiteID(layer: "conv1", kind: .forward), role: .output, replica: 1, globalStep: 6)
        let hidden = try Self.record("hidden", steps: 8, fault: (target, 9), recordInjection: false)
        defer { Self.remove(hidden) }
        let e = Self.error { try Bisect.run(Self.golden, hidden) }
        #expect(e.contains(hidden.directory) && e.contains("re-executing step 6 does not reproduce") && e.contains("conv1 on replica 1"), "\(e)")
    }

    @Test func noSnapshotToReexecuteFromIsAClearError() throws {
        let target = InjectionTarget(site: SiteID(layer: "dense", kind: .gradWt), role: .output, replica: 0, globalStep: 9)
        let faulty = try Self.record("nosnap-faulty", steps: 12, snapshotEvery: 100, initialSnapshot: false, fault: (target, 2))
        defer { Self.remove(faulty) }
        #expect(faulty.snapshotSteps == [12])
        let e = Self.error { try Bisect.run(Self.golden, faulty) }
        #expect(e.contains(faulty.framesPath) && e.contains("no snapshot at or before step 9") && e.contains("12"), "\(e)")
    }

    @Test func corruptFramesFailNamingTheFileAndStep() throws {
        let target = InjectionTarget(site: SiteID(layer: "conv1", kind: .gradWt), role: .output, replica: 0, globalStep: 9)
        let copy = ReplayTests.scratch("bisect-corrupt-golden")
        try FileManager.default.copyItem(atPath: Self.golden.directory, toPath: copy)
        let golden = try TraceReader(directory: copy)
        let faulty = try Self.record("corrupt-faulty", steps: 12, fault: (target, 2))
        defer { Self.remove(golden, faulty) }
        // A byte of the snapshot after step 8 (the state the divergent step 9 starts from).
        let snapshot = try #require(golden.frames.first { $0.header.kind == .snapshot && $0.header.step == 8 })
        var bytes = try #require(FileManager.default.contents(atPath: golden.framesPath))
        bytes[snapshot.payloadOffset + snapshot.header.length / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: golden.framesPath))
        let e = Self.error { try Bisect.run(try TraceReader(directory: golden.directory), faulty) }
        #expect(e.contains(golden.framesPath) && e.contains("step 8"), "\(e)")
        // A byte of a step record: found when the records are read, before any search.
        let record = try #require(faulty.frames.first { $0.header.kind == .step && $0.header.step == 3 })
        var fb = try #require(FileManager.default.contents(atPath: faulty.framesPath))
        fb[record.payloadOffset + 2] ^= 0x01
        try fb.write(to: URL(fileURLWithPath: faulty.framesPath))
        let e2 = Self.error { try Bisect.run(golden, try TraceReader(directory: faulty.directory)) }
        #expect(e2.contains(faulty.framesPath) && e2.contains("step 3"), "\(e2)")
    }
}
