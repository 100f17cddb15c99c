import Foundation
import Testing
import TestSupport

@Suite struct TrainCommandTests {
    @Test func trainsTinyOnSyntheticDataAndReportsJSON() throws {
        let r = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16,shape=16x16x1", "--steps", "3", "--replicas", "2", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let epochs = try #require(json["epochs"] as? [[String: Any]])
        #expect(json["steps"] as? Int == 3 && epochs.count == 1 && epochs[0]["testAccuracy"] is Double)
        #expect(r.err.isEmpty)          // no progress line when stderr is not a terminal
    }

    @Test func trainsOnAnAdaptedDataSetNamedAsSuch() throws {
        let r = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic@16x16x1:train=64,test=16,shape=4x4x1", "--steps", "1", "--replicas", "2", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(json["dataset"] as? String == "synthetic-train@16x16x1")
        let help = try tpufi(["train", "--help"])
        #expect(help.out.contains("@HxWxC") && help.out.contains("fashion-mnist@32x32x3"), "\(help.out)")
    }

    /// The transformer trains on token sequences and `train` says so; `--help` names every
    /// workload's default data set.
    @Test func trainsTheTransformerOnSequencesNamedAsSuch() throws {
        var text = ""
        for i in 0..<40 { text += "Fortune number \(i): some words, and more.\n%\n" }
        let dir = Scratch.path("fortunes-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/fortunes", atomically: true, encoding: .utf8)
        let r = try tpufi(["train", "--workload", "transformer", "--scale", "tiny", "--dataset", "fortunes:dir=" + dir, "--steps", "1",
                           "--replicas", "2", "--threads", "1"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("2 replicas x 2 sequences") && !r.out.contains("images"), "\(r.out)")
        let images = try tpufi(["train", "--workload", "transformer", "--scale", "tiny", "--dataset", "synthetic", "--steps", "1"])
        #expect(images.status != 0 && images.err.contains("try --dataset fortunes"), "\(images.err)")
        let help = try tpufi(["record", "--help"])
        #expect(help.out.contains("fortunes for") && help.out.contains("transformer") && help.out.contains("fashion-mnist for"), "\(help.out)")
    }

    /// `--dropout-masks counter` changes the masks (so the run), and is recorded with the model.
    @Test func dropoutMasksOptionChangesTheRun() throws {
        let base = ["train", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16,shape=16x16x1", "--steps", "2", "--replicas", "2", "--json"]
        let seeded = try tpufi(base), counter = try tpufi(base + ["--dropout-masks", "counter"])
        #expect(seeded.status == 0 && counter.status == 0, "\(counter.err)")
        let digest = { (out: String) in (try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])?["stateDigest"] as? String }
        #expect(digest(seeded.out) != nil && digest(counter.out) != nil && digest(seeded.out) != digest(counter.out))
        let bad = try tpufi(base + ["--dropout-masks", "sometimes"])
        #expect(bad.status != 0 && bad.err.contains("dropout-masks"))
    }

    @Test func badInputFailsClearly() throws {
        let w = try tpufi(["train", "--workload", "vgg16", "--scale", "tiny", "--dataset", "synthetic"])
        #expect(w.status != 0 && w.err.contains("unknown workload 'vgg16'"))
        let d = try tpufi(["train", "--scale", "small", "--dataset", "fashion-mnist:/nonexistent/fmnist"])
        #expect(d.status != 0 && d.err.contains("/nonexistent/fmnist") && d.err.contains("dataset-fashion-mnist"))
        let s = try tpufi(["train", "--scale", "small", "--dataset", "synthetic@8x8x1"])
        #expect(s.status != 0 && s.err.contains("expects 28x28x1") && s.err.contains("add @28x28x1 after the data set's kind"))
        // Fitted to the paper model's 32x32x3, a missing Fashion-MNIST is still named as such.
        let p = try tpufi(["train", "--scale", "paper", "--dataset", "fashion-mnist:/nonexistent/fmnist"])
        #expect(p.status != 0 && p.err.contains("/nonexistent/fmnist") && p.err.contains("dataset-fashion-mnist"))
        let a = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic@9x8x1"])
        #expect(a.status != 0 && a.err.contains("cannot adapt 8x8 images to 9x8"), "\(a.err)")
        let o = try tpufi(["train", "--scale", "tiny", "--dataset", "synthetic", "--optimizer", "lion"])
        #expect(o.status != 0 && o.err.contains("unknown optimizer 'lion'"))
    }
}
