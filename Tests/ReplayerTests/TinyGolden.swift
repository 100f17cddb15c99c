import Recorder
import Sim
import TestSupport

/// Golden traces shared by the suites that only read them, each recorded once per test
/// process (not once per suite).
enum TinyGolden {
    static let dataset = "synthetic:train=64,test=16,shape=16x16x1"

    /// `resnet18_nobn` at `tiny`, plain SGD, 2 replicas, 16 steps (8 per epoch), a snapshot
    /// every 4 steps.
    static let nobnSGD: TraceReader = {
        do {
            let run = try TrainingRun(config: try TrainingConfig(workload: "resnet18_nobn", scale: "tiny", optimizer: .sgd, replicas: 2),
                                      data: try DatasetSource.parse(dataset).load())
            return try TraceRecorder.record(run: run, dataset: dataset, steps: 16, policy: .init(snapshotEvery: 4),
                                            to: Scratch.path("tiny-golden-nobn-sgd"))
        } catch {
            fatalError("cannot record the shared tiny golden trace: \(error)")
        }
    }()
}
