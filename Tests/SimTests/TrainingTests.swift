import Testing
@testable import Sim

/// A learnable toy task: each class has its own random prototype image, samples are the
/// prototype plus noise.
func toyBatches(model: ResNet18, replicas: Int, step: Int, seed: UInt64 = 3) -> [Batch] {
    let s = model.scale
    let pixels = s.inputH * s.inputW * s.inputChannels
    let prototypes: [[Float]] = (0..<s.classes).map { c in
        var rng = CounterRNG(seed: seed, purpose: .synthetic, c)
        return (0..<pixels).map { _ in rng.nextUniform() * 2 - 1 }
    }
    return (0..<replicas).map { r in
        var rng = CounterRNG(seed: seed, purpose: .dataOrder, step, r)
        var images: [Float] = [], labels: [Int32] = []
        for _ in 0..<s.batchPerReplica {
            let c = rng.nextInt(below: s.classes)
            labels.append(Int32(c))
            images += prototypes[c].map { $0 + (rng.nextUniform() - 0.5) * 0.5 }
        }
        return Batch(images: images, labels: labels, indices: [])
    }
}

/// Records which operations it was offered and corrupts one output element of one site on
/// one replica.
final class RecordingHook: OperandHook, @unchecked Sendable {
    let target: SiteID?
    let replica: Int
    var seen: [SiteID] = []

    init(target: SiteID?, replica: Int) {
        self.target = target
        self.replica = replica
    }

    func wants(_ site: SiteID, replica: Int) -> Bool {
        if replica == 0 { seen.append(site) }
        return site == target && replica == self.replica
    }

    func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {
        if role == .output { values[3] = 1e6 }
    }
}

/// Records the shape of every MXU product replica 0 runs.
final class ProductShapeHook: OperandHook, @unchecked Sendable {
    var shapes: [(String, GEMMShape)] = []
    func wants(_ site: SiteID, replica: Int) -> Bool { replica == 0 }
    func corruptProduct(_ site: SiteID, product: Int, a: MatrixView, b: MatrixView, c: UnsafeMutablePointer<Float>,
                        shape: GEMMShape, mxu: MXU, replica: Int) {
        shapes.append((site.name, shape))
    }
}

@Suite struct TrainingTests {
    static let model = ResNet18(scale: .tiny)

    /// Learning rates that suit the toy task (Adagrad's reference 1e-3 barely moves in 25 steps).
    static let toyRates: [OptimizerKind: Float] = [.adam: 3e-3, .sgd: 0.1, .rmsprop: 1e-3, .adagrad: 0.05]

    static func run(steps: Int, threads: Int = 1, optimizer: OptimizerKind = .adam, hook: (any OperandHook)? = nil,
                    model: ResNet18 = model) -> (TrainingState, [StepMetrics]) {
        let rate = toyRates[optimizer] ?? 1e-3
        let trainer = Trainer(model: model, optimizer: OptimizerConfig(kind: optimizer),
                              schedule: LearningRateSchedule(initial: rate, final: rate, decaySteps: 1),
                              mxu: MXU(config: .tiny, threads: threads))
        var state = TrainingState(model: model, optimizer: trainer.optimizer, seed: 42)
        var metrics: [StepMetrics] = []
        for s in 0..<steps {
            let (next, m) = trainer.step(state, batches: toyBatches(model: model, replicas: 2, step: s), hook: s == 1 ? hook : nil)
            state = next
            metrics.append(m)
        }
        return (state, metrics)
    }

    @Test func modelHasTheReferenceLayersAndSites() {
        let m = Self.model
        #expect(m.convs.count == 20 && m.blocks.count == 8)
        #expect(m.convs.map(\.name) + ["dense"] == m.layers(phases: .forward).map(\.name))
        #expect(m.sites.count == 21 + 20 + 21 && !m.sites.contains(SiteID(layer: "conv1", kind: .gradIn)))
        #expect(m.operation(named: "basicblock_2_basic_1_conv1")?.outputShape == [4, 4, 4, 8])
        #expect(m.operandShape(SiteID(layer: "conv1", kind: .gradIn), .output) == nil)
        #expect(m.parameterNames.count == 20 * 4 + 2)             // kernel, bias, gamma, beta per conv
        #expect(ResNet18(scale: .tiny, batchNorm: false).parameterNames.count == 20 * 2 + 2)
    }

