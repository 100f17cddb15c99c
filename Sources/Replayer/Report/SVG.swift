import Foundation

/// A hand-written SVG document: elements appended in drawing order, every text escaped,
/// every number formatted deterministically. Hover texts are `<title>` children, which
/// browsers show as tooltips without any script.
struct SVG {
    let width: Double
    let height: Double
    /// What the picture shows, for screen readers (`aria-label`).
    let label: String
    private(set) var elements: [String] = []

    init(width: Double, height: Double, label: String) {
        self.width = width
        self.height = height
        self.label = label
    }

    enum Anchor: String { case start, middle, end }

    private static func attributes(_ pairs: [(String, String?)]) -> String {
        pairs.compactMap { k, v in v.map { " \(k)=\"\(Markup.escape($0))\"" } }.joined()
    }

    private static func closing(_ tag: String, title: String?) -> String {
        title.map { "><title>\(Markup.escape($0))</title></\(tag)>" } ?? "/>"
    }

    private static func c(_ x: Double) -> String { Markup.coordinate(x) }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width: Double = 1,
                       dash: String? = nil, title: String? = nil) {
        elements.append("<line" + Self.attributes([("x1", Self.c(x1)), ("y1", Self.c(y1)), ("x2", Self.c(x2)), ("y2", Self.c(y2)),
                                                   ("stroke", stroke), ("stroke-width", Self.c(width)), ("stroke-dasharray", dash)])
                        + Self.closing("line", title: title))
    }

    mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, stroke: String? = nil,
                       opacity: Double? = nil, title: String? = nil) {
        elements.append("<rect" + Self.attributes([("x", Self.c(x)), ("y", Self.c(y)), ("width", Self.c(max(0, w))), ("height", Self.c(max(0, h))),
                                                   ("fill", fill), ("stroke", stroke), ("fill-opacity", opacity.map(Self.c))])
                        + Self.closing("rect", title: title))
    }

    mutating func circle(_ x: Double, _ y: Double, r: Double, fill: String, stroke: String? = nil, opacity: Double? = nil, title: String? = nil) {
        elements.append("<circle" + Self.attributes([("cx", Self.c(x)), ("cy", Self.c(y)), ("r", Self.c(r)), ("fill", fill), ("stroke", stroke),
                                                     ("fill-opacity", opacity.map(Self.c))])
                        + Self.closing("circle", title: title))
    }

    mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 1.5, dash: String? = nil,
                           opacity: Double? = nil, title: String? = nil) {
        guard !points.isEmpty else { return }
        let p = points.map { "\(Self.c($0.0)),\(Self.c($0.1))" }.joined(separator: " ")
        elements.append("<polyline" + Self.attributes([("points", p), ("fill", "none"), ("stroke", stroke), ("stroke-width", Self.c(width)),
                                                       ("stroke-dasharray", dash), ("stroke-opacity", opacity.map(Self.c)),
                                                       ("stroke-linejoin", "round")])
                        + Self.closing("polyline", title: title))
    }

    mutating func polygon(_ points: [(Double, Double)], fill: String, title: String? = nil) {
        let p = points.map { "\(Self.c($0.0)),\(Self.c($0.1))" }.joined(separator: " ")
        elements.append("<polygon" + Self.attributes([("points", p), ("fill", fill)]) + Self.closing("polygon", title: title))
    }

    mutating func text(_ x: Double, _ y: Double, _ string: String, anchor: Anchor = .start, size: Double = 12, weight: String? = nil,
                       fill: String = "#222", rotate: Double? = nil, title: String? = nil) {
        let transform = rotate.map { "rotate(\(Self.c($0)) \(Self.c(x)) \(Self.c(y)))" }
        elements.append("<text" + Self.attributes([("x", Self.c(x)), ("y", Self.c(y)), ("text-anchor", anchor.rawValue),
                                                   ("font-size", Self.c(size)), ("font-weight", weight), ("fill", fill),
                                                   ("transform", transform)])
                        + ">" + Markup.escape(string) + (title.map { "<title>\(Markup.escape($0))</title>" } ?? "") + "</text>")
    }

    /// The document; `xmlns` so that each picture also parses as XML on its own.
    var rendered: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.c(width))\" height=\"\(Self.c(height))\" viewBox=\"0 0 \(Self.c(width)) \(Self.c(height))\" role=\"img\" aria-label=\"\(Markup.escape(label))\">\n"
            + elements.joined(separator: "\n") + "\n</svg>"
    }
}

