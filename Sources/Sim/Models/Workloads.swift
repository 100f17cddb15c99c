import Foundation

/// One workload: a name, the optimizer the reference trained it with, its scale presets, and
/// how to build its model from a recorded configuration.
public struct WorkloadDefinition: Sendable {
    public var name: String
    /// One line for `--help` and listings.
    public var summary: String
    public var defaultOptimizer: OptimizerKind
    /// Scale preset names, smallest first.
    public var scales: [String]
    /// The configuration of the preset `scale` (one of ``scales``).
    public var preset: @Sendable (_ scale: String) throws(ModelError) -> ModelConfiguration
    /// The model a configuration describes (as recorded in a manifest); the error names the
    /// field that does not fit.
    public var build: @Sendable (ModelConfiguration) throws(ModelError) -> any Model
    /// The training-time augmentation the reference used for it (``Augmentation/none`` when
    /// it used none).
    public var defaultAugmentation: Augmentation
    /// The reference's learning-rate schedule for ``defaultOptimizer``, when it differs from
    /// that optimizer's usual one (``LearningRateSchedule/reference(for:)``).
    public var defaultSchedule: LearningRateSchedule?
    /// The reference's optimizer constants for ``defaultOptimizer``, when they are not
    /// Keras's defaults (the Transformer's Adam: beta2 0.997, epsilon 1e-9).
    public var defaultOptimizerSettings: OptimizerConfig?
    /// The data set it trains on unless told otherwise (fitted to each scale's input by
    /// ``DatasetSource/fitted(to:)``): Fashion-MNIST for the image networks, the fortunes
    /// text task for the Transformer.
    public var defaultDataset: DatasetSource

    public init(name: String, summary: String, defaultOptimizer: OptimizerKind, scales: [String], defaultAugmentation: Augmentation = .none,
                defaultSchedule: LearningRateSchedule? = nil, defaultOptimizerSettings: OptimizerConfig? = nil,
                defaultDataset: DatasetSource = .fashionMNIST(),
                preset: @escaping @Sendable (_ scale: String) throws(ModelError) -> ModelConfiguration,
                build: @escaping @Sendable (ModelConfiguration) throws(ModelError) -> any Model) {
        self.name = name
        self.summary = summary
        self.defaultOptimizer = defaultOptimizer
        self.scales = scales
        self.defaultAugmentation = defaultAugmentation
        self.defaultSchedule = defaultSchedule
        self.defaultOptimizerSettings = defaultOptimizerSettings
        self.defaultDataset = defaultDataset
        self.preset = preset
        self.build = build
    }

    /// The optimizer `kind` with this workload's constants: the reference's own for its
    /// optimizer, Keras's defaults otherwise.
    public func optimizer(_ kind: OptimizerKind) -> OptimizerConfig {
        if kind == defaultOptimizer, let settings = defaultOptimizerSettings { return settings }
        return OptimizerConfig(kind: kind)
    }

    /// The learning-rate schedule of this workload trained with `optimizer`: the reference's
    /// own for its optimizer, the optimizer's usual one otherwise.
    public func schedule(for optimizer: OptimizerKind) -> LearningRateSchedule {
        optimizer == defaultOptimizer ? defaultSchedule ?? .reference(for: optimizer) : .reference(for: optimizer)
    }
}

/// The registry of workloads: the built-in ones (the reference study's names) and any a
/// program or test registers. Nothing outside `Sources/Sim/Models` names a concrete model.
public enum Workloads {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var registered: [WorkloadDefinition] = builtIn

    /// Every workload, built-in first, then in registration order.
    public static var all: [WorkloadDefinition] {
        lock.lock()
        defer { lock.unlock() }
        return registered
    }

    public static var names: [String] { all.map(\.name) }

    /// Adds (or replaces, by name) a workload.
    public static func register(_ definition: WorkloadDefinition) {
        lock.lock()
        defer { lock.unlock() }
        registered.removeAll { $0.name == definition.name }
        registered.append(definition)
    }

    /// The workload called `name`.
    public static func named(_ name: String) throws(ModelError) -> WorkloadDefinition {
        let all = self.all
        guard let w = all.first(where: { $0.name == name }) else { throw .unknownWorkload(name, known: all.map(\.name)) }
        return w
    }

    /// The configuration of `workload` at the preset `scale`.
    public static func configuration(_ workload: String, scale: String) throws(ModelError) -> ModelConfiguration {
        try named(workload).preset(scale)
    }

    /// The model of `workload` with `configuration`.
    public static func model(_ workload: String, _ configuration: ModelConfiguration) throws(ModelError) -> any Model {
        try named(workload).build(configuration)
    }

    /// The data set `workload` trains on unless told otherwise, as spelled on a command line
    /// (`fashion-mnist`, `fortunes`).
    public static func defaultDataset(_ workload: String) throws(ModelError) -> String {
        try named(workload).defaultDataset.description
    }

    /// The model of `workload` at the preset `scale`.
    public static func model(_ workload: String, scale: String) throws(ModelError) -> any Model {
        let w = try named(workload)
        return try w.build(try w.preset(scale))
    }
}
