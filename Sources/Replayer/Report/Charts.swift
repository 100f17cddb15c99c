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
    /// The text right of the bar; nil: `k/n · p% [lo, hi]%`.
    var numbers: String?
}

/// Horizontal bars of shares with Wilson-interval whiskers, each labelled with
/// `k/n · p% [lo, hi]%`. The axis runs from 0 to ``axisMax``: zoomed (see
/// ``zoomedAxis(_:)``) so that a class of 1 % is a visible bar; a bar that runs past it ends
/// at the edge in a break mark (two white slashes), a whisker without its end tick, the
/// numbers unchanged.
struct IntervalBars {
    var title: String
    var bars: [IntervalBar]
    var width = 600.0
    /// The share at the right end of the axis (1: the whole range, no break).
    var axisMax = 1.0
    /// Room right of the plot for the numbers.
    var numbersWidth = 176.0
    /// The line under the title; nil: what the bars and whiskers are, and the zoom.
    var subtitle: String?
    var axisTitle = "share of experiments (%)"
    /// Bars with a non-zero count are at least this wide (pixels), however small the share.
    static let minimumBar = 2.0

    /// The axis end that shows the shares `highs` (Wilson upper ends of the classes to be
    /// read, usually the non-Masked ones): the smallest of 1, 2, 5, 10, 20, 30, 50 % above
    /// the largest, or 100 % when that is past 50 %.
    static func zoomedAxis(_ highs: [Double]) -> Double {
        let top = highs.filter(\.isFinite).max() ?? 1
        return [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5].first { $0 >= top * 1.02 } ?? 1
    }

    func render() -> String {
        let rowHeight = 24.0, labelWidth = 150.0, top = 44.0
        let height = top + Double(bars.count) * rowHeight + 40
        let axis = axisMax > 0 && axisMax.isFinite ? min(1, axisMax) : 1
        var svg = SVG(width: width, height: height, label: title)
        let frame = PlotFrame(left: labelWidth, top: top, width: width - labelWidth - numbersWidth, height: Double(bars.count) * rowHeight,
                              x: (0, axis), y: (0, 1))
        svg.text(8, 18, title, size: 13, weight: "600")
        svg.text(8, 34, subtitle ?? (axis < 1 ? "bars: share; whiskers: 95% Wilson interval; axis zoomed to 0-\(Markup.tick(100 * axis, step: 1))% (a bar past it ends in //)"
                                 : "bars: share of experiments; whiskers: 95% Wilson interval"), size: 10.5, fill: "#666")
        let ticks = LinearScale.nice(0, axis, count: 4)
        for t in ticks.ticks where t <= axis * (1 + 1e-9) {
            let px = frame.x(t)
            svg.line(px, frame.top, px, frame.bottom, stroke: "#e3e3e3")
            svg.text(px, frame.bottom + 15, Markup.tick(100 * t, step: 100 * ticks.step) + "%", anchor: .middle, size: 11, fill: "#444")
        }
        svg.text(frame.left + frame.width / 2, frame.bottom + 32, axisTitle, anchor: .middle, size: 11.5, fill: "#333")
        func x(_ share: Double) -> Double { frame.x(min(max(share, 0), axis)) }
        for (i, b) in bars.enumerated() {
            let y = frame.top + Double(i) * rowHeight
            let numbers = b.numbers ?? Markup.share(count: b.count, total: b.total, fraction: b.fraction, low: b.low, high: b.high)
            let hover = "\(b.label): \(numbers)"
            svg.text(labelWidth - 8, y + rowHeight / 2 + 4, b.label, anchor: .end, size: 11.5, fill: b.count == 0 ? "#999" : "#222", title: hover)
            let barEnd = b.count > 0 ? max(x(b.fraction), frame.left + Self.minimumBar) : frame.left
            svg.rect(frame.left, y + 4, barEnd - frame.left, rowHeight - 8, fill: b.color, title: hover)
            if b.fraction > axis {
                // The break: two white slashes near the end of a bar that runs past the axis.
                for dx in [-16.0, -10.0] {
                    svg.line(frame.right + dx - 3, y + rowHeight - 3, frame.right + dx + 3, y + 3, stroke: "#FFFFFF", width: 2.2)
                }
            }
            let (xl, xh, cy) = (x(b.low), x(b.high), y + rowHeight / 2)
            if b.low <= axis && b.high > b.low {
                svg.line(xl, cy, xh, cy, stroke: "#222", width: 1.3, title: hover)
                svg.line(xl, cy - 5, xl, cy + 5, stroke: "#222", width: 1.3)
                if b.high <= axis { svg.line(xh, cy - 5, xh, cy + 5, stroke: "#222", width: 1.3) }
            }
            svg.text(frame.right + 8, cy + 4, numbers, size: 11, fill: b.count == 0 ? "#999" : "#222", title: hover)
        }
        svg.line(frame.left, frame.top, frame.left, frame.bottom, stroke: "#666")
        if axis < 1 { svg.line(frame.right, frame.top, frame.right, frame.bottom, stroke: "#999", dash: "4 3") }
        return svg.rendered
    }
}

