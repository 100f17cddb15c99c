import Foundation
import Testing
import TestSupport

/// A format-2 trace recorded by tpufi before the model interface (`Fixtures/format2-tiny`,
/// see its README): today's tpufi inspects, replays and bisects it to the same output, and
/// writes byte-identical faulty traces.
@Suite(.serialized) struct Format2FixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/format2-tiny").path

    /// A copy of the fixture to work in (the commands write next to the golden trace).
    static let work: String = {
        let dir = Scratch.path("format2")
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir + "/golden", withIntermediateDirectories: true)
        for file in ["golden/manifest.json", "golden/frames.tpf", "sw.json", "hw.json"] {
            try! FileManager.default.copyItem(atPath: fixture + "/" + file, toPath: dir + "/" + file)
        }
        return dir
    }()

    static func expected(_ name: String) throws -> String {
        try String(contentsOfFile: fixture + "/" + name, encoding: .utf8)
    }

    static func sha256(_ path: String) throws -> String {
        let r = Process()
        r.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        r.arguments = [path]
        r.currentDirectoryURL = URL(fileURLWithPath: work)
        let out = Pipe()
        r.standardOutput = out
        try r.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        r.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func inspectPrintsWhatTheOldToolPrinted() throws {
        let r = try tpufi(["inspect", "golden"], in: Self.work)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == (try Self.expected("inspect.txt")))
    }

    @Test(arguments: ["sw", "hw"])
    func replayAndBisectGiveTheOldOutputAndTraces(kind: String) throws {
        try? FileManager.default.removeItem(atPath: Self.work + "/faulty_\(kind)")
        let r = try tpufi(["replay", "--golden", "golden", "--spec", "\(kind).json", "--out", "faulty_\(kind)", "--threads", "1"], in: Self.work)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == (try Self.expected("replay_\(kind).txt")))
        let digests = try Self.expected("faulty_frames.sha256").split(separator: "\n").map(String.init)
        let line = try Self.sha256("faulty_\(kind)/frames.tpf").trimmingCharacters(in: .newlines)
        #expect(digests.contains(line), "\(line) is not among \(digests)")
        let b = try tpufi(["bisect", "golden", "faulty_\(kind)"], in: Self.work)
        #expect(b.status == 0, "\(b.err)")
        let shown = b.out.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("cost:") }.joined(separator: "\n")
        #expect(shown == (try Self.expected("bisect_\(kind).txt")))
    }
}
