import Foundation
import Sim

/// The report of a campaign directory (`tpufi campaign` or `tpufi merge`): the header
/// (workload, golden trace, parameters), outcome shares with Wilson intervals (overall and
/// by phase), a layer × fault model heat map, loss and accuracy curves of selected faulty
/// runs against golden, and the per-fault-model table.
///
/// The numbers are ``CampaignSummary``'s, computed from `results.jsonl` by the code that
/// writes `summary.json` (equal to it unless the campaign ran on after its last summary).
/// A campaign without results yet gives a report that says so, not an error: a running
/// campaign can be looked at.
public struct CampaignHTMLReport: Sendable {
    public var directory: String
    public var manifest: CampaignManifest
    /// Sorted by experiment index.
    public var results: [ExperimentResult]
    public var summary: CampaignSummary
    /// Bytes of a torn last line of `results.jsonl` (an interrupted campaign), ignored.
    public var tornBytes: Int

    /// At most this many runs get curves.
    public static let maxCurves = 6

    public init(directory: String, manifest: CampaignManifest, results: [ExperimentResult], tornBytes: Int = 0) {
        self.directory = directory
        self.manifest = manifest
        self.results = results.sorted { $0.index < $1.index }
        summary = CampaignSummary(manifest: manifest, results: results)
        self.tornBytes = tornBytes
    }

    /// Reads `campaign.json` and `results.jsonl` of `directory`.
    public static func load(directory: String) throws(ReportError) -> CampaignHTMLReport {
        do {
            let manifest = try CampaignManifest.load(directory: directory)
            let log = try ResultsLog.read(directory: directory, campaign: manifest.id)
            return CampaignHTMLReport(directory: directory, manifest: manifest, results: log.results, tornBytes: log.tornBytes)
        } catch {
            throw ReportError(error, directory: directory)
        }
    }

    /// The runs whose curves are shown: one per outcome class present (non-Masked classes
    /// first, in the order of docs/outcomes.md), at most ``maxCurves``. Of each class the run with the most
    /// steps (lowest index on ties): a masked-exact run that stopped at the injected step
    /// has a single point to show.
    public var curveRuns: [ExperimentResult] {
        let withCurves = results.filter { ($0.curve?.count ?? 0) > 0 }
            .sorted { a, b in (a.curve?.count ?? 0, -a.index) > (b.curve?.count ?? 0, -b.index) }
        let order = Outcome.allCases.filter { $0 != .masked } + [.masked]
        return Array(order.compactMap { o in withCurves.first { $0.outcome == o.rawValue } }.prefix(Self.maxCurves))
    }

    /// Outcome classes that occur, in the order of docs/outcomes.md.
    public var outcomesPresent: [String] {
        Outcome.allCases.map(\.rawValue).filter { o in results.contains { $0.outcome == o } }
    }

    public func html() -> String {
        let g = manifest.golden, p = manifest.parameters
        var page = HTMLPage(title: "tpufi campaign \(manifest.id)")
        page.heading("Fault-injection campaign \(manifest.id)", level: 1)
        page.paragraph("\(g.config.workload) (\(g.config.scaleName)) · \(summary.completed) of \(summary.experiments) experiments · seed \(p.seed) · \(p.stepsAfterInjection.map { "\($0) steps after injection" } ?? "to the end of the golden run")", cls: "note")
        page.raw(HTMLPage.facts(facts))
        if tornBytes > 0 {
            page.paragraph("results.jsonl ends in a torn line (\(tornBytes) bytes, an interrupted write); it is left out here and `tpufi campaign --resume` reruns that experiment.", cls: "note")
        }
        guard !results.isEmpty else {
            page.paragraph("No experiments yet: \(ResultsLog.path(directory)) has no complete result line. Run or resume the campaign, then run `tpufi report` again.", cls: "empty")
            return page.rendered
        }
        page.heading("Outcome legend")
        page.raw(HTMLPage.legend(outcomesPresent.map { ($0, Palette.outcome($0)) }))
        page.paragraph("Classes as defined in docs/outcomes.md of the tpufi repository; each colour means the same class in every chart and table below. Hover over a bar, cell or point for its numbers.", cls: "note")
        outcomeSection(&page)
        heatMapSection(&page)
        curveSection(&page)
        faultModelSection(&page)
        mitigationSection(&page)
        return page.rendered
    }

