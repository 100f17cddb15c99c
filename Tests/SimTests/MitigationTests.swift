import Testing
@testable import Sim

@Suite struct MitigationTests {
    /// A product of bf16 matrices checks clean; one element with a flipped exponent bit fails
    /// in its column; a flip of the lowest mantissa bit is below the rounding bound.
    @Test func productChecksumsPassACleanProductAndCatchACorruptedElement() throws {
        let (m, k, n) = (48, 300, 20)
        let rng = CounterRNG(seed: 7, purpose: .initialization)
        func values(_ count: Int, _ offset: UInt64) -> [Float] {
            (0..<count).map { Float(Int(rng.value(at: UInt64($0) + offset) % 2001) - 1000) / 250 }
        }
        let a = values(m * k, 0), b = values(k * n, 1 << 20)
        let mxu = MXU(config: .tpuV2)
        var c = try mxu.multiply(a, b, shape: GEMMShape(m: m, k: k, n: n))
        func failures(_ c: [Float]) -> [Int] {
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeBufferPointer { pc in
                ProductChecksum.failures(a: MatrixView(pa.baseAddress!, rowStride: k), b: MatrixView(pb.baseAddress!, rowStride: n),
                                         c: pc.baseAddress!, shape: GEMMShape(m: m, k: k, n: n), format: mxu.format).map(\.column)
            } } }
        }
        #expect(failures(c) == [])
        let clean = c
        c[5 * n + 7] = Float(bitPattern: c[5 * n + 7].bitPattern ^ (1 << 27))
        #expect(failures(c) == [7])
        c = clean
        c[9 * n + 3] = Float(bitPattern: c[9 * n + 3].bitPattern ^ 1)
        #expect(failures(c) == [])
        c = clean
        c[0] = .infinity
        #expect(failures(c) == [0])
    }

    @Test func detectorsParseTheirSpellingAndRefuseWhatTheyCannotUse() throws {
        #expect(try Detector(parsing: "adam-m") == Detector(.adamM, bound: 20, variables: .first))
        #expect(try Detector(parsing: "adam-m@all=1e5") == Detector(.adamM, bound: 1e5, variables: .all))
        #expect(try Detector(parsing: "abft").description == "abft")
        for bad in ["adam", "adam-m=0", "adam-m=nan", "adam-m=-3", "adam-m@some", "abft=3", "non-finite@all", ""] {
            #expect(throws: MitigationError.self, "\(bad)") { try Detector(parsing: bad) }
        }
        #expect(throws: MitigationError.self) { try Mitigation(parsing: "abft,abft") }
        #expect(throws: MitigationError.self) { try Mitigation(parsing: "abft", restoreSteps: 0) }
        let sgd = OptimizerConfig(kind: .sgd)
        let nobn = try Workloads.model("resnet18_nobn", scale: "tiny")
        #expect(throws: MitigationError.self) { try Mitigation(parsing: "adam-v").validate(optimizer: sgd, model: nobn) }
        #expect(throws: MitigationError.self) { try Mitigation(parsing: "adam-m").validate(optimizer: sgd, model: nobn) }
        #expect(try Mitigation.applicable(optimizer: sgd, model: nobn).detectors.map(\.kind) == [.updateSize, .nonFinite, .productChecksum])
        #expect(throws: MitigationError.self) { try Mitigation(parsing: "moving-variance").validate(optimizer: OptimizerConfig(kind: .adam), model: nobn) }
        let spelled = try Mitigation(parsing: "adam-m@all=100000,non-finite")
        #expect(try Mitigation(parsing: spelled.detectors.map(\.description).joined(separator: ",")) == spelled)
    }

    /// Detectors that never fire change nothing, whatever the response: the final state is
    /// the plain run's bit for bit (a restore window only delays what the closures see).
    @Test(arguments: [Mitigation.Response.detect, .skip, .restore])
    func mitigationThatNeverFiresLeavesTrainingBitIdentical(response: Mitigation.Response) throws {
        let data = try DatasetSource.parse("synthetic:train=32,test=8,shape=16x16x1").load()
        let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), data: data)
        let all = try Mitigation.applicable(optimizer: run.config.optimizer, model: run.model, response: response)
        var seen: [Int] = [], events = 0
        let start = run.initialState()
        let plain = run.train(from: start, steps: 4).0
        let checked = TrainingLoop(run: run, evaluation: .never, mitigation: all).run(from: start, to: 4, stop: { _ in false }, step: { seen.append($0.index) },
                                                                                     epoch: { _, _ in }, stepEnd: { _ in }, mitigated: { _ in events += 1 })
        #expect(events == 0)
        #expect(seen == [0, 1, 2, 3])
        #expect(checked.digest == plain.digest)
    }

    /// A bound no step can meet fires on every step: the detectors are not vacuous.
    @Test func aBoundNoStepMeetsFiresOnEveryStep() throws {
        let data = try DatasetSource.parse("synthetic:train=32,test=8,shape=16x16x1").load()
        let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), data: data)
        let tight = try Mitigation(parsing: "update-size=1e-30,adam-v@first=1e-30,moving-variance=1e-30", response: .detect)
        var events: [MitigationEvent] = []
        _ = TrainingLoop(run: run, evaluation: .never, mitigation: tight).run(from: run.initialState(), to: 3, stop: { _ in false }, step: { _ in },
                                                                              epoch: { _, _ in }, stepEnd: { _ in }, mitigated: { events.append($0) })
        #expect(events.map(\.step) == [0, 1, 2])
        #expect(events.allSatisfy { $0.detections.count == 3 && $0.action == .detected })
    }
}
