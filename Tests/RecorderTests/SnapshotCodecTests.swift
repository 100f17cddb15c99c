import Testing
import Sim
@testable import Recorder

/// Values that stress exactness: NaNs with payloads (quiet and signalling, both signs), signed
/// zeros, infinities, subnormals, extremes, then pseudo-random bit patterns. 1_031 elements, so
/// the SIMD blocks and the scalar tail both run.
func awkwardValues(count: Int = 1_031, seed: UInt64 = 7) -> [Float] {
    let special: [UInt32] = [0x7FC0_0001, 0x7F80_0001, 0xFFC1_2345, 0xFF80_0F00, 0x8000_0000, 0x0000_0000,
                             0x7F80_0000, 0xFF80_0000, 0x0000_0001, 0x8000_0001, 0x007F_FFFF, 0x807F_FFFF,
                             0x7F7F_FFFF, 0xFF7F_FFFF, 0x0080_0000, 0x3F80_0000]
    var rng = CounterRNG(seed: seed, purpose: .initialization, 99)
    return (0..<count).map { i in
        i < special.count ? Float(bitPattern: special[i]) : Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
    }
}

func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

@Suite struct SnapshotCodecTests {
    static let codecs = [SnapshotCodec(), SnapshotCodec(options: .init(shuffle: false)), SnapshotCodec(options: .init(level: 9)),
                         SnapshotCodec(options: .init(matchFinder: .levels))]

    @Test func keyframesRoundTripToTheBit() throws {
        for codec in Self.codecs {
            for n in [0, 1, 15, 16, 17, 1_031] {
                let values = awkwardValues(count: n)
                let blob = try codec.encode(values)
                let header = try SnapshotHeader(parsing: blob)
                #expect(header.kind == .keyframe && header.referenceDigest == nil)
                #expect(header.elementCount == UInt64(n) && header.rawByteCount == UInt64(4 * n))
                #expect(header.shuffled == codec.options.shuffle)
                #expect(bits(try codec.decode(blob)) == bits(values), "n=\(n) options=\(codec.options)")
            }
        }
    }

