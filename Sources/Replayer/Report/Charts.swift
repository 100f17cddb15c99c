import Foundation

/// One line of a ``LineChart``: `y` may be non-finite or off the chart's scale.
struct LineSeries {
    var name: String
    var color: String
    var dashed = false
    var width = 2.0
    var opacity = 1.0
    var points: [(x: Double, y: Double)]
    /// Hover dots with the values (left out for long series: the file would grow).
    var dots = true
}

/// A line chart with a legend, vertical markers (the injection), and explicit handling of
/// what a fault does to curves: a series stops at its first non-finite value, marked
/// "NaN from step k" at the top edge, and values above the y range are drawn on the top
/// edge as triangles, their real values on hover.
struct LineChart {
    var title: String
    var xTitle: String
    var yTitle: String
    var width = 620.0
    var height = 300.0
    var series: [LineSeries]
    /// Values the x range must include besides the points (room left of the injection).
    var xRange: (Double, Double)?
    /// x is a step count: ticks at whole numbers only.
    var integerX = false
    /// Fixed y range (accuracy: 0...1); nil: from the finite values, clipped at `yCap`.
    var yRange: (Double, Double)?
    /// The highest value the automatic y range may reach (huge faulty losses would flatten
    /// the golden curve).
    var yCap: Double?
    var yLabel: (Double) -> String = { Markup.number($0) }
    /// A point's value in its hover text, in the axis's unit (e.g. a fraction shown as %).
    var yValue: (Double) -> String = { Markup.number($0) }
    var xLabel: (Double) -> String = { Markup.number($0) }
    /// Vertical lines with a label (x, text).
    var markers: [(x: Double, label: String)] = []
    /// Text for the x value in hover texts ("step 12").
    var xName: (Double) -> String = { "x \(Markup.number($0))" }
    /// No legend row (the page carries the legend; series names only in hover texts).
    var hideLegend = false

