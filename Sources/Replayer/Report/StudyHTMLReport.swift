import Foundation

/// The report of an optimizer study (`docs/study.md`): Recovered / Stable /
/// Degraded / Diverged per optimizer, recovery curves (accuracy against steps since the
/// injection, faulty solid, fault-free reference dashed; one panel per optimizer) and
/// degradation rates with every experiment's point.
public struct StudyHTMLReport: Sendable {
    public var directory: String
    public var study: StudyFile

    public init(directory: String, study: StudyFile) {
        self.directory = directory
        self.study = study
    }

    public static func load(directory: String) throws(ReportError) -> StudyHTMLReport {
        StudyHTMLReport(directory: directory, study: try StudyFile.load(directory: directory))
    }

    /// Optimizers in the study's order, then any only the runs name.
    var optimizers: [String] {
        var out = study.optimizers
        for r in study.experiments.flatMap(\.runs) where !out.contains(r.optimizer) { out.append(r.optimizer) }
        return out
    }

    /// Statuses that occur in the runs (legend order).
    public var statusesPresent: [String] {
        let present = Set(study.experiments.flatMap(\.runs).map(\.displayStatus))
        return Palette.statuses.filter(present.contains) + present.subtracting(Palette.statuses).sorted()
    }

    public func html() -> String {
        let s = study
        var page = HTMLPage(title: "tpufi optimizer study")
        page.heading("Optimizer study: recovery from one injected fault", level: 1)
        page.paragraph("\(s.workload ?? "workload ?")\(s.scale.map { " (\($0))" } ?? "") · \(s.experiments.count) experiment(s) · baseline \(s.baseline ?? "?") · \(s.stepsAfterInjection.map { "\($0) steps after injection" } ?? "")", cls: "note")
        page.raw(HTMLPage.facts([
            ("baseline", s.baseline ?? "not recorded"),
            ("optimizers", optimizers.joined(separator: ", ")),
            ("workload", [s.workload, s.scale].compactMap { $0 }.joined(separator: ", ")),
            ("golden trace", s.golden ?? "not recorded"),
            ("experiments", "\(s.experiments.count)"),
            ("steps after injection", s.stepsAfterInjection.map { "\($0)" } ?? "not recorded"),
            ("seed", s.seed.map { "\($0)" } ?? "not recorded"),
            ("status", "Recovered: accuracy change since the injection > +0.01; Degraded: < -0.01; else Stable; Diverged: the loss went non-finite"),
        ]))
        guard !s.experiments.isEmpty else {
            page.paragraph("No experiments in \(StudyFile.path(directory)).", cls: "empty")
            return page.rendered
        }
        page.heading("Legend")
        page.raw(HTMLPage.legend(statusesPresent.map { ($0, Palette.status($0)) }, extra: [("fault-free reference", Palette.golden, true)]))
        summarySection(&page)
        curvesSection(&page)
        degradationSection(&page)
        experimentsSection(&page)
        return page.rendered
    }

    private func summarySection(_ page: inout HTMLPage) {
        page.heading("Outcome per optimizer")
        let rows = study.summaryRows
        let bars = StackedBars(title: "Recovered / Stable / Degraded per optimizer", rows: rows.map { r in
            StackedBars.Row(label: r.optimizer, segments: [("Recovered", r.recovered, Palette.status("Recovered")), ("Stable", r.stable, Palette.status("Stable")),
                                                           ("Degraded", r.degraded, Palette.status("Degraded"))],
                            note: r.diverged > 0 ? "diverged: \(r.diverged)" : "")
        })
        page.figures([bars.render()])
        let table = HTMLPage.table(header: ["optimizer", "Recovered", "Stable", "Degraded", "Diverged", "mean accuracy change", "mean degradation rate (per step)"],
                                   rows: rows.map { r in
            [Markup.escape(r.optimizer) + (r.optimizer == study.baseline ? " (baseline)" : ""), "\(r.recovered)", "\(r.stable)", "\(r.degraded)", "\(r.diverged)",
             r.meanAccuracyChange.map(Markup.number) ?? "–", r.meanDegradationRate.map(Markup.number) ?? "–"]
        })
        page.raw(table)
    }

