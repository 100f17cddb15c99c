import Foundation
import Testing
import Recorder
import Sim

/// The injection a faulty trace's manifest records: typed, checked once when read, written
/// back in trace format 2's own bytes.
@Suite struct InjectionRecordTests {
    /// As tpufi wrote them before the typed record (positions and values shortened).
    static let software = #"{"faultModel":"N16_RD","globalStep":1,"golden":"golden","positions":[[3,2,4,0],[3,2,4,1]],"replica":1,"role":"output","seed":42,"site":"basicblock_2_basic_0_conv1_grad_in","values":[-1.42460575e+35,3.627937e+08]}"#
    static let hardware = #"{"faultModel":"hardware","globalStep":1,"golden":"golden","hardware":{"bit":14,"column":1,"mxu":0,"register":"weight","row":0,"stuckAt":1},"positions":[[0,9,1],[0,10,1]],"replica":0,"role":"output","site":"all","values":[-1.5838842e+38,-3.4467116e+37]}"#

    static func decode(_ json: String) throws -> InjectionRecord {
        try JSONCoding.decoder.decode(InjectionRecord.self, from: Data(json.utf8))
    }

    static func error(_ json: String) -> String {
        do { _ = try decode(json); return "no error" } catch { return "\(error)" }
    }

    @Test func formatTwoRecordsReadTypedAndWriteTheSameBytes() throws {
        let s = try Self.decode(Self.software)
        #expect(s.fault == .software(.N16_RD) && s.role == .output && s.positions == .operand([[3, 2, 4, 0], [3, 2, 4, 1]]) && s.seed == 42)
        let h = try Self.decode(Self.hardware)
        #expect(h.hardware?.bit == 14 && h.positions == .stepProduct([[0, 9, 1], [0, 10, 1]]) && h.faultName == "hardware")
        for json in [Self.software, Self.hardware] {
            let again = String(decoding: try JSONCoding.encoder().encode(try Self.decode(json)), as: UTF8.self)
            #expect(try Self.decode(again) == (try Self.decode(json)))
            #expect(again == json)
        }
    }

    @Test func inconsistentRecordsAreRefusedNamingTheField() {
        #expect(Self.error(Self.software.replacingOccurrences(of: #""role":"output""#, with: #""role":"bias""#)).contains("unknown operand 'bias'"))
        #expect(Self.error(Self.software.replacingOccurrences(of: "N16_RD", with: "N17_RD")).contains("unknown fault model 'N17_RD'"))
        #expect(Self.error(Self.software.replacingOccurrences(of: "N16_RD", with: "hardware")).contains("without the hardware fault"))
        #expect(Self.error(Self.hardware.replacingOccurrences(of: #""faultModel":"hardware""#, with: #""faultModel":"RD""#)).contains("is 'hardware', not 'RD'"))
        #expect(Self.error(Self.hardware.replacingOccurrences(of: "[0,9,1]", with: "[9,1]")).contains("[operation, row, column]"))
        #expect(Self.error(Self.software.replacingOccurrences(of: ",3.627937e+08]", with: "]")).contains("1 values for 2 positions"))
        #expect(Self.error(Self.software.replacingOccurrences(of: #""replica":1"#, with: #""replica":-1"#)).contains("replica -1 is negative"))
    }
}