    func render() -> String {
        var svg = SVG(width: width, height: height, label: title)
        let finiteX = series.flatMap { $0.points.map(\.x) } + markers.map(\.x) + (xRange.map { [$0.0, $0.1] } ?? [])
        // Integer x (steps) never gets fractional ticks.
        let xs = LinearScale.nice(finiteX.min() ?? 0, finiteX.max() ?? 1, count: 6, minStep: integerX ? 1 : 0)
        let xTicks = xs.ticks
        let yDomain: (low: Double, high: Double, step: Double, ticks: [Double])
        if let r = yRange {
            yDomain = LinearScale.nice(r.0, r.1, count: 5)
        } else {
            var ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
            if let cap = yCap { ys = ys.map { min($0, cap) } }
            yDomain = LinearScale.nice(ys.min() ?? 0, ys.max() ?? 1, count: 5)
        }
        // Legend: right of the title, wrapping onto further rows when it does not fit.
        var legend: [(x: Double, y: Double, series: LineSeries)] = []
        var lx = 8 + Double(title.count) * 7.4 + 24, ly = 16.0
        for s in series where !s.name.isEmpty && !hideLegend {
            let itemWidth = 27 + Double(s.name.count) * 6.2 + 16
            if lx + itemWidth > width - 8 { (lx, ly) = (8, ly + 16) }
            legend.append((lx, ly, s))
            lx += itemWidth
        }
        // A row for the markers' labels between the legend and the plot.
        let top = ly + (markers.isEmpty ? 12 : 22)
        let frame = PlotFrame(left: 62, top: top, width: width - 62 - 16, height: height - top - 46,
                              x: (xs.low, xs.high), y: (yDomain.low, yDomain.high))
        svg.text(8, 16, title, size: 13, weight: "600")
        frame.drawAxes(&svg, xTicks: xTicks, xLabel: { xLabel($0) }, xTitle: xTitle,
                       yTicks: yDomain.ticks, yLabel: { yLabel($0) }, yTitle: yTitle)
        for item in legend {
            svg.line(item.x, item.y - 4, item.x + 22, item.y - 4, stroke: item.series.color, width: 2.5, dash: item.series.dashed ? "6 4" : nil)
            svg.text(item.x + 27, item.y, item.series.name, size: 11, fill: "#333")
        }
        for m in markers {
            let px = frame.x(m.x)
            svg.line(px, frame.top - 4, px, frame.bottom, stroke: "#555", width: 1.2, dash: "3 3", title: m.label)
            let right = px > frame.left + frame.width * 0.7
            svg.text(px + (right ? -4 : 4), frame.top - 6, m.label, anchor: right ? .end : .start, size: 10.5, fill: "#555")
        }
        var labelSlots = 0
        for s in series {
            var segment: [(Double, Double)] = []
            var dots: [(x: Double, y: Double, clipped: Bool, value: (Double, Double))] = []
            var broke: (x: Double, y: Double)?
            for p in s.points {
                guard p.y.isFinite else { broke = p; break }
                let clipped = p.y > yDomain.high || p.y < yDomain.low
                let py = frame.y(min(max(p.y, yDomain.low), yDomain.high))
                segment.append((frame.x(p.x), py))
                dots.append((frame.x(p.x), py, clipped, (p.x, p.y)))
            }
            svg.polyline(segment, stroke: s.color, width: s.width, dash: s.dashed ? "6 4" : nil, opacity: s.opacity, title: s.name)
            for d in dots where d.clipped {
                let up = d.value.1 > yDomain.high
                let (x, y) = (d.x, d.y)
                svg.polygon(up ? [(x - 5, y + 7), (x + 5, y + 7), (x, y - 1)] : [(x - 5, y - 7), (x + 5, y - 7), (x, y + 1)], fill: s.color,
                            title: "\(s.name): \(xName(d.value.0)), \(Markup.number(d.value.1)) (off the scale)")
            }
            if s.dots && dots.count <= 80 {
                for d in dots where !d.clipped {
                    svg.circle(d.x, d.y, r: 2.6, fill: s.color, opacity: s.opacity,
                               title: "\(s.name): \(xName(d.value.0)), \(yTitle) \(yValue(d.value.1))")
                }
            }
            if let b = broke {
                let px = frame.x(b.x)
                let word = b.y.isNaN ? "NaN" : (b.y > 0 ? "+inf" : "-inf")
                let text = "\(word) from \(xName(b.x))"
                svg.line(px - 5, frame.top + 2, px + 5, frame.top + 12, stroke: s.color, width: 2.5)
                svg.line(px - 5, frame.top + 12, px + 5, frame.top + 2, stroke: s.color, width: 2.5)
                if let last = segment.last {
                    svg.line(last.0, last.1, px, frame.top + 7, stroke: s.color, width: 1, dash: "2 3")
                }
                let anchor: SVG.Anchor = px > frame.left + frame.width * 0.6 ? .end : .start
                svg.text(px + (anchor == .end ? -8 : 8), frame.top + 11 + Double(labelSlots) * 13, text, anchor: anchor, size: 11,
                         weight: "600", fill: s.color, title: "\(s.name): \(text)")
                labelSlots += 1
            }
        }
        return svg.rendered
    }
}

/// One bar of ``IntervalBars``: a share with its 95 % Wilson interval.
struct IntervalBar {
    var label: String
    var color: String
    var count: Int
    var total: Int
    var fraction: Double
    var low: Double
    var high: Double
}

/// Horizontal bars of shares (0-100 %) with Wilson-interval whiskers, each labelled with
/// `k/n · p% [lo, hi]%`.
struct IntervalBars {
    var title: String
    var bars: [IntervalBar]
    var width = 600.0

