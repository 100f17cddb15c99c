import Foundation
import Testing
@testable import Replayer

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

@Suite struct ReplaySpecCSVTests {
    @Test func readsEveryReferenceExampleVerbatim() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).filter { $0.hasSuffix(".csv") }.sorted()
        #expect(files.count == 11)
        for file in files {
            let spec = try ReplaySpecCSV.load(path: fixtures.appendingPathComponent(file).path)
            #expect(spec.positions.count == spec.values.count)
            #expect(spec.seed == 123)
            #expect(file.hasPrefix((spec.model ?? "?") + "__"))
        }
        let rd = try ReplaySpecCSV.load(path: fixtures.appendingPathComponent("resnet18__inj_immediate_infs_nans.csv").path)
        #expect(rd.stage == .forward && rd.faultModel == .RD && rd.targetWorker == 1)
        #expect(rd.targetLayer == "basicblock_2_basic_0_conv2" && rd.targetEpoch == 19 && rd.targetStep == 38)
        #expect(rd.positions == [[107, 3, 3, 85]])
        #expect(rd.values == [Float(2.86871514043344e+24)] && rd.valueTexts == ["2.86871514043344e+24"])
        #expect(rd.learningRate == 0.001)
        let n16 = try ReplaySpecCSV.load(path: fixtures.appendingPathComponent("densenet__inj_slow_degrade.csv").path)
        #expect(n16.stage == .backward && n16.positions.count == 16)
        #expect(n16.positions.map { $0[3] } == Array(64..<80))
    }

    static let valid = """
    model,resnet18
    stage,fwrd_inject
    fmodel,RD
    target_worker,1
    target_layer,basicblock_2_basic_0_conv2
    target_epoch,19
    target_step,38
    inj_pos,107/3/3/85
    inj_values,2.5
    learning_rate,0.001
    seed,123
    """

    func error(_ replace: String, with: String) -> String? {
        do {
            _ = try ReplaySpecCSV.parse(Self.valid.replacingOccurrences(of: replace, with: with), file: "spec.csv")
            return nil
        } catch {
            return error.description
        }
    }

    /// The reference's later specs: positions and values in braces, no `model` row.
    @Test func readsTheBraceSyntaxAndSpecsWithoutAModelRow() throws {
        let braced = Self.valid.replacingOccurrences(of: "model,resnet18\n", with: "")
            .replacingOccurrences(of: "fmodel,RD", with: "fmodel,N16_RD")
            .replacingOccurrences(of: "inj_pos,107/3/3/85", with: "inj_pos," + (0..<16).map { "{5,20,\($0)}" }.joined(separator: ","))
            .replacingOccurrences(of: "inj_values,2.5", with: "inj_values,{" + (0..<16).map { "\($0).5" }.joined(separator: ",") + "}")
        let spec = try ReplaySpecCSV.parse(braced, file: "braced.csv")
        #expect(spec.model == nil && spec.positions == (0..<16).map { [5, 20, $0] })
        #expect(spec.values == (0..<16).map { Float($0) + 0.5 } && spec.valueTexts.first == "0.5")
        #expect(InjectionSpec(spec).workload == nil)
        #expect(error("inj_pos,107/3/3/85", with: "inj_pos,{5,20,32},{5,20")?.contains("expected groups in braces") == true)
        #expect(error("inj_pos,107/3/3/85", with: "inj_pos,{}")?.contains("empty or nested") == true)
        #expect(error("inj_pos,107/3/3/85", with: "inj_pos,{5,x,32}")?.contains("position '5,x,32'") == true)
    }

    @Test func rejectsBadInputNamingFileAndLine() {
        #expect(error("", with: "") == nil)
        #expect(error("stage,fwrd_inject", with: "stage,fwrd_inject\n , , ,") == "spec.csv:3: a row without a key (expected one of model, stage, fmodel, target_worker, target_layer, target_epoch, target_step, inj_pos, inj_values, learning_rate, seed)")
        #expect(error("fmodel,RD", with: "fmodel,RD_TYPO")?.hasPrefix("spec.csv:3: unknown fault model 'RD_TYPO'") == true)
        #expect(error("inj_values,2.5", with: "inj_values,2.5,3.5") == "spec.csv:9: 2 values for 1 positions (line 8)")
        #expect(error("107/3/3/85", with: "107/3/x/85")?.hasPrefix("spec.csv:8: position '107/3/x/85'") == true)
        #expect(error("107/3/3/85", with: "107/3/-3/85")?.hasPrefix("spec.csv:8:") == true)
        #expect(error("seed,123", with: "")?.contains("missing row 'seed'") == true)
        #expect(error("seed,123", with: "seed,123\nseed,4")?.hasPrefix("spec.csv:12: 'seed' appears twice") == true)
        #expect(error("stage,fwrd_inject", with: "stage,bkwd_inject")?.hasPrefix("spec.csv:5: backward injection needs") == true)
        #expect(error("target_worker,1", with: "target_worker,-1")?.hasPrefix("spec.csv:4:") == true)
        #expect(error("fmodel,RD", with: "fmodel,N16_RD")?.contains("N16_RD corrupts 16 element(s), the spec lists 1") == true)
        #expect(error("model,resnet18", with: "model,resnet18\nbogus,1")?.hasPrefix("spec.csv:2: unknown key 'bogus'") == true)
    }
}