    @Test func stepsAreBitIdenticalAcrossRunsAndThreadCounts() {
        let (a, ma) = Self.run(steps: 2, threads: 1)
        let (b, mb) = Self.run(steps: 2, threads: 1)
        let (c, mc) = Self.run(steps: 2, threads: 2)
        #expect(a == b && ma == mb)
        #expect(a == c && ma == mc)
        #expect(a.step == 2 && ma.allSatisfy { $0.loss.isFinite })
    }

    /// Judged on held-out toy batches (training losses over 8 images are too noisy to compare).
    @Test(arguments: OptimizerKind.allCases)
    func trainingLearnsTheToyTask(optimizer: OptimizerKind) {
        let model = Self.model
        let unit = MatrixUnit(mxu: MXU(config: .tiny))
        let heldOut = (1000..<1004).flatMap { toyBatches(model: model, replicas: 2, step: $0) }
        func loss(_ state: TrainingState) -> Float {
            heldOut.map { model.evaluate(parameters: state.parameters, modelState: state.modelState, batch: $0, unit: unit).loss }
                .reduce(0, +) / Float(heldOut.count)
        }
        let initial = TrainingState(model: model, optimizer: OptimizerConfig(kind: optimizer), seed: 42)
        let (trained, _) = Self.run(steps: 40, optimizer: optimizer)
        let (before, after) = (loss(initial), loss(trained))
        #expect(after < before * 0.8, "\(optimizer): held-out loss \(before) -> \(after)")
    }

    @Test func hookSeesEverySiteInExecutionOrderAndCorruptsOnlyItsTarget() {
        let golden = Self.run(steps: 3).0
        let idle = RecordingHook(target: nil, replica: 1)
        #expect(Self.run(steps: 3, hook: idle).0 == golden)
        #expect(idle.seen == Self.model.sites)
        let site = SiteID(layer: "basicblock_2_basic_0_conv1", kind: .forward)
        let faulty = Self.run(steps: 3, hook: RecordingHook(target: site, replica: 1)).0
        #expect(faulty != golden)
        // The corruption lands in step 1: the state after step 1 is the first to differ.
        #expect(Self.run(steps: 1, hook: RecordingHook(target: site, replica: 1)).0 == Self.run(steps: 1).0)
    }

    /// One schedule for timing and for hardware faults: every product the functional step
    /// runs has the GEMM shape (orientation included) the timing topology gives its site.
    @Test func productsHaveTheTimingTopologysShapes() {
        let hook = ProductShapeHook()
        _ = Self.run(steps: 2, hook: hook)
        let topology = Self.model.layers(phases: .training)
        #expect(hook.shapes.map(\.0) == topology.map(\.name))
        #expect(hook.shapes.map(\.1) == topology.map(\.gemm))
    }

    @Test func withoutBatchNormTheModelTrainsToo() {
        let nobn = ResNet18(scale: .tiny, batchNorm: false)
        let (state, metrics) = Self.run(steps: 2, model: nobn)
        #expect(state.modelState.isEmpty && metrics.allSatisfy { $0.loss.isFinite })
    }
}

@Suite struct OptimizerTests {
    @Test func adamFirstStepMovesEachWeightByTheLearningRate() {
        // With bias correction, Adam's first update is lr * g / (|g| + eps') ~ lr * sign(g).
        var p: [Float] = [1, -2, 3], slots: [[Float]] = [[0, 0, 0], [0, 0, 0]]
        OptimizerConfig(kind: .adam).apply(parameters: &p, gradients: [0.5, -4, 1e-3], slots: &slots, learningRate: 0.01, step: 0)
        #expect(abs(p[0] - 0.99) < 1e-6 && abs(p[1] + 1.99) < 1e-6 && abs(p[2] - 2.99) < 1e-4)
        #expect(abs(slots[0][0] - 0.05) < 1e-7 && abs(slots[1][1] - 0.016) < 1e-6)
    }