/// A grid of cells: rows and columns labelled, each cell coloured by a share with a text, a
/// hover text and an optional corner swatch; nil cells drawn visibly empty. A cell marked
/// ``Cell/smallSample`` is hatched: its share rests on too few experiments to be read as a
/// rate.
struct HeatMap {
    struct Cell {
        /// The share that sets the colour (the report gives the Wilson interval's lower end,
        /// so that a cell is only as dark as its sample supports).
        var share: Double
        var text: String
        var hover: String
        /// A small square in the corner (the dominant non-Masked outcome's colour).
        var swatch: String?
        /// Hatched: fewer experiments than the legend's threshold.
        var smallSample = false
    }

    var title: String
    var subtitle: String
    var rows: [String]
    var columns: [String]
    /// `cells[row][column]`.
    var cells: [[Cell?]]
    var legendTitle: String
    /// Legend lines under the colour scale's title (what the colour is).
    var legendNote: [String] = []
    /// Legend text of a hatched cell (nil: no hatched cells explained).
    var smallSampleNote: [String]?

    /// The hatch of a small-sample cell: grey diagonals (tests look for the colour).
    static let hatchColor = "#8C8C8C"

    private static func hatch(_ svg: inout SVG, _ x: Double, _ y: Double, _ w: Double, _ h: Double) {
        var d = 4.0
        while d < w + h {
            // The line x' + y' = d (relative to the cell's corner), clipped to the cell.
            let x1 = x + max(0, d - h), y1 = y + min(h, d)
            let x2 = x + min(w, d), y2 = y + max(0, d - w)
            svg.line(x1, y1, x2, y2, stroke: hatchColor, width: 0.8)
            d += 6
        }
    }

    func render() -> String {
        // Narrower cells when there are many columns (18 fault models and hardware labels), so
        // the map with its legend fits a page of 1300 px.
        let labelWidth = 8 + Double(rows.map(\.count).max() ?? 4) * 6.6
        let legendWidth = 200.0
        let cellWidth = min(50, max(30, (1300 - labelWidth - 24 - legendWidth) / Double(max(1, columns.count)))), cellHeight = 22.0
        let columnLabelHeight = 12 + Double(columns.map(\.count).max() ?? 4) * 6.2 * 0.72
        let top = 44 + columnLabelHeight
        let width = labelWidth + Double(columns.count) * cellWidth + 24 + legendWidth
        let height = max(top + Double(rows.count) * cellHeight + 20, top + 250)
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
                if cell.smallSample { Self.hatch(&svg, x + 1, y + 1, cellWidth - 2, cellHeight - 2) }
                if let s = cell.swatch { svg.rect(x + 3, y + 3, 6, 6, fill: s, stroke: "#FFFFFF", title: cell.hover) }
                let light = Palette.heatNeedsLightText(cell.share)
                if cell.smallSample {
                    // Text on a white plate: readable over the hatch.
                    let w = Double(cell.text.count) * 6 + 4
                    svg.rect(x + cellWidth / 2 + 3 - w / 2, y + cellHeight / 2 - 6, w, 13, fill: light ? "#333333" : "#FFFFFF", opacity: 0.85, title: cell.hover)
                }
                svg.text(x + cellWidth / 2 + 3, y + cellHeight / 2 + 4, cell.text, anchor: .middle, size: 10.5,
                         fill: light ? "#FFFFFF" : "#222", title: cell.hover)
            }
        }
        // Legend: the colour scale in five steps, the hatched and the empty cell.
        let lx = labelWidth + Double(columns.count) * cellWidth + 24
        svg.text(lx, top + 10, legendTitle, size: 11, weight: "600", fill: "#333")
        var ly = top + 10
        for line in legendNote {
            ly += 14
            svg.text(lx, ly, line, size: 10.5, fill: "#555")
        }
        for k in 0...4 {
            let share = Double(k) / 4
            let y = ly + 10 + Double(k) * 18
            svg.rect(lx, y, 26, 16, fill: Palette.heat(share), stroke: "#E0E0E0")
            svg.text(lx + 32, y + 12, Markup.percent(share).replacingOccurrences(of: ".0%", with: "%"), size: 11, fill: "#333")
        }
        var ey = ly + 10 + 5 * 18 + 6
        if let note = smallSampleNote {
            svg.rect(lx, ey, 26, 16, fill: Palette.heat(0), stroke: "#E0E0E0")
            Self.hatch(&svg, lx, ey, 26, 16)
            for (k, line) in note.enumerated() { svg.text(lx + 32, ey + 12 + Double(k) * 14, line, size: 11, fill: "#333") }
            ey += 8 + Double(max(1, note.count)) * 14
        }
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