    private var facts: [(String, String)] {
        let g = manifest.golden, p = manifest.parameters, c = g.config
        func list(_ xs: [String]?, all: Int? = nil) -> String {
            guard let xs else { return "all" }
            return all == xs.count ? "all (\(xs.count))" : xs.joined(separator: ", ")
        }
        var out: [(String, String)] = [
            ("campaign", manifest.id + (manifest.shard.map { " (shard \($0))" } ?? "")),
            ("workload", "\(c.workload), scale \(c.scaleName), optimizer \(c.optimizer.kind.rawValue), \(c.replicas) replicas, \(c.precision.rawValue) on \(c.chip.name)"),
            ("golden trace", "\(g.directory) · \(g.completedSteps) steps (\(g.stepsPerEpoch) per epoch) · data \(g.dataDigest) · final state \(g.finalStateDigest)"),
            ("experiments", "\(summary.completed) of \(summary.experiments) planned" + (summary.missingCount == 0 ? "" : " · \(summary.missingCount) missing here")
                + (summary.goldenNotLearned == 0 ? "" : " · in \(summary.goldenNotLearned) the golden had not learned (no degrade class possible)")),
            ("seed", "\(p.seed)"),
            ("steps after injection", p.stepsAfterInjection.map { "\($0)" } ?? "to the end of the golden run"),
            ("experiment kinds", p.kinds.map(\.rawValue).joined(separator: ", ")),
            ("fault models", p.kinds.contains(.software) ? list(p.faultModels.map(\.rawValue), all: FaultModel.allCases.count) : "none (hardware faults only)"),
            ("hardware faults", p.kinds.contains(.hardware)
                ? "registers \((p.registers ?? HardwareFault.Register.allCases).map(\.rawValue).joined(separator: ", ")) · \((p.hardwareFaults ?? HardwareFaultClass.allCases).map(\.rawValue).joined(separator: ", ")) · "
                    + (p.hardwareDrawing == .used ? "PEs and cycles the operation uses" : "PEs and cycles over the whole array")
                : "none"),
            ("site sampling", p.siteSampling == .all ? "all (every MXU operation)" : "reference (forward and _grad_in operations of the convolutions)"),
            ("phases", p.phases.map(\.rawValue).joined(separator: ", ")),
            ("layers", list(p.layers)),
            ("replicas", list(p.replicas?.map(String.init))),
            ("steps", p.steps?.description ?? "all"),
            ("classifier", "accuracy band \(Markup.number(Double(p.thresholds.accuracyBand))), chance band \(Markup.number(Double(p.thresholds.chanceBand))), final window \(p.thresholds.finalWindow) steps, " + (p.thresholds.confidence == 0 ? "noise not accounted for" : "confidence \(Markup.number(Double(p.thresholds.confidence))) against the golden's noise")),
            ("early stop", p.earlyStop ? "yes (masked-exact, non-finite loss)" : "no"),
        ]
        if !results.isEmpty {
            let stopped = summary.stoppedEarly.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            out.append(("steps run", String(format: "%.2f", summary.meanStepsRun) + " per experiment (injected step included)" + (stopped.isEmpty ? "" : "; stopped early: \(stopped)")))
        }
        return out
    }

    private func bars(_ group: CampaignSummary.Group, title: String) -> String {
        IntervalBars(title: title, bars: group.outcomes.map {
            IntervalBar(label: $0.outcome, color: Palette.outcome($0.outcome), count: $0.count, total: group.total, fraction: $0.fraction, low: $0.low, high: $0.high)
        }).render()
    }

    private func outcomeSection(_ page: inout HTMLPage) {
        page.heading("Outcomes")
        var charts: [String] = []
        if let overall = summary.groups.first(where: { $0.dimension == "overall" }) {
            charts.append(bars(overall, title: "All experiments (n = \(overall.total))"))
        }
        for phase in summary.groups where phase.dimension == "phase" {
            charts.append(bars(phase, title: "\(phase.key == "forward" ? "Forward" : "Backward") phase (n = \(phase.total))"))
        }
        page.figures(charts)
    }