    func render() -> String {
        let rowHeight = 24.0, labelWidth = 150.0, numbersWidth = 176.0, top = 44.0
        let height = top + Double(bars.count) * rowHeight + 40
        var svg = SVG(width: width, height: height, label: title)
        let frame = PlotFrame(left: labelWidth, top: top, width: width - labelWidth - numbersWidth, height: Double(bars.count) * rowHeight,
                              x: (0, 1), y: (0, 1))
        svg.text(8, 18, title, size: 13, weight: "600")
        svg.text(8, 34, "bars: share of experiments; whiskers: 95% Wilson interval", size: 10.5, fill: "#666")
        for t in stride(from: 0.0, through: 1.0, by: 0.25) {
            let px = frame.x(t)
            svg.line(px, frame.top, px, frame.bottom, stroke: "#e3e3e3")
            svg.text(px, frame.bottom + 15, Markup.percent(t).replacingOccurrences(of: ".0%", with: "%"), anchor: .middle, size: 11, fill: "#444")
        }
        svg.text(frame.left + frame.width / 2, frame.bottom + 32, "share of experiments (%)", anchor: .middle, size: 11.5, fill: "#333")
        for (i, b) in bars.enumerated() {
            let y = frame.top + Double(i) * rowHeight
            let numbers = Markup.share(count: b.count, total: b.total, fraction: b.fraction, low: b.low, high: b.high)
            let hover = "\(b.label): \(numbers)"
            svg.text(labelWidth - 8, y + rowHeight / 2 + 4, b.label, anchor: .end, size: 11.5, fill: b.count == 0 ? "#999" : "#222", title: hover)
            svg.rect(frame.left, y + 4, frame.x(b.fraction) - frame.left, rowHeight - 8, fill: b.color, title: hover)
            let (xl, xh, cy) = (frame.x(b.low), frame.x(b.high), y + rowHeight / 2)
            svg.line(xl, cy, xh, cy, stroke: "#222", width: 1.3, title: hover)
            svg.line(xl, cy - 5, xl, cy + 5, stroke: "#222", width: 1.3)
            svg.line(xh, cy - 5, xh, cy + 5, stroke: "#222", width: 1.3)
            svg.text(frame.right + 8, cy + 4, numbers, size: 11, fill: b.count == 0 ? "#999" : "#222", title: hover)
        }
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#666")
        return svg.rendered
    }
}

/// A grid of cells: rows and columns labelled, each cell a share (its colour) with a text,
/// a hover text and an optional corner swatch; nil cells drawn visibly empty (hatched).
struct HeatMap {
    struct Cell {
        var share: Double
        var text: String
        var hover: String
        /// A small square in the corner (the dominant non-Masked outcome's colour).
        var swatch: String?
    }

    var title: String
    var subtitle: String
    var rows: [String]
    var columns: [String]
    /// `cells[row][column]`.
    var cells: [[Cell?]]
    var legendTitle: String

