import Foundation
import Recorder
import Sim

/// The report of a campaign directory (`tpufi campaign` or `tpufi merge`): the header
/// (workload, the golden run's final accuracies, parameters, classifier, cost per
/// experiment, faults that changed nothing), outcome shares with Wilson intervals on an axis
/// zoomed to the rare classes (overall and by phase), the non-Masked share per layer and
/// operation (forward, grad_in, grad_wt), outcomes per flipped bit (software and hardware),
/// the onset of each class in steps after the injection, a layer × fault model heat map
/// coloured by the Wilson lower bound with small samples hatched, loss and accuracy curves of
/// selected faulty runs against golden from before the injection (test accuracies for
/// LowTestAccuracy), and the per-fault-model table.
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
    /// What is known of the golden run beyond its identity.
    public var golden: GoldenFacts

    /// At most this many runs get curves.
    public static let maxCurves = 6
    /// Heat-map cells with fewer experiments than this are hatched: their share is not a rate.
    public static let smallSample = 5

    /// `golden`: nil takes what `campaign.json` records (``GoldenFacts/init(identity:)``).
    public init(directory: String, manifest: CampaignManifest, results: [ExperimentResult], tornBytes: Int = 0, golden: GoldenFacts? = nil) {
        self.directory = directory
        self.manifest = manifest
        self.results = results.sorted { $0.index < $1.index }
        summary = CampaignSummary(manifest: manifest, results: results)
        self.tornBytes = tornBytes
        self.golden = golden ?? GoldenFacts(identity: manifest.golden)
    }

    /// Reads `campaign.json` and `results.jsonl` of `directory`, and the golden trace when
    /// `campaign.json` lacks the golden's accuracies or a plotted result lacks its golden
    /// context (``GoldenFacts/load(identity:)``).
    public static func load(directory: String) throws(ReportError) -> CampaignHTMLReport {
        var report: CampaignHTMLReport
        do {
            let manifest = try CampaignManifest.load(directory: directory)
            let log = try ResultsLog.read(directory: directory, campaign: manifest.id)
            report = CampaignHTMLReport(directory: directory, manifest: manifest, results: log.results, tornBytes: log.tornBytes)
        } catch {
            throw ReportError(error, directory: directory)
        }
        let needsContext = report.curveRuns.contains { $0.curve?.goldenBefore == nil && $0.globalStep > 0 }
        if report.golden.finalTrainAccuracy == nil || needsContext {
            report.golden = GoldenFacts.load(identity: report.manifest.golden)
        }
        return report
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
        page.paragraph("\(g.config.workload) (\(g.config.scaleName)) · golden \(goldenAccuracyBrief) · \(summary.completed) of \(summary.experiments) experiments · \(p.specs == nil ? "seed \(p.seed)" : "listed") · \(p.stepsAfterInjection.map { "\($0) steps after injection" } ?? "to the end of the golden run")", cls: "note")
        if summary.goldenNotLearned > 0 {
            page.paragraph("Warning: in \(summary.goldenNotLearned) of \(summary.completed) experiments the golden run had not learned over the compared steps (train accuracy within noise of chance): they are Masked for want of anything to degrade from, so this campaign's degrade shares say nothing about them (docs/outcomes.md, Noise).", cls: "warning")
        }
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
        layerPhaseSection(&page)
        bitSection(&page)
        onsetSection(&page)
        heatMapSection(&page)
        curveSection(&page)
        faultModelSection(&page)
        mitigationSection(&page)
        return page.rendered
    }

    /// `train 0.8123, test 0.7900` or `accuracy unknown`.
    private var goldenAccuracyBrief: String {
        guard let train = golden.finalTrainAccuracy else { return "accuracy unknown" }
        return "train accuracy \(Self.accuracy(train)), test \(golden.finalTestAccuracy.map(Self.accuracy) ?? "unknown")"
    }

    /// An accuracy as a fraction with four decimals (`NaN` when not finite).
    static func accuracy(_ x: Float) -> String { x.isFinite ? String(format: "%.4f", Double(x)) : Markup.number(Double(x)) }

    private var facts: [(String, String)] {
        let g = manifest.golden, p = manifest.parameters, c = g.config
        func list(_ xs: [String]?, all: Int? = nil) -> String {
            guard let xs else { return "all" }
            return all == xs.count ? "all (\(xs.count))" : xs.joined(separator: ", ")
        }
        var goldenRun: String
        if let train = golden.finalTrainAccuracy {
            goldenRun = "final train accuracy \(Self.accuracy(train)) (batch mean of its last \(min(GoldenIdentity.finalTrainWindow, g.completedSteps)) steps)"
            goldenRun += " · test accuracy " + (golden.finalTestAccuracy.map { Self.accuracy($0) + (golden.finalTestStep.map { s in " after \(s) steps" } ?? "") } ?? "unknown")
            if let n = golden.testCount { goldenRun += " (\(n) test examples)" }
            if let d = golden.dataset { goldenRun += " · data \(d)" }
            goldenRun += " · from \(golden.source)"
        } else {
            goldenRun = "final train and test accuracy unknown: \(golden.source)"
        }
        var out: [(String, String)] = [
            ("campaign", manifest.id + (manifest.shard.map { " (shard \($0))" } ?? "")),
            ("workload", "\(c.workload), scale \(c.scaleName), optimizer \(c.optimizer.kind.rawValue), \(c.replicas) replicas, \(c.precision.rawValue) on \(c.chip.name)"),
            ("golden run", goldenRun),
            ("golden trace", "\(g.directory) · \(g.completedSteps) steps (\(g.stepsPerEpoch) per epoch) · data \(g.dataDigest) · final state \(g.finalStateDigest)"),
            ("experiments", "\(summary.completed) of \(summary.experiments) planned" + (summary.missingCount == 0 ? "" : " · \(summary.missingCount) missing here")
                + (summary.goldenNotLearned == 0 ? "" : " · in \(summary.goldenNotLearned) the golden had not learned (no degrade class possible)")),
        ]
        // A listed campaign (`--specs`) drew nothing: its specs say what each experiment is.
        let models = ("fault models", p.kinds.contains(.software) ? list(p.faultModels.map(\.rawValue), all: FaultModel.allCases.count) : "none (hardware faults only)")
        let drawn: [(String, String)] = p.specs != nil ? [("seed", "none: the experiments are listed (--specs), not drawn"), models] : [
            ("seed", "\(p.seed)"),
            models,
            ("hardware faults", p.kinds.contains(.hardware)
                ? "registers \((p.registers ?? HardwareFault.Register.allCases).map(\.rawValue).joined(separator: ", ")) · \((p.hardwareFaults ?? HardwareFaultClass.allCases).map(\.rawValue).joined(separator: ", ")) · "
                    + (p.hardwareDrawing == .used ? "PEs and cycles the operation uses" : "PEs and cycles over the whole array")
                : "none"),
            ("site sampling", p.siteSampling == .all ? "all (every MXU operation)" : "reference (forward and _grad_in operations of the convolutions)"),
            ("phases", p.phases.map(\.rawValue).joined(separator: ", ")),
            ("layers", list(p.layers)),
            ("replicas", list(p.replicas?.map(String.init))),
            ("steps", p.steps?.description ?? "all"),
        ]
        out += drawn + [
            ("steps after injection", p.stepsAfterInjection.map { "\($0)" } ?? "to the end of the golden run"),
            ("experiment kinds", p.kinds.map(\.rawValue).joined(separator: ", ") + (p.specs != nil ? " (as the specs list them)" : "")),
            ("classifier", "accuracy band \(Markup.number(Double(p.thresholds.accuracyBand))), chance band \(Markup.number(Double(p.thresholds.chanceBand))), final window \(p.thresholds.finalWindow) steps, " + (p.thresholds.confidence == 0 ? "confidence 0: noise not accounted for (the band alone)" : "confidence \(Markup.number(Double(p.thresholds.confidence))) (one-sided, z = \(String(format: "%.3f", p.thresholds.z))) against the golden's noise")),
            ("early stop", p.earlyStop ? "yes (masked-exact, non-finite loss)" : "no"),
        ]
        if !results.isEmpty {
            let stopped = summary.stoppedEarly.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            out.append(("steps run", String(format: "%.2f", summary.meanStepsRun) + " per experiment (injected step included)" + (stopped.isEmpty ? "" : "; stopped early: \(stopped)")))
            out.append(("cost per experiment", costText))
            out.append(("changed nothing", notActivatedText))
        }
        return out
    }

    /// Mean, least and most wall time per experiment (the `seconds` of the results).
    private var costText: String {
        let seconds = results.map(\.seconds)
        let mean = seconds.reduce(0, +) / Double(max(1, seconds.count))
        var text = "mean \(Markup.number(mean)) s wall time (min \(Markup.number(seconds.min() ?? 0)), max \(Markup.number(seconds.max() ?? 0)); \(Markup.number(seconds.reduce(0, +))) s in all)"
        let mitigated = results.compactMap { $0.mitigated?.seconds }
        if !mitigated.isEmpty { text += "; with mitigation mean \(Markup.number(mitigated.reduce(0, +) / Double(mitigated.count))) s" }
        return text
    }

    /// Experiments whose fault changed nothing, as the header and the outcome section say it.
    private var notActivatedText: String {
        let known = results.filter { $0.activated != nil || $0.peInUse != nil }.count
        guard known > 0 else { return "not recorded (results written before injections recorded what they changed)" }
        let n = summary.notActivated
        var text = "\(n) of \(results.count) experiments: the fault changed no element (activated 0"
        text += summary.peNotInUse > 0 ? "; \(summary.peNotInUse) of them a hardware fault in a PE the operation does not use)" : ")"
        text += n == 0 ? "" : ", trivially Masked"
        if known < results.count { text += " · \(results.count - known) result(s) do not say" }
        return text
    }

    /// The zoomed axis of the outcome bars: the largest Wilson upper end of a non-Masked
    /// class over the overall and phase groups (``IntervalBars/zoomedAxis(_:)``).
    var outcomeAxis: Double {
        IntervalBars.zoomedAxis(summary.groups.filter { $0.dimension == "overall" || $0.dimension == "phase" }
            .flatMap { $0.outcomes.filter { $0.outcome != Outcome.masked.rawValue }.map(\.high) })
    }

    private func bars(_ group: CampaignSummary.Group, title: String, axis: Double) -> String {
        IntervalBars(title: title, bars: group.outcomes.map {
            IntervalBar(label: $0.outcome, color: Palette.outcome($0.outcome), count: $0.count, total: group.total, fraction: $0.fraction, low: $0.low, high: $0.high)
        }, axisMax: axis).render()
    }

    private func outcomeSection(_ page: inout HTMLPage) {
        page.heading("Outcomes")
        let axis = outcomeAxis
        var note = "Count, share and 95% Wilson interval of each class beside its bar."
        if axis < 1 {
            note += " The axis is zoomed to 0-\(Markup.tick(100 * axis, step: 1))% so that the rare classes can be read; a bar that runs past it (Masked) ends in a break mark, its numbers beside it."
        }
        if summary.notActivated > 0 {
            note += " Masked includes the \(summary.notActivated) experiment(s) whose fault changed nothing (see the header)."
        }
        page.paragraph(note, cls: "note")
        var charts: [String] = []
        if let overall = summary.groups.first(where: { $0.dimension == "overall" }) {
            charts.append(bars(overall, title: "All experiments (n = \(overall.total))", axis: axis))
        }
        for phase in summary.groups where phase.dimension == "phase" {
            charts.append(bars(phase, title: "\(phase.key == "forward" ? "Forward" : "Backward") phase (n = \(phase.total))", axis: axis))
        }
        page.figures(charts)
    }

    /// Layers of the golden run in execution order, restricted to the campaign's chosen
    /// layers; then any other layer the results name, sorted.
    private var layerOrder: [String] {
        var layers = manifest.golden.sites.map { SiteID(parsing: $0).layer }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        if let chosen = manifest.parameters.layers {
            let chosenLayers = Set(chosen.map { SiteID(parsing: $0).layer })
            layers = layers.filter(chosenLayers.contains)
        }
        return layers + Set(results.map(\.layer)).subtracting(layers).sorted()
    }

    /// The name of an operation kind in the report: `forward`, `grad_in`, `grad_wt`.
    static func kindName(_ k: OperationKind) -> String {
        switch k {
        case .forward: return "forward"
        case .gradIn: return "grad_in"
        case .gradWt: return "grad_wt"
        }
    }

    /// Per layer (execution order) and operation kind: non-Masked experiments of all there,
    /// with the Wilson interval. Kinds that occur in no result are left out; layers without
    /// experiments too.
    public var layerPhaseShares: [LayerShares] {
        let kinds = OperationKind.allCases.filter { k in results.contains { SiteID(parsing: $0.site).kind == k } }
        return layerOrder.compactMap { layer -> LayerShares? in
            let members = results.filter { $0.layer == layer }
            guard !members.isEmpty else { return nil }
            return LayerShares(layer: layer, kinds: kinds.map { k -> KindShare in
                let of = members.filter { SiteID(parsing: $0.site).kind == k }
                let bad = of.filter { $0.outcome != Outcome.masked.rawValue }.count
                let (low, high) = Wilson.interval(successes: bad, trials: of.count)
                return KindShare(kind: Self.kindName(k), count: bad, total: of.count, low: low, high: high)
            })
        }
    }

    /// One layer's non-Masked shares per operation kind.
    public struct LayerShares: Sendable, Equatable {
        public var layer: String
        public var kinds: [KindShare]
    }

    /// Non-Masked experiments among those that struck one operation kind of a layer.
    public struct KindShare: Sendable, Equatable {
        /// `forward`, `grad_in` or `grad_wt`.
        public var kind: String
        public var count: Int
        public var total: Int
        /// The 95 % Wilson interval of `count / total` ((0, 1) without experiments).
        public var low: Double
        public var high: Double
    }

    private func layerPhaseSection(_ page: inout HTMLPage) {
        page.heading("Vulnerability per layer and operation")
        let shares = layerPhaseShares
        let highs = shares.flatMap { $0.kinds.filter { $0.total > 0 }.map(\.high) }
        let axis = IntervalBars.zoomedAxis(highs)
        page.paragraph("Share of non-Masked outcomes among the experiments that struck each layer (execution order) in its forward operation, its input gradient (grad_in) or its weight gradient (grad_wt), with the count and the 95% Wilson interval. Layers without experiments are left out.", cls: "note")
        let groups = shares.map { s in
            GroupedIntervalBars.Group(label: s.layer, bars: s.kinds.map { b in
                IntervalBar(label: b.kind, color: Palette.heat(0.75), count: b.count, total: b.total,
                            fraction: b.total == 0 ? 0 : Double(b.count) / Double(b.total), low: b.low, high: b.high)
            })
        }
        page.figures([GroupedIntervalBars(title: "Non-Masked share per layer and operation", subtitle: "bars: non-Masked / experiments; whiskers: 95% Wilson interval" + (axis < 1 ? "; axis zoomed to 0-\(Markup.tick(100 * axis, step: 1))%" : ""),
                                          groups: groups, axisMax: axis).render()])
    }

    /// One bit's experiments: how many, and their outcome counts in class order.
    public struct BitRow: Sendable, Equatable {
        public var bit: Int
        public var experiments: Int
        /// Counts in the order of ``Outcome/allCases``.
        public var outcomes: [Int]
        /// Of them, faults that changed nothing.
        public var notActivated: Int
    }

    /// A panel of the per-bit section: the experiments of one kind whose flipped (software)
    /// or struck (hardware) bit indexes one format.
    public struct BitPanel: Sendable, Equatable {
        public var kind: ExperimentKind
        public var format: OperandPrecision
        /// Bits that occur, most significant first.
        public var rows: [BitRow]
        /// Experiments of this kind whose format is not recorded and was inferred.
        public var inferred: Int
        /// Experiments in the panel (one that flipped several bits is in several rows).
        public var experiments: Int
    }

    /// Width in bits of a format.
    static func bitWidth(_ f: OperandPrecision) -> Int { f == .bfloat16 ? 16 : 32 }

    /// The per-bit panels: software experiments with `bits` (each counted once per distinct
    /// bit it flipped), hardware experiments with `spec.hardware.bit`; software first, then
    /// hardware, float32 before bfloat16. A hardware result without `bitFormat` takes its
    /// register's: the partial sum float32, an operand register the golden's operand
    /// precision.
    public var bitPanels: [BitPanel] {
        var entries: [(kind: ExperimentKind, format: OperandPrecision, bit: Int, result: ExperimentResult, inferred: Bool)] = []
        for r in results {
            if let h = r.spec.hardware {
                let inferred = r.bitFormat == nil
                let format = r.bitFormat ?? (h.register == .partialSum ? .float32 : manifest.golden.config.precision)
                entries.append((.hardware, format, h.bit, r, inferred))
            } else if let bits = r.bits, !bits.isEmpty {
                for b in Set(bits).sorted() { entries.append((.software, r.bitFormat ?? .float32, b, r, r.bitFormat == nil)) }
            }
        }
        var panels: [BitPanel] = []
        for kind in [ExperimentKind.software, .hardware] {
            for format in [OperandPrecision.float32, .bfloat16] {
                let of = entries.filter { $0.kind == kind && $0.format == format }
                guard !of.isEmpty else { continue }
                let bits = Set(of.map(\.bit)).sorted(by: >)
                let rows = bits.map { b -> BitRow in
                    let members = of.filter { $0.bit == b }.map(\.result)
                    return BitRow(bit: b, experiments: members.count,
                                  outcomes: Outcome.allCases.map { o in members.filter { $0.outcome == o.rawValue }.count },
                                  notActivated: members.filter(\.changedNothing).count)
                }
                panels.append(BitPanel(kind: kind, format: format, rows: rows, inferred: Set(of.filter(\.inferred).map(\.result.index)).count,
                                       experiments: Set(of.map(\.result.index)).count))
            }
        }
        return panels
    }

    /// The field of `bit` in `format`: sign, exponent or mantissa.
    static func field(_ bit: Int, _ format: OperandPrecision) -> String {
        let width = bitWidth(format)
        return bit == width - 1 ? "sign" : bit >= width - 9 ? "exponent" : "mantissa"
    }

    private func bitSection(_ page: inout HTMLPage) {
        let panels = bitPanels
        guard !panels.isEmpty else { return }
        page.heading("Outcome per bit")
        page.paragraph("Experiments by the bit they flipped (software bit-flip models: the bits each result records; an experiment that flipped several different bits counts under each) or struck (hardware register faults: the bit of the fault, flips and stuck-at alike), in the encoding of the value or register struck, stacked by outcome class; one panel per kind and format. Software values are flipped as float32 before the MXU rounds its operands to bfloat16, so low mantissa bits of an input or weight mostly change nothing (the last column).", cls: "note")
        let present = Outcome.allCases.enumerated().filter { i, _ in panels.contains { $0.rows.contains { $0.outcomes[i] > 0 } } }
        for panel in panels {
            let kindName = panel.kind == .software ? "Software bit flips" : "Hardware register faults"
            let title = "\(kindName), \(panel.format.rawValue) bits (n = \(panel.experiments))"
            var counts: [Int: [(name: String, count: Int, color: String)]] = [:]
            for row in panel.rows {
                counts[row.bit] = Outcome.allCases.enumerated().map { i, o in (o.rawValue, row.outcomes[i], Palette.outcome(o.rawValue)) }
            }
            page.figures([BitBars(title: title, subtitle: "column: experiments per bit, stacked by outcome (Masked at the bottom); total above" + (panel.inferred > 0 ? "; \(panel.inferred) result(s) without a recorded format placed by their register" : ""),
                                  width: Self.bitWidth(panel.format), counts: counts).render()])
            let header = ["bit", "field", "n"] + present.map(\.element.rawValue) + ["non-Masked", "changed nothing"]
            let rows = panel.rows.map { row -> [String] in
                let bad = row.experiments - row.outcomes[0]
                let (low, high) = Wilson.interval(successes: bad, trials: row.experiments)
                return ["\(row.bit)", Self.field(row.bit, panel.format), "\(row.experiments)"]
                    + present.map { i, _ in row.outcomes[i] == 0 ? "<span class=\"zero\">0</span>" : "\(row.outcomes[i])" }
                    + [Markup.escape(Markup.share(count: bad, total: row.experiments, fraction: Double(bad) / Double(max(1, row.experiments)), low: low, high: high)),
                       row.notActivated == 0 ? "<span class=\"zero\">0</span>" : "\(row.notActivated)"]
            }
            page.raw(HTMLPage.table(header: header, rows: rows, numericFrom: 2))
        }
    }

    /// Per non-Masked class present: the steps from the injection to the onset of each of
    /// its experiments that records an onset, ascending.
    public var onsetDelays: [(outcome: String, delays: [Int])] {
        Outcome.allCases.filter { $0 != .masked }.compactMap { o -> (outcome: String, delays: [Int])? in
            let delays = results.filter { $0.outcome == o.rawValue }.compactMap { r in r.onset.map { max(0, $0 - r.globalStep) } }.sorted()
            return delays.isEmpty ? nil : (o.rawValue, delays)
        }
    }

    private func onsetSection(_ page: inout HTMLPage) {
        let delays = onsetDelays
        let withoutOnset = results.filter { $0.outcome != Outcome.masked.rawValue && $0.onset == nil }.count
        guard !delays.isEmpty || withoutOnset > 0 else { return }
        page.heading("Onset per class")
        var note = "When each non-Masked outcome showed itself: the onset step (the first non-finite loss, the collapse, the first step outside the golden's noise band, or the test evaluation; docs/outcomes.md) minus the injected step. 0: in the injected step itself."
        if withoutOnset > 0 { note += " \(withoutOnset) non-Masked result(s) record no onset (written before results carried it) and are left out." }
        page.paragraph(note, cls: "note")
        guard !delays.isEmpty else { return }
        let bins = OnsetGrid.bins(upTo: delays.flatMap(\.delays).max() ?? 0)
        let rows = delays.map { d -> OnsetGrid.Row in
            let n = d.delays.count
            let median = n % 2 == 1 ? Double(d.delays[n / 2]) : Double(d.delays[n / 2 - 1] + d.delays[n / 2]) / 2
            return OnsetGrid.Row(label: d.outcome, color: Palette.outcome(d.outcome), counts: bins.map { b in d.delays.filter(b.contains).count },
                                 note: "n = \(n) · median \(Markup.number(median)) · range \(d.delays.first ?? 0)-\(d.delays.last ?? 0)")
        }
        page.figures([OnsetGrid(title: "Steps from the injection to the onset", subtitle: "disc area: experiments; number: their count", bins: bins.map(OnsetGrid.label), rows: rows).render()])
    }

    /// A heat-map cell's numbers: the non-Masked experiments of a layer and fault model.
    public struct HeatCell: Sendable, Equatable {
        public var count: Int
        public var total: Int
        public var low: Double
        public var high: Double
        /// Fewer than ``CampaignHTMLReport/smallSample`` experiments.
        public var smallSample: Bool { total < CampaignHTMLReport.smallSample }
    }

    /// The non-Masked count of the experiments of `layer` and `model`, with its Wilson
    /// interval; nil when there are none.
    public func heatCell(layer: String, model: String) -> HeatCell? {
        let members = results.filter { $0.layer == layer && $0.faultModel == model }
        guard !members.isEmpty else { return nil }
        let bad = members.filter { $0.outcome != Outcome.masked.rawValue }.count
        let (low, high) = Wilson.interval(successes: bad, trials: members.count)
        return HeatCell(count: bad, total: members.count, low: low, high: high)
    }

    private func heatMapSection(_ page: inout HTMLPage) {
        page.heading("Outcome by layer and fault model")
        // Rows: every layer of the golden run in execution order (empty rows show where
        // nothing was drawn); columns: the fault models the campaign draws from.
        let layers = layerOrder
        // Software columns only where the campaign draws software faults; hardware labels
        // (HW_<register>_<class>) follow as they occur.
        var models = manifest.parameters.kinds.contains(.software) ? manifest.parameters.faultModels.map(\.rawValue) : []
        models += Set(results.map(\.faultModel)).subtracting(models).sorted()
        let cells: [[HeatMap.Cell?]] = layers.map { layer in
            models.map { model in
                guard let cell = heatCell(layer: layer, model: model) else { return nil }
                let members = results.filter { $0.layer == layer && $0.faultModel == model }
                let counts = Outcome.allCases.map(\.rawValue).map { o in (o, members.filter { $0.outcome == o }.count) }.filter { $0.1 > 0 }
                // The most frequent non-Masked class (ties: the order of docs/outcomes.md).
                let dominant = counts.filter { $0.0 != Outcome.masked.rawValue }.max { a, b in a.1 < b.1 }
                let share = Double(cell.count) / Double(cell.total)
                let hover = "\(layer) × \(model): \(cell.total) experiment(s), non-Masked \(Markup.share(count: cell.count, total: cell.total, fraction: share, low: cell.low, high: cell.high))"
                    + (cell.smallSample ? "\nfewer than \(Self.smallSample) experiments: hatched, not a rate" : "") + "\n"
                    + counts.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
                return HeatMap.Cell(share: cell.low, text: "\(cell.count)/\(cell.total)", hover: hover, swatch: dominant.map { Palette.outcome($0.0) },
                                    smallSample: cell.smallSample)
            }
        }
        page.paragraph("Each cell: non-Masked experiments / experiments for that layer (rows, in execution order) and fault model (columns). The colour is the lower end of the 95% Wilson interval of the non-Masked share, so a cell is only as dark as its sample supports (1 of 1 is 21%, 10 of 10 is 72%); cells with fewer than \(Self.smallSample) experiments are also hatched.", cls: "note")
        page.figures([HeatMap(title: "Non-Masked share by layer and fault model", subtitle: "cell text: non-Masked / experiments (n); hover for the share, its interval and the outcome counts",
                              rows: layers, columns: models, cells: cells, legendTitle: "non-Masked share",
                              legendNote: ["colour: lower end of its", "95% Wilson interval"],
                              smallSampleNote: ["hatched: n < \(Self.smallSample),", "too few to read as a rate"]).render()])
    }

    private func curveSection(_ page: inout HTMLPage) {
        page.heading("Loss and accuracy: golden vs faulty runs")
        let runs = curveRuns
        guard !runs.isEmpty else {
            page.paragraph("These results carry no per-step curves (written by a tpufi before results recorded them); run the campaign again with this tpufi to see them.", cls: "note")
            return
        }
        page.paragraph("Up to \(Self.maxCurves) runs, one per outcome class present (non-Masked first). Golden: dashed dark grey, from up to \(ExperimentResult.Curve.contextSteps) steps before the injection where known; faulty: solid, in its outcome's colour, from the injected step (before it, the faulty run is the golden run). Train loss and batch train accuracy per step; the dashed vertical line is the injected step. A LowTestAccuracy run shows the test accuracies that define its class instead.", cls: "note")
        for r in runs {
            guard let c = r.curve else { continue }
            let n = c.count
            let steps = c.steps.prefix(n).map(Double.init)
            func points(_ ys: [Float]) -> [(x: Double, y: Double)] { zip(steps, ys.prefix(n)).map { ($0, Double($1)) } }
            let before = c.goldenBefore?.points ?? golden.context(before: r.globalStep)
            let beforeLoss = before.map { (x: Double($0.step), y: Double($0.loss)) }
            let beforeAccuracy = before.map { (x: Double($0.step), y: Double($0.accuracy)) }
            let color = Palette.outcome(r.outcome)
            let xStart = Double(before.first?.step ?? (r.globalStep - 1))
            page.raw("<div class=\"run\">")
            page.raw("<h3><span class=\"swatch-inline\" style=\"color:\(color)\">■</span> experiment \(r.index) · \(Markup.escape(r.outcome)) · \(Markup.escape(r.site)) · \(Markup.escape(r.faultModel)) · step \(r.globalStep) · replica \(r.replica)</h3>")
            page.raw("<p class=\"evidence\">\(Markup.escape(r.evidence.joined(separator: "; ")))\(r.stoppedEarly.map { " · stopped early: \(Markup.escape($0))" } ?? "")</p>")
            if r.outcome == Outcome.lowTestAccuracy.rawValue, let gt = r.goldenTestAccuracy, let ft = r.faultyTestAccuracy {
                page.figures([testAccuracyChart(r, golden: gt, faulty: ft)])
                page.raw("</div>")
                continue
            }
            // Faulty first and wider, golden dashed on top: where they coincide (Masked) both
            // stay visible.
            let goldenSeries = LineSeries(name: "golden", color: Palette.golden, dashed: true, width: 1.6, points: beforeLoss + points(c.goldenLoss))
            let faulty = LineSeries(name: "faulty (\(r.outcome))", color: color, width: 3, points: points(c.loss))
            let goldenLoss = (before.map(\.loss) + c.goldenLoss.prefix(n)).map(Double.init).filter(\.isFinite)
            // Huge faulty losses are drawn on the top edge: the golden curve stays readable.
            let cap = goldenLoss.max().map { hi in hi + 3 * max(hi - (goldenLoss.min() ?? hi), 0.25 * abs(hi), 1e-3) }
            let marker = [(x: Double(r.globalStep), label: "injection (step \(r.globalStep))")]
            let stepName: (Double) -> String = { "step \(Int($0))" }
            let stepLabel: (Double) -> String = { Markup.tick($0, step: 1) }
            let loss = LineChart(title: "Train loss", xTitle: "global step", yTitle: "loss", series: [faulty, goldenSeries], xRange: (xStart, Double(r.globalStep)),
                                 integerX: true, yCap: cap, xLabel: stepLabel, markers: marker, xName: stepName)
            let accuracy = LineChart(title: "Train accuracy (batch)", xTitle: "global step", yTitle: "accuracy (%)",
                                     series: [LineSeries(name: "faulty (\(r.outcome))", color: color, width: 3, points: points(c.accuracy)),
                                              LineSeries(name: "golden", color: Palette.golden, dashed: true, width: 1.6, points: beforeAccuracy + points(c.goldenAccuracy))],
                                     xRange: (xStart, Double(r.globalStep)), integerX: true,
                                     yRange: (0, 1), yLabel: { Markup.tick(100 * $0, step: 10) }, yValue: { Markup.number(100 * $0) }, xLabel: stepLabel, markers: marker, xName: stepName)
            page.figures([loss.render(), accuracy.render()])
            page.raw("</div>")
        }
    }

    /// The test accuracies a LowTestAccuracy run was classified by: golden and faulty after
    /// the last step run, with 95 % Wilson intervals over the test set when its size is known.
    private func testAccuracyChart(_ r: ExperimentResult, golden gt: Float, faulty ft: Float) -> String {
        let step = r.globalStep + r.stepsRun - 1
        func bar(_ label: String, _ value: Float, _ color: String) -> IntervalBar {
            let v = Double(value)
            if let n = golden.testCount, n > 0 {
                let k = Int((v * Double(n)).rounded())
                let (low, high) = Wilson.interval(successes: k, trials: n)
                return IntervalBar(label: label, color: color, count: k, total: n, fraction: v, low: low, high: high,
                                   numbers: "\(k)/\(n) correct · \(Markup.percent(v)) \(Markup.interval(low, high))")
            }
            return IntervalBar(label: label, color: color, count: 1, total: 1, fraction: v, low: v, high: v, numbers: Markup.percent(v))
        }
        return IntervalBars(title: "Test accuracy after global step \(step), the last run (what LowTestAccuracy compares)",
                            bars: [bar("golden", gt, Palette.golden), bar("faulty", ft, Palette.outcome(r.outcome))], width: 680, numbersWidth: 240,
                            subtitle: "difference \(Markup.number(100 * Double(gt - ft))) points; whiskers: 95% Wilson interval over the test set"
                                + (golden.testCount == nil ? " (its size unknown: none drawn)" : ""),
                            axisTitle: "test accuracy (%)").render()
    }

    private func faultModelSection(_ page: inout HTMLPage) {
        page.heading("By fault model")
        let present = outcomesPresent
        page.paragraph("Counts, shares and 95% Wilson intervals per fault model (outcome classes that occur in this campaign); changed nothing: experiments whose fault changed no element (trivially Masked).", cls: "note")
        let header = ["fault model", "n", "changed nothing", "outcomes"] + present
        var rows: [[String]] = []
        for g in summary.groups where g.dimension == "faultModel" || g.dimension == "overall" {
            let unchanged = results.filter { (g.dimension == "overall" || $0.faultModel == g.key) && $0.changedNothing }.count
            var row = [g.dimension == "overall" ? "<b>all</b>" : Markup.escape(g.key), "\(g.total)",
                       unchanged == 0 ? "<span class=\"zero\">0</span>" : "\(unchanged)", miniBar(g)]
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
