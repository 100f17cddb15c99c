import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct ReplayCommandTests {
    static let golden: String = {
        let d = Scratch.path("cli-replay")
        _ = try? tpufi(["record", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16", "--steps", "12", "--replicas", "2", "--out", d])
        return d
    }()

    static let spec = """
    model,resnet18
    stage,fwrd_inject
    fmodel,ZERO
    target_worker,0
    target_layer,dense
    target_epoch,0
    target_step,3
    inj_pos,1/4
    inj_values,0
    learning_rate,0.001
    seed,7
    """

    @Test func replaysAndReportsJSON() throws {
        let spec = try temporaryFile("zero.csv", Self.spec)
        let out = Self.golden + "-faulty"
        try? FileManager.default.removeItem(atPath: out)
        let r = try tpufi(["replay", "--golden", Self.golden, "--spec", spec, "--steps-after-injection", "3", "--out", out, "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let steps = json["stepsRun"] as? Int ?? 0
        #expect(json["outcome"] is String)
        // Either it ran the injected step and 3 more, or it stopped early and says why.
        #expect(steps == 4 || (json["stoppedEarly"] as? String).map { ["masked-exact", "non-finite"].contains($0) } == true)
        let injection = try #require(json["injection"] as? [String: Any])
        #expect(injection["globalStep"] as? Int == 3 && injection["site"] as? String == "dense" && injection["faultModel"] as? String == "ZERO")
        #expect((json["firstDivergence"] as? [String: Any])?["site"] as? String == "dense")
        // What the fault found there: one golden value, and whether writing 0 changed it.
        #expect((injection["goldenValues"] as? [Any])?.count == 1 && [0, 1].contains(injection["activated"] as? Int ?? -1))
        let classify = try tpufi(["classify", "--golden-log", "/nonexistent.txt", "--faulty-log", "/nonexistent2.txt"])
        #expect(classify.status != 0 && classify.err.contains("/nonexistent.txt"))
    }

    /// `inspect` of a faulty trace says it is one, what was injected where, from which step it
    /// forked and which steps it holds: not "N of N" counted from step 0.
    @Test func inspectOfAFaultyTraceNamesTheForkAndTheFault() throws {
        let spec = try temporaryFile("inspect-zero.csv", Self.spec)
        let out = Self.golden + "-inspect"
        try? FileManager.default.removeItem(atPath: out)
        let r = try tpufi(["replay", "--golden", Self.golden, "--spec", spec, "--steps-after-injection", "2", "--out", out])
        #expect(r.status == 0, "\(r.err)")
        let i = try tpufi(["inspect", out])
        #expect(i.status == 0, "\(i.err)")
        #expect(i.out.contains("faulty run forked from \(Self.golden) at global step 3 (epoch 0, step 3)"), "\(i.out)")
        #expect(i.out.contains("injection: ZERO into the output of dense, replica 0, global step 3: "), "\(i.out)")
        // Three steps, or fewer when the run stopped early (masked-exact, non-finite).
        #expect(i.out.contains("steps: global steps 3-"), "\(i.out)")
        #expect(i.out.contains(", run complete"), "\(i.out)")
        #expect(i.out.contains("snapshot steps: 3"), "\(i.out)")
        #expect(!i.out.contains(" of 6 "), "\(i.out)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(try tpufi(["inspect", out, "--json"]).out.utf8)) as? [String: Any])
        #expect(json["firstStep"] as? Int == 3 && (json["lastStep"] as? Int).map { (3...5).contains($0) } == true)
        #expect((json["injection"] as? [String: Any])?["site"] as? String == "dense")
        // A golden trace keeps its "N of N" line and has no injection.
        let g = try tpufi(["inspect", Self.golden])
        #expect(g.out.contains("steps: 12 of 12 (complete)") && !g.out.contains("injection:"), "\(g.out)")
    }

    @Test func badSpecsExitNonZeroWithTheReason() throws {
        let other = try temporaryFile("other.csv", Self.spec.replacingOccurrences(of: "model,resnet18", with: "model,resnet18_sgd"))
        let r = try tpufi(["replay", "--golden", Self.golden, "--spec", other, "--out", Self.golden + "-x"])
        #expect(r.status != 0 && r.err.contains("the spec is for workload 'resnet18_sgd'"))
        let typo = try temporaryFile("typo.csv", Self.spec.replacingOccurrences(of: "fmodel,ZERO", with: "fmodel,ZER0"))
        let t = try tpufi(["replay", "--golden", Self.golden, "--spec", typo, "--out", Self.golden + "-y"])
        #expect(t.status != 0 && t.err.contains("typo.csv:3: unknown fault model 'ZER0'"))
        #expect(!FileManager.default.fileExists(atPath: Self.golden + "-x") && !FileManager.default.fileExists(atPath: Self.golden + "-y"))
    }

    /// The "injected" line says what a fault found and changed: a flipped bit with the golden
    /// and new value and the elements changed; a hardware fault in a PE the operation never
    /// uses, that nothing changed. `inspect` of the faulty trace prints the same facts.
    @Test func theInjectedLineSaysWhatTheFaultChanged() throws {
        let flip = try temporaryFile("flip.json", #"{"workload": "resnet18", "site": "dense", "faultModel": "RBFLIP", "replica": 1, "globalStep": 2, "seed": 4}"#)
        let out = Self.golden + "-flip"
        try? FileManager.default.removeItem(atPath: out)
        let r = try tpufi(["replay", "--golden", Self.golden, "--spec", flip, "--steps-after-injection", "0", "--out", out])
        #expect(r.status == 0, "\(r.err)")
        let line = try #require(r.out.split(separator: "\n").first { $0.hasPrefix("injected RBFLIP") })
        #expect(line.contains(": bit ") && line.contains(" of float32, golden ") && line.contains(" -> ") && line.hasSuffix(", 1 of 1 element(s) changed"), "\(line)")
        let inspect = try tpufi(["inspect", out])
        #expect(inspect.status == 0 && inspect.out.contains("injection: RBFLIP into the output of dense, replica 1, global step 2"), "\(inspect.out)")
        #expect(inspect.out.contains(String(line.split(separator: ": ").last ?? "")))

        let unused = try temporaryFile("unused.json", #"{"workload": "resnet18", "site": "conv1", "replica": 0, "globalStep": 2, "hardware": {"row": 127, "column": 127, "register": "weight", "bit": 14, "stuckAt": 1}}"#)
        let hw = Self.golden + "-unused"
        try? FileManager.default.removeItem(atPath: hw)
        let u = try tpufi(["replay", "--golden", Self.golden, "--spec", unused, "--steps-after-injection", "0", "--out", hw, "--json"])
        #expect(u.status == 0, "\(u.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(u.out.utf8)) as? [String: Any])
        let injection = try #require(json["injection"] as? [String: Any])
        #expect(injection["peInUse"] as? Bool == false && injection["activated"] as? Int == 0 && injection["bitFormat"] as? String == "bfloat16")
        let text = try tpufi(["inspect", hw])
        #expect(text.out.contains("PE(127,127) of MXU 0 not used by this operation: nothing changed"), "\(text.out)")
        let inspected = try tpufi(["inspect", hw, "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(inspected.out.utf8)) as? [String: Any])
        #expect((summary["injection"] as? [String: Any])?["peInUse"] as? Bool == false)
    }
}
