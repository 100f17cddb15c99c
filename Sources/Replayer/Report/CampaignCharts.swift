import Foundation

/// Horizontal interval bars in labelled groups (one group per layer, one bar per phase),
/// each bar a share with its 95 % Wilson interval and `k/n · p% [lo, hi]%` beside it; a bar
/// without experiments says so. The axis runs from 0 to ``axisMax``
/// (``IntervalBars/zoomedAxis(_:)``); bars past it end in a break mark.
struct GroupedIntervalBars {
    struct Group {
        var label: String
        var bars: [IntervalBar]
    }

    var title: String
    var subtitle: String
    var groups: [Group]
    var axisMax = 1.0
    var numbersWidth = 190.0

    func render() -> String {
        let rowHeight = 15.0, gap = 7.0, top = 48.0
        // Bold 11 px labels: about 7 px a character.
        let groupWidth = 16 + Double(groups.map(\.label.count).max() ?? 4) * 7.0
        let barLabelWidth = 12 + Double(groups.flatMap { $0.bars.map(\.label.count) }.max() ?? 4) * 6.0
        let plotWidth = 300.0
        let width = groupWidth + barLabelWidth + plotWidth + numbersWidth + 16
        let rows = Double(groups.map(\.bars.count).reduce(0, +))
        let height = top + rows * rowHeight + Double(groups.count) * gap + 40
        let axis = axisMax > 0 && axisMax.isFinite ? min(1, axisMax) : 1
        var svg = SVG(width: width, height: height, label: title)
        svg.text(8, 18, title, size: 13, weight: "600")
        svg.text(8, 34, subtitle, size: 10.5, fill: "#666")
        let left = groupWidth + barLabelWidth
        let plotHeight = height - top - 40
        let frame = PlotFrame(left: left, top: top, width: plotWidth, height: plotHeight, x: (0, axis), y: (0, 1))
        let ticks = LinearScale.nice(0, axis, count: 4)
        for t in ticks.ticks where t <= axis * (1 + 1e-9) {
            svg.line(frame.x(t), frame.top, frame.x(t), frame.bottom, stroke: "#e3e3e3")
            svg.text(frame.x(t), frame.bottom + 15, Markup.tick(100 * t, step: 100 * ticks.step) + "%", anchor: .middle, size: 11, fill: "#444")
        }
        svg.text(frame.left + frame.width / 2, frame.bottom + 32, "non-Masked share (%)", anchor: .middle, size: 11.5, fill: "#333")
        func x(_ share: Double) -> Double { frame.x(min(max(share, 0), axis)) }
        var y = top
        for (g, group) in groups.enumerated() {
            let groupHeight = Double(group.bars.count) * rowHeight
            if g % 2 == 0 { svg.rect(4, y - 2, width - 8, groupHeight + 4, fill: "#F5F5F5") }
            svg.text(groupWidth - 8, y + groupHeight / 2 + 4, group.label, anchor: .end, size: 11, weight: "600", fill: "#222")
            for b in group.bars {
                let numbers = b.total == 0 ? "no experiments" : (b.numbers ?? Markup.share(count: b.count, total: b.total, fraction: b.fraction, low: b.low, high: b.high))
                let hover = "\(group.label) \(b.label): \(numbers)"
                let cy = y + rowHeight / 2
                svg.text(left - 6, cy + 4, b.label, anchor: .end, size: 10.5, fill: b.total == 0 ? "#999" : "#333", title: hover)
                if b.total > 0 {
                    let end = b.count > 0 ? max(x(b.fraction), frame.left + IntervalBars.minimumBar) : frame.left
                    svg.rect(frame.left, y + 3, end - frame.left, rowHeight - 6, fill: b.color, title: hover)
                    if b.fraction > axis {
                        for dx in [-14.0, -9.0] { svg.line(frame.right + dx - 2, y + rowHeight - 3, frame.right + dx + 2, y + 3, stroke: "#FFFFFF", width: 2) }
                    }
                    if b.low <= axis && b.high > b.low {
                        svg.line(x(b.low), cy, x(b.high), cy, stroke: "#222", width: 1.1, title: hover)
                        svg.line(x(b.low), cy - 3.5, x(b.low), cy + 3.5, stroke: "#222", width: 1.1)
                        if b.high <= axis { svg.line(x(b.high), cy - 3.5, x(b.high), cy + 3.5, stroke: "#222", width: 1.1) }
                    }
                }
                svg.text(frame.right + 8, cy + 4, numbers, size: 10.5, fill: b.total == 0 || b.count == 0 ? "#999" : "#222", title: hover)
                y += rowHeight
            }
            y += gap
        }
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#666")
        if axis < 1 { svg.line(frame.right, frame.top, frame.right, frame.bottom, stroke: "#999", dash: "4 3") }
        return svg.rendered
    }
}

