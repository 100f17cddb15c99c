import Foundation
import Testing
import TestSupport
@testable import Replayer
import Recorder
import Sim

/// Sees one replica's operands of every MXU operation in one step and changes nothing: the
/// golden values a fault will find.
final class OperandCapture: OperandHook, @unchecked Sendable {
    let replica: Int
    private let lock = NSLock()
    private var seen: [String: [Float]] = [:]

    init(replica: Int) { self.replica = replica }

    func wants(_ site: SiteID, replica: Int) -> Bool { replica == self.replica }

    func apply(_ site: SiteID, role: OperandRole, values: inout [Float], shape: [Int], replica: Int) {
        lock.lock()
        defer { lock.unlock() }
        seen["\(site.name)/\(role.rawValue)"] = values
    }

    func values(_ site: String, _ role: OperandRole) -> [Float]? {
        lock.lock()
        defer { lock.unlock() }
        return seen["\(site)/\(role.rawValue)"]
    }

    /// Every operand the capture saw, by site and role.
    var all: [(site: String, role: OperandRole, values: [Float])] {
        lock.lock()
        defer { lock.unlock() }
        return seen.map { key, values in
            let parts = key.split(separator: "/")
            return (String(parts[0]), OperandRole(rawValue: String(parts[1])) ?? .output, values)
        }.sorted { ($0.site, $0.role.rawValue) < ($1.site, $1.role.rawValue) }
    }
}

/// What an injection records about what it found and changed: the golden values at its
/// positions, a bit flip's bit, how many elements really changed, and whether a hardware
/// fault's PE holds anything of the operation (`InjectionRecord`, issue "every result records
/// what was injected").
@Suite(.serialized) struct InjectedFactsTests {
    static var reader: TraceReader { TinyGolden.nobnSGD }
    static let step = 4, replica = 1

    static func scratch(_ name: String) -> String {
        let d = Scratch.path("injected-\(name)")
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    /// The golden operands of replica 1's step 4 (a snapshot: nothing to re-execute), as the
    /// injection hook sees them.
    static let golden: OperandCapture = {
        do {
            let restorer = try TraceRestorer(reader: reader)
            let capture = OperandCapture(replica: replica)
            _ = restorer.run.step(try restorer.state(at: step), hook: capture)
            return capture
        } catch {
            fatalError("cannot capture the golden operands: \(error)")
        }
    }()

    static func replay(_ spec: InjectionSpec, _ name: String) throws -> (result: ReplayResult, recorded: InjectionRecord?) {
        let out = scratch(name)
        let r = try FaultReplay.run(golden: reader, spec: spec, specName: "\(name).json", stepsAfterInjection: 0, out: out)
        return (r, try TraceReader(directory: out).manifest.injection)
    }

    static func shape(_ site: String, _ role: OperandRole) throws -> [Int] {
        try #require(try reader.manifest.config.makeModel().operation(named: site)?.shape(of: role))
    }

    /// A flip of bit 0 of an fp32 weight that rounding to bfloat16 discards: the record keeps
    /// the bit, the golden value and the value written, and counts no element as changed; no
    /// MXU output of the step differs from golden.
    @Test func aLowMantissaFlipThatBFloat16RoundingDiscardsIsNotActivated() throws {
        let site = "basicblock_1_basic_0_conv1"
        let weights = try #require(Self.golden.values(site, .weight))
        let flip = { (x: Float) in Float(bitPattern: x.bitPattern ^ 1) }
        let offset = try #require(weights.indices.first { BFloat16.round(flip(weights[$0])).bitPattern == BFloat16.round(weights[$0]).bitPattern })
        let g = weights[offset], v = flip(g)
        #expect(g.bitPattern != v.bitPattern)
        let position = Tensor.index(ofOffset: offset, in: try Self.shape(site, .weight))
        let spec = InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: .WT, replica: Self.replica, globalStep: Self.step,
                                 positions: [position], values: [v])
        let (r, recorded) = try Self.replay(spec, "low-bit")
        let i = r.injection
        #expect(i.bits == [0] && i.bitFormat == .float32 && i.activated == 0)
        #expect(i.goldenValues?.map(\.bitPattern) == [g.bitPattern] && i.values.map(\.bitPattern) == [v.bitPattern])
        #expect(recorded?.bits == [0] && recorded?.activated == 0 && recorded?.goldenValues?.map(\.bitPattern) == [g.bitPattern])
        #expect(r.firstDivergence == nil)
    }

