import Foundation
import Testing

@Suite(.serialized) struct RecordCommandTests {
    static let args = ["--scale", "tiny", "--dataset", "synthetic:train=128,test=16", "--steps", "40", "--replicas", "2", "--threads", "1"]

    static func dir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("tpufi-cli-rec-\(ProcessInfo.processInfo.processIdentifier)-\(name)").path
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    /// Kills a real recording with SIGKILL mid-run, checks the trace is reported incomplete,
    /// resumes it and compares it byte for byte with an uninterrupted recording.
    @Test func aKilledRecordingResumesToTheSameTrace() throws {
        let golden = Self.dir("golden"), killed = Self.dir("killed")
        let g = try tpufi(["record"] + Self.args + ["--out", golden])
        #expect(g.status == 0, "\(g.err)")
        let goldenFrames = FileManager.default.contents(atPath: golden + "/frames.tpf") ?? Data()

        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let exe = [bin, bin.deletingLastPathComponent()].map { $0.appendingPathComponent("tpufi") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }!
        let process = Process()
        process.executableURL = exe
        process.arguments = ["record"] + Self.args + ["--out", killed]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: killed + "/frames.tpf")[.size] as? Int) ?? 0
            if size > goldenFrames.count / 3 { break }
            usleep(2_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the recording finished before it could be killed")

        let inspect = try tpufi(["inspect", killed])
        #expect(inspect.status == 0 && inspect.out.contains("INCOMPLETE"), "\(inspect.out)\(inspect.err)")
        let resumed = try tpufi(["record", "--resume", "--out", killed])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(FileManager.default.contents(atPath: killed + "/frames.tpf") == goldenFrames)
        let json = try tpufi(["inspect", killed, "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        #expect(summary["steps"] as? Int == 40 && summary["complete"] as? Bool == true)
        #expect((summary["stateDigests"] as? [String])?.count == 40 && (summary["testAccuracy"] as? [Double])?.count == 3)
        #expect((summary["rawStateBytes"] as? Int ?? 0) > (summary["storedBytes"] as? Int ?? .max))
    }

    @Test func badInputFailsClearly() throws {
        let missing = try tpufi(["inspect", "/nonexistent/trace"])
        #expect(missing.status != 0 && missing.err.contains("/nonexistent/trace"))
        let d = Self.dir("exists")
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: d + "/other"))
        let clash = try tpufi(["record"] + Self.args + ["--out", d])
        #expect(clash.status != 0 && clash.err.contains("not empty"))
        let resumeNothing = try tpufi(["record", "--resume", "--out", Self.dir("none")])
        #expect(resumeNothing.status != 0 && resumeNothing.err.contains("no such trace directory"))
    }
}
