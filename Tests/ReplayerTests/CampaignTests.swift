import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// Campaigns on a tiny golden run (synthetic data, 2 replicas, 16 steps): a few short
/// experiments each, run once and shared by the tests.
@Suite(.serialized) struct CampaignTests {
    /// Shared by the tests; under the test process's scratch directory, removed at exit.
    static let root: String = {
        let d = Scratch.path("campaign")
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func scratch(_ name: String) -> String {
        let d = root + "/" + name
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    static var golden: String { TinyGolden.nobnSGD.directory }

    static let parameters = CampaignParameters(experiments: 6, seed: 11, stepsAfterInjection: 2)

    /// The reference: one serial, unsharded run.
    static let serial: CampaignReport = try! CampaignRunner.run(golden: golden, parameters: parameters, out: scratch("serial"), resume: false)

    static func lines(_ results: [ExperimentResult]) -> [String] { results.sorted { $0.index < $1.index }.map(\.canonicalLine) }

    static func error(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test func serialRunRecordsEveryExperimentWithSummary() throws {
        let r = Self.serial
        #expect(r.results.map(\.index) == Array(0..<6))
        #expect(r.results.allSatisfy { $0.campaign == r.manifest.id && Outcome(rawValue: $0.outcome) != nil })
        // Each ran the injected step and at most 2 more, fewer only when it stopped early.
        #expect(r.results.allSatisfy { $0.stoppedEarly == nil ? $0.stepsRun == 3 : $0.stepsRun <= 3 })
        #expect(r.results.allSatisfy { $0.stoppedEarly == nil ? $0.faultyTestAccuracy != nil : $0.faultyTestAccuracy == nil })
        let summary = try JSONDecoder().decode(CampaignSummary.self, from: Data(contentsOf: URL(fileURLWithPath: CampaignSummary.jsonPath(Self.serial.directory))))
        #expect(summary == r.summary && summary.completed == 6 && summary.missing.isEmpty && summary.missingCount == 0)
        // A campaign planned far larger lists its first missing indices and counts the rest.
        var huge = r.manifest
        huge.parameters.experiments = 2_000_006
        let partial = CampaignSummary(manifest: huge, results: r.results)
        #expect(partial.missingCount == 2_000_000 && partial.missing.count == CampaignSummary.missingListed && partial.missing.first == 6)
        let overall = try #require(summary.groups.first)
        #expect(overall.dimension == "overall" && overall.total == 6 && overall.outcomes.map(\.count).reduce(0, +) == 6)
        #expect(summary.groups.filter { $0.dimension == "phase" }.map(\.total).reduce(0, +) == 6)
        let csv = try String(contentsOfFile: CampaignSummary.csvPath(Self.serial.directory), encoding: .utf8)
        #expect(csv.hasPrefix("dimension,key,outcome,count,total,fraction,wilson_low,wilson_high\noverall,all,Masked,"))
        // No per-experiment trace is left behind.
        #expect(!FileManager.default.fileExists(atPath: Self.serial.directory + "/scratch"))
    }

    @Test func parallelWorkersAndMergedShardsEqualTheSerialRun() throws {
        let parallel = try CampaignRunner.run(golden: Self.golden, parameters: Self.parameters, out: Self.scratch("parallel"), resume: false,
                                              options: .init(workers: 3))
        #expect(Self.lines(parallel.results) == Self.lines(Self.serial.results))
        #expect(parallel.summary == Self.serial.summary)

        let shards = try (0..<2).map { i in
            try CampaignRunner.run(golden: Self.golden, parameters: Self.parameters, shard: try Shard(index: i, count: 2),
                                   out: Self.scratch("shard\(i)"), resume: false)
        }
        #expect(shards[0].results.map(\.index) == [0, 2, 4] && shards[1].results.map(\.index) == [1, 3, 5])
        #expect(shards[0].summary.missing.isEmpty)
        let merged = try CampaignMerge.merge(shards.map(\.directory), out: Self.scratch("merged"))
        #expect(merged.missing.isEmpty && merged.results == 6)
        let mergedResults = try ResultsLog.read(directory: Self.root + "/merged").results
        #expect(mergedResults.map(\.index) == Array(0..<6))
        #expect(Self.lines(mergedResults) == Self.lines(Self.serial.results))
        #expect(merged.summary == Self.serial.summary)
        #expect(try Data(contentsOf: URL(fileURLWithPath: CampaignSummary.csvPath(Self.root + "/merged")))
                == Data(contentsOf: URL(fileURLWithPath: CampaignSummary.csvPath(Self.serial.directory))))

        // One shard alone: the others' experiments are reported missing.
        let partial = try CampaignMerge.merge([shards[1].directory], out: Self.scratch("partial"))
        #expect(partial.missing == [0, 2, 4])
        // The same experiments twice, or a non-empty --out: refused.
        #expect(Self.error { _ = try CampaignMerge.merge([shards[0].directory, Self.serial.directory], out: Self.scratch("dup")) }
            .contains("experiment 0 is in both"))
        #expect(Self.error { _ = try CampaignMerge.merge([shards[0].directory], out: Self.root + "/merged") }.contains("not empty"))
        // A shard directory holding another shard's experiments is refused, naming the index.
        let stray = Self.scratch("stray-shard")
        try? FileManager.default.removeItem(atPath: stray)
        try FileManager.default.createDirectory(atPath: stray, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CampaignManifest.path(shards[0].directory), toPath: CampaignManifest.path(stray))
        try FileManager.default.copyItem(atPath: ResultsLog.path(shards[1].directory), toPath: ResultsLog.path(stray))
        #expect(Self.error { _ = try CampaignMerge.merge([stray], out: Self.scratch("stray-merged")) }.contains("does not belong to shard 0/"))
    }

    @Test func anInterruptedCampaignResumesWithoutRepeatingOrLosing() throws {
        let dir = Self.scratch("resumed")
        try FileManager.default.copyItem(atPath: Self.serial.directory, toPath: dir)
        // Keep 3 whole lines and half of the 4th, as a crash mid-write would.
        let lines = try String(contentsOfFile: ResultsLog.path(dir), encoding: .utf8).split(separator: "\n")
        let torn = lines[0..<3].joined(separator: "\n") + "\n" + lines[3].prefix(40)
        try Data(torn.utf8).write(to: URL(fileURLWithPath: ResultsLog.path(dir)))
        #expect(try ResultsLog.read(directory: dir).tornBytes == 40)

        let r = try CampaignRunner.run(golden: Self.golden, parameters: Self.parameters, out: dir, resume: true)
        #expect(r.resumed == 3 && r.ranNow == 3 && r.tornBytesDropped == 40)
        #expect(Self.lines(r.results) == Self.lines(Self.serial.results))
        let onDisk = try ResultsLog.read(directory: dir)
        #expect(onDisk.tornBytes == 0 && onDisk.results.count == 6)
        // Resuming a finished campaign runs nothing.
        let again = try CampaignRunner.run(golden: Self.golden, parameters: Self.parameters, out: dir, resume: true)
        #expect(again.ranNow == 0 && again.resumed == 6)
    }

    @Test func aResultsSpecReplaysAloneToTheSameOutcome() throws {
        let reader = try TraceReader(directory: Self.golden)
        for result in Self.serial.results.prefix(2) {
            let path = Self.scratch("spec-\(result.index).json")
            try Data(try CampaignJSON.encode(result.spec)).write(to: URL(fileURLWithPath: path))
            let spec = try InjectionSpec.load(path: path)
            #expect(spec.positions == result.spec.positions && spec.seed == result.spec.seed)
            let replay = try FaultReplay.run(golden: reader, spec: spec, specName: path, stepsAfterInjection: Self.parameters.stepsAfterInjection,
                                             out: Self.scratch("spec-\(result.index)"))
            #expect(replay.outcome == result.outcome && replay.stepsRun == result.stepsRun && replay.stoppedEarly == result.stoppedEarly)
            #expect(replay.injection.positions == result.spec.positions && replay.firstDivergence == result.firstDivergence)
        }
    }

    /// A hardware campaign drawing on attention operations (several products in turn) that
    /// was started under the earlier schedule rules (a manifest without `scheduleRules`) is
    /// refused on resume and in a merge, naming the rules; under the current rules both work.
    @Test func aCampaignDrawnUnderOtherScheduleRulesIsNotResumed() throws {
        let corpus = Self.scratch("fortunes")
        try FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        try String(repeating: "A fortune with some words in it, and more.\n%\n", count: 40).write(toFile: corpus + "/fortunes", atomically: true, encoding: .utf8)
        let dataset = "fortunes:length=8,dir=" + corpus
        let run = try TrainingRun(config: try TrainingConfig(workload: "transformer", scale: "tiny", replicas: 1), data: try DatasetSource.parse(dataset).load())
        let golden = try TraceRecorder.record(run: run, dataset: dataset, steps: 3, policy: .init(), to: Self.scratch("transformer-golden"))
        let p = CampaignParameters(experiments: 2, seed: 3, stepsAfterInjection: 1, layers: ["encoder_stack_attention_0_scores"], kinds: [.hardware],
                                   hardwareFaults: [.flip])
        let out = Self.scratch("rules")
        let first = try CampaignRunner.run(golden: golden.directory, parameters: p, shard: try Shard(index: 0, count: 2), out: out, resume: false)
        #expect(first.manifest.scheduleRules == CampaignManifest.currentScheduleRules && first.results.count == 1)
        // As an earlier build wrote it: no scheduleRules.
        let path = CampaignManifest.path(out)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        json["scheduleRules"] = nil
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let refused = Self.error { _ = try CampaignRunner.run(golden: golden.directory, parameters: p, shard: try Shard(index: 0, count: 2), out: out, resume: true) }
        #expect(refused.contains("schedule rules 2 vs 1") && refused.contains("new --out"), "\(refused)")
        // Nor merged with a shard of the current rules.
        let shard1 = Self.scratch("rules-1")
        let other = try CampaignRunner.run(golden: golden.directory, parameters: p, shard: try Shard(index: 1, count: 2), out: shard1, resume: false)
        #expect(other.results.count == 1)
        let unmerged = Self.error { _ = try CampaignMerge.merge([shard1, out], out: Self.scratch("rules-merged")) }
        #expect(unmerged.contains("schedule rules 2 vs 1") && unmerged.contains("merging would mix"), "\(unmerged)")
        json["scheduleRules"] = CampaignManifest.currentScheduleRules
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let resumed = try CampaignRunner.run(golden: golden.directory, parameters: p, shard: try Shard(index: 0, count: 2), out: out, resume: true)
        #expect(resumed.resumed == 1)
        #expect(try CampaignMerge.merge([shard1, out], out: Self.scratch("rules-merged")).results == 2)
    }

    /// `--specs`: experiments listed instead of drawn run as the drawn ones did (here the
    /// serial campaign's own result specs, in reverse order), mixed kinds included; the list
    /// is part of the campaign's identity; a spec that cannot run is named by file and line
    /// before anything is written.
    @Test func listedExperimentsRunAsTheirDrawnOriginals() throws {
        let hardware = try CampaignRunner.run(golden: Self.golden, parameters: CampaignParameters(experiments: 1, seed: 5, stepsAfterInjection: 2, kinds: [.hardware]),
                                              out: Self.scratch("listed-hw"), resume: false)
        let originals = Array(Self.serial.results.reversed()) + hardware.results
        let file = Self.scratch("listed.jsonl")
        let text = try originals.map { String(decoding: try CampaignJSON.encode($0.spec), as: UTF8.self) }.joined(separator: "\n") + "\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let specs = try InjectionSpec.loadList(path: file)
        #expect(specs == originals.map(\.spec))
        let p = CampaignParameters(specs: specs, stepsAfterInjection: 2)
        #expect(p.kinds == [.software, .hardware] && p.experiments == originals.count)
        let listed = try CampaignRunner.run(golden: Self.golden, parameters: p, out: Self.scratch("listed"), resume: false,
                                            options: .init(workers: 2, specsFile: file))
        for (result, original) in zip(listed.results, originals) {
            #expect(result.spec == original.spec && result.kind == original.kind)
            #expect(result.outcome == original.outcome && result.stepsRun == original.stepsRun && result.stoppedEarly == original.stoppedEarly)
            #expect(result.firstDivergence == original.firstDivergence && result.activated == original.activated)
        }
        // The report says the experiments were listed, not drawn from a seed.
        let html = try Report.html(directory: listed.directory).html
        #expect(html.contains("none: the experiments are listed (--specs), not drawn") && !html.contains("seed 0"))
        // Another list is another campaign: resuming with it is refused, naming the specs.
        let other = CampaignParameters(specs: Array(specs.dropLast()), stepsAfterInjection: 2)
        let mismatch = Self.error { _ = try CampaignRunner.run(golden: Self.golden, parameters: other, out: listed.directory, resume: true) }
        #expect(mismatch.contains("specs: \(specs.count - 1) listed vs \(specs.count) listed"), "\(mismatch)")
        // A step with no room for the steps after it, and a blank line, are named by line.
        var late = specs[0]
        late.globalStep = 15
        let tooLate = Self.error { _ = try CampaignRunner.run(golden: Self.golden, parameters: CampaignParameters(specs: [specs[1], late], stepsAfterInjection: 2),
                                                             out: Self.scratch("listed-late"), resume: false, options: .init(specsFile: "late.jsonl")) }
        #expect(tooLate.contains("late.jsonl:2 (experiment 1): global step 15 cannot be injected with --steps-after-injection 2"), "\(tooLate)")
        #expect(!FileManager.default.fileExists(atPath: Self.root + "/listed-late"))
        try Data((text + "\n" + text).utf8).write(to: URL(fileURLWithPath: file))
        let blank = Self.error { _ = try InjectionSpec.loadList(path: file) }
        #expect(blank == "\(file):\(originals.count + 1): blank line: give one JSON spec per line (experiment i is line i + 1)")
    }

    /// Hardware-fault campaigns: PEs, registers, bits and cycles drawn per experiment, labelled
    /// by register and class in the summary, parallel equal to serial, each result's spec
    /// replaying alone to the same outcome.
    @Test func hardwareCampaignsDrawPERegistersAndReplayAlone() throws {
        let p = CampaignParameters(experiments: 4, seed: 5, stepsAfterInjection: 0, kinds: [.hardware], registers: [.weight, .partialSum])
        let serial = try CampaignRunner.run(golden: Self.golden, parameters: p, out: Self.scratch("hw-serial"), resume: false)
        let parallel = try CampaignRunner.run(golden: Self.golden, parameters: p, out: Self.scratch("hw-parallel"), resume: false,
                                              options: .init(workers: 2))
        #expect(Self.lines(parallel.results) == Self.lines(serial.results))
        #expect(serial.results.allSatisfy { $0.kind == .hardware && $0.spec.hardware != nil && $0.spec.positions == nil && $0.role == "output" })
        #expect(serial.results.allSatisfy { ["HW_WEIGHT_FLIP", "HW_WEIGHT_STUCK", "HW_PSUM_FLIP", "HW_PSUM_STUCK"].contains($0.faultModel) })
        #expect(Set(serial.results.compactMap { $0.spec.hardware.map { [$0.row, $0.column] } }).count > 1)
        let labels = serial.summary.groups.filter { $0.dimension == "faultModel" }
        #expect(labels.map(\.total).reduce(0, +) == 4 && labels.allSatisfy { $0.key.hasPrefix("HW_") })
        let reader = try TraceReader(directory: Self.golden)
        for result in serial.results.prefix(2) {
            let path = Self.scratch("hw-spec-\(result.index).json")
            try Data(try CampaignJSON.encode(result.spec)).write(to: URL(fileURLWithPath: path))
            let replay = try FaultReplay.run(golden: reader, spec: try InjectionSpec.load(path: path), specName: path, stepsAfterInjection: 0,
                                             out: Self.scratch("hw-spec-\(result.index)"))
            #expect(replay.outcome == result.outcome && replay.stepsRun == result.stepsRun && replay.firstDivergence == result.firstDivergence)
        }
        #expect(Self.error { _ = try CampaignPlan(parameters: CampaignParameters(experiments: 1, kinds: [.hardware], registers: []),
                                                  golden: GoldenIdentity(reader)) }.contains("--registers"))
    }

    /// By default (`--hardware-draw used`) a hardware experiment strikes a PE whose register
    /// holds data of its operation, in a cycle in which it does: every drawn fault is checked
    /// against the operation's schedule. `array` draws over the whole chip and operation as
    /// campaigns did before, value for value, so on the tiny operations most of its faults
    /// strike PEs the operation never uses.
    @Test func hardwareCampaignsDrawUsedPEsByDefaultAndTheWholeArrayOnRequest() throws {
        let identity = try GoldenIdentity(TraceReader(directory: Self.golden))
        let model = try identity.config.makeModel()
        let chip = identity.config.chip
        var schedules: [String: Schedule] = [:]
        func schedule(_ site: String) throws -> Schedule {
            if let s = schedules[site] { return s }
            let s = try Schedule(shape: try #require(model.operation(named: site)?.gemm), config: chip)
            schedules[site] = s
            return s
        }
        let used = try CampaignPlan(parameters: CampaignParameters(experiments: 1, seed: 5, kinds: [.hardware]), golden: identity)
        #expect(used.parameters.hardwareDrawing == .used)
        let drawn = (0..<400).map(used.experiment)
        for e in drawn {
            let f = try #require(e.spec.hardware)
            let s = try schedule(e.spec.site)
            // The PE lies in a tile of a pass on its MXU (the partial sum also in the rows a
            // tile leaves empty: the sum passes through them).
            let tiles = s.passes.filter { $0.mxu == f.mxu && f.column < $0.columnRange.count && (f.register == .partialSum || f.row < $0.rowRange.count) }
            #expect(!tiles.isEmpty, "\(f) in \(e.spec.site)")
            // A flip's cycle falls inside one of those passes, from its load to the PE's last MAC.
            if case .transient(let cycle) = f.kind {
                #expect(tiles.contains { cycle >= $0.loadStart && cycle <= $0.streamStart + $0.streamCount - 1 + f.row + f.column }, "\(f) in \(e.spec.site)")
            }
            #expect(s.uses(f), "\(f) in \(e.spec.site)")
        }
        #expect(drawn == (0..<400).map(used.experiment))
        #expect(Set(drawn.compactMap { $0.spec.hardware.map { [$0.row, $0.column] } }).count > 10)
        #expect(Set(drawn.compactMap { $0.spec.hardware?.register }) == Set(HardwareFault.Register.allCases))

        let array = try CampaignPlan(parameters: CampaignParameters(experiments: 1, seed: 5, kinds: [.hardware], hardwareDraw: .array), golden: identity)
        #expect(array.parameters.hardwareDraw == nil && array.parameters.hardwareDrawing == .array)
        let wide = (0..<400).map(array.experiment)
        let unused = try wide.filter { !(try schedule($0.spec.site)).uses(try #require($0.spec.hardware)) }
        #expect(unused.count > 200, "\(unused.count) of 400 array draws strike an unused PE or cycle")
        // `array` is the draw of campaigns written before the option, value for value.
        for (i, e) in wide.enumerated() {
            var rng = CounterRNG(seed: 5, purpose: .faultSampling, i, 0, 0x4341_4D50)
            _ = rng.nextInt(below: 1)
            let step = array.steps.first + rng.nextInt(below: array.steps.last - array.steps.first + 1)
            let site = array.hardwareSites[rng.nextInt(below: array.hardwareSites.count)]
            let replica = array.replicas[rng.nextInt(below: array.replicas.count)]
            let register = HardwareFault.Register.allCases[rng.nextInt(below: 3)]
            let flip = HardwareFaultClass.allCases[rng.nextInt(below: 2)] == .flip
            let (mxu, row, column) = (rng.nextInt(below: chip.mxuCount), rng.nextInt(below: chip.rows), rng.nextInt(below: chip.columns))
            let bit = rng.nextInt(below: HardwareFault.width(of: register, precision: identity.config.precision))
            let kind: HardwareFault.Kind = flip ? .transient(cycle: rng.nextInt(below: try schedule(site.name).cycles)) : .stuckAt(value: rng.nextInt(below: 2))
            #expect(e.spec == InjectionSpec(workload: identity.config.workload, site: site.name, faultModel: nil, replica: replica, globalStep: step,
                                            hardware: HardwareFault(mxu: mxu, row: row, column: column, register: register, bit: bit, kind: kind)))
        }
    }

    /// The hardware draw is part of the campaign: resuming with the other one is refused
    /// naming it, and a `campaign.json` written before the option (no `hardwareDraw`) reads as
    /// `array`, the draw it was made with. Results record what each fault found and changed.
    @Test func resumingWithAnotherHardwareDrawIsRefusedAndOldCampaignsReadAsArray() throws {
        let p = CampaignParameters(experiments: 2, seed: 5, stepsAfterInjection: 0, kinds: [.hardware])
        let dir = Self.scratch("hw-draw")
        let r = try CampaignRunner.run(golden: Self.golden, parameters: p, out: dir, resume: false)
        #expect(r.results.count == 2)
        #expect(r.results.allSatisfy { $0.peInUse == true && $0.activated != nil && $0.bitFormat != nil && $0.goldenValues == nil && $0.bits == nil })
        var q = p
        q.hardwareDraw = nil
        let before = try Data(contentsOf: URL(fileURLWithPath: ResultsLog.path(dir)))
        let refused = Self.error { _ = try CampaignRunner.run(golden: Self.golden, parameters: q, out: dir, resume: true) }
        #expect(refused.contains("holds another campaign") && refused.contains("hardware-draw: array vs used"), "\(refused)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: ResultsLog.path(dir))) == before)

        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CampaignManifest.path(dir)))) as? [String: Any])
        var parameters = try #require(json["parameters"] as? [String: Any])
        #expect(parameters["hardwareDraw"] as? String == "used")
        parameters["hardwareDraw"] = nil
        json["parameters"] = parameters
        let old = try CampaignJSON.decoder.decode(CampaignManifest.self, from: try JSONSerialization.data(withJSONObject: json))
        #expect(old.parameters.hardwareDrawing == .array && old.parameters == CampaignParameters(experiments: 2, seed: 5, stepsAfterInjection: 0, kinds: [.hardware], hardwareDraw: .array))
        // Software campaigns store no draw: their identity is what it was.
        #expect(!String(decoding: try CampaignJSON.encode(Self.parameters), as: UTF8.self).contains("hardwareDraw"))
    }

    /// Result lines written before the injection facts existed still read (the fields absent);
    /// new software results give the golden value of every position and how many changed.
    @Test func softwareResultsRecordGoldenValuesAndOldLinesStillRead() throws {
        for result in Self.serial.results {
            let positions = result.spec.positions?.count ?? 0
            #expect(result.goldenValues?.count == positions && positions > 0)
            #expect((0...positions).contains(result.activated ?? -1) && result.peInUse == nil)
            if let model = result.spec.faultModel, model.flipsBit {
                #expect(result.bits?.count == positions && result.bitFormat == .float32)
            } else {
                #expect(result.bits == nil && result.bitFormat == nil)
            }
        }
        let line = try #require(Self.serial.results.first?.canonicalLine)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for key in ["goldenValues", "bits", "bitFormat", "activated", "peInUse"] { object[key] = nil }
        let old = try CampaignJSON.decoder.decode(ExperimentResult.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(old.goldenValues == nil && old.activated == nil && old.bits == nil && old.index == Self.serial.results.first?.index)
    }

    /// Workers asking for the same golden test accuracy at once share one evaluation.
    @Test func concurrentGoldenEvaluationsOfOneStepRunOnce() throws {
        let golden = try GoldenReference(restorer: TraceRestorer(reader: TraceReader(directory: Self.golden)))
        let values = ResultBox()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in values.add(try? golden.testAccuracy(at: 5)) }
        #expect(values.all.count == 4 && Set(values.all.map { $0?.bitPattern }).count == 1 && values.all.allSatisfy { $0 != nil })
        #expect(golden.evaluations == 1)
        _ = try golden.testAccuracy(at: 6)
        #expect(golden.evaluations == 2)
    }

    @Test func badInputFailsClearlyAndOverwritesNothing() throws {
        let p = Self.parameters
        func run(_ q: CampaignParameters, out: String = CampaignTests.scratch("bad"), resume: Bool = false) -> String {
            Self.error { _ = try CampaignRunner.run(golden: Self.golden, parameters: q, out: out, resume: resume) }
        }
        #expect(Self.error { _ = try CampaignParameters.faultModels(["RD", "ZER0"]) }.contains("unknown fault model 'ZER0'"))
        #expect(Self.error { _ = try CampaignParameters.phases(["sideways"]) }.contains("unknown phase 'sideways'"))
        var q = p
        q.layers = ["conv9"]
        #expect(run(q).contains("unknown layer 'conv9'"))
        q.layers = ["dense_grad_wt"]
        q.phases = [.forward]
        #expect(run(q).contains("contradictory filters: --phases forward excludes every site of --layers dense_grad_wt"))
        q = p
        q.stepsAfterInjection = 16
        #expect(run(q).contains("has 16 steps; --steps-after-injection 16 needs at least 17"))
        q = p
        q.steps = StepRange(first: 10, last: 15)
        #expect(run(q).contains("the last injectable step is 13"))
        q = p
        q.replicas = [2]
        #expect(run(q).contains("replica 2 does not exist"))
        #expect(!FileManager.default.fileExists(atPath: Self.root + "/bad"))

        // A non-empty --out without --resume; --resume with other parameters; nothing changes.
        let dir = Self.serial.directory
        let before = try [CampaignManifest.path(dir), ResultsLog.path(dir)].map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        #expect(run(p, out: dir).contains("already exists and is not empty (use --resume"))
        q = p
        q.seed = 12
        #expect(run(q, out: dir, resume: true).contains("holds another campaign") && run(q, out: dir, resume: true).contains("seed: 12 vs 11"))
        q = p
        q.sampling = .reference
        let sampling = run(q, out: dir, resume: true)
        #expect(sampling.contains("holds another campaign") && sampling.contains("sampling: reference vs all"), "\(sampling)")
        #expect(try [CampaignManifest.path(dir), ResultsLog.path(dir)].map { try Data(contentsOf: URL(fileURLWithPath: $0)) } == before)
        #expect(run(p, out: Self.scratch("nothing"), resume: true).contains("no such campaign directory"))

        // A results file from another campaign in a directory: named by file and line.
        q = p
        q.experiments = 1
        q.stepsAfterInjection = 0
        let other = try CampaignRunner.run(golden: Self.golden, parameters: q, out: Self.scratch("other"), resume: false)
        try FileManager.default.removeItem(atPath: ResultsLog.path(other.directory))
        try FileManager.default.copyItem(atPath: ResultsLog.path(dir), toPath: ResultsLog.path(other.directory))
        let message = run(q, out: other.directory, resume: true)
        #expect(message.contains("results.jsonl:1: experiment") && message.contains("belongs to campaign \(Self.serial.manifest.id)"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: ResultsLog.path(other.directory))) == before[1])
        #expect(Self.error { _ = try CampaignMerge.merge([dir, other.directory], out: Self.scratch("mixed")) }.contains("is not a shard of the campaign"))
    }

    @Test func experimentDrawsDependOnlyOnSeedAndIndex() throws {
        let identity = try GoldenIdentity(TraceReader(directory: Self.golden))
        let small = try CampaignPlan(parameters: CampaignParameters(experiments: 10, seed: 5), golden: identity)
        let large = try CampaignPlan(parameters: CampaignParameters(experiments: 5000, seed: 5), golden: identity)
        #expect((0..<10).map(small.experiment) == (0..<10).map(large.experiment))
        let other = try CampaignPlan(parameters: CampaignParameters(experiments: 10, seed: 6), golden: identity)
        #expect((0..<10).map(small.experiment) != (0..<10).map(other.experiment))
        // Over many draws every candidate shows up, and nothing outside the filters does.
        let draws = (0..<3000).map { large.experiment($0).spec }
        #expect(Set(draws.map(\.faultModel)) == Set(FaultModel.allCases))
        #expect(Set(draws.map(\.site)) == Set(identity.sites))
        #expect(Set(draws.map(\.replica)) == [0, 1] && Set(draws.compactMap(\.globalStep)) == Set(0...15))
        let filtered = try CampaignPlan(parameters: CampaignParameters(experiments: 1, seed: 5, stepsAfterInjection: 3, faultModels: [.ZERO, .RD],
                                                                       phases: [.backward], layers: ["conv1", "dense"], replicas: [1]),
                                        golden: identity)
        let f = (0..<500).map { filtered.experiment($0).spec }
        #expect(Set(f.map(\.site)) == ["conv1_grad_wt", "dense_grad_in", "dense_grad_wt"])
        #expect(Set(f.map(\.faultModel)) == [.ZERO, .RD] && Set(f.map(\.replica)) == [1] && f.allSatisfy { ($0.globalStep ?? 99) <= 12 })
        #expect(f.allSatisfy { $0.seed != nil && $0.positions == nil })
        // Filters given in another order are the same campaign.
        #expect(CampaignParameters(experiments: 1, faultModels: [.RD, .ZERO]) == CampaignParameters(experiments: 1, faultModels: [.ZERO, .RD, .RD]))
    }

    /// `--sampling reference`: the convolutions' forward operations (the stem included) and
    /// their `_grad_in` operations, each drawn given enough experiments; never a `_grad_wt`
    /// operation, never the dense layer; narrowed by the other filters like `all`.
    @Test func referenceSamplingDrawsConvolutionsAndTheirInputGradientsOnly() throws {
        let identity = try GoldenIdentity(TraceReader(directory: Self.golden))
        let model = try identity.config.makeModel()
        let convolutions = model.operations.filter { $0.site.kind == .forward && $0.site.layer != "dense" }.map(\.site.layer)
        #expect(convolutions.count == 20 && convolutions.first == "conv1")
        // The stem has no `_grad_in` (nothing consumes the image's gradient).
        let expected = Set(convolutions + convolutions.dropFirst().map { $0 + "_grad_in" })
        #expect(Set(model.referenceSamplingSites.map(\.name)) == expected && model.referenceSamplingSites.count == 39)
        let plan = try CampaignPlan(parameters: CampaignParameters(experiments: 1, seed: 5, sampling: .reference), golden: identity)
        #expect(plan.sites == model.referenceSamplingSites)
        let draws = (0..<3000).map { plan.experiment($0).spec.site }
        #expect(Set(draws) == expected)
        #expect(!draws.contains { $0.hasSuffix("_grad_wt") || $0.hasPrefix("dense") })
        // Hardware experiments draw from the same sites.
        let hardware = try CampaignPlan(parameters: CampaignParameters(experiments: 1, seed: 5, sampling: .reference, kinds: [.hardware]), golden: identity)
        #expect(Set((0..<3000).map { hardware.experiment($0).spec.site }) == expected)

        // Combined with the filters.
        func sites(_ p: CampaignParameters) throws -> Set<String> { Set(try CampaignPlan(parameters: p, golden: identity).sites.map(\.name)) }
        #expect(try sites(CampaignParameters(experiments: 1, phases: [.backward], sampling: .reference)) == Set(convolutions.dropFirst().map { $0 + "_grad_in" }))
        #expect(try sites(CampaignParameters(experiments: 1, phases: [.forward], sampling: .reference)) == Set(convolutions))
        #expect(try sites(CampaignParameters(experiments: 1, sampling: .reference, layers: ["conv1", "basicblock_1_basic_0_conv2"]))
                == ["conv1", "basicblock_1_basic_0_conv2", "basicblock_1_basic_0_conv2_grad_in"])
        #expect(Self.error { _ = try sites(CampaignParameters(experiments: 1, sampling: .reference, layers: ["dense", "conv1_grad_wt"])) }
                .contains("contradictory filters: --sampling reference excludes every site of --layers conv1_grad_wt,dense (dense, dense_grad_in, dense_grad_wt, conv1_grad_wt)"))
        #expect(Self.error { _ = try sites(CampaignParameters(experiments: 1, phases: [.backward], sampling: .reference, layers: ["conv1"])) }
                .contains("contradictory filters: --phases backward excludes every site of --layers conv1 (conv1)"))
        #expect(Self.error { _ = try sites(CampaignParameters(experiments: 1, sampling: .reference, layers: ["conv9"])) }.contains("unknown layer 'conv9'"))

        // `all` is what campaigns drew before the option: the same parameters (and campaign
        // identity: nothing is stored for it), every site.
        #expect(CampaignParameters(experiments: 1, sampling: .all) == CampaignParameters(experiments: 1))
        #expect(!String(decoding: try CampaignJSON.encode(CampaignParameters(experiments: 1)), as: UTF8.self).contains("sampling"))
        #expect(String(decoding: try CampaignJSON.encode(CampaignParameters(experiments: 1, sampling: .reference)), as: UTF8.self).contains("\"sampling\":\"reference\""))
        #expect(try CampaignPlan(parameters: CampaignParameters(experiments: 1, sampling: .all), golden: identity).sites == model.sites)
    }

    /// Two processes never work in one campaign directory: while one holds it, a resume (or a
    /// fresh run) there is refused and nothing in it changes.
    @Test func aCampaignDirectoryInUseIsRefused() throws {
        let dir = Self.serial.directory
        let results = FileManager.default.contents(atPath: ResultsLog.path(dir))
        try {
            let lock = try DirectoryLock(directory: dir)
            let message = Self.error { _ = try CampaignRunner.run(golden: Self.golden, parameters: Self.parameters, out: dir, resume: true) }
            #expect(message.contains("in use by another tpufi process"), "\(message)")
            withExtendedLifetime(lock) {}
        }()
        #expect(FileManager.default.contents(atPath: ResultsLog.path(dir)) == results && results != nil)
        // Released: the resume goes through (nothing left to run).
        let again = try CampaignRunner.run(golden: Self.golden, parameters: Self.parameters, out: dir, resume: true)
        #expect(again.ranNow == 0 && again.results.count == 6)
    }

    /// A campaign.json or result line whose number does not fit names the field and the file.
    @Test func outOfRangeCampaignFieldsAreNamed() throws {
        let dir = Self.scratch("fields")
        try FileManager.default.copyItem(atPath: Self.serial.directory, toPath: dir)
        let path = CampaignManifest.path(dir)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: #""experiments" : 6"#, with: #""experiments" : 1e30"#).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Self.error { _ = try CampaignManifest.load(directory: dir) }
                == "\(path): not a campaign manifest: field 'parameters.experiments': 1e30 is outside -9223372036854775808...9223372036854775807")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let results = ResultsLog.path(dir)
        let lines = try String(contentsOfFile: results, encoding: .utf8).split(separator: "\n").map(String.init)
        let bad = lines[1].replacingOccurrences(of: #""stepsRun":"#, with: #""stepsRun":-1e30,"was":"#)
        try (([lines[0], bad] + lines.dropFirst(2)).joined(separator: "\n") + "\n").write(toFile: results, atomically: true, encoding: .utf8)
        #expect(Self.error { _ = try ResultsLog.read(directory: dir) }.hasPrefix("\(results):2: not a result line: field 'stepsRun': -1e30 is outside"))
    }

    @Test func shardsPartitionTheIndices() throws {
        let shards = try (0..<3).map { try Shard(index: $0, count: 3) }
        #expect(shards.flatMap { $0.indices(of: 10) }.sorted() == Array(0..<10))
        #expect(shards[1].indices(of: 10) == [1, 4, 7])
        for n in 0...12 { for count in 1...4 { for i in 0..<count {
            let shard = try Shard(index: i, count: count)
            #expect(shard.count(of: n) == shard.indices(of: n).count)
        } } }
        // Drawn lazily: a huge campaign is counted, not listed.
        #expect(Shard.all.count(of: 100_000_000) == 100_000_000 && Array(Shard.all.stride(of: 100_000_000).prefix(3)) == [0, 1, 2])
        #expect(Self.error { _ = try Shard(argument: "3/3") }.contains("0 <= i < n"))
        #expect(Self.error { _ = try Shard(argument: "x") }.contains("give i/n"))
    }
}

@Suite struct WilsonTests {
    /// Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score,
    /// no continuity correction).
    @Test func matchesPublishedIntervals() {
        func close(_ k: Int, _ n: Int, _ low: Double, _ high: Double) -> Bool {
            let w = Wilson.interval(successes: k, trials: n)
            return abs(w.low - low) < 5e-5 && abs(w.high - high) < 5e-5
        }
        #expect(close(81, 263, 0.2553, 0.3662))
        #expect(close(15, 148, 0.0624, 0.1605))
        #expect(close(0, 20, 0, 0.1611))
        #expect(close(1, 29, 0.0061, 0.1718))
        #expect(close(5, 10, 0.2366, 0.7634))
        #expect(Wilson.interval(successes: 10, trials: 10).high == 1 && Wilson.interval(successes: 0, trials: 10).low == 0)
        #expect(Wilson.interval(successes: 0, trials: 0).low == 0 && Wilson.interval(successes: 0, trials: 0).high == 1)
    }
}

/// Values collected from several threads.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var all: [Float?] = []
    func add(_ v: Float?) { lock.lock(); all.append(v); lock.unlock() }
}