    /// A seeded bit flip into an operation's fp32 output always changes it: one element
    /// activated, the golden value the operation computed, the new value one bit away.
    @Test func aFlipThatChangesTheValueIsActivatedWithItsGoldenValue() throws {
        let site = "basicblock_2_basic_0_conv2_grad_in"
        let spec = InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: .RBFLIP, replica: Self.replica, globalStep: Self.step, seed: 9)
        let (r, recorded) = try Self.replay(spec, "rbflip")
        let i = r.injection
        let position = try #require(i.positions.first)
        let shape = try Self.shape(site, .output)
        let offset = zip(position, shape).reduce(0) { $0 * $1.1 + $1.0 }
        let golden = try #require(Self.golden.values(site, .output))[offset]
        let g = try #require(i.goldenValues?.first), v = try #require(i.values.first)
        #expect(g.bitPattern == golden.bitPattern && g.bitPattern != v.bitPattern)
        let bit = try #require(i.bits?.first)
        #expect(i.bits?.count == 1 && g.bitPattern ^ v.bitPattern == UInt32(1) << UInt32(bit) && i.bitFormat == .float32)
        #expect(i.activated == 1 && i.peInUse == nil)
        #expect(recorded?.activated == 1 && recorded?.bits == i.bits && recorded?.goldenValues?.map(\.bitPattern) == [golden.bitPattern])
        // A model that writes no bit flip records no bit.
        let rd = try Self.replay(InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: .RD, replica: Self.replica, globalStep: Self.step, seed: 9), "rd")
        #expect(rd.result.injection.bits == nil && rd.result.injection.bitFormat == nil && rd.result.injection.goldenValues?.count == 1)
    }

    /// `ZERO` over an output element that is already +0 writes the golden value: nothing is
    /// activated and no MXU output differs from golden.
    @Test func zeroWrittenOverZeroIsNotActivated() throws {
        let model = try Self.reader.manifest.config.makeModel()
        let zero = try #require(Self.golden.all.lazy.filter { $0.role == .output }.compactMap { o in
            o.values.firstIndex { $0.bitPattern == 0 }.map { (o.site, $0) }
        }.first, "no golden output element is +0")
        let shape = try #require(model.operation(named: zero.0)?.shape(of: .output))
        let spec = InjectionSpec(workload: "resnet18_nobn", site: zero.0, faultModel: .ZERO, replica: Self.replica, globalStep: Self.step,
                                 positions: [Tensor.index(ofOffset: zero.1, in: shape)], values: [0])
        let (r, recorded) = try Self.replay(spec, "zero")
        #expect(r.injection.activated == 0 && r.injection.goldenValues?.map(\.bitPattern) == [0] && r.injection.bits == nil)
        #expect(recorded?.activated == 0)
        #expect(r.firstDivergence == nil)
        // Zero over a nonzero element of the same output is.
        let golden = try #require(Self.golden.values(zero.0, .output))
        let nonzero = try #require(golden.firstIndex { $0 != 0 })
        var other = spec
        other.positions = [Tensor.index(ofOffset: nonzero, in: shape)]
        let changed = try Self.replay(other, "zero-nonzero")
        #expect(changed.result.injection.activated == 1 && changed.result.injection.goldenValues?.first == golden[nonzero])
    }

    /// A PE outside every tile of the operation holds nothing of it: the record says so and
    /// that nothing changed; a PE inside the tiles is in use and changes outputs.
    @Test func aHardwareFaultInAnUnusedPEIsNotInUseAndChangesNothing() throws {
        let config = Self.reader.manifest.config
        let site = "conv1"
        let gemm = try #require(try config.makeModel().operation(named: site)?.gemm)
        let schedule = try Schedule(shape: gemm, config: config.chip)
        let (row, column) = (config.chip.rows - 1, config.chip.columns - 1)
        // The operation is smaller than the array: that PE lies outside every pass's tile.
        #expect(schedule.passes.allSatisfy { row >= $0.rowRange.count && column >= $0.columnRange.count })
        for register in HardwareFault.Register.allCases {
            let fault = HardwareFault(row: row, column: column, register: register, bit: 14, kind: .stuckAt(value: 1))
            let spec = InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: nil, replica: Self.replica, globalStep: Self.step, hardware: fault)
            let (r, recorded) = try Self.replay(spec, "unused-\(register.rawValue)")
            #expect(r.injection.peInUse == false && r.injection.activated == 0 && r.injection.positions.isEmpty, "\(register)")
            #expect(recorded?.peInUse == false && recorded?.activated == 0)
            #expect(r.firstDivergence == nil)
        }
        let used = HardwareFault(row: 0, column: 0, register: .weight, bit: 14, kind: .stuckAt(value: 1))
        let (r, recorded) = try Self.replay(InjectionSpec(workload: "resnet18_nobn", site: site, faultModel: nil, replica: Self.replica,
                                                          globalStep: Self.step, hardware: used), "used")
        #expect(r.injection.peInUse == true && (r.injection.activated ?? 0) > 0 && r.injection.activated == r.injection.positions.count)
        #expect(r.injection.goldenValues?.count == r.injection.values.count && r.injection.bitFormat == .bfloat16)
        #expect(recorded?.peInUse == true && recorded?.activated == r.injection.activated)
    }
}
