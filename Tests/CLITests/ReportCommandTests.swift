import Foundation
import Testing
import TestSupport

@Suite struct ReportCommandTests {
    @Test func reportWritesTheFilePrintsItsPathAndFailsInOneLine() throws {
        let root = Scratch.path("cli-report")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let study = root + "/study"
        try FileManager.default.createDirectory(atPath: study, withIntermediateDirectories: true)
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ReplayerTests/Fixtures/study.json").path
        try FileManager.default.copyItem(atPath: fixture, toPath: study + "/study.json")

        let r = try tpufi(["report", study])
        #expect(r.status == 0 && r.out == study + "/report.html\n", "\(r.err)")
        let html = try String(contentsOfFile: study + "/report.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("Recovery curves"))
        let j = try tpufi(["report", study, "--out", root + "/s.html", "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any])
        #expect(json["kind"] as? String == "optimizer-study" && json["path"] as? String == root + "/s.html")
        #expect(try String(contentsOfFile: root + "/s.html", encoding: .utf8) == html)

        let bad = try tpufi(["report", root])
        #expect(bad.status != 0 && bad.err.contains("neither a campaign (no campaign.json) nor an optimizer study"), "\(bad.err)")
    }
}
