import Foundation
import Testing
@testable import Recorder

/// The trace writer's appends on a background thread (``BackgroundAppends``): in order, all
/// written when waited for, and the first failure stopping later appends and reaching the
/// recording loop.
@Suite struct BackgroundAppendsTests {
    /// Stands in for the trace writer: remembers what was appended, in order.
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [Int] = []
        func append(_ n: Int) { lock.withLock { entries.append(n) } }
        var appended: [Int] { lock.withLock { entries } }
    }

    struct Refused: Error, Equatable { let entry: Int }

    @Test func appendsRunInOrderAndAreAllWrittenWhenWaitedFor() throws {
        let log = Log()
        let appends = BackgroundAppends(log)
        for n in 0..<200 {
            try appends.add { log in
                if n % 50 == 0 { Thread.sleep(forTimeInterval: 0.002) }  // a slow fsync now and then
                log.append(n)
            }
        }
        appends.waitUntilWritten()
        #expect(log.appended == Array(0..<200))
        try appends.rethrow()
    }

    @Test func theFirstFailureStopsLaterAppendsAndIsThrown() throws {
        let log = Log()
        let appends = BackgroundAppends(log)
        // The first append waits until all three are queued, so that the third is surely
        // queued before the second fails (else `add` could already throw).
        let queued = DispatchSemaphore(value: 0)
        try appends.add { log in
            queued.wait()
            log.append(1)
        }
        try appends.add { _ in throw Refused(entry: 2) }
        try appends.add { $0.append(3) }  // queued before the failure is known: not run
        queued.signal()
        appends.waitUntilWritten()
        #expect(log.appended == [1])
        #expect(throws: Refused(entry: 2)) { try appends.add { $0.append(4) } }
        #expect(throws: Refused(entry: 2)) { try appends.rethrow() }
        appends.waitUntilWritten()
        #expect(log.appended == [1])
    }
}
