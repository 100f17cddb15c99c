import Testing
@testable import Sim

/// Pinned: the state digest after two `tiny` training steps of every built-in workload, on
/// the data Benchmarks/TrainStepBench trains on (8 replicas; synthetic images with seed 1, or
/// random tokens 1..<vocabulary for the transformer), which prints the same digest
/// (`TrainStepBench --workload W --scale tiny --steps 1`, a release build). Equal in debug and
/// release builds, for any thread count and any target CPU (`TPUFI_TARGET_CPU`): the fast
/// kernels change speed, never bits. A change here means training results changed;
/// deliberate changes update the pin.
@Suite struct WorkloadStatePinTests {
    static let pins: [String: String] = [
        "resnet18": "e81f102aa6072d1e",
        "effnet": "4ffe23f02e619bf3",
        "densenet": "041c16b3b1538228",
        "nfnet": "f5bdffe5c2a2cbca",
        "transformer": "1e6c1db0ca92dc14",
    ]

    /// TrainStepBench's data for `model` and `steps` steps (plus one warm-up) of 8 replicas.
    static func data(for model: any Model, replicas: Int, steps: Int) throws -> DataSplit {
        let examples = replicas * model.batchPerReplica * (steps + 1)
        switch model.input {
        case .images(let height, let width, let channels, let classes):
            return try DatasetSource.synthetic(seed: 1, trainCount: examples, testCount: 16, height: height, width: width,
                                               channels: channels, classes: classes).load()
        case .tokens(let sourceLength, let targetLength, let vocabulary):
            func split(_ name: String, _ count: Int, _ index: Int) throws -> Dataset {
                var rng = CounterRNG(seed: 1, purpose: .synthetic, index)
                func draw(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(1 + rng.nextInt(below: vocabulary - 1)) } }
                let sources = draw(count * sourceLength), targets = draw(count * targetLength)
                return Dataset(name: name, sequences: try TokenSequences(name: name, sourceLength: sourceLength, targetLength: targetLength,
                                                                         vocabulary: vocabulary, sources: sources, targets: targets))
            }
            return DataSplit(train: try split("random tokens", examples, 0), test: try split("random tokens (test)", 16, 1))
        }
    }

    @Test(arguments: ["resnet18", "effnet", "densenet", "nfnet", "transformer"])
    func tinyStateDigestIsPinned(workload: String) throws {
        let config = try TrainingConfig(workload: workload, scale: "tiny")
        let model = try config.makeModel()
        let run = try TrainingRun(config: config, data: try Self.data(for: model, replicas: config.replicas, steps: 1), threads: 2)
        var state = run.initialState()
        for _ in 0..<2 { state = run.step(state).0 }
        #expect(state.digest.description == Self.pins[workload])
    }
}