    @Test func deltasRoundTripToTheBitAndNeedTheirReference() throws {
        let reference = awkwardValues(seed: 1)
        // The next state: most values nudged in their low mantissa bits, specials swapped around.
        var values = reference.map { Float(bitPattern: $0.bitPattern ^ 0x15) }
        values[0] = -0.0; values[1] = .infinity; values[2] = Float(bitPattern: 0x7FA0_0042); values[3] = .leastNonzeroMagnitude
        for codec in Self.codecs {
            let blob = try codec.encode(values, reference: reference)
            let header = try SnapshotHeader(parsing: blob)
            #expect(header.kind == .delta && header.referenceDigest == Digest.of(reference))
            #expect(bits(try codec.decode(blob, reference: reference)) == bits(values))
        }
        let codec = SnapshotCodec()
        let blob = try codec.encode(values, reference: reference)
        #expect(throws: SnapshotCodecError.referenceRequired) { try codec.decode(blob) }
        #expect(throws: SnapshotCodecError.referenceSizeMismatch(elements: 10, expected: reference.count)) {
            try codec.decode(blob, reference: Array(reference.prefix(10)))
        }
        // One flipped bit in the reference: refused before anything is decoded.
        var wrong = reference
        wrong[500] = Float(bitPattern: wrong[500].bitPattern ^ 1)
        #expect(throws: SnapshotCodecError.wrongReference(expected: Digest.of(reference), got: Digest.of(wrong))) {
            try codec.decode(blob, reference: wrong)
        }
        let message = SnapshotCodecError.wrongReference(expected: Digest.of(reference), got: Digest.of(wrong)).description
        #expect(message.contains("wrong reference") && message.contains(Digest.of(reference).description))
        #expect(throws: SnapshotCodecError.referenceSizeMismatch(elements: 3, expected: values.count)) {
            try codec.encode(values, reference: [1, 2, 3])
        }
    }

    /// A writer encodes every snapshot in the same buffers, which keep the bytes of larger
    /// earlier snapshots past the current one's end: each blob must be the one a fresh encode
    /// gives, whatever came before (big, small, empty; keyframes, deltas, updates).
    @Test func reusedBuffersEncodeAsFreshOnes() throws {
        let big = awkwardValues(count: 70_001), small = Array(awkwardValues(count: 301).reversed())
        let sequence: [(values: [Float], reference: [Float]?, update: Bool)] = [
            (big, nil, false), (small, nil, true), (small, Array(big.prefix(301)), false), ([], nil, true), (big, big.reversed(), false),
            (Array(big.prefix(40_000)), nil, true), (small, nil, false),
        ]
        for codec in Self.codecs {
            var buffers = EncodeBuffers()
            for (i, s) in sequence.enumerated() {
                let prefix: [UInt8] = [UInt8(i), 0xFF]
                if s.update {
                    let fresh = try codec.encodeUpdate(concatenationOf: [s.values], stateDigest: Digest(value: 1), stateElements: 80_000,
                                                       referenceDigest: Digest(value: 2), after: prefix)
                    let reused = try codec.encodeUpdate(concatenationOf: [s.values], stateDigest: Digest(value: 1), stateElements: 80_000,
                                                        referenceDigest: Digest(value: 2), after: prefix, using: &buffers)
                    #expect(reused.elementsEqual(fresh), "options=\(codec.options), snapshot \(i)")
                } else {
                    let fresh = try codec.encode(s.values, reference: s.reference, after: prefix)
                    let reused = try codec.encode(s.values, reference: s.reference, after: prefix, using: &buffers)
                    #expect(reused.elementsEqual(fresh), "options=\(codec.options), snapshot \(i)")
                    #expect(bits(try codec.decode(Array(reused.dropFirst(2)), reference: s.reference)) == bits(s.values))
                }
            }
        }
    }

    /// A recording shuffles an update from its tensors where they lie, behind the frame's own
    /// header: the bytes must be those of the concatenated update's blob behind that header.
    @Test func anUpdateFromChunksIsTheUpdateOfTheirConcatenation() throws {
        let all = awkwardValues(count: 1_113)
        var chunks: [[Float]] = [], start = 0
        for n in [0, 1, 15, 16, 17, 1_031, 0, 33] {
            chunks.append(Array(all[start..<(start + n)]))
            start += n
        }
        for shuffle in [true, false] {
            // elementsEqual: a failure prints a verdict, not two 4 KB arrays.
            let whole = try SnapshotCodec.transform(all, shuffle: shuffle)
            #expect(SnapshotCodec.transform(concatenationOf: chunks, shuffle: shuffle).elementsEqual(whole), "shuffle=\(shuffle)")
        }
        let prefix: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        for codec in Self.codecs {
            let whole = try codec.encodeUpdate(all, stateDigest: Digest(value: 5), stateElements: 2_000, referenceDigest: Digest(value: 6))
            let parts = try codec.encodeUpdate(concatenationOf: chunks, stateDigest: Digest(value: 5), stateElements: 2_000,
                                               referenceDigest: Digest(value: 6), after: prefix)
            #expect(parts.elementsEqual(prefix + whole), "options=\(codec.options)")
            let (_, decoded) = try codec.decodeUpdate(whole, updateElements: all.count, referenceDigest: Digest(value: 6))
            #expect(bits(decoded) == bits(all))
        }
        let keyframe = try SnapshotCodec().encode(all, after: prefix)
        #expect(Array(keyframe.prefix(8)) == prefix)
        #expect(bits(try SnapshotCodec().decode(Array(keyframe.dropFirst(8)))) == bits(all))
    }

    @Test func deltaOffWritesKeyframesAndKeyframesIgnoreAReference() throws {
        let a = awkwardValues(seed: 2), b = awkwardValues(seed: 3)
        let blob = try SnapshotCodec(options: .init(delta: false)).encode(a, reference: b)
        #expect(try SnapshotHeader(parsing: blob).kind == .keyframe)
        #expect(bits(try SnapshotCodec().decode(blob, reference: b)) == bits(a))
    }

    /// Every single-bit flip of the header and of sampled payload bytes, and every
    /// truncation: an error, or the exact values. (Harmless flips exist: our informational
    /// level byte, and the zstd frame descriptor's unused bit; every other flip of our header
    /// must be an error.)
    @Test func damagedBlobsFailAndNeverDecodeToWrongNumbers() throws {
        let reference = (0..<4_000).map { Float($0) * 0.001 }
        let values = reference.map { $0 + 0.0001 }
        let codec = SnapshotCodec()
        for (blob, ref) in [(try codec.encode(values), nil), (try codec.encode(values, reference: reference), reference)] {
            var positions = Array(0..<min(blob.count, SnapshotHeader.size + 16))
            positions += stride(from: SnapshotHeader.size + 16, to: blob.count, by: max(1, blob.count / 60))
            for position in positions {
                for bit in 0..<8 {
                    var damaged = blob
                    damaged[position] ^= 1 << bit
                    do {
                        let decoded = try codec.decode(damaged, reference: ref)
                        #expect(position == 7 || position >= SnapshotHeader.size, "a flip of header byte \(position) bit \(bit) was accepted")
                        let exact = bits(decoded) == bits(values)   // a Bool, so a failure does not print 4,000 values
                        #expect(exact, "a flip of byte \(position) bit \(bit) decoded to different numbers")
                    } catch {}
                }
            }
            for length in Array(0..<(SnapshotHeader.size + 20)) + stride(from: SnapshotHeader.size + 20, to: blob.count, by: 7) {
                #expect(throws: SnapshotCodecError.self, "truncated to \(length)") { try codec.decode(Array(blob.prefix(length)), reference: ref) }
            }
            #expect(throws: SnapshotCodecError.truncated(bytes: 5, needed: SnapshotHeader.size)) { try codec.decode(Array(blob.prefix(5))) }
        }
    }

    @Test func headersAreCheckedBeforeAnyAllocation() throws {
        var blob = try SnapshotCodec().encode([1, 2, 3])
        #expect(throws: SnapshotCodecError.notASnapshot) { try SnapshotCodec().decode([UInt8](repeating: 0, count: 64)) }
        // An absurd declared size (consistent element count) is refused by the size bound.
        for i in 8..<16 { blob[i] = 0xFF }
        for i in 16..<24 { blob[i] = 0 }
        #expect(throws: SnapshotCodecError.tooLarge(rawBytes: .max, limit: SnapshotCodec.defaultMaxRawBytes)) {
            try SnapshotCodec().decode(blob)
        }
        let small = SnapshotCodec(options: .init(maxRawBytes: 8))
        #expect(throws: SnapshotCodecError.tooLarge(rawBytes: 12, limit: 8)) { try small.decode(try SnapshotCodec().encode([1, 2, 3])) }
        #expect(throws: SnapshotCodecError.tooLarge(rawBytes: 12, limit: 8)) { try small.encode([1, 2, 3]) }
        var inconsistent = try SnapshotCodec().encode([1, 2, 3])
        inconsistent[16] = 4
        #expect(throws: SnapshotCodecError.inconsistentHeader("12 raw bytes for 4 fp32 elements")) { try SnapshotCodec().decode(inconsistent) }
    }

    @Test func keyframePolicyRestoresFromTheLatestKeyframe() {
        let p = KeyframePolicy(interval: 8)
        #expect((0..<20).filter(p.isKeyframe) == [0, 8, 16])
        #expect([0, 1, 7, 8, 15, 19].map(p.keyframe(for:)) == [0, 0, 0, 8, 8, 16])
        #expect(KeyframePolicy(interval: 0).isKeyframe(5))
    }
}