    private func curvesSection(_ page: inout HTMLPage) {
        page.heading("Recovery curves")
        page.paragraph("Accuracy against steps since the injection, one panel per optimizer: each experiment's faulty run solid (coloured by its status), its fault-free reference dashed grey.", cls: "note")
        var charts: [String] = []
        for o in optimizers {
            var series: [LineSeries] = []
            for e in study.experiments {
                guard let r = e.runs.first(where: { $0.optimizer == o }), let steps = r.steps, !steps.isEmpty else { continue }
                let origin = Double(e.globalStep ?? steps[0])
                let xs = steps.map { Double($0) - origin }
                let many = study.experiments.count > 12
                if let ref = r.referenceAccuracy {
                    series.append(LineSeries(name: "", color: Palette.golden, dashed: true, width: 1.2, opacity: 0.6,
                                             points: zip(xs, ref).map { ($0, $1) }, dots: false))
                }
                if let acc = r.accuracy {
                    series.append(LineSeries(name: "", color: Palette.status(r.displayStatus), width: many ? 1.2 : 1.8, opacity: many ? 0.7 : 0.95,
                                             points: zip(xs, acc).map { ($0, $1) }, dots: !many))
                }
                // Names only for hover texts: the legend is the page's.
                if !series.isEmpty {
                    let label = "experiment \(e.index) (\(r.displayStatus))"
                    series[series.count - 1].name = label
                    if series.count >= 2, r.referenceAccuracy != nil, r.accuracy != nil { series[series.count - 2].name = "experiment \(e.index) reference" }
                }
            }
            var chart = LineChart(title: "\(o)\(o == study.baseline ? " (baseline)" : "")", xTitle: "steps since injection", yTitle: "accuracy (%)",
                                  width: 440, height: 280, series: series, xRange: (-1, 0), integerX: true, yRange: (0, 1), yLabel: { Markup.tick(100 * $0, step: 10) }, yValue: { Markup.number(100 * $0) },
                                  xLabel: { Markup.tick($0, step: 1) }, markers: [(x: 0, label: "injection")], xName: { "step +\(Int($0))" })
            chart.hideLegend = true
            charts.append(chart.render())
        }
        page.figures(charts)
    }

    private func degradationSection(_ page: inout HTMLPage) {
        page.heading("Degradation rates")
        page.paragraph("Slope of accuracy per step at the end of each run (negative: still degrading). One dot per experiment, coloured by status; the black bar is the mean.", cls: "note")
        let plot = DotPlot(title: "Degradation rate per optimizer", yTitle: "accuracy change per step", categories: optimizers.map { o in
            (o, study.experiments.compactMap { e in
                guard let r = e.runs.first(where: { $0.optimizer == o }), let rate = r.degradationRate else { return nil }
                return DotPlot.Dot(value: rate, color: Palette.status(r.displayStatus),
                                   hover: "\(o), experiment \(e.index): \(Markup.number(rate)) per step (\(r.displayStatus))")
            })
        })
        page.figures([plot.render()])
    }

    private func experimentsSection(_ page: inout HTMLPage) {
        page.heading("Experiments")
        let header = ["#", "step", "site", "fault model", "value"] + optimizers.map { "\($0): Δ accuracy" }
        let rows = study.experiments.map { e -> [String] in
            var row = ["\(e.index)", e.globalStep.map { "\($0)" } ?? "–", Markup.escape(e.site ?? "–"), Markup.escape(e.faultModel ?? "–"),
                       e.value.map(Markup.number) ?? "–"]
            for o in optimizers {
                guard let r = e.runs.first(where: { $0.optimizer == o }) else { row.append("–"); continue }
                row.append("<span class=\"swatch\" style=\"background:\(Palette.status(r.displayStatus))\"></span>"
                           + Markup.escape("\(r.accuracyChange.map(Markup.number) ?? "–") \(r.displayStatus)"))
            }
            return row
        }
        page.raw(HTMLPage.table(header: header, rows: rows, numericFrom: 5))
    }
}
