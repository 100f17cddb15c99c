/// A self-contained HTML page: inline CSS, inline SVG, system fonts, no script and no
/// external reference, so it opens anywhere, offline, and diffs byte for byte.
struct HTMLPage {
    var title: String
    /// Pieces of body markup, already escaped.
    var body: [String] = []

    init(title: String) { self.title = title }

    mutating func heading(_ text: String, level: Int = 2) {
        body.append("<h\(level)>\(Markup.escape(text))</h\(level)>")
    }

    mutating func paragraph(_ text: String, cls: String? = nil) {
        body.append("<p\(cls.map { " class=\"\($0)\"" } ?? "")>\(Markup.escape(text))</p>")
    }

    mutating func raw(_ markup: String) { body.append(markup) }

    /// Charts side by side, wrapping when the window is narrow.
    mutating func figures(_ svgs: [String]) {
        body.append("<div class=\"figures\">\n" + svgs.map { "<figure>\($0)</figure>" }.joined(separator: "\n") + "\n</div>")
    }

    /// A definition list of `(term, value)`.
    static func facts(_ items: [(String, String)]) -> String {
        "<dl class=\"facts\">\n" + items.map { "<dt>\(Markup.escape($0.0))</dt><dd>\(Markup.escape($0.1))</dd>" }.joined(separator: "\n") + "\n</dl>"
    }

    /// A colour legend: `(name, colour, line style)`; `dashed` legends show a line, others a swatch.
    static func legend(_ items: [(name: String, color: String)], extra: [(name: String, color: String, dashed: Bool)] = []) -> String {
        let swatches = items.map { "<span class=\"item\"><span class=\"swatch\" style=\"background:\($0.color)\"></span>\(Markup.escape($0.name))</span>" }
        let lines = extra.map { "<span class=\"item\"><span class=\"stroke\" style=\"border-top:3px \($0.dashed ? "dashed" : "solid") \($0.color)\"></span>\(Markup.escape($0.name))</span>" }
        return "<div class=\"legend\">" + (swatches + lines).joined(separator: " ") + "</div>"
    }

    /// A table; `cells` are markup (escape text first), `numeric` columns right-aligned.
    static func table(header: [String], rows: [[String]], numericFrom: Int = 1) -> String {
        var out = "<table>\n<thead><tr>" + header.enumerated().map { i, h in "<th\(i >= numericFrom ? " class=\"n\"" : "")>\(Markup.escape(h))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in rows {
            out += "<tr>" + row.enumerated().map { i, c in "<td\(i >= numericFrom ? " class=\"n\"" : "")>\(c)</td>" }.joined() + "</tr>\n"
        }
        return out + "</tbody>\n</table>"
    }

    static let style = """
    body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif;
           color: #222; background: #fff; margin: 24px 32px; max-width: 1340px; line-height: 1.4; }
    h1 { font-size: 22px; margin: 0 0 4px 0; }
    h2 { font-size: 17px; margin: 28px 0 6px 0; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
    h3 { font-size: 14px; margin: 14px 0 2px 0; }
    p { margin: 4px 0 8px 0; }
    p.note { color: #555; font-size: 13px; }
    p.warning { font-size: 14px; padding: 8px 12px; background: #FFF4E0; border-left: 4px solid #E69F00; }
    p.empty { font-size: 16px; padding: 16px; background: #f6f6f6; border: 1px dashed #bbb; }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 13px; margin: 8px 0; }
    dl.facts dt { color: #666; }
    dl.facts dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
    .figures { display: flex; flex-wrap: wrap; gap: 8px 20px; align-items: flex-start; }
    figure { margin: 0; }
    .legend { font-size: 13px; margin: 6px 0 10px 0; }
    .legend .item { display: inline-block; margin-right: 16px; white-space: nowrap; }
    .legend .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }
    .legend .stroke { display: inline-block; width: 24px; height: 0; margin-right: 5px; vertical-align: 3px; }
    table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
    th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: middle; }
    th { background: #f6f6f6; font-weight: 600; }
    td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    td .zero { color: #bbb; }
    td .swatch { display: inline-block; width: 9px; height: 9px; margin-right: 4px; border-radius: 2px; }
    .run { margin: 10px 0 18px 0; }
    .evidence { color: #555; font-size: 12px; }
    """

    var rendered: String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(Markup.escape(title))</title>
        <style>
        \(Self.style)
        </style>
        </head>
        <body>
        \(body.joined(separator: "\n"))
        </body>
        </html>

        """
    }
}
