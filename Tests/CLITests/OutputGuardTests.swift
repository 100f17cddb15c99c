import Foundation
import Testing
import TestSupport

/// No command writes over its own inputs.
@Suite struct OutputGuardTests {
    @Test func exportRefusesToWriteOverTheTraceItReads() throws {
        let golden = ReplayCommandTests.golden
        let frames = golden + "/frames.tpf"
        let before = FileManager.default.contents(atPath: frames)
        for out in [frames, golden + "/./manifest.json", golden + "/../" + URL(fileURLWithPath: golden).lastPathComponent + "/frames.tpf"] {
            let r = try tpufi(["export", golden, "--step", "1", "--out", out])
            #expect(r.status == 1 && r.err.contains("is an input of this command"), "\(out): \(r.err)")
        }
        #expect(FileManager.default.contents(atPath: frames) == before && before != nil)
        let missing = try tpufi(["export", golden, "--step", "1", "--out", "/nonexistent-dir/state.safetensors"])
        #expect(missing.status == 1 && missing.err.contains("/nonexistent-dir/state.safetensors: cannot write:") && !missing.err.contains("NSCocoaErrorDomain"), "\(missing.err)")
    }
}
