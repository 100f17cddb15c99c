import Dispatch
import Foundation

/// Runs a recording's trace writes on one background thread, in the order submitted, so that
/// digesting and encoding a step's snapshot and record, writing them and syncing the file
/// overlap the next step's training instead of waiting for it.
///
/// At most `depth` submissions wait at a time (each holds a step's state and gradients, which
/// are shared, not copied). The first write that fails stops all later ones; its error is
/// thrown by the next ``submit(_:)`` or by ``drain()``, so a failed write still ends the run
/// with the writer's message, a step late at most. Frames are the same bytes in the same
/// order as synchronous writes give.
final class WritePipeline: @unchecked Sendable {
    private let queue = DispatchQueue(label: "tpufi.trace-writes")
    private let slots: DispatchSemaphore
    private let lock = NSLock()
    private var failure: (any Error)?

    init(depth: Int = 2) {
        slots = DispatchSemaphore(value: max(1, depth))
    }

    /// Queues `work` after everything submitted before; first throws an earlier write's error.
    func submit(_ work: @escaping @Sendable () throws -> Void) throws {
        try rethrow()
        slots.wait()
        queue.async { [self] in
            defer { slots.signal() }
            guard !failed else { return }
            do { try work() } catch { record(error) }
        }
    }

    /// Waits for every submitted write, then throws the first error among them, if any.
    func drain() throws {
        wait()
        try rethrow()
    }

    /// Waits for every submitted write (on a path that already failed otherwise).
    func wait() {
        queue.sync {}
    }

    private var failed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return failure != nil
    }

    private func record(_ error: any Error) {
        lock.lock()
        defer { lock.unlock() }
        if failure == nil { failure = error }
    }

    private func rethrow() throws {
        lock.lock()
        let error = failure
        lock.unlock()
        if let error { throw error }
    }
}

/// A value handed to the write thread that only that thread uses while the pipeline runs
/// (the trace writer: the recording loop touches it only through the pipeline).
struct PipelineOwned<Value>: @unchecked Sendable {
    let value: Value
}