/// A linear map from data to pixels, with "nice" ticks (1, 2, 5 times a power of ten).
struct LinearScale {
    var domain: (low: Double, high: Double)
    var range: (low: Double, high: Double)

    func callAsFunction(_ x: Double) -> Double {
        let span = domain.high - domain.low
        guard span != 0 else { return (range.low + range.high) / 2 }
        return range.low + (x - domain.low) / span * (range.high - range.low)
    }

    /// A tick spacing that gives about `count` intervals over `span`.
    static func niceStep(span: Double, count: Int) -> Double {
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / Double(max(1, count))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let f = raw / magnitude
        return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * magnitude
    }

    /// A domain covering `low...high` widened to whole ticks, and the ticks. A single value
    /// (or none) gets a domain around it. `minStep`: the smallest tick spacing (1 for counts).
    static func nice(_ low: Double, _ high: Double, count: Int = 5, minStep: Double = 0) -> (low: Double, high: Double, step: Double, ticks: [Double]) {
        var (lo, hi) = low.isFinite && high.isFinite ? (min(low, high), max(low, high)) : (0, 1)
        if hi - lo < 1e-12 * max(1, abs(hi)) {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            (lo, hi) = (lo - pad, hi + pad)
        }
        let step = max(minStep, niceStep(span: hi - lo, count: count))
        let first = (lo / step).rounded(.down), last = (hi / step).rounded(.up)
        // Ticks as integer multiples of the step: no accumulated rounding.
        let ticks = stride(from: first, through: last, by: 1).map { $0 * step }
        return (first * step, last * step, step, ticks)
    }
}

/// A plot's frame: the pixel rectangle inside the margins and the scales onto it.
struct PlotFrame {
    var left: Double, top: Double, width: Double, height: Double
    var x: LinearScale
    var y: LinearScale
    var right: Double { left + width }
    var bottom: Double { top + height }

    init(left: Double, top: Double, width: Double, height: Double, x: (Double, Double), y: (Double, Double)) {
        (self.left, self.top, self.width, self.height) = (left, top, width, height)
        self.x = LinearScale(domain: x, range: (left, left + width))
        self.y = LinearScale(domain: y, range: (top + height, top))
    }

    /// Draws the grid, the axes with their tick labels and the axis titles.
    func drawAxes(_ svg: inout SVG, xTicks: [Double], xLabel: (Double) -> String, xTitle: String,
                  yTicks: [Double], yLabel: (Double) -> String, yTitle: String) {
        for t in yTicks {
            let py = y(t)
            svg.line(left, py, right, py, stroke: "#e3e3e3")
            svg.text(left - 6, py + 4, yLabel(t), anchor: .end, size: 11, fill: "#444")
        }
        for t in xTicks {
            let px = x(t)
            svg.line(px, bottom, px, bottom + 4, stroke: "#666")
            svg.text(px, bottom + 16, xLabel(t), anchor: .middle, size: 11, fill: "#444")
        }
        svg.line(left, bottom, right, bottom, stroke: "#666")
        svg.line(left, top, left, bottom, stroke: "#666")
        svg.text(left + width / 2, bottom + 34, xTitle, anchor: .middle, size: 12, fill: "#333")
        svg.text(left - 44, top + height / 2, yTitle, anchor: .middle, size: 12, fill: "#333", rotate: -90)
    }
}
