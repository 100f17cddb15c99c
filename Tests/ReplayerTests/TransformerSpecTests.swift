import Foundation
import Testing
@testable import Replayer
@testable import Sim

/// Specs in the form of the reference's transformer specs (no `model` row, brace positions
/// `{batch, position, hidden}`) name sites of the `transformer` workload and validate at
/// `paper` scale; a position past the operand's end is refused.
@Suite struct TransformerSpecTests {
    static func spec(site: String, stage: String = "bkwd_inject", fmodel: String, positions: String, values: String) -> String {
        """
        stage,\(stage)
        fmodel,\(fmodel)
        target_worker,3
        target_layer,\(site)
        target_epoch,0
        target_step,12
        inj_pos,\(positions)
        inj_values,\(values)
        learning_rate,0.001
        seed,123
        """
    }

    static func config() throws -> TrainingConfig { try TrainingConfig(workload: "transformer", scale: "paper", replicas: 8) }

    @Test(arguments: ["encoder_stack_attention_2_value_grad_in", "decoder_stack_enc_dec_attention_4_value_grad_in"])
    func referenceFormSpecValidatesAtPaperScale(site: String) throws {
        for (fmodel, positions, values) in [("INPUT", "{5,20,32}", "{1e8}"), ("RD_GLB", "{5,20,32},{5,20,33}", "{2.5e7,-3e9}")] {
            let csv = try ReplaySpecCSV.parse(Self.spec(site: site, fmodel: fmodel, positions: positions, values: values), file: "t.csv")
            let spec = InjectionSpec(csv)
            #expect(spec.workload == nil)
            let line = try FaultReplay.check(spec, specName: "t.csv", config: try Self.config())
            #expect(line.contains("inside"), "\(line)")
        }
    }

    @Test func outOfRangePositionIsRefused() throws {
        // The value projection's dL/dy is [16, 64, 512]: position 64 is one past the sequence.
        let csv = try ReplaySpecCSV.parse(Self.spec(site: "encoder_stack_attention_2_value_grad_in", fmodel: "INPUT", positions: "{5,64,32}",
                                                    values: "{1e8}"), file: "t.csv")
        #expect(throws: (any Error).self) { try FaultReplay.check(InjectionSpec(csv), specName: "t.csv", config: try Self.config()) }
    }
}
