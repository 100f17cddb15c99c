// Time to load a data set and to cut one epoch of batches from it.
//   swift run -c release DataBench [SPEC] [--batch N] [--replicas R] [--flip] [--pad P]
// SPEC is a DatasetSource spelling (default fashion-mnist).
import Foundation
import Sim

var spec = "fashion-mnist"
var globalBatch = 128
var replicas = 1
var augmentation = Augmentation.none

var args = CommandLine.arguments.dropFirst().makeIterator()
while let arg = args.next() {
    switch arg {
    case "--batch": globalBatch = Int(args.next() ?? "") ?? globalBatch
    case "--replicas": replicas = Int(args.next() ?? "") ?? replicas
    case "--flip": augmentation.flip = true
    case "--pad": augmentation.pad = Int(args.next() ?? "") ?? 0
    default: spec = arg
    }
}

func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

do {
    let source = try DatasetSource.parse(spec)
    let t0 = DispatchTime.now()
    let split = try source.load()
    let load = seconds(since: t0)
    print("load \(source): \(split.train.count) train + \(split.test.count) test images of \(split.train.height)x\(split.train.width)x\(split.train.channels) in \(String(format: "%.3f", load)) s")

    let sampler = try BatchSampler(dataset: split.train, globalBatch: globalBatch, replicas: replicas, seed: 1,
                                   augmentation: augmentation)
    let t1 = DispatchTime.now()
    var checksum = 0
    for step in 0..<sampler.stepsPerEpoch {
        for batch in sampler.batches(epoch: 0, step: step) { checksum &+= batch.indices[0] }
    }
    let epoch = seconds(since: t1)
    print("epoch of \(sampler.stepsPerEpoch) steps x \(replicas) replicas, batch \(globalBatch), augmentation \(augmentation): \(String(format: "%.3f", epoch)) s (\(String(format: "%.2f", epoch / Double(sampler.stepsPerEpoch) * 1000)) ms/step; checksum \(checksum))")
} catch {
    FileHandle.standardError.write(Data("DataBench: \(error)\n".utf8))
    exit(1)
}
