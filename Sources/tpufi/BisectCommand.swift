import ArgumentParser
import Recorder
import Replayer

struct BisectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bisect",
        abstract: "Find the first step and MXU operation where two traces of the same run differ.",
        discussion: """
        Binary search over the per-step state digests both traces recorded finds the first \
        step whose state differs; that step's per-operation output digests (every replica) \
        then name the first operation, in execution order, that computed something else. Works \
        on golden versus a replay, or two golden runs (other builds, thread counts) when \
        non-determinism is suspected.
        """)

    @Argument(help: "First trace directory.")
    var traceA: String

    @Argument(help: "Second trace directory.")
    var traceB: String

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let r = try Bisect.run(try TraceReader(directory: traceA), try TraceReader(directory: traceB))
        if json { return try printJSON(r) }
        guard let step = r.firstDivergentStep else {
            print("no divergence over the \(r.commonSteps.map { "\($0.count) common steps (\($0.lowerBound)...\($0.upperBound))" } ?? "no common steps") (\(r.comparisons) digest comparisons)")
            return
        }
        print("first divergent step: \(step) (\(r.comparisons) digest comparisons)")
        print("first divergent operation: \(r.firstDivergentSite ?? "?")\(r.replica.map { " on replica \($0)" } ?? "")")
        for s in r.sites { print("  \(s.site): replicas \(s.replicas.map(String.init).joined(separator: ", "))") }
    }
}