    @Test func sgdRmspropAndAdagradFollowTheirRules() {
        var p: [Float] = [1], none: [[Float]] = []
        OptimizerConfig(kind: .sgd).apply(parameters: &p, gradients: [2], slots: &none, learningRate: 0.1, step: 0)
        #expect(p == [0.8])
        var pm: [Float] = [1], vel: [[Float]] = [[0]]
        let momentum = OptimizerConfig(kind: .sgd, momentum: 0.9)
        momentum.apply(parameters: &pm, gradients: [1], slots: &vel, learningRate: 0.1, step: 0)
        momentum.apply(parameters: &pm, gradients: [1], slots: &vel, learningRate: 0.1, step: 1)
        let expectedMomentum: Float = 1 - 0.1 - 0.19
        #expect(abs(pm[0] - expectedMomentum) < 1e-6)
        var pr: [Float] = [1], rms: [[Float]] = [[0]]
        OptimizerConfig(kind: .rmsprop).apply(parameters: &pr, gradients: [2], slots: &rms, learningRate: 0.01, step: 0)
        let expectedRMS: Float = 1 - 0.01 * 2 / Float(0.4).squareRoot()
        #expect(abs(rms[0][0] - 0.4) < 1e-6)
        #expect(abs(pr[0] - expectedRMS) < 1e-6)
        var pa: [Float] = [1], acc: [[Float]] = [[0.1]]
        OptimizerConfig(kind: .adagrad).apply(parameters: &pa, gradients: [3], slots: &acc, learningRate: 0.1, step: 0)
        let expectedAdagrad: Float = 1 - 0.3 / Float(9.1).squareRoot()
        #expect(abs(acc[0][0] - 9.1) < 1e-5)
        #expect(abs(pa[0] - expectedAdagrad) < 1e-6)
    }

    /// Long tensors (vector loops with a remainder) update every value, and every slot, with
    /// the bits of each optimizer's rule written out per element, over three steps.
    @Test(arguments: [OptimizerConfig(kind: .adam), OptimizerConfig(kind: .sgd), OptimizerConfig(kind: .sgd, momentum: 0.9),
                      OptimizerConfig(kind: .rmsprop), OptimizerConfig(kind: .adagrad)])
    func everyValueFollowsTheRuleWrittenPerElement(optimizer o: OptimizerConfig) {
        let n = 1037
        var p = operands(n, seed: 7), slots = o.slotNames.map { _ in [Float](repeating: o.slotInitialValue, count: n) }
        var expectedP = p, expectedSlots = slots
        for step in 0..<3 {
            let g = operands(n, seed: UInt64(20 + step)), lr: Float = 0.01
            o.apply(parameters: &p, gradients: g, slots: &slots, learningRate: lr, step: step)
            for i in 0..<n {
                switch o.kind {
                case .adam:
                    let t = step + 1
                    let lrT = lr * Float((1 - power(Double(o.beta2), t)).squareRoot() / (1 - power(Double(o.beta1), t)))
                    expectedSlots[0][i] = o.beta1 * expectedSlots[0][i] + (1 - o.beta1) * g[i]
                    expectedSlots[1][i] = o.beta2 * expectedSlots[1][i] + (1 - o.beta2) * (g[i] * g[i])
                    expectedP[i] -= lrT * expectedSlots[0][i] / (expectedSlots[1][i].squareRoot() + o.epsilon)
                case .sgd where o.momentum == 0:
                    expectedP[i] -= lr * g[i]
                case .sgd:
                    expectedSlots[0][i] = o.momentum * expectedSlots[0][i] - lr * g[i]
                    expectedP[i] += expectedSlots[0][i]
                case .rmsprop:
                    expectedSlots[0][i] = o.rho * expectedSlots[0][i] + (1 - o.rho) * (g[i] * g[i])
                    expectedP[i] -= lr * g[i] / (expectedSlots[0][i].squareRoot() + o.epsilon)
                case .adagrad:
                    expectedSlots[0][i] += g[i] * g[i]
                    expectedP[i] -= lr * g[i] / (expectedSlots[0][i].squareRoot() + o.epsilon)
                }
            }
        }
        #expect(differing(p, expectedP) == 0, "\(o.kind)")
        #expect(slots.count == expectedSlots.count && zip(slots, expectedSlots).allSatisfy { differing($0, $1) == 0 }, "\(o.kind) slots")
    }

