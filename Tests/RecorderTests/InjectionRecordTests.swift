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

    /// What a fault found and changed (golden values, flipped bits and their format, elements
    /// changed, whether a PE was in use) is written when known and read back; records without
    /// it read as before, with the fields nil.
    @Test func injectionFactsRoundTripAndOldRecordsLackThem() throws {
        let old = try Self.decode(Self.software)
        #expect(old.goldenValues == nil && old.bits == nil && old.bitFormat == nil && old.activated == nil && old.peInUse == nil)
        var facts = old
        facts.goldenValues = [0.5, -0.0]
        facts.bits = [30, 31]
        facts.bitFormat = .float32
        facts.activated = 2
        let json = String(decoding: try JSONCoding.encoder().encode(facts), as: UTF8.self)
        #expect(json.contains(#""activated":2"#) && json.contains(#""bitFormat":"float32""#) && json.contains(#""bits":[30,31]"#))
        let back = try Self.decode(json)
        #expect(back == facts && back.goldenValues?.map(\.bitPattern) == [Float(0.5).bitPattern, Float(-0.0).bitPattern])
        var hardware = try Self.decode(Self.hardware)
        hardware.peInUse = false
        hardware.activated = 2
        #expect(try Self.decode(String(decoding: try JSONCoding.encoder().encode(hardware), as: UTF8.self)).peInUse == false)
        // Inconsistent facts are refused naming the field.
        #expect(Self.error(json.replacingOccurrences(of: #""goldenValues":[0.5,-0]"#, with: #""goldenValues":[0.5]"#)).contains("1 golden values for 2 positions"))
        #expect(Self.error(json.replacingOccurrences(of: #""bits":[30,31]"#, with: #""bits":[30,32]"#)).contains("a bit outside 0...31"))
        #expect(Self.error(json.replacingOccurrences(of: #""activated":2"#, with: #""activated":3"#)).contains("3 elements changed of 2 positions"))
        #expect(Self.error(json.replacingOccurrences(of: #""bitFormat":"float32""#, with: #""bitFormat":"float8""#)).contains("unknown number format 'float8'"))
    }

    /// The flipped bit of each position is the one bit its value differs in; none when a value
    /// differs in more or fewer bits. Changed elements compare values as the operation
    /// consumes them: a flip that bfloat16 rounding discards, or zero over zero, is unchanged.
    @Test func flippedBitsAndChangedElementsCompareBitPatterns() {
        let g: [Float] = [1.0, 0.0, 3.0]
        let flipped = zip(g, [0, 7, 22]).map { Float(bitPattern: $0.bitPattern ^ (1 << UInt32($1))) }
        #expect(InjectionRecord.flippedBits(golden: g, values: flipped) == [0, 7, 22])
        #expect(InjectionRecord.flippedBits(golden: g, values: [1.0, 0.0, 3.0]) == nil)
        #expect(InjectionRecord.flippedBits(golden: [1.0], values: [-2.0]) == nil)
        // Bits 0 and 7 of fp32 are below bfloat16's 16 bits (1.0 rounds back to 1.0, the
        // subnormal made of 0.0 flushes to 0); bit 22 (3.0 becomes 2.0) is not.
        #expect(InjectionRecord.changedCount(golden: g, values: flipped, consumedAs: BFloat16Format()) == 1)
        #expect(InjectionRecord.changedCount(golden: g, values: flipped, consumedAs: nil) == 3)
        #expect(InjectionRecord.changedCount(golden: [0, -0.0], values: [0, 0], consumedAs: nil) == 1)
    }
}