/// Counts per bit of a number format (most significant bit on the left, as the bits are
/// written), one stacked column per bit, a segment per outcome class, the total above each
/// column, and the format's fields (sign, exponent, mantissa) bracketed under the axis.
struct BitBars {
    var title: String
    var subtitle: String
    /// Bits in the format (32 for float32, 16 for bfloat16).
    var width: Int
    /// Exponent bits (8 for both formats); the sign is the top bit, the mantissa the rest.
    var exponentBits = 8
    /// `counts[bit]`: (class, count, colour) in the order to stack, bottom first.
    var counts: [Int: [(name: String, count: Int, color: String)]]

    func render() -> String {
        let column = width > 16 ? 22.0 : 30.0, left = 56.0, top = 44.0, plotHeight = 170.0
        let chartWidth = left + Double(width) * column + 20
        let height = top + plotHeight + 74
        var svg = SVG(width: chartWidth, height: height, label: title)
        svg.text(8, 18, title, size: 13, weight: "600")
        svg.text(8, 34, subtitle, size: 10.5, fill: "#666")
        let maxTotal = max(1, counts.values.map { $0.map(\.count).reduce(0, +) }.max() ?? 1)
        let ticks = LinearScale.nice(0, Double(maxTotal), count: 4, minStep: 1)
        let frame = PlotFrame(left: left, top: top + 14, width: Double(width) * column, height: plotHeight - 14, x: (0, Double(width)), y: (0, ticks.high))
        for t in ticks.ticks {
            svg.line(frame.left, frame.y(t), frame.right, frame.y(t), stroke: "#e3e3e3")
            svg.text(frame.left - 6, frame.y(t) + 4, Markup.tick(t, step: ticks.step), anchor: .end, size: 11, fill: "#444")
        }
        svg.text(frame.left - 40, frame.top + frame.height / 2, "experiments", anchor: .middle, size: 11.5, fill: "#333", rotate: -90)
        for slot in 0..<width {
            let bit = width - 1 - slot
            let x0 = frame.left + Double(slot) * column
            svg.text(x0 + column / 2, frame.bottom + 14, "\(bit)", anchor: .middle, size: 10, fill: "#444")
            guard let segments = counts[bit] else { continue }
            let total = segments.map(\.count).reduce(0, +)
            var base = 0
            for s in segments where s.count > 0 {
                let hover = "bit \(bit): \(s.name) \(s.count) of \(total)"
                let (yTop, yBottom) = (frame.y(Double(base + s.count)), frame.y(Double(base)))
                svg.rect(x0 + 3, yTop, column - 6, yBottom - yTop, fill: s.color, stroke: "#FFFFFF", title: hover)
                base += s.count
            }
            if total > 0 {
                svg.text(x0 + column / 2, frame.y(Double(total)) - 4, "\(total)", anchor: .middle, size: 10, weight: "600", fill: "#222",
                         title: "bit \(bit): " + segments.filter { $0.count > 0 }.map { "\($0.name) \($0.count)" }.joined(separator: ", "))
            }
        }
        svg.line(frame.left, frame.bottom, frame.right, frame.bottom, stroke: "#666")
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#666")
        // The fields: sign (top bit), exponent, mantissa.
        let fields = [("sign", width - 1, width - 1), ("exponent", width - 2, width - 1 - exponentBits), ("mantissa", width - 2 - exponentBits, 0)]
        let by = frame.bottom + 26
        for (name, high, low) in fields where high >= low {
            let xa = frame.left + Double(width - 1 - high) * column + 2, xb = frame.left + Double(width - low) * column - 2
            svg.line(xa, by, xb, by, stroke: "#888")
            svg.line(xa, by - 4, xa, by, stroke: "#888")
            svg.line(xb, by - 4, xb, by, stroke: "#888")
            svg.text((xa + xb) / 2, by + 13, name, anchor: .middle, size: 10.5, fill: "#555")
        }
        svg.text(frame.left + frame.width / 2, by + 30, "bit (0 = least significant)", anchor: .middle, size: 11.5, fill: "#333")
        return svg.rendered
    }
}

