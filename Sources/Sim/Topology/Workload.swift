/// The built-in training workloads (the reference study's names).
public enum Workload: String, Sendable, CaseIterable, Codable {
    /// ResNet-18 trained with Adam.
    case resnet18
    /// ResNet-18 trained with plain SGD.
    case resnet18_sgd
    /// ResNet-18 without batch normalisation.
    case resnet18_nobn

    public var hasBatchNorm: Bool { self != .resnet18_nobn }

    /// The MXU operations of one replica's step at `scale`.
    public func layers(scale: ResNetScale, phases: StepPhases) -> [LayerWork] {
        ResNet18Topology.layers(scale: scale, batchNorm: hasBatchNorm, phases: phases)
    }
}
