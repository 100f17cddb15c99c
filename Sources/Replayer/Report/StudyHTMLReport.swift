import Foundation

/// The report of an optimizer study (`docs/study.md`): per optimizer the fault-effect
/// statuses (Improved / Unaffected / Degraded / Diverged: each faulty run against its own
/// fault-free reference, smoothed, judged against the reference's noise), the statuses the
/// reference study defines (against the golden accuracy at the injection) for the faulty
/// runs and for the fault-free references themselves, fault-effect curves (faulty minus
/// reference, smoothed), recovery curves (faulty solid, reference dashed) and degradation
/// rates with every experiment's point. A study written before the effect statuses existed
/// gets them computed from its curves; without curves they are shown as unknown.
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

    /// Effect statuses that occur in the runs (legend order), `unknown` last.
    public var statusesPresent: [String] {
        let present = Set(study.experiments.flatMap(\.runs).map(\.effect.status))
        return Palette.effectStatuses.filter(present.contains) + present.subtracting(Palette.effectStatuses).sorted()
    }

    public func html() -> String {
        let s = study
        var page = HTMLPage(title: "tpufi optimizer study")
        page.heading("Optimizer study: recovery from one injected fault", level: 1)
        page.paragraph("\(s.workload ?? "workload ?")\(s.scale.map { " (\($0))" } ?? "") · \(s.experiments.count) experiment(s) · baseline \(s.baseline ?? "?") · \(s.stepsAfterInjection.map { "\($0) steps after injection" } ?? "")", cls: "note")
        let computed = s.experiments.flatMap(\.runs).contains { $0.effect.computed }
        page.raw(HTMLPage.facts([
            ("baseline", s.baseline ?? "not recorded"),
            ("optimizers", optimizers.joined(separator: ", ")),
            ("workload", [s.workload, s.scale].compactMap { $0 }.joined(separator: ", ")),
            ("golden trace", s.golden ?? "not recorded"),
            ("experiments", "\(s.experiments.count)"),
            ("steps after injection", s.stepsAfterInjection.map { "\($0)" } ?? "not recorded"),
            ("seed", s.seed.map { "\($0)" } ?? "not recorded"),
        ]))
        page.paragraph("Effect status (primary): the fault effect is the faulty run's train accuracy minus its own fault-free reference's, step by step (the same batches), averaged over the last min(\(FaultEffect.window), steps) steps; it must clear a margin of \(Markup.number(Double(FaultEffect.threshold))) + z·sd/√k (sd: the reference's step-to-step accuracy noise; k: the steps averaged; z for \(Markup.number(Double(FaultEffect.confidence))) one-sided): Degraded below −margin, Improved above +margin, else Unaffected; Diverged: the loss went non-finite."
                       + (computed ? " This study.json predates the effect status: it is computed here from the curves." : ""), cls: "note")
        page.paragraph("Status as the reference study defines it: final accuracy minus the golden accuracy of the injected step, Recovered above +0.01, Degraded below −0.01, else Stable; Diverged: the loss went non-finite. It compares two single batches, so per-batch noise alone moves it (see the references' own statuses).", cls: "note")
        guard !s.experiments.isEmpty else {
            page.paragraph("No experiments in \(StudyFile.path(directory)).", cls: "empty")
            return page.rendered
        }
        page.heading("Legend")
        page.raw(HTMLPage.legend(statusesPresent.map { ($0, Palette.status($0)) }, extra: [("fault-free reference", Palette.golden, true)]))
        page.raw("<p class=\"note\">The reference study's statuses, in the charts that count them:</p>")
        page.raw(HTMLPage.legend(Palette.statuses.map { ($0, Palette.status($0)) }))
        summarySection(&page)
        effectSection(&page)
        curvesSection(&page)
        degradationSection(&page)
        experimentsSection(&page)
        return page.rendered
    }

    private func summarySection(_ page: inout HTMLPage) {
        page.heading("Outcome per optimizer")
        let rows = study.summaryRows
        let effects = study.effectCounts
        // The fault-free references under the reference study's rule, per optimizer.
        let references = optimizers.map { o -> (optimizer: String, counts: [(status: String, count: Int)]) in
            let statuses = study.experiments.flatMap(\.runs).filter { $0.optimizer == o }.map(\.displayReferenceStatus)
            let known: [(status: String, count: Int)] = Palette.statuses.map { s in (s, statuses.filter { $0 == s }.count) }
            let unknown = statuses.filter { !Palette.statuses.contains($0) }.count
            return (o, known + (unknown > 0 ? [("unknown", unknown)] : []))
        }
        func bars(_ title: String, _ data: [(optimizer: String, counts: [(status: String, count: Int)])]) -> String {
            StackedBars(title: title, rows: data.map { e in
                StackedBars.Row(label: e.optimizer, segments: e.counts.map { ($0.status, $0.count, Palette.status($0.status)) })
            }, width: 420).render()
        }
        page.paragraph("Left: the effect status of each faulty run against its own fault-free reference (the primary status). Middle: the same runs under the reference study's rule (final accuracy against the golden accuracy at the injection). Right: the fault-free references themselves under that rule; a reference that is not Stable shows what per-batch noise and the optimizer switch alone do to it.", cls: "note")
        page.figures([bars("Fault effect (primary)", effects),
                      bars("Faulty runs, reference study's status", rows.map { r in
                          (r.optimizer, [("Recovered", r.recovered), ("Stable", r.stable), ("Degraded", r.degraded), ("Diverged", r.diverged)])
                      }),
                      bars("Fault-free references, same rule", references)])
        func name(_ o: String) -> String { Markup.escape(o) + (o == study.baseline ? " (baseline)" : "") }
        page.raw("<h3>Effect statuses</h3>")
        page.raw(HTMLPage.table(header: ["optimizer", "Improved", "Unaffected", "Degraded", "Diverged", "mean smoothed effect"], rows: rows.map { r in
            let counts = effects.first { $0.optimizer == r.optimizer }?.counts ?? []
            func count(_ s: String) -> String { "\(counts.first { $0.status == s }?.count ?? 0)" }
            return [name(r.optimizer), count("Improved"), count("Unaffected"), count("Degraded"), count("Diverged"),
                    (r.meanSmoothedFaultEffect ?? meanSmoothedEffect(r.optimizer)).map(Markup.number) ?? "–"]
        }))
        page.raw("<h3>Status as the reference study defines it</h3>")
        page.raw(HTMLPage.table(header: ["optimizer", "Recovered", "Stable", "Degraded", "Diverged", "mean accuracy change", "mean degradation rate (per step)"], rows: rows.map { r in
            [name(r.optimizer), "\(r.recovered)", "\(r.stable)", "\(r.degraded)", "\(r.diverged)",
             r.meanAccuracyChange.map(Markup.number) ?? "–", r.meanDegradationRate.map(Markup.number) ?? "–"]
        }))
        page.raw("<h3>The fault-free references under that rule</h3>")
        page.raw(HTMLPage.table(header: ["optimizer"] + Palette.statuses, rows: references.map { e in
            [name(e.optimizer)] + Palette.statuses.map { s in "\(e.counts.first { $0.status == s }?.count ?? 0)" }
        }))
        let unknown = references.flatMap(\.counts).filter { $0.status == "unknown" }.map(\.count).reduce(0, +)
        if unknown > 0 { page.paragraph("\(unknown) reference run(s) without a recorded status or curve are not counted above.", cls: "note") }
    }

    /// The mean smoothed effect of an optimizer's runs that did not diverge (nil: none).
    private func meanSmoothedEffect(_ optimizer: String) -> Double? {
        let values = study.experiments.flatMap(\.runs).filter { $0.optimizer == optimizer && $0.divergenceStep == nil }
            .compactMap(\.effect.smoothed).filter(\.isFinite)
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    private func effectSection(_ page: inout HTMLPage) {
        page.heading("Fault effect")
        page.paragraph("Faulty minus its own fault-free reference's train accuracy, the mean of the last up to \(FaultEffect.window) steps at each step (its last value is the smoothed fault effect), against steps since the injection; one line per experiment, coloured by its effect status. The dashed lines are ±\(Markup.number(100 * Double(FaultEffect.threshold))) points; each run's own margin adds its reference's noise (hover).", cls: "note")
        var charts: [String] = []
        for o in optimizers {
            var series: [LineSeries] = []
            var xs: [Double] = []
            for e in study.experiments {
                guard let r = e.runs.first(where: { $0.optimizer == o }), let steps = r.steps, let curve = r.smoothedEffectCurve, !steps.isEmpty else { continue }
                let origin = Double(e.globalStep ?? steps[0])
                let points = zip(steps.map { Double($0) - origin }, curve).filter { $0.1.isFinite }.map { (x: $0.0, y: $0.1) }
                xs += points.map(\.x)
                let effect = r.effect
                let many = study.experiments.count > 12
                series.append(LineSeries(name: "experiment \(e.index) (\(effect.status), smoothed \(effect.smoothed.map(Markup.number) ?? "?"), margin \(effect.margin.map(Markup.number) ?? "?"))",
                                         color: Palette.status(effect.status), width: many ? 1.2 : 1.8, opacity: many ? 0.7 : 0.95, points: points, dots: !many))
            }
            let (lo, hi) = (xs.min() ?? 0, xs.max() ?? 1)
            let threshold = Double(FaultEffect.threshold)
            for sign in [1.0, -1.0] {
                series.append(LineSeries(name: "\(sign > 0 ? "+" : "−")\(Markup.number(threshold))", color: "#999999", dashed: true, width: 1, points: [(lo, sign * threshold), (hi, sign * threshold)], dots: false))
            }
            var chart = LineChart(title: "\(o)\(o == study.baseline ? " (baseline)" : "")", xTitle: "steps since injection", yTitle: "fault effect (points)",
                                  width: 420, height: 280, series: series, xRange: (-1, 0), integerX: true,
                                  yLabel: { Markup.number(100 * $0) }, yValue: { Markup.number(100 * $0) },
                                  xLabel: { Markup.tick($0, step: 1) }, markers: [(x: 0, label: "injection")], xName: { "step +\(Int($0))" })
            chart.hideLegend = true
            charts.append(chart.render())
        }
        page.figures(charts)
    }

    private func curvesSection(_ page: inout HTMLPage) {
        page.heading("Recovery curves")
        page.paragraph("Accuracy against steps since the injection, one panel per optimizer: each experiment's faulty run solid (coloured by its effect status), its fault-free reference dashed grey.", cls: "note")
        var charts: [String] = []
        for o in optimizers {
            var series: [LineSeries] = []
            for e in study.experiments {
                guard let r = e.runs.first(where: { $0.optimizer == o }), let steps = r.steps, !steps.isEmpty else { continue }
                let origin = Double(e.globalStep ?? steps[0])
                let xs = steps.map { Double($0) - origin }
                let many = study.experiments.count > 12
                let status = r.effect.status
                if let ref = r.referenceAccuracy {
                    series.append(LineSeries(name: "", color: Palette.golden, dashed: true, width: 1.2, opacity: 0.6,
                                             points: zip(xs, ref).map { ($0, $1) }, dots: false))
                }
                if let acc = r.accuracy {
                    series.append(LineSeries(name: "", color: Palette.status(status), width: many ? 1.2 : 1.8, opacity: many ? 0.7 : 0.95,
                                             points: zip(xs, acc).map { ($0, $1) }, dots: !many))
                }
                // Names only for hover texts: the legend is the page's.
                if !series.isEmpty {
                    let label = "experiment \(e.index) (\(status); reference-defined \(r.displayStatus))"
                    series[series.count - 1].name = label
                    if series.count >= 2, r.referenceAccuracy != nil, r.accuracy != nil { series[series.count - 2].name = "experiment \(e.index) reference (\(r.displayReferenceStatus))" }
                }
            }
            var chart = LineChart(title: "\(o)\(o == study.baseline ? " (baseline)" : "")", xTitle: "steps since injection", yTitle: "accuracy (%)",
                                  width: 420, height: 280, series: series, xRange: (-1, 0), integerX: true, yRange: (0, 1), yLabel: { Markup.tick(100 * $0, step: 10) }, yValue: { Markup.number(100 * $0) },
                                  xLabel: { Markup.tick($0, step: 1) }, markers: [(x: 0, label: "injection")], xName: { "step +\(Int($0))" })
            chart.hideLegend = true
            charts.append(chart.render())
        }
        page.figures(charts)
    }

    private func degradationSection(_ page: inout HTMLPage) {
        page.heading("Degradation rates")
        page.paragraph("Slope of accuracy per step at the end of each run (negative: still degrading). One dot per experiment, coloured by its effect status; the black bar is the mean.", cls: "note")
        let plot = DotPlot(title: "Degradation rate per optimizer", yTitle: "accuracy change per step", categories: optimizers.map { o in
            (o, study.experiments.compactMap { e in
                guard let r = e.runs.first(where: { $0.optimizer == o }), let rate = r.degradationRate else { return nil }
                return DotPlot.Dot(value: rate, color: Palette.status(r.effect.status),
                                   hover: "\(o), experiment \(e.index): \(Markup.number(rate)) per step (\(r.effect.status))")
            })
        })
        page.figures([plot.render()])
    }

    private func experimentsSection(_ page: inout HTMLPage) {
        page.heading("Experiments")
        page.paragraph("Per optimizer: the smoothed fault effect ± its margin and the effect status; under it the accuracy change since the injection (Δ) and the reference-defined status of the faulty run, then of its fault-free reference.", cls: "note")
        let header = ["#", "step", "site", "fault model", "value"] + optimizers
        let rows = study.experiments.map { e -> [String] in
            var row = ["\(e.index)", e.globalStep.map { "\($0)" } ?? "–", Markup.escape(e.site ?? "–"), Markup.escape(e.faultModel ?? "–"),
                       e.value.map(Markup.number) ?? "–"]
            for o in optimizers {
                guard let r = e.runs.first(where: { $0.optimizer == o }) else { row.append("–"); continue }
                let effect = r.effect
                row.append("<span class=\"swatch\" style=\"background:\(Palette.status(effect.status))\"></span>"
                           + Markup.escape("\(effect.smoothed.map(Markup.number) ?? "–") ± \(effect.margin.map(Markup.number) ?? "–") \(effect.status)")
                           + "<br><span class=\"evidence\">" + Markup.escape("Δ \(r.accuracyChange.map(Markup.number) ?? "–") \(r.displayStatus); reference \(r.displayReferenceStatus)") + "</span>")
            }
            return row
        }
        page.raw(HTMLPage.table(header: header, rows: rows, numericFrom: 5))
    }
}
