import Sim

/// Snapshot frame payloads: the step count (8 bytes, little-endian), then a
/// ``SnapshotCodec`` blob of the state flattened by ``StateLayout``, either a keyframe or an
/// XOR delta against the latest keyframe (so a restore decodes at most two blobs, whatever
/// the step).
struct SnapshotStore: Sendable {
    let layout: StateLayout
    let codec = SnapshotCodec()

    /// The store for states of the manifest's model and optimizer.
    init(manifest: TraceManifest) throws(TraceError) {
        let c = manifest.config
        let model = ResNet18(scale: c.scale, batchNorm: c.workload.hasBatchNorm)
        do {
            layout = try StateLayout(TrainingState(model: model, optimizer: c.optimizer, seed: 0), model: model, optimizer: c.optimizer)
        } catch {
            throw .mismatch("cannot lay out the state of \(c.workload.rawValue) \(c.scale.name): \(error)")
        }
    }

    func encode(_ state: TrainingState, against keyframe: TrainingState?, file: String) throws(TraceError) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(UInt64(bitPattern: Int64(state.step)))
        do {
            let blob = try codec.encode(try layout.flatten(state), reference: try keyframe.map { s throws(StateLayoutError) in try layout.flatten(s) })
            return out + blob
        } catch {
            throw .io(file: file, reason: "cannot encode the snapshot after step \(state.step): \(error)")
        }
    }

    /// Bytes at the start of a payload that say what it holds: the step and the codec header.
    static let headerBytes = 8 + SnapshotHeader.size

    /// Whether a payload (or its first ``headerBytes``) is a keyframe.
    static func isKeyframe(_ payload: [UInt8]) -> Bool {
        (try? SnapshotHeader(parsing: Array(payload.dropFirst(8))))?.kind == .keyframe
    }

    /// Raw state bytes a payload holds (from its header).
    static func rawBytes(_ payload: [UInt8]) -> Int {
        Int((try? SnapshotHeader(parsing: Array(payload.dropFirst(8))))?.rawByteCount ?? 0)
    }

    func decode(_ payload: [UInt8], against keyframe: TrainingState?, frame: FrameEntry, file: String) throws(TraceError) -> TrainingState {
        func bad(_ reason: String) -> TraceError {
            .corruptFrame(file: file, index: frame.index, offset: frame.offset, step: frame.header.step, reason: reason)
        }
        guard payload.count >= 8 else { throw bad("snapshot payload truncated") }
        let step = Int(Int64(bitPattern: payload[...].readLE(UInt64.self, at: 0)))
        guard step == frame.header.step else { throw bad("snapshot says step \(step), its frame \(frame.header.step)") }
        do {
            let reference = try keyframe.map { s throws(StateLayoutError) in try layout.flatten(s) }
            let values = try codec.decode(Array(payload.dropFirst(8)), reference: reference)
            return try layout.state(from: values, step: step)
        } catch {
            throw bad("\(error)")
        }
    }
}
