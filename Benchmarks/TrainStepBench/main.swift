// Wall time of one data-parallel training step (8 replicas; ResNet-18 unless --workload), for
// pairing with Benchmarks/torch_train_step.py in Benchmarks/train_step_vs_torch.sh. Image
// models train on synthetic images, the transformer on random token sequences (tokens
// 1..<vocabulary, no padding): the step's work does not depend on the values.
//   swift run -c release TrainStepBench [--workload W] [--scale small|tiny|paper] [--threads T] [--steps N]
// Prints the median and minimum wall time per step, the median CPU time of the process per step,
// and the state digest after the steps.
import Dispatch
import Foundation
import Sim

var workload = "resnet18", scaleName = "small", threads = 2, steps = 5
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--workload": workload = args.next() ?? workload
    case "--scale": scaleName = args.next() ?? scaleName
    case "--threads": threads = Int(args.next() ?? "") ?? threads
    case "--steps": steps = Int(args.next() ?? "") ?? steps
    default: FileHandle.standardError.write(Data("unknown argument \(a)\n".utf8)); exit(2)
    }
}
HostMemory.keepFreedMemory()  // as tpufi does
let config = try TrainingConfig(workload: workload, scale: scaleName)
let model = try config.makeModel()
let examples = config.replicas * model.batchPerReplica * (steps + 1)
let data: DataSplit
switch model.input {
case .images(let height, let width, let channels, let classes):
    data = try DatasetSource.synthetic(seed: 1, trainCount: examples, testCount: 16, height: height, width: width,
                                       channels: channels, classes: classes).load()
case .tokens(let sourceLength, let targetLength, let vocabulary):
    func split(_ name: String, _ count: Int, _ index: Int) throws -> Dataset {
        var rng = CounterRNG(seed: 1, purpose: .synthetic, index)
        let draw = { (n: Int) in (0..<n).map { _ in Int32(1 + rng.nextInt(below: vocabulary - 1)) } }
        return Dataset(name: name, sequences: try TokenSequences(name: name, sourceLength: sourceLength, targetLength: targetLength,
                                                                 vocabulary: vocabulary, sources: draw(count * sourceLength),
                                                                 targets: draw(count * targetLength)))
    }
    data = DataSplit(train: try split("random tokens", examples, 0), test: try split("random tokens (test)", 16, 1))
}
let run = try TrainingRun(config: config, data: data, threads: threads)
var state = run.initialState()
state = run.step(state).0                    // warm-up
/// CPU time of the whole process (all threads), seconds.
func processCPUTime() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}
var times: [Double] = [], cpu: [Double] = []
for _ in 0..<steps {
    let t = DispatchTime.now().uptimeNanoseconds, c = processCPUTime()
    state = run.step(state).0
    times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
    cpu.append(processCPUTime() - c)
}
times.sort()
cpu.sort()
// The state's digest after the steps: the same on every build, instruction set and thread count.
// CPU time per step is the steadier figure on a host shared with other work (one thread).
print(String(format: "tpufi %@ threads=%d scale=%@: step median %.4f s min %.4f s cpu median %.4f s (state %@ after %d steps)", workload,
             threads, scaleName, times[times.count / 2], times[0], cpu[cpu.count / 2], state.digest.description, steps + 1)
      + ", \(MXU.kernelsDescription)")