    private func heatMapSection(_ page: inout HTMLPage) {
        page.heading("Outcome by layer and fault model")
        // Rows: every layer of the golden run in execution order (empty rows show where
        // nothing was drawn); columns: the fault models the campaign draws from.
        var layers = manifest.golden.sites.map { SiteID(parsing: $0).layer }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        if let chosen = manifest.parameters.layers {
            let chosenLayers = Set(chosen.map { SiteID(parsing: $0).layer })
            layers = layers.filter(chosenLayers.contains)
        }
        layers += Set(results.map(\.layer)).subtracting(layers).sorted()
        // Software columns only where the campaign draws software faults; hardware labels
        // (HW_<register>_<class>) follow as they occur.
        var models = manifest.parameters.kinds.contains(.software) ? manifest.parameters.faultModels.map(\.rawValue) : []
        models += Set(results.map(\.faultModel)).subtracting(models).sorted()
        let cells: [[HeatMap.Cell?]] = layers.map { layer in
            models.map { model in
                let members = results.filter { $0.layer == layer && $0.faultModel == model }
                guard !members.isEmpty else { return nil }
                let bad = members.filter { $0.outcome != Outcome.masked.rawValue }
                let counts = Outcome.allCases.map(\.rawValue).map { o in (o, members.filter { $0.outcome == o }.count) }.filter { $0.1 > 0 }
                // The most frequent non-Masked class (ties: the order of docs/outcomes.md).
                let dominant = counts.filter { $0.0 != Outcome.masked.rawValue }.max { a, b in a.1 < b.1 }
                let share = Double(bad.count) / Double(members.count)
                let hover = "\(layer) × \(model): \(members.count) experiment(s), non-Masked \(bad.count) (\(Markup.percent(share)))\n"
                    + counts.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
                return HeatMap.Cell(share: share, text: "\(bad.count)/\(members.count)", hover: hover, swatch: dominant.map { Palette.outcome($0.0) })
            }
        }
        page.paragraph("Each cell: non-Masked experiments / experiments for that layer (rows, in execution order) and fault model (columns); the colour is the non-Masked share.", cls: "note")
        page.figures([HeatMap(title: "Non-Masked share by layer and fault model", subtitle: "cell text: non-Masked / experiments; hover for the outcome counts",
                              rows: layers, columns: models, cells: cells, legendTitle: "non-Masked share").render()])
    }

    private func curveSection(_ page: inout HTMLPage) {
        page.heading("Loss and accuracy: golden vs faulty runs")
        let runs = curveRuns
        guard !runs.isEmpty else {
            page.paragraph("These results carry no per-step curves (written by a tpufi before results recorded them); run the campaign again with this tpufi to see them.", cls: "note")
            return
        }
        page.paragraph("Up to \(Self.maxCurves) runs, one per outcome class present (non-Masked first). Golden: dashed dark grey; faulty: solid, in its outcome's colour. Train loss and batch train accuracy per step; the dashed vertical line is the injected step.", cls: "note")
        for r in runs {
            guard let c = r.curve else { continue }
            let n = c.count
            let steps = c.steps.prefix(n).map(Double.init)
            func points(_ ys: [Float]) -> [(x: Double, y: Double)] { zip(steps, ys.prefix(n)).map { ($0, Double($1)) } }
            let color = Palette.outcome(r.outcome)
            // Faulty first and wider, golden dashed on top: where they coincide (Masked) both
            // stay visible.
            let golden = LineSeries(name: "golden", color: Palette.golden, dashed: true, width: 1.6, points: points(c.goldenLoss))
            let faulty = LineSeries(name: "faulty (\(r.outcome))", color: color, width: 3, points: points(c.loss))
            let goldenLoss = c.goldenLoss.prefix(n).map(Double.init).filter(\.isFinite)
            // Huge faulty losses are drawn on the top edge: the golden curve stays readable.
            let cap = goldenLoss.max().map { hi in hi + 3 * max(hi - (goldenLoss.min() ?? hi), 0.25 * abs(hi), 1e-3) }
            let marker = [(x: Double(r.globalStep), label: "injection (step \(r.globalStep))")]
            let stepName: (Double) -> String = { "step \(Int($0))" }
            let stepLabel: (Double) -> String = { Markup.tick($0, step: 1) }
            let loss = LineChart(title: "Train loss", xTitle: "global step", yTitle: "loss", series: [faulty, golden], xRange: (Double(r.globalStep - 1), Double(r.globalStep)),
                                 integerX: true, yCap: cap, xLabel: stepLabel, markers: marker, xName: stepName)
            let accuracy = LineChart(title: "Train accuracy (batch)", xTitle: "global step", yTitle: "accuracy (%)",
                                     series: [LineSeries(name: "faulty (\(r.outcome))", color: color, width: 3, points: points(c.accuracy)),
                                              LineSeries(name: "golden", color: Palette.golden, dashed: true, width: 1.6, points: points(c.goldenAccuracy))],
                                     xRange: (Double(r.globalStep - 1), Double(r.globalStep)), integerX: true,
                                     yRange: (0, 1), yLabel: { Markup.tick(100 * $0, step: 10) }, yValue: { Markup.number(100 * $0) }, xLabel: stepLabel, markers: marker, xName: stepName)
            page.raw("<div class=\"run\">")
            page.raw("<h3><span class=\"swatch-inline\" style=\"color:\(color)\">■</span> experiment \(r.index) · \(Markup.escape(r.outcome)) · \(Markup.escape(r.site)) · \(Markup.escape(r.faultModel)) · step \(r.globalStep) · replica \(r.replica)</h3>")
            page.raw("<p class=\"evidence\">\(Markup.escape(r.evidence.joined(separator: "; ")))\(r.stoppedEarly.map { " · stopped early: \(Markup.escape($0))" } ?? "")</p>")
            page.figures([loss.render(), accuracy.render()])
            page.raw("</div>")
        }
    }