    func render() -> String {
        // Narrower cells when there are many columns (18 fault models and hardware labels), so the map fits a page.
        let cellWidth = min(50, max(30, 980 / Double(max(1, columns.count)))), cellHeight = 22.0
        let labelWidth = 8 + Double(rows.map(\.count).max() ?? 4) * 6.6
        let columnLabelHeight = 12 + Double(columns.map(\.count).max() ?? 4) * 6.2 * 0.72
        let top = 44 + columnLabelHeight
        let legendWidth = 190.0
        let width = labelWidth + Double(columns.count) * cellWidth + 24 + legendWidth
        let height = max(top + Double(rows.count) * cellHeight + 20, top + 150)
        var svg = SVG(width: width, height: height, label: title)
        svg.text(8, 18, title, size: 13, weight: "600")
        svg.text(8, 34, subtitle, size: 10.5, fill: "#666")
        for (j, c) in columns.enumerated() {
            let x = labelWidth + (Double(j) + 0.5) * cellWidth
            svg.text(x + 4, top - 6, c, size: 11, fill: "#333", rotate: -45)
        }
        for (i, r) in rows.enumerated() {
            let y = top + Double(i) * cellHeight
            svg.text(labelWidth - 6, y + cellHeight / 2 + 4, r, anchor: .end, size: 11, fill: "#333")
            for (j, _) in columns.enumerated() {
                let x = labelWidth + Double(j) * cellWidth
                let cell = i < cells.count && j < cells[i].count ? cells[i][j] : nil
                guard let cell else {
                    svg.rect(x + 1, y + 1, cellWidth - 2, cellHeight - 2, fill: "#F4F4F4", title: "\(r) × \(columns[j]): no experiments")
                    svg.line(x + 4, y + cellHeight - 4, x + cellWidth - 4, y + 4, stroke: "#DDDDDD")
                    continue
                }
                svg.rect(x + 1, y + 1, cellWidth - 2, cellHeight - 2, fill: Palette.heat(cell.share), stroke: "#E0E0E0", title: cell.hover)
                if let s = cell.swatch { svg.rect(x + 3, y + 3, 6, 6, fill: s, stroke: "#FFFFFF", title: cell.hover) }
                svg.text(x + cellWidth / 2 + 3, y + cellHeight / 2 + 4, cell.text, anchor: .middle, size: 10.5,
                         fill: Palette.heatNeedsLightText(cell.share) ? "#FFFFFF" : "#222", title: cell.hover)
            }
        }
        // Legend: the colour scale in five steps and the empty cell.
        let lx = labelWidth + Double(columns.count) * cellWidth + 24
        svg.text(lx, top + 10, legendTitle, size: 11, weight: "600", fill: "#333")
        for k in 0...4 {
            let share = Double(k) / 4
            let y = top + 20 + Double(k) * 18
            svg.rect(lx, y, 26, 16, fill: Palette.heat(share), stroke: "#E0E0E0")
            svg.text(lx + 32, y + 12, Markup.percent(share).replacingOccurrences(of: ".0%", with: "%"), size: 11, fill: "#333")
        }
        let ey = top + 20 + 5 * 18 + 6
        svg.rect(lx, ey, 26, 16, fill: "#F4F4F4")
        svg.line(lx + 3, ey + 13, lx + 23, ey + 3, stroke: "#DDDDDD")
        svg.text(lx + 32, ey + 12, "no experiments", size: 11, fill: "#333")
        svg.rect(lx + 9, ey + 26, 7, 7, fill: "#888888")
        svg.text(lx + 32, ey + 34, "corner: most frequent", size: 11, fill: "#333")
        svg.text(lx + 32, ey + 48, "non-Masked outcome", size: 11, fill: "#333")
        return svg.rendered
    }
}

/// Horizontal stacked bars of counts (one bar per row, one segment per class), each
/// segment's count printed where it fits.
struct StackedBars {
    struct Row {
        var label: String
        var segments: [(name: String, count: Int, color: String)]
        /// Text right of the bar.
        var note: String = ""
    }

    var title: String
    var rows: [Row]
    var width = 620.0

    func render() -> String {
        let rowHeight = 28.0, labelWidth = 90.0, noteWidth = 120.0, top = 34.0
        let height = top + Double(rows.count) * rowHeight + 38
        var svg = SVG(width: width, height: height, label: title)
        svg.text(8, 18, title, size: 13, weight: "600")
        let maxTotal = max(1, rows.map { $0.segments.map(\.count).reduce(0, +) }.max() ?? 1)
        let ticks = LinearScale.nice(0, Double(maxTotal), count: 5, minStep: 1)
        let frame = PlotFrame(left: labelWidth, top: top, width: width - labelWidth - noteWidth, height: Double(rows.count) * rowHeight,
                              x: (0, ticks.high), y: (0, 1))
        for t in ticks.ticks {
            svg.line(frame.x(t), frame.top, frame.x(t), frame.bottom, stroke: "#e3e3e3")
            svg.text(frame.x(t), frame.bottom + 15, Markup.tick(t, step: ticks.step), anchor: .middle, size: 11, fill: "#444")
        }
        svg.text(frame.left + frame.width / 2, frame.bottom + 32, "experiments", anchor: .middle, size: 11.5, fill: "#333")
        for (i, row) in rows.enumerated() {
            let y = frame.top + Double(i) * rowHeight
            svg.text(labelWidth - 8, y + rowHeight / 2 + 4, row.label, anchor: .end, size: 12, fill: "#222")
            var x0 = 0.0
            let total = row.segments.map(\.count).reduce(0, +)
            for s in row.segments where s.count > 0 {
                let (a, b) = (frame.x(x0), frame.x(x0 + Double(s.count)))
                let hover = "\(row.label): \(s.name) \(s.count) of \(total)"
                svg.rect(a, y + 4, b - a, rowHeight - 8, fill: s.color, stroke: "#FFFFFF", title: hover)
                if b - a >= 16 {
                    svg.text((a + b) / 2, y + rowHeight / 2 + 4, "\(s.count)", anchor: .middle, size: 11, weight: "600", fill: "#111", title: hover)
                }
                x0 += Double(s.count)
            }
            svg.text(frame.x(x0) + 6, y + rowHeight / 2 + 4, row.note, size: 11, fill: "#444")
        }
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#666")
        return svg.rendered
    }
}

