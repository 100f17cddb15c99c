import Foundation

/// A training log of the reference TensorFlow artifact (`docs/outcomes.md#reference-logs`):
/// `Epoch: E/80, step: S/49, loss: L, accuracy: A` per step, `End of epoch: E/80, train loss:
/// ..., train accuracy: ..., valid loss: ..., valid accuracy: ...` per epoch, optionally
/// `Inject to epoch: E` / `Inject to step: S` at the top of a replay, and `Encounter NaN!`.
public struct ReferenceLog: Sendable, Equatable {
    public var steps: [StepPoint]
    /// Valid (test) accuracy per epoch number.
    public var epochTestAccuracy: [Int: Float]
    public var stepsPerEpoch: Int
    /// The injection's global step, for a replay log.
    public var injectedStep: Int?

    public static func load(path: String) throws(ReplayError) -> ReferenceLog {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .specMismatch("\(path): cannot read the log")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(ReplayError) -> ReferenceLog {
        var steps: [StepPoint] = []
        var tests: [Int: Float] = [:]
        var perEpoch: Int?
        var injectEpoch: Int?, injectStep: Int?
        func fields(_ line: Substring) -> [String: String] {
            var out: [String: String] = [:]
            for part in line.split(separator: ",") {
                let kv = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2 { out[kv[0].lowercased()] = kv[1] }
            }
            return out
        }
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.hasPrefix("Inject to epoch:") { injectEpoch = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
            if line.hasPrefix("Inject to step:") { injectStep = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
            if line.hasPrefix("Epoch:") {
                let f = fields(line)
                guard let e = f["epoch"]?.split(separator: "/").first.flatMap({ Int($0) }),
                      let s = f["step"]?.split(separator: "/"), s.count == 2, let step = Int(s[0]), let per = Int(s[1]),
                      let lossText = f["loss"], let accText = f["accuracy"], let acc = Float(accText) else {
                    throw .specMismatch("\(file):\(n + 1): cannot read step line '\(line)'")
                }
                perEpoch = per
                steps.append(StepPoint(step: e * per + step, loss: Float(lossText) ?? .nan, accuracy: acc))
            } else if line.hasPrefix("End of epoch:") {
                let f = fields(line)
                guard let e = f["end of epoch"]?.split(separator: "/").first.flatMap({ Int($0) }),
                      let v = f["valid accuracy"].flatMap({ Float($0) }) else {
                    throw .specMismatch("\(file):\(n + 1): cannot read epoch line '\(line)'")
                }
                tests[e] = v
            }
        }
        guard let per = perEpoch, !steps.isEmpty else { throw .specMismatch("\(file): no 'Epoch: E/N, step: S/M, ...' lines") }
        let injected = injectEpoch.flatMap { e in injectStep.map { e * per + $0 } }
        return ReferenceLog(steps: steps, epochTestAccuracy: tests, stepsPerEpoch: per, injectedStep: injected)
    }

    /// Classifies a replay log against the fault-free log over the steps both cover, from the
    /// injection on, with the same classifier and thresholds as traces.
    public static func classify(golden: ReferenceLog, faulty: ReferenceLog, classes: Int = 10,
                                thresholds: ClassifierThresholds = .init()) -> (Outcome, [String]) {
        let from = faulty.injectedStep ?? faulty.steps.first?.step ?? 0
        let faultyPoints = faulty.steps.filter { $0.step >= from }
        let common = Set(golden.epochTestAccuracy.keys).intersection(faulty.epochTestAccuracy.keys).max()
        return Classifier.classify(golden: golden.steps, faulty: faultyPoints,
                                   goldenTest: common.flatMap { golden.epochTestAccuracy[$0] },
                                   faultyTest: common.flatMap { faulty.epochTestAccuracy[$0] },
                                   classes: classes, exact: false, thresholds: thresholds)
    }
}
