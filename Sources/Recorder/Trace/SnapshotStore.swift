import Sim

/// Snapshot frame payloads: the step count (8 bytes, little-endian), then a
/// ``SnapshotCodec`` blob of the state flattened by ``StateLayout``: a keyframe, an XOR delta
/// against the latest keyframe, or (trace format 2) an **update delta**: the gradients and
/// batch statistics of the step that led from the previous snapshot's state to this one,
/// which ``Trainer/apply(_:to:)`` turns back into the state bit for bit.
struct SnapshotStore: Sendable {
    let layout: StateLayout
    /// Applies update deltas; only its optimizer, schedule and the model's state update are used.
    let trainer: Trainer
    let codec = SnapshotCodec()
    /// Whether an update delta's header holds the digest of the state it rebuilds
    /// (``TrainingState/digest``, which the step record holds too: from trace format 3) rather
    /// than the digest of that state's flat values (format 2), a second pass over the state.
    let updatesHoldStateDigests: Bool

    /// A decoded snapshot: the state and the digest its blob header records, verified (of its
    /// flat values, or for a format-3 update delta the state's digest), so that the next
    /// update's reference check needs no rehash.
    struct Decoded: Sendable {
        var state: TrainingState
        var digest: Digest
    }

    /// The store for states of the manifest's model and optimizer.
    init(manifest: TraceManifest) throws(TraceError) {
        let model: any Model
        do {
            model = try manifest.config.makeModel()
        } catch {
            throw .mismatch("the manifest's model: \(error)")
        }
        try self.init(manifest: manifest, model: model)
    }

    /// The same with the manifest's model already built.
    init(manifest: TraceManifest, model: any Model) throws(TraceError) {
        let c = manifest.config
        do {
            layout = try StateLayout(TrainingState(model: model, optimizer: c.optimizer, seed: 0), model: model, optimizer: c.optimizer)
        } catch {
            throw .mismatch("cannot lay out the state of \(c.title): \(error)")
        }
        trainer = Trainer(model: model, optimizer: c.optimizer, schedule: c.schedule, mxu: MXU(config: c.chip, precision: c.precision))
        updatesHoldStateDigests = manifest.formatVersion >= 3
    }

    /// Values in an update delta: one gradient per parameter, then one statistic per
    /// model-state tensor (for batch norm: the batch mean, then variance, of each layer).
    var updateElements: Int {
        layout.tensors.reduce(0) { $0 + ($1.kind == .weights || $1.kind == .modelState ? $1.count : 0) }
    }

    /// `state`'s flat values, into `values` (``StateLayout/flatten(_:into:)``: its storage reused).
    func flatten(_ state: TrainingState, into values: inout [Float], file: String) throws(TraceError) {
        do {
            try layout.flatten(state, into: &values)
        } catch {
            throw .io(file: file, reason: "cannot lay out the state after step \(state.step): \(error)")
        }
    }

    /// ``flatten(_:file:)``'s digest alone (an update delta needs no flat copy).
    func flatDigest(_ state: TrainingState, file: String) throws(TraceError) -> Digest {
        do {
            return try layout.flatDigest(state)
        } catch {
            throw .io(file: file, reason: "cannot lay out the state after step \(state.step): \(error)")
        }
    }

    /// A keyframe (no `keyframe`) or an XOR delta against `keyframe`'s flat values; `digest`
    /// is `Digest.of(flat)`.
    func encode(_ flat: [Float], digest: Digest, step: Int, against keyframe: [Float]?, file: String,
                using buffers: inout EncodeBuffers) throws(TraceError) -> ArraySlice<UInt8> {
        do {
            return try codec.encode(flat, digest: digest, reference: keyframe, after: Self.stepBytes(step), using: &buffers)
        } catch {
            throw .io(file: file, reason: "cannot encode the snapshot after step \(step): \(error)")
        }
    }

