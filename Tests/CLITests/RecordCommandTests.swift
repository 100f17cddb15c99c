import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct RecordCommandTests {
    static let args = ["--scale", "tiny", "--dataset", "synthetic:train=128,test=16", "--steps", "40", "--replicas", "2", "--threads", "1"]

    static func dir(_ name: String) -> String {
        Scratch.path("cli-rec-\(name)")
    }

    /// Kills a real recording with SIGKILL mid-run, checks the trace is reported incomplete,
    /// resumes it and compares it byte for byte with an uninterrupted recording.
    @Test func aKilledRecordingResumesToTheSameTrace() throws {
        let golden = Self.dir("golden"), killed = Self.dir("killed")
        let g = try tpufi(["record"] + Self.args + ["--out", golden])
        #expect(g.status == 0, "\(g.err)")
        let goldenFrames = FileManager.default.contents(atPath: golden + "/frames.tpf") ?? Data()

        let child = try startTpufi(["record"] + Self.args + ["--out", killed])
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && child.isRunning {
            let size = (try? FileManager.default.attributesOfItem(atPath: killed + "/frames.tpf")[.size] as? Int) ?? 0
            if size > goldenFrames.count / 3 { break }
            usleep(2_000)
        }
        kill(child.pid, SIGKILL)
        let ended = try child.wait()
        #expect(ended.signaled, "the recording finished before it could be killed")

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

    /// Root with a kernel that mounts tmpfs (the CI machine): the full-disk test can run.
    static let canMountSmallDisk: Bool = {
        guard getuid() == 0 else { return false }
        let probe = dir("mount-probe")
        try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: probe) }
        guard mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0 else { return false }
        return umount(probe) == 0
    }()

    /// A disk that fills up mid-recording: a clear error naming the file, nothing recorded
    /// before is lost (the trace reads as incomplete up to the last whole step), and once
    /// there is room again `--resume` finishes it to the same bytes as an uninterrupted run.
    @Test(.enabled(if: canMountSmallDisk, "needs root and tmpfs mounts"))
    func aFullDiskStopsTheRecordingClearlyAndItResumes() throws {
        let golden = Self.dir("disk-golden"), disk = Self.dir("disk")
        defer {
            umount(disk)
            for d in [golden, disk] { try? FileManager.default.removeItem(atPath: d) }
        }
        let args = ["--scale", "tiny", "--dataset", "synthetic:train=64,test=16", "--steps", "8", "--replicas", "2", "--threads", "1"]
        #expect(try tpufi(["record"] + args + ["--out", golden]).status == 0)
        let goldenFrames = FileManager.default.contents(atPath: golden + "/frames.tpf") ?? Data()
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        // Room for about half of the trace.
        #expect(mount("tmpfs", disk, "tmpfs", 0, "size=\(goldenFrames.count / 2 / 4096 * 4096)") == 0)
        let full = try tpufi(["record"] + args + ["--out", disk + "/trace"])
        #expect(full.status != 0)
        #expect(full.err.contains(disk + "/trace/frames.tpf") && full.err.contains("No space left on device"), "\(full.err)")
        let partial = try tpufi(["inspect", disk + "/trace", "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(partial.out.utf8)) as? [String: Any], "\(partial.err)")
        let steps = summary["steps"] as? Int ?? 0
        #expect(steps > 0 && steps < 8 && summary["complete"] as? Bool == false)
        // More room: the recording resumes from its last whole step to the same trace.
        #expect(mount("tmpfs", disk, "tmpfs", UInt(MS_REMOUNT), "size=\(2 * goldenFrames.count)") == 0)
        let resumed = try tpufi(["record", "--resume", "--out", disk + "/trace"])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(FileManager.default.contents(atPath: disk + "/trace/frames.tpf") == goldenFrames)
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
