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
        for r in report.curveRuns where r.outcome != Outcome.lowTestAccuracy.rawValue { #expect(html.contains("injection (step \(r.globalStep))")) }
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
        for s in Set(study.experiments.flatMap(\.runs).map(\.effect.status)) { #expect(legend.contains(">\(s)<")) }
        #expect(legend.contains("fault-free reference"))
        // One recovery panel per optimizer; the summary's counts in the table.
        for o in study.optimizers { #expect(html.contains("aria-label=\"\(o)") ) }
        for r in try #require(study.summary) {
            let row = "<td class=\"n\">\(r.recovered)</td><td class=\"n\">\(r.stable)</td><td class=\"n\">\(r.degraded)</td><td class=\"n\">\(r.diverged)</td>"
            #expect(html.contains(row), "row of \(r.optimizer)")
        }
        #expect(html.contains("1 non-finite"))
    }

    // MARK: Hand-made results

    /// Twelve hand-made results on the shared campaign's manifest (all at one injected step,
    /// each a copy of a real result with a curve and golden context):
    /// - first layer, forward, RBFLIP: bit 30 ImmediateINFsNaNs (onset +0, +1), bit 3 Masked
    ///   x4 (two of them activated 0, one of those with a golden that had not learned);
    /// - first layer, grad_in, RBFLIP: bit 30 SlowDegrade (onset +2), bit 22 Masked;
    /// - last layer, grad_wt, hardware HW_WEIGHT_FLIP bit 14 of a bfloat16 register:
    ///   SharpDegrade (onset +1), Masked with the PE not in use, Masked;
    /// - last layer, forward, N16_RD: LowTestAccuracy (onset +3), test 0.5 vs golden 0.75.
    static func handMade() throws -> (manifest: CampaignManifest, results: [ExperimentResult], first: String, last: String) {
        let manifest = campaign.manifest
        let template = try #require(campaign.results.first { ($0.curve?.goldenBefore?.count ?? 0) > 0 && $0.kind == .software })
        // Layers in execution order, each once (the backward operations come back to the first layer last).
        let layers = manifest.golden.sites.map { SiteID(parsing: $0).layer }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let (first, last) = (try #require(layers.first), try #require(layers.last))
        let g = template.globalStep
        var out: [ExperimentResult] = []
        func add(_ site: String, _ model: String, _ outcome: Outcome, onset: Int? = nil, bits: [Int]? = nil, activated: Int? = 1,
                 hardwareBit: Int? = nil, peInUse: Bool? = nil, learned: Bool = true) {
            var r = template
            r.index = out.count
            r.site = site
            r.layer = SiteID(parsing: site).layer
            r.phase = Phase(SiteID(parsing: site))
            r.faultModel = model
            r.outcome = outcome.rawValue
            r.onset = onset.map { g + $0 }
            r.bits = bits
            r.bitFormat = bits == nil ? nil : .float32
            r.activated = activated
            r.peInUse = peInUse
            r.goldenLearned = learned
            r.seconds = Double(1 + out.count % 3)
            r.kind = hardwareBit == nil ? .software : .hardware
            r.spec.hardware = hardwareBit.map { HardwareFault(row: 0, column: 0, register: .weight, bit: $0, kind: .transient(cycle: 3)) }
            if hardwareBit != nil { r.bitFormat = .bfloat16 }
            out.append(r)
        }
        add(first, "RBFLIP", .immediateINFsNaNs, onset: 0, bits: [30])
        add(first, "RBFLIP", .immediateINFsNaNs, onset: 1, bits: [30])
        add(first, "RBFLIP", .masked, bits: [3], activated: 0, learned: false)
        add(first, "RBFLIP", .masked, bits: [3], activated: 0)
        add(first, "RBFLIP", .masked, bits: [3])
        add(first, "RBFLIP", .masked, bits: [3])
        add(first + "_grad_in", "RBFLIP", .slowDegrade, onset: 2, bits: [30])
        add(first + "_grad_in", "RBFLIP", .masked, bits: [22])
        add(last + "_grad_wt", "HW_WEIGHT_FLIP", .sharpDegrade, onset: 1, hardwareBit: 14, peInUse: true)
        add(last + "_grad_wt", "HW_WEIGHT_FLIP", .masked, activated: 0, hardwareBit: 14, peInUse: false)
        add(last + "_grad_wt", "HW_WEIGHT_FLIP", .masked, hardwareBit: 14, peInUse: true)
        add(last, "N16_RD", .lowTestAccuracy, onset: 3)
        out[11].goldenTestAccuracy = 0.75
        out[11].faultyTestAccuracy = 0.5
        return (manifest, out, first, last)
    }

    static func printed(_ k: Int, _ n: Int) -> String {
        let (low, high) = Wilson.interval(successes: k, trials: n)
        return Markup.share(count: k, total: n, fraction: Double(k) / Double(n), low: low, high: high)
    }

    @Test func campaignReportAnswersPerLayerPhaseBitAndOnsetWithTheRightCounts() throws {
        let (manifest, results, first, last) = try Self.handMade()
        let report = CampaignHTMLReport(directory: Self.root + "/handmade", manifest: manifest, results: results)
        let html = report.html()
        Self.checkWellFormed(html)

        // Per layer and operation: non-Masked / experiments with the Wilson interval.
        let shares = report.layerPhaseShares
        try #require(shares.map(\.layer) == [first, last])
        #expect(shares[0].kinds.map { "\($0.kind) \($0.count)/\($0.total)" } == ["forward 2/6", "grad_in 1/2", "grad_wt 0/0"])
        #expect(shares[1].kinds.map { "\($0.kind) \($0.count)/\($0.total)" } == ["forward 1/1", "grad_in 0/0", "grad_wt 1/3"])
        #expect(html.contains("Vulnerability per layer and operation"))
        for text in [Self.printed(2, 6), Self.printed(1, 2), Self.printed(1, 1), Self.printed(1, 3)] { #expect(html.contains(">\(text)<"), "\(text)") }

        // Per bit: software float32 (bits 30, 22, 3), hardware bfloat16 (bit 14), with counts.
        let panels = report.bitPanels
        try #require(panels.map { "\($0.kind.rawValue) \($0.format.rawValue) n=\($0.experiments)" } == ["software float32 n=8", "hardware bfloat16 n=3"])
        #expect(panels[0].rows.map(\.bit) == [30, 22, 3] && panels[0].rows.map(\.experiments) == [3, 1, 4])
        let masked = 0, immediate = 1, sharp = 3, slow = 5
        #expect(panels[0].rows[0].outcomes[immediate] == 2 && panels[0].rows[0].outcomes[slow] == 1 && panels[0].rows[2].outcomes[masked] == 4)
        #expect(panels[0].rows[2].notActivated == 2 && panels[1].rows.map(\.bit) == [14] && panels[1].rows[0].outcomes[sharp] == 1 && panels[1].rows[0].notActivated == 1)
        // The table: bit, field, n, then Masked, ImmediateINFsNaNs, SharpDegrade, SlowDegrade (the classes present), non-Masked, changed nothing.
        let zero = "<span class=\"zero\">0</span>"
        #expect(html.contains("<tr><td>30</td><td>exponent</td><td class=\"n\">3</td><td class=\"n\">\(zero)</td><td class=\"n\">2</td><td class=\"n\">\(zero)</td><td class=\"n\">1</td><td class=\"n\">\(Self.printed(3, 3))</td><td class=\"n\">\(zero)</td></tr>"))
        #expect(html.contains("<tr><td>3</td><td>mantissa</td><td class=\"n\">4</td><td class=\"n\">4</td>"))
        #expect(html.contains("<tr><td>14</td><td>exponent</td><td class=\"n\">3</td><td class=\"n\">2</td><td class=\"n\">\(zero)</td><td class=\"n\">1</td><td class=\"n\">\(zero)</td><td class=\"n\">\(Self.printed(1, 3))</td><td class=\"n\">1</td></tr>"))
        #expect(html.contains("Software bit flips, float32 bits (n = 8)") && html.contains("Hardware register faults, bfloat16 bits (n = 3)"))

        // Onset: steps after the injection per class.
        #expect(report.onsetDelays.map { "\($0.outcome) \($0.delays)" } == ["ImmediateINFsNaNs [0, 1]", "SharpDegrade [1]", "SlowDegrade [2]", "LowTestAccuracy [3]"])
        #expect(html.contains("ImmediateINFsNaNs: 1 with onset 0 step(s) after the injection") && html.contains("n = 2 · median 0.5 · range 0-1"))
        #expect(html.contains("SlowDegrade: 1 with onset 2 step(s) after the injection") && html.contains(">3-5<"))

        // Outcome shares: counts beside the bars, on an axis zoomed to the non-Masked classes.
        // (A backward share of 1 of 5 reaches 62 % at its upper end: no zoom here; see the next test.)
        #expect(report.outcomeAxis == 1)
        #expect(html.contains(">" + Self.printed(2, 12) + "<") && html.contains(">" + Self.printed(7, 12) + "<"))

        // Header: the golden's accuracies, cost, classifier, faults that changed nothing, the warning.
        let train = try #require(manifest.golden.finalTrainAccuracy)
        #expect(html.contains("final train accuracy \(String(format: "%.4f", Double(train)))") && html.contains("test examples"))
        #expect(html.contains("mean 2 s wall time (min 1, max 3; 24 s in all)"))
        #expect(html.contains("confidence 0.95 (one-sided, z = 1.645)"))
        #expect(html.contains("3 of 12 experiments: the fault changed no element (activated 0; 1 of them a hardware fault in a PE the operation does not use), trivially Masked"))
        #expect(html.contains("<p class=\"warning\">Warning: in 1 of 12 experiments the golden run had not learned"))
        let summary = CampaignSummary(manifest: manifest, results: results)
        #expect(summary.notActivated == 3 && summary.peNotInUse == 1 && summary.text.contains("not activated: 3 experiment(s)"))

        // Curves: golden context before the injection; the test accuracies for LowTestAccuracy.
        let g = results[0].globalStep
        #expect(html.contains("golden: step \(g - 1), accuracy (%)"))
        #expect(html.contains("Test accuracy after global step \(g + results[11].stepsRun - 1), the last run (what LowTestAccuracy compares)") && html.contains("difference 25 points"))
        #expect(html.contains(">12/16 correct · 75.0% ") && html.contains(">8/16 correct · 50.0% "))
    }

    @Test func heatMapCellsShowTheirCountAndMarkSmallSamples() throws {
        let (manifest, results, first, last) = try Self.handMade()
        let report = CampaignHTMLReport(directory: Self.root + "/handmade", manifest: manifest, results: results)
        let html = report.html()
        let big = try #require(report.heatCell(layer: first, model: "RBFLIP"))
        let small = try #require(report.heatCell(layer: last, model: "HW_WEIGHT_FLIP"))
        #expect(big.count == 3 && big.total == 8 && !big.smallSample)
        #expect(small.count == 1 && small.total == 3 && small.smallSample)
        #expect(report.heatCell(layer: last, model: "N16_RD")?.smallSample == true && report.heatCell(layer: first, model: "N16_RD") == nil)
        // Coloured by the Wilson lower bound, n in the text; small samples hatched and said so.
        let (low, _) = Wilson.interval(successes: 3, trials: 8)
        #expect(big.low == low)
        #expect(html.contains("fill=\"\(Palette.heat(low))\" stroke=\"#E0E0E0\"><title>\(first) × RBFLIP: 8 experiment(s), non-Masked \(Self.printed(3, 8))\n"))
        #expect(html.contains(">3/8<") && html.contains(">1/3<") && html.contains(">1/1<"))
        #expect(html.contains("\(last) × HW_WEIGHT_FLIP: 3 experiment(s), non-Masked \(Self.printed(1, 3))\nfewer than \(CampaignHTMLReport.smallSample) experiments: hatched"))
        #expect(!html.contains("\(first) × RBFLIP: 8 experiment(s), non-Masked \(Self.printed(3, 8))\nfewer than"))
        #expect(html.contains("stroke=\"\(HeatMap.hatchColor)\"") && html.contains("hatched: n &lt; \(CampaignHTMLReport.smallSample),"))
        #expect(html.contains(">colour: lower end of its<") && html.contains(">95% Wilson interval<"))
    }

    @Test func outcomeAxisZoomsSoThatOnePercentIsVisible() {
        #expect(IntervalBars.zoomedAxis([0.004, 0.012]) == 0.02)
        #expect(IntervalBars.zoomedAxis([0.09]) == 0.1)
        #expect(IntervalBars.zoomedAxis([0.6]) == 1 && IntervalBars.zoomedAxis([]) == 1)
        // A 1 % class on a 2 % axis is half the plot; the Masked bar past it ends in a break.
        let svg = IntervalBars(title: "t", bars: [
            IntervalBar(label: "Masked", color: "#009E73", count: 990, total: 1000, fraction: 0.99, low: 0.98, high: 0.995),
            IntervalBar(label: "SlowDegrade", color: "#56B4E9", count: 10, total: 1000, fraction: 0.01, low: 0.005, high: 0.018),
        ], axisMax: 0.02).render()
        #expect(svg.contains("axis zoomed to 0-2%") && svg.contains(">10/1000 · 1.0% [0.5, 1.8]%<"))
        #expect(svg.contains("<rect x=\"150.0\" y=\"72.0\" width=\"137.0\""))  // half of 274 px
        #expect(svg.contains("stroke=\"#FFFFFF\" stroke-width=\"2.2\""))
    }

    @Test func oldCampaignsGetTheGoldenFactsAndContextFromTheTrace() throws {
        var identity = Self.campaign.manifest.golden
        (identity.finalTrainAccuracy, identity.finalTestAccuracy, identity.testCount) = (nil, nil, nil)
        let fromManifest = GoldenFacts(identity: identity)
        #expect(fromManifest.finalTrainAccuracy == nil && fromManifest.source.contains("does not record"))
        let loaded = GoldenFacts.load(identity: identity)
        #expect(loaded.finalTrainAccuracy == Self.campaign.manifest.golden.finalTrainAccuracy && loaded.testCount == 16)
        #expect(loaded.source.hasPrefix("golden trace") && loaded.context(before: 5).map(\.step) == [0, 1, 2, 3, 4])
        var elsewhere = identity
        elsewhere.directory = Self.root + "/nowhere"
        #expect(GoldenFacts.load(identity: elsewhere).source.contains("not readable"))
        // The identity (campaign id, resume) does not include the facts.
        #expect(identity.located == Self.campaign.manifest.golden.located)
        // A report without the facts says so.
        var manifest = Self.campaign.manifest
        manifest.golden = identity
        let html = CampaignHTMLReport(directory: Self.root + "/old", manifest: manifest, results: Self.campaign.results).html()
        #expect(html.contains("final train and test accuracy unknown"))
    }

    @Test func oldStudyJSONLoadsWithTheEffectStatusComputedFromItsCurves() throws {
        // The fixture predates the effect fields and the references' statuses.
        let dir = try Self.studyDirectory()
        let study = try StudyFile.load(directory: dir)
        #expect(study.experiments.flatMap(\.runs).allSatisfy { $0.effectStatus == nil && $0.referenceStatus == nil })
        func effects(_ e: Int) -> [String] { study.experiments[e].runs.map(\.effect.status) }
        // adam: faulty = reference (the reference-defined status says Recovered: +0.05 since the injection).
        #expect(effects(0) == ["Unaffected", "Degraded", "Improved", "Degraded"])
        #expect(effects(1) == ["Degraded", "Improved", "Degraded", "Unaffected"])
        #expect(effects(2) == ["Improved", "Diverged", "Unaffected", "Degraded"])
        #expect(study.experiments[0].runs[0].displayStatus == "Recovered" && study.experiments[0].runs[0].effect.computed)
        let sgd = study.experiments[0].runs[1].effect
        #expect(abs((sgd.smoothed ?? 0) - (-(0.04 + 0.21 + 0.22 + 0.23 + 0.24 + 0.25) / 6)) < 1e-6 && abs((sgd.margin ?? 0) - 0.01) < 1e-5)
        // The fault-free references' own statuses under the reference-defined rule: all Recovered (+0.05 or more).
        #expect(study.experiments.flatMap(\.runs).allSatisfy { $0.displayReferenceStatus == "Recovered" })
        #expect(study.effectCounts.map { "\($0.optimizer) \($0.counts.map { "\($0.status) \($0.count)" })" } == [
            "adam [\"Improved 1\", \"Unaffected 1\", \"Degraded 1\", \"Diverged 0\"]",
            "sgd [\"Improved 1\", \"Unaffected 0\", \"Degraded 1\", \"Diverged 1\"]",
            "rmsprop [\"Improved 1\", \"Unaffected 1\", \"Degraded 1\", \"Diverged 0\"]",
            "adagrad [\"Improved 0\", \"Unaffected 1\", \"Degraded 2\", \"Diverged 0\"]",
        ])
        let html = try Report.html(directory: dir).html
        Self.checkWellFormed(html)
        #expect(html.contains("This study.json predates the effect status: it is computed here from the curves.") && html.contains("Fault effect"))
        // Effect counts, then the reference-defined ones (the study's summary), then the references': 3 Recovered each.
        #expect(html.contains("<td>adam (baseline)</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td>"))
        #expect(html.contains("<td>sgd</td><td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">1</td><td class=\"n\">1</td>"))
        #expect(html.contains("<td>rmsprop</td><td class=\"n\">3</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td></tr>"))
        #expect(html.contains("-0.1983 ± 0.01 Degraded"))

        // A run without curves or a recorded effect: unknown, said so.
        var bare = study
        bare.experiments[0].runs[0].steps = nil
        let unknown = StudyHTMLReport(directory: dir, study: bare)
        #expect(bare.experiments[0].runs[0].effect.status == "unknown" && unknown.statusesPresent.last == "unknown")
        #expect(unknown.html().contains("– ± – unknown"))
        // A recorded effect is used as it is.
        bare.experiments[0].runs[0].effectStatus = "Improved"
        bare.experiments[0].runs[0].smoothedFaultEffect = 0.5
        #expect(bare.experiments[0].runs[0].effect == StudyFile.Effect(status: "Improved", smoothed: 0.5, margin: nil, referenceNoise: nil, computed: false))
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