/// How many steps after the injection each outcome class showed itself: one row per class,
/// one column per bin of steps, a disc per cell whose area grows with the count (printed).
struct OnsetGrid {
    struct Row {
        var label: String
        var color: String
        /// Per bin of ``OnsetGrid/bins``.
        var counts: [Int]
        /// Text right of the row (median and range).
        var note: String
    }

    var title: String
    var subtitle: String
    var bins: [String]
    var rows: [Row]

    /// Bins of steps after the injection: 0, 1, 2, 3-5, 6-10, 11-20, 21-50, 51-100, 101-200,
    /// ... (1-2-5 steps), as many as reach `maximum`.
    static func bins(upTo maximum: Int) -> [ClosedRange<Int>] {
        var out: [ClosedRange<Int>] = [0...0, 1...1, 2...2]
        var low = 3, scale = 1
        while out.last.map({ $0.upperBound < maximum }) ?? true {
            for high in [5 * scale, 10 * scale, 20 * scale] where high >= low {
                out.append(low...high)
                low = high + 1
            }
            scale *= 10
        }
        // Keep bins up to the one that holds the maximum.
        let last = out.firstIndex { $0.contains(max(0, maximum)) } ?? out.count - 1
        return Array(out.prefix(last + 1))
    }

    static func label(_ r: ClosedRange<Int>) -> String { r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)" }

    func render() -> String {
        let labelWidth = 12 + Double(rows.map(\.label.count).max() ?? 4) * 7, column = 54.0, rowHeight = 34.0, top = 62.0
        let noteWidth = 230.0
        let width = labelWidth + Double(bins.count) * column + noteWidth
        let height = top + Double(rows.count) * rowHeight + 40
        var svg = SVG(width: width, height: height, label: title)
        svg.text(8, 18, title, size: 13, weight: "600")
        svg.text(8, 34, subtitle, size: 10.5, fill: "#666")
        let maxCount = max(1, rows.flatMap(\.counts).max() ?? 1)
        for (j, b) in bins.enumerated() {
            svg.text(labelWidth + (Double(j) + 0.5) * column, top - 8, b, anchor: .middle, size: 11, fill: "#444")
        }
        svg.text(labelWidth + Double(bins.count) * column / 2, height - 12, "steps after the injected step (onset − injected step)", anchor: .middle, size: 11.5, fill: "#333")
        for (i, r) in rows.enumerated() {
            let cy = top + (Double(i) + 0.5) * rowHeight
            svg.line(labelWidth, cy, labelWidth + Double(bins.count) * column, cy, stroke: "#EEEEEE")
            svg.text(labelWidth - 8, cy + 4, r.label, anchor: .end, size: 11.5, fill: "#222")
            for (j, k) in r.counts.enumerated() where k > 0 {
                let cx = labelWidth + (Double(j) + 0.5) * column
                let radius = 3 + 11 * (Double(k) / Double(maxCount)).squareRoot()
                let hover = "\(r.label): \(k) with onset \(bins[j]) step(s) after the injection"
                svg.circle(cx, cy, r: radius, fill: r.color, opacity: 0.85, title: hover)
                svg.text(cx + radius + 2, cy - radius + 4, "\(k)", size: 10.5, weight: "600", fill: "#222", title: hover)
            }
            svg.text(labelWidth + Double(bins.count) * column + 10, cy + 4, r.note, size: 11, fill: "#444")
        }
        return svg.rendered
    }
}
