import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// Every spec has a bound on what it may cost, and each bound is named when exceeded.
@Suite struct SpecBoundsTests {
    static let config = try! TrainingConfig(workload: "resnet18", scale: "tiny", replicas: 2)

    static func check(_ json: String) -> String {
        do {
            let spec = try JSONCoding.decoder.decode(InjectionSpec.self, from: Data(json.utf8))
            return try FaultReplay.check(spec, specName: "s.json", config: config)
        } catch {
            return "\(error)"
        }
    }

    @Test func positionsAreBoundedByTheOperandAndDistinct() {
        // dense_grad_in's output is 4x32 = 128 elements at tiny.
        let all = (0..<4).flatMap { r in (0..<32).map { [r, $0] } }
        func spec(_ positions: [[Int]]) -> String {
            #"{"workload": "resnet18", "site": "dense_grad_in", "faultModel": "RD_GLB", "replica": 0, "globalStep": 1, "positions": \#(positions), "values": \#(positions.map { _ in 1.0 })}"#
        }
        #expect(Self.check(spec(all)).contains("128 position(s) inside 4x32"))
        #expect(Self.check(spec(all + [[0, 0]])).contains("129 positions for the output of dense_grad_in, which has 128 elements"))
        #expect(Self.check(spec([[1, 2], [3, 4], [1, 2]])).contains("position 1/2 of the output of dense_grad_in is listed twice"))
    }

    @Test func specFilesAreRegularAndBounded() throws {
        let dir = Scratch.path("spec-bounds")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fifo = dir + "/fifo.json"
        try? FileManager.default.removeItem(atPath: fifo)
        #expect(mkfifo(fifo, 0o644) == 0)
        #expect(throws: SpecError.unreadable(file: fifo, reason: "not a regular file")) { try InjectionSpec.load(path: fifo) }
        let big = dir + "/big.csv"
        FileManager.default.createFile(atPath: big, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: UInt64(InputFile.specLimit + 1))   // sparse: costs no disk
        try handle.close()
        #expect(throws: SpecError.unreadable(file: big, reason: "\(InputFile.specLimit + 1) bytes; at most \(InputFile.specLimit) are read")) {
            try InjectionSpec.load(path: big)
        }
        #expect(throws: SpecError.unreadable(file: dir + "/none.json", reason: "no such file")) { try InjectionSpec.load(path: dir + "/none.json") }
    }

    /// Seeds are written as strings (a JSON tool reading numbers as doubles would round a
    /// 64-bit seed and replay another run); numbers are still read.
    @Test func seedsAreWrittenAsStringsAndReadEitherWay() throws {
        let spec = InjectionSpec(workload: "resnet18", site: "conv1", faultModel: .RD, replica: 0, globalStep: 1, seed: (1 << 63) + 5)
        let json = String(decoding: try JSONCoding.encoder().encode(spec), as: UTF8.self)
        #expect(json.contains(#""seed":"9223372036854775813""#), "\(json)")
        #expect(try JSONCoding.decoder.decode(InjectionSpec.self, from: Data(json.utf8)) == spec)
        let number = json.replacingOccurrences(of: #""9223372036854775813""#, with: "9223372036854775813")
        #expect(try JSONCoding.decoder.decode(InjectionSpec.self, from: Data(number.utf8)) == spec)
        #expect(throws: DecodingError.self) {
            try JSONCoding.decoder.decode(InjectionSpec.self, from: Data(json.replacingOccurrences(of: "9223372036854775813", with: "-1").utf8))
        }
    }
}
