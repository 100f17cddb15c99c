import Foundation
import Testing
import TestSupport

/// What a `tpufi` child did: its exit status, stdout and stderr, and whether a signal ended it
/// (a trap: `status` is then the signal's number).
typealias TpufiResult = (status: Int32, out: String, err: String, signaled: Bool)

/// A `tpufi` child that ran longer than its bound and was killed (SIGKILL): the error names
/// the command, so a test that hangs fails instead of stalling the suite.
struct TpufiTimedOut: Error, CustomStringConvertible {
    var arguments: [String]
    var seconds: Double
    var err: String

    var description: String {
        let command = (["tpufi"] + arguments).map { $0.count > 200 ? $0.prefix(200) + "..." : Substring($0) }.joined(separator: " ")
        return "\(command): still running after \(seconds) s, killed (TPUFI_TEST_TIMEOUT sets the bound)\(err.isEmpty ? "" : "; stderr: \(err.suffix(1_000))")"
    }
}

/// The built `tpufi` executable next to the test bundle.
func tpufiExecutable() throws -> URL {
    let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [bin, bin.deletingLastPathComponent()].map { $0.appendingPathComponent("tpufi") }
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CocoaError(.fileNoSuchFile)
    }
    return exe
}

/// How long one `tpufi` child may run: `TPUFI_TEST_TIMEOUT` seconds, else 300. Generous: the
/// slowest command of the suite (a 40-step recording) took 60 s in a full run on 2 cores
/// that other jobs were sharing (load 4-6), where suites run side by side.
let defaultTpufiTimeout: Double = ProcessInfo.processInfo.environment["TPUFI_TEST_TIMEOUT"].flatMap(Double.init) ?? 300

/// A running `tpufi` child, started by ``startTpufi(_:in:virtualMemoryKB:)``. Its output is
/// read as it comes (both pipes at once, so neither can fill up and block the child).
final class TpufiProcess: @unchecked Sendable {
    let arguments: [String]
    private let process = Process()
    private let exited = DispatchSemaphore(value: 0)
    private let readers = DispatchGroup()
    private let lock = NSLock()
    private var out = Data(), err = Data()

    /// The child's process id (after `exec`, also when run through `/bin/sh`).
    var pid: Int32 { process.processIdentifier }

    fileprivate init(_ arguments: [String], in directory: String?, virtualMemoryKB: Int?) throws {
        self.arguments = arguments
        let exe = try tpufiExecutable()
        if let virtualMemoryKB {
            // The shell sets the limit and execs tpufi in its place (same pid).
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -v \(virtualMemoryKB) && exec \"$0\" \"$@\"", exe.path] + arguments
        } else {
            process.executableURL = exe
            process.arguments = arguments
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        for (pipe, isOut) in [(outPipe, true), (errPipe, false)] {
            let handle = pipe.fileHandleForReading
            DispatchQueue.global().async(group: readers) { [self] in
                let data = handle.readDataToEndOfFile()
                lock.withLock { if isOut { out = data } else { err = data } }
            }
        }
    }

    /// Waits for the child to exit; one still running after `timeout` seconds is killed and
    /// ``TpufiTimedOut`` thrown.
    func wait(timeout: Double = defaultTpufiTimeout) throws -> TpufiResult {
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
            readers.wait()
            throw TpufiTimedOut(arguments: arguments, seconds: timeout, err: lock.withLock { String(decoding: err, as: UTF8.self) })
        }
        readers.wait()
        process.waitUntilExit()
        return lock.withLock {
            (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self),
             process.terminationReason == .uncaughtSignal)
        }
    }

    /// Whether the child is still running.
    var isRunning: Bool { process.isRunning }
}

/// Starts the built `tpufi` with `arguments` (in `directory`; under `ulimit -v
/// virtualMemoryKB` when given) without waiting for it.
func startTpufi(_ arguments: [String], in directory: String? = nil, virtualMemoryKB: Int? = nil) throws -> TpufiProcess {
    try TpufiProcess(arguments, in: directory, virtualMemoryKB: virtualMemoryKB)
}

/// Runs the built `tpufi` and returns its exit status, stdout and stderr, and whether a signal
/// ended it. A child still running after `timeout` seconds is killed and ``TpufiTimedOut``
/// thrown, naming the command.
func tpufi(_ arguments: [String], in directory: String? = nil, timeout: Double = defaultTpufiTimeout,
           virtualMemoryKB: Int? = nil) throws -> TpufiResult {
    try startTpufi(arguments, in: directory, virtualMemoryKB: virtualMemoryKB).wait(timeout: timeout)
}

/// A child that runs past its bound cannot stall the suite.
@Suite struct TpufiTimeoutTests {
    /// The shared helper kills a child still running after its bound and fails naming the
    /// command (a training run of a million steps stands in for a hang).
    @Test func aChildRunningPastItsBoundIsKilledAndTheCommandNamed() throws {
        let args = ["train", "--workload", "resnet18", "--scale", "tiny", "--dataset", "synthetic:train=64,test=16",
                    "--steps", "1000000", "--replicas", "1", "--threads", "1"]
        do {
            let r = try tpufi(args, timeout: 1)
            Issue.record("a million steps finished within the bound: \(r.status) \(r.err)")
        } catch let e as TpufiTimedOut {
            #expect(e.description.hasPrefix("tpufi train --workload resnet18 --scale tiny") && e.description.contains("still running after 1.0 s, killed"),
                    "\(e)")
        }
    }
}