    @Test func learningRateDecaysLinearlyThenHolds() {
        let s = LearningRateSchedule.reference(for: .adam)
        #expect(s.rate(at: 0) == 1e-3)
        #expect(abs(s.rate(at: 2500) - 5.5e-4) < 1e-9)
        #expect(s.rate(at: 5000) == 1e-4 && s.rate(at: 9000) == 1e-4)
        #expect(LearningRateSchedule.reference(for: .sgd).rate(at: 0) == 0.1)
        #expect(power(2, 10) == 1024 && power(0.5, 3) == 0.125 && power(7, 0) == 1)
        #expect(abs(power(0.999, 1000) - 0.367695424770) < 1e-11)
    }
}

@Suite struct TrainingRunTests {
    static func tinyRun(replicas: Int = 2) throws -> TrainingRun {
        let data = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1").load()
        return try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: replicas), data: data)
    }

    @Test func rejectsDataThatDoesNotFitTheModel() throws {
        let data = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1").load()
        #expect(throws: TrainingError.self) { try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "small"), data: data) }
        do {
            _ = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "small"), data: data)
        } catch {
            #expect("\(error)".contains("resnet18 small expects 28x28x1"))
        }
        let threeClasses = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1,classes=3").load()
        #expect(throws: TrainingError.self) { try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny"), data: threeClasses) }
    }

    @Test func globalStepsMapOntoEpochsOfTheSampler() throws {
        let run = try Self.tinyRun()
        #expect(run.stepsPerEpoch == 64 / 8)
        #expect(run.batches(step: 9) == run.sampler.batches(epoch: 1, step: 1))
        #expect(run.batches(step: 9) != run.batches(step: 1))
    }

    @Test func trainingReportsEveryStepAndEvaluatesAtEpochEnds() throws {
        let run = try Self.tinyRun()
        var steps: [Int] = []
        var epochs: [EpochSummary] = []
        let (state, summaries) = run.train(from: run.initialState(), steps: 11) { event in
            switch event {
            case .step(let s, _): steps.append(s)
            case .epoch(let e): epochs.append(e)
            case .mitigation: Issue.record("a run without mitigation reported a mitigation event")
            }
        }
        #expect(state.step == 11 && steps == Array(0..<11))
        #expect(summaries == epochs && summaries.map(\.steps) == [8, 3] && summaries.map(\.epoch) == [0, 1])
        #expect(summaries.allSatisfy { $0.testAccuracy >= 0 && $0.testAccuracy <= 1 && $0.trainLoss.isFinite })
        #expect(run.train(from: run.initialState(), steps: 11).0 == state)
    }

    /// The test set's batches run side by side with several threads; the sums are in batch
    /// order, so every thread count gives the same bits.
    @Test func evaluationIsBitIdenticalForAnyThreadCount() throws {
        let data = try DatasetSource.parse("synthetic:train=64,test=200,shape=16x16x1").load()
        let config = try TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2)
        let one = try TrainingRun(config: config, data: data, threads: 1)
        let (state, _) = one.train(from: one.initialState(), steps: 3)
        let reference = one.evaluate(state)
        #expect(reference.loss.isFinite && reference.accuracy >= 0)
        for threads in [2, 3, 7] {
            let r = try TrainingRun(config: config, data: data, threads: threads).evaluate(state)
            #expect(r.loss.bitPattern == reference.loss.bitPattern && r.accuracy.bitPattern == reference.accuracy.bitPattern, "\(threads) threads")
        }
    }
}

