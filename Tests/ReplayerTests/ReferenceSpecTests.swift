import Foundation
import Testing
@testable import Replayer
@testable import Sim

/// The reference study's own spec files (ResNet family, EfficientNet, DenseNet) apply verbatim at `paper` scale: each
/// names a site of its workload and positions inside the operand it strikes, backward
/// positions in the reference's dilated and padded layouts.
@Suite struct ReferenceSpecTests {
    static let files = ["resnet18__inj_immediate_infs_nans.csv", "resnet18__inj_masked.csv", "resnet18__inj_slow_degrade.csv",
                        "resnet18_nobn__inj_short_term_infs_nans.csv", "resnet18_nobn__inj_slow_degrade.csv",
                        "resnet18_sgd__inj_immediate_infs_nans.csv", "resnet18_sgd__inj_sharp_degrade.csv",
                        "effnet__inj_immediate_infs_nans.csv", "effnet__inj_slow_degrade.csv",
                        "densenet__inj_immediate_infs_nans.csv", "densenet__inj_slow_degrade.csv"]

    static func config(_ spec: InjectionSpec) throws -> TrainingConfig {
        try TrainingConfig(workload: try #require(spec.workload), scale: "paper", replicas: 8)
    }

    @Test(arguments: files)
    func referenceSpecValidatesAtPaperScale(file: String) throws {
        let spec = try InjectionSpec.load(path: fixtures.appendingPathComponent(file).path)
        let line = try FaultReplay.check(spec, specName: file, config: try Self.config(spec))
        #expect(line.contains("inside"), "\(line)")
    }

    /// The same spec with its first coordinate one past its dimension is refused, naming it.
    @Test(arguments: files)
    func outOfRangeCopyIsRefused(file: String) throws {
        var spec = try InjectionSpec.load(path: fixtures.appendingPathComponent(file).path)
        let config = try Self.config(spec)
        let model = try config.makeModel()
        let role = try #require(spec.faultModel).tensor
        let shape = try #require(model.operandShape(SiteID(parsing: spec.site), role))
        var positions = try #require(spec.positions)
        positions[0][0] = shape[0]
        spec.positions = positions
        #expect(throws: (any Error).self) { try FaultReplay.check(spec, specName: file, config: config) }
    }
}