/// Values per category as dots (spread sideways so they do not hide each other), the mean
/// of each category as a bar across them, and a zero line.
struct DotPlot {
    struct Dot {
        var value: Double
        var color: String
        var hover: String
    }

    var title: String
    var yTitle: String
    var categories: [(name: String, dots: [Dot])]
    var width = 620.0
    var height = 320.0

    func render() -> String {
        var svg = SVG(width: width, height: height, label: title)
        svg.text(8, 18, title, size: 13, weight: "600")
        let values = categories.flatMap { $0.dots.map(\.value) }.filter(\.isFinite) + [0]
        let ys = LinearScale.nice(values.min() ?? 0, values.max() ?? 1, count: 5)
        let n = Double(max(1, categories.count))
        let frame = PlotFrame(left: 76, top: 34, width: width - 76 - 16, height: height - 34 - 48, x: (0, n), y: (ys.low, ys.high))
        for t in ys.ticks {
            svg.line(frame.left, frame.y(t), frame.right, frame.y(t), stroke: t == 0 ? "#999" : "#e3e3e3", width: t == 0 ? 1.2 : 1)
            svg.text(frame.left - 6, frame.y(t) + 4, Markup.tick(t, step: ys.step), anchor: .end, size: 11, fill: "#444")
        }
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#666")
        svg.text(frame.left - 58, frame.top + frame.height / 2, yTitle, anchor: .middle, size: 12, fill: "#333", rotate: -90)
        for (i, c) in categories.enumerated() {
            let center = frame.x(Double(i) + 0.5)
            svg.text(center, frame.bottom + 18, c.name, anchor: .middle, size: 12, fill: "#222")
            let finite = c.dots.filter { $0.value.isFinite }
            for (k, d) in finite.enumerated() {
                // A fixed spread by position: the same file every time.
                let offset = (Double((k * 7) % 11) - 5) / 5 * min(28, frame.width / n * 0.3)
                svg.circle(center + offset, frame.y(d.value), r: 4, fill: d.color, stroke: "#FFFFFF", opacity: 0.9, title: d.hover)
            }
            if !finite.isEmpty {
                let mean = finite.map(\.value).reduce(0, +) / Double(finite.count)
                let half = min(40, frame.width / n * 0.4)
                let hover = "\(c.name): mean \(Markup.number(mean)) over \(finite.count) experiment(s)"
                svg.line(center - half, frame.y(mean), center + half, frame.y(mean), stroke: "#111", width: 2.5, title: hover)
                svg.text(center + half + 3, frame.y(mean) + 4, Markup.number(mean), size: 10.5, fill: "#111", title: hover)
            }
            let skipped = c.dots.count - finite.count
            if skipped > 0 { svg.text(center, frame.top + 12, "\(skipped) non-finite", anchor: .middle, size: 10.5, fill: "#D55E00") }
        }
        return svg.rendered
    }
}