@Suite struct DigestTests {
    @Test func anySingleBitFlipChangesTheDigest() {
        let x = GradientCheckTests.values(1000, seed: 4)
        let d = Digest.of(x)
        for i in stride(from: 0, to: 1000, by: 97) {
            for bit in [0, 13, 22, 23, 31] {
                var y = x
                y[i] = Float(bitPattern: y[i].bitPattern ^ (1 << UInt32(bit)))
                #expect(Digest.of(y) != d)
            }
        }
        #expect(Digest.of([0]) != Digest.of([-0.0]))
        #expect(Digest.of([1, 2]) != Digest.of([2, 1]))
    }

    /// The digest of chunks is the digest of their concatenation, for chunks that start and
    /// end anywhere in the 32 lanes (empty ones too), from a fresh digest and a used one.
    @Test func chunksDigestAsTheirConcatenation() {
        let x = GradientCheckTests.values(1000, seed: 5)
        for cuts in [[], [0], [1000], [7, 7, 40, 71, 500], [32, 64, 65, 999], Array(stride(from: 3, to: 1000, by: 29))] {
            let bounds = [0] + cuts + [1000]
            let chunks = zip(bounds, bounds.dropFirst()).map { Array(x[$0 ..< $1]) }
            var whole = Digest(value: 42), parts = Digest(value: 42)
            whole.add(x)
            parts.add(concatenationOf: chunks)
            #expect(parts == whole, "cuts \(cuts)")
            var fresh = Digest()
            fresh.add(concatenationOf: chunks)
            #expect(fresh == Digest.of(x))
        }
        var empty = Digest()
        empty.add(concatenationOf: [])
        #expect(empty == Digest.of([]))
    }