@Suite struct StateLayoutTests {
    static func tinyState() -> (TrainingState, ResNet18, OptimizerConfig) {
        let model = ResNet18(scale: .tiny), optimizer = OptimizerConfig(kind: .adam)
        var state = TrainingState(model: model, optimizer: optimizer, seed: 5)
        state.step = 3
        // Distinct values everywhere, so a misplaced tensor cannot go unnoticed.
        var counter: Float = 0
        func fill(_ t: inout [Float]) { for i in t.indices { counter += 1; t[i] = counter } }
        for i in state.parameters.indices { fill(&state.parameters[i]); for j in state.slots[i].indices { fill(&state.slots[i][j]) } }
        for k in state.modelState.indices { fill(&state.modelState[k]) }
        state.parameters[0][0] = Float(bitPattern: 0x7FC0_BEEF)
        state.modelState[0][0] = -0.0
        return (state, model, optimizer)
    }

    @Test func flattensByKindAndRestoresExactly() throws {
        let (state, model, optimizer) = Self.tinyState()
        let layout = try StateLayout(state, model: model, optimizer: optimizer)
        let p = model.parameterNames.count
        #expect(layout.tensors.count == 3 * p + state.modelState.count)
        #expect(layout.kindRanges.map(\.kind) == [.weights, .optimizerSlot("m"), .optimizerSlot("v"), .modelState])
        #expect(layout.tensors[p].name == model.parameterNames[0] + "/m")
        #expect(layout.tensors.last?.name == model.norms.last.map { $0.name + "/moving_variance" })
        let flat = try layout.flatten(state)
        #expect(flat.count == layout.elementCount && layout.byteCount == 4 * flat.count)
        #expect(Array(flat[layout.tensors[p + 1].range]) == state.slots[1][0])
        // Into a buffer that held other values, longer and shorter: the same values, and
        // the buffer's own storage when nothing else refers to it.
        for staleCount in [flat.count + 1000, 3] {
            var reused = [Float](repeating: .nan, count: staleCount)
            let before = reused.withUnsafeBufferPointer { $0.baseAddress }
            try layout.flatten(state, into: &reused)
            #expect(bits(reused) == bits(flat))
            if staleCount > flat.count { #expect(reused.withUnsafeBufferPointer { $0.baseAddress } == before) }
        }
        let restored = try layout.state(from: flat, step: state.step)
        #expect(restored.digest == state.digest)
        #expect(bits(restored.parameters[0]) == bits(state.parameters[0]))
        let raw = try layout.rawBytes(state)
        #expect(raw.count == layout.byteCount && Array(raw[0..<4]) == [0xEF, 0xBE, 0xC0, 0x7F])
        #expect(try layout.state(fromRawBytes: raw, step: state.step).digest == state.digest)
        // Default names give the same layout apart from the names.
        let unnamed = try StateLayout(state)
        #expect(unnamed.tensors.map(\.count) == layout.tensors.map(\.count) && unnamed.tensors[0].name == "param0")
    }

    @Test func mismatchesAreErrorsNamingTheTensor() throws {
        let (state, model, optimizer) = Self.tinyState()
        let layout = try StateLayout(state, model: model, optimizer: optimizer)
        var shorter = state
        shorter.slots[2][1].removeLast()
        #expect(throws: StateLayoutError.tensorSizeMismatch(tensor: model.parameterNames[2] + "/v", elements: state.slots[2][1].count - 1,
                                                          expected: state.slots[2][1].count)) { try layout.flatten(shorter) }
        var missingSlot = state
        missingSlot.slots[4].removeLast()
        #expect(throws: StateLayoutError.slotCountMismatch(parameter: model.parameterNames[4], slots: 1, expected: 2)) { try layout.flatten(missingSlot) }
        #expect(throws: StateLayoutError.slotCountMismatch(parameter: model.parameterNames[4], slots: 1, expected: 2)) {
            try StateLayout(missingSlot, model: model, optimizer: optimizer)
        }
        var fewer = state
        fewer.modelState.removeLast()
        #expect(throws: StateLayoutError.tensorCountMismatch(group: "model-state", tensors: state.modelState.count - 1, expected: state.modelState.count)) {
            try layout.flatten(fewer)
        }
        #expect(throws: StateLayoutError.nameCountMismatch(group: "parameter", names: 1, tensors: state.parameters.count)) {
            try StateLayout(state, parameterNames: ["only"])
        }
        #expect(throws: StateLayoutError.bufferSizeMismatch(elements: 5, expected: layout.elementCount)) { try layout.state(from: [1, 2, 3, 4, 5], step: 0) }
        #expect(throws: StateLayoutError.byteCountMismatch(bytes: 6, expected: layout.byteCount)) { try layout.state(fromRawBytes: [0, 1, 2, 3, 4, 5], step: 0) }
        #expect(StateLayoutError.tensorSizeMismatch(tensor: "conv1/kernel", elements: 3, expected: 4).description.contains("conv1/kernel"))
    }

    /// On a state from real training steps (tiny ResNet-18, Adam), delta-against-keyframe plus
    /// shuffle stores less than zstd of the raw bytes, and everything restores exactly.
    @Test func compressionHelpsOnRealTrainingState() throws {
        let data = try DatasetSource.parse("synthetic:train=64,test=16,shape=16x16x1").load()
        let run = try TrainingRun(config: TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2), data: data)
        var state = run.step(run.initialState()).0
        let layout = try StateLayout(state, model: run.model, optimizer: run.config.optimizer)
        let keyframe = try layout.flatten(state)
        for _ in 0..<3 { state = run.step(state).0 }
        let current = try layout.flatten(state)
        let codec = SnapshotCodec()
        let keyBlob = try codec.encode(keyframe), deltaBlob = try codec.encode(current, reference: keyframe)
        let plainCurrent = try Zstd.compress(StateLayout.littleEndianBytes(of: current)).count
        let plainKey = try Zstd.compress(StateLayout.littleEndianBytes(of: keyframe)).count
        #expect(deltaBlob.count < plainCurrent, "delta+shuffle \(deltaBlob.count) B vs plain zstd \(plainCurrent) B of \(layout.byteCount) B")
        #expect(keyBlob.count < plainKey, "shuffled keyframe \(keyBlob.count) B vs plain zstd \(plainKey) B")
        let restoredKey = try codec.decode(keyBlob)
        let restored = try layout.state(from: try codec.decode(deltaBlob, reference: restoredKey), step: state.step)
        #expect(restored == state && restored.digest == state.digest)
    }
}
