import Foundation
import Sim

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
        let data: Data
        switch InputFile.read(path, limit: InputFile.logLimit) {
        case .success(let d): data = d
        case .failure(let e): throw .specMismatch(e.description)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .specMismatch("\(path): not UTF-8 text") }
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
        /// Epochs, steps and counts: non-negative and small enough that `epoch x per + step`
        /// cannot overflow.
        let limit = 1 << 30
        func count(_ text: String?, _ what: String, line n: Int) throws(ReplayError) -> Int {
            guard let text, let v = Int(text), (0...limit).contains(v) else {
                throw .specMismatch("\(file):\(n + 1): \(what) '\(text ?? "")' is not an integer in 0...\(limit)")
            }
            return v
        }
        func value(after prefix: String, _ line: Substring) -> String {
            line.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces)
        }
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.hasPrefix("Inject to epoch:") { injectEpoch = try count(value(after: "Inject to epoch:", line), "the injected epoch", line: n) }
            if line.hasPrefix("Inject to step:") { injectStep = try count(value(after: "Inject to step:", line), "the injected step", line: n) }
            if line.hasPrefix("Epoch:") {
                let f = fields(line)
                guard let epochText = f["epoch"]?.split(separator: "/").first,
                      let s = f["step"]?.split(separator: "/"), s.count == 2,
                      let lossText = f["loss"], let accText = f["accuracy"], let acc = Float(accText) else {
                    throw .specMismatch("\(file):\(n + 1): cannot read step line '\(line)'")
                }
                let e = try count(String(epochText), "epoch", line: n), step = try count(String(s[0]), "step", line: n)
                let per = try count(String(s[1]), "steps per epoch", line: n)
                guard per > 0, step < per else {
                    throw .specMismatch("\(file):\(n + 1): step \(step) of \(per) per epoch in '\(line)'")
                }
                if let earlier = perEpoch, earlier != per {
                    throw .specMismatch("\(file):\(n + 1): \(per) steps per epoch; earlier lines say \(earlier)")
                }
                perEpoch = per
                steps.append(StepPoint(step: e * per + step, loss: Float(lossText) ?? .nan, accuracy: acc))
            } else if line.hasPrefix("End of epoch:") {
                let f = fields(line)
                guard let epochText = f["end of epoch"]?.split(separator: "/").first,
                      let v = f["valid accuracy"].flatMap({ Float($0) }) else {
                    throw .specMismatch("\(file):\(n + 1): cannot read epoch line '\(line)'")
                }
                let e = try count(String(epochText), "epoch", line: n)
                tests[e] = v
            }
        }
        guard let per = perEpoch, !steps.isEmpty else { throw .specMismatch("\(file): no 'Epoch: E/N, step: S/M, ...' lines") }
        let injected = injectEpoch.flatMap { e in injectStep.map { e * per + $0 } }
        return ReferenceLog(steps: steps, epochTestAccuracy: tests, stepsPerEpoch: per, injectedStep: injected)
    }

    /// Classifies a replay log against the fault-free log over the steps both cover, from the
    /// injection on, with the same classifier and thresholds as traces.
    /// Refuses logs that cannot be compared (no outcome without the evidence that decides it):
    /// different steps per epoch, an injection after the faulty log's last step, or (unless
    /// the faulty loss went non-finite, which decides alone) no step from the injection on
    /// that both logs recorded.
    /// `testCount`: the test set's size, for the test-accuracy noise (nil: the band alone).
    public static func classify(golden: ReferenceLog, faulty: ReferenceLog, classes: Int = 10, testCount: Int? = nil,
                                thresholds: ClassifierThresholds = .init()) throws(ReplayError) -> Classification {
        try thresholds.validate()
        guard classes >= 2 else { throw .specMismatch("--classes must be at least 2, got \(classes)") }
        guard golden.stepsPerEpoch == faulty.stepsPerEpoch else {
            throw .specMismatch("the logs have \(golden.stepsPerEpoch) and \(faulty.stepsPerEpoch) steps per epoch: they are not runs of one setup")
        }
        let from = faulty.injectedStep ?? faulty.steps.first?.step ?? 0
        let faultyPoints = faulty.steps.filter { $0.step >= from }
        guard !faultyPoints.isEmpty else {
            throw .specMismatch("the injection (global step \(from)) lies after the faulty log's last step (\(faulty.steps.last?.step ?? -1))")
        }
        // A non-finite loss decides its class from the faulty log alone; every other class
        // compares the two runs.
        let goldenSteps = Set(golden.steps.map(\.step))
        guard faultyPoints.contains(where: { !$0.loss.isFinite || goldenSteps.contains($0.step) }) else {
            throw .specMismatch("the logs share no step from the injection (global step \(from)) on: nothing to compare")
        }
        let common = Set(golden.epochTestAccuracy.keys).intersection(faulty.epochTestAccuracy.keys).max()
        return Classifier.classify(golden: golden.steps, faulty: faultyPoints,
                                   goldenTest: common.flatMap { golden.epochTestAccuracy[$0] },
                                   faultyTest: common.flatMap { faulty.epochTestAccuracy[$0] }, testCount: testCount,
                                   classes: classes, exact: false, thresholds: thresholds)
    }
}