    /// An update delta: `g`'s gradients and batch statistics, which take the state with flat
    /// digest `previous` (after `step - 1` updates) to the one with `digest`.
    func encodeUpdate(_ g: Trainer.Gradients, step: Int, digest: Digest, previous: Digest, file: String,
                      using buffers: inout EncodeBuffers) throws(TraceError) -> ArraySlice<UInt8> {
        func bad(_ reason: String) -> TraceError { .io(file: file, reason: "cannot encode the update of step \(step - 1): \(reason)") }
        let p = layout.parameterNames.count
        guard g.gradients.count == p, g.statistics.count == layout.modelStateNames.count else {
            throw bad("\(g.gradients.count) gradient tensors and \(g.statistics.count) statistics; the state has \(p) and \(layout.modelStateNames.count)")
        }
        var chunks: [[Float]] = []
        chunks.reserveCapacity(g.gradients.count + g.statistics.count)
        for (t, grad) in g.gradients.enumerated() {
            guard grad.count == layout.tensors[t].count else { throw bad("gradient of \(layout.tensors[t].name) has \(grad.count) values, the parameter \(layout.tensors[t].count)") }
            chunks.append(grad)
        }
        let state = Array(layout.tensors.suffix(layout.modelStateNames.count))
        for (n, s) in g.statistics.enumerated() {
            guard s.count == state[n].count else { throw bad("statistic of \(state[n].name) has \(s.count) values, the state \(state[n].count)") }
            chunks.append(s)
        }
        do {
            return try codec.encodeUpdate(concatenationOf: chunks, stateDigest: digest, stateElements: layout.elementCount,
                                          referenceDigest: previous, after: Self.stepBytes(step), using: &buffers)
        } catch {
            throw bad("\(error)")
        }
    }

    /// A payload's first 8 bytes: the step, little-endian.
    static func stepBytes(_ step: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLE(UInt64(bitPattern: Int64(step)))
        return bytes
    }

    /// Bytes at the start of a payload that say what it holds: the step and the codec header.
    static let headerBytes = 8 + SnapshotHeader.size

    /// The codec header of a payload (or of its first ``headerBytes``); nil if it does not parse.
    static func header(_ payload: [UInt8]) -> SnapshotHeader? {
        try? SnapshotHeader(parsing: Array(payload.dropFirst(8)))
    }

    /// Raw state bytes a payload holds (from its header).
    static func rawBytes(_ payload: [UInt8]) -> Int { Int(header(payload)?.rawByteCount ?? 0) }

    /// Decodes a payload. A keyframe needs no `reference`; an XOR delta needs its keyframe;
    /// an update delta needs the previous step's snapshot (checked by digest), and the state
    /// it reconstructs is checked against the digest the header records.
    func decode(_ payload: [UInt8], reference: Decoded?, frame: FrameEntry, file: String) throws(TraceError) -> Decoded {
        func bad(_ reason: String) -> TraceError {
            .corruptFrame(file: file, index: frame.index, offset: frame.offset, step: frame.header.step, reason: reason)
        }
        guard payload.count >= 8 else { throw bad("snapshot payload truncated") }
        let step = Int(Int64(bitPattern: payload[...].readLE(UInt64.self, at: 0)))
        guard step == frame.header.step else { throw bad("snapshot says step \(step), its frame \(frame.header.step)") }
        let blob = Array(payload.dropFirst(8))
        do {
            let header = try SnapshotHeader(parsing: blob)
            guard header.kind == .update else {
                let values = try codec.decode(blob, reference: try reference.map { r throws(StateLayoutError) in try layout.flatten(r.state) })
                return Decoded(state: try layout.state(from: values, step: step), digest: header.digest)
            }
            guard let reference else { throw bad("update delta without the snapshot of step \(step - 1) before it") }
            guard reference.state.step == step - 1 else {
                throw bad("update delta of step \(step - 1) given the state after \(reference.state.step) updates")
            }
            let (_, values) = try codec.decodeUpdate(blob, updateElements: updateElements, referenceDigest: reference.digest)
            let next = trainer.apply(gradients(values), to: reference.state)
            if updatesHoldStateDigests {
                try SnapshotCodec.checkUpdateResult(elements: layout.elementCount, digest: next.digest, header: header)
            } else {
                try SnapshotCodec.checkUpdateResult(try layout.flatten(next), header: header)
            }
            return Decoded(state: next, digest: header.digest)
        } catch let error as TraceError {
            throw error
        } catch {
            throw bad("\(error)")
        }
    }

    /// An update delta's flat values as the trainer's ``Trainer/Gradients`` (the counts were
    /// checked by the decoder).
    private func gradients(_ values: [Float]) -> Trainer.Gradients {
        let p = layout.parameterNames.count
        var offset = 0
        func take(_ count: Int) -> [Float] {
            defer { offset += count }
            return Array(values[offset ..< offset + count])
        }
        let grads = layout.tensors[0..<p].map { take($0.count) }
        let stats = layout.tensors.suffix(layout.modelStateNames.count).map { take($0.count) }
        return Trainer.Gradients(gradients: grads, statistics: stats)
    }
}