    /// A byte string digested where it lies is the digest of its bytes copied into whole
    /// 32-bit words, the last one zero-padded (how frame checksums were first defined), for
    /// every length around the 32-lane blocks and from unaligned starts.
    @Test func bytesDigestAsTheirZeroPaddedWords() {
        var rng = CounterRNG(seed: 11, purpose: .synthetic, 0)
        let bytes = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for start in [0, 1, 3] {
            for count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 31, 127, 128, 129, 130, 131, 255, 256, 257, 260, 261, 296] {
                let slice = bytes[start ..< start + count]
                var padded = [Float](repeating: 0, count: (count + 3) / 4)
                padded.withUnsafeMutableBytes { dst in slice.withUnsafeBytes { dst.copyMemory(from: $0) } }
                var direct = Digest(value: 7), copied = Digest(value: 7)
                slice.withUnsafeBytes { direct.add(bytes: $0) }
                copied.add(padded)
                #expect(direct == copied, "start \(start), \(count) bytes")
                // The same for the pair form (format-3 frame checksums).
                var pairDirect = Digest(value: 7), pairCopied = Digest(value: 7)
                slice.withUnsafeBytes { pairDirect.add(pairBytes: $0) }
                padded.withUnsafeBufferPointer { pairCopied.add(pairsOf: $0) }
                #expect(pairDirect == pairCopied, "pairs: start \(start), \(count) bytes")
            }
        }
    }

    /// Trace format 3's operation digest is its definition written out one word at a time:
    /// word `j` = `bits(2j) | bits(2j+1) << 32` (an odd count's last element alone) steps lane
    /// `j mod 32` by `(lane ^ word) * P`, then `^= >> 29`; the lanes start at `seed ^ k` with
    /// the seed taken from the count, and fold in order. Lengths around the 32-word blocks,
    /// from a fresh digest and a used one.
    @Test func pairDigestIsItsDefinitionWordByWord() {
        func reference(_ x: [Float], from value: UInt64) -> UInt64 {
            let seed = value ^ UInt64(x.count) &* 0x9E37_79B9_7F4A_7C15
            var lanes = (0..<32).map { seed ^ UInt64($0) }
            for j in 0 ..< (x.count + 1) / 2 {
                let high = 2 * j + 1 < x.count ? UInt64(x[2 * j + 1].bitPattern) << 32 : 0
                var lane = (lanes[j % 32] ^ (UInt64(x[2 * j].bitPattern) | high)) &* 0x0000_0100_0000_01B3
                lane ^= lane >> 29
                lanes[j % 32] = lane
            }
            return lanes.reduce(value) { CounterRNG.mix($0 ^ $1) }
        }
        let x = GradientCheckTests.values(1000, seed: 6)
        for count in [0, 1, 2, 3, 63, 64, 65, 66, 127, 128, 129, 130, 999, 1000] {
            let part = Array(x[..<count])
            #expect(OutputDigest.pairLanes.of(part).value == reference(part, from: Digest().value), "\(count) values")
            var used = Digest(value: 42)
            part.withUnsafeBufferPointer { used.add(pairsOf: $0) }
            #expect(used.value == reference(part, from: 42), "\(count) values, used digest")
        }
        // The element-by-element digest of formats 1 and 2 is Digest.of itself.
        #expect(OutputDigest.elementLanes.of(x) == Digest.of(x) && OutputDigest.pairLanes.of(x) != Digest.of(x))
        // Pinned: traces of format 3 hold these digests; a change here breaks every such trace.
        #expect(OutputDigest.pairLanes.of((0..<100).map { Float($0) * 0.25 - 3 }).description == "bb30a3cb069ea02d")
    }

    /// Every single bit flip changes the pair digest, in either element of a word and in the
    /// lone last element of an odd count; so does the order of two elements of one word.
    @Test func anySingleBitFlipChangesThePairDigest() {
        for count in [999, 1000] {
            let x = GradientCheckTests.values(count, seed: 7)
            let d = OutputDigest.pairLanes.of(x)
            for i in Array(stride(from: 0, to: count, by: 97)) + [1, count - 1] {
                for bit in [0, 13, 22, 23, 31] {
                    var y = x
                    y[i] = Float(bitPattern: y[i].bitPattern ^ (1 << UInt32(bit)))
                    #expect(OutputDigest.pairLanes.of(y) != d, "\(count) values, element \(i), bit \(bit)")
                }
            }
        }
        #expect(OutputDigest.pairLanes.of([0]) != OutputDigest.pairLanes.of([-0.0]))
        #expect(OutputDigest.pairLanes.of([1, 2]) != OutputDigest.pairLanes.of([2, 1]))
        #expect(OutputDigest.pairLanes.of([1]) != OutputDigest.pairLanes.of([1, 0]))
    }

    /// Pinned: the state after two tiny steps. Equal in debug and release builds and for any
    /// thread count (the same value is printed by `tpufi train --scale tiny --dataset
    /// synthetic:train=64,test=16 --steps 2 --replicas 2 --json`, a release build). A change
    /// here means training results changed: deliberate changes update the pin.
    @Test func tinyTrainingStateDigestIsPinned() throws {
        let run = try TrainingRunTests.tinyRun()
        let state = run.train(from: run.initialState(), steps: 2).0
        #expect(state.digest.description == "9cbc7fb77f081a84")
    }
}

@Suite struct SiteDigestTests {
    @Test func everySiteOfEveryReplicaIsDigestedAndAFaultShowsWhereItLands() throws {
        let run = try TrainingRunTests.tinyRun()
        let state = run.initialState()
        let golden = run.trainer.gradients(state, batches: run.batches(step: 0), digests: .current)
        #expect(golden.siteDigests.count == 2)
        for replica in golden.siteDigests { #expect(replica.map(\.site) == run.model.sites) }
        let plain = run.trainer.gradients(state, batches: run.batches(step: 0))
        #expect(plain.siteDigests.allSatisfy { $0.isEmpty })

        let target = SiteID(layer: "basicblock_3_basic_0_conv2", kind: .gradIn)
        let faulty = run.trainer.gradients(state, batches: run.batches(step: 0), hook: RecordingHook(target: target, replica: 1),
                                           digests: .current)
        #expect(faulty.siteDigests[0].map(\.digest) == golden.siteDigests[0].map(\.digest))   // other replica untouched
        let first = zip(faulty.siteDigests[1], golden.siteDigests[1]).first { $0.0.digest != $0.1.digest }?.0.site
        #expect(first == target)
    }
}
