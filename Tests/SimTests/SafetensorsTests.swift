import Testing
@testable import Sim

@Suite struct SafetensorsTests {
    @Test func roundTripsFloatsAndIntegersWithMetadata() throws {
        let tensors: [String: Safetensors.Entry] = [
            "w": .float(shape: [2, 3], values: [1, -2, .infinity, 0.5, -0.0, Float(bitPattern: 0x0003_4AB1)]),
            "labels": .int(shape: [3], values: [0, 9, -1]),
            "empty": .float(shape: [0], values: []),
        ]
        let bytes = Safetensors.encode(tensors, metadata: ["workload": "resnet18 \"tiny\""])
        #expect(Int(bytes[0]) % 8 == 0 && bytes[1..<8].allSatisfy { $0 == 0 })      // data 8-byte aligned
        let (back, meta) = try Safetensors.decode(bytes, file: "t.safetensors")
        #expect(meta == ["workload": "resnet18 \"tiny\""])
        #expect(back.count == 3 && back["labels"] == tensors["labels"] && back["empty"] == tensors["empty"])
        guard case .float(let shape, let values)? = back["w"] else { Issue.record("w missing"); return }
        #expect(shape == [2, 3] && values.map(\.bitPattern) == [1, -2, .infinity, 0.5, -0.0, Float(bitPattern: 0x0003_4AB1)].map(\.bitPattern))
        #expect(Safetensors.encode(tensors) == Safetensors.encode(tensors))
    }

    @Test func rejectsDamagedFilesWithTheTensorName() throws {
        let good = Safetensors.encode(["x": .float(shape: [4], values: [1, 2, 3, 4])])
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(Array(good.prefix(6)), file: "f") }
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(Array(good.dropLast(4)), file: "f") }
        var hugeHeader = good
        hugeHeader[5] = 0x7F
        #expect(throws: SafetensorsError.self) { try Safetensors.decode(hugeHeader, file: "f") }
        do {
            _ = try Safetensors.decode(Array(good.dropLast(4)), file: "f.safetensors")
            Issue.record("truncated data accepted")
        } catch {
            #expect(error.description.contains("f.safetensors") && error.description.contains("'x'"))
        }
    }
}