    private func faultModelSection(_ page: inout HTMLPage) {
        page.heading("By fault model")
        let present = outcomesPresent
        page.paragraph("Counts, shares and 95% Wilson intervals per fault model (outcome classes that occur in this campaign).", cls: "note")
        let header = ["fault model", "n", "outcomes"] + present
        var rows: [[String]] = []
        for g in summary.groups where g.dimension == "faultModel" || g.dimension == "overall" {
            var row = [g.dimension == "overall" ? "<b>all</b>" : Markup.escape(g.key), "\(g.total)", miniBar(g)]
            for o in present {
                guard let s = g.outcomes.first(where: { $0.outcome == o }) else { row.append(""); continue }
                row.append(s.count == 0 ? "<span class=\"zero\">0</span>"
                           : Markup.escape(Markup.share(count: s.count, total: g.total, fraction: s.fraction, low: s.low, high: s.high)))
            }
            rows.append(row)
        }
        page.raw(HTMLPage.table(header: header, rows: rows, numericFrom: 1))
    }

    /// Coverage of the campaign's mitigation: per outcome class of the plain run and per
    /// detector, detected, turned into Masked, bit-identical to golden, latency; then the cost.
    private func mitigationSection(_ page: inout HTMLPage) {
        guard let m = summary.mitigation else { return }
        page.heading("Mitigation")
        page.raw("<p class=\"note\">Every experiment ran twice, without and with mitigation <code>\(Markup.escape(m.settings))</code> (the same fault both times). "
                 + "Rows: the outcome class of the run without mitigation (<i>faulty</i>: every class but Masked), then each detector that fired and <i>any</i>. "
                 + "Shares with 95% Wilson intervals; latency in steps from the injection to the first detection.</p>")
        func share(_ s: MitigationCoverage.Share) -> String {
            Markup.escape(Markup.share(count: s.count, total: s.total, fraction: s.fraction, low: s.low, high: s.high))
        }
        let rows = m.rows.map { r -> [String] in
            let any = r.detector == "any"
            return [Markup.escape(r.outcome), Markup.escape(r.detector), share(r.detected), any ? share(r.masked) : "", any ? share(r.maskedExact) : "",
                    r.meanLatency.map { Markup.number($0) + " (max \(r.maxLatency ?? 0))" } ?? "–"]
        }
        page.raw(HTMLPage.table(header: ["outcome without", "detector", "detected", "Masked with", "bit-identical to golden", "latency"], rows: rows, numericFrom: 2))
        let share = m.stepsRun == 0 ? 0 : 100 * Double(m.reexecutedSteps) / Double(m.stepsRun)
        page.paragraph("Recovery re-executed \(m.reexecutedSteps) of \(m.stepsRun) simulated steps (\(Markup.number(share))%); wall time \(Markup.number(m.plainSeconds)) s without, \(Markup.number(m.mitigatedSeconds)) s with mitigation."
                       + (m.restoredNotExact.isEmpty ? "" : " Restored but not bit-identical to golden: \(m.restoredNotExact.map { "experiment \($0.index) (\($0.outcome), detected \($0.latency.map(String.init) ?? "?") step(s) after the injection)" }.joined(separator: ", "))."), cls: "note")
    }

    /// A small stacked bar of a group's outcome shares, for the table.
    private func miniBar(_ g: CampaignSummary.Group) -> String {
        var svg = SVG(width: 120, height: 12, label: "outcome shares of \(g.key)")
        var x = 0.0
        for s in g.outcomes where s.count > 0 {
            let w = 120 * s.fraction
            svg.rect(x, 0, w, 12, fill: Palette.outcome(s.outcome), title: "\(s.outcome): \(s.count)/\(g.total)")
            x += w
        }
        return svg.rendered
    }
}
