import Sim

/// Snapshot frame payloads: a training state encoded as a keyframe or as a delta against
/// the latest keyframe.
struct SnapshotStore {
    let keyframeEvery: Int

    func encode(_ state: TrainingState, against keyframe: TrainingState?, file: String) throws(TraceError) -> [UInt8] {
        var out: [UInt8] = [keyframe == nil ? 1 : 2]
        out.appendLE(UInt64(bitPattern: Int64(state.step)))
        out.appendLE(UInt32(state.parameters.count))
        for t in state.parameters { out.appendLE(UInt32(t.count)) }
        out.appendLE(UInt32(state.slots.first?.count ?? 0))
        out.appendLE(UInt32(state.moving.count))
        for t in state.moving { out.appendLE(UInt32(t.count)) }
        var raw: [Float] = []
        for t in state.parameters { raw += t }
        for s in state.slots { for t in s { raw += t } }
        for t in state.moving { raw += t }
        let bytes = raw.withUnsafeBytes { [UInt8]($0) }
        do {
            return out + (try Zstd.compress(bytes))
        } catch {
            throw .io(file: file, reason: "\(error)")
        }
    }

    static func isKeyframe(_ payload: [UInt8]) -> Bool { payload.first == 1 }

    /// The raw size of the state a payload holds (from its zstd frame header).
    static func rawBytes(_ payload: [UInt8]) -> Int {
        var p = payload.dropFirst(9)
        guard p.count >= 4 else { return 0 }
        let n = Int(p.readLE(UInt32.self, at: 0))
        p = p.dropFirst(4 + 4 * n + 4)
        guard p.count >= 4 else { return 0 }
        let m = Int(p.readLE(UInt32.self, at: 0))
        p = p.dropFirst(4 + 4 * m)
        return Int(Zstd.contentSize(Array(p)) ?? 0)
    }

    static func decode(_ payload: [UInt8], against keyframe: TrainingState?, frame: FrameEntry, file: String) throws(TraceError) -> TrainingState {
        func bad(_ reason: String) -> TraceError {
            .corruptFrame(file: file, index: frame.index, offset: frame.offset, step: frame.header.step, reason: reason)
        }
        var p = payload[...]
        func u32() throws(TraceError) -> Int {
            guard p.count >= 4 else { throw bad("snapshot header truncated") }
            defer { p = p.dropFirst(4) }
            return Int(p.readLE(UInt32.self, at: 0))
        }
        guard let kind = p.first, kind == 1 || kind == 2 else { throw bad("unknown snapshot kind") }
        p = p.dropFirst()
        guard p.count >= 8 else { throw bad("snapshot header truncated") }
        let step = Int(Int64(bitPattern: p.readLE(UInt64.self, at: 0)))
        p = p.dropFirst(8)
        let nParams = try u32()
        var sizes: [Int] = []
        for _ in 0..<nParams { sizes.append(try u32()) }
        let nSlots = try u32()
        let nMoving = try u32()
        var movingSizes: [Int] = []
        for _ in 0..<nMoving { movingSizes.append(try u32()) }
        let total = sizes.reduce(0, +) * (1 + nSlots) + movingSizes.reduce(0, +)
        let bytes: [UInt8]
        do {
            bytes = try Zstd.decompress(Array(p), limit: total * 4)
        } catch {
            throw bad("\(error)")
        }
        guard bytes.count == total * 4 else { throw bad("snapshot holds \(bytes.count) bytes, its header describes \(total * 4)") }
        let floats = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        var at = 0
        func take(_ n: Int) -> [Float] { defer { at += n }; return Array(floats[at ..< at + n]) }
        let params = sizes.map { take($0) }
        let slots = sizes.map { n in (0..<nSlots).map { _ in take(n) } }
        let moving = movingSizes.map { take($0) }
        return TrainingState(parameters: params, slots: slots, moving: moving, step: step)
    }
}
