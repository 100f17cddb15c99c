import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// `tpufi report` on a tiny campaign (synthetic data, 16 golden steps, 8 short experiments,
/// run once and shared) and on the optimizer-study fixture.
@Suite(.serialized) struct ReportTests {
    /// Shared by the tests; under the test process's scratch directory, removed at exit.
    static let root: String = {
        let d = Scratch.path("report")
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func scratch(_ name: String) -> String {
        let d = root + "/" + name
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    /// A campaign with a mix of outcomes: huge-value fault models next to small ones.
    static let campaign: CampaignReport = {
        let golden = TinyGolden.nobnSGD.directory
        let parameters = CampaignParameters(experiments: 8, seed: 5, stepsAfterInjection: 3, faultModels: [.N16_RD, .RD, .ZERO, .INPUT])
        return try! CampaignRunner.run(golden: golden, parameters: parameters, out: scratch("campaign"), resume: false)
    }()

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func studyDirectory() throws -> String {
        let dir = scratch("study")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent("study.json").path, toPath: StudyFile.path(dir))
        return dir
    }

    static func error(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    /// Every `<svg>...</svg>` of `html`.
    static func svgs(_ html: String) -> [String] {
        var out: [String] = []
        var rest = html[...]
        while let start = rest.range(of: "<svg"), let end = rest[start.upperBound...].range(of: "</svg>") {
            out.append(String(rest[start.lowerBound..<end.upperBound]))
            rest = rest[end.upperBound...]
        }
        return out
    }

    final class ParseErrors: NSObject, XMLParserDelegate {
        var error: String?
        func parser(_ parser: XMLParser, parseErrorOccurred parseError: any Error) { error = "\(parseError)" }
    }

    /// The checks every report must pass: SVGs parse as XML, no external reference.
    static func checkWellFormed(_ html: String) {
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        let pictures = svgs(html)
        #expect(pictures.count >= 3)
        for svg in pictures {
            let parser = XMLParser(data: Data(svg.utf8))
            let errors = ParseErrors()
            parser.delegate = errors
            let ok = parser.parse()
            #expect(ok && errors.error == nil, "SVG does not parse (\(errors.error ?? "?")): \(svg.prefix(300))")
        }
        let external = html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
        #expect(!external.contains("http://") && !external.contains("https://"))
        #expect(!html.contains("<script"))
    }

    static func legend(_ html: String) -> String {
        guard let start = html.range(of: "<div class=\"legend\">"), let end = html[start.upperBound...].range(of: "</div>") else { return "" }
        return String(html[start.upperBound..<end.lowerBound])
    }

    @Test func campaignResultsCarryCurvesAndOldLinesStillDecode() throws {
        let results = Self.campaign.results
        for r in results {
            let c = try #require(r.curve)
            #expect(c.count == r.stepsRun && c.steps.first == r.globalStep)
            #expect(c.steps == Array(r.globalStep..<(r.globalStep + r.stepsRun)))
            #expect(c.goldenAccuracy.allSatisfy(\.isFinite) && c.goldenLoss.allSatisfy(\.isFinite))
        }
        // A line written before curves existed: the field is absent, and it decodes.
        let line = try #require(try String(contentsOfFile: ResultsLog.path(Self.campaign.directory), encoding: .utf8).split(separator: "\n").first)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["curve"] != nil)
        object["curve"] = nil
        let old = try CampaignJSON.decoder.decode(ExperimentResult.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(old.curve == nil && old.index == results.sorted { $0.index < $1.index }[0].index)
    }

    @Test func campaignReportIsWellFormedDeterministicAndPrintsTheSummary() throws {
        let dir = Self.campaign.directory
        let (kind, html) = try Report.html(directory: dir)
        #expect(kind == .campaign)
        Self.checkWellFormed(html)
        // Byte-identical when generated again, through the file too.
        let written = try Report.write(directory: dir, to: Self.root + "/again.html")
        #expect(try Data(contentsOf: URL(fileURLWithPath: written.path)) == Data(html.utf8))
        #expect(try Report.write(directory: dir).path == dir + "/report.html")

        // The numbers printed are summary.json's: every overall and phase share in the bars,
        // every non-zero fault-model share in the table.
        let summary = try CampaignJSON.decoder.decode(CampaignSummary.self, from: Data(contentsOf: URL(fileURLWithPath: CampaignSummary.jsonPath(dir))))
        #expect(summary.completed == 8)
        func printed(_ s: CampaignSummary.Share, _ total: Int) -> String {
            String(format: "%d/%d · %.1f%% [%.1f, %.1f]%%", s.count, total, 100 * s.fraction, 100 * s.low, 100 * s.high)
        }
        for g in summary.groups where g.dimension == "overall" || g.dimension == "phase" {
            for s in g.outcomes { #expect(html.contains(">" + printed(s, g.total) + "<"), "missing \(g.key) \(s.outcome): \(printed(s, g.total))") }
        }
        for g in summary.groups where g.dimension == "faultModel" {
            for s in g.outcomes where s.count > 0 { #expect(html.contains("<td class=\"n\">" + printed(s, g.total) + "</td>")) }
        }
        // Every outcome present is in the legend, and nothing absent is.
        let present = Set(Self.campaign.results.map(\.outcome))
        let legend = Self.legend(html)
        for o in Outcome.allCases.map(\.rawValue) { #expect(legend.contains(">\(o)<") == present.contains(o), "legend vs \(o)") }
        // Header and curves.
        #expect(html.contains("resnet18_nobn") && html.contains(Self.campaign.manifest.id) && html.contains(">seed</dt><dd>5<"))
        let report = try CampaignHTMLReport.load(directory: dir)
        #expect(report.curveRuns.count == min(CampaignHTMLReport.maxCurves, present.count))
        #expect(Set(report.curveRuns.map(\.outcome)) == present.intersection(report.curveRuns.map(\.outcome)))
        for r in report.curveRuns { #expect(html.contains("injection (step \(r.globalStep))")) }
    }

    @Test func aReportNeverOverwritesItsInputs() throws {
        let dir = Self.campaign.directory
        let results = ResultsLog.path(dir)
        let before = FileManager.default.contents(atPath: results)
        for out in [results, dir + "/./campaign.json", dir + "/../" + URL(fileURLWithPath: dir).lastPathComponent + "/summary.json"] {
            #expect(throws: ReportError.self) { try Report.write(directory: dir, to: out) }
        }
        #expect(FileManager.default.contents(atPath: results) == before && before != nil)
    }

    @Test func emptyCorruptAndUnknownDirectories() throws {
        let dir = Self.campaign.directory
        // No results yet: a report that says so.
        let empty = Self.scratch("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CampaignManifest.path(dir), toPath: CampaignManifest.path(empty))
        let html = try Report.html(directory: empty).html
        #expect(html.contains("No experiments yet") && Self.svgs(html).isEmpty)

        // A corrupt line: the file and the line.
        let corrupt = Self.scratch("corrupt")
        try FileManager.default.copyItem(atPath: dir, toPath: corrupt)
        let lines = try String(contentsOfFile: ResultsLog.path(corrupt), encoding: .utf8).split(separator: "\n").map(String.init)
        try Data((lines[0] + "\n{\"index\": oops\n" + lines[1...].joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: ResultsLog.path(corrupt)))
        let message = Self.error { _ = try Report.html(directory: corrupt) }
        #expect(message.contains(ResultsLog.path(corrupt) + ":2: not a result line"), "\(message)")

        // A torn last line (interrupted campaign): reported, left out.
        let torn = Self.scratch("torn")
        try FileManager.default.copyItem(atPath: dir, toPath: torn)
        try Data((lines[0..<3].joined(separator: "\n") + "\n" + lines[3].prefix(30)).utf8).write(to: URL(fileURLWithPath: ResultsLog.path(torn)))
        let tornHTML = try Report.html(directory: torn).html
        #expect(tornHTML.contains("torn line (30 bytes") && tornHTML.contains("3 of 8 planned"))

        // Neither kind, or no directory at all.
        let other = Self.scratch("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        #expect(Self.error { _ = try Report.html(directory: other) }.contains("neither a campaign (no campaign.json) nor an optimizer study (no study.json)"))
        #expect(Self.error { _ = try Report.html(directory: Self.root + "/nowhere") }.contains("no such directory"))
        // A study of another kind, or without a required field.
        try Data(#"{"kind": "campaign", "optimizers": [], "experiments": []}"#.utf8).write(to: URL(fileURLWithPath: StudyFile.path(other)))
        #expect(Self.error { _ = try Report.html(directory: other) }.contains("study.json: kind 'campaign', expected 'optimizer-study'"))
        try Data(#"{"kind": "optimizer-study", "optimizers": ["adam"], "experiments": [{"index": 0}]}"#.utf8).write(to: URL(fileURLWithPath: StudyFile.path(other)))
        #expect(Self.error { _ = try Report.html(directory: other) }.contains("study.json: not an optimizer study: field 'experiments[0].runs': missing"))
    }

    @Test func studyReportShowsEveryOptimizerAndStatus() throws {
        let dir = try Self.studyDirectory()
        let study = try StudyFile.load(directory: dir)
        #expect(study.optimizers == ["adam", "sgd", "rmsprop", "adagrad"] && study.experiments.count == 3)
        // Non-finite strings decode; unknown fields are ignored.
        let sgd = try #require(study.experiments[2].runs.first { $0.optimizer == "sgd" })
        #expect(sgd.loss?[1].isNaN == true && sgd.divergenceStep == 32 && sgd.displayStatus == "Diverged")
        #expect(study.experiments[1].runs[3].degradationRate?.isNaN == true)

        let (kind, html) = try Report.html(directory: dir)
        #expect(kind == .optimizerStudy)
        Self.checkWellFormed(html)
        #expect(try Report.html(directory: dir).html == html)
        let legend = Self.legend(html)
        for s in Set(study.experiments.flatMap(\.runs).map(\.displayStatus)) { #expect(legend.contains(">\(s)<")) }
        #expect(legend.contains("fault-free reference"))
        // One recovery panel per optimizer; the summary's counts in the table.
        for o in study.optimizers { #expect(html.contains("aria-label=\"\(o)") ) }
        for r in try #require(study.summary) {
            let row = "<td class=\"n\">\(r.recovered)</td><td class=\"n\">\(r.stable)</td><td class=\"n\">\(r.degraded)</td><td class=\"n\">\(r.diverged)</td>"
            #expect(html.contains(row), "row of \(r.optimizer)")
        }
        #expect(html.contains("1 non-finite"))
    }

    @Test func lineChartsSurviveNonFiniteAndHugeValues() throws {
        let chart = LineChart(title: "loss <&>", xTitle: "global step", yTitle: "loss", series: [
            LineSeries(name: "golden", color: "#333", dashed: true, points: (0..<8).map { (Double($0), 2 - 0.1 * Double($0)) }),
            LineSeries(name: "faulty", color: "#D55E00", points: [(0, 2), (1, 1e30), (2, 3), (3, .nan), (4, .nan)]),
        ], yCap: 4, markers: [(x: 1, label: "injection (step 1)")], xName: { "step \(Int($0))" })
        let svg = chart.render()
        #expect(svg.contains("NaN from step 3") && svg.contains("1e+30 (off the scale)") && svg.contains("loss &lt;&amp;&gt;"))
        #expect(!svg.contains("nan") && !svg.contains("inf"))
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse())
        let ticks = LinearScale.nice(0.13, 0.91).ticks
        #expect(ticks.count == 6 && ticks.first == 0 && ticks.last == 1)
    }
}
