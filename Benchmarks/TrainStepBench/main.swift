// Wall time of one data-parallel training step (8 replicas; ResNet-18 unless --workload), for
// pairing with Benchmarks/torch_train_step.py in Benchmarks/train_step_vs_torch.sh.
//   swift run -c release TrainStepBench [--workload W] [--scale small|tiny|paper] [--threads T] [--steps N]
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
let config = try TrainingConfig(workload: workload, scale: scaleName)
let model = try config.makeModel()
guard case .images(let height, let width, let channels, let classes) = model.input else { fatalError("image model expected") }
let source = DatasetSource.synthetic(seed: 1, trainCount: 8 * model.batchPerReplica * (steps + 1), testCount: 16,
                                     height: height, width: width, channels: channels, classes: classes)
let run = try TrainingRun(config: config, data: try source.load(), threads: threads)
var state = run.initialState()
state = run.step(state).0                    // warm-up
var times: [Double] = []
for _ in 0..<steps {
    let t = DispatchTime.now().uptimeNanoseconds
    state = run.step(state).0
    times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
}
times.sort()
print(String(format: "tpufi %@ threads=%d scale=%@: step median %.4f s min %.4f s", workload, threads, scaleName, times[times.count / 2], times[0]))
