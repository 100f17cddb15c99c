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
        #expect(throws: SpecError.unreadable(file: fifo, reason: "not a regular file (a FIFO)")) { try InjectionSpec.load(path: fifo) }
        let big = dir + "/big.csv"
        _ = FileManager.default.createFile(atPath: big, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: UInt64(InputFile.specLimit + 1))   // sparse: costs no disk
        try handle.close()
        #expect(throws: SpecError.unreadable(file: big, reason: "\(InputFile.specLimit + 1) bytes; at most \(InputFile.specLimit) are read")) {
            try InjectionSpec.load(path: big)
        }
        #expect(throws: SpecError.unreadable(file: dir + "/none.json", reason: "no such file")) { try InjectionSpec.load(path: dir + "/none.json") }
    }

    /// A native spec's number that does not fit its field names the field (not "not valid
    /// JSON"), and an unknown field is an error listing the valid ones.
    @Test func outOfRangeNumbersNameTheFieldAndUnknownFieldsListTheValidOnes() throws {
        let dir = Scratch.path("spec-fields")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func load(_ json: String) throws -> String {
            let path = dir + "/s.json"
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            do { _ = try InjectionSpec.load(path: path); return "no error" } catch { return "\(error)".replacingOccurrences(of: path + ": ", with: "") }
        }
        let base = #"{"workload": "resnet18", "site": "dense", "faultModel": "RD", "replica": REPLICA, "globalStep": STEP, "positions": [[1, 2]], "values": [VALUE]}"#
        func spec(replica: String = "0", step: String = "1", value: String = "1") -> String {
            base.replacingOccurrences(of: "REPLICA", with: replica).replacingOccurrences(of: "STEP", with: step).replacingOccurrences(of: "VALUE", with: value)
        }
        #expect(try load(spec()) == "no error")
        #expect(try load(spec(replica: "99999999999999999999")) == "field 'replica': 99999999999999999999 is outside -9223372036854775808...9223372036854775807")
        #expect(try load(spec(step: "1.5")) == "field 'globalStep': 1.5 is not an integer")
        #expect(try load(spec(step: "1e400")) == "field 'globalStep': 1e400 is outside -9223372036854775808...9223372036854775807")
        #expect(try load(spec(value: "1e39")) == "field 'values[0]': 1e39 is outside the range of Float")
        #expect(try load(spec(replica: "\"two\"")).hasPrefix("field 'replica': "))
        #expect(try load(spec().replacingOccurrences(of: "[[1, 2]]", with: "[[1, -99999999999999999999]]"))
                == "field 'positions[0][1]': -99999999999999999999 is outside -9223372036854775808...9223372036854775807")
        let hardware = #"{"site": "conv1", "replica": 0, "globalStep": 1, "hardware": {"mxu": 0, "row": 1, "column": 2, "register": "weight", "bit": 99999999999999999999, "stuckAt": 1}}"#
        #expect(try load(hardware).hasPrefix("field 'hardware.bit': 99999999999999999999 is outside"))
        #expect(try load(spec().replacingOccurrences(of: #""site""#, with: #""Site""#))
                == "unknown field 'Site' (expected workload, site, faultModel, hardware, replica, globalStep, epoch, step, positions, values, seed)")
        #expect(try load(hardware.replacingOccurrences(of: #""bit""#, with: #""bits""#))
                == "unknown field 'hardware.bits' (expected hardware.mxu, hardware.row, hardware.column, hardware.register, hardware.bit, hardware.cycle, hardware.stuckAt)")
        #expect(try load("{\"site\": ").hasPrefix("not valid JSON: "))
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
