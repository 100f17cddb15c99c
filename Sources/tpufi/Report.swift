import ArgumentParser
import Foundation
import Replayer

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report of a campaign or optimizer-study directory.",
        discussion: """
        DIR is a campaign directory (campaign.json, results.jsonl: from `tpufi campaign` or \
        `tpufi merge`) or an optimizer-study directory (study.json: from `tpufi \
        optimizer-study`). The report is one HTML file with inline SVG charts and CSS (no \
        script, no network, no external fonts): open it in any browser. Hover over a bar, \
        cell or point for its numbers. The same inputs give a byte-identical file.

        Campaign: header (workload, golden trace, parameters), outcome shares with 95 % \
        Wilson intervals (overall, forward, backward), a layer x fault model heat map, loss \
        and accuracy of golden vs up to 6 faulty runs (one per outcome class), and a table \
        per fault model. A campaign without results yet gets a report saying so.

        Optimizer study: Recovered/Stable/Degraded/Diverged per optimizer, recovery curves \
        (faulty solid, fault-free reference dashed), degradation rates per experiment.

        Prints the path written.

        Example:
          tpufi report campaigns/c1
          tpufi report campaigns/c1 --out /tmp/c1.html
        """)

    @Argument(help: "Campaign or optimizer-study directory.")
    var directory: String

    @Option(help: "Output file (default: DIR/report.html).")
    var out: String?

    @Flag(help: "Print {kind, path} as one JSON object.")
    var json = false

    func run() throws {
        let written = try Report.write(directory: directory, to: out)
        if json {
            struct Written: Encodable { var kind: String; var path: String }
            return try printJSON(Written(kind: written.kind.rawValue, path: written.path))
        }
        print(written.path)
    }
}
