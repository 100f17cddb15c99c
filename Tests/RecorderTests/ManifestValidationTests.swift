import Foundation
import Testing
import TestSupport
@testable import Recorder
import Sim

/// Every manifest field a reader computes with is checked when a trace is opened: a bad value
/// is an error naming the field, never a trap.
@Suite(.serialized) struct ManifestValidationTests {
    static let golden: String = {
        do {
            return try TraceRecorder.record(run: try tinyRun(), dataset: "synthetic:train=64,test=16,shape=16x16x1", steps: 2, policy: .init(),
                                            to: scratch("validation-golden")).directory
        } catch {
            fatalError("cannot record: \(error)")
        }
    }()

    /// The error of opening a copy of the golden trace whose manifest `edit` changed.
    static func error(_ name: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let dir = scratch("validation-\(name)")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: golden, toPath: dir)
        let path = TraceWriter.manifestPath(dir)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        do {
            _ = try TraceReader(directory: dir)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    static func config(_ json: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
        var c = json["config"] as? [String: Any] ?? [:]
        edit(&c)
        json["config"] = c
    }

    @Test func badFieldsAreNamed() throws {
        #expect(try Self.error("same") { _ in } == "no error")
        for field in ["keyframeEvery", "snapshotEvery", "stepsPerEpoch", "plannedSteps"] {
            #expect(try Self.error(field) { $0[field] = 0 }.contains("field '\(field)': 0 is outside 1..."), "\(field)")
        }
        #expect(try Self.error("completed") { $0["completedSteps"] = 3 }.contains("field 'completedSteps': 3 is outside 0...2"))
        #expect(try Self.error("replicas") { Self.config(&$0) { $0["replicas"] = 0 } }.contains("field 'config.replicas'"))
        #expect(try Self.error("rows") {
            Self.config(&$0) { c in var chip = c["chip"] as? [String: Any] ?? [:]; chip["rows"] = 0; c["chip"] = chip }
        }.contains("field 'config.chip': invalid chip configuration: tpu-v2: rows must be 1...16384, got 0"))
        #expect(try Self.error("width") {
            Self.config(&$0) { c in var s = c["scale"] as? [String: Any] ?? [:]; s["baseWidth"] = 1 << 40; c["scale"] = s }
        }.contains("field 'config.scale': the resnet18 configuration's field 'baseWidth' is 1099511627776"))
        // A manifest naming another workload: its parameters are not that model's (the same
        // sites: resnet18_nobn has the same layers), nor are the sites of a shorter name list.
        #expect(try Self.error("workload") { Self.config(&$0) { $0["workload"] = "resnet18_nobn" } }.contains("field 'parameterNames'"))
        #expect(try Self.error("sites") { $0["sites"] = ["conv1"] }.contains("field 'sites': 1 sites that are not those of resnet18 tiny (62)"))
    }

    /// Format 3 states how operation outputs were digested; formats 1 and 2 digested them
    /// element by element, and a manifest saying otherwise is refused rather than compared
    /// against digests taken another way.
    @Test func theOperationDigestMustFitTheFormat() throws {
        let manifest = try TraceReader(directory: Self.golden).manifest
        #expect(manifest.formatVersion == 3 && manifest.outputDigest == .pairLanes && manifest.outputDigests == .pairLanes)
        #expect(try Self.error("digest-missing") { $0["outputDigest"] = nil }
            .contains("field 'outputDigest': missing; format 3 states how operation outputs were digested"))
        #expect(try Self.error("digest-v2") { $0["formatVersion"] = 2 }
            .contains("field 'outputDigest': 'pair-lanes' in format 2, which digests operation outputs element by element"))
        #expect(try Self.error("digest-unknown") { $0["outputDigest"] = "lanes" }.contains("outputDigest"))
        #expect(try Self.error("digest-v2-absent") { $0["formatVersion"] = 2; $0["outputDigest"] = nil } == "no error")
        #expect(try Self.error("digest-v3-element") { $0["outputDigest"] = "element-lanes" } == "no error")

        // A writer refuses, before creating anything, a manifest no reader would accept.
        for (version, digest) in [(2, OutputDigest.pairLanes), (4, .pairLanes)] {
            var m = manifest
            (m.formatVersion, m.outputDigest) = (version, digest)
            let dir = scratch("validation-writer-\(version)")
            try? FileManager.default.removeItem(atPath: dir)
            do {
                _ = try TraceWriter(creating: dir, manifest: m)
                Issue.record("format \(version) with \(digest) was written")
            } catch {
                #expect(error.description.contains(version == 2 ? "field 'outputDigest'" : "trace format version 4"), "\(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir))
        }
    }

    /// A field of the wrong type, out of its type's range or missing is named, with the file,
    /// not reported as "not valid JSON" (Foundation's decoder gives no path for a number that
    /// does not fit).
    @Test func wrongTypedAndOutOfRangeFieldsAreNamedWithTheFile() throws {
        let file = { (name: String) in Self.golden.replacingOccurrences(of: "validation-golden", with: "validation-\(name)") + "/manifest.json: not a valid manifest: " }
        #expect(try Self.error("seed") { Self.config(&$0) { $0["seed"] = -5 } } == file("seed") + "field 'config.seed': -5 is outside 0...18446744073709551615")
        #expect(try Self.error("huge") { Self.config(&$0) { $0["replicas"] = 1e20 } }
                .hasPrefix(file("huge") + "field 'config.replicas': 1"))
        #expect(try Self.error("huge") { Self.config(&$0) { $0["replicas"] = 1e20 } }.contains("is outside -9223372036854775808...9223372036854775807"))
        #expect(try Self.error("fraction") { $0["plannedSteps"] = 2.5 } == file("fraction") + "field 'plannedSteps': 2.5 is not an integer")
        #expect(try Self.error("string") { $0["plannedSteps"] = "two" }.hasPrefix(file("string") + "field 'plannedSteps': "))
        #expect(try Self.error("missing") { $0["timing"] = nil } == file("missing") + "field 'timing': missing")
        #expect(try Self.error("nested") { json in
            var timing = json["timing"] as? [String: Any] ?? [:]
            var layers = timing["layers"] as? [[String: Any]] ?? []
            layers[3]["m"] = 1e300
            timing["layers"] = layers
            json["timing"] = timing
        }.hasPrefix(file("nested") + "field 'timing.layers[3].m': 1"))
        #expect(try Self.error("null") { $0["stepsPerEpoch"] = NSNull() }.hasPrefix(file("null") + "field 'stepsPerEpoch': null"))
    }

    /// A FIFO in place of a trace file is refused at once instead of blocking the open.
    @Test func onlyRegularFilesAreOpenedAsTraces() throws {
        for file in ["frames.tpf", "manifest.json"] {
            let dir = scratch("validation-fifo-\(file)")
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.copyItem(atPath: Self.golden, toPath: dir)
            try FileManager.default.removeItem(atPath: dir + "/" + file)
            #expect(mkfifo(dir + "/" + file, 0o644) == 0)
            #expect(throws: TraceError.io(file: dir + "/" + file, reason: "not a regular file (a FIFO)")) { try TraceReader(directory: dir) }
        }
    }
}
